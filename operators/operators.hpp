#pragma once
// The operator API: builds a Dataflow step by step, the way Bytewax's
// `bytewax.operators` does. Every function takes the step id first and the
// callable last, and returns the typed stream of its output:
//
//   engine::Dataflow flow("cart_join");
//   auto lines  = op::input("input", flow, FileSource(path));
//   auto events = op::filter_map("deserialize", lines, parse_event);          // std::optional<Event>
//   auto keyed  = op::key_on("key_on_user", events, [](const Event& e) { return e.user_id; });
//   auto carts  = op::stateful_map("joiner", keyed, update_cart);              // (std::optional<Cart>&, Event&&)
//   op::output("output", op::map("format", carts, format_cart), StdOutSink{});
//
// Streams are typed: Stream<T> carries items T, KeyedStream<V> carries
// (key, V) pairs made by key_on or map_value, and only a KeyedStream may feed
// a stateful step (anything else does not compile). Steps that keep their
// input's items (filter, inspect, branch, merge, redistribute) return the
// same kind of stream they were given.
//
// User code that throws on an item is handled by the run's error policy
// (fail / skip / dead-letter); take items by const& in callables if you want
// failed items printed in full.
//
// The step instances live in stateless_steps.hpp, stateful_step.hpp (on the
// KeyedState core of keyed_state.hpp) and io_steps.hpp.

#include <concepts>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/connector.hpp"
#include "engine/dataflow.hpp"
#include "engine/exchange.hpp"
#include "operators/io_steps.hpp"
#include "operators/stateful_step.hpp"
#include "operators/stateless_steps.hpp"
#include "operators/traits.hpp"

