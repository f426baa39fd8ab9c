#pragma once
// RunShared: the state of one run shared by all workers (internal to engine/).
//
// Thread safety: fields set before the workers start are read-only during the
// run; rings are SPSC (see spsc_ring.hpp); parkers, stop and the coordinator
// are thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/coordinator.hpp"
#include "engine/dataflow.hpp"
#include "engine/options.hpp"
#include "engine/parker.hpp"
#include "engine/spsc_ring.hpp"
#include "engine/warnings.hpp"
#include "engine/worker_context.hpp"

namespace engine {

class Store;

struct RunShared {
  RunShared(const Dataflow& f, const RunOptions& o) : flow(f), opts(o), coordinator(*this) {}

  const Dataflow& flow;
  const RunOptions& opts;
  uint32_t workers = 1;
  uint32_t key_groups = 1024;
  Store* store = nullptr;  // nullptr: no recovery
  bool restoring = false;  // the store holds a committed epoch
  uint64_t first_epoch = 1;

  // Exchanges, numbered in step order (a topological order).
  std::vector<int> exchange_of_step;  // -1 for other steps
  std::vector<int> exchange_steps;
  // Per exchange: whether sources feed it directly, and which exchanges feed it.
  std::vector<bool> exchange_after_sources;
  std::vector<std::vector<int>> exchange_after;
  // Per exchange: the steps it feeds that snapshot an epoch when the exchange is done with it.
  std::vector<std::vector<int>> exchange_segment;
  // The steps fed by the sources without an exchange in between (they snapshot
  // an epoch when the sources close it).
  std::vector<int> source_segment;

  // rings[(x * workers + from) * workers + to]
  std::vector<std::unique_ptr<SpscRing<Batch>>> rings;
  SpscRing<Batch>& ring(int x, uint32_t from, uint32_t to) {
    return *rings[(static_cast<size_t>(x) * workers + from) * workers + to];
  }

  std::vector<std::vector<std::string>> parts;  // per step: connector partitions
  std::unique_ptr<Parker[]> parkers;
  Coordinator coordinator;
  WarningLog warnings;
  std::atomic<bool> stop{false};         // SIGINT / SIGTERM: finish the current epoch and exit
  std::atomic<int> stop_signal{0};       // the signal that set `stop`
  std::atomic<bool> interrupted{false};  // stopped before every input was exhausted
  size_t open_parts_per_input = 16;      // source partitions a worker keeps open per input step
  std::atomic<uint32_t> wound_down{0};   // workers that stopped and have nothing left to send
  std::chrono::steady_clock::time_point start;
  std::atomic<int64_t> first_output_ns{-1};
  // Per worker: the epoch in which its inputs were exhausted (~0: not yet; a
  // stop by signal does not count). Set before that epoch's close is sent.
  std::unique_ptr<std::atomic<uint64_t>[]> exhausted_at;
  // Objects a step shares across workers (a window step's watermarks), by step index.
  std::mutex step_shared_mu;
  std::map<int, std::shared_ptr<void>> step_shared;
  // Keys each stateful step held in memory when the run ended, summed over the workers.
  std::mutex keys_mu;
  std::map<std::string, uint64_t> keys_in_memory;

  void wake_all() {
    for (uint32_t w = 0; w < workers; ++w) parkers[w].wake();
  }
};

}  // namespace engine
