#pragma once
// The instances of input and output steps on one worker: InputStep reads the
// source partitions this worker owns, OutputStep writes the sink partitions
// it owns. Owned by one worker; not thread-safe.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/connector.hpp"
#include "engine/errors.hpp"
#include "engine/exchange.hpp"
#include "engine/hash.hpp"
#include "engine/worker_context.hpp"

namespace engine::op::detail {

// Reads the source partitions assigned to this worker. A partition costs
// nothing until it is read: it is opened (and its committed resume state
// looked up) when its turn comes, at most open_parts_limit() at a time, and
// closed as soon as it is exhausted, so memory and file descriptors do not
// grow with the number of partitions.
template <class T>
class InputStep final : public InputBase {
 public:
  InputStep(WorkerContext& ctx, const std::string& id, std::shared_ptr<const Source<T>> source, int step)
      : ctx_(ctx),
        id_(id),
        source_(std::move(source)),
        max_open_(
            std::max<size_t>(1, source_->max_open_parts() != 0 ? source_->max_open_parts() : ctx.open_parts_limit())) {
    const auto& parts = ctx.parts_of(step);
    for (size_t i = 0; i < parts.size(); ++i) {
      if (owner_of_part(i, ctx.workers()) == ctx.index()) parts_.emplace_back().id = &parts[i];
    }
    if (source_->discovers_parts()) known_.insert(parts.begin(), parts.end());
  }
  void* output(int) override { return &out_; }

  // Worker thread: reads up to `max` items round-robin over the open
  // partitions and pushes them downstream. Returns the number of items read.
  size_t poll(size_t max) override {
    if (!known_.empty()) discover();
    refill();
    size_t total = 0;
    size_t parked = 0;
    for (size_t n = 0; n < open_.size() && total < max;) {
      next_ = next_ % open_.size();
      Part& p = parts_[open_[next_]];
      batch_.clear();
      const bool more = p.reader->next_batch(batch_, max - total);
      total += push_batch(p);
      if (more && !(batch_.size == 0 && waiting() && parked < max_open_)) {
        next_ = (next_ + 1) % open_.size();
        ++n;
        continue;
      }
      if (more) {
        // An idle unbounded partition (a followed file at its end) makes room
        // for one that waits: partitions take turns being open.
        park(open_[next_]);
        ++parked;
      } else {
        close(open_[next_]);
      }
      open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(next_));
      refill();
    }
    ctx_.count_in(total);
    return total;
  }

  bool exhausted() const override { return done_ == parts_.size() && known_.empty(); }
  bool unbounded() const override { return source_->unbounded(); }
  bool has_tail() const override { return !tails_.empty(); }
  bool tails_done() const override { return tails_.empty(); }

  size_t poll_tail(size_t max) override {
    size_t total = 0;
    while (!tails_.empty() && total < max) {
      Part& p = parts_[tails_.front()];
      if (!p.reader) p.reader = source_->build_part(*p.id, p.state);
      batch_.clear();
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
    const std::string* id = nullptr;             // in ctx.parts_of(step), which outlives the run
    std::string name;                            // how messages name it; set when opened
    std::unique_ptr<SourcePartition<T>> reader;  // while open
    // The resume state last written to (or read from) the store; nullopt
    // for a partition with nothing committed.
    std::optional<std::string> state;
  };

  // Whether partitions wait to be opened.
  bool waiting() const { return next_unopened_ < parts_.size() || !parked_.empty(); }

  // Opens partitions (never opened ones first, then parked ones) until
  // max_open_ are open or none is left.
  void refill() {
    while (open_.size() < max_open_ && next_unopened_ < parts_.size()) {
      Part& p = parts_[next_unopened_];
      p.name = source_->describe_part(*p.id);
      p.state = ctx_.source_resume(id_, *p.id);
      p.reader = source_->build_part(*p.id, p.state);
      open_.push_back(next_unopened_++);
    }
    while (open_.size() < max_open_ && !parked_.empty()) {
      const size_t i = parked_.front();
      parked_.pop_front();
      parts_[i].reader = source_->build_part(*parts_[i].id, parts_[i].state);
      open_.push_back(i);
    }
  }

  // Closes an idle partition that is not exhausted, to be opened again later where it stopped.
  void park(size_t i) {
    Part& p = parts_[i];
    std::string s = p.reader->snapshot();
    if (s != p.state) {
      p.state = std::move(s);
      closed_unsaved_.push_back(i);
    }
    p.reader.reset();
    parked_.push_back(i);
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

  // A followed source, once a second: partitions that appeared since the
  // run started (new files in a directory) join the worker that owns them by
  // the hash of their id, which every worker computes alike.
  void discover() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_discovery_ < std::chrono::seconds(1)) return;
    last_discovery_ = now;
    std::vector<std::string> ids;
    try {
      ids = source_->list_parts();
    } catch (const InputError&) {
      return;  // the directory is gone or empty for now
    }
    for (auto& id : ids) {
      if (!known_.insert(id).second) continue;
      if (stable_hash(id) % ctx_.workers() != ctx_.index()) continue;
      discovered_.push_back(std::move(id));
      parts_.emplace_back().id = &discovered_.back();
    }
  }

