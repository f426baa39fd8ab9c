// Windows under crashes, rescale and idleness, with the real binary:
// cart_stats on a generated multi-file input is SIGKILLed at random moments
// and resumed until it finishes (tumbling and session windows), or resumed
// with another worker count after every kill (4 -> 2 -> 3, sliding windows);
// its window lines and late lines must equal the reference, each exactly
// once. A followed input whose users all go idle while one keeps the event
// time moving ends with the state of that one user only, in memory and in
// the store.

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/cart_stats_reference.hpp"
#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace ref = cart_stats_reference;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kEvents = 150000;
constexpr uint64_t kUsers = 4000;
constexpr uint64_t kFiles = 4;
constexpr int64_t kLateness = 5;

struct Input {
  std::string dir;
  uint64_t bytes = 0;
};

Input make_input(const std::string& dir, uint64_t seed) {
  ref::generate(dir, kEvents, kUsers, kFiles, seed, 4000, 997);
  Input in{dir, 0};
  for (const auto& f : pt::files_in(dir)) in.bytes += fs::file_size(f);
  return in;
}

std::vector<std::string> run_args(const std::string& window, int workers, const std::string& dir, const Input& in) {
  return {"run",        "cart_stats",
          "-w",         std::to_string(workers),
          "-d",         dir + "/state",
          "-s",         "0.02",
          "--input",    in.dir,
          "--window",   window,
          "--lateness", std::to_string(kLateness),
          "--output",   dir + "/out.json",
          "--late",     dir + "/late.json"};
}

// Kill stories of cart_stats (workers_of(attempt) workers) until 20 kills
// were made; each story's window and late lines must equal `expected`, each once.
void kill_stories(const std::string& window, const std::function<int(int)>& workers_of, uint64_t seed) {
  pt::TempDir tmp;
  const auto in = make_input(tmp.sub("in"), seed);
  const auto expected = ref::reference(pt::files_in(in.dir), window, kLateness);
  ASSERT_FALSE(expected.late.empty());

  // An uninterrupted run, for the pace of the kills and as a first check.
  const std::string clean_dir = tmp.sub("clean");
  fs::create_directories(clean_dir);
  const auto clean = pt::run_engine(run_args(window, workers_of(0), clean_dir, in));
  ASSERT_TRUE(clean.ok()) << clean.describe();
  ASSERT_TRUE(ref::as_set(pt::read_lines(clean_dir + "/out.json")) == expected.lines)
      << "the uninterrupted run is already wrong";

  pt::KillPlan plan;
  plan.seed = pt::kill_seed(seed);
  plan.min_kills = 20;
  plan.expected_run_seconds = std::max(0.1, 3 * clean.seconds);
  const int kills = pt::kill_rounds(tmp.path(), plan, 6, [&](const std::string& dir, const pt::KillPlan& p) {
    const auto result = pt::kill_loop(
        p, [&](int attempt) { return run_args(window, workers_of(attempt), dir, in); },
        [&] { return pt::committed_fraction(dir + "/state", in.bytes); }, dir);
    if (!pt::loop_finished(result)) {
      ADD_FAILURE() << pt::loop_finished(result).message();
      return -1;
    }
    const std::string out = pt::read_file(dir + "/out.json");
    EXPECT_TRUE(!out.empty() && out.back() == '\n') << "empty output or a torn last line";
    EXPECT_TRUE(ref::as_set(pt::split_lines(out)) == expected.lines)
        << "the windows differ from an uninterrupted run; kills at " << result.schedule();
    EXPECT_TRUE(ref::as_set(pt::read_lines(dir + "/late.json")) == expected.late)
        << "the late lines differ; kills at " << result.schedule();
    return result.kills;
  });
  EXPECT_GE(kills, 20);
}

TEST(CartStatsSlow, TumblingWindowsSurviveKills) {
  kill_stories(
      "tumbling:60", [](int) { return 2; }, 7001);
}

TEST(CartStatsSlow, SessionsSurviveKills) {
  kill_stories(
      "session:30", [](int) { return 4; }, 7002);
}

TEST(CartStatsSlow, SlidingWindowsSurviveKillsAndRescale) {
  const std::vector<int> cycle = {4, 2, 3};
  kill_stories(
      "sliding:60:15", [&](int attempt) { return cycle[static_cast<size_t>(attempt) % cycle.size()]; }, 7003);
}

// Every user goes idle; one more user ("clock") keeps the event time moving
// for two minutes. The input is followed, so it never ends: only the
// watermark can close the sessions. When the run is stopped, the window step
// holds the clock's open session and nothing else, in memory and in the store.
TEST(CartStatsSlow, IdleSessionsLeaveNoState) {
  pt::TempDir tmp;
  const std::string in_dir = tmp.sub("in");
  ref::generate(in_dir, 100000, 3000, 1, 8, 2000, 0);
  const std::string file = pt::files_in(in_dir).at(0);
  int64_t last = 0;
  for (const auto& e : ref::read_events(file)) last = std::max(last, e.ts);
  {
    std::ofstream f(file, std::ios::app);
    for (int i = 1; i <= 120; ++i) {
      f << fmt::format(R"({{"user_id": "clock", "type": "order", "order_id": {}, "ts": "{}"}})", i,
                       ref::iso(last + i * 1000))
        << "\n";
    }
  }
  auto expected = ref::reference({file}, "session:30", kLateness);
  ASSERT_TRUE(expected.late.empty());
  ASSERT_GT(expected.lines.size(), 3000u) << "every user should have had sessions";
  // The clock's session is still open when the run stops.
  for (auto it = expected.lines.begin(); it != expected.lines.end();) {
    it = pt::contains(*it, R"("user_id": "clock")") ? expected.lines.erase(it) : std::next(it);
  }

  const std::string state = tmp.sub("state");
  const std::string out = tmp.sub("out.json");
  const std::string stats = tmp.sub("stats.json");
  pt::Child child(pt::kEngine,
                  {"run", "cart_stats", "-w", "2", "-d", state, "-s", "0.02", "--input", file, "--follow", "--window",
                   "session:30", "--lateness", std::to_string(kLateness), "--output", out, "--stats", stats},
                  tmp.sub("run.out"), tmp.sub("run.err"));
  const auto deadline = pt::Clock::now() + std::chrono::seconds(60);
  while (pt::Clock::now() < deadline && child.running() &&
         (pt::complete_lines(fs::exists(out) ? pt::read_file(out) : "").size() < expected.lines.size() ||
          pt::committed_fraction(state, fs::file_size(file)) < 1.0)) {
    child.wait_for(pt::Seconds(0.05));
  }
  ASSERT_TRUE(child.running()) << "a followed run ended by itself: " << pt::read_file(tmp.sub("run.err"));
  child.signal(SIGTERM);
  ASSERT_TRUE(child.wait_for(pt::Seconds(30)));
  ASSERT_TRUE(pt::outcome_of(child.status(), child.seconds()).ok()) << pt::read_file(tmp.sub("run.err"));

  EXPECT_TRUE(ref::as_set(pt::read_lines(out)) == expected.lines) << "the closed sessions differ from the reference";
  const auto j = nlohmann::json::parse(pt::read_file(stats));
  EXPECT_EQ(j.at("keys_in_memory").at("window").get<uint64_t>(), 1u) << j.dump();
  const auto o = pt::run_engine({"inspect", state, "--json"});
  ASSERT_TRUE(o.ok()) << o.describe();
  const auto inspect = nlohmann::json::parse(o.out);
  EXPECT_EQ(inspect.at("keys_per_step").at("window").get<uint64_t>(), 1u) << o.out;
}

}  // namespace
