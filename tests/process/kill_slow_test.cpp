// Crash safety of the real `engine` binary: cart_join on a generated
// multi-file input is SIGKILLed at random moments (many of them during
// commits: snapshots every 20-50 ms) and resumed until it finishes, then its
// output is compared with an uninterrupted run and with a plain reference
// join written here. FileSink output and dead letters must be exactly-once,
// StdOutSink output at-least-once with nothing lost.

#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kEvents = 300000;
constexpr uint64_t kUsers = 20000;
constexpr uint64_t kFiles = 4;

// A kill plan for a run that takes about `slowdown` times an uninterrupted run
// without recovery (the loop then learns the real pace from the committed progress).
pt::KillPlan plan_for(double clean_seconds, double slowdown, int min_kills, uint64_t seed) {
  pt::KillPlan plan;
  plan.seed = pt::kill_seed(seed);
  plan.min_kills = min_kills;
  plan.expected_run_seconds = std::max(0.1, slowdown * clean_seconds);
  return plan;
}

// An uninterrupted run (what it printed and how long it took); fails the test if it does not exit 0.
pt::Outcome clean_run(const std::vector<std::string>& args) {
  auto o = pt::run_engine(args, pt::Seconds(120));
  EXPECT_TRUE(o.ok()) << o.describe();
  return o;
}

// Kill stories of `cart_join -w W -d S -s INTERVAL --output FILE` over `in`
// until `plan.min_kills` kills were made; each story's output must equal
// `ref_lines`. Returns the kills made.
int file_sink_kills(const std::string& parent, const pt::KillPlan& plan, const pt::CartInput& in,
                    const std::vector<std::string>& ref_lines, const std::string& workers,
                    const std::string& interval) {
  return pt::kill_rounds(parent, plan, 6, [&](const std::string& dir, const pt::KillPlan& p) {
    const std::string state = dir + "/state";
    const std::string out = dir + "/out.json";
    const auto result = pt::kill_loop(
        p,
        [&](int) {
          return std::vector<std::string>{"run", "cart_join", "-w",      workers, "-d",       state,
                                          "-s",  interval,    "--input", in.dir,  "--output", out};
        },
        [&] { return pt::committed_fraction(state, in.bytes); }, dir);
    if (!pt::loop_finished(result)) {
      ADD_FAILURE() << pt::loop_finished(result).message();
      return -1;
    }
    pt::expect_output_like_reference(out, ref_lines, result);
    return result.kills;
  });
}

TEST(KillSlow, FileSinkOutputIsExactlyOnce) {
  pt::TempDir tmp;
  const auto in = pt::make_cart_input(tmp.sub("in"), kEvents, kUsers, kFiles, 11);
  ASSERT_FALSE(HasFailure());

  const std::string ref_path = tmp.sub("ref.json");
  const auto clean = clean_run({"run", "cart_join", "-w", "2", "--input", in.dir, "--output", ref_path});
  ASSERT_TRUE(clean.ok());
  const auto ref_lines = pt::read_lines(ref_path);
  ASSERT_TRUE(pt::matches_reference(ref_lines, in.ref)) << "the uninterrupted run is already wrong";

  // The uninterrupted run matched the reference, so every kill story must equal it.
  EXPECT_GE(file_sink_kills(tmp.path(), plan_for(clean.seconds, 4, 20, 1001), in, ref_lines, "2", "0.02"), 20);
}

// Cheap epochs under kill -9: an epoch per item (-s 0, many epochs in flight,
// group commits) and 10 ms epochs, with 2 and 4 workers. The output of every
// kill story equals the uninterrupted run's.
struct EpochCase {
  const char* workers;
  const char* interval;
  const char* name;
};

class KillEpochs : public ::testing::TestWithParam<EpochCase> {};

