#pragma once
// The operator API: builds a Dataflow step by step, the way Bytewax's
// `bytewax.operators` does. Every function takes the step id first and the
// callable last; each returns the typed stream of its output.
//
//   auto lines  = op::input("input", flow, std::make_shared<FileSource>(path));
//   auto events = op::filter_map("deserialize", lines, parse_event);
//   auto keyed  = op::key_on("key", events, [](const Event& e) { return e.user_id; });
//   auto carts  = op::stateful_map("joiner", keyed, update_cart);
//   op::output("output", op::map("format", carts, format_cart), std::make_shared<StdOutSink>());
//
// Steps that call user code catch its exceptions per item and hand them to the
// run's error policy (fail / skip / dead-letter). Take items by const& in
// callables if you want failed items printed in full.

#include <algorithm>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/codec.hpp"
#include "engine/connector.hpp"
#include "engine/dataflow.hpp"
#include "engine/describe.hpp"
#include "engine/exchange.hpp"
#include "engine/state_table.hpp"
#include "engine/store.hpp"
#include "engine/worker_context.hpp"

namespace engine::op {

namespace detail {

// Base of steps with one input and one output port.
template <class In, class Out>
class UnaryStep : public StepInstance, public Receiver<In> {
 public:
  UnaryStep(WorkerContext& ctx, const std::string& id, std::string_view kind) : ctx_(ctx), id_(id), kind_(kind) {}
  void* input(int) override { return static_cast<Receiver<In>*>(this); }
  void* output(int) override { return &out_; }

 protected:
  // Calls user code; on an exception applies the error policy and returns nullopt.
  template <class F, class... A>
  auto call(F& f, const In& item_for_errors, A&&... args) -> std::optional<std::invoke_result_t<F&, A...>> {
    try {
      return f(std::forward<A>(args)...);
    } catch (const StepError&) {
      throw;
    } catch (const std::exception& e) {
      report_step_error(ctx_, id_, kind_, describe_item(item_for_errors), e);
      return std::nullopt;
    }
  }

  // Calls user code and hands its result, neither copied nor moved, to `then`
  // (which pushes it downstream). An exception from the user code goes to the
  // error policy; one from `then` (a downstream step) propagates.
  template <class F, class Then, class... A>
  void call_then(F& f, const In& item_for_errors, Then&& then, A&&... args) {
    bool in_user_code = true;
    try {
      auto&& r = f(std::forward<A>(args)...);
      in_user_code = false;
      then(std::forward<decltype(r)>(r));
    } catch (const StepError&) {
      throw;
    } catch (const std::exception& e) {
      if (!in_user_code) throw;
      report_step_error(ctx_, id_, kind_, describe_item(item_for_errors), e);
    }
  }

  // Pushes a user result downstream: moved if the callable returned a value, copied if a reference.
  template <class R>
  void push_result(R&& r) {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, Out> && !std::is_lvalue_reference_v<R>) {
      out_.push(std::move(r));
    } else {
      out_.push(Out(std::forward<R>(r)));
    }
  }

  WorkerContext& ctx_;
  const std::string& id_;
  std::string_view kind_;
  Output<Out> out_;
};

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class T>
struct IsKV : std::false_type {};
template <class V>
struct IsKV<std::pair<std::string, V>> : std::true_type {
  using Value = V;
};

// Adds a one-in one-out step whose instance is `Step` constructed with (ctx, id, kind, f).
template <template <class, class, class> class Step, class In, class Out, class F>
Stream<Out> add_unary(const Stream<In>& in, const std::string& id, const std::string& kind, F f, bool keyed) {
  StepDesc d;
  d.id = id;
  d.kind = kind;
  d.inputs.push_back(Dataflow::edge(in, 0));
  auto& flow = in.flow();
  d.make = [f](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    const auto& desc = ctx.step(step);
    return std::make_unique<Step<In, Out, F>>(ctx, desc.id, desc.kind, f);
  };
  const int idx = flow.add_step(std::move(d));
  return Stream<Out>(&flow, idx, 0, keyed);
}

template <class In, class Out, class F>
class MapStep final : public UnaryStep<In, Out> {
 public:
  MapStep(WorkerContext& ctx, const std::string& id, std::string_view kind, F f)
      : UnaryStep<In, Out>(ctx, id, kind), f_(std::move(f)) {}
  void push(In&& item) override {
    this->call_then(
        f_, item, [this](auto&& r) { this->push_result(std::forward<decltype(r)>(r)); }, std::move(item));
  }

