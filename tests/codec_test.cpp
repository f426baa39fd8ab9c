// engine/codec.hpp: values survive encode_value/decode_value unchanged, and
// truncated or garbage bytes give engine::StateError, never a crash or another
// exception type.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "apps/cart_join.hpp"
#include "engine/codec.hpp"
#include "engine/errors.hpp"

namespace codec_test {

// A user struct stored field by field.
struct Account {
  std::string owner;
  int64_t balance = 0;
  std::vector<std::string> tags;
  std::optional<double> limit;
  std::map<std::string, int32_t> counters;
  uint8_t level = 0;
  bool operator==(const Account&) const = default;
};

// A user type stored through its nlohmann JSON conversion (as MessagePack).
struct Profile {
  std::string name;
  std::vector<int> scores;
  std::map<std::string, std::string> attrs;
  bool operator==(const Profile&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Profile, name, scores, attrs)

}  // namespace codec_test

ENGINE_CODEC_FIELDS(codec_test::Account, owner, balance, tags, limit, counters, level);
ENGINE_CODEC_JSON(codec_test::Profile);

namespace codec_test {
namespace {

using engine::decode_value;
using engine::encode_value;
using engine::StateError;

// Encodes and decodes `v` as the store would.
template <class T>
T round_trip(const T& v) {
  return decode_value<T>(encode_value(v));
}

// Decoding every proper prefix of a valid encoding must throw StateError.
template <class T>
void expect_prefixes_rejected(const T& v) {
  const std::string bytes = encode_value(v);
  for (size_t n = 0; n < bytes.size(); ++n) {
    try {
      (void)decode_value<T>(std::string_view(bytes).substr(0, n));
      ADD_FAILURE() << "a prefix of " << n << " of " << bytes.size() << " bytes decoded without error";
    } catch (const StateError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "prefix of " << n << " bytes: not a StateError: " << e.what();
    }
  }
  // One extra byte at the end is refused too.
  try {
    (void)decode_value<T>(bytes + "x");
    ADD_FAILURE() << "trailing byte accepted";
  } catch (const StateError&) {
  }
}

// Decodes arbitrary bytes: success or StateError are fine, anything else is a
// failure (reported once per type and `what`, so one bug does not hide another).
template <class T>
void expect_decodes_or_state_error(std::string_view bytes, const std::string& what, std::set<std::string>& reported) {
  try {
    (void)decode_value<T>(bytes);
  } catch (const StateError&) {
  } catch (const std::exception& e) {
    const std::string tag = what + " as " + typeid(T).name();
    if (reported.insert(tag).second) {
      ADD_FAILURE() << tag << ": decoding garbage threw a non-StateError " << typeid(e).name() << ": " << e.what();
    }
  }
}

// The codec's varint bytes of `v` (for hand-made corrupt values).
std::string varint(uint64_t v) {
  std::string out;
  engine::put_varint(out, v);
  return out;
}

// An Account using every field, with NUL bytes and multi-byte lengths.
Account sample_account() {
  Account a;
  a.owner = std::string("bob\0smith", 9);
  a.balance = -1234567890123LL;
  a.tags = {"", "vip", std::string(300, 't')};
  a.limit = 99.5;
  a.counters = {{"a", 1}, {"b", -2}, {std::string("\0", 1), 3}};
  a.level = 200;
  return a;
}

// A Profile with non-ASCII text and an empty string.
Profile sample_profile() { return Profile{"ann \xc3\xa9", {1, -2, 300000}, {{"k", "v"}, {"empty", ""}}}; }

// ---- round trips ------------------------------------------------------------

TEST(CodecRoundTrip, Integers) {
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{-1}, std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max(), int64_t{1} << 40}) {
    EXPECT_EQ(round_trip(v), v);
  }
  for (uint64_t v : {uint64_t{0}, std::numeric_limits<uint64_t>::max(), uint64_t{127}, uint64_t{128}}) {
    EXPECT_EQ(round_trip(v), v);
  }
  EXPECT_EQ(round_trip(int32_t{-7}), -7);
  EXPECT_EQ(round_trip(uint32_t{4000000000u}), 4000000000u);
  EXPECT_EQ(round_trip(int16_t{-300}), -300);
  EXPECT_EQ(round_trip(uint8_t{255}), 255);
  EXPECT_EQ(round_trip(char{'\0'}), '\0');
  EXPECT_EQ(round_trip(true), true);
  EXPECT_EQ(round_trip(false), false);
}

TEST(CodecRoundTrip, Doubles) {
  for (double v : {0.0, -0.0, 1.5, -3.25e-300, 1e308, std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::denorm_min()}) {
    const double back = round_trip(v);
    EXPECT_EQ(std::memcmp(&back, &v, sizeof v), 0) << v;  // bit-exact (keeps -0.0)
  }
  const double nan = std::nan("0x5");
  const double back = round_trip(nan);
  EXPECT_EQ(std::memcmp(&back, &nan, sizeof nan), 0);
  EXPECT_EQ(round_trip(2.5f), 2.5f);
}

TEST(CodecRoundTrip, StringsKeepEveryByte) {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  for (const std::string& s : {std::string(), std::string("a"), std::string("\0", 1), std::string("x\0y\0", 4),
                               all_bytes, std::string("\xff\xfe invalid utf-8 \xc0"), std::string(127, 'a'),
                               std::string(128, 'b'), std::string(16384, 'c'), std::string(1 << 20, '\0')}) {
    EXPECT_EQ(round_trip(s), s) << "length " << s.size();
  }
}

TEST(CodecRoundTrip, Containers) {
  const std::vector<int64_t> ints = {3, -1, 0, 1LL << 62};
  EXPECT_EQ(round_trip(ints), ints);
  EXPECT_EQ(round_trip(std::vector<int64_t>{}), std::vector<int64_t>{});
  std::vector<int32_t> many(100000);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int32_t>(i * 2654435761u);
  EXPECT_EQ(round_trip(many), many);
  const std::vector<std::string> strs = {"", std::string("\0\0", 2), "hello"};
  EXPECT_EQ(round_trip(strs), strs);
  const std::vector<std::vector<double>> nested = {{}, {1.0}, {2.0, 3.0}};
  EXPECT_EQ(round_trip(nested), nested);

  const std::map<std::string, int64_t> m = {{"", 0}, {"a", 1}, {std::string("a\0", 2), 2}, {"zz", -3}};
  EXPECT_EQ(round_trip(m), m);
  const std::map<int64_t, std::vector<std::string>> mv = {{-5, {"x"}}, {7, {}}};
  EXPECT_EQ(round_trip(mv), mv);

  std::unordered_map<std::string, std::vector<int64_t>> um;
  for (int i = 0; i < 500; ++i) um["key" + std::to_string(i)] = std::vector<int64_t>(static_cast<size_t>(i % 4), i);
  EXPECT_EQ(round_trip(um), um);
  // Sorted on the wire: equal maps built in different orders encode identically.
  std::unordered_map<std::string, int> a, b;
  for (int i = 0; i < 100; ++i) a[std::to_string(i)] = i;
  for (int i = 99; i >= 0; --i) b[std::to_string(i)] = i;
  EXPECT_EQ(encode_value(a), encode_value(b));
}

TEST(CodecRoundTrip, OptionalsAndPairs) {
  EXPECT_EQ(round_trip(std::optional<int64_t>()), std::nullopt);
  EXPECT_EQ(round_trip(std::optional<int64_t>(0)), std::optional<int64_t>(0));
  EXPECT_EQ(round_trip(std::optional<std::string>("")), std::optional<std::string>(""));
  const std::optional<std::optional<int>> inner_empty = std::optional<int>();
  EXPECT_EQ(round_trip(inner_empty), inner_empty);
  const std::pair<std::string, double> p = {std::string("k\0", 2), -0.5};
  EXPECT_EQ(round_trip(p), p);
  const std::pair<int64_t, std::vector<std::optional<std::string>>> q = {9, {std::nullopt, "x", ""}};
  EXPECT_EQ(round_trip(q), q);
}

TEST(CodecRoundTrip, FieldStructs) {
  const Account a = sample_account();
  EXPECT_EQ(round_trip(a), a);
  EXPECT_EQ(round_trip(Account{}), Account{});
  const std::vector<Account> accounts = {a, Account{}, a};
  EXPECT_EQ(round_trip(accounts), accounts);
  const engine::cart::Cart cart{{5, 1, 9, 2}, 2};
  EXPECT_EQ(round_trip(cart), cart);
}

TEST(CodecRoundTrip, JsonTypes) {
  const Profile p = sample_profile();
  EXPECT_EQ(round_trip(p), p);
  EXPECT_EQ(round_trip(Profile{}), Profile{});
  const std::map<std::string, Profile> m = {{"p", p}, {"q", Profile{}}};
  EXPECT_EQ(round_trip(m), m);
}

TEST(CodecFormat, VersionByteComesFirst) {
  const std::string bytes = encode_value(int32_t{1});
  ASSERT_EQ(bytes.size(), 5u);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), engine::kCodecVersion);
  std::string other = bytes;
  other[0] = static_cast<char>(engine::kCodecVersion + 1);
  EXPECT_THROW(decode_value<int32_t>(other), StateError);
}

