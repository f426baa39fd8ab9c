// Commit and resume in-process: the recovery tutorial's running sum
// resumed after appending input (TestingSource and files), a keyed flow
// stopped by a failing step and resumed until it finishes, rescaling 4 -> 2
// -> 3 workers, the `fail` error policy's message and the committed epoch it
// leaves, and the dead-letter policy. Expected results come from the tutorial
// (seeds/004) or from plain reference loops (tests/support/flow_testing.hpp).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "connectors/file/file_sink.hpp"
#include "connectors/file/file_source.hpp"
#include "connectors/testing/testing.hpp"
#include "engine/errors.hpp"
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
using flow_testing::Parts;
using flow_testing::read_state;
using flow_testing::recovery_options;
using flow_testing::reopen_sum_committed;
using flow_testing::run_sum;
using flow_testing::sum_items;
using flow_testing::sum_reference;
using flow_testing::TempDir;
using flow_testing::Watchdog;

// ---- the tutorial: seeds/004_a84f0b68ca387525.txt ------------------------------

// The tutorial's flow: input -> key_on "ALL" -> stateful_map "running_count" -> output.
void build_running_sum(engine::Dataflow& flow, std::vector<int64_t> inp,
                       const std::shared_ptr<engine::TestingSink<std::string>::Collected>& out) {
  auto input = op::input("inp", flow, std::make_shared<engine::TestingSource<int64_t>>(std::move(inp)));
  auto keyed = op::key_on("key_stream", input, [](const int64_t&) { return std::string("ALL"); });
  auto sums = op::stateful_map<int64_t>("running_count", keyed, [](std::optional<int64_t>& sum, int64_t&& x) {
    sum = sum.value_or(0) + x;
    return *sum;
  });
  auto text =
      op::map("format", sums, [](engine::KV<int64_t>&& kv) { return fmt::format("('{}', {})", kv.first, kv.second); });
  op::output("out", text, std::make_shared<engine::TestingSink<std::string>>(out));
}

using TutorialCase = std::tuple<double, uint32_t, engine::SnapshotMode>;

// A readable test name: interval, workers and snapshot mode.
std::string tutorial_case_name(const TutorialCase& c) {
  return fmt::format("s{}_w{}_{}", static_cast<int>(std::get<0>(c)), std::get<1>(c),
                     std::get<2>(c) == engine::SnapshotMode::kBatch ? "batch" : "immediate");
}

class TutorialTest : public ::testing::TestWithParam<TutorialCase> {};

// `python -m bytewax.run recovery -d db_dir/ -s 30` prints 0 1 3; after
// inp.extend([3, 4]) the same command prints 6 10 (the tutorial's output).
TEST_P(TutorialTest, ResumesWithOldStateAfterInputIsAppended) {
  const auto [interval, workers, mode] = GetParam();
  TempDir tmp;
  const auto opts = recovery_options(tmp.sub("db_dir"), workers, interval, mode);
  std::vector<int64_t> inp = {0, 1, 2};

  auto first = collected<std::string>();
  {
    engine::Dataflow flow("recovery");
    build_running_sum(flow, inp, first);
    const auto stats = engine::run(flow, opts);
    EXPECT_FALSE(stats.resumed);
  }
  EXPECT_EQ(first->snapshot(), (std::vector<std::string>{"('ALL', 0)", "('ALL', 1)", "('ALL', 3)"}));

  inp.insert(inp.end(), {3, 4});
  auto second = collected<std::string>();  // a fresh stdout
  {
    engine::Dataflow flow("recovery");
    build_running_sum(flow, inp, second);
    const auto stats = engine::run(flow, opts);
    EXPECT_TRUE(stats.resumed);
  }
  EXPECT_EQ(second->snapshot(), (std::vector<std::string>{"('ALL', 6)", "('ALL', 10)"}));

  // Nothing new: nothing is printed and the state stays.
  auto third = collected<std::string>();
  {
    engine::Dataflow flow("recovery");
    build_running_sum(flow, inp, third);
    engine::run(flow, opts);
  }
  EXPECT_TRUE(third->snapshot().empty());
  const auto store = engine::RocksStore::open_read_only(opts.state_dir);
  EXPECT_EQ(read_state<int64_t>(*store, "running_count"), (std::map<std::string, int64_t>{{"ALL", 10}}));
  EXPECT_EQ(flow_testing::source_offset(store->describe(), "inp", "part-0"), 5u);
}

