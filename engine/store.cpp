#include "engine/store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/backup_engine.h>
#include <rocksdb/write_batch.h>
#include <nlohmann/json.hpp>

#include "engine/errors.hpp"
#include "engine/paths.hpp"

namespace engine {
namespace fs = std::filesystem;

namespace keys {
namespace {
void put_be32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}
void put_be64(std::string& out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}
std::string tagged(char tag, std::string_view step, std::string_view rest) {
  std::string k;
  k.reserve(2 + step.size() + rest.size());
  k.push_back(tag);
  k.append(step);
  k.push_back('\0');
  k.append(rest);
  return k;
}
}  // namespace

std::string state_step_prefix(std::string_view step) { return tagged('S', step, {}); }

void append_state(std::string& out, std::string_view step, uint32_t kg, std::string_view key) {
  out.push_back('S');
  out.append(step);
  out.push_back('\0');
  put_be32(out, kg);
  out.append(key);
}
std::string state_prefix(std::string_view step, uint32_t kg) {
  std::string k;
  append_state(k, step, kg, {});
  return k;
}
std::string state(std::string_view step, uint32_t kg, std::string_view key) {
  std::string k;
  k.reserve(6 + step.size() + key.size());
  append_state(k, step, kg, key);
  return k;
}
std::string source(std::string_view step, std::string_view part) { return tagged('O', step, part); }
std::string sink(std::string_view step, std::string_view part) { return tagged('P', step, part); }
std::string io(std::string_view step) { return "I" + std::string(step); }
std::string staged_prefix(uint64_t epoch) {
  std::string k = "T";
  put_be64(k, epoch);
  return k;
}
}  // namespace keys

namespace {

constexpr std::string_view kFormatKey = "M:format";
// Inside a state dir: the RocksDB database, where a new one is built before it
// is renamed into place, and commit files being written.
constexpr const char* kDbDir = "db";
constexpr const char* kStagingDir = "db.creating";
constexpr const char* kIngestDir = "commits";
constexpr std::string_view kAppKey = "M:app";
constexpr std::string_view kStepsKey = "M:steps";
constexpr std::string_view kKeyGroupsKey = "M:key_groups";

// Discards RocksDB's info log so that opening a state dir to check it writes nothing.
class NullLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

rocksdb::Options store_options() {
  rocksdb::Options o;
  o.create_if_missing = false;
  o.info_log = std::make_shared<NullLogger>();
  o.max_background_jobs = 2;
  o.compression = rocksdb::kNoCompression;
  o.write_buffer_size = 32 << 20;
  o.bytes_per_sync = 1 << 20;  // SST files are written back as they are written: the sync at the end is short
  o.keep_log_file_num = 2;
  o.max_manifest_file_size = 16 << 20;
  // Every epoch's file spans all key groups, so it lands in L0 and is merged
  // into L1 with all of L1: merging more files at once rewrites L1 less often.
  o.level0_file_num_compaction_trigger = 8;
  o.level0_slowdown_writes_trigger = 24;
  o.level0_stop_writes_trigger = 40;
  // State is read a key group at a time (a prefix scan, which a bloom filter
  // does not serve) and point lookups are for a few small records: no filter,
  // whose hashing of every key would cost each commit and each compaction.
  // Larger blocks: fewer index entries and block trailers per epoch file.
  rocksdb::BlockBasedTableOptions t;
  t.block_size = 16 << 10;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

void check(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return;
  throw StateError(fmt::format("{}: {}", what, s.ToString()));
}

std::string join_steps(const std::vector<std::string>& steps) {
  std::string out;
  for (const auto& s : steps) {
    if (!out.empty()) out += '\n';
    out += s;
  }
  return out;
}

std::string describe_steps(std::string_view joined) {
  std::string s(joined);
  std::replace(s.begin(), s.end(), '\n', ',');
  return s.empty() ? "none" : s;
}

std::optional<std::string> read_key(rocksdb::DB& db, std::string_view key) {
  std::string value;
  auto s = db.Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  check(s, fmt::format("reading {}", key));
  return value;
}

}  // namespace

// Refuses a state dir that is not this app's, without writing to it. `db` is
// the database inside state dir `dir`.
void RocksStore::validate_identity(const std::string& db_dir_name, const std::string& dir, const StoreIdentity& id) {
  const fs::path db_dir(db_dir_name);
  if (!fs::exists(db_dir / "CURRENT")) {
    throw StateError(fmt::format("{} is not an engine state dir (no database in it); refusing to touch it", dir));
  }
  rocksdb::DB* raw = nullptr;
  check(rocksdb::DB::OpenForReadOnly(store_options(), db_dir.string(), &raw),
        fmt::format("cannot read state dir {}", dir));
  std::unique_ptr<rocksdb::DB> db(raw);
  const auto format = read_key(*db, kFormatKey);
  const auto app = read_key(*db, kAppKey);
  if (!format || !app) throw StateError(fmt::format("{} is not an engine state dir (no format record)", dir));
  if (*format != std::to_string(kFormatVersion)) {
    throw StateError(
        fmt::format("state dir {} of app '{}' has format version {}, this engine reads version {}; "
                    "use the engine that wrote it or another -d",
                    dir, *app, *format, kFormatVersion));
  }
  if (*app != id.app) {
    throw StateError(fmt::format("state dir {} belongs to app '{}', not '{}'; use another -d", dir, *app, id.app));
  }
  const auto steps = read_key(*db, kStepsKey).value_or("");
  if (steps != join_steps(id.stateful_steps)) {
    throw StateError(fmt::format(
        "state dir {} of app '{}' holds stateful steps [{}] but the flow has [{}]; its state cannot be mapped", dir,
        *app, describe_steps(steps), describe_steps(join_steps(id.stateful_steps))));
  }
  if (id.check) {
    RocksStore view(dir, std::move(db));
    view.read_only_ = true;
    id.check(view);
  }
}

namespace {

// Restores the newest backup in `backup_dir` into `dir`; false if there is none.
bool restore_from_backup(const std::string& dir, const std::string& backup_dir) {
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  check(rocksdb::BackupEngineReadOnly::Open(rocksdb::Env::Default(), rocksdb::BackupEngineOptions(backup_dir), &raw),
        fmt::format("cannot open backup dir {}", backup_dir));
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
  std::vector<rocksdb::BackupInfo> infos;
  engine->GetBackupInfo(&infos);
  if (infos.empty()) return false;
  fs::create_directories(dir);
  check(engine->RestoreDBFromLatestBackup(dir, dir), fmt::format("restoring {} from backup {}", dir, backup_dir));
  return true;
}

// Whether a state dir holds nothing but what the engine itself puts there
// before its database exists (so it can be made a state dir).
bool may_become_state_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  if (!fs::is_directory(dir, ec)) throw StateError(fmt::format("state dir {} is not a directory", dir));
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (name != kStagingDir && name != kIngestDir) return false;
  }
  return true;
}