// ---- bad input --------------------------------------------------------------

TEST(CodecBadInput, EveryTruncationIsStateError) {
  expect_prefixes_rejected(int64_t{42});
  expect_prefixes_rejected(3.5);
  expect_prefixes_rejected(std::string("hello\0world", 11));
  expect_prefixes_rejected(std::string(200, 'x'));  // two-byte length
  expect_prefixes_rejected(std::vector<int64_t>{1, 2, 3});
  expect_prefixes_rejected(std::vector<std::string>{"a", "", "bcd"});
  expect_prefixes_rejected(std::map<std::string, int32_t>{{"a", 1}, {"b", 2}});
  expect_prefixes_rejected(std::unordered_map<std::string, int32_t>{{"a", 1}});
  expect_prefixes_rejected(std::optional<std::string>("abc"));
  expect_prefixes_rejected(std::pair<std::string, int64_t>("k", 1));
  expect_prefixes_rejected(sample_account());
  expect_prefixes_rejected(sample_profile());
  expect_prefixes_rejected(engine::cart::Cart{{1, 2, 3}, 1});
}

TEST(CodecBadInput, EmptyInputIsStateError) {
  EXPECT_THROW(decode_value<int64_t>(""), StateError);
  EXPECT_THROW(decode_value<std::string>(""), StateError);
  EXPECT_THROW(decode_value<Profile>(""), StateError);
}