INSTANTIATE_TEST_SUITE_P(Intervals, TutorialTest,
                         ::testing::Values(std::make_tuple(30.0, 1u, engine::SnapshotMode::kBatch),
                                           std::make_tuple(0.0, 1u, engine::SnapshotMode::kBatch),
                                           std::make_tuple(0.0, 2u, engine::SnapshotMode::kImmediate),
                                           std::make_tuple(30.0, 4u, engine::SnapshotMode::kImmediate)),
                         [](const auto& info) { return tutorial_case_name(info.param); });

// The same story with files: appended lines are read, and the output file
// gets exactly the new lines (FileSink resumes at its committed length).
TEST(RecoveryTest, RunningSumOnFilesContinuesAfterAppendedLines) {
  TempDir tmp;
  const std::string in = tmp.sub("numbers.txt");
  const std::string out = tmp.sub("sums.txt");
  const auto opts = recovery_options(tmp.sub("state"), 2, 0);
  auto run_files = [&] {
    engine::Dataflow flow("running_sum");
    auto lines = op::input("inp", flow, std::make_shared<engine::FileSource>(in));
    auto numbers = op::map("parse", lines, [](const std::string& l) { return std::stoll(l); });
    auto keyed = op::key_on("key_stream", numbers, [](const long long&) { return std::string("ALL"); });
    auto sums = op::stateful_map<int64_t>("running_count", keyed, [](std::optional<int64_t>& sum, long long&& x) {
      sum = sum.value_or(0) + x;
      return *sum;
    });
    auto text = op::map("format", sums,
                        [](engine::KV<int64_t>&& kv) { return fmt::format("('{}', {})", kv.first, kv.second); });
    op::output("out", text, std::make_shared<engine::FileSink>(out));
    return engine::run(flow, opts);
  };
  flow_testing::write_file(in, "0\n1\n2\n");
  run_files();
  EXPECT_EQ(flow_testing::read_file(out), "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n");
  flow_testing::write_file(in, "0\n1\n2\n3\n4\n");
  run_files();
  EXPECT_EQ(flow_testing::read_file(out), "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n('ALL', 6)\n('ALL', 10)\n");
  run_files();
  EXPECT_EQ(flow_testing::read_file(out), "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n('ALL', 6)\n('ALL', 10)\n");
}

// A worker writes its changed keys at the end of an epoch, in key group and
// key order, through the table entries it noted while the epoch ran unless
// the table has moved them since (it grew, or a key was erased). Over one
// long epoch in which the tables grow many times and keys are deleted, and
// over an epoch per item, with keys that share their first 8 bytes
// ("p0-k12345", "p0-k12346"), the committed state is the reference's. The
// one long epoch's commit gets each worker's thousands of keys (more than
// there are key groups) as one sorted run.
TEST(RecoveryTest, CommittedStateIsTheReferenceWhileTablesGrowAndKeysAreDeleted) {
  const Parts parts = flow_testing::sum_items(2, 20000, 15000, 7, /*del_every=*/4);
  const auto expected = sum_reference(parts);
  ASSERT_GT(expected.state.size(), 5000u);
  for (const double interval : {1000.0, 0.0}) {
    SCOPED_TRACE(fmt::format("interval {}", interval));
    TempDir tmp;
    auto opts = recovery_options(tmp.sub("state"), 2, interval);
    flow_testing::CountingStore store(engine::RocksStore::open(opts.state_dir, flow_testing::sum_identity()));
    opts.store = &store;
    auto out = collected<std::string>();
    flow_testing::run_sum(opts, parts, out);
    EXPECT_EQ(flow_testing::by_first_word(out->snapshot()), expected.outputs);
    const auto committed = flow_testing::read_sum_committed(store.inner(), parts.size());
    EXPECT_EQ(committed.state, expected.state);
    EXPECT_EQ(committed.offsets, flow_testing::part_sizes(parts));
    if (interval > 0) {
      EXPECT_EQ(store.commits(), 1u);
      EXPECT_LE(store.most_state_runs(), 2u) << "a worker's changed keys were not written in key order";
    }
  }
}

