// The snapshot store: refusals of state dirs that are not this
// flow's (another app, another format version, changed stateful step ids),
// unreadable and corrupted dirs (a StateError, never an abort, the dir left
// as it was), bounded state (one row per live key however many epochs ran;
// discarded state deleted), lazy restore (a resume reads only the key groups
// of the keys it touches) and restore from a backup.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include "engine/errors.hpp"
#include "engine/hash.hpp"
#include "engine/runtime.hpp"
#include "engine/store.hpp"
#include "operators/operators.hpp"
#include "tests/support/flow_testing.hpp"

namespace {

namespace fs = std::filesystem;
namespace op = engine::op;
using flow_testing::collected;
using flow_testing::error_message_of;
using flow_testing::expect_consistent;
using flow_testing::expect_finished;
using flow_testing::fingerprint;
using flow_testing::Parts;
using flow_testing::read_state;
using flow_testing::recovery_options;
using flow_testing::reopen_sum_committed;
using flow_testing::run_sum;
using flow_testing::scan_all;
using flow_testing::state_step_prefix;
using flow_testing::sum_identity;
using flow_testing::sum_items;
using flow_testing::sum_reference;
using flow_testing::SumState;
using flow_testing::TempDir;

// A finished keyed-sum state dir at `dir` over a few items.
Parts make_state_dir(const std::string& dir) {
  const Parts parts = sum_items(2, 10, 3, 1);
  auto out = collected<std::string>();
  run_sum(recovery_options(dir, 2, 0), parts, out);
  return parts;
}

// Checks a refusal: one line, naming what the test asks for.
void expect_one_line_naming(const std::string& msg, const std::vector<std::string>& words) {
  ASSERT_FALSE(msg.empty());
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' missing in: " << msg;
}

// ---- refusals --------------------------------------------------------------------

TEST(RefusalTest, StateDirOfAnotherApp) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  make_state_dir(dir);
  const auto before = fingerprint(dir);

  auto out = collected<std::string>();
  const std::string msg = error_message_of<engine::StateError>([&] {
    engine::Dataflow flow("other_app");
    flow_testing::build_sum_flow(flow, flow_testing::source<std::string>({{"x 1"}}),
                                 flow_testing::sink<std::string>(out));
    engine::run(flow, recovery_options(dir, 1, 0));
  });
  expect_one_line_naming(msg, {dir, "'keyed_sum'", "other_app"});
  EXPECT_TRUE(out->snapshot().empty()) << "a refused run processed items";
  EXPECT_EQ(fingerprint(dir), before) << "a refused state dir was modified";

  error_message_of<engine::StateError>([&] { engine::RocksStore::open(dir, {"other_app", {"sum"}, 1024, {}}); });
  EXPECT_EQ(fingerprint(dir), before);
}

TEST(RefusalTest, StateDirOfAnotherFormatVersion) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  make_state_dir(dir);
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), engine::RocksStore::db_path(dir), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "M:format", "99").ok());
    ASSERT_TRUE(db->Close().ok());
  }
  const auto before = fingerprint(dir);
  auto out = collected<std::string>();
  const std::string msg =
      error_message_of<engine::StateError>([&] { run_sum(recovery_options(dir, 1, 0), {{"x 1"}}, out); });
  // Whose state it is (the app) and why (format 99, this engine reads kFormatVersion).
  expect_one_line_naming(msg, {dir, "keyed_sum", "99", std::to_string(engine::kFormatVersion)});
  EXPECT_TRUE(out->snapshot().empty());
  EXPECT_EQ(fingerprint(dir), before) << "a refused state dir was modified";
}