TEST(CodecBadInput, OverlongVarintIsStateError) {
  const std::string v(1, static_cast<char>(engine::kCodecVersion));
  EXPECT_THROW(decode_value<std::string>(v + std::string(11, '\xff')), StateError);
  EXPECT_THROW(decode_value<std::vector<int>>(v + std::string(10, '\x80') + "\x01"), StateError);
}

TEST(CodecBadInput, HugeLengthsAreStateErrors) {
  const std::string v(1, static_cast<char>(engine::kCodecVersion));
  for (uint64_t n : {uint64_t{1} << 20, uint64_t{1} << 40, uint64_t{1} << 62, std::numeric_limits<uint64_t>::max()}) {
    SCOPED_TRACE(n);
    EXPECT_THROW(decode_value<std::string>(v + varint(n) + "abc"), StateError);
    EXPECT_THROW(decode_value<std::vector<int64_t>>(v + varint(n) + "abcdefgh"), StateError);
    EXPECT_THROW(decode_value<std::vector<std::string>>(v + varint(n)), StateError);
    EXPECT_THROW((decode_value<std::map<std::string, int>>(v + varint(n))), StateError);
    EXPECT_THROW(decode_value<Profile>(v + varint(n) + "\x80"), StateError);
  }
}

TEST(CodecBadInput, CorruptMessagePackIsStateError) {
  const std::string v(1, static_cast<char>(engine::kCodecVersion));
  // Length 3, then bytes that are not MessagePack of a Profile.
  EXPECT_THROW(decode_value<Profile>(v + varint(3) + "\xc1\xc1\xc1"), StateError);  // 0xc1: never used
  // Valid MessagePack of the wrong shape: an integer instead of an object.
  const auto wrong = nlohmann::json::to_msgpack(nlohmann::json(7));
  EXPECT_THROW(decode_value<Profile>(v + varint(wrong.size()) + std::string(wrong.begin(), wrong.end())), StateError);
  // An object missing fields.
  const auto partial = nlohmann::json::to_msgpack(nlohmann::json{{"name", "x"}});
  EXPECT_THROW(decode_value<Profile>(v + varint(partial.size()) + std::string(partial.begin(), partial.end())),
               StateError);
}

TEST(CodecBadInput, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(1234);
  const std::string valid_account = encode_value(sample_account());
  const std::string valid_profile = encode_value(sample_profile());
  std::set<std::string> reported;
  for (int i = 0; i < 3000; ++i) {
    std::string g(1, static_cast<char>(engine::kCodecVersion));
    const size_t n = rng() % 40;
    for (size_t k = 0; k < n; ++k) g.push_back(static_cast<char>(rng()));
    expect_decodes_or_state_error<int64_t>(g, "random bytes", reported);
    expect_decodes_or_state_error<std::string>(g, "random bytes", reported);
    expect_decodes_or_state_error<std::vector<int64_t>>(g, "random bytes", reported);
    expect_decodes_or_state_error<std::vector<std::string>>(g, "random bytes", reported);
    expect_decodes_or_state_error<std::map<std::string, int64_t>>(g, "random bytes", reported);
    expect_decodes_or_state_error<std::unordered_map<std::string, std::vector<int32_t>>>(g, "random bytes", reported);
    expect_decodes_or_state_error<std::optional<std::string>>(g, "random bytes", reported);
    expect_decodes_or_state_error<std::pair<std::string, double>>(g, "random bytes", reported);
    expect_decodes_or_state_error<Profile>(g, "random bytes", reported);

    // Valid encodings with a few flipped bytes.
    std::string a = valid_account;
    std::string p = valid_profile;
    for (int k = 0; k < 3; ++k) {
      a[1 + rng() % (a.size() - 1)] = static_cast<char>(rng());
      p[1 + rng() % (p.size() - 1)] = static_cast<char>(rng());
    }
    expect_decodes_or_state_error<Account>(a, "flipped bytes", reported);
    expect_decodes_or_state_error<Profile>(p, "flipped bytes", reported);
  }
}

}  // namespace
}  // namespace codec_test