void sync_or_throw(const fs::path& dir) {
  if (const int err = sync_dir(dir.string()); err != 0) {
    throw StateError(fmt::format("cannot sync {}: {}", dir.string(), std::strerror(err)));
  }
}

}  // namespace

// An exclusive flock(2) on the state dir itself: one engine process per state
// dir, taken before anything in it is created or changed; it writes nothing.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) throw StateError(fmt::format("cannot open state dir {}: {}", dir, std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd_);
      if (err == EWOULDBLOCK) throw StateError(fmt::format("state dir {} is in use by another engine process", dir));
      throw StateError(fmt::format("cannot lock state dir {}: {}", dir, std::strerror(err)));
    }
  }
  ~DirLock() { ::close(fd_); }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

std::string RocksStore::db_path(const std::string& dir) { return (fs::path(dir) / kDbDir).string(); }

std::string encode_commit(const CommitRecord& r) {
  return nlohmann::json{{"epoch", r.epoch}, {"workers", r.workers}, {"key_groups", r.key_groups}, {"time", r.unix_time}}
      .dump();
}

CommitRecord decode_commit(std::string_view bytes) {
  auto j = nlohmann::json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw StateError("corrupt commit record in state dir");
  CommitRecord r;
  r.epoch = j.value("epoch", uint64_t{0});
  r.workers = j.value("workers", uint32_t{0});
  r.key_groups = j.value("key_groups", uint32_t{0});
  r.unix_time = j.value("time", 0.0);
  return r;
}

RocksStore::RocksStore(std::string dir, std::unique_ptr<rocksdb::DB> db) : dir_(std::move(dir)), db_(std::move(db)) {}

RocksStore::~RocksStore() {
  if (!db_) return;
  // Persists folds of staged state done since the last commit; losing them is
  // harmless (open() folds again), so a failure here is ignored.
  if (!read_only_) db_->Flush(rocksdb::FlushOptions()).PermitUncheckedError();
  db_->Close().PermitUncheckedError();  // closing after a failure: nothing more to report
  db_.reset();
  lock_.reset();  // after the database is closed
}

