// Fault injection: FaultInjectingStore fails the Nth commit (or,
// in immediate snapshot mode, the Nth staged write), before or after the
// write reaches RocksDB, for every N over a run. Each time the run fails with
// a StateError (no crash), the store holds exactly one committed epoch whose
// state, sink position and dead-letter length are those of the items before
// its source offsets, and a resumed run finishes like an uninterrupted one.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/errors.hpp"
#include "engine/runtime.hpp"
#include "engine/store.hpp"
#include "tests/support/flow_testing.hpp"

namespace {

namespace fs = std::filesystem;
using flow_testing::collected;
using flow_testing::error_message_of;
using flow_testing::expect_consistent;
using flow_testing::expect_finished;
using flow_testing::FaultInjectingStore;
using flow_testing::Parts;
using flow_testing::read_sum_committed;
using flow_testing::reopen_sum_committed;
using flow_testing::run_sum;
using flow_testing::sum_identity;
using flow_testing::sum_items;
using flow_testing::sum_reference;
using flow_testing::TempDir;
using flow_testing::Watchdog;
using When = FaultInjectingStore::When;

// Names for test names and traces.
const char* mode_name(engine::SnapshotMode m) { return m == engine::SnapshotMode::kBatch ? "batch" : "immediate"; }
const char* when_name(When w) { return w == When::kInstead ? "instead" : "after"; }

// Options of the sweeps: an epoch per item, at most `group` epochs per commit, store given by the caller.
engine::RunOptions base_options(uint32_t workers, engine::SnapshotMode mode, bool dead_letter = false,
                                uint64_t group = 1) {
  engine::RunOptions o;
  o.workers = workers;
  o.snapshot_interval = 0;  // an epoch per item per worker
  o.snapshot_mode = mode;
  o.max_epochs_per_commit = group;
  if (dead_letter) o.on_error = engine::ErrorPolicy::kDeadLetter;
  return o;
}

// Commits and staged writes of an uninterrupted run of the same configuration.
struct Counts {
  uint64_t commits = 0;
  uint64_t writes = 0;
};

// Runs the configuration once without faults through a counting FaultInjectingStore.
Counts count_clean_run(const engine::RunOptions& base, const Parts& parts) {
  TempDir tmp(flow_testing::memory_temp_base());
  FaultInjectingStore store(engine::RocksStore::open(tmp.sub("state"), sum_identity()), {});
  engine::RunOptions o = base;
  o.store = &store;
  if (o.on_error == engine::ErrorPolicy::kDeadLetter) o.dead_letter_path = tmp.sub("dead.jsonl");
  auto out = collected<std::string>();
  run_sum(o, parts, out);
  return {store.commits(), store.writes()};
}

// The dead letters in the first `length` bytes of `path`: (source, line) of each.
std::multiset<std::pair<std::string, uint64_t>> dead_letters(const std::string& path, uint64_t length) {
  std::multiset<std::pair<std::string, uint64_t>> out;
  if (!fs::exists(path)) return out;
  const std::string content = flow_testing::read_file(path).substr(0, length);
  size_t start = 0;
  while (start < content.size()) {
    const size_t nl = content.find('\n', start);
    if (nl == std::string::npos) {
      ADD_FAILURE() << "dead-letter file cut inside a line at its committed length " << length;
      break;
    }
    const auto j = nlohmann::json::parse(content.substr(start, nl - start), nullptr, false);
    if (j.is_discarded() || !j.contains("source") || !j.contains("line")) {
      ADD_FAILURE() << "bad dead letter: " << content.substr(start, nl - start);
    } else {
      out.emplace(j["source"].get<std::string>(), j["line"].get<uint64_t>());
    }
    start = nl + 1;
  }
  return out;
}

// The dead letters the items before `upto` must produce.
std::multiset<std::pair<std::string, uint64_t>> expected_dead_letters(const Parts& parts,
                                                                      const std::vector<size_t>& upto = {}) {
  std::multiset<std::pair<std::string, uint64_t>> out;
  for (const auto& [p, i] : sum_reference(parts, upto).bad) out.emplace(fmt::format("part-{}", p), i + 1);
  return out;
}

struct Case {
  uint32_t workers;
  engine::SnapshotMode mode;
  bool dead_letter;
  uint64_t group = 1;  // most epochs per commit
};

// A readable test name for a sweep configuration.
std::string case_name(const Case& c) {
  return fmt::format("w{}_{}{}{}", c.workers, mode_name(c.mode), c.dead_letter ? "_deadletter" : "",
                     c.group == 1 ? "" : fmt::format("_group{}", c.group));
}

// What a failed commit leaves: the epoch of the last commit before it
// (failing instead of writing), or its own (failing after the write).
constexpr uint64_t kLastGoodCommit = ~uint64_t{0} - 1;
constexpr uint64_t kFailingCommit = ~uint64_t{0} - 2;

// How gtest prints a sweep configuration.
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

class FaultSweepTest : public ::testing::TestWithParam<Case> {
 protected:
  // One failed run with `plan`, the checks of the store it leaves, a resume to
  // the end and the checks of the final result.
  void fail_and_resume(const FaultInjectingStore::Plan& plan, const Parts& parts, uint64_t expected_epoch,
                       bool must_fire) {
    const Case c = GetParam();
    TempDir tmp(flow_testing::memory_temp_base());  // hundreds of store opens and synced commits
    const std::string dir = tmp.sub("state");
    const std::string dead = tmp.sub("dead.jsonl");
    engine::RunOptions opts = base_options(c.workers, c.mode, false, c.group);
    if (c.dead_letter) {
      opts.on_error = engine::ErrorPolicy::kDeadLetter;
      opts.dead_letter_path = dead;
    }
    auto out = collected<std::string>();

    bool fired = false;
    {
      FaultInjectingStore store(engine::RocksStore::open(dir, sum_identity()), plan);
      engine::RunOptions o = opts;
      o.store = &store;
      bool threw = false;
      try {
        run_sum(o, parts, out);
      } catch (const engine::StateError& e) {
        threw = true;
        EXPECT_NE(std::string(e.what()).find("injected fault"), std::string::npos) << e.what();
      } catch (const std::exception& e) {
        threw = true;
        ADD_FAILURE() << "expected a StateError, got " << typeid(e).name() << ": " << e.what();
      }
      fired = store.fired();
      const auto good = store.committed_epochs();
      if (expected_epoch == kLastGoodCommit) expected_epoch = good.empty() ? 0 : good.back();
      if (expected_epoch == kFailingCommit) expected_epoch = store.failed_epoch();
      if (!fired) expected_epoch = ~uint64_t{0};  // the run went through: nothing to expect of a fault
      EXPECT_EQ(threw, fired) << "a run must fail exactly when its fault fires";
      if (must_fire) {
        EXPECT_TRUE(fired) << "the fault never fired";
      }
      if (fired && c.mode == engine::SnapshotMode::kBatch) {
        // Batch mode changes S, O, P and D keys only in commit batches, so
        // even without the fold of an open, the raw store is one epoch.
        expect_consistent(read_sum_committed(store.inner(), parts.size()), parts);
      }
    }

    const auto after = reopen_sum_committed(dir, parts.size());
    expect_consistent(after, parts);
    // Nothing committed: the next run is a fresh start, after which a FileSink
    // holds only that run's output. A TestingSink keeps the failed run's items
    // instead (TestingSinkTest shows it), so the resume gets a fresh one here.
    if (!after.commit) out = collected<std::string>();
    if (expected_epoch != ~uint64_t{0}) {
      if (expected_epoch == 0) {
        EXPECT_FALSE(after.commit.has_value()) << "epoch " << after.commit->epoch << " committed";
      } else if (after.commit) {
        EXPECT_EQ(after.commit->epoch, expected_epoch);
      } else {
        ADD_FAILURE() << "no committed epoch, expected " << expected_epoch;
      }
    }
    if (c.dead_letter) {
      const uint64_t length = after.dead_letter_length.value_or(0);
      EXPECT_EQ(dead_letters(dead, length), expected_dead_letters(parts, after.offsets))
          << "committed dead letters do not match the committed offsets";
    }

    opts.state_dir = dir;
    run_sum(opts, parts, out);
    const auto final_state = reopen_sum_committed(dir, parts.size());
    expect_finished(out->snapshot(), final_state, parts);
    if (c.dead_letter) {
      EXPECT_EQ(dead_letters(dead, fs::file_size(dead)), expected_dead_letters(parts)) << "every bad item exactly once";
      EXPECT_EQ(final_state.dead_letter_length.value_or(0), fs::file_size(dead));
    }
  }

