#pragma once
// Coordinator: the progress tracker and commit protocol.
//
// Every worker reports each epoch it completed, with its writes (changed
// state, source offsets, sink positions, sink syncs, dead letters). When all
// workers have reported epoch e, e is complete and is committed: sink output
// is synced, dead letters are appended and synced, then one RocksDB
// WriteBatch holds every write of e plus the commit record and is made
// durable (Store::commit). An epoch in which every worker's inputs were
// exhausted is the final one.
//
// With a store, commits run on a commit thread, in epoch order, so workers go
// on with the next epochs while the disk works (as Flink's asynchronous
// snapshots do); a worker waits only when it would run more than
// kMaxEpochsInFlight epochs ahead of the last commit. Without a store the
// commit (dead letters only) happens inline in the last report.
//
// Thread safety: all methods may be called from any worker thread; start()
// and drain() from the thread that runs the workers.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/write_batch.h>

#include "engine/worker_context.hpp"

namespace engine {

struct RunShared;

// The dead-letter file: JSON lines appended at commit time, so exactly once.
class DeadLetterFile {
 public:
  // Truncates `path` to `keep` bytes (creating it). Throws InputError.
  DeadLetterFile(const std::string& path, uint64_t keep);
  ~DeadLetterFile();
  void append(const std::vector<std::string>& lines, bool durable);
  uint64_t length() const { return length_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t length_ = 0;
};

class Coordinator {
 public:
  // Epochs a worker may complete beyond the last committed one before it waits.
  static constexpr uint64_t kMaxEpochsInFlight = 2;

  explicit Coordinator(RunShared& shared) : shared_(shared) {}
  ~Coordinator();

  // Called once before workers start.
  void set_dead_letters(std::unique_ptr<DeadLetterFile> file) { dead_letters_ = std::move(file); }
  // Called once before workers start: `first_epoch` is the first epoch of the
  // run; with `async`, starts the commit thread.
  void start(uint64_t first_epoch, bool async);
  // After the workers stopped: waits until every complete epoch is committed
  // (or a commit failed) and stops the commit thread.
  void drain();

  // Worker `worker` completed epoch `w.epoch`. Without a commit thread it may
  // commit (and throw StateError).
  void report(uint32_t worker, EpochWriter&& w, bool inputs_done);

  // Worker thread, before it starts `epoch`: waits while that epoch would be
  // more than kMaxEpochsInFlight ahead of the last commit (or until the run fails).
  void wait_for_room(uint64_t epoch);

  // Any thread: re-checks the conditions workers in wait_for_room wait on (after a stop request).
  void wake_waiters();

  // Records a failure in `epoch` (the first error wins). Workers stop before that epoch.
  void fail(uint64_t epoch, std::exception_ptr error);

  // Whether a worker that is about to work on epoch `epoch` must stop instead.
  bool should_exit(uint64_t epoch) const {
    return epoch > final_.load(std::memory_order_acquire) || epoch >= fail_epoch_.load(std::memory_order_acquire);
  }
  bool failed() const { return fail_epoch_.load() != kNever; }
  std::exception_ptr error() const;
  uint64_t committed() const { return committed_.load(); }
  // Makes the final backup (if -b) after all workers stopped.
  void finish();

 private:
  static constexpr uint64_t kNever = ~uint64_t{0};
  struct Pending {
    rocksdb::WriteBatch batch;
    uint32_t reported = 0;
    bool all_done = true;
    std::map<uint32_t, std::vector<std::string>> dead_letters;  // by worker: a deterministic order
    std::vector<std::function<void()>> syncs;
  };
  void commit(uint64_t epoch, Pending& p);
  void commit_loop() noexcept;

  RunShared& shared_;
  std::mutex mu_;
  std::map<uint64_t, Pending> pending_;  // guarded by mu_
  std::map<uint64_t, Pending> ready_;    // complete, waiting for the commit thread; guarded by mu_
  bool draining_ = false;                // guarded by mu_
  std::condition_variable ready_cv_;     // commit thread: an epoch is ready, or drain
  std::condition_variable room_cv_;      // workers: an epoch committed, or the run failed
  std::thread committer_;
  std::mutex commit_mu_;
  std::unique_ptr<DeadLetterFile> dead_letters_;
  std::atomic<uint64_t> final_{kNever};
  std::atomic<uint64_t> fail_epoch_{kNever};
  std::atomic<uint64_t> committed_{0};
  mutable std::mutex error_mu_;
  std::exception_ptr error_;
  double last_backup_ = -1e300;
};

}  // namespace engine
