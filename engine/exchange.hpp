#pragma once
// The exchange step: moves items to the worker that must process them.
// Items for this worker go straight on by a direct call; items for another
// worker are collected into per-destination batches of batch_size() items and
// handed to WorkerContext::send, which puts them on that worker's SPSC ring.
// With one worker nothing is routed: every item goes straight on.

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/dataflow.hpp"
#include "engine/hash.hpp"
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
  // Every partition of this worker returned all its items (not counting tails).
  virtual bool exhausted() const = 0;
  // Whether the source never ends by itself (Source::unbounded).
  virtual bool unbounded() const = 0;
  // Once exhausted: whether some partition left an unterminated tail.
  virtual bool has_tail() const = 0;
  // Worker thread, in the tail epoch only: like poll, over the tails; tails_done() after the last.
  virtual size_t poll_tail(size_t max) = 0;
  virtual bool tails_done() const = 0;
  // Worker thread, when the worker closes its source epoch: the resume state
  // of every partition that changed since the last call.
  virtual void snapshot_offsets(EpochWriter& w) = 0;
};

// A keyed item on its way to a stateful step, with the stable hash of its key
// (engine/hash.hpp): computed once, by the exchange that routes the item, and
// reused by the step's StateTable and for the key group of its snapshot.
template <class V>
struct HashedKV {
  uint64_t hash = 0;
  KV<V> kv;
};

// The input of a stateful step: keyed items with the hash of their key. Items
// routed to their own worker arrive through push_keyed without being wrapped.
template <class V>
class KeyedReceiver : public Receiver<HashedKV<V>> {
 public:
  // Worker thread only; once per item.
  virtual void push_keyed(uint64_t hash, KV<V>&& item) = 0;
  void push(HashedKV<V>&& item) final { push_keyed(item.hash, std::move(item.kv)); }
};

// The items of one batch. Generic: a vector of items.
template <class T>
struct ItemBatch final : Batch {
  struct Scratch {};
  std::vector<T> items;

  size_t size() const { return items.size(); }
  bool full(size_t batch_size) const { return items.size() >= batch_size; }
  void reserve(size_t n) { items.reserve(n); }
  void add(T&& item) { items.push_back(std::move(item)); }
  void clear() { items.clear(); }
  // Receiving side: passes every item, moved, to f.
  template <class F>
  void drain(Scratch&, F&& f) {
    for (auto& item : items) f(std::move(item));
  }
};

// A receiver of strings that can take a whole block of them at once (an
// output step writing lines): string exchanges hand it each batch in one call.
class LineBlockReceiver {
 public:
  virtual ~LineBlockReceiver() = default;
  // Worker thread. `lines` holds `count` strings, each followed by '\n'.
  // Returns false, taking nothing, if the receiver cannot take them as a block.
  virtual bool push_lines(std::string_view lines, size_t count) = 0;
};

// Strings (formatted output lines, mostly) are packed into one buffer, each
// followed by '\n': the sender frees each line itself, and the receiver either
// writes the block as it is (LineBlockReceiver) or rebuilds the strings in one
// reused string. Freeing memory another thread allocated is slow in glibc (it
// goes back to that thread's arena under its lock), and a batch is two
// allocations.
template <>
struct ItemBatch<std::string> final : Batch {
  using Scratch = std::string;
  static constexpr size_t kMaxChars = 1 << 20;
  std::string chars;
  std::vector<size_t> ends;  // end offset of each string's '\n' + 1 in chars

  size_t size() const { return ends.size(); }
  bool full(size_t batch_size) const { return ends.size() >= batch_size || chars.size() >= kMaxChars; }
  void reserve(size_t n) {
    ends.reserve(n);
    chars.reserve(std::min(n * 64, kMaxChars));
  }
  void add(std::string&& item) {
    chars.append(item);
    chars.push_back('\n');
    ends.push_back(chars.size());
  }
  void clear() {
    chars.clear();
    ends.clear();
  }
  // Receiving side: passes every string to f in `scratch`, which keeps its
  // capacity from item to item unless f moves from it.
  template <class F>
  void drain(std::string& scratch, F&& f) {
    size_t begin = 0;
    for (const size_t end : ends) {
      scratch.assign(chars, begin, end - begin - 1);
      f(std::move(scratch));
      begin = end;
    }
  }
};

// The sending and receiving half shared by the exchange steps: per-destination
// batches of batch_size() items of type T, and the output port downstream.
template <class T>
class ExchangeSender : public ExchangeBase {
 public:
  explicit ExchangeSender(WorkerContext& ctx, int exchange)
      : ctx_(ctx),
        exchange_(exchange),
        single_(ctx.workers() == 1),
        batch_size_(ctx.batch_size()),
        pending_(ctx.workers()) {}

  void* output(int) override { return &out_; }

  void deliver(std::unique_ptr<Batch> batch) override {
    auto& items = static_cast<ItemBatch<T>&>(*batch);
    bool done = false;
    if constexpr (std::is_same_v<T, std::string>) {
      if (!probed_) {
        lines_ = dynamic_cast<LineBlockReceiver*>(out_.sole());
        probed_ = true;
      }
      done = lines_ != nullptr && lines_->push_lines(items.chars, items.size());
    }
    if (!done) items.drain(scratch_, [this](T&& item) { out_.push(std::move(item)); });
    recycle(std::move(batch));
  }