TEST(RefusalTest, StateDirWhoseStatefulStepIdsChanged) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  make_state_dir(dir);
  const auto before = fingerprint(dir);
  auto out = collected<std::string>();
  const std::string msg = error_message_of<engine::StateError>([&] {
    engine::Dataflow flow{std::string(flow_testing::kSumFlow)};  // same app, stateful step renamed
    auto lines = op::input("inp", flow, flow_testing::source<std::string>({{"x 1"}}));
    auto keyed = op::key_on("key", lines, [](const std::string& l) { return l.substr(0, 1); });
    auto counts = op::stateful_map<int64_t>("count", keyed, [](std::optional<int64_t>& n, std::string&&) {
      n = n.value_or(0) + 1;
      return *n;
    });
    op::output("out", op::map("format", counts, [](engine::KV<int64_t>&& kv) { return kv.first; }),
               flow_testing::sink<std::string>(out));
    engine::run(flow, recovery_options(dir, 1, 0));
  });
  expect_one_line_naming(msg, {dir, "keyed_sum", "sum", "count"});
  EXPECT_TRUE(out->snapshot().empty());
  EXPECT_EQ(fingerprint(dir), before) << "a refused state dir was modified";
}

TEST(RefusalTest, StateDirInUse) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  make_state_dir(dir);
  const auto holder = engine::RocksStore::open(dir, sum_identity());
  auto out = collected<std::string>();
  const std::string msg =
      error_message_of<engine::StateError>([&] { run_sum(recovery_options(dir, 1, 0), {{"x 1"}}, out); });
  expect_one_line_naming(msg, {dir});
}

// ---- unreadable and corrupted state dirs --------------------------------------------

// Runs the keyed-sum flow on `dir` and expects a one-line StateError naming it,
// with the directory left as it was; inspect's read-only open too.
void expect_clear_state_error(const std::string& dir) {
  const auto before = fingerprint(dir);
  auto out = collected<std::string>();
  const std::string msg = error_message_of<engine::StateError>([&] {
    run_sum(recovery_options(dir, 2, 0), {{"x 1"}, {"y 2"}}, out);
  });
  expect_one_line_naming(msg, {dir});
  EXPECT_TRUE(out->snapshot().empty()) << "a run on an unreadable state dir processed items";
  EXPECT_EQ(fingerprint(dir), before) << "an unreadable state dir was modified";
  const std::string inspect_msg = error_message_of<engine::StateError>([&] {
    const auto store = engine::RocksStore::open_read_only(dir);
    (void)store->committed();
    (void)scan_all(*store, "");
  });
  expect_one_line_naming(inspect_msg, {dir});
  EXPECT_EQ(fingerprint(dir), before);
}

TEST(UnreadableStateDirTest, DirectoryOfRandomFiles) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  fs::create_directories(dir + "/sub");
  flow_testing::write_file(dir + "/notes.txt", "not a database\n");
  flow_testing::write_file(dir + "/sub/000001.sst", std::string(4096, '\x7f'));
  flow_testing::write_file(dir + "/MANIFEST-000001", "garbage");
  expect_clear_state_error(dir);
}

TEST(UnreadableStateDirTest, PathIsAFile) {
  TempDir tmp;
  const std::string path = tmp.sub("state");
  flow_testing::write_file(path, "I am a file");
  auto out = collected<std::string>();
  const std::string msg =
      error_message_of<engine::StateError>([&] { run_sum(recovery_options(path, 1, 0), {{"x 1"}}, out); });
  expect_one_line_naming(msg, {path});
  EXPECT_EQ(flow_testing::read_file(path), "I am a file");
}

TEST(UnreadableStateDirTest, RocksDbOfSomethingElse) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "user:1", "alice").ok());
    ASSERT_TRUE(db->Close().ok());
  }
  const auto before = fingerprint(dir);
  auto out = collected<std::string>();
  const std::string msg =
      error_message_of<engine::StateError>([&] { run_sum(recovery_options(dir, 1, 0), {{"x 1"}}, out); });
  expect_one_line_naming(msg, {dir});
  EXPECT_EQ(fingerprint(dir), before);
}

enum class Corruption {
  kCurrentEmpty,
  kCurrentGarbled,
  kManifestTruncated,
  kManifestGarbled,
  kSstTruncated,
  kSstGarbled,
  kSstDataBlockGarbled,
  kSstMissing,
};