// A sink whose position never moves (like Kafka's: the broker keeps the
// messages) still has its writes made durable before the epoch that made them
// commits: every epoch that wrote hands its syncer to the commit, not only
// the first one.
class AckSink final : public engine::Sink<std::string> {
 public:
  struct Counts {
    std::atomic<uint64_t> written{0};
    std::atomic<uint64_t> acked{0};  // writes a sync covered
  };
  explicit AckSink(std::shared_ptr<Counts> counts) : counts_(std::move(counts)) {}
  std::vector<std::string> list_parts() const override { return {"topic"}; }
  std::unique_ptr<engine::SinkPartition<std::string>> build_part(const std::string&,
                                                                 const std::optional<std::string>&) const override {
    return std::make_unique<Part>(counts_);
  }

 private:
  struct Part final : engine::SinkPartition<std::string> {
    explicit Part(std::shared_ptr<Counts> c) : counts(std::move(c)) {}
    void write(std::string&&) override { ++counts->written; }
    std::string snapshot(bool) override { return ""; }
    std::function<void()> syncer() override {
      return [c = counts, upto = counts->written.load()] {
        uint64_t seen = c->acked.load();
        while (seen < upto && !c->acked.compare_exchange_weak(seen, upto)) {
        }
      };
    }
    std::shared_ptr<Counts> counts;
  };
  std::shared_ptr<Counts> counts_;
};

TEST(RecoveryTest, ASinkWhosePositionNeverMovesHasItsLastEpochsWritesSyncedBeforeTheyCommit) {
  TempDir tmp;
  const auto opts = recovery_options(tmp.sub("state"), 1, 0.0);  // an epoch per item
  auto counts = std::make_shared<AckSink::Counts>();
  std::vector<std::string> items;
  for (int i = 0; i < 300; ++i) items.push_back(fmt::format("m{}", i));
  engine::Dataflow flow("acks");
  auto in = op::input("in", flow, std::make_shared<engine::TestingSource<std::string>>(items));
  op::output("out", in, std::make_shared<AckSink>(counts));
  engine::run(flow, opts);
  EXPECT_EQ(counts->written.load(), items.size());
  // However the commit thread grouped the 300 epochs, the last commit ran the
  // sync of the last epoch that wrote (with only the first epoch's sync, this
  // is the first item alone).
  EXPECT_EQ(counts->acked.load(), items.size()) << "epochs were committed with their writes unacknowledged";
}

// ---- stop by a failing step, resume ------------------------------------------------

struct StopCase {
  uint32_t workers;
  double interval;
  size_t source_batch;
  engine::SnapshotMode mode;
};

// How gtest prints a stop-and-resume configuration.
void PrintTo(const StopCase& c, std::ostream* os) {
  *os << fmt::format("{} workers, interval {}, source batch {}, {} mode", c.workers, c.interval, c.source_batch,
                     c.mode == engine::SnapshotMode::kBatch ? "batch" : "immediate");
}

class StopAndResumeTest : public ::testing::TestWithParam<StopCase> {};