  bool flush() override {
    bool sent = false;
    for (uint32_t d = 0; d < pending_.size(); ++d) {
      if (pending_[d] && pending_[d]->size() > 0) {
        send(d);
        sent = true;
      }
    }
    return sent;
  }

 protected:
  // Hands `item` to worker `dest`: a direct call for this worker, else a batch.
  void route_to(uint32_t dest, T&& item) {
    if (dest == ctx_.index()) {
      out_.push(std::move(item));
      return;
    }
    auto& batch = pending_[dest];
    if (!batch) batch = fresh_batch();
    batch->add(std::move(item));
    if (batch->full(batch_size_)) send(dest);
  }

  WorkerContext& ctx_;
  const int exchange_;
  const bool single_;  // one worker: every item stays here, no routing needed
  const size_t batch_size_;
  Output<T> out_;

 private:
  void send(uint32_t dest) {
    pending_[dest]->epoch = ctx_.epoch();
    ctx_.send(exchange_, dest, std::move(pending_[dest]));
  }

  // A batch with room for batch_size() items; reuses one this worker received.
  std::unique_ptr<ItemBatch<T>> fresh_batch() {
    if (!spare_.empty()) {
      auto b = std::move(spare_.back());
      spare_.pop_back();
      return b;
    }
    auto b = std::make_unique<ItemBatch<T>>();
    b->reserve(batch_size_);
    return b;
  }

  void recycle(std::unique_ptr<Batch> batch) {
    if (spare_.size() >= kMaxSpare) return;
    auto* typed = static_cast<ItemBatch<T>*>(batch.release());
    typed->clear();
    typed->epoch = 0;
    spare_.emplace_back(typed);
  }

  static constexpr size_t kMaxSpare = 8;
  std::vector<std::unique_ptr<ItemBatch<T>>> pending_;
  std::vector<std::unique_ptr<ItemBatch<T>>> spare_;
  typename ItemBatch<T>::Scratch scratch_;  // reused by drain()
  LineBlockReceiver* lines_ = nullptr;      // the receiver, if it takes string blocks
  bool probed_ = false;
};

// Route: uint32_t(const T&, WorkerContext&) -> destination worker.
template <class T, class Route>
class ExchangeStep final : public ExchangeSender<T>, public Receiver<T> {
 public:
  ExchangeStep(WorkerContext& ctx, int exchange, Route route)
      : ExchangeSender<T>(ctx, exchange), route_(std::move(route)) {}

  void* input(int) override { return static_cast<Receiver<T>*>(this); }

  void push(T&& item) override {
    if (this->single_) {
      this->out_.push(std::move(item));
      return;
    }
    this->route_to(route_(item, this->ctx_), std::move(item));
  }

 private:
  Route route_;
};

// The exchange in front of a stateful step: hashes each key once, routes by
// key group and passes the hash on with the item.
template <class V>
class KeyExchangeStep final : public ExchangeSender<HashedKV<V>>, public Receiver<KV<V>> {
 public:
  KeyExchangeStep(WorkerContext& ctx, int exchange) : ExchangeSender<HashedKV<V>>(ctx, exchange) {}

  void* input(int) override { return static_cast<Receiver<KV<V>>*>(this); }

  void push(KV<V>&& item) override {
    const uint64_t hash = stable_hash(item.first);
    const uint32_t dest = this->single_ ? 0 : this->ctx_.owner_of_hash(hash);
    if (dest == this->ctx_.index()) {
      if (target_ == nullptr) {
        target_ = dynamic_cast<KeyedReceiver<V>*>(this->out_.sole());
        ENGINE_CHECK(target_ != nullptr, "a key exchange must feed exactly one stateful step");
      }
      target_->push_keyed(hash, std::move(item));
      return;
    }
    this->route_to(dest, HashedKV<V>{hash, std::move(item)});
  }

 private:
  KeyedReceiver<V>* target_ = nullptr;  // the stateful step, found on the first local item
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
  const int idx = in.graph().add_step(std::move(d));
  return Stream<T>(&in.graph(), idx, 0);
}

// Adds the by-key exchange in front of the stateful step `for_step`.
template <class V>
Stream<HashedKV<V>> key_exchange(const Stream<KV<V>>& in, const std::string& for_step) {
  StepDesc d;
  d.kind = "exchange";
  d.id = for_step;
  d.role = StepRole::kExchange;
  d.routing = Routing::kByKey;
  d.inputs.push_back(Dataflow::edge(in, 0));
  d.make = [](WorkerContext& ctx, int step) -> std::unique_ptr<StepInstance> {
    return std::make_unique<KeyExchangeStep<V>>(ctx, ctx.exchange_of_step(step));
  };
  const int idx = in.graph().add_step(std::move(d));
  return Stream<HashedKV<V>>(&in.graph(), idx, 0);
}

}  // namespace engine