// A test name for a corruption kind.
std::string corruption_name(Corruption c) {
  switch (c) {
    case Corruption::kCurrentEmpty:
      return "CurrentEmpty";
    case Corruption::kCurrentGarbled:
      return "CurrentGarbled";
    case Corruption::kManifestTruncated:
      return "ManifestTruncated";
    case Corruption::kManifestGarbled:
      return "ManifestGarbled";
    case Corruption::kSstTruncated:
      return "SstTruncated";
    case Corruption::kSstGarbled:
      return "SstGarbled";
    case Corruption::kSstDataBlockGarbled:
      return "SstDataBlockGarbled";
    case Corruption::kSstMissing:
      return "SstMissing";
  }
  return "?";
}

// The files of `dir` whose name starts with `prefix` and ends with `suffix`.
std::vector<std::string> files_named(const std::string& dir, std::string_view prefix, std::string_view suffix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(prefix) && name.ends_with(suffix)) out.push_back(e.path().string());
  }
  return out;
}

class CorruptionTest : public ::testing::TestWithParam<Corruption> {};

TEST_P(CorruptionTest, ClearStateErrorNeverAnAbort) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  make_state_dir(dir);
  {
    // Everything into one SST file, so the corruptions below hit the data.
    const auto store = engine::RocksStore::open(dir, sum_identity());
    store->compact();
  }
  const std::string db = engine::RocksStore::db_path(dir);
  const auto ssts = files_named(db, "", ".sst");
  const auto manifests = files_named(db, "MANIFEST-", "");
  ASSERT_EQ(ssts.size(), 1u);
  ASSERT_EQ(manifests.size(), 1u);
  const std::string sst = ssts[0];
  const std::string manifest = manifests[0];
  const std::string current = db + "/CURRENT";
  auto garble = [](const std::string& path, size_t from, size_t n) {
    std::string content = flow_testing::read_file(path);
    ASSERT_LT(from, content.size());
    for (size_t i = from; i < std::min(content.size(), from + n); ++i)
      content[i] = static_cast<char>(content[i] ^ 0x5a);
    flow_testing::write_file(path, content);
  };
  switch (GetParam()) {
    case Corruption::kCurrentEmpty:
      fs::resize_file(current, 0);
      break;
    case Corruption::kCurrentGarbled:
      flow_testing::write_file(current, "MANIFEST-999999\n");
      break;
    case Corruption::kManifestTruncated:
      fs::resize_file(manifest, fs::file_size(manifest) / 2);
      break;
    case Corruption::kManifestGarbled:
      garble(manifest, 0, 1 << 20);
      break;
    case Corruption::kSstTruncated:
      fs::resize_file(sst, fs::file_size(sst) / 2);
      break;
    case Corruption::kSstGarbled:
      garble(sst, 0, 1 << 20);
      break;
    case Corruption::kSstDataBlockGarbled:
      garble(sst, 40, 16);  // inside the first data block, which holds the M: keys
      break;
    case Corruption::kSstMissing:
      fs::remove(sst);
      break;
  }
  expect_clear_state_error(dir);
}

INSTANTIATE_TEST_SUITE_P(Kinds, CorruptionTest,
                         ::testing::Values(Corruption::kCurrentEmpty, Corruption::kCurrentGarbled,
                                           Corruption::kManifestTruncated, Corruption::kManifestGarbled,
                                           Corruption::kSstTruncated, Corruption::kSstGarbled,
                                           Corruption::kSstDataBlockGarbled, Corruption::kSstMissing),
                         [](const auto& info) { return corruption_name(info.param); });

// ---- bounded state ---------------------------------------------------------------

// Rows of stateful step "sum" in `store`, with their values.
std::map<std::string, std::string> state_rows(const engine::Store& store) {
  return scan_all(store, state_step_prefix(flow_testing::kSumStep));
}

class BoundedStateTest : public ::testing::TestWithParam<engine::SnapshotMode> {};