// A keyed flow stopped twice by a step that throws on one item (policy fail),
// then "fixed": after each stop the store holds one consistent committed
// epoch that excludes the failing item; the last run finishes with the output
// and state of an uninterrupted run.
TEST_P(StopAndResumeTest, FinishesLikeAnUninterruptedRun) {
  const StopCase c = GetParam();
  Watchdog dog(std::chrono::seconds(120), "StopAndResumeTest");
  TempDir tmp;
  const Parts parts = sum_items(3, 40, 5, 7, /*del_every=*/9);
  auto opts = recovery_options(tmp.sub("state"), c.workers, c.interval, c.mode);
  opts.source_batch = c.source_batch;
  auto out = collected<std::string>();

  // (partition, index) of the poison: the first fixed, the second an item the
  // first stop left uncommitted (workers read their partitions at their own
  // pace, so a fixed index may already be committed by then).
  std::pair<size_t, size_t> stop = {0, 13};
  for (int round = 0; round < 2; ++round) {
    const auto [p, i] = stop;
    SCOPED_TRACE(fmt::format("stopped at partition {} item {}", p, i));
    const std::string poison = parts[p][i];
    const std::string msg = error_message_of<engine::StepError>([&] { run_sum(opts, parts, out, {poison}); });
    EXPECT_NE(msg.find("poisoned item"), std::string::npos) << msg;
    const auto committed = reopen_sum_committed(opts.state_dir, parts.size());
    expect_consistent(committed, parts);
    EXPECT_LE(committed.offsets[p], i) << "the failing item's epoch was committed";
    if (committed.commit) {
      EXPECT_EQ(committed.commit->workers, c.workers);
    } else {
      // Nothing committed: the next run is a fresh start, which a TestingSink
      // does not treat as one (see TestingSinkTest); start from a fresh sink.
      out = collected<std::string>();
    }
    const auto least = std::min_element(committed.offsets.begin(), committed.offsets.end());
    stop = {static_cast<size_t>(least - committed.offsets.begin()), *least + (parts[0].size() - *least) / 2};
  }
  const auto stats = run_sum(opts, parts, out);
  const auto final_state = reopen_sum_committed(opts.state_dir, parts.size());
  expect_finished(out->snapshot(), final_state, parts);
  EXPECT_EQ(stats.committed_epoch, final_state.commit ? final_state.commit->epoch : 0);
}

INSTANTIATE_TEST_SUITE_P(Configs, StopAndResumeTest,
                         ::testing::Values(StopCase{1, 0, 1024, engine::SnapshotMode::kBatch},
                                           StopCase{2, 0, 1024, engine::SnapshotMode::kBatch},
                                           StopCase{4, 0, 1024, engine::SnapshotMode::kBatch},
                                           StopCase{2, 0, 1024, engine::SnapshotMode::kImmediate},
                                           StopCase{3, 0.0005, 2, engine::SnapshotMode::kBatch},
                                           StopCase{2, 0.0005, 3, engine::SnapshotMode::kImmediate},
                                           StopCase{2, 10, 1024,
                                                    engine::SnapshotMode::kBatch}),  // one epoch: nothing commits
                         [](const auto& info) {
                           return fmt::format("w{}_{}_batch{}_{}", info.param.workers,
                                              info.param.interval == 0 ? "s0" : "timed", info.param.source_batch,
                                              info.param.mode == engine::SnapshotMode::kBatch ? "batch" : "immediate");
                         });

// A run that fails before its first commit leaves nothing committed; the next
// run starts afresh and its sink must hold only that run's output, as a
// FileSink does (it truncates to 0 when there is no committed position).
TEST(FreshStartTest, FileSinkDropsTheOutputOfARunThatCommittedNothing) {
  TempDir tmp;
  const std::string in = tmp.sub("in.txt");
  const std::string out = tmp.sub("out.txt");
  const std::vector<std::string> lines = {"a 1", "b 2", "a 3", "b 4", "a 5", "c 6"};
  std::string content;
  for (const auto& l : lines) content += l + "\n";
  flow_testing::write_file(in, content);
  const auto opts = recovery_options(tmp.sub("state"), 1, 3600);  // one epoch: the failure comes before any commit
  auto run_files = [&](std::set<std::string> poison) {
    engine::Dataflow flow{std::string(flow_testing::kSumFlow)};
    flow_testing::build_sum_flow(flow, std::make_shared<engine::FileSource>(in),
                                 std::make_shared<engine::FileSink>(out), std::move(poison));
    engine::run(flow, opts);
  };
  error_message_of<engine::StepError>([&] { run_files({"a 5"}); });
  EXPECT_FALSE(reopen_sum_committed(opts.state_dir, 1).commit.has_value());
  run_files({});
  EXPECT_EQ(flow_testing::by_first_word(flow_testing::read_lines(out)), sum_reference({lines}).outputs);
}