TEST_P(KillEpochs, OutputEqualsAnUninterruptedRun) {
  const EpochCase c = GetParam();
  pt::TempDir tmp;
  const auto in = pt::make_cart_input(tmp.sub("in"), 100000, 8000, kFiles, 31);
  ASSERT_FALSE(HasFailure());
  const std::string ref_path = tmp.sub("ref.json");
  const auto clean = clean_run({"run", "cart_join", "-w", c.workers, "-s", c.interval, "-d", tmp.sub("clean-state"),
                                "--input", in.dir, "--output", ref_path});
  ASSERT_TRUE(clean.ok());
  const auto ref_lines = pt::read_lines(ref_path);
  ASSERT_TRUE(pt::matches_reference(ref_lines, in.ref)) << "the uninterrupted run is already wrong";

  EXPECT_GE(file_sink_kills(tmp.path(), plan_for(clean.seconds, 1.5, 20, 1201), in, ref_lines, c.workers, c.interval),
            20);
}

INSTANTIATE_TEST_SUITE_P(Intervals, KillEpochs,
                         ::testing::Values(EpochCase{"2", "0", "w2_per_item"}, EpochCase{"4", "0", "w4_per_item"},
                                           EpochCase{"2", "0.01", "w2_10ms"}, EpochCase{"4", "0.01", "w4_10ms"}),
                         [](const auto& info) { return std::string(info.param.name); });

// Per user, checks the at-least-once story of StdOutSink across attempts: each
// attempt prints a contiguous run of the user's clean sequence that starts no
// later than where the attempts before it got to (a replay, never a gap), and
// together they reach the end.
::testing::AssertionResult covers_with_replays(const std::vector<std::vector<std::string>>& attempts,
                                               const std::vector<std::string>& clean) {
  const auto expected = pt::lines_by_user(clean);
  std::map<std::string, size_t> reached;  // user -> clean lines covered so far
  for (size_t a = 0; a < attempts.size(); ++a) {
    const auto got = pt::lines_by_user(attempts[a]);
    if (got.count("<malformed>")) {
      return ::testing::AssertionFailure()
             << "attempt " << a << " printed a malformed line: " << got.at("<malformed>").front();
    }
    for (const auto& [user, lines] : got) {
      const auto it = expected.find(user);
      if (it == expected.end()) return ::testing::AssertionFailure() << "attempt " << a << ": unknown user " << user;
      const auto& seq = it->second;
      // Where this attempt's run starts in the clean sequence: the first line
      // identifies it (carts only grow, so a user's lines are all distinct).
      const auto start = std::find(seq.begin(), seq.end(), lines.front());
      if (start == seq.end()) {
        return ::testing::AssertionFailure()
               << "attempt " << a << " printed a line the clean run never did: " << lines.front();
      }
      const size_t from = static_cast<size_t>(start - seq.begin());
      size_t& done = reached[user];
      if (from > done) {
        return ::testing::AssertionFailure() << "user " << user << ": attempt " << a << " starts at update " << from
                                             << " but only " << done << " were printed before: updates lost";
      }
      if (from + lines.size() > seq.size() ||
          !std::equal(lines.begin(), lines.end(), seq.begin() + static_cast<std::ptrdiff_t>(from))) {
        return ::testing::AssertionFailure() << "user " << user << ": attempt " << a
                                             << " is not a contiguous run of the clean sequence from update " << from;
      }
      done = std::max(done, from + lines.size());
    }
  }
  for (const auto& [user, seq] : expected) {
    if (reached[user] != seq.size()) {
      return ::testing::AssertionFailure()
             << "user " << user << ": " << reached[user] << " of " << seq.size() << " updates ever printed";
    }
  }
  return ::testing::AssertionSuccess();
}