void RocksStore::create(const std::string& dir, const StoreIdentity& id, const std::string& backup_dir) {
  const fs::path staging = fs::path(dir) / kStagingDir;
  std::error_code ec;
  fs::remove_all(staging, ec);  // left by a crash during an earlier creation
  fs::create_directories(staging, ec);
  if (ec) throw StateError(fmt::format("cannot create state dir {}: {}", dir, ec.message()));
  const bool restored = !backup_dir.empty() && fs::exists(backup_dir) && restore_from_backup(staging, backup_dir);
  if (restored) {
    try {
      validate_identity(staging.string(), fmt::format("{} (restored from backup {})", dir, backup_dir), id);
    } catch (...) {
      fs::remove_all(staging, ec);  // another app's backup: leave the state dir as it was
      throw;
    }
  } else {
    auto options = store_options();
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    check(rocksdb::DB::Open(options, staging.string(), &raw), fmt::format("cannot create state dir {}", dir));
    std::unique_ptr<RocksStore> store(new RocksStore(dir, std::unique_ptr<rocksdb::DB>(raw)));
    store->write_unsynced({{std::string(kFormatKey), std::to_string(kFormatVersion)},
                           {std::string(kAppKey), id.app},
                           {std::string(kStepsKey), join_steps(id.stateful_steps)},
                           {std::string(kKeyGroupsKey), std::to_string(id.key_groups)}});
    store->persist(fmt::format("initialising state dir {}", dir));
  }
  fs::rename(staging, fs::path(dir) / kDbDir, ec);
  if (ec) throw StateError(fmt::format("cannot create state dir {}: {}", dir, ec.message()));
  sync_or_throw(dir);
}

std::unique_ptr<RocksStore> RocksStore::open(const std::string& dir, const StoreIdentity& id,
                                             const std::string& backup_dir) {
  const fs::path db_dir = db_path(dir);
  std::error_code ec;
  const bool fresh = !fs::exists(db_dir, ec);
  if (fresh) {
    if (!may_become_state_dir(dir)) {
      throw StateError(fmt::format("{} is not an engine state dir (no db/ in it); refusing to touch it", dir));
    }
    const bool existed = fs::exists(dir, ec);
    fs::create_directories(dir, ec);
    if (ec) throw StateError(fmt::format("cannot create state dir {}: {}", dir, ec.message()));
    // A new state dir's own entry must survive a power loss with what is committed in it.
    if (!existed) {
      sync_or_throw(fs::path(canonical_path(dir)).parent_path());
    }
  }
  auto lock = std::make_unique<DirLock>(dir);
  if (fresh) create(dir, id, backup_dir);
  validate_identity(db_dir.string(), dir, id);

  // Compaction runs below the workers' priority: on a busy machine it falls
  // behind and later merges more files at once (L0 is bounded by the stop
  // trigger above, at which commits wait, not workers).
  rocksdb::Env::Default()->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW);
  rocksdb::DB* raw = nullptr;
  check(rocksdb::DB::Open(store_options(), db_dir.string(), &raw), fmt::format("cannot open state dir {}", dir));
  std::unique_ptr<RocksStore> store(new RocksStore(dir, std::unique_ptr<rocksdb::DB>(raw)));
  store->lock_ = std::move(lock);

  const auto kg = read_key(*store->db_, kKeyGroupsKey);
  if (!kg) throw StateError(fmt::format("{} is not an engine state dir (no key-group count)", dir));
  store->key_groups_ = static_cast<uint32_t>(parse_stored_number(*kg, "the key-group count"));
  if (store->key_groups_ == 0) throw StateError(fmt::format("state dir {} has a key-group count of 0", dir));
  const auto c = store->committed();
  store->fold(c ? c->epoch : 0, /*drop_later=*/true);
  // Commit files a crash left before their ingestion are garbage.
  const fs::path ingest = fs::path(dir) / kIngestDir;
  fs::remove_all(ingest, ec);
  fs::create_directories(ingest, ec);
  if (ec) throw StateError(fmt::format("cannot create {}: {}", ingest.string(), ec.message()));
  return store;
}

std::unique_ptr<RocksStore> RocksStore::open_read_only(const std::string& dir) {
  const fs::path db_dir = db_path(dir);
  if (!fs::exists(db_dir / "CURRENT")) {
    throw StateError(fmt::format("{} is not an engine state dir (no database in it)", dir));
  }
  rocksdb::DB* raw = nullptr;
  check(rocksdb::DB::OpenForReadOnly(store_options(), db_dir.string(), &raw),
        fmt::format("cannot read state dir {}", dir));
  std::unique_ptr<RocksStore> store(new RocksStore(dir, std::unique_ptr<rocksdb::DB>(raw)));
  store->read_only_ = true;
  const auto kg = read_key(*store->db_, kKeyGroupsKey);
  if (!kg) throw StateError(fmt::format("{} is not an engine state dir (no key-group count)", dir));
  store->key_groups_ = static_cast<uint32_t>(parse_stored_number(*kg, "the key-group count"));
  return store;
}

