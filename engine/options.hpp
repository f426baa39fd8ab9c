#pragma once
// RunOptions: everything `engine run` can set, with its default.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "engine/worker_context.hpp"

namespace engine {

class Store;

enum class ErrorPolicy : uint8_t { kFail, kSkip, kDeadLetter };

// How far a run has come, for RunOptions::on_progress.
struct RunProgress {
  uint64_t items_in = 0;
  uint64_t items_out = 0;
  uint64_t committed_epoch = 0;  // 0: none yet
  bool recovery = false;         // a state dir is in use
};

struct RunOptions {
  // Worker threads. Default: 1.
  uint32_t workers = 1;
  // Recovery store directory; empty = no recovery. Default: "".
  std::string state_dir;
  // Seconds per epoch; 0 = one epoch per input item. Default: 10.
  double snapshot_interval = 10.0;
  // batch: changed keys are written at the end of an epoch; immediate: as they
  // change, to a staging area. Default: batch.
  SnapshotMode snapshot_mode = SnapshotMode::kBatch;
  // Keep a backup of the committed state here; empty = none. Default: "".
  std::string backup_dir;
  // What a user step's exception does. Default: fail.
  ErrorPolicy on_error = ErrorPolicy::kFail;
  // Dead-letter file for ErrorPolicy::kDeadLetter. Default: "".
  std::string dead_letter_path;
  // Key groups of a new state dir (an existing one keeps its own). Default: 1024.
  uint32_t key_groups = 1024;
  // Items per exchange batch. Default: 1024.
  size_t batch_size = 1024;
  // Items read from sources per poll. Default: 1024.
  size_t source_batch = 1024;
  // The most epochs one commit may cover (group commit); 0 = as many as are
  // complete. Default: 0.
  uint64_t max_epochs_per_commit = 0;
  // Outputs write what they buffer at least this often, and whenever a
  // worker goes idle. Default: 10 ms.
  uint32_t flush_interval_ms = 10;
  // Batches per SPSC ring. Default: 64.
  size_t ring_capacity = 64;
  // Statistics file the caller writes after the run; checked before the run
  // starts (writable, not an input). Default: "" (none).
  std::string stats_path;
  // Resume even if the inputs or outputs differ from the committed run's:
  // changed ones start afresh. Default: false (such a resume is refused).
  bool allow_io_change = false;
  // Called about once a second, from a thread of the run, while it is going
  // (the command line draws a live status line with it). Default: none.
  std::function<void(const RunProgress&)> on_progress;
  // Test seam: use this store instead of opening state_dir. Default: nullptr.
  Store* store = nullptr;

  // "" if valid, else a one-line error.
  std::string validate() const;
};

// Parses "fail", "skip" or "dead-letter:PATH" into `opts`; "" or an error line.
std::string parse_error_policy(const std::string& text, RunOptions& opts);

struct RunStats {
  uint64_t items_in = 0;
  uint64_t items_out = 0;
  double seconds = 0;
  double first_item_seconds = -1;  // start of run -> first item at a sink (-1: none)
  double open_seconds = 0;         // opening and checking the state dir
  uint64_t first_epoch = 0;        // epoch the run started in
  uint64_t committed_epoch = 0;    // last committed epoch (0: none)
  bool resumed = false;
  int interrupted_by = 0;         // the signal that stopped the run before its inputs ended (0: not interrupted)
  uint64_t commits = 0;           // synced commits (a group of epochs each)
  uint64_t epochs_committed = 0;  // epochs those commits covered
  double commit_p50_seconds = 0;  // duration of one commit
  double commit_p99_seconds = 0;
  double commit_max_seconds = 0;
  std::map<std::string, uint64_t> keys_in_memory;  // per stateful step at the end, over all workers
};

}  // namespace engine