// The first run on a fresh -d dir, killed while it creates and initialises
// the state dir (and a little later), must leave a dir the same command resumes from.
TEST(KillSlow, KillWhileCreatingTheStateDirThenResume) {
  const auto clean = clean_run({"run", "cart_join", "-s", "0"});
  ASSERT_TRUE(clean.ok());
  const auto clean_lines = pt::complete_lines(clean.out);
  ASSERT_EQ(clean_lines.size(), 7u);

  int failures = 0;
  for (int k = 0; k < 16 && failures < 3; ++k) {
    const double delay = 0.002 * std::pow(1.4, k);  // 2 ms .. 310 ms
    pt::TempDir tmp;
    const std::vector<std::string> args = {"run", "cart_join", "-s", "0", "-d", tmp.sub("state")};
    {
      pt::Child child(pt::kEngine, args, tmp.sub("0.out"), tmp.sub("0.err"));
      child.wait_for(pt::Seconds(delay));
      child.kill_now();
    }
    const auto resume = pt::run_engine(args);
    const auto killed_out = pt::complete_lines(pt::read_file(tmp.sub("0.out")));
    if (!resume.ok()) {
      ++failures;
      ADD_FAILURE() << "killed " << delay * 1000 << " ms after start (state dir: "
                    << fmt::format("{}", fmt::join(pt::files_in(tmp.sub("state")), " ")) << "); the rerun "
                    << resume.describe();
      continue;
    }
    EXPECT_TRUE(covers_with_replays({killed_out, resume.out_lines()}, clean_lines))
        << "killed " << delay * 1000 << " ms after start";
  }
}

// The state dir is lost and a run restores it from the -b backup; killed
// while it restores (and a little later), the same command must still resume.
TEST(KillSlow, KillWhileRestoringFromBackupThenResume) {
  pt::TempDir tmp;
  const auto in = pt::make_cart_input(tmp.sub("in"), 100000, 10000, 2, 14);
  ASSERT_FALSE(HasFailure());
  const std::string state = tmp.sub("state");
  const std::string backup = tmp.sub("backup");
  const std::string out = tmp.sub("out.json");
  const std::vector<std::string> args = {"run",  "cart_join", "-w",   "2",       "-d",   state,      "-b",
                                         backup, "-s",        "0.05", "--input", in.dir, "--output", out};
  const auto first = clean_run(args);
  ASSERT_TRUE(first.ok());
  const std::string full = pt::read_file(out);
  ASSERT_TRUE(pt::matches_reference(pt::split_lines(full), in.ref));

  int failures = 0;
  for (int k = 0; k < 14 && failures < 3; ++k) {
    const double delay = 0.002 * std::pow(1.45, k);  // 2 ms .. 250 ms
    fs::remove_all(state);
    {
      pt::Child child(pt::kEngine, args, tmp.sub("k.out"), tmp.sub("k.err"));
      child.wait_for(pt::Seconds(delay));
      child.kill_now();
    }
    const auto resume = pt::run_engine(args);
    if (!resume.ok()) {
      ++failures;
      ADD_FAILURE() << "killed " << delay * 1000 << " ms after start while restoring (state dir: "
                    << fmt::format("{}", fmt::join(pt::files_in(state), " ")) << "); the rerun " << resume.describe();
      continue;
    }
    // Everything was committed before the backup: nothing new, the output unchanged.
    EXPECT_EQ(pt::read_file(out), full) << "killed " << delay * 1000 << " ms after start";
  }
}