namespace engine::op {

namespace detail {
template <class T>
inline constexpr bool kAlwaysFalse = false;
}  // namespace detail

// ---- stateless -------------------------------------------------------------

// f: T -> U.
template <class T, class F, class U = std::remove_cvref_t<std::invoke_result_t<F&, T&&>>>
Stream<U> map(const std::string& id, const Stream<T>& in, F f) {
  return detail::add_unary<Stream<U>, detail::MapStep>(in, id, "map", std::move(f));
}

// f: V -> W on the value of a keyed stream; the key is kept.
template <class V, class F, class W = std::remove_cvref_t<std::invoke_result_t<F&, V&&>>>
KeyedStream<W> map_value(const std::string& id, const KeyedStream<V>& in, F f) {
  auto g = [f = std::move(f)](KV<V>&& kv) mutable { return KV<W>(std::move(kv.first), f(std::move(kv.second))); };
  return detail::add_unary<KeyedStream<W>, detail::MapStep>(in, id, "map_value", std::move(g));
}

// f: const T& -> bool; keeps items for which it is true.
template <detail::AnyStream S, class F>
requires std::predicate<F&, const typename S::Item&> S filter(const std::string& id, const S& in, F f) {
  return detail::add_unary<S, detail::FilterStep>(in, id, "filter", std::move(f));
}

// f: T -> std::optional<U>; drops nullopt.
template <class T, class F, class R = std::remove_cvref_t<std::invoke_result_t<F&, T&&>>>
requires detail::IsOptional<R>::value Stream<typename R::value_type> filter_map(const std::string& id,
                                                                                const Stream<T>& in, F f) {
  return detail::add_unary<Stream<typename R::value_type>, detail::FilterMapStep>(in, id, "filter_map", std::move(f));
}

// f: T -> a range of U (std::vector<U>, ...); emits each element.
template <class T, class F, class R = std::remove_cvref_t<std::invoke_result_t<F&, T&&>>,
          class U = detail::RangeElement<R>>
Stream<U> flat_map(const std::string& id, const Stream<T>& in, F f) {
  return detail::add_unary<Stream<U>, detail::FlatMapStep>(in, id, "flat_map", std::move(f));
}

// f: const T& -> std::string key; the result is a keyed stream of (key, item).
template <class T, class F>
requires std::is_convertible_v<std::invoke_result_t<F&, const T&>, std::string> KeyedStream<T> key_on(
    const std::string& id, const Stream<T>& in, F f) {
  auto g = [f = std::move(f)](T&& item) mutable {
    std::string key = f(std::as_const(item));
    return KV<T>(std::move(key), std::move(item));
  };
  return detail::add_unary<KeyedStream<T>, detail::MapStep>(in, id, "key_on", std::move(g));
}

// f: (const T&) or (const T&, worker index) -> void; passes items through.
template <detail::AnyStream S, class F>
S inspect(const std::string& id, const S& in, F f) {
  using T = typename S::Item;
  return detail::add_unary<S, detail::InspectStep>(in, id, "inspect", detail::inspect_adapter<F, T>(std::move(f)));
}

template <class S>
struct BranchOut {
  S trues;
  S falses;
};

// Splits a stream by a predicate: items where f is true go to .trues.
template <detail::AnyStream S, class F>
requires std::predicate<F&, const typename S::Item&> BranchOut<S> branch(const std::string& id, const S& in, F f) {
  using T = typename S::Item;
  StepDesc d;
  d.id = id;
  d.kind = "branch";
  d.outputs = 2;
  d.inputs.push_back(Dataflow::edge(in, 0));
  d.make = [f](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    return std::make_unique<detail::BranchStep<T, F>>(ctx, ctx.step(step).id, f);
  };
  const int idx = in.graph().add_step(std::move(d));
  return {S(&in.graph(), idx, 0), S(&in.graph(), idx, 1)};
}

// Interleaves several streams of one type into one.
template <detail::AnyStream S>
S merge(const std::string& id, const std::vector<S>& ins) {
  using T = typename S::Item;
  if (ins.empty()) throw ConfigError(fmt::format("step '{}': merge needs at least one stream", id));
  StepDesc d;
  d.id = id;
  d.kind = "merge";
  for (size_t i = 0; i < ins.size(); ++i) d.inputs.push_back(Dataflow::edge(ins[i], static_cast<int>(i)));
  const size_t n = ins.size();
  d.make = [n](WorkerContext&, int) -> std::unique_ptr<StepInstance> {
    return std::make_unique<detail::MergeStep<T>>(n);
  };
  auto& graph = ins[0].graph();
  const int idx = graph.add_step(std::move(d));
  return S(&graph, idx, 0);
}

// Spreads items round-robin over all workers (for expensive stateless steps).
template <detail::AnyStream S>
S redistribute(const std::string& id, const S& in) {
  using T = typename S::Item;
  auto route = [](const T&, WorkerContext& ctx) { return ctx.next_round_robin(); };
  auto ex = exchange(in, id, Routing::kRoundRobin, route);
  auto pass = [](T&& x) { return std::move(x); };
  return detail::add_unary<S, detail::MapStep>(ex, id, "redistribute", pass);
}

// ---- stateful --------------------------------------------------------------

// f: (std::optional<S>& state, V&& value) -> W. The state type S is deduced
// from the mapper's first parameter (or given: stateful_map<S>(...)). The
// state starts as nullopt for a new key; set it to nullopt to discard the
// key's state (it is deleted from the snapshot store). Emits (key, W) per
// item; if W is std::optional, nullopt emits nothing. S needs a Codec
// (engine/codec.hpp) when recovery is on.
template <class S = void, class V, class F>
auto stateful_map(const std::string& id, const KeyedStream<V>& in, F f) {
  static_assert(!std::is_void_v<S> || detail::StateOf<F>::kKnown,
                "stateful_map: the mapper's first parameter must be std::optional<State>& "
                "(or name the state type: stateful_map<State>(...))");
  using State = std::conditional_t<std::is_void_v<S>, typename detail::StateOf<F>::type, S>;
  return detail::add_stateful<V, State, false>(id, in, "stateful_map", std::move(f));
}

// f: (std::optional<S>& state, V&& value) -> a range of W; emits (key, w) for each.
template <class S = void, class V, class F>
auto stateful_flat_map(const std::string& id, const KeyedStream<V>& in, F f) {
  static_assert(!std::is_void_v<S> || detail::StateOf<F>::kKnown,
                "stateful_flat_map: the mapper's first parameter must be std::optional<State>& "
                "(or name the state type: stateful_flat_map<State>(...))");
  using State = std::conditional_t<std::is_void_v<S>, typename detail::StateOf<F>::type, S>;
  return detail::add_stateful<V, State, true>(id, in, "stateful_flat_map", std::move(f));
}

// A stateful step on an unkeyed stream is a compile error that says what to do.
template <class S = void, class T, class F>
void stateful_map(const std::string&, const Stream<T>&, F) {
  static_assert(detail::kAlwaysFalse<T>,
                "stateful_map needs a KeyedStream<V>: key the stream first with op::key_on (or op::map_value on "
                "a keyed stream)");
}
template <class S = void, class T, class F>
void stateful_flat_map(const std::string&, const Stream<T>&, F) {
  static_assert(detail::kAlwaysFalse<T>,
                "stateful_flat_map needs a KeyedStream<V>: key the stream first with op::key_on (or op::map_value "
                "on a keyed stream)");
}

// ---- input and output ------------------------------------------------------

// A source step: each partition of `source` is read by one worker.
template <class T>
Stream<T> input(const std::string& id, Dataflow& flow, std::shared_ptr<const Source<T>> source) {
  StepDesc d;
  d.id = id;
  d.kind = "input";
  d.role = StepRole::kInput;
  d.make = [source](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    return std::make_unique<detail::InputStep<T>>(ctx, ctx.step(step).id, source, step);
  };
  d.footprint = [source] { return source->footprint(); };
  d.list_parts = [source] { return source->list_parts(); };
  const int idx = flow.add_step(std::move(d));
  return Stream<T>(&flow.graph(), idx, 0);
}

template <class Src>
requires std::derived_from<Src, Source<typename Src::Item>> Stream<typename Src::Item> input(
    const std::string& id, Dataflow& flow, std::shared_ptr<Src> source) {
  using T = typename Src::Item;
  return input<T>(id, flow, std::shared_ptr<const Source<T>>(std::move(source)));
}

// A source passed by value: FileSource(path), TestingSource<T>(items), ...
template <class Src>
requires std::derived_from<Src, Source<typename Src::Item>> Stream<typename Src::Item> input(const std::string& id,
                                                                                             Dataflow& flow,
                                                                                             Src source) {
  using T = typename Src::Item;
  return input<T>(id, flow, std::shared_ptr<const Source<T>>(std::make_shared<Src>(std::move(source))));
}

// A sink step: items are routed to the worker owning their sink partition.
template <class T>
void output(const std::string& id, const Stream<T>& in, std::shared_ptr<const Sink<T>> sink) {
  auto& graph = in.graph();
  // exchange() adds exactly one step, so the output step comes right after it.
  const int out_step = static_cast<int>(graph.steps().size()) + 1;
  auto by_part = [sink, out_step](const T& item, WorkerContext& ctx) -> uint32_t {
    const size_t parts = ctx.parts_of(out_step).size();
    return owner_of_part(parts == 1 ? 0 : sink->part_of(item, parts), ctx.workers());
  };
  auto ex = exchange(in, id, Routing::kSinkPartition, by_part);
  StepDesc d;
  d.id = id;
  d.kind = "output";
  d.role = StepRole::kOutput;
  d.outputs = 0;
  d.inputs.push_back(Dataflow::edge(ex, 0));
  d.make = [sink](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    return std::make_unique<detail::OutputStep<T>>(ctx, ctx.step(step).id, sink, step);
  };
  d.footprint = [sink] { return sink->footprint(); };
  d.list_parts = [sink] { return sink->list_parts(); };
  d.prepare = [sink] { sink->prepare(); };
  const int idx = graph.add_step(std::move(d));
  ENGINE_CHECK(idx == out_step, "output step index");
}

template <class T, class Snk>
requires std::derived_from<Snk, Sink<T>>
void output(const std::string& id, const Stream<T>& in, std::shared_ptr<Snk> sink) {
  output<T>(id, in, std::shared_ptr<const Sink<T>>(std::move(sink)));
}

// A sink passed by value: FileSink(path), StdOutSink{}, ...
template <class T, class Snk>
requires std::derived_from<Snk, Sink<T>>
void output(const std::string& id, const Stream<T>& in, Snk sink) {
  output<T>(id, in, std::shared_ptr<const Sink<T>>(std::make_shared<Snk>(std::move(sink))));
}

}  // namespace engine::op