 private:
  F f_;
};

template <class In, class Out, class F>
class FilterMapStep final : public UnaryStep<In, Out> {
 public:
  FilterMapStep(WorkerContext& ctx, const std::string& id, std::string_view kind, F f)
      : UnaryStep<In, Out>(ctx, id, kind), f_(std::move(f)) {}
  void push(In&& item) override {
    this->call_then(
        f_, item,
        [this](auto&& r) {
          if (r) this->push_result(*std::forward<decltype(r)>(r));
        },
        std::move(item));
  }

 private:
  F f_;
};

template <class In, class Out, class F>
class FilterStep final : public UnaryStep<In, Out> {
 public:
  FilterStep(WorkerContext& ctx, const std::string& id, std::string_view kind, F f)
      : UnaryStep<In, Out>(ctx, id, kind), f_(std::move(f)) {}
  void push(In&& item) override {
    auto keep = this->call(f_, item, std::as_const(item));
    if (keep && *keep) this->out_.push(std::move(item));
  }

 private:
  F f_;
};

template <class In, class Out, class F>
class FlatMapStep final : public UnaryStep<In, Out> {
 public:
  FlatMapStep(WorkerContext& ctx, const std::string& id, std::string_view kind, F f)
      : UnaryStep<In, Out>(ctx, id, kind), f_(std::move(f)) {}
  void push(In&& item) override {
    auto r = this->call(f_, item, std::move(item));
    if (!r) return;
    for (auto& x : *r) this->out_.push(Out(std::move(x)));
  }

 private:
  F f_;
};

template <class In, class Out, class F>
class InspectStep final : public UnaryStep<In, Out> {
 public:
  InspectStep(WorkerContext& ctx, const std::string& id, std::string_view kind, F f)
      : UnaryStep<In, Out>(ctx, id, kind), f_(std::move(f)) {}
  void push(In&& item) override {
    auto ok = this->call(f_, item, std::as_const(item), this->ctx_.index());
    if (ok) this->out_.push(std::move(item));
  }

 private:
  F f_;
};

// Calls f(item) or f(item, worker_index), whichever the callable accepts.
template <class F, class T>
auto inspect_adapter(F f) {
  return [f = std::move(f)](const T& item, uint32_t worker) mutable {
    if constexpr (std::is_invocable_v<F&, const T&, uint32_t>) {
      f(item, worker);
    } else {
      f(item);
    }
    return true;
  };
}

}  // namespace detail

// ---- stateless -------------------------------------------------------------

// f: T -> U.
template <class T, class F, class U = std::remove_cvref_t<std::invoke_result_t<F&, T&&>>>
Stream<U> map(const std::string& id, const Stream<T>& in, F f) {
  return detail::add_unary<detail::MapStep, T, U>(in, id, "map", std::move(f), false);
}

// f: V -> W on the value of a keyed stream; the key is kept.
template <class V, class F, class W = std::remove_cvref_t<std::invoke_result_t<F&, V&&>>>
KeyedStream<W> map_value(const std::string& id, const KeyedStream<V>& in, F f) {
  auto g = [f = std::move(f)](KV<V>&& kv) mutable { return KV<W>(std::move(kv.first), f(std::move(kv.second))); };
  return detail::add_unary<detail::MapStep, KV<V>, KV<W>>(in, id, "map_value", std::move(g), in.keyed());
}

// f: const T& -> bool; keeps items for which it is true.
template <class T, class F>
requires std::predicate<F&, const T&> Stream<T> filter(const std::string& id, const Stream<T>& in, F f) {
  return detail::add_unary<detail::FilterStep, T, T>(in, id, "filter", std::move(f), in.keyed());
}

// f: T -> std::optional<U>; drops nullopt.
template <class T, class F, class R = std::remove_cvref_t<std::invoke_result_t<F&, T&&>>>
requires detail::IsOptional<R>::value Stream<typename R::value_type> filter_map(const std::string& id,
                                                                                const Stream<T>& in, F f) {
  using U = typename R::value_type;
  return detail::add_unary<detail::FilterMapStep, T, U>(in, id, "filter_map", std::move(f), false);
}