TEST(KillSlow, StdOutOutputIsAtLeastOnceImmediateMode) {
  pt::TempDir tmp;
  const auto in = pt::make_cart_input(tmp.sub("in"), kEvents, kUsers, kFiles, 12);
  ASSERT_FALSE(HasFailure());

  const auto clean = clean_run({"run", "cart_join", "-w", "2", "--input", in.dir});
  ASSERT_TRUE(clean.ok());
  const auto clean_lines = pt::complete_lines(clean.out);
  ASSERT_TRUE(pt::matches_reference(clean_lines, in.ref)) << "the uninterrupted run is already wrong";

  const auto plan = plan_for(clean.seconds, 10, 12, 2002);
  const int kills = pt::kill_rounds(tmp.path(), plan, 6, [&](const std::string& dir, const pt::KillPlan& p) {
    const std::string state = dir + "/state";
    const auto result = pt::kill_loop(
        p,
        [&](int) {
          return std::vector<std::string>{"run",  "cart_join",       "-w",        "2",       "-d",  state, "-s",
                                          "0.05", "--snapshot-mode", "immediate", "--input", in.dir};
        },
        [&] { return pt::committed_fraction(state, in.bytes); }, dir);
    if (!pt::loop_finished(result)) {
      ADD_FAILURE() << pt::loop_finished(result).message();
      return -1;
    }
    const auto outputs = pt::attempt_outputs(result);
    const std::string last = pt::read_file(result.attempts.back().out_path);
    EXPECT_TRUE(last.empty() || last.back() == '\n') << "the finished run tore its last line";

    std::set<std::string> printed;
    for (const auto& lines : outputs) printed.insert(lines.begin(), lines.end());
    size_t missing = 0;
    for (const auto& line : clean_lines) missing += printed.count(line) ? 0 : 1;
    EXPECT_EQ(missing, 0u) << "lines of the clean run never printed";
    EXPECT_TRUE(covers_with_replays(outputs, clean_lines)) << "kills at " << result.schedule();
    return result.kills;
  });
  EXPECT_GE(kills, 12);
}

// A bad line put into a generated file, where the engine will name it.
struct BadLine {
  std::string source;  // the file, as the engine names the partition
  uint64_t line = 0;   // 1-based
  std::string text;
};

// Inserts `per_file` bad lines of several kinds into every file of `files` at
// seeded random places; returns where they went.
std::vector<BadLine> sprinkle_bad_lines(const std::vector<std::string>& files, int per_file, uint64_t seed) {
  const std::vector<std::string> kinds = {
      "FAIL HERE",
      R"({"user_id": 7, "type": "order", "order_id": 1})",
      R"({"user_id": "u1", "type": "refund", "order_id": 1})",
      R"({"user_id": "u2", "type": "order", "order_id": "x"})",
      R"({"user_id": "u3", "type": "order"})",
      R"([1, 2, 3])",
      R"({"user_id": "u4", "type": "payment", "order_id": 1.5})",
      R"({"user_id": "u5", "type": "order", "order_id": 9)",
  };
  std::mt19937_64 rng(seed);
  std::vector<BadLine> bad;
  for (const auto& path : files) {
    auto lines = pt::read_lines(path);
    std::set<size_t> at;  // indexes in the new file
    std::uniform_int_distribution<size_t> pos(0, lines.size() + static_cast<size_t>(per_file) - 1);
    while (at.size() < static_cast<size_t>(per_file)) at.insert(pos(rng));
    std::string text;
    size_t next = 0;
    for (size_t i = 0; i < lines.size() + at.size(); ++i) {
      if (at.count(i)) {
        const std::string& b = kinds[(bad.size()) % kinds.size()];
        bad.push_back({path, i + 1, b});
        text += b;
      } else {
        text += lines[next++];
      }
      text += '\n';
    }
    pt::write_file(path, text);
  }
  return bad;
}