  Parts parts_ = sum_items(3, 7, 3, 5, /*del_every=*/6, /*bad_every=*/GetParam().dead_letter ? 4 : 0);
};

// The Nth commit fails, for every N of the run, before and after the batch
// reaches RocksDB: the store then holds epoch N-1 (before) or N (after).
TEST_P(FaultSweepTest, EveryCommit) {
  const Case c = GetParam();
  Watchdog dog(std::chrono::seconds(240), "FaultSweepTest.EveryCommit");
  const Counts counts = count_clean_run(base_options(c.workers, c.mode, c.dead_letter, c.group), parts_);
  ASSERT_GE(counts.commits, 5u);
  for (const When when : {When::kInstead, When::kAfter}) {
    for (uint64_t n = 1; n <= counts.commits; ++n) {
      SCOPED_TRACE(fmt::format("commit #{} of {} fails {} the write", n, counts.commits, when_name(when)));
      FaultInjectingStore::Plan plan;
      plan.fail_commit = n;
      plan.when = when;
      // Grouped commits vary from run to run: a late N may not come.
      fail_and_resume(plan, parts_, when == When::kInstead ? kLastGoodCommit : kFailingCommit,
                      /*must_fire=*/c.group == 1);
      if (HasFailure()) return;  // one broken N is enough to read
    }
  }
}

// Immediate mode: the Nth staged write fails, for every N of the run. The
// number of staged writes depends on thread timing with several workers, so a
// fault past the end of a run is allowed not to fire (the run then succeeds).
class StagedWriteSweepTest : public FaultSweepTest {};

TEST_P(StagedWriteSweepTest, EveryStagedWrite) {
  const Case c = GetParam();
  Watchdog dog(std::chrono::seconds(240), "StagedWriteSweepTest.EveryStagedWrite");
  const Counts counts = count_clean_run(base_options(c.workers, c.mode, c.dead_letter, c.group), parts_);
  ASSERT_GE(counts.writes, 5u) << "immediate mode staged almost nothing";
  for (const When when : {When::kInstead, When::kAfter}) {
    for (uint64_t n = 1; n <= counts.writes; ++n) {
      SCOPED_TRACE(fmt::format("staged write #{} of {} fails {} the write", n, counts.writes, when_name(when)));
      FaultInjectingStore::Plan plan;
      plan.fail_write = n;
      plan.when = when;
      fail_and_resume(plan, parts_, ~uint64_t{0}, /*must_fire=*/c.workers == 1);
      if (HasFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, FaultSweepTest,
    ::testing::Values(Case{1, engine::SnapshotMode::kBatch, false}, Case{2, engine::SnapshotMode::kBatch, false},
                      Case{1, engine::SnapshotMode::kImmediate, false},
                      Case{2, engine::SnapshotMode::kImmediate, false}, Case{2, engine::SnapshotMode::kBatch, true},
                      Case{2, engine::SnapshotMode::kImmediate, true}, Case{2, engine::SnapshotMode::kBatch, true, 2},
                      Case{2, engine::SnapshotMode::kImmediate, false, 2}),
    [](const auto& info) { return case_name(info.param); });

INSTANTIATE_TEST_SUITE_P(Immediate, StagedWriteSweepTest,
                         ::testing::Values(Case{1, engine::SnapshotMode::kImmediate, false},
                                           Case{2, engine::SnapshotMode::kImmediate, false},
                                           Case{2, engine::SnapshotMode::kImmediate, true}),
                         [](const auto& info) { return case_name(info.param); });

// Several faults in a row: every run fails at a different commit and resumes
// from what the previous one left; the last finishes like an uninterrupted run.
TEST(FaultChainTest, RepeatedFailuresThenFinish) {
  for (const auto mode : {engine::SnapshotMode::kBatch, engine::SnapshotMode::kImmediate}) {
    SCOPED_TRACE(mode_name(mode));
    Watchdog dog(std::chrono::seconds(120), "FaultChainTest");
    TempDir tmp;
    const std::string dir = tmp.sub("state");
    const std::string dead = tmp.sub("dead.jsonl");
    const Parts parts = sum_items(4, 12, 3, 9, /*del_every=*/7, /*bad_every=*/6);
    engine::RunOptions opts = base_options(2, mode);
    opts.on_error = engine::ErrorPolicy::kDeadLetter;
    opts.dead_letter_path = dead;
    auto out = collected<std::string>();
    int failures = 0;
    for (const auto& [n, when] : {std::pair{3, When::kInstead}, std::pair{2, When::kAfter},
                                  std::pair{4, When::kInstead}, std::pair{1, When::kAfter}}) {
      {
        FaultInjectingStore store(engine::RocksStore::open(dir, sum_identity()),
                                  {0, static_cast<uint64_t>(n), when, {}});
        engine::RunOptions o = opts;
        o.store = &store;
        error_message_of<engine::StateError>([&] { run_sum(o, parts, out); });
        failures += store.fired() ? 1 : 0;
      }
      const auto c = reopen_sum_committed(dir, parts.size());
      expect_consistent(c, parts);
      EXPECT_EQ(dead_letters(dead, c.dead_letter_length.value_or(0)), expected_dead_letters(parts, c.offsets));
    }
    EXPECT_EQ(failures, 4);
    opts.state_dir = dir;
    run_sum(opts, parts, out);
    const auto final_state = reopen_sum_committed(dir, parts.size());
    expect_finished(out->snapshot(), final_state, parts);
    EXPECT_EQ(dead_letters(dead, fs::file_size(dead)), expected_dead_letters(parts));
  }
}

// Group commit: with a store that takes 2 ms per commit, an epoch per item
// over 10,000 items commits far fewer times than it has epochs, each commit
// covering every epoch complete by then, and ends like an uninterrupted run.
TEST(GroupCommitTest, ASlowStoreGetsFewerCommitsThanEpochs) {
  Watchdog dog(std::chrono::seconds(120), "GroupCommitTest");
  TempDir tmp(flow_testing::memory_temp_base());
  const Parts parts = sum_items(2, 5000, 50, 13, /*del_every=*/11);
  FaultInjectingStore::Plan plan;
  plan.commit_delay = std::chrono::microseconds(2000);
  FaultInjectingStore store(engine::RocksStore::open(tmp.sub("state"), sum_identity()), plan);
  engine::RunOptions o = base_options(2, engine::SnapshotMode::kBatch, false, /*group=*/0);
  o.store = &store;
  auto out = collected<std::string>();
  const auto stats = run_sum(o, parts, out);
  const auto epochs = store.committed_epochs();
  ASSERT_FALSE(epochs.empty());
  EXPECT_GE(epochs.back(), 5000u) << "an epoch per item per worker";
  EXPECT_LT(store.commits() * 10, epochs.back()) << store.commits() << " commits for " << epochs.back() << " epochs";
  EXPECT_EQ(stats.commits, store.commits());
  EXPECT_EQ(stats.epochs_committed, epochs.back());
  for (size_t i = 1; i < epochs.size(); ++i) EXPECT_LT(epochs[i - 1], epochs[i]) << "commits go forward";
  expect_finished(out->snapshot(), read_sum_committed(store.inner(), parts.size()), parts);
}

}  // namespace
