#pragma once
// Coordinator: the progress tracker and commit protocol.
//
// Every worker reports each epoch it completed, with its writes (changed
// state, source offsets, sink positions, dead letters) and the syncs its sinks
// deferred. When all workers have reported epoch e, e is committed: the sink
// files are synced, dead letters are appended and synced, then one RocksDB
// WriteBatch holds every write of e plus the commit record and is made durable
// (Store::commit). An epoch in which every worker's inputs were exhausted is
// the final one.
//
// With a store, commits run on a committer thread, in epoch order, so workers
// go on with the next epoch while the disk syncs; report() blocks while
// kMaxQueued complete epochs wait for it (backpressure). Without a store the
// last reporter commits at once (nothing to make durable).
//
// Thread safety: all methods may be called from any worker thread; start()
// and stop() from the thread that runs the workers.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <cstdint>
#include <exception>
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
  explicit Coordinator(RunShared& shared) : shared_(shared) {}

  ~Coordinator();

  // Called once before workers start.
  void set_dead_letters(std::unique_ptr<DeadLetterFile> file) { dead_letters_ = std::move(file); }
  // Before the workers start: starts the committer thread if there is a store.
  void start();
  // After every worker has stopped: commits the complete epochs still queued
  // (unless a failure came first) and stops the committer thread.
  void stop();

  // Worker `worker` completed epoch `w.epoch`. May commit (and throw StateError).
  void report(uint32_t worker, EpochWriter&& w, bool inputs_done);

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
    std::vector<std::function<void()>> syncs;                    // deferred sink syncs
  };
  static constexpr size_t kMaxQueued = 2;
  void commit(uint64_t epoch, Pending& p);
  void committer_loop();

  RunShared& shared_;
  std::mutex mu_;
  std::map<uint64_t, Pending> pending_;
  std::mutex commit_mu_;
  // Committer thread: complete epochs in order, guarded by mu_.
  std::condition_variable queue_cv_;  // committer: an epoch is queued or stopping
  std::condition_variable room_cv_;   // reporters: the queue has room
  std::deque<std::pair<uint64_t, Pending>> queue_;
  bool stopping_ = false;
  bool async_ = false;
  std::thread committer_;
  std::unique_ptr<DeadLetterFile> dead_letters_;
  std::atomic<uint64_t> final_{kNever};
  std::atomic<uint64_t> fail_epoch_{kNever};
  std::atomic<uint64_t> committed_{0};
  mutable std::mutex error_mu_;
  std::exception_ptr error_;
  double last_backup_ = -1e300;
};

}  // namespace engine