// A key whose state is set to std::nullopt has no row afterwards (not an empty
// one), whether it was created in the same epoch, an earlier epoch of the run,
// or an earlier run (restored lazily, then discarded).
TEST_P(BoundedStateTest, DiscardedStateIsDeleted) {
  for (const double interval : {0.0, 30.0}) {
    SCOPED_TRACE(fmt::format("interval {}", interval));
    TempDir tmp;
    const auto opts = recovery_options(tmp.sub("state"), 2, interval, GetParam());
    Parts parts = {{"a 1", "b 2", "a 3", "x 4", "x del", "c 5", "b del"}, {"d 1", "e 2", "d del"}};
    auto out = collected<std::string>();
    run_sum(opts, parts, out);
    {
      const auto store = engine::RocksStore::open(opts.state_dir, sum_identity());
      EXPECT_EQ(read_state<SumState>(*store, flow_testing::kSumStep),
                (std::map<std::string, SumState>{{"a", {2, 4}}, {"c", {1, 5}}, {"e", {1, 2}}}));
      const auto rows = state_rows(*store);
      EXPECT_EQ(rows.size(), 3u);
      for (const auto& [k, v] : rows) EXPECT_FALSE(v.empty()) << "empty row";
      EXPECT_EQ(store->describe().staged_writes, 0u);
    }
    // Next run: discard keys restored from the store, re-create one of them.
    parts[0].insert(parts[0].end(), {"a del", "c 1"});
    parts[1].insert(parts[1].end(), {"e del", "e 9", "e del"});
    run_sum(opts, parts, out);
    const auto c = reopen_sum_committed(opts.state_dir, parts.size());
    expect_finished(out->snapshot(), c, parts);
    EXPECT_EQ(c.state, (std::map<std::string, SumState>{{"c", {2, 6}}}));
    const auto store = engine::RocksStore::open_read_only(opts.state_dir);
    EXPECT_EQ(state_rows(*store).size(), 1u);
  }
}

// Facts about a state dir after many epochs of updates to a few keys.
struct GrowthSample {
  uint64_t bytes = 0;  // after a full compaction
  size_t rows = 0;     // every key of the store
  size_t state_rows = 0;
  size_t live_keys = 0;  // by the reference
};

// Runs `epochs` epochs into `dir`, compacts the store and measures it.
GrowthSample run_epochs(const std::string& dir, size_t epochs, engine::SnapshotMode mode) {
  // One partition, one worker, an epoch per item: `epochs` commits updating 6
  // keys (one "del" in 8 items, so keys come and go).
  const Parts parts = sum_items(1, epochs, 6, 42, /*del_every=*/8);
  auto out = collected<std::string>();
  run_sum(recovery_options(dir, 1, 0, mode), parts, out);
  GrowthSample s;
  s.live_keys = sum_reference(parts).state.size();
  {
    const auto store = engine::RocksStore::open(dir, sum_identity());
    store->compact();
    s.rows = scan_all(*store, "").size();
    s.state_rows = state_rows(*store).size();
    const auto c = flow_testing::read_sum_committed(*store, 1);
    EXPECT_EQ(c.state, sum_reference(parts).state);
    EXPECT_GE(c.commit.value_or(engine::CommitRecord{}).epoch, epochs) << "fewer epochs than items";
  }
  s.bytes = flow_testing::dir_size(dir);
  return s;
}

// One version per key: 10x more epochs of updates to the same keys leave as
// many rows (one per live key) and about the same bytes after compaction.
TEST_P(BoundedStateTest, StoreDoesNotGrowWithEpochs) {
  TempDir tmp(flow_testing::memory_temp_base());  // 2200 synced commits: fast on tmpfs
  const auto small = run_epochs(tmp.sub("small"), 200, GetParam());
  const auto large = run_epochs(tmp.sub("large"), 2000, GetParam());
  EXPECT_EQ(small.state_rows, small.live_keys);
  EXPECT_EQ(large.state_rows, large.live_keys);
  // Besides state: M: keys, one source offset, one sink position.
  EXPECT_EQ(small.rows - small.state_rows, large.rows - large.state_rows);
  EXPECT_LE(large.bytes, small.bytes + small.bytes / 4 + 4096)
      << "state dir grew from " << small.bytes << " to " << large.bytes << " bytes with 10x the epochs";
}