// f: T -> a range of U (std::vector<U>, ...); emits each element.
template <class T, class F, class R = std::remove_cvref_t<std::invoke_result_t<F&, T&&>>,
          class U = std::remove_cvref_t<decltype(*std::begin(std::declval<R&>()))>>
Stream<U> flat_map(const std::string& id, const Stream<T>& in, F f) {
  return detail::add_unary<detail::FlatMapStep, T, U>(in, id, "flat_map", std::move(f), false);
}

// f: const T& -> std::string key; the result is a keyed stream of (key, item).
template <class T, class F>
KeyedStream<T> key_on(const std::string& id, const Stream<T>& in, F f) {
  auto g = [f = std::move(f)](T&& item) mutable {
    std::string key = f(std::as_const(item));
    return KV<T>(std::move(key), std::move(item));
  };
  return detail::add_unary<detail::MapStep, T, KV<T>>(in, id, "key_on", std::move(g), true);
}

// f: (const T&) or (const T&, worker index) -> void; passes items through.
template <class T, class F>
Stream<T> inspect(const std::string& id, const Stream<T>& in, F f) {
  return detail::add_unary<detail::InspectStep, T, T>(in, id, "inspect", detail::inspect_adapter<F, T>(std::move(f)),
                                                      in.keyed());
}

template <class T>
struct BranchOut {
  Stream<T> trues;
  Stream<T> falses;
};

namespace detail {
template <class T, class F>
class BranchStep final : public StepInstance, public Receiver<T> {
 public:
  BranchStep(WorkerContext& ctx, const std::string& id, F f) : ctx_(ctx), id_(id), f_(std::move(f)) {}
  void* input(int) override { return static_cast<Receiver<T>*>(this); }
  void* output(int port) override { return port == 0 ? &trues_ : &falses_; }
  void push(T&& item) override {
    bool which;
    try {
      which = f_(std::as_const(item));
    } catch (const StepError&) {
      throw;
    } catch (const std::exception& e) {
      report_step_error(ctx_, id_, "branch", describe_item(item), e);
      return;
    }
    (which ? trues_ : falses_).push(std::move(item));
  }

 private:
  WorkerContext& ctx_;
  const std::string& id_;
  F f_;
  Output<T> trues_, falses_;
};

template <class T>
class MergeStep final : public StepInstance {
  struct Port final : Receiver<T> {
    Output<T>* out = nullptr;
    void push(T&& item) override { out->push(std::move(item)); }
  };

 public:
  explicit MergeStep(size_t inputs) : ports_(inputs) {
    for (auto& p : ports_) p.out = &out_;
  }
  void* input(int port) override { return static_cast<Receiver<T>*>(&ports_[port]); }
  void* output(int) override { return &out_; }

 private:
  std::vector<Port> ports_;
  Output<T> out_;
};
}  // namespace detail

// Splits a stream by a predicate: items where f is true go to .trues.
template <class T, class F>
requires std::predicate<F&, const T&> BranchOut<T> branch(const std::string& id, const Stream<T>& in, F f) {
  StepDesc d;
  d.id = id;
  d.kind = "branch";
  d.outputs = 2;
  d.inputs.push_back(Dataflow::edge(in, 0));
  auto& flow = in.flow();
  d.make = [f](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    return std::make_unique<detail::BranchStep<T, F>>(ctx, ctx.step(step).id, f);
  };
  const int idx = flow.add_step(std::move(d));
  return {Stream<T>(&flow, idx, 0, in.keyed()), Stream<T>(&flow, idx, 1, in.keyed())};
}

// Interleaves several streams of one type into one.
template <class T>
Stream<T> merge(const std::string& id, const std::vector<Stream<T>>& ins) {
  if (ins.empty()) throw ConfigError(fmt::format("step '{}': merge needs at least one stream", id));
  StepDesc d;
  d.id = id;
  d.kind = "merge";
  bool keyed = true;
  for (size_t i = 0; i < ins.size(); ++i) {
    d.inputs.push_back(Dataflow::edge(ins[i], static_cast<int>(i)));
    keyed = keyed && ins[i].keyed();
  }
  const size_t n = ins.size();
  d.make = [n](WorkerContext&, int) -> std::unique_ptr<StepInstance> {
    return std::make_unique<detail::MergeStep<T>>(n);
  };
  auto& flow = ins[0].flow();
  const int idx = flow.add_step(std::move(d));
  return Stream<T>(&flow, idx, 0, keyed);
}

