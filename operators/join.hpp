#pragma once
// Joins of keyed streams, as Bytewax's `join` and `join_window`.
//
//   auto rows = op::join("orders_payments", op::InsertMode::kLast, op::EmitMode::kComplete, orders, payments);
//   // KeyedStream<std::tuple<std::optional<Order>, std::optional<Payment>>>
//
// Per key, each side keeps what it received (insert mode): kFirst its first
// value, kLast its latest, kProduct all of them. A row is a tuple with one
// optional per side; with kProduct several values give the cross product.
// Emit modes:
//  - kComplete: once every side has a value, the rows are emitted and the
//    key's state is discarded (deleted from the store in the same epoch);
//  - kRunning: after every value, the rows so far (missing sides empty);
//  - kFinal: when the input ends, each key's rows (missing sides empty).
// join_window joins within each window of a windower (see windowing.hpp): a
// window's rows are emitted when it closes. The join state is keyed state
// like any other: recovered, rescaled and bounded as stateful_map's.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "engine/codec.hpp"
#include "operators/operators.hpp"
#include "operators/windowing.hpp"

namespace engine::op {

enum class InsertMode : uint8_t { kFirst, kLast, kProduct };
enum class EmitMode : uint8_t { kComplete, kFinal, kRunning };

template <class... Vs>
using JoinRow = std::tuple<std::optional<Vs>...>;

namespace detail {

// One value of side I, on the merged stream of all sides.
template <class... Vs>
using JoinSide = std::variant<Vs...>;

// What a key holds of each side.
template <class... Vs>
struct JoinState {
  std::tuple<std::vector<Vs>...> sides;

  template <size_t I, class V>
  void insert(InsertMode mode, V&& v) {
    auto& side = std::get<I>(sides);
    if (mode == InsertMode::kFirst && !side.empty()) return;
    if (mode == InsertMode::kLast) side.clear();
    side.push_back(std::forward<V>(v));
  }
  void insert(InsertMode mode, JoinSide<Vs...>&& v) { insert_at(mode, std::move(v), std::index_sequence_for<Vs...>{}); }
  bool complete() const {
    return std::apply([](const auto&... s) { return (!s.empty() && ...); }, sides);
  }
  // The rows: the cross product of the sides, an empty side giving nullopt.
  std::vector<JoinRow<Vs...>> rows() const {
    std::vector<JoinRow<Vs...>> out(1);
    expand<0>(out);
    return out;
  }
  void merge(JoinState&& other, InsertMode mode) { merge_at(std::move(other), mode, std::index_sequence_for<Vs...>{}); }

