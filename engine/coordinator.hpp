#pragma once
// Coordinator: the progress tracker and commit protocol.
//
// Every worker reports the epochs it completed, in order: each one with its
// writes (changed state, source offsets, sink positions, sink syncs, dead
// letters) on its own, and runs of epochs without any in one call (with -s 0
// and no -d that is nearly all of them, so an epoch costs no lock). When all
// workers have reported epoch e, e is complete and is committed: sink output
// is synced, dead letters are appended and synced, then one WriteSet
// holds every write of e plus the commit record and is made durable
// (Store::commit, atomically). An epoch in which every worker's inputs were
// exhausted is the final one.
//
// The epoch after the final one is the tail epoch: in it sources read what is
// not an item yet (a last line without its newline), because the run really
// ends there. It is processed and its output written like any other, but it
// is never committed: the next run reads those bytes again, from the start
// of the line, whatever was appended to them meanwhile.
//
// With a store, commits run on a commit thread, in epoch order, so workers go
// on with the next epochs while the disk works (as Flink's asynchronous
// snapshots do). Group commit: when several consecutive epochs are complete,
// the commit thread writes them as one commit of the newest (their writes
// merged, later ones winning; every sink synced once per epoch's position;
// the dead letters in order), so a crash leaves the store at the last group
// and an epoch per item costs one synced write per group, not per item. A
// worker waits only when it is kMaxEpochsInFlight epochs ahead of the last
// commit, or when the complete epochs waiting for the commit hold more than
// kMaxPendingBytes and it is ahead of the slowest worker (which never
// waits, so a wait always ends). Without a store the commit (dead letters
// only) happens inline in the last report.
//
// Thread safety: all methods may be called from any worker thread; start()
// and drain() from the thread that runs the workers.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/append_file.hpp"
#include "engine/store.hpp"
#include "engine/worker_context.hpp"

namespace engine {

struct RunShared;

class Coordinator {
 public:
  // Epochs a worker may complete beyond the last committed one before it waits.
  static constexpr uint64_t kMaxEpochsInFlight = 1 << 16;
  // Bytes of state writes that complete, uncommitted epochs may hold before workers ahead wait.
  static constexpr uint64_t kMaxPendingBytes = 256 << 20;

  // What the commits did, for RunStats.
  struct CommitStats {
    uint64_t commits = 0;    // synced commits (groups)
    uint64_t epochs = 0;     // epochs they covered
    double p50_seconds = 0;  // duration of one commit
    double p99_seconds = 0;
    double max_seconds = 0;
  };

  explicit Coordinator(RunShared& shared) : shared_(shared) {}
  ~Coordinator();

  // Called once before workers start: the dead-letter file, at its committed length.
  void set_dead_letters(std::unique_ptr<AppendFile> file) { dead_letters_ = std::move(file); }
  // Called once before workers start: writes the first commit of the run adds
  // (the identity of every input and output).
  void set_first_commit_writes(std::vector<std::pair<std::string, std::string>> writes) {
    first_writes_ = std::move(writes);
  }
  // Called once before workers start: `first_epoch` is the first epoch of the
  // run; with `async`, starts the commit thread.
  void start(uint64_t first_epoch, bool async);
  // After the workers stopped: waits until every complete epoch is committed
  // (or a commit failed) and stops the commit thread.
  void drain();

  // Worker `worker` completed epoch `w.epoch` (the next one it had not
  // reported). Without a commit thread it may commit (and throw StateError).
  void report(uint32_t worker, EpochWriter&& w);
  // Worker `worker` completed every epoch up to `epoch`, none of them with
  // writes, syncs or dead letters, and its inputs were not done in any.
  void report_empty(uint32_t worker, uint64_t epoch);

  // Worker thread, before it starts `epoch`: whether it may start it now, and
  // waiting until it may (see above; or until the run fails or stops).
  bool has_room(uint64_t epoch) const;
  void wait_for_room(uint64_t epoch);

  // Any thread: re-checks the conditions workers in wait_for_room wait on (after a stop request).
  void wake_waiters();

  // Records a failure in `epoch` (the first error wins). Workers stop before that epoch.
  void fail(uint64_t epoch, std::exception_ptr error);

