#pragma once
// The instances of the stateless steps (map, filter, filter_map, flat_map,
// inspect, branch, merge) on one worker. Each is fused with its neighbours by
// direct calls; each is owned by one worker and not thread-safe.

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/dataflow.hpp"
#include "engine/worker_context.hpp"
#include "operators/traits.hpp"
#include "operators/user_code.hpp"

namespace engine::op::detail {

// Base of steps with one input and one output port.
template <class In, class Out>
class UnaryStep : public StepInstance, public Receiver<In> {
 public:
  UnaryStep(WorkerContext& ctx, const std::string& id, std::string_view kind) : ctx_(ctx), id_(id), kind_(kind) {}
  void* input(int) override { return static_cast<Receiver<In>*>(this); }
  void* output(int) override { return &out_; }

 protected:
  // Runs the user's callable on `item` (call_user) with `args`, then `then` on its result.
  template <class F, class Then, class... A>
  bool call(F& f, const In& item, Then&& then, A&&... args) {
    return call_user(ctx_, id_, kind_, item, f, std::forward<Then>(then), std::forward<A>(args)...);
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

template <class In, class Out, class F>
class MapStep final : public UnaryStep<In, Out> {
 public:
  MapStep(WorkerContext& ctx, const std::string& id, std::string_view kind, F f)
      : UnaryStep<In, Out>(ctx, id, kind), f_(std::move(f)) {}
  void push(In&& item) override {
    this->call(
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
    this->call(
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
    this->call(
        f_, item,
        [&](bool keep) {
          if (keep) this->out_.push(std::move(item));
        },
        std::as_const(item));
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
    this->call(
        f_, item,
        [this](auto&& range) {
          for (auto& x : range) this->out_.push(Out(std::move(x)));
        },
        std::move(item));
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
    this->call(
        f_, item, [&] { this->out_.push(std::move(item)); }, std::as_const(item), this->ctx_.index());
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
  };
}

template <class T, class F>
class BranchStep final : public StepInstance, public Receiver<T> {
 public:
  BranchStep(WorkerContext& ctx, const std::string& id, F f) : ctx_(ctx), id_(id), f_(std::move(f)) {}
  void* input(int) override { return static_cast<Receiver<T>*>(this); }
  void* output(int port) override { return port == 0 ? &trues_ : &falses_; }
  void push(T&& item) override {
    call_user(
        ctx_, id_, "branch", item, f_, [&](bool which) { (which ? trues_ : falses_).push(std::move(item)); },
        std::as_const(item));
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

// Adds a one-in one-out step whose instance is `Step` constructed with (ctx,
// id, kind, f) and returns its output as a stream of type `S`.
template <class S, template <class, class, class> class Step, class In, class F>
S add_unary(const Stream<In>& in, const std::string& id, const std::string& kind, F f) {
  using Out = typename S::Item;
  StepDesc d;
  d.id = id;
  d.kind = kind;
  d.inputs.push_back(Dataflow::edge(in, 0));
  d.make = [f](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    const auto& desc = ctx.step(step);
    return std::make_unique<Step<In, Out, F>>(ctx, desc.id, desc.kind, f);
  };
  const int idx = in.graph().add_step(std::move(d));
  return S(&in.graph(), idx, 0);
}

}  // namespace engine::op::detail