 private:
  template <size_t... I>
  void insert_at(InsertMode mode, JoinSide<Vs...>&& v, std::index_sequence<I...>) {
    ((v.index() == I ? insert<I>(mode, std::move(std::get<I>(v))) : void()), ...);
  }
  template <size_t... I>
  void merge_at(JoinState&& other, InsertMode mode, std::index_sequence<I...>) {
    (
        [&] {
          for (auto& v : std::get<I>(other.sides)) insert<I>(mode, std::move(v));
        }(),
        ...);
  }
  template <size_t I>
  void expand(std::vector<JoinRow<Vs...>>& rows) const {
    if constexpr (I < sizeof...(Vs)) {
      const auto& side = std::get<I>(sides);
      if (!side.empty()) {
        std::vector<JoinRow<Vs...>> next;
        next.reserve(rows.size() * side.size());
        for (const auto& row : rows) {
          for (const auto& v : side) {
            next.push_back(row);
            std::get<I>(next.back()) = v;
          }
        }
        rows = std::move(next);
      }
      expand<I + 1>(rows);
    }
  }
};

// The sides tagged with their index and merged into one keyed stream.
template <class... Vs, size_t... I>
KeyedStream<JoinSide<Vs...>> merge_sides(const std::string& id, std::index_sequence<I...>,
                                         const KeyedStream<Vs>&... sides) {
  std::vector<KeyedStream<JoinSide<Vs...>>> tagged{map_value(fmt::format("{}.side{}", id, I), sides, [](Vs&& v) {
    return JoinSide<Vs...>(std::in_place_index<I>, std::move(v));
  })...};
  return merge(id + ".sides", tagged);
}

// Flattens (key, (window id, rows)) into (key, row).
template <class Row, class S>
KeyedStream<Row> flatten_rows(const std::string& id, const S& in) {
  auto f = [](auto&& kv) {
    std::vector<KV<Row>> out;
    out.reserve(kv.second.second.size());
    for (auto& row : kv.second.second) out.emplace_back(kv.first, std::move(row));
    return out;
  };
  return add_unary<KeyedStream<Row>, FlatMapStep>(in, id, "flat_map", f);
}

}  // namespace detail

// Joins keyed streams by key (see the file comment).
template <class... Vs>
KeyedStream<JoinRow<Vs...>> join(const std::string& id, InsertMode insert_mode, EmitMode emit_mode,
                                 const KeyedStream<Vs>&... sides) {
  static_assert(sizeof...(Vs) >= 2, "join needs at least two streams");
  using State = detail::JoinState<Vs...>;
  using Row = JoinRow<Vs...>;
  auto merged = detail::merge_sides(id, std::index_sequence_for<Vs...>{}, sides...);
  if (emit_mode == EmitMode::kFinal) {
    auto out = detail::add_window(
        id, merged, "join", detail::NoClock{}, detail::WholeInput{}, [] { return State(); },
        [insert_mode](State&& s, detail::JoinSide<Vs...>&& v) {
          s.insert(insert_mode, std::move(v));
          return std::move(s);
        },
        detail::NoMerge<State>{}, [](const WindowMeta&, State&& s) { return s.rows(); });
    return detail::flatten_rows<Row>(id + ".rows", out.down);
  }
  return stateful_flat_map<State>(id, merged,
                                  [insert_mode, emit_mode](std::optional<State>& s, detail::JoinSide<Vs...>&& v) {
                                    if (!s) s.emplace();
                                    s->insert(insert_mode, std::move(v));
                                    if (emit_mode == EmitMode::kRunning) return s->rows();
                                    if (!s->complete()) return std::vector<Row>();
                                    auto rows = s->rows();
                                    s.reset();  // complete: the key's state is discarded
                                    return rows;
                                  });
}

// Bytewax's defaults: the latest value of each side, rows once all sides have one.
template <class... Vs>
KeyedStream<JoinRow<Vs...>> join(const std::string& id, const KeyedStream<Vs>&... sides) {
  return join(id, InsertMode::kLast, EmitMode::kComplete, sides...);
}

// Joins within each window: a window's rows (the cross product of what each
// side sent in it) are emitted when it closes. Returns the rows, the late
// values (tagged by side) and the windows' metadata.
template <class Clock, class Windower, class... Vs>
auto join_window(const std::string& id, Clock clock, Windower windower, const KeyedStream<Vs>&... sides) {
  static_assert(sizeof...(Vs) >= 2, "join_window needs at least two streams");
  using State = detail::JoinState<Vs...>;
  using Row = JoinRow<Vs...>;
  auto merged = detail::merge_sides(id, std::index_sequence_for<Vs...>{}, sides...);
  auto out = detail::add_window(
      id, merged, "join_window", std::move(clock), std::move(windower), [] { return State(); },
      [](State&& s, detail::JoinSide<Vs...>&& v) {
        s.insert(InsertMode::kProduct, std::move(v));
        return std::move(s);
      },
      [](State&& a, State&& b) {
        a.merge(std::move(b), InsertMode::kProduct);
        return std::move(a);
      },
      [](const WindowMeta&, State&& s) { return s.rows(); });
  struct Out {
    KeyedStream<Row> rows;
    KeyedStream<std::pair<int64_t, detail::JoinSide<Vs...>>> late;
    KeyedStream<std::pair<int64_t, WindowMeta>> meta;
  };
  return Out{detail::flatten_rows<Row>(id + ".rows", out.down), out.late, out.meta};
}

}  // namespace engine::op

// A join state's snapshot: each side's values.
template <class... Vs>
struct engine::Codec<engine::op::detail::JoinState<Vs...>> {
  static void encode(const engine::op::detail::JoinState<Vs...>& v, std::string& out) {
    std::apply([&](const auto&... s) { (Codec<std::remove_cvref_t<decltype(s)>>::encode(s, out), ...); }, v.sides);
  }
  static engine::op::detail::JoinState<Vs...> decode(Reader& in) {
    engine::op::detail::JoinState<Vs...> v;
    std::apply([&](auto&... s) { ((s = Codec<std::remove_cvref_t<decltype(s)>>::decode(in)), ...); }, v.sides);
    return v;
  }
};