// Spreads items round-robin over all workers (for expensive stateless steps).
template <class T>
Stream<T> redistribute(const std::string& id, const Stream<T>& in) {
  auto route = [](const T&, WorkerContext& ctx) { return ctx.next_round_robin(); };
  auto ex = exchange(in, id, Routing::kRoundRobin, route);
  auto pass = [](T&& x) { return std::move(x); };
  return detail::add_unary<detail::MapStep, T, T>(ex, id, "redistribute", pass, in.keyed());
}

// ---- stateful --------------------------------------------------------------

namespace detail {

inline void require_keyed(bool keyed, const std::string& id, std::string_view kind) {
  if (!keyed) {
    throw ConfigError(
        fmt::format("step '{}': {} needs a keyed stream (items (key, value)); add key_on before it", id, kind));
  }
}

template <class Emit>
struct MapOut {
  using type = Emit;
};
template <class W>
struct MapOut<std::optional<W>> {
  using type = W;
};
// Items a stateful step emits: (key, W) where W is what the mapper returns
// (unwrapped from optional), or each element of its range for a flat step.
template <class Emit, bool Flat>
struct StatefulOut {
  using type = KV<typename MapOut<Emit>::type>;
};
template <class R>
struct StatefulOut<R, true> {
  using type = KV<std::remove_cvref_t<decltype(*std::begin(std::declval<R&>()))>>;
};

// Per-worker state of a stateful step: the states of the keys this worker owns,
// in a StateTable keyed by the hash the exchange computed for routing.
// Restores lazily: a key group's committed state is read from the store the
// first time one of its keys is seen, so a resume starts at once however much
// state is stored. Tracks the keys changed in the current epoch for snapshots.
template <class V, class S, class Emit, bool Flat, class F>
class StatefulStep final : public StepInstance, public KeyedReceiver<V> {
  struct Entry {
    std::optional<S> state;
    bool dirty = false;   // changed in this epoch (recovery on)
    bool stored = false;  // the store holds a committed or staged value for the key
  };
  using Out = typename StatefulOut<Emit, Flat>::type;

 public:
  StatefulStep(WorkerContext& ctx, const std::string& id, std::string_view kind, F f)
      : ctx_(ctx), id_(id), kind_(kind), f_(std::move(f)), track_(ctx.recovery()) {
    if (ctx.restoring()) loaded_.assign(ctx.key_groups(), false);
  }
  void* input(int) override { return static_cast<Receiver<HashedKV<V>>*>(this); }
  void* output(int) override { return &out_; }

  void push_keyed(uint64_t hash, KV<V>&& item) override {
    std::string& key = item.first;
    Entry* e = states_.find(hash, key);
    if (e == nullptr) {
      if (!loaded_.empty()) {
        const uint32_t kg = group_of_hash(hash, ctx_.key_groups());
        if (!loaded_[kg]) {
          load(kg);
          e = states_.find(hash, key);
        }
      }
      if (e == nullptr) e = states_.try_emplace(hash, key).first;
    }
    // As UnaryStep::call_then: the mapper's result goes downstream without a
    // copy; only exceptions from the mapper itself go to the error policy.
    bool in_user_code = true;
    try {
      auto&& out = f_(e->state, std::move(item.second));
      in_user_code = false;
      if constexpr (std::is_reference_v<std::invoke_result_t<F&, std::optional<S>&, V&&>>) {
        // The result may refer into the table, which updated() can reshuffle: copy it first.
        Emit copy(out);
        updated(e, hash, key);
        emit(std::move(key), std::move(copy));
      } else {
        updated(e, hash, key);
        emit(std::move(key), std::move(out));
      }
    } catch (const StepError&) {
      throw;
    } catch (const std::exception& ex) {
      if (!in_user_code) throw;
      report_step_error(ctx_, id_, kind_, describe_item(key), ex);
      updated(e, hash, key);
    }
  }

  void stage(EpochWriter& w) override { write_dirty(w); }
  void end_epoch(EpochWriter& w) override { write_dirty(w); }

 private:
  void emit(std::string&& key, Emit&& out) {
    if constexpr (Flat) {
      for (auto& x : out) out_.push(Out(key, std::move(x)));
    } else if constexpr (IsOptional<Emit>::value) {
      if (out) out_.push(Out(std::move(key), std::move(*out)));
    } else {
      out_.push(Out(std::move(key), std::move(out)));
    }
  }

