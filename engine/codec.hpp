#pragma once
// Codec<T>: the binary encoding of state values in snapshots.
//
// Format: fixed-width integers and doubles in the machine's byte order, which
// must be little-endian (static_assert below: a state dir moves only between
// little-endian hosts); strings and
// containers are a varint length followed by their elements; optional is a
// presence byte. User structs opt in with ENGINE_CODEC_FIELDS(Type, a, b, ...)
// (fields in order) or, for types with nlohmann to_json/from_json, with
// ENGINE_CODEC_JSON(Type) (stored as MessagePack). The store prefixes every
// value with a version byte, kCodecVersion, so a change of encoding can be
// detected. A Codec that changed its type's encoding declares
// `static constexpr uint8_t kVersion` (above kCodecVersion) and reads the
// values of older versions with `static T decode_version(Reader&, uint8_t)`:
// state written by an older build still restores. The version byte is the
// stored value's own type's, so such a type is versioned only when it is a
// step's whole state, not inside another type's value.

#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/errors.hpp"

namespace engine {

static_assert(std::endian::native == std::endian::little, "state values are stored little-endian");

inline constexpr uint8_t kCodecVersion = 1;

// Input cursor for decoding; throws StateError on truncated data.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  std::string_view take(size_t n) {
    if (n > data_.size()) throw StateError("corrupt state value: truncated");
    auto out = data_.substr(0, n);
    data_.remove_prefix(n);
    return out;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto b = static_cast<uint8_t>(take(1)[0]);
      v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80u) == 0) return v;
    }
    throw StateError("corrupt state value: bad varint");
  }
  bool empty() const { return data_.empty(); }
  // A container length read from the data: every element takes at least one
  // byte, so a length beyond the remaining bytes is corrupt (and must not be
  // trusted for a reserve()).
  uint64_t length() {
    const uint64_t n = varint();
    if (n > data_.size()) throw StateError("corrupt state value: a length exceeds the data");
    return n;
  }

 private:
  std::string_view data_;
};

inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <class T, class Enable = void>
struct Codec;  // specialise for your type, or use the macros below

template <class T>
concept Encodable = requires(const T& v, std::string& out, Reader& in) {
  Codec<T>::encode(v, out);
  { Codec<T>::decode(in) } -> std::same_as<T>;
};

template <class T>
requires(std::is_arithmetic_v<T>) struct Codec<T> {
  static void encode(const T& v, std::string& out) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    out.append(buf, sizeof(T));
  }
  static T decode(Reader& in) {
    T v;
    std::memcpy(&v, in.take(sizeof(T)).data(), sizeof(T));
    return v;
  }
};

template <>
struct Codec<std::string> {
  static void encode(const std::string& v, std::string& out) {
    put_varint(out, v.size());
    out.append(v);
  }
  static std::string decode(Reader& in) { return std::string(in.take(in.length())); }
};

template <class T>
struct Codec<std::optional<T>> {
  static void encode(const std::optional<T>& v, std::string& out) {
    out.push_back(v ? 1 : 0);
    if (v) Codec<T>::encode(*v, out);
  }
  static std::optional<T> decode(Reader& in) {
    if (in.take(1)[0] == 0) return std::nullopt;
    return Codec<T>::decode(in);
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
  static void encode(const std::pair<A, B>& v, std::string& out) {
    Codec<A>::encode(v.first, out);
    Codec<B>::encode(v.second, out);
  }
  static std::pair<A, B> decode(Reader& in) {
    A a = Codec<A>::decode(in);
    B b = Codec<B>::decode(in);
    return {std::move(a), std::move(b)};
  }
};

namespace detail {
template <class C>
void encode_range(const C& c, std::string& out) {
  put_varint(out, c.size());
  for (const auto& e : c) Codec<std::remove_cvref_t<decltype(e)>>::encode(e, out);
}
}  // namespace detail

template <class T>
struct Codec<std::vector<T>> {
  // Vectors of numbers are copied as one block: on a little-endian machine that
  // is the same bytes as encoding each element.
  static constexpr bool kBlock = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

