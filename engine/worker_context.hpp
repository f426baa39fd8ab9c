#pragma once
// WorkerContext: what a step instance on one worker may ask of the runtime.
// Owned by one worker; not thread-safe (only its worker thread calls it).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/context.hpp"
#include "engine/dataflow.hpp"
#include "engine/hash.hpp"
#include "engine/write_set.hpp"

namespace engine {

struct RunShared;
class Worker;

// A batch of items crossing from one worker to another on one channel (an
// exchange, from one worker to one other). Epoch boundaries travel inside it:
// items [segs[i-1].end, segs[i].end) belong to epoch segs[i].epoch, epochs
// increasing; after the batch, the channel carries nothing more of any epoch
// <= closes. A batch may hold no items and only move `closes` on.
struct Batch {
  virtual ~Batch() = default;
  struct Segment {
    uint64_t epoch;
    uint32_t end;
  };
  std::vector<Segment> segs;
  uint64_t closes = 0;
  // The epoch of item `i`'s segment begins the search at segment `seg`.
  void mark(uint64_t epoch, size_t items) {
    if (segs.empty() || segs.back().epoch != epoch) {
      segs.push_back(Segment{epoch, static_cast<uint32_t>(items)});
    } else {
      segs.back().end = static_cast<uint32_t>(items);
    }
  }
};

enum class SnapshotMode : uint8_t { kBatch, kImmediate };

// Writes of one worker for one epoch, handed to the commit coordinator.
class EpochWriter {
 public:
  void put_state(std::string_view step, uint32_t kg, std::string_view key, std::string_view value);
  // Puts the state of `key` whose value encode(out) appends to out: encoded
  // straight into the write set.
  template <class Encode>
  void put_state_encoded(std::string_view step, uint32_t kg, std::string_view key, Encode&& encode) {
    writes.add_built([&](std::string& out) { append_state_key(out, step, kg, key); },
                     [&](std::string& out) {
                       encode(out);
                       return true;
                     });
  }
  void delete_state(std::string_view step, uint32_t kg, std::string_view key);
  void put_source(std::string_view step, std::string_view part, std::string_view state);
  void put_sink(std::string_view step, std::string_view part, std::string_view state);

  WriteSet writes;
  std::vector<std::string> dead_letters;  // JSON lines
  bool inputs_done = false;               // this worker's inputs were exhausted (or stopped) when it closed the epoch
  // Make sink output durable before the commit, by sink partition: a group
  // commit runs only the newest sync of each partition (it covers the older).
  std::vector<std::pair<const void*, std::function<void()>>> syncs;
  bool staging = false;  // immediate mode: state writes are staged now
  uint64_t epoch = 0;

  // Nothing to commit or to say about this epoch.
  bool empty() const { return writes.empty() && dead_letters.empty() && syncs.empty() && !inputs_done; }

 private:
  static void append_state_key(std::string& out, std::string_view step, uint32_t kg, std::string_view key);
};

class WorkerContext {
 public:
  WorkerContext(RunShared& shared, Worker& worker, uint32_t index);

  uint32_t index() const { return index_; }
  uint32_t workers() const;
  uint32_t key_groups() const;
  size_t batch_size() const;
  SnapshotMode snapshot_mode() const;
  uint64_t epoch() const;

  // Recovery is on (-d given).
  bool recovery() const;
  // A committed epoch exists: stateful steps must load their keys' state lazily.
  bool restoring() const;
  // Visits the committed state of `step` in key group `kg`: (the user's key, value bytes).
  void load_group(std::string_view step, uint32_t kg,
                  const std::function<void(std::string_view key, std::string_view value)>& visit) const;
  std::optional<std::string> source_resume(std::string_view step, std::string_view part) const;
  std::optional<std::string> sink_resume(std::string_view step, std::string_view part) const;
  // Partition ids of the input/output step at `step_index` (all workers').
  const std::vector<std::string>& parts_of(int step_index) const;
  // Source partitions an input step may keep open at once on this worker.
  size_t open_parts_limit() const;

  // Routing.
  uint32_t owner_of_key(std::string_view key) const { return owner_of_hash(stable_hash(key)); }
  uint32_t owner_of_hash(uint64_t hash) const {
    return owner_of_group(group_of_hash(hash, key_groups_), key_groups_, workers_);
  }
  uint32_t next_round_robin() { return rr_ = (rr_ + 1) % workers_; }

  // Hands a batch to worker `dest` for exchange `exchange` (FIFO per channel;
  // never blocks: a full ring queues it on this worker and pauses its sources).
  void send(int exchange, uint32_t dest, std::unique_ptr<Batch> batch);
  // The epoch of the item being pushed through the steps now: the sources'
  // epoch while they are polled, an exchange's while it delivers.
  uint64_t item_epoch() const { return item_epoch_; }
  void set_item_epoch(uint64_t e) { item_epoch_ = e; }
  // Epochs of -s 0 are closed in bulk: an exchange sends their boundaries
  // with the data every kCloseEvery epochs (and whenever its worker idles).
  bool per_item_epochs() const;

  ItemOrigin& origin() { return origin_; }
  // Worker thread only (a single writer, so no read-modify-write is needed).
  void count_in(uint64_t n) {
    items_in_.store(items_in_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void count_out(uint64_t n) {
    items_out_.store(items_out_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // Any thread (the status line reads them while the worker runs).
  uint64_t items_in() const { return items_in_.load(std::memory_order_relaxed); }
  uint64_t items_out() const { return items_out_.load(std::memory_order_relaxed); }

  const StepDesc& step(int index) const;
  // Index of the exchange step `step_index` among the flow's exchanges.
  int exchange_of_step(int step_index) const;
  // First time an item reaches a sink, for "time to first item" statistics.
  void note_output();
  // Dead-letter policy: a JSON line written when the current epoch commits.
  void add_dead_letter(std::string line);

  // Every worker's inputs were exhausted in epoch `e` or earlier (so nothing
  // more will come after e, but a tail epoch). A stop by signal does not count.
  bool inputs_exhausted_by(uint64_t e) const;
  // The object step `step_index` shares across the workers of this run, made
  // by make() for the first worker that asks. Any worker thread.
  std::shared_ptr<void> shared_for_step(int step_index, const std::function<std::shared_ptr<void>()>& make);

  RunShared& shared() { return shared_; }

 private:
  RunShared& shared_;
  Worker& worker_;
  const uint32_t index_;
  const uint32_t workers_;
  const uint32_t key_groups_;
  uint32_t rr_ = 0;
  uint64_t item_epoch_ = 0;
  ItemOrigin origin_;
  std::atomic<uint64_t> items_in_{0};
  std::atomic<uint64_t> items_out_{0};
};

}  // namespace engine
