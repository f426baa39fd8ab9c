#pragma once
// Worker: one thread running a copy of every step of the flow.
//
// Epochs are aligned but pipelined. The sources produce epoch after epoch
// (closing one when the interval elapsed, after each item with -s 0, or when
// the inputs end) without waiting for the other workers; every item carries
// the epoch it was read in. Each exchange delivers one epoch at a time: every
// item of epoch e that reached this worker, from its own steps (queued while
// the exchange is still on an earlier epoch) and from every other worker (in
// batches that carry their epoch boundaries), and it is done with e once its
// local upstream and every other worker closed e. The steps behind an
// exchange thus see all of epoch e before anything of e + 1: when the
// exchange is done with e, they write their snapshot of e (stateful state,
// sink positions). Epoch e is complete on this worker once its sources closed
// e and every exchange is done with it; the worker then reports it to the
// Coordinator, in epoch order. No round trip per epoch: with -s 0 thousands of
// epochs are in flight, their boundaries travel in bulk.
//
// A failure in epoch f (a step's error under --on-error fail, a source that
// cannot be read) stops the sources at f and the exchanges before f; the
// epochs before f still complete everywhere and commit. After the final
// epoch comes the tail epoch (see coordinator.hpp), in which sources read
// their unterminated tails; it is never committed.
//
// Owned by its thread; other threads only push into its rings and wake it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "engine/exchange.hpp"
#include "engine/run_shared.hpp"
#include "engine/worker_context.hpp"

namespace engine {

class Worker {
 public:
  Worker(RunShared& shared, uint32_t index);
  ~Worker();

  // Thread body. Never throws: failures go to the Coordinator.
  void run() noexcept;

  // Called through WorkerContext.
  void send(int exchange, uint32_t dest, std::unique_ptr<Batch> batch);
  WorkerContext& context() { return ctx_; }
  void add_dead_letter(std::string line) { writer(ctx_.item_epoch()).dead_letters.push_back(std::move(line)); }

 private:
  // Sources may be ahead of the slowest exchange by this many epochs, and
  // exchanges may queue this many local items, before the sources pause.
  static constexpr uint64_t kMaxEpochsAhead = 1 << 8;
  static constexpr size_t kMaxQueued = 1 << 16;
  // Received batches a channel may keep waiting before its ring is left full.
  static constexpr size_t kMaxWaiting = 64;
  // Complete empty epochs reported in one call (see report_complete).
  static constexpr uint64_t kEmptyRun = 64;

  void build();
  // Adds the keys each stateful step holds to RunShared::keys_in_memory.
  void count_keys();
  void loop();
  bool step();  // one round of the loop; whether anything happened
  EpochWriter& writer(uint64_t epoch);

  // Sources.
  void begin_src_epoch();
  bool sources_may_run() const;
  bool poll_sources();
  bool poll_exhausted();
  void close_sources();
  bool inputs_exhausted() const;
  bool inputs_have_tail() const;
  void await_tail_decision(bool waiting);

  // Exchanges and epochs.
  bool receive();
  bool advance();
  uint64_t upstream_closed(size_t x) const;
  bool propagate_closes();
  bool report_complete();
  bool flush_empty();  // reports the complete epochs not reported yet (all empty)
  uint64_t lowest_open() const;
  void stage();
  void stage_segment(size_t x, uint64_t epoch);

  bool retry_overflow();
  void idle();
  bool has_work();
  void flush_outputs();
  void wind_down() noexcept;

  RunShared& sh_;
  const uint32_t me_;
  const uint32_t n_;
  WorkerContext ctx_;
  std::vector<std::unique_ptr<StepInstance>> steps_;
  std::vector<InputBase*> inputs_;
  std::vector<ExchangeBase*> exchanges_;  // by exchange index, a topological order
  bool immediate_ = false;
  bool per_item_ = false;

  // Sources: they are producing src_epoch_; every earlier epoch is closed.
  uint64_t src_epoch_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  bool tail_ = false;           // src_epoch_ is the tail epoch: sources read their unterminated tails
  bool awaiting_tail_ = false;  // exhausted: waiting to learn what src_epoch_ is
  bool sources_idle_ = false;   // the last poll of the (unbounded) sources found nothing

  // Exchanges: done_[x] is the last epoch exchange x is done with;
  // closed_[x] what was passed to its close_local().
  std::vector<uint64_t> done_;
  std::vector<uint64_t> closed_;
  uint64_t next_report_ = 0;         // the next epoch to report
  uint64_t empty_through_ = 0;       // empty epochs up to this one are complete, not reported yet (0: none)
  uint64_t empty_reported_ = 0;      // the last empty run reported ended here
  std::deque<EpochWriter> writers_;  // epochs next_report_, next_report_ + 1, ...

  std::vector<std::deque<std::unique_ptr<Batch>>> overflow_;  // [x * n + d]
  size_t overflow_total_ = 0;
  std::chrono::steady_clock::time_point next_flush_;  // outputs flush at the latest then
};

}  // namespace engine