  // Pushes batch_ (read from `p`) downstream, with each item's origin set. Returns its size.
  size_t push_batch(Part& p) {
    auto& origin = ctx_.origin();
    origin.step = &id_;
    origin.source = &p.name;
    origin.part = p.id;
    origin.unit = source_->position_name();
    for (size_t i = 0; i < batch_.size; ++i) {
      origin.line = batch_.position(i);
      out_.push(std::move(batch_.slots[i]));
    }
    origin.step = nullptr;
    origin.source = nullptr;
    origin.part = nullptr;
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
  std::deque<size_t> parked_;           // idle, not exhausted, closed for others to take a turn
  std::set<std::string> known_;         // followed sources that discover partitions: every id seen
  std::deque<std::string> discovered_;  // ids of partitions discovered here (stable addresses)
  std::chrono::steady_clock::time_point last_discovery_ = std::chrono::steady_clock::now();
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
    dirty_.resize(names_.size());
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
    dirty_[p] = 1;
    ctx_.count_out(1);
  }

  // A block of lines from another worker, written as one when the sink has
  // one partition that takes blocks.
  bool push_lines(std::string_view lines, size_t count) override {
    if constexpr (!std::is_same_v<T, std::string>) {
      return false;
    } else {
      if (parts_.size() != 1 || parts_[0] == nullptr || !parts_[0]->write_lines(lines, count)) return false;
      dirty_[0] = 1;
      if (!wrote_) {
        wrote_ = true;
        ctx_.note_output();
      }
      ctx_.count_out(count);
      return true;
    }
  }

  void flush_output() override {
    for (auto& p : parts_) {
      if (p) p->flush();
    }
  }
  void finish() override {
    for (auto& p : parts_) {
      if (p) p->finish();
    }
  }

  // With recovery: the position of every partition that moved, and the sync
  // of every partition written in the epoch (a Kafka partition's position
  // never moves, its messages must still be acknowledged). The commit thread
  // makes the output durable before it commits the position; the worker does
  // not wait for the disk.
  void end_epoch(EpochWriter& w) override {
    if (!ctx_.recovery()) return;
    if (written_.empty()) written_.resize(parts_.size());
    for (size_t i = 0; i < parts_.size(); ++i) {
      if (!parts_[i]) continue;
      std::string position = parts_[i]->snapshot(false);
      const bool moved = !written_[i] || *written_[i] != position;
      if (moved) {
        w.put_sink(id_, names_[i], position);
        written_[i] = std::move(position);
      }
      if (moved || dirty_[i]) {
        if (auto sync = parts_[i]->syncer()) w.syncs.emplace_back(parts_[i].get(), std::move(sync));
      }
      dirty_[i] = 0;
    }
  }

 private:
  WorkerContext& ctx_;
  const std::string& id_;
  std::shared_ptr<const Sink<T>> sink_;
  const std::vector<std::string>& names_;
  std::vector<std::unique_ptr<SinkPartition<T>>> parts_;
  std::vector<std::optional<std::string>> written_;  // the position last put, by partition
  std::vector<char> dirty_;                          // written to since the last end_epoch, by partition
  bool wrote_ = false;
};

}  // namespace engine::op::detail
