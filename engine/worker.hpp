#pragma once
// Worker: one thread running a copy of every step of the flow.
//
// Epochs are aligned (as in Flink's aligned checkpoints): a worker works on
// one epoch at a time. It reads its source partitions until it closes the
// epoch (interval elapsed, one item with -s 0, or inputs exhausted), then, for
// every exchange in topological order, sends an epoch marker on each outgoing
// channel once everything feeding that exchange is closed. A channel that
// delivered its marker is not read again until the epoch completes, so items
// of the next epoch never mix into this one. After the final epoch comes the
// tail epoch (see coordinator.hpp), in which sources read their unterminated
// tails; it is never committed. When the sources and every
// exchange are closed, the epoch is complete on this worker: stateful steps
// and sinks write their snapshot and the worker reports to the Coordinator.
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
  uint64_t epoch() const { return cur_; }
  WorkerContext& context() { return ctx_; }
  void add_dead_letter(std::string line) { dead_letters_.push_back(std::move(line)); }

 private:
  void build();
  void loop();
  void begin_epoch(uint64_t epoch);
  void close_sources();
  bool poll_sources();
  bool poll_tails();
  void await_tail_decision(bool waiting);
  bool inputs_exhausted() const;
  bool inputs_have_tail() const;
  bool drain();
  bool retry_overflow();
  bool advance();
  void complete_epoch();
  void stage();
  void idle();
  void flush_outputs();
  bool has_work();
  void wind_down() noexcept;

  RunShared& sh_;
  const uint32_t me_;
  const uint32_t n_;
  WorkerContext ctx_;
  std::vector<std::unique_ptr<StepInstance>> steps_;
  std::vector<InputBase*> inputs_;
  std::vector<ExchangeBase*> exchanges_;  // by exchange index

  uint64_t cur_ = 0;
  bool sources_closed_ = false;
  bool inputs_done_ = false;                          // inputs exhausted (or stopped) when the source epoch closed
  bool tail_ = false;                                 // cur_ is the tail epoch: sources read their unterminated tails
  bool sources_idle_ = false;                         // the last poll of the (unbounded) sources found nothing
  std::chrono::steady_clock::time_point next_flush_;  // outputs flush at the latest then
  bool awaiting_tail_ = false;  // exhausted with tails: waiting to learn whether cur_ is the tail epoch
  std::chrono::steady_clock::time_point deadline_;
  std::vector<bool> sent_;                                    // [x] marker of cur_ sent
  std::vector<uint32_t> received_;                            // [x] markers of cur_ received
  std::vector<bool> closed_;                                  // [x]
  std::vector<bool> blocked_;                                 // [x * n + s] channel delivered its marker
  std::vector<std::deque<std::unique_ptr<Batch>>> overflow_;  // [x * n + d]
  size_t overflow_total_ = 0;
  EpochWriter writer_;
  std::vector<std::string> dead_letters_;
  bool immediate_ = false;
};

}  // namespace engine
