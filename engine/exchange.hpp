#pragma once
// The exchange step: moves items to the worker that must process them, and
// keeps the epochs aligned (see worker.hpp).
//
// Sending side: an item for another worker joins that worker's batch (of
// batch_size() items), tagged with its epoch; batches go out when full, when
// the epochs before them are closed (every kCloseEvery epochs with -s 0, at
// once otherwise) and whenever the worker idles, each carrying how far its
// channel is closed. An item for this worker goes straight on by a direct
// call if it belongs to the epoch the exchange is delivering, else it waits
// in a local queue for its epoch.
//
// Receiving side: batches popped from the rings wait per channel until the
// exchange delivers their epoch: deliver(e) passes on every item of epoch e
// that has arrived (local ones first, then each channel's, in FIFO order);
// epoch e is done on this worker once every channel closed e and nothing of
// e is left. Downstream steps thus see epoch e complete before any item of
// e + 1. With one worker nothing is routed and nothing waits.

#include <algorithm>
#include <deque>
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

// Worker-facing side of an exchange instance. Worker thread only.
class ExchangeBase : public StepInstance {
 public:
  static constexpr uint64_t kCloseEvery = 64;
  // Receiving side: a batch popped from `sender`'s ring, kept until delivered.
  virtual void receive(uint32_t sender, std::unique_ptr<Batch> batch) = 0;
  // Receiving side: passes on every item of epoch `e` that has arrived; the
  // exchange is delivering `e` from now on. Returns how many it passed.
  virtual size_t deliver(uint64_t e) = 0;
  // Receiving side: every other worker closed `e` and nothing of it waits.
  virtual bool remote_done(uint64_t e) const = 0;
  // Receiving side: batches from `sender` waiting to be delivered.
  virtual size_t waiting(uint32_t sender) const = 0;
  // Receiving side: the highest epoch some other worker closed.
  virtual uint64_t remote_closes() const = 0;
  // Items for this worker waiting for their epoch.
  virtual size_t queued() const = 0;
  // Sending side: this worker pushes nothing more of any epoch <= e.
  virtual void close_local(uint64_t e) = 0;
  // Sending side: sends partial batches and unsent closes now. Returns whether it sent any.
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
  void clear() {
    items.clear();
    segs.clear();
    closes = 0;
  }
  // Receiving side: passes items [begin, end), moved, to f.
  template <class F>
  void drain(Scratch&, size_t begin, size_t end, F&& f) {
    for (size_t i = begin; i < end; ++i) f(std::move(items[i]));
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
    segs.clear();
    closes = 0;
  }
  // Strings [begin, end) as one block, each followed by '\n'.
  std::string_view block(size_t begin, size_t end) const {
    const size_t from = begin == 0 ? 0 : ends[begin - 1];
    return std::string_view(chars).substr(from, ends[end - 1] - from);
  }
  // Receiving side: passes strings [begin, end) to f in `scratch`, which
  // keeps its capacity from item to item unless f moves from it.
  template <class F>
  void drain(std::string& scratch, size_t begin, size_t end, F&& f) {
    size_t from = begin == 0 ? 0 : ends[begin - 1];
    for (size_t i = begin; i < end; ++i) {
      scratch.assign(chars, from, ends[i] - from - 1);
      f(std::move(scratch));
      from = ends[i];
    }
  }
};

// The sending and receiving half shared by the exchange steps: per-
// destination batches of batch_size() items of type T, per-sender channels of
// received batches, the local queue, and the output port downstream.
template <class T>
class ExchangeSender : public ExchangeBase {
 public:
  explicit ExchangeSender(WorkerContext& ctx, int exchange)
      : ctx_(ctx),
        exchange_(exchange),
        single_(ctx.workers() == 1),
        batch_size_(ctx.batch_size()),
        close_every_(ctx.per_item_epochs() ? kCloseEvery : 1),
        pending_(ctx.workers()),
        sent_closes_(ctx.workers(), 0),
        channels_(ctx.workers()) {}

  void* output(int) override { return &out_; }

  void receive(uint32_t sender, std::unique_ptr<Batch> batch) override {
    Channel& c = channels_[sender];
    c.received_closes = std::max(c.received_closes, batch->closes);
    c.batches.emplace_back(static_cast<ItemBatch<T>*>(batch.release()));
  }

  size_t deliver(uint64_t e) override {
    epoch_ = e;
    size_t n = 0;
    while (!local_.empty() && local_.front().first == e) {
      pass(std::move(local_.front().second));
      local_.pop_front();
      ++n;
    }
    for (auto& c : channels_) {
      while (!c.batches.empty()) {
        auto& b = *c.batches.front();
        if (c.seg == b.segs.size()) {
          recycle(std::move(c.batches.front()));
          c.batches.pop_front();
          c.seg = 0;
          continue;
        }
        const auto& seg = b.segs[c.seg];
        if (seg.epoch != e) break;  // a later epoch: it waits
        const size_t begin = c.seg == 0 ? 0 : b.segs[c.seg - 1].end;
        deliver_range(b, begin, seg.end);
        n += seg.end - begin;
        ++c.seg;
      }
    }
    return n;
  }

  bool remote_done(uint64_t e) const override {
    for (uint32_t s = 0; s < channels_.size(); ++s) {
      if (s == ctx_.index()) continue;
      const Channel& c = channels_[s];
      if (c.received_closes < e) return false;
      if (!c.batches.empty()) {
        const auto& b = *c.batches.front();
        if (c.seg < b.segs.size() && b.segs[c.seg].epoch <= e) return false;
      }
    }
    return true;
  }