  static void encode(const std::vector<T>& v, std::string& out) {
    if constexpr (kBlock) {
      put_varint(out, v.size());
      out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
    } else {
      detail::encode_range(v, out);
    }
  }
  static void prefetch(const std::vector<T>& v) {
    if constexpr (kBlock) {
      if (!v.empty()) __builtin_prefetch(v.data());
    }
  }
  static std::vector<T> decode(Reader& in) {
    const auto n = in.length();  // checked against the remaining bytes
    if constexpr (kBlock) {
      const std::string_view bytes = in.take(n * sizeof(T));
      std::vector<T> v(n);
      if (n > 0) std::memcpy(v.data(), bytes.data(), bytes.size());
      return v;
    } else {
      std::vector<T> v;
      v.reserve(n);
      for (uint64_t i = 0; i < n; ++i) v.push_back(Codec<T>::decode(in));
      return v;
    }
  }
};

template <class K, class V>
struct Codec<std::map<K, V>> {
  static void encode(const std::map<K, V>& m, std::string& out) {
    put_varint(out, m.size());
    for (const auto& [k, v] : m) {
      Codec<K>::encode(k, out);
      Codec<V>::encode(v, out);
    }
  }
  static std::map<K, V> decode(Reader& in) {
    std::map<K, V> m;
    for (uint64_t i = 0, n = in.length(); i < n; ++i) {
      K k = Codec<K>::decode(in);
      m.emplace(std::move(k), Codec<V>::decode(in));
    }
    return m;
  }
};

template <class K, class V>
struct Codec<std::unordered_map<K, V>> {
  static void encode(const std::unordered_map<K, V>& m, std::string& out) {
    Codec<std::map<K, V>>::encode(std::map<K, V>(m.begin(), m.end()), out);  // sorted: deterministic bytes
  }
  static std::unordered_map<K, V> decode(Reader& in) {
    auto sorted = Codec<std::map<K, V>>::decode(in);
    return {std::make_move_iterator(sorted.begin()), std::make_move_iterator(sorted.end())};
  }
};

// The version byte written before a value of T.
template <class T>
constexpr uint8_t value_version() {
  if constexpr (requires { Codec<T>::kVersion; }) {
    static_assert(Codec<T>::kVersion > kCodecVersion);
    return Codec<T>::kVersion;
  } else {
    return kCodecVersion;
  }
}

// Appends a whole value with its version prefix (what the store writes) to out.
template <class T>
void encode_value_into(const T& v, std::string& out) {
  out.push_back(static_cast<char>(value_version<T>()));
  Codec<T>::encode(v, out);
}

// Hints that `v` is about to be encoded: a Codec whose encode reads memory
// behind a pointer may define `static void prefetch(const T&)` to start that
// read early (a snapshot encodes many values scattered in memory).
template <class T>
void prefetch_value(const T& v) {
  if constexpr (requires { Codec<T>::prefetch(v); }) Codec<T>::prefetch(v);
}

template <class T>
std::string encode_value(const T& v) {
  // Encoded in a reused buffer, then copied once into an exact-size string.
  thread_local std::string buf;
  buf.clear();
  encode_value_into(v, buf);
  return buf;
}

template <class T>
T decode_value(std::string_view bytes) {
  Reader in(bytes);
  const auto version = static_cast<uint8_t>(in.take(1)[0]);
  constexpr uint8_t current = value_version<T>();
  const auto decode = [&]() -> T {
    if (version == current) return Codec<T>::decode(in);
    if constexpr (current > kCodecVersion) {
      if (version >= kCodecVersion && version < current) return Codec<T>::decode_version(in, version);
    }
    throw StateError(fmt::format(
        "state value has codec version {}, this build reads {}", version,
        current == kCodecVersion ? fmt::format("{}", current) : fmt::format("{} to {}", kCodecVersion, current)));
  };
  T v = decode();
  if (!in.empty()) throw StateError("corrupt state value: trailing bytes");
  return v;
}

}  // namespace engine