  // Whether a worker that is about to work on epoch `epoch` must stop instead:
  // it is past the tail epoch, or at or past a failed one.
  bool should_exit(uint64_t epoch) const {
    const uint64_t last = final_.load(std::memory_order_acquire);
    return (last != kNever && epoch > last + 1) || epoch >= fail_epoch_.load(std::memory_order_acquire);
  }
  // Whether `epoch` is the tail epoch: yes / no once every worker reported
  // epoch - 1, unknown before.
  enum class Tail : uint8_t { kUnknown, kYes, kNo };
  Tail tail_epoch(uint64_t epoch) const {
    const uint64_t last = final_.load(std::memory_order_acquire);
    if (last != kNever && epoch == last + 1) return Tail::kYes;
    return completed_.load(std::memory_order_acquire) + 1 >= epoch ? Tail::kNo : Tail::kUnknown;
  }
  // A worker waits for tail_epoch() to be known (it is woken when an epoch completes) / stops waiting.
  void await_tail_decision(bool waiting) { tail_waiters_.fetch_add(waiting ? 1 : -1); }
  bool failed() const { return fail_epoch_.load() != kNever; }
  std::exception_ptr error() const;
  uint64_t committed() const { return committed_.load(); }
  // Makes the final backup (if -b) after all workers stopped.
  void finish();
  // After drain().
  CommitStats commit_stats() const;

 private:
  static constexpr uint64_t kNever = ~uint64_t{0};
  // What the workers reported for one epoch (only epochs with something in them have one).
  struct Pending {
    WriteSet writes;
    uint64_t bytes = 0;                                         // of writes
    std::map<uint32_t, std::vector<std::string>> dead_letters;  // by worker: a deterministic order
    std::vector<std::string> dead_letter_lines;                 // once complete: in order
    std::map<const void*, std::function<void()>> syncs;         // the newest per sink partition
  };
  // Worker `worker` reported every epoch up to `epoch`: epochs that became
  // complete go to the commit thread, or are committed here (after `lk` is released).
  void reported(uint32_t worker, uint64_t epoch, std::unique_lock<std::mutex>& lk);
  // Appends epoch `next` (complete, later than `group`'s last) to `group`.
  static void merge(Pending& group, Pending&& next);
  void commit(uint64_t epoch, Pending& p);
  // The tail epoch: its dead letters are written past the committed length; nothing is committed.
  void finish_tail(Pending& p);
  void append_dead_letters(const Pending& p, bool durable);
  void commit_loop() noexcept;

  RunShared& shared_;
  std::mutex mu_;
  std::map<uint64_t, Pending> pending_;  // reported by some workers; guarded by mu_
  std::map<uint64_t, Pending> ready_;    // complete, waiting for the commit thread; guarded by mu_
  std::vector<uint64_t> reported_;       // by worker: the last epoch it reported; guarded by mu_
  std::vector<uint64_t> first_done_;     // by worker: the first epoch its inputs were done in; guarded by mu_
  // Without a commit thread: complete groups waiting to be committed inline; guarded by mu_.
  struct Inline {
    uint64_t last = 0;           // commit up to this epoch
    Pending group;               // what those epochs hold
    std::vector<Pending> tails;  // epochs past the final one
  };
  std::deque<Inline> inline_;
  bool inline_busy_ = false;          // a worker is committing inline_; guarded by mu_
  bool draining_ = false;             // guarded by mu_
  std::condition_variable ready_cv_;  // commit thread: an epoch is ready, or drain
  std::condition_variable room_cv_;   // workers: an epoch committed, or the run failed
  std::thread committer_;
  mutable std::mutex commit_mu_;
  std::unique_ptr<AppendFile> dead_letters_;
  std::vector<std::pair<std::string, std::string>> first_writes_;  // added to the first commit, then cleared
  std::atomic<uint64_t> final_{kNever};
  std::atomic<uint64_t> completed_{0};      // every worker reported every epoch up to this one
  std::atomic<uint64_t> pending_bytes_{0};  // writes of complete epochs not committed yet
  std::vector<double> commit_seconds_;      // commit thread (commit_mu_)
  uint64_t epochs_committed_ = 0;           // commit_mu_
  std::atomic<int> tail_waiters_{0};
  std::atomic<uint64_t> fail_epoch_{kNever};
  std::atomic<uint64_t> committed_{0};
  mutable std::mutex error_mu_;
  std::exception_ptr error_;
  double last_backup_ = -1e300;
};

}  // namespace engine