// The same with a TestingSink, documented to have "the same resume semantics
// as the file ones".
TEST(FreshStartTest, TestingSinkDropsTheOutputOfARunThatCommittedNothing) {
  TempDir tmp;
  const Parts parts = {{"a 1", "b 2", "a 3", "b 4", "a 5", "c 6"}};
  const auto opts = recovery_options(tmp.sub("state"), 1, 3600);
  auto out = collected<std::string>();
  error_message_of<engine::StepError>([&] { run_sum(opts, parts, out, {"a 5"}); });
  EXPECT_FALSE(reopen_sum_committed(opts.state_dir, 1).commit.has_value());
  run_sum(opts, parts, out);
  EXPECT_EQ(out->snapshot().size(), parts[0].size()) << "items of the failed, uncommitted run were kept";
  EXPECT_EQ(flow_testing::by_first_word(out->snapshot()), sum_reference(parts).outputs);
}

// ---- rescale -------------------------------------------------------------------

class RescaleTest : public ::testing::TestWithParam<engine::SnapshotMode> {};

// Resumed with 4, then 2, then 3 workers: key groups move to their new owners
// (read_state fails the test on a key stored under the wrong key group), each
// group is read by one worker only once, and the result equals the reference.
TEST_P(RescaleTest, FourThenTwoThenThreeWorkers) {
  Watchdog dog(std::chrono::seconds(120), "RescaleTest");
  TempDir tmp;
  const Parts parts = sum_items(6, 30, 8, 11, /*del_every=*/11);
  auto out = collected<std::string>();
  const std::string dir = tmp.sub("state");

  auto opts = recovery_options(dir, 4, 0, GetParam());
  error_message_of<engine::StepError>([&] { run_sum(opts, parts, out, {parts[1][12]}); });
  auto c = reopen_sum_committed(dir, parts.size());
  expect_consistent(c, parts);
  ASSERT_TRUE(c.commit.has_value());
  EXPECT_EQ(c.commit->workers, 4u);
  EXPECT_GT(c.state.size(), 0u);

  opts.workers = 2;
  opts.key_groups = 64;  // only a new state dir takes this; the existing one keeps 1024
  error_message_of<engine::StepError>([&] { run_sum(opts, parts, out, {parts[4][22]}); });
  c = reopen_sum_committed(dir, parts.size());
  expect_consistent(c, parts);
  ASSERT_TRUE(c.commit.has_value());
  EXPECT_EQ(c.commit->workers, 2u);
  EXPECT_EQ(c.commit->key_groups, 1024u);
  EXPECT_GE(c.offsets[4], 15u) << "the second run made no progress";

  // The last run goes through a CountingStore to see which key groups it read.
  {
    flow_testing::CountingStore counting(engine::RocksStore::open(dir, flow_testing::sum_identity()));
    engine::RunOptions last = opts;
    last.workers = 3;
    last.state_dir.clear();
    last.store = &counting;
    run_sum(last, parts, out);
    std::map<std::string, int> reads;
    for (const auto& prefix : counting.scan_prefixes()) ++reads[prefix];
    for (const auto& [prefix, n] : reads) EXPECT_EQ(n, 1) << "a key group was read " << n << " times";
  }
  c = reopen_sum_committed(dir, parts.size());
  ASSERT_TRUE(c.commit.has_value());
  EXPECT_EQ(c.commit->workers, 3u);
  expect_finished(out->snapshot(), c, parts);
}