  // After the mapper ran on `e`: remembers the key for the snapshot, or drops
  // a discarded state at once when there are no snapshots. Every pointer or
  // reference into the table is invalid after (an erase moves other entries).
  void updated(Entry* e, uint64_t hash, const std::string& key) {
    if (track_) {
      if (!e->dirty) {
        e->dirty = true;
        dirty_.push_back(Dirty{group_of_hash(hash, ctx_.key_groups()), hash, key});
      }
    } else if (!e->state) {
      states_.erase(hash, key);
    }
  }

  void load(uint32_t kg) {
    loaded_[kg] = true;
    const size_t prefix = keys::state_prefix(id_, kg).size();
    ctx_.load_group(id_, kg, [&](std::string_view key, std::string_view value) {
      const std::string_view k = key.substr(prefix);
      *states_.try_emplace(stable_hash(k), k).first = Entry{decode_value<S>(value), false, true};
    });
  }

  // Writes the changed keys in store key order (key group, then key), so the
  // commit's sort (and immediate mode's memtable inserts) get sorted input.
  // A discarded key is deleted from the store only if it was ever stored there.
  void write_dirty(EpochWriter& w) {
    std::sort(dirty_.begin(), dirty_.end(),
              [](const Dirty& a, const Dirty& b) { return a.group != b.group ? a.group < b.group : a.key < b.key; });
    for (const auto& [kg, hash, key] : dirty_) {
      Entry* e = states_.find(hash, key);
      if (e->state) {
        w.put_state(id_, kg, key, encode_value(*e->state));
        e->dirty = false;
        e->stored = true;
      } else {
        if (e->stored) w.delete_state(id_, kg, key);
        states_.erase(hash, key);
      }
    }
    dirty_.clear();
  }

  WorkerContext& ctx_;
  const std::string& id_;
  std::string_view kind_;
  F f_;
  const bool track_;  // recovery on: keep changed keys (and discarded ones) until the epoch ends
  StateTable<Entry> states_;
  struct Dirty {
    uint32_t group;
    uint64_t hash;
    std::string key;
  };
  std::vector<Dirty> dirty_;  // keys changed this epoch
  std::vector<bool> loaded_;  // per key group; empty when there is nothing to restore
  Output<Out> out_;
};

template <class V, class S, bool Flat, class F>
auto add_stateful(const std::string& id, const KeyedStream<V>& in, std::string kind, F f) {
  require_keyed(in.keyed(), id, kind);
  using Emit = std::remove_cvref_t<std::invoke_result_t<F&, std::optional<S>&, V&&>>;
  using Step = StatefulStep<V, S, Emit, Flat, F>;
  using Out = typename StatefulOut<Emit, Flat>::type;
  auto ex = key_exchange(in, id);
  StepDesc d;
  d.id = id;
  d.kind = std::move(kind);
  d.role = StepRole::kStateful;
  d.inputs.push_back(Dataflow::edge(ex, 0));
  d.make = [f](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    const auto& desc = ctx.step(step);
    return std::make_unique<Step>(ctx, desc.id, desc.kind, f);
  };
  auto& flow = in.flow();
  const int idx = flow.add_step(std::move(d));
  return Stream<Out>(&flow, idx, 0, true);
}

}  // namespace detail

// f: (std::optional<S>& state, V value) -> W. The state starts as nullopt for a
// new key; set it to nullopt to discard the key's state (it is deleted from the
// snapshot store). Emits (key, W) per item; if W is std::optional, nullopt emits
// nothing. S needs a Codec (engine/codec.hpp) when recovery is on.
template <class S, class V, class F>
auto stateful_map(const std::string& id, const KeyedStream<V>& in, F f) {
  return detail::add_stateful<V, S, false>(id, in, "stateful_map", std::move(f));
}

// f: (std::optional<S>& state, V value) -> a range of W; emits (key, w) for each.
template <class S, class V, class F>
auto stateful_flat_map(const std::string& id, const KeyedStream<V>& in, F f) {
  return detail::add_stateful<V, S, true>(id, in, "stateful_flat_map", std::move(f));
}

// ---- input and output ------------------------------------------------------