// Checks a dead-letter file: one well-formed JSON line per bad line, none doubled, none missing.
::testing::AssertionResult dead_letters_exactly_once(const std::string& path, const std::vector<BadLine>& bad) {
  if (!fs::exists(path)) return ::testing::AssertionFailure() << "no dead-letter file " << path;
  const std::string text = pt::read_file(path);
  if (!text.empty() && text.back() != '\n') return ::testing::AssertionFailure() << "torn last dead letter";
  std::map<std::pair<std::string, uint64_t>, std::string> expected;
  for (const auto& b : bad) expected[{b.source, b.line}] = b.text;
  std::map<std::pair<std::string, uint64_t>, int> seen;
  for (const auto& line : pt::split_lines(text)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("source") || !j.contains("line") || !j.contains("item") || !j.contains("step") ||
        !j.contains("error")) {
      return ::testing::AssertionFailure() << "malformed dead letter: " << line;
    }
    const std::pair<std::string, uint64_t> where{j["source"].get<std::string>(), j["line"].get<uint64_t>()};
    const auto it = expected.find(where);
    if (it == expected.end()) return ::testing::AssertionFailure() << "dead letter for a good line: " << line;
    if (j["item"] != it->second) return ::testing::AssertionFailure() << "wrong item in " << line;
    if (j["step"] != "deserialize") return ::testing::AssertionFailure() << "wrong step in " << line;
    if (++seen[where] > 1) return ::testing::AssertionFailure() << "dead letter written twice: " << line;
  }
  if (seen.size() != expected.size()) {
    for (const auto& [where, item] : expected) {
      if (!seen.count(where)) {
        return ::testing::AssertionFailure()
               << seen.size() << " of " << expected.size() << " bad lines dead-lettered; missing " << where.first
               << " line " << where.second;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(KillSlow, DeadLettersAndFileOutputAreExactlyOnceImmediateMode) {
  pt::TempDir tmp;
  pt::CartInput in;
  in.dir = tmp.sub("in");
  pt::generate_carts(in.dir, kEvents, kUsers, kFiles, 13);
  ASSERT_FALSE(HasFailure());
  in.files = pt::files_in(in.dir);
  const auto bad = sprinkle_bad_lines(in.files, 10, 3003);
  for (const auto& f : in.files) in.bytes += fs::file_size(f);
  in.ref = pt::reference_join(in.files);
  ASSERT_EQ(in.ref.bad_lines, bad.size());
  ASSERT_EQ(in.ref.events, kEvents);

  // Uninterrupted first: the baseline must be right before kills can be judged.
  const std::string ref_path = tmp.sub("ref.json");
  const std::string ref_dead = tmp.sub("ref-dead.jsonl");
  const auto clean = clean_run({"run", "cart_join", "-w", "2", "--strict", "--on-error", "dead-letter:" + ref_dead,
                                "--input", in.dir, "--output", ref_path});
  ASSERT_TRUE(clean.ok());
  ASSERT_TRUE(pt::matches_reference(pt::read_lines(ref_path), in.ref));
  ASSERT_TRUE(dead_letters_exactly_once(ref_dead, bad));

  const auto plan = plan_for(clean.seconds, 10, 12, 3004);
  const int kills = pt::kill_rounds(tmp.path(), plan, 6, [&](const std::string& dir, const pt::KillPlan& p) {
    const std::string state = dir + "/state";
    const std::string out = dir + "/out.json";
    const std::string dead = dir + "/dead.jsonl";
    const auto result = pt::kill_loop(
        p,
        [&](int) {
          return std::vector<std::string>{"run",
                                          "cart_join",
                                          "-w",
                                          "2",
                                          "-d",
                                          state,
                                          "-s",
                                          "0.05",
                                          "--snapshot-mode",
                                          "immediate",
                                          "--strict",
                                          "--on-error",
                                          "dead-letter:" + dead,
                                          "--input",
                                          in.dir,
                                          "--output",
                                          out};
        },
        [&] { return pt::committed_fraction(state, in.bytes); }, dir);
    if (!pt::loop_finished(result)) {
      ADD_FAILURE() << pt::loop_finished(result).message();
      return -1;
    }
    EXPECT_TRUE(dead_letters_exactly_once(dead, bad)) << "kills at " << result.schedule();
    const std::string text = pt::read_file(out);
    EXPECT_TRUE(!text.empty() && text.back() == '\n') << "empty output or a torn last line";
    EXPECT_TRUE(pt::matches_reference(pt::split_lines(text), in.ref)) << "kills at " << result.schedule();
    return result.kills;
  });
  EXPECT_GE(kills, 12);
}

}  // namespace
