#pragma once
// The instance of stateful_map / stateful_flat_map on one worker: the user's
// mapper applied to each key's state (KeyedState), with the mapper's result
// emitted downstream without a copy. Owned by one worker; not thread-safe.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "engine/exchange.hpp"
#include "operators/keyed_state.hpp"
#include "operators/traits.hpp"
#include "operators/user_code.hpp"

namespace engine::op::detail {

template <class Emit>
struct MapOut {
  using type = Emit;
};
template <class W>
struct MapOut<std::optional<W>> {
  using type = W;
};
// The value type a stateful step emits per key: what the mapper returns
// (unwrapped from optional), or each element of its range for a flat step.
template <class Emit, bool Flat>
struct StatefulValue {
  using type = typename MapOut<Emit>::type;
};
template <class R>
struct StatefulValue<R, true> {
  using type = RangeElement<R>;
};

template <class V, class S, class Emit, bool Flat, class F>
class StatefulStep final : public StepInstance, public KeyedReceiver<V> {
  using Out = KV<typename StatefulValue<Emit, Flat>::type>;

 public:
  StatefulStep(WorkerContext& ctx, const std::string& id, std::string_view kind, F f)
      : ctx_(ctx), id_(id), kind_(kind), f_(std::move(f)), state_(ctx, id) {}
  void* input(int) override { return static_cast<Receiver<HashedKV<V>>*>(this); }
  void* output(int) override { return &out_; }

  void push_keyed(uint64_t hash, KV<V>&& item) override {
    std::string& key = item.first;
    auto& e = state_.find_or_add(hash, key);
    const bool ok = call_user(
        ctx_, id_, kind_, key, f_,
        [&](auto&& out) {
          if constexpr (std::is_reference_v<std::invoke_result_t<F&, std::optional<S>&, V&&>>) {
            // The result may refer into the table, which changed() can reshuffle: copy it first.
            Emit copy(out);
            state_.changed(e, hash, key);
            emit(std::move(key), std::move(copy));
          } else {
            state_.changed(e, hash, key);
            emit(std::move(key), std::forward<decltype(out)>(out));
          }
        },
        e.state, std::move(item.second));
    if (!ok) state_.changed(e, hash, key);
  }

  void stage(EpochWriter& w) override { state_.write_changed(w); }
  void end_epoch(EpochWriter& w) override { state_.write_changed(w); }

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

  std::optional<uint64_t> keys_in_memory() const override { return state_.size(); }

  WorkerContext& ctx_;
  const std::string& id_;
  std::string_view kind_;
  F f_;
  KeyedState<S> state_;
  Output<Out> out_;
};

// Adds the key exchange and the stateful step `id` of kind `kind` after `in`.
template <class V, class S, bool Flat, class F>
auto add_stateful(const std::string& id, const KeyedStream<V>& in, std::string kind, F f) {
  using Emit = std::remove_cvref_t<std::invoke_result_t<F&, std::optional<S>&, V&&>>;
  using Step = StatefulStep<V, S, Emit, Flat, F>;
  using W = typename StatefulValue<Emit, Flat>::type;
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
  const int idx = in.graph().add_step(std::move(d));
  return KeyedStream<W>(&in.graph(), idx, 0);
}

}  // namespace engine::op::detail