namespace detail {

// Reads the source partitions assigned to this worker. A partition costs
// nothing until it is read: it is opened (and its committed resume state
// looked up) when its turn comes, at most open_parts_limit() at a time, and
// closed as soon as it is exhausted, so memory and file descriptors do not
// grow with the number of partitions.
template <class T>
class InputStep final : public InputBase {
 public:
  InputStep(WorkerContext& ctx, const std::string& id, std::shared_ptr<const Source<T>> source, int step)
      : ctx_(ctx), id_(id), source_(std::move(source)), max_open_(std::max<size_t>(1, ctx.open_parts_limit())) {
    const auto& parts = ctx.parts_of(step);
    for (size_t i = 0; i < parts.size(); ++i) {
      if (owner_of_part(i, ctx.workers()) == ctx.index()) parts_.emplace_back().id = &parts[i];
    }
  }
  void* output(int) override { return &out_; }

  // Worker thread: reads up to `max` items round-robin over the open
  // partitions and pushes them downstream. Returns the number of items read.
  size_t poll(size_t max) override {
    refill();
    size_t total = 0;
    for (size_t n = 0; n < open_.size() && total < max;) {
      next_ = next_ % open_.size();
      Part& p = parts_[open_[next_]];
      batch_.size = 0;
      const bool more = p.reader->next_batch(batch_, max - total);
      total += push_batch(p);
      if (more) {
        next_ = (next_ + 1) % open_.size();
        ++n;
        continue;
      }
      close(open_[next_]);
      open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(next_));
      refill();
    }
    ctx_.count_in(total);
    return total;
  }

  bool exhausted() const override { return done_ == parts_.size(); }
  bool has_tail() const override { return !tails_.empty(); }
  bool tails_done() const override { return tails_.empty(); }

  size_t poll_tail(size_t max) override {
    size_t total = 0;
    while (!tails_.empty() && total < max) {
      Part& p = parts_[tails_.front()];
      if (!p.reader) p.reader = source_->build_part(*p.id, p.state);
      batch_.size = 0;
      const bool more = p.reader->next_tail_batch(batch_, max - total);
      total += push_batch(p);
      if (more) continue;
      p.reader.reset();
      tails_.erase(tails_.begin());
    }
    ctx_.count_in(total);
    return total;
  }

  void snapshot_offsets(EpochWriter& w) override {
    for (const size_t i : open_) {
      Part& p = parts_[i];
      std::string s = p.reader->snapshot();
      if (s == p.state) continue;
      w.put_source(id_, *p.id, s);
      p.state = std::move(s);
    }
    for (const size_t i : closed_unsaved_) w.put_source(id_, *parts_[i].id, *parts_[i].state);
    closed_unsaved_.clear();
  }

 private:
  struct Part {
    const std::string* id = nullptr;  // in ctx.parts_of(step), which outlives the run
    std::string name;       // how messages name it; set when opened
    std::unique_ptr<SourcePartition<T>> reader;  // while open
    // The resume state last written to (or read from) the store; nullopt
    // for a partition with nothing committed.
    std::optional<std::string> state;
  };

  // Opens partitions in order until max_open_ are open or none is left.
  void refill() {
    while (open_.size() < max_open_ && next_unopened_ < parts_.size()) {
      Part& p = parts_[next_unopened_];
      p.name = source_->describe_part(*p.id);
      p.state = ctx_.source_resume(id_, *p.id);
      p.reader = source_->build_part(*p.id, p.state);
      open_.push_back(next_unopened_++);
    }
  }

  // An exhausted partition: remembers its resume state (and whether it left a tail) and closes it.
  void close(size_t i) {
    Part& p = parts_[i];
    std::string s = p.reader->snapshot();
    if (s != p.state) {
      p.state = std::move(s);
      closed_unsaved_.push_back(i);
    }
    if (p.reader->has_tail()) tails_.push_back(i);
    p.reader.reset();
    ++done_;
  }

  // Pushes batch_ (read from `p`) downstream, with each item's origin set. Returns its size.
  size_t push_batch(Part& p) {
    auto& origin = ctx_.origin();
    origin.step = &id_;
    origin.source = &p.name;
    for (size_t i = 0; i < batch_.size; ++i) {
      origin.line = batch_.first_line + i;
      out_.push(std::move(batch_.slots[i]));
    }
    origin.step = nullptr;
    origin.source = nullptr;
    return batch_.size;
  }

