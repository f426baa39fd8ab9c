#pragma once
// The snapshot store: one RocksDB database per process under --local-state-dir.
//
// A state dir DIR holds DIR/db (the database), DIR/commits (commit files
// being written) and, only while a new state dir is made, DIR/db.creating
// (built there, fresh or from a backup, then renamed to DIR/db, so a crash
// never leaves a half-made database). An exclusive flock on DIR keeps it to
// one engine process; refusing a dir writes nothing to it.
//
// Key layout (default column family; `step` and `part` are UTF-8 ids, kg is a
// 4-byte big-endian key group, epoch an 8-byte big-endian number):
//
//   M:format                 -> kFormatVersion, decimal
//   M:app                    -> name of the app that owns the state
//   M:steps                  -> its stateful step ids, sorted, '\n'-separated
//   M:key_groups             -> key-group count, fixed by the first run
//   M:commit                 -> commit record (CommitRecord, JSON), absent until
//                               the first commit
//   S step \0 kg key         -> state of `key` in stateful step `step`
//                               (version byte, value_version<State>(), + Codec<State>)
//   I step                   -> identity of the connector of input or output
//                               step `step` (Footprint::identity), written by
//                               every run's first commit
//   O step \0 part           -> source partition resume state (offset); `part`
//                               is the partition id (a file's canonical path)
//   P step \0 part           -> sink partition resume state (position)
//   D:dead_letter            -> length of the dead-letter file (decimal)
//   T epoch S step \0 kg key -> immediate mode: a state change staged during
//                               `epoch`; empty value = key deleted
//
// Durability: the write-ahead log is not used. A commit turns its WriteSet
// (which holds M:commit) into one sorted SST file under DIR/commits/, synced,
// and ingests it: RocksDB installs the file with one synced MANIFEST record,
// which is atomic. A crash before that record leaves the store at the
// previous commit (a leftover file in commits/ is deleted at the next open);
// there is never a log to replay, which keeps a resume fast whatever the size
// of the state (DESIGN.md section 3). Writes outside commits (immediate-mode
// staging, folds) go to the memtable only and become durable with the next
// commit (ingesting over them flushes it) or at close; without that they are
// harmless (invariant 3).
//
// Invariants:
//  1. M:, I, S, O, P and D keys change only in commits: one atomically ingested
//     file that also writes M:commit. So every reader sees exactly one
//     committed epoch and nothing of a later one.
//  2. Only the newest committed version of each key exists; a discarded
//     state is a Delete, not an empty value.
//  3. T keys of epochs <= the committed epoch are folded into S by fold();
//     T keys of later epochs are garbage and are deleted when the store opens.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/stored_number.hpp"
#include "engine/write_set.hpp"

namespace rocksdb {
class DB;
}

namespace engine {

class DirLock;

// 2: partition ids are canonical paths; I keys.
inline constexpr int kFormatVersion = 2;

struct CommitRecord {
  uint64_t epoch = 0;
  uint32_t workers = 0;
  uint32_t key_groups = 0;
  double unix_time = 0;
};

// What a state dir must belong to.
class Store;
struct StoreIdentity {
  std::string app;
  std::vector<std::string> stateful_steps;  // sorted
  uint32_t key_groups = 1024;               // used when the store is created
  // More checks of an existing state dir, given it read-only after the ones
  // above passed and before it is opened for writing: throws to refuse it,
  // untouched. Default: none.
  std::function<void(const Store&)> check;
};

namespace keys {
std::string state_step_prefix(std::string_view step);          // S step \0
std::string state_prefix(std::string_view step, uint32_t kg);  // S step \0 kg
std::string state(std::string_view step, uint32_t kg, std::string_view key);
void append_state(std::string& out, std::string_view step, uint32_t kg, std::string_view key);  // state(), appended
std::string source(std::string_view step, std::string_view part);
std::string sink(std::string_view step, std::string_view part);
std::string io(std::string_view step);
std::string staged_prefix(uint64_t epoch);
inline constexpr std::string_view kCommit = "M:commit";
inline constexpr std::string_view kDeadLetter = "D:dead_letter";
}  // namespace keys

// What a state dir holds, read through the key layout above (engine
// inspect, tests). Source and sink states are per step, then per partition.
struct StoreDescription {
  std::string app;
  std::string format_version;
  uint32_t key_groups = 0;
  std::optional<CommitRecord> commit;
  std::vector<std::string> stateful_steps;
  std::map<std::string, uint64_t> keys_per_step;
  std::map<std::string, std::map<std::string, std::string>> source_offsets;
  std::map<std::string, std::map<std::string, std::string>> sink_positions;
  std::map<std::string, std::string> io;  // step -> connector identity
  std::optional<uint64_t> dead_letter_length;
  uint64_t staged_writes = 0;  // T keys (immediate mode) not folded yet
};

// The interface of the snapshot store; the engine's commit path goes through
// it only (tests wrap it to inject faults into that very path).
//
// Thread safety: all methods may be called from any thread concurrently;
// stage() from workers, commit(), fold_staged() and backup() from the commit
// thread only, one at a time.
class Store {
 public:
  virtual ~Store() = default;
  virtual std::optional<CommitRecord> committed() const = 0;
  virtual uint32_t key_groups() const = 0;
  virtual std::optional<std::string> get(std::string_view key) const = 0;
  // Visits every key starting with `prefix`, in order.
  virtual void scan(std::string_view prefix,
                    const std::function<void(std::string_view key, std::string_view value)>& visit) const = 0;
  // Immediate snapshot mode: stages state writes (S keys) made during
  // `epoch`; they become durable with the next commit and count once that
  // epoch is committed and folded (invariant 3). Throws StateError.
  virtual void stage(uint64_t epoch, const WriteSet& writes) = 0;
  // Writes `writes` and `record` (as M:commit) atomically and durably. Throws StateError.
  virtual void commit(WriteSet&& writes, const CommitRecord& record) = 0;
  // After a commit of `upto`: moves the staged writes of epochs <= upto into place.
  virtual void fold_staged(uint64_t upto) = 0;
  // Writes a backup of the committed state into `backup_dir`. Throws StateError.
  virtual void backup(const std::string& backup_dir) = 0;