INSTANTIATE_TEST_SUITE_P(Modes, BoundedStateTest,
                         ::testing::Values(engine::SnapshotMode::kBatch, engine::SnapshotMode::kImmediate),
                         [](const auto& info) {
                           return info.param == engine::SnapshotMode::kBatch ? "batch" : "immediate";
                         });

// ---- lazy restore ------------------------------------------------------------------

// A resume over 200k stored keys in 1024 key groups that touches 3 keys reads
// only those keys' key groups (counted through a Store wrapper), and updates
// them on top of the restored state.
TEST(LazyRestoreTest, ResumeReadsOnlyTheTouchedKeyGroups) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  constexpr size_t kKeys = 200000;
  Parts parts(2);
  for (size_t i = 0; i < kKeys; ++i) parts[i % 2].push_back(fmt::format("u{:06} {}", i, i % 97));
  {
    auto out = collected<std::string>();
    auto opts = recovery_options(dir, 2, 3600);  // a single epoch
    run_sum(opts, parts, out);
    ASSERT_EQ(out->snapshot().size(), kKeys);
  }
  // The stored keys per key group, counted by plain code from the key layout's hash.
  std::map<uint32_t, size_t> keys_in_group;
  for (size_t i = 0; i < kKeys; ++i) ++keys_in_group[engine::key_group_of(fmt::format("u{:06}", i), 1024)];
  ASSERT_EQ(keys_in_group.size(), 1024u) << "every key group holds state";

  const std::vector<std::string> touched = {"u000017", "u123456", "brand-new"};
  parts[0].insert(parts[0].end(), {"u000017 1000", "brand-new 5", "u000017 1"});
  parts[1].insert(parts[1].end(), {"u123456 2000"});

  auto out = collected<std::string>();
  flow_testing::CountingStore counting(engine::RocksStore::open(dir, sum_identity()));
  {
    auto opts = recovery_options("", 2, 0);
    opts.store = &counting;
    const auto stats = run_sum(opts, parts, out);
    EXPECT_TRUE(stats.resumed);
  }
  std::set<uint32_t> expected_groups;
  size_t expected_keys = 0;
  for (const auto& k : touched) {
    if (expected_groups.insert(engine::key_group_of(k, 1024)).second)
      expected_keys += keys_in_group[engine::key_group_of(k, 1024)];
  }
  EXPECT_EQ(counting.scanned_groups(flow_testing::kSumStep), expected_groups);
  EXPECT_EQ(counting.scanned_keys(), expected_keys) << "keys read by the resume";
  EXPECT_LT(counting.scanned_keys(), kKeys / 100);
  EXPECT_LT(counting.gets(), 32u) << "point reads by the resume";
  for (const auto& prefix : counting.scan_prefixes()) {
    EXPECT_TRUE(prefix.starts_with(state_step_prefix(flow_testing::kSumStep))) << "unexpected scan of " << prefix;
  }

  // The touched keys continue from their restored state; the others are intact.
  const auto state = read_state<SumState>(counting, flow_testing::kSumStep);
  const auto ref = sum_reference(parts);
  EXPECT_EQ(state.size(), kKeys + 1);
  EXPECT_EQ(state, ref.state);
  EXPECT_EQ(state.at("u000017"), (SumState{3, 17 % 97 + 1000 + 1}));
  EXPECT_EQ(flow_testing::sorted(out->snapshot()),
            flow_testing::sorted(std::vector<std::string>{"u000017 2 1017", "u000017 3 1018", "brand-new 1 5",
                                                          fmt::format("u123456 2 {}", 123456 % 97 + 2000)}))
      << "only the new items' outputs (a fresh sink)";
}

// ---- backup ----------------------------------------------------------------------

class BackupTest : public ::testing::TestWithParam<bool> {};  // true: the state dir exists but is empty