  WorkerContext& ctx_;
  const std::string& id_;
  std::shared_ptr<const Source<T>> source_;
  const size_t max_open_;
  std::vector<Part> parts_;             // this worker's partitions, in list order
  std::vector<size_t> open_;            // indices into parts_ of the open ones
  size_t next_unopened_ = 0;            // parts_[next_unopened_...] were never opened
  size_t next_ = 0;                     // round-robin position in open_
  size_t done_ = 0;                     // exhausted partitions
  std::vector<size_t> closed_unsaved_;  // exhausted since the last snapshot_offsets, with a new state
  std::vector<size_t> tails_;           // exhausted with an unterminated tail, not read yet
  SourceBatch<T> batch_;
  Output<T> out_;
};

// Writes the sink partitions owned by this worker.
template <class T>
class OutputStep final : public StepInstance, public Receiver<T>, public LineBlockReceiver {
 public:
  OutputStep(WorkerContext& ctx, const std::string& id, std::shared_ptr<const Sink<T>> sink, int step)
      : ctx_(ctx), id_(id), sink_(std::move(sink)), names_(ctx.parts_of(step)) {
    parts_.resize(names_.size());
    for (size_t i = 0; i < names_.size(); ++i) {
      if (owner_of_part(i, ctx.workers()) != ctx.index()) continue;
      parts_[i] = sink_->build_part(names_[i], ctx.sink_resume(id_, names_[i]));
      if (ctx.recovery()) parts_[i]->expect_durable();
    }
  }
  void* input(int) override { return static_cast<Receiver<T>*>(this); }

  void push(T&& item) override {
    const size_t p = parts_.size() == 1 ? 0 : sink_->part_of(item, parts_.size());
    ENGINE_CHECK(parts_[p] != nullptr, "item routed to a sink partition this worker does not own");
    if (!wrote_) {
      wrote_ = true;
      ctx_.note_output();
    }
    parts_[p]->write(std::move(item));
    ctx_.count_out(1);
  }

  // A block of lines from another worker, written as one when the sink has
  // one partition that takes blocks.
  bool push_lines(std::string_view lines, size_t count) override {
    if constexpr (!std::is_same_v<T, std::string>) {
      return false;
    } else {
      if (parts_.size() != 1 || parts_[0] == nullptr || !parts_[0]->write_lines(lines, count)) return false;
      if (!wrote_) {
        wrote_ = true;
        ctx_.note_output();
      }
      ctx_.count_out(count);
      return true;
    }
  }

  void end_epoch(EpochWriter& w) override {
    for (size_t i = 0; i < parts_.size(); ++i) {
      if (!parts_[i]) continue;
      // With recovery the commit thread makes the output durable before it
      // commits the position; the worker does not wait for the disk.
      w.put_sink(id_, names_[i], parts_[i]->snapshot(false));
      if (!ctx_.recovery()) continue;
      if (auto sync = parts_[i]->syncer()) w.syncs.push_back(std::move(sync));
    }
  }

 private:
  WorkerContext& ctx_;
  const std::string& id_;
  std::shared_ptr<const Sink<T>> sink_;
  const std::vector<std::string>& names_;
  std::vector<std::unique_ptr<SinkPartition<T>>> parts_;
  bool wrote_ = false;
};

}  // namespace detail

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
  return Stream<T>(&flow, idx, 0, false);
}

template <class S>
requires(!std::is_const_v<S> && std::derived_from<S, Source<typename S::Item>>) Stream<typename S::Item> input(
    const std::string& id, Dataflow& flow, std::shared_ptr<S> source) {
  return input<typename S::Item>(id, flow, std::shared_ptr<const Source<typename S::Item>>(std::move(source)));
}

// A sink step: items are routed to the worker owning their sink partition.
template <class T>
void output(const std::string& id, const Stream<T>& in, std::shared_ptr<const Sink<T>> sink) {
  auto& flow = in.flow();
  // exchange() adds exactly one step, so the output step comes right after it.
  const int out_step = static_cast<int>(flow.steps().size()) + 1;
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
  const int idx = flow.add_step(std::move(d));
  ENGINE_CHECK(idx == out_step, "output step index");
}

template <class T, class S>
requires(!std::is_const_v<S> && std::derived_from<S, Sink<T>>) void output(const std::string& id, const Stream<T>& in,
                                                                           std::shared_ptr<S> sink) {
  output<T>(id, in, std::shared_ptr<const Sink<T>>(std::move(sink)));
}

}  // namespace engine::op