  // What the state dir holds (a scan of every key). Throws StateError.
  StoreDescription describe() const;
  // Visits the committed state of stateful step `step` in key group `kg`:
  // (the user's key, the value bytes), in key order.
  void scan_group(std::string_view step, uint32_t kg,
                  const std::function<void(std::string_view key, std::string_view value)>& visit) const;
  // Visits all committed state of stateful step `step`: (key group, key, value bytes).
  void scan_state(std::string_view step,
                  const std::function<void(uint32_t kg, std::string_view key, std::string_view value)>& visit) const;
};

// The RocksDB store. Opening validates the identity and never modifies a state
// dir it refuses.
class RocksStore final : public Store {
 public:
  // Opens or creates `dir`. With `backup_dir`, a missing or empty `dir` is first
  // restored from the newest backup there. Throws StateError with a one-line message.
  static std::unique_ptr<RocksStore> open(const std::string& dir, const StoreIdentity& identity,
                                          const std::string& backup_dir = "");
  // Reads a state dir without any check of its identity, read-only (engine inspect).
  static std::unique_ptr<RocksStore> open_read_only(const std::string& dir);
  ~RocksStore() override;

  std::optional<CommitRecord> committed() const override;
  uint32_t key_groups() const override { return key_groups_; }
  std::optional<std::string> get(std::string_view key) const override;
  void scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& visit) const override;
  void stage(uint64_t epoch, const WriteSet& writes) override;
  void commit(WriteSet&& writes, const CommitRecord& record) override;
  void fold_staged(uint64_t upto) override { fold(upto, false); }
  // Keeps the newest 2 backups.
  void backup(const std::string& backup_dir) override;

  // Flushes and compacts every key into the bottom level, dropping deleted
  // and overwritten versions (maintenance and tests). Throws StateError.
  void compact();

  // The RocksDB database inside state dir `dir`: DIR/db.
  static std::string db_path(const std::string& dir);

  const std::string& dir() const { return dir_; }

 private:
  RocksStore(std::string dir, std::unique_ptr<rocksdb::DB> db);
  // An unsynced write outside the commit protocol (staging, folds, a new dir's identity).
  void write_unsynced(const WriteSet& writes);
  // Makes every write so far durable (a synchronous memtable flush). Throws StateError.
  void persist(const std::string& what);
  // Moves staged changes of epochs <= `upto` into S keys and deletes all staged
  // changes of those epochs (and, when `drop_later`, of every later epoch).
  void fold(uint64_t upto, bool drop_later);
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  // Builds a new state dir next to `dir` (from the newest backup, if any) and
  // renames it into place: a crash leaves either no state dir or a whole one.
  static void create(const std::string& dir, const StoreIdentity& identity, const std::string& backup_dir);
  // Refuses a state dir that is not this app's (see StoreIdentity), reading it only.
  static void validate_identity(const std::string& db_dir, const std::string& dir, const StoreIdentity& identity);

  uint32_t key_groups_ = 0;
  bool read_only_ = false;
  std::atomic<bool> unpersisted_{false};  // write() since the last persist()
  std::unique_ptr<DirLock> lock_;         // held while a writable store is open
};

std::string encode_commit(const CommitRecord& record);
CommitRecord decode_commit(std::string_view bytes);

}  // namespace engine