// A finished run with -b; the state dir is lost; a run with more input and
// the same -b restores the backup and processes only the new items.
TEST_P(BackupTest, RestoresFromTheBackupWhenTheStateDirIsGone) {
  TempDir tmp;
  auto opts = recovery_options(tmp.sub("state"), 2, 0);
  opts.backup_dir = tmp.sub("backup");
  const Parts all = sum_items(3, 20, 4, 8, /*del_every=*/7);
  Parts first(3);
  for (size_t p = 0; p < 3; ++p) first[p].assign(all[p].begin(), all[p].begin() + 12);
  auto out = collected<std::string>();
  run_sum(opts, first, out);
  ASSERT_TRUE(fs::exists(opts.backup_dir));

  fs::remove_all(opts.state_dir);
  if (GetParam()) fs::create_directories(opts.state_dir);
  const auto stats = run_sum(opts, all, out);
  EXPECT_TRUE(stats.resumed) << "the run did not restore the backup";
  const auto c = reopen_sum_committed(opts.state_dir, all.size());
  expect_finished(out->snapshot(), c, all);
}

// A run stopped by a failing step keeps a backup of a committed epoch; with
// the state dir lost, the fixed run restores it and still ends correctly.
TEST_P(BackupTest, RestoresAnInterruptedRunFromTheBackup) {
  TempDir tmp;
  auto opts = recovery_options(tmp.sub("state"), 2, 0);
  opts.backup_dir = tmp.sub("backup");
  const Parts parts = sum_items(3, 20, 4, 9, /*del_every=*/7);
  auto out = collected<std::string>();
  error_message_of<engine::StepError>([&] { run_sum(opts, parts, out, {parts[1][15]}); });
  const auto committed = reopen_sum_committed(opts.state_dir, parts.size());
  ASSERT_TRUE(committed.commit.has_value());

  fs::remove_all(opts.state_dir);
  if (GetParam()) fs::create_directories(opts.state_dir);
  run_sum(opts, parts, out);
  const auto c = reopen_sum_committed(opts.state_dir, parts.size());
  expect_finished(out->snapshot(), c, parts);
}

INSTANTIATE_TEST_SUITE_P(StateDir, BackupTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "empty" : "missing"; });

// A backup of another app is refused before anything lands in the state dir.
TEST(BackupRefusalTest, BackupOfAnotherAppLeavesTheStateDirEmpty) {
  TempDir tmp;
  const std::string backup = tmp.sub("backup");
  {
    auto store = engine::RocksStore::open(tmp.sub("other"), {"other_app", {"sum"}, 1024, {}});
    store->commit({}, engine::CommitRecord{1, 1, 1024, 0});
    store->backup(backup);
  }
  const std::string dir = tmp.sub("state");
  fs::create_directories(dir);
  const std::string msg =
      error_message_of<engine::StateError>([&] { engine::RocksStore::open(dir, sum_identity(), backup); });
  expect_one_line_naming(msg, {dir, "other_app"});
  EXPECT_TRUE(fs::is_empty(dir)) << "a refused backup was left in the state dir";
}

// What a crash during creation leaves (a half-built db.creating) is cleared.
TEST(StateDirCreationTest, LeftoverOfACrashedCreationIsReplaced) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  fs::create_directories(dir + "/db.creating");
  flow_testing::write_file(dir + "/db.creating/000003.log", "half written");
  auto out = collected<std::string>();
  const auto stats = run_sum(recovery_options(dir, 1, 0), {{"x 1", "x 2"}}, out);
  EXPECT_FALSE(stats.resumed);
  EXPECT_EQ(out->snapshot().size(), 2u);
  EXPECT_FALSE(fs::exists(dir + "/db.creating"));
}

// -d may be a symlink to an empty directory (or a mount point): the state dir
// is made inside it, never by replacing it.
TEST(StateDirCreationTest, SymlinkToAnEmptyDirectory) {
  TempDir tmp;
  fs::create_directories(tmp.sub("real"));
  fs::create_directory_symlink(tmp.sub("real"), tmp.sub("state"));
  auto out = collected<std::string>();
  run_sum(recovery_options(tmp.sub("state"), 1, 0), {{"x 1"}}, out);
  EXPECT_TRUE(fs::is_symlink(tmp.sub("state")));
  EXPECT_TRUE(fs::exists(tmp.sub("real") + "/db/CURRENT"));
}

// ---- commit order ----------------------------------------------------------------