INSTANTIATE_TEST_SUITE_P(Modes, RescaleTest,
                         ::testing::Values(engine::SnapshotMode::kBatch, engine::SnapshotMode::kImmediate),
                         [](const auto& info) {
                           return info.param == engine::SnapshotMode::kBatch ? "batch" : "immediate";
                         });

// ---- error policies --------------------------------------------------------------

// Lines joined into one file's content.
std::string file_content(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// The keyed-sum flow on a FileSource and FileSink.
engine::RunStats run_sum_files(const engine::RunOptions& opts, const std::string& in, const std::string& out,
                               std::set<std::string> poison = {}) {
  engine::Dataflow flow{std::string(flow_testing::kSumFlow)};
  flow_testing::build_sum_flow(flow, engine::file_or_dir_source(in), std::make_shared<engine::FileSink>(out),
                               std::move(poison));
  return engine::run(flow, opts);
}

class FailPolicyTest : public ::testing::TestWithParam<uint32_t> {};

// With --on-error fail a throwing step stops the run with one line naming the
// step, the file and line, the item and the exception; the epoch committed
// before it is intact (offset, state, output file) and a fixed run resumes.
TEST_P(FailPolicyTest, ErrorNamesStepSourceLineAndItemAndKeepsTheCommittedEpoch) {
  TempDir tmp;
  const std::string in = tmp.sub("events.txt");
  const std::string out = tmp.sub("out.txt");
  const std::vector<std::string> lines = {"a 1", "b 2", "a 3", "b 7", "c 5", "a 4"};
  flow_testing::write_file(in, file_content(lines));
  const auto opts = recovery_options(tmp.sub("state"), GetParam(), 0);

  const std::string msg = error_message_of<engine::StepError>([&] { run_sum_files(opts, in, out, {"b 7"}); });
  EXPECT_NE(msg.find("'parse'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(in + " line 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("b 7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("poisoned item"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  const Parts first3 = {{lines.begin(), lines.begin() + 3}};
  const auto ref3 = sum_reference(first3);
  {
    const auto store = engine::RocksStore::open(opts.state_dir, flow_testing::sum_identity());
    ASSERT_TRUE(store->committed().has_value());
    const auto d = store->describe();
    ASSERT_TRUE(d.source_offsets.count("inp") && d.source_offsets.at("inp").count(in));
    EXPECT_EQ(d.source_offsets.at("inp").at(in), fmt::format("{} {}", file_content(first3[0]).size(), 4));
    EXPECT_EQ(read_state<flow_testing::SumState>(*store, flow_testing::kSumStep), ref3.state);
    ASSERT_TRUE(d.sink_positions.count("out") && d.sink_positions.at("out").count(out));
    EXPECT_EQ(d.sink_positions.at("out").at(out), std::to_string(flow_testing::read_file(out).size()));
    EXPECT_EQ(flow_testing::by_first_word(flow_testing::read_lines(out)), ref3.outputs);
  }

  run_sum_files(opts, in, out);
  const auto ref = sum_reference({lines});
  EXPECT_EQ(flow_testing::by_first_word(flow_testing::read_lines(out)), ref.outputs);
  const auto store = engine::RocksStore::open_read_only(opts.state_dir);
  EXPECT_EQ(read_state<flow_testing::SumState>(*store, flow_testing::kSumStep), ref.state);
}

INSTANTIATE_TEST_SUITE_P(Workers, FailPolicyTest, ::testing::Values(1u, 2u));

// Dead letters of a file as JSON objects, one per line.
std::vector<nlohmann::json> read_dead_letters(const std::string& path) {
  std::vector<nlohmann::json> out;
  if (!fs::exists(path)) return out;
  for (const auto& line : flow_testing::read_lines(path)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "dead letter is not JSON: " << line;
    out.push_back(std::move(j));
  }
  return out;
}

// --on-error dead-letter:PATH on a directory of files: every bad line lands in
// PATH once as {step, source, line, item, error}, the run finishes with the
// good lines' results, and a resumed run after appending lines adds only the
// new bad lines.
TEST(DeadLetterTest, EveryBadLineOnceWithItsOrigin) {
  TempDir tmp;
  const std::string in_dir = tmp.sub("in");
  fs::create_directories(in_dir);
  const std::string out = tmp.sub("out.txt");
  const std::string dead = tmp.sub("dead.jsonl");
  Parts files = sum_items(2, 30, 4, 3, /*del_every=*/0, /*bad_every=*/5);
  const std::vector<std::string> names = {in_dir + "/a.txt", in_dir + "/b.txt"};
  auto opts = recovery_options(tmp.sub("state"), 2, 0);
  opts.on_error = engine::ErrorPolicy::kDeadLetter;
  opts.dead_letter_path = dead;

  auto check = [&](const Parts& all) {
    const auto ref = sum_reference(all);
    ASSERT_GT(ref.bad.size(), 2u);
    std::multiset<std::pair<std::string, uint64_t>> expected;
    for (const auto& [p, i] : ref.bad) expected.emplace(names[p], i + 1);
    std::multiset<std::pair<std::string, uint64_t>> got;
    for (const auto& j : read_dead_letters(dead)) {
      ASSERT_TRUE(j.contains("step") && j.contains("source") && j.contains("line") && j.contains("item") &&
                  j.contains("error"))
          << j.dump();
      EXPECT_EQ(j["step"], "parse");
      const std::string source = j["source"].get<std::string>();
      const uint64_t line = j["line"].get<uint64_t>();
      got.emplace(source, line);
      const size_t p = source == names[0] ? 0 : 1;
      ASSERT_EQ(source, names[p]);
      ASSERT_GE(line, 1u);
      ASSERT_LE(line, all[p].size());
      EXPECT_EQ(j["item"], all[p][line - 1]);
      EXPECT_NE(j["error"].get<std::string>().find("not a number"), std::string::npos) << j.dump();
    }
    EXPECT_EQ(got, expected);
    EXPECT_EQ(flow_testing::by_first_word(flow_testing::read_lines(out)), ref.outputs);
  };

  for (size_t p = 0; p < 2; ++p) {
    flow_testing::write_file(names[p], file_content({files[p].begin(), files[p].begin() + 20}));
  }
  run_sum_files(opts, in_dir, out);
  check({{files[0].begin(), files[0].begin() + 20}, {files[1].begin(), files[1].begin() + 20}});

  for (size_t p = 0; p < 2; ++p) flow_testing::write_file(names[p], file_content(files[p]));
  run_sum_files(opts, in_dir, out);
  check(files);
}

// A dead-letter file cut shorter than its committed length (changed outside
// the engine) is refused with a clear error, as a short FileSink output is.
TEST(DeadLetterTest, FileShorterThanItsCommittedLengthIsRefused) {
  TempDir tmp;
  const std::string in_dir = tmp.sub("in");
  fs::create_directories(in_dir);
  const std::string dead = tmp.sub("dead.jsonl");
  Parts files = sum_items(1, 30, 4, 3, /*del_every=*/0, /*bad_every=*/5);
  flow_testing::write_file(in_dir + "/a.txt", file_content(files[0]));
  auto opts = recovery_options(tmp.sub("state"), 1, 0);
  opts.on_error = engine::ErrorPolicy::kDeadLetter;
  opts.dead_letter_path = dead;
  run_sum_files(opts, in_dir, tmp.sub("out.txt"));
  ASSERT_GT(fs::file_size(dead), 10u);

  fs::resize_file(dead, 3);
  const std::string msg =
      error_message_of<engine::StateError>([&] { run_sum_files(opts, in_dir, tmp.sub("out.txt")); });
  EXPECT_NE(msg.find(dead), std::string::npos) << msg;
  EXPECT_EQ(fs::file_size(dead), 3u) << "the refused file was changed";
}

}  // namespace