std::optional<CommitRecord> RocksStore::committed() const {
  auto v = read_key(*db_, keys::kCommit);
  if (!v) return std::nullopt;
  return decode_commit(*v);
}

std::optional<std::string> RocksStore::get(std::string_view key) const { return read_key(*db_, key); }

void RocksStore::scan(std::string_view prefix,
                      const std::function<void(std::string_view, std::string_view)>& visit) const {
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
    visit(std::string_view(it->key().data(), it->key().size()),
          std::string_view(it->value().data(), it->value().size()));
  }
  check(it->status(), "scanning state");
}

void RocksStore::write_unsynced(const WriteSet& writes) {
  rocksdb::WriteBatch batch;
  for (const auto& [key, value] : writes) check(value ? batch.Put(key, *value) : batch.Delete(key), "batch");
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // durable only through persist(), see the header
  check(db_->Write(wo, &batch), fmt::format("writing state dir {}", dir_));
  // Set after the write has landed: a commit that clears the flag and then
  // flushes is sure to flush this write (a flag set before it could be
  // cleared by a flush that switched memtables before the write landed).
  unpersisted_.store(true);
}

namespace {
// The indices of `writes` in key order, writes of one key in their order.
// Writes come as a few sorted runs (each worker's changed state is sorted, a
// group commit concatenates epochs), so the runs are found and merged: a
// commit of a million keys costs a few comparisons per key, not a full sort.
std::vector<uint32_t> key_order(const WriteSet& writes) {
  std::vector<uint32_t> order(writes.size());
  std::iota(order.begin(), order.end(), 0u);
  std::vector<size_t> runs{0};
  for (size_t i = 1; i < writes.size(); ++i) {
    if (writes.key(i) < writes.key(i - 1)) runs.push_back(i);
  }
  runs.push_back(writes.size());
  const auto by_key = [&](uint32_t a, uint32_t b) { return writes.key(a) < writes.key(b); };
  while (runs.size() > 2) {
    std::vector<size_t> merged{0};
    for (size_t r = 0; r + 2 < runs.size(); r += 2) {
      std::inplace_merge(order.begin() + static_cast<std::ptrdiff_t>(runs[r]),
                         order.begin() + static_cast<std::ptrdiff_t>(runs[r + 1]),
                         order.begin() + static_cast<std::ptrdiff_t>(runs[r + 2]), by_key);
      merged.push_back(runs[r + 2]);
    }
    if (runs.size() % 2 == 0) merged.push_back(runs.back());  // an odd run out waits for the next round
    runs = std::move(merged);
  }
  return order;
}
}  // namespace

void RocksStore::stage(uint64_t epoch, const WriteSet& writes) {
  const std::string prefix = keys::staged_prefix(epoch);
  WriteSet staged;
  staged.reserve(writes.size(), writes.bytes() + writes.size() * prefix.size());
  for (const auto& [key, value] : writes) {
    staged.add_built(
        [&](std::string& out) {
          out.append(prefix);
          out.append(key);
        },
        [&](std::string& out) {
          out.append(value.value_or(std::string_view()));  // empty: a delete (no state value is empty)
          return true;
        });
  }
  write_unsynced(staged);
}

void RocksStore::persist(const std::string& what) {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  fo.allow_write_stall = true;
  check(db_->Flush(fo), what);
}

void RocksStore::commit(WriteSet&& writes, const CommitRecord& record) {
  writes.add(keys::kCommit, encode_commit(record));
  const std::string what = fmt::format("committing epoch {} to {}", record.epoch, dir_);
  // The epoch becomes one sorted SST file, ingested atomically: no memtable
  // inserts (a skip list of random keys costs more than the whole sort), and
  // durable once the ingestion's MANIFEST record is synced.
  // Staged state (immediate mode) is only in the memtable; it must be durable
  // before a commit record that refers to it.
  if (unpersisted_.exchange(false)) persist(what);
  // In key order, the last write of a key winning.
  const std::vector<uint32_t> order = key_order(writes);
  const std::string file = (fs::path(dir_) / kIngestDir / fmt::format("epoch-{}.sst", record.epoch)).string();
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), store_options(), nullptr, /*invalidate_page_cache=*/false);
  check(writer.Open(file), what);
  for (size_t i = 0; i < order.size(); ++i) {
    if (i + 1 < order.size() && writes.key(order[i + 1]) == writes.key(order[i])) continue;
    const auto [key, value] = writes[order[i]];
    check(value ? writer.Put(key, *value) : writer.Delete(key), what);
  }
  check(writer.Finish(), what);
  rocksdb::IngestExternalFileOptions io;
  io.move_files = true;
  io.write_global_seqno = false;
  check(db_->IngestExternalFile({file}, io), what);
}