// A WriteSet packs its keys and values into one buffer: every write reads
// back as it was added (a delete distinct from an empty value), in order
// across append(), with keys and values built in place.
TEST(WriteSetTest, WritesReadBackAsAddedAcrossAppends) {
  using Got = std::vector<std::pair<std::string, std::optional<std::string>>>;
  const auto contents = [](const engine::WriteSet& w) {
    Got got;
    for (const auto& [key, value] : w) got.emplace_back(key, value ? std::optional<std::string>(*value) : std::nullopt);
    return got;
  };
  engine::WriteSet a;
  a.add("k1", "v1");
  a.add("k2", std::nullopt);
  a.add("k3", "");
  a.add_built(
      [](std::string& out) {
        out.append("built");
        out.push_back('\0');
        out.append("key");
      },
      [](std::string& out) {
        out.append(1000, 'x');
        return true;
      });
  a.add_built([](std::string& out) { out.append("gone"); }, [](std::string&) { return false; });
  EXPECT_EQ(a.size(), 5u);
  EXPECT_EQ(a.bytes(), 4u + 2u + 2u + 9u + 1000u + 4u);
  engine::WriteSet b{{"k4", "v4"}, {"k5", std::nullopt}};
  a.append(std::move(b));
  EXPECT_TRUE(b.empty());
  const Got expected = {{"k1", "v1"},
                        {"k2", std::nullopt},
                        {"k3", ""},
                        {std::string("built\0key", 9), std::string(1000, 'x')},
                        {"gone", std::nullopt},
                        {"k4", "v4"},
                        {"k5", std::nullopt}};
  EXPECT_EQ(contents(a), expected);
  EXPECT_EQ(a.key(5), "k4");
  engine::WriteSet c;
  c.append(std::move(a));
  EXPECT_EQ(contents(c), expected);
  EXPECT_TRUE(a.empty());
  // A value whose encoding throws adds nothing, not even its key's bytes.
  const size_t bytes = c.bytes();
  EXPECT_THROW(c.add_built([](std::string& out) { out.append("half"); },
                           [](std::string& out) -> bool {
                             out.append("partial");
                             throw std::runtime_error("cannot encode");
                           }),
               std::runtime_error);
  EXPECT_EQ(c.bytes(), bytes);
  EXPECT_EQ(contents(c), expected);
}

// A commit's writes come as several sorted runs (workers, grouped epochs) with
// the same key written in more than one of them: the store holds the last
// write of every key, a later delete wins over an earlier put and the other way round.
TEST(CommitOrderTest, TheLastWriteOfAKeyWinsAcrossRuns) {
  TempDir tmp;
  const std::string dir = tmp.sub("state");
  const auto store = engine::RocksStore::open(dir, sum_identity());
  using engine::keys::state;
  engine::WriteSet writes;
  // run 1 (sorted)
  writes.add(state("sum", 1, "a"), "1");
  writes.add(state("sum", 1, "c"), "1");
  writes.add(state("sum", 2, "e"), "1");
  // run 2 (sorted, overlapping run 1)
  writes.add(state("sum", 1, "b"), "2");
  writes.add(state("sum", 1, "c"), "2");
  writes.add(state("sum", 2, "e"), std::nullopt);
  // run 3: a key written twice in a row, and a delete undone by a put
  writes.add(state("sum", 0, "z"), "3");
  writes.add(state("sum", 0, "z"), "4");
  writes.add(state("sum", 1, "a"), std::nullopt);
  writes.add(state("sum", 2, "e"), "5");
  store->commit(std::move(writes), engine::CommitRecord{1, 1, 1024, 0});
  EXPECT_EQ(store->get(state("sum", 1, "a")), std::nullopt);
  EXPECT_EQ(store->get(state("sum", 1, "b")), "2");
  EXPECT_EQ(store->get(state("sum", 1, "c")), "2");
  EXPECT_EQ(store->get(state("sum", 2, "e")), "5");
  EXPECT_EQ(store->get(state("sum", 0, "z")), "4");
  ASSERT_TRUE(store->committed().has_value());
  EXPECT_EQ(store->committed()->epoch, 1u);
}

}  // namespace
