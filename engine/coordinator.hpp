#pragma once
// Coordinator: the progress tracker and commit protocol.
//
// Every worker reports each epoch it completed, with its writes (changed
// state, source offsets, sink positions, dead letters). When all workers have
// reported epoch e, the last reporter commits it: dead letters are appended
// and synced, then one synced RocksDB WriteBatch holds every write of e plus
// the commit record. An epoch in which every worker's inputs were exhausted is
// the final one.
//
// Thread safety: all methods may be called from any worker thread.

#include <atomic>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
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

  // Called once before workers start.
  void set_dead_letters(std::unique_ptr<DeadLetterFile> file) { dead_letters_ = std::move(file); }

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
  };
  void commit(uint64_t epoch, Pending& p);

  RunShared& shared_;
  std::mutex mu_;
  std::map<uint64_t, Pending> pending_;
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