void RocksStore::fold(uint64_t upto, bool drop_later) {
  WriteSet b;
  scan("T", [&](std::string_view key, std::string_view value) {
    const auto epoch_bytes = key.substr(1, 8);
    uint64_t epoch = 0;
    for (char c : epoch_bytes) epoch = (epoch << 8) | static_cast<uint8_t>(c);
    if (epoch <= upto) {
      const auto state_key = key.substr(9);  // "S step \0 kg key"
      if (value.empty()) {
        b.add(state_key, std::nullopt);
      } else {
        b.add(state_key, value);
      }
    } else if (!drop_later) {
      return;
    }
    b.add(key, std::nullopt);
  });
  if (!b.empty()) write_unsynced(b);
}

void RocksStore::compact() {
  check(db_->Flush(rocksdb::FlushOptions()), fmt::format("flushing {}", dir_));
  rocksdb::CompactRangeOptions cro;
  cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  check(db_->CompactRange(cro, nullptr, nullptr), fmt::format("compacting {}", dir_));
}

void RocksStore::backup(const std::string& backup_dir) {
  rocksdb::BackupEngine* raw = nullptr;
  rocksdb::BackupEngineOptions bo(backup_dir);
  bo.sync = true;
  check(rocksdb::BackupEngine::Open(rocksdb::Env::Default(), bo, &raw),
        fmt::format("cannot open backup dir {}", backup_dir));
  std::unique_ptr<rocksdb::BackupEngine> engine(raw);
  check(engine->CreateNewBackup(db_.get(), /*flush_before_backup=*/true), fmt::format("backup to {}", backup_dir));
  check(engine->PurgeOldBackups(2), fmt::format("pruning backups in {}", backup_dir));
}

}  // namespace engine

namespace engine {

void Store::scan_group(std::string_view step, uint32_t kg,
                       const std::function<void(std::string_view, std::string_view)>& visit) const {
  const std::string prefix = keys::state_prefix(step, kg);
  scan(prefix, [&](std::string_view key, std::string_view value) { visit(key.substr(prefix.size()), value); });
}

void Store::scan_state(std::string_view step,
                       const std::function<void(uint32_t, std::string_view, std::string_view)>& visit) const {
  const std::string prefix = keys::state_step_prefix(step);
  scan(prefix, [&](std::string_view key, std::string_view value) {
    uint32_t kg = 0;
    for (const char c : key.substr(prefix.size(), 4)) kg = (kg << 8) | static_cast<uint8_t>(c);
    visit(kg, key.substr(prefix.size() + 4), value);
  });
}

StoreDescription Store::describe() const {
  StoreDescription d;
  d.key_groups = key_groups();
  d.commit = committed();
  d.format_version = get(kFormatKey).value_or("?");
  d.app = get(kAppKey).value_or("?");
  const std::string steps = get(kStepsKey).value_or("");
  for (size_t start = 0; start < steps.size();) {
    const size_t nl = std::min(steps.find('\n', start), steps.size());
    d.stateful_steps.push_back(steps.substr(start, nl - start));
    start = nl + 1;
  }
  // Splits "X step \0 rest" into step and rest.
  auto split = [](std::string_view key) {
    const auto zero = key.find('\0');
    return std::pair{std::string(key.substr(1, zero - 1)), std::string(key.substr(zero + 1))};
  };
  for (const auto& step : d.stateful_steps) {
    uint64_t n = 0;
    scan(keys::state_step_prefix(step), [&](std::string_view, std::string_view) { ++n; });
    d.keys_per_step[step] = n;
  }
  scan("O", [&](std::string_view key, std::string_view value) {
    auto [step, part] = split(key);
    d.source_offsets[step][part] = std::string(value);
  });
  scan("P", [&](std::string_view key, std::string_view value) {
    auto [step, part] = split(key);
    d.sink_positions[step][part] = std::string(value);
  });
  scan("I", [&](std::string_view key, std::string_view value) { d.io[std::string(key.substr(1))] = value; });
  if (auto v = get(keys::kDeadLetter)) d.dead_letter_length = parse_stored_number(*v, "the dead-letter file length");
  scan("T", [&](std::string_view, std::string_view) { ++d.staged_writes; });
  return d;
}

}  // namespace engine