#define ENGINE_CODEC_ENC_FIELD_(f) ::engine::Codec<std::remove_cvref_t<decltype(v.f)>>::encode(v.f, out);
#define ENGINE_CODEC_DEC_FIELD_(f) v.f = ::engine::Codec<std::remove_cvref_t<decltype(v.f)>>::decode(in);
#define ENGINE_CODEC_FOR_EACH_1_(m, a) m(a)
#define ENGINE_CODEC_FOR_EACH_2_(m, a, ...) m(a) ENGINE_CODEC_FOR_EACH_1_(m, __VA_ARGS__)
#define ENGINE_CODEC_FOR_EACH_3_(m, a, ...) m(a) ENGINE_CODEC_FOR_EACH_2_(m, __VA_ARGS__)
#define ENGINE_CODEC_FOR_EACH_4_(m, a, ...) m(a) ENGINE_CODEC_FOR_EACH_3_(m, __VA_ARGS__)
#define ENGINE_CODEC_FOR_EACH_5_(m, a, ...) m(a) ENGINE_CODEC_FOR_EACH_4_(m, __VA_ARGS__)
#define ENGINE_CODEC_FOR_EACH_6_(m, a, ...) m(a) ENGINE_CODEC_FOR_EACH_5_(m, __VA_ARGS__)
#define ENGINE_CODEC_PICK_(_1, _2, _3, _4, _5, _6, name, ...) name
#define ENGINE_CODEC_FOR_EACH_(m, ...)                                                                          \
  ENGINE_CODEC_PICK_(__VA_ARGS__, ENGINE_CODEC_FOR_EACH_6_, ENGINE_CODEC_FOR_EACH_5_, ENGINE_CODEC_FOR_EACH_4_, \
                     ENGINE_CODEC_FOR_EACH_3_, ENGINE_CODEC_FOR_EACH_2_, ENGINE_CODEC_FOR_EACH_1_)              \
  (m, __VA_ARGS__)

// Field-by-field codec for a default-constructible struct (up to 6 fields).
#define ENGINE_CODEC_FIELDS(Type, ...)                             \
  template <>                                                      \
  struct engine::Codec<Type> {                                     \
    static void encode(const Type& v, std::string& out) {          \
      ENGINE_CODEC_FOR_EACH_(ENGINE_CODEC_ENC_FIELD_, __VA_ARGS__) \
    }                                                              \
    static Type decode(::engine::Reader& in) {                     \
      Type v{};                                                    \
      ENGINE_CODEC_FOR_EACH_(ENGINE_CODEC_DEC_FIELD_, __VA_ARGS__) \
      return v;                                                    \
    }                                                              \
  }

// Codec for a type with nlohmann to_json/from_json, stored as MessagePack.
#define ENGINE_CODEC_JSON(Type)                                                               \
  template <>                                                                                 \
  struct engine::Codec<Type> {                                                                \
    static void encode(const Type& v, std::string& out) {                                     \
      const auto bytes = nlohmann::json::to_msgpack(nlohmann::json(v));                       \
      ::engine::put_varint(out, bytes.size());                                                \
      out.append(bytes.begin(), bytes.end());                                                 \
    }                                                                                         \
    static Type decode(::engine::Reader& in) {                                                \
      const auto bytes = in.take(in.length());                                                \
      try {                                                                                   \
        return nlohmann::json::from_msgpack(bytes.begin(), bytes.end()).template get<Type>(); \
      } catch (const nlohmann::json::exception& e) {                                          \
        throw ::engine::StateError(std::string("corrupt state value: ") + e.what());          \
      }                                                                                       \
    }                                                                                         \
  }
