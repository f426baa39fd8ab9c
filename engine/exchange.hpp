#pragma once
// The exchange step: moves items to the worker that must process them.
// Items for this worker go straight on by a direct call; items for another
// worker are collected into per-destination batches of batch_size() items and
// handed to WorkerContext::send, which puts them on that worker's SPSC ring.

#include <memory>
#include <utility>
#include <vector>

#include "engine/dataflow.hpp"
#include "engine/worker_context.hpp"

namespace engine {

// Worker-facing side of an exchange instance.
class ExchangeBase : public StepInstance {
 public:
  // Receiving side, worker thread: push every item of a batch from another worker downstream.
  virtual void deliver(std::unique_ptr<Batch> batch) = 0;
  // Sending side, worker thread: send partially filled batches now (before a
  // marker, or when the worker runs out of work). Returns whether it sent any.
  virtual bool flush() = 0;
};

// Worker-facing side of an input step instance.
class InputBase : public StepInstance {
 public:
  // Worker thread: reads at most `max` items and pushes them downstream; returns how many.
  virtual size_t poll(size_t max) = 0;
  virtual bool exhausted() const = 0;
  // Worker thread, when the worker closes its source epoch.
  virtual void snapshot_offsets(EpochWriter& w) = 0;
};

// Route: uint32_t(const T&, WorkerContext&) -> destination worker.
template <class T, class Route>
class ExchangeStep final : public ExchangeBase, public Receiver<T> {
 public:
  ExchangeStep(WorkerContext& ctx, int exchange, Route route)
      : ctx_(ctx), exchange_(exchange), route_(std::move(route)), pending_(ctx.workers()) {}

  void* input(int) override { return static_cast<Receiver<T>*>(this); }
  void* output(int) override { return &out_; }

  void push(T&& item) override {
    const uint32_t dest = route_(item, ctx_);
    if (dest == ctx_.index()) {
      out_.push(std::move(item));
      return;
    }
    auto& batch = pending_[dest];
    if (!batch) {
      batch = std::make_unique<TypedBatch<T>>();
      batch->items.reserve(ctx_.batch_size());
    }
    batch->items.push_back(std::move(item));
    if (batch->items.size() >= ctx_.batch_size()) send(dest);
  }

  void deliver(std::unique_ptr<Batch> batch) override {
    auto& items = static_cast<TypedBatch<T>&>(*batch).items;
    for (auto& item : items) out_.push(std::move(item));
  }

  bool flush() override {
    bool sent = false;
    for (uint32_t d = 0; d < pending_.size(); ++d) {
      if (pending_[d] && !pending_[d]->items.empty()) {
        send(d);
        sent = true;
      }
    }
    return sent;
  }

 private:
  void send(uint32_t dest) {
    pending_[dest]->epoch = ctx_.epoch();
    ctx_.send(exchange_, dest, std::move(pending_[dest]));
  }

  WorkerContext& ctx_;
  const int exchange_;
  Route route_;
  Output<T> out_;
  std::vector<std::unique_ptr<TypedBatch<T>>> pending_;
};

// Adds an exchange step in front of a step that needs its input routed.
template <class T, class Route>
Stream<T> exchange(const Stream<T>& in, const std::string& for_step, Routing routing, Route route) {
  StepDesc d;
  d.kind = "exchange";
  d.id = for_step;  // the step it feeds; exchanges are hidden by visualize
  d.role = StepRole::kExchange;
  d.routing = routing;
  d.inputs.push_back(Dataflow::edge(in, 0));
  d.make = [route](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    return std::make_unique<ExchangeStep<T, Route>>(ctx, ctx.exchange_of_step(step), route);
  };
  const int idx = in.flow().add_step(std::move(d));
  return Stream<T>(&in.flow(), idx, 0, in.keyed());
}

}  // namespace engine