  size_t waiting(uint32_t sender) const override { return channels_[sender].batches.size(); }
  uint64_t remote_closes() const override {
    uint64_t most = 0;
    for (const auto& c : channels_) most = std::max(most, c.received_closes);
    return most;
  }
  size_t queued() const override { return local_.size() + held_.size(); }

  void close_local(uint64_t e) override {
    closes_ = e;
    if (!held_.empty()) release_held();
    if (single_) return;
    for (uint32_t d = 0; d < pending_.size(); ++d) {
      if (d == ctx_.index()) continue;
      if (pending_[d]) pending_[d]->closes = e;
      if (e - sent_closes_[d] >= close_every_) send(d);
    }
  }

  bool flush() override {
    bool sent = false;
    for (uint32_t d = 0; d < pending_.size(); ++d) {
      if (d == ctx_.index()) continue;
      if ((pending_[d] && pending_[d]->size() > 0) || sent_closes_[d] < closes_) {
        send(d);
        sent = true;
      }
    }
    return sent;
  }

 protected:
  // Hands `item` (of the epoch being pushed now) to worker `dest`. An item of
  // a later epoch than the first one still open here (an exchange fed both by
  // sources and by another exchange's later-running epochs) is held until
  // that epoch closes, so each channel and the local queue stay in epoch order.
  void route_to(uint32_t dest, T&& item) {
    const uint64_t e = ctx_.item_epoch();
    if (e > closes_ + 1) {
      held_.push_back(Held{e, dest, std::move(item)});
      return;
    }
    dispatch(e, dest, std::move(item));
  }

  void dispatch(uint64_t e, uint32_t dest, T&& item) {
    if (dest == ctx_.index()) {
      local(e, std::move(item));
      return;
    }
    auto& batch = pending_[dest];
    if (!batch) batch = fresh_batch();
    batch->add(std::move(item));
    batch->mark(e, batch->size());
    if (batch->full(batch_size_)) send(dest);
  }

  // Whether an item of epoch `e` for this worker may go straight on.
  bool delivering(uint64_t e) const { return e == epoch_ && local_.empty(); }

  // An item for this worker: on now if it is of the epoch being delivered, else queued.
  void local(uint64_t e, T&& item) {
    if (delivering(e)) {
      pass(std::move(item));
    } else {
      local_.emplace_back(e, std::move(item));
    }
  }

  // Passes one item downstream.
  virtual void pass(T&& item) { out_.push(std::move(item)); }

  WorkerContext& ctx_;
  const int exchange_;
  const bool single_;  // one worker: every item stays here, no routing needed
  const size_t batch_size_;
  Output<T> out_;

 private:
  struct Channel {
    std::deque<std::unique_ptr<ItemBatch<T>>> batches;  // received, not yet passed on
    size_t seg = 0;                                     // next segment of batches.front()
    uint64_t received_closes = 0;
  };

  struct Held {
    uint64_t epoch;
    uint32_t dest;
    T item;
  };

  // After a close: held items of the epoch now open go on, in the order they came.
  void release_held() {
    std::deque<Held> later;
    for (auto& h : held_) {
      if (h.epoch == closes_ + 1) {
        dispatch(h.epoch, h.dest, std::move(h.item));
      } else {
        later.push_back(std::move(h));
      }
    }
    held_ = std::move(later);
  }

  void deliver_range(ItemBatch<T>& b, size_t begin, size_t end) {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!probed_) {
        lines_ = dynamic_cast<LineBlockReceiver*>(out_.sole());
        probed_ = true;
      }
      if (lines_ != nullptr && lines_->push_lines(b.block(begin, end), end - begin)) return;
    }
    b.drain(scratch_, begin, end, [this](T&& item) { pass(std::move(item)); });
  }

  void send(uint32_t dest) {
    auto batch = std::move(pending_[dest]);
    if (!batch) batch = fresh_batch();
    batch->closes = closes_;
    sent_closes_[dest] = closes_;
    ctx_.send(exchange_, dest, std::move(batch));
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

  void recycle(std::unique_ptr<ItemBatch<T>> batch) {
    if (spare_.size() >= kMaxSpare) return;
    batch->clear();
    spare_.push_back(std::move(batch));
  }

  static constexpr size_t kMaxSpare = 8;
  const uint64_t close_every_;
  uint64_t epoch_ = 0;   // the epoch being delivered
  uint64_t closes_ = 0;  // this worker pushes nothing more of epochs <= closes_
  std::vector<std::unique_ptr<ItemBatch<T>>> pending_;
  std::vector<uint64_t> sent_closes_;
  std::vector<Channel> channels_;
  std::deque<std::pair<uint64_t, T>> local_;  // items for this worker waiting for their epoch
  std::deque<Held> held_;                     // items of epochs not open here yet
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

  void push(T&& item) override { this->route_to(this->single_ ? 0 : route_(item, this->ctx_), std::move(item)); }

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
      if (this->delivering(this->ctx_.item_epoch())) {
        target()->push_keyed(hash, std::move(item));  // no wrapping on the direct path
        return;
      }
    }
    this->route_to(dest, HashedKV<V>{hash, std::move(item)});
  }

 protected:
  void pass(HashedKV<V>&& item) override { target()->push_keyed(item.hash, std::move(item.kv)); }

 private:
  KeyedReceiver<V>* target() {
    if (target_ == nullptr) {
      target_ = dynamic_cast<KeyedReceiver<V>*>(this->out_.sole());
      ENGINE_CHECK(target_ != nullptr, "a key exchange must feed exactly one stateful step");
    }
    return target_;
  }

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
