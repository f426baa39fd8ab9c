// Rescaling across crashes: the kill loop of kill_slow_test, but every resume
// uses another worker count (4 -> 2 -> 3 -> 4 ...), so key groups move to new
// owners after every SIGKILL. The FileSink output must still equal an
// uninterrupted run's, and `engine inspect` must report the last worker count.

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kEvents = 300000;
constexpr uint64_t kUsers = 20000;
constexpr uint64_t kFiles = 4;
const std::vector<int> kWorkerCycle = {4, 2, 3};

TEST(RescaleSlow, KilledRunsResumedWithChangingWorkerCounts) {
  pt::TempDir tmp;
  const auto in = pt::make_cart_input(tmp.sub("in"), kEvents, kUsers, kFiles, 21);
  ASSERT_FALSE(HasFailure());

  const std::string ref_path = tmp.sub("ref.json");
  const auto clean =
      pt::run_engine({"run", "cart_join", "-w", "2", "--input", in.dir, "--output", ref_path}, pt::Seconds(120));
  ASSERT_TRUE(clean.ok()) << clean.describe();
  const auto ref_lines = pt::read_lines(ref_path);
  ASSERT_TRUE(pt::matches_reference(ref_lines, in.ref)) << "the uninterrupted run is already wrong";

  pt::KillPlan plan;
  plan.seed = pt::kill_seed(4004);
  plan.min_kills = 20;
  plan.expected_run_seconds = std::max(0.1, 4 * clean.seconds);  // the loop then learns the real pace
  auto workers_of = [](int attempt) { return kWorkerCycle[static_cast<size_t>(attempt) % kWorkerCycle.size()]; };
  const int kills = pt::kill_rounds(tmp.path(), plan, 6, [&](const std::string& dir, const pt::KillPlan& p) {
    const std::string state = dir + "/state";
    const std::string out = dir + "/out.json";
    const auto result = pt::kill_loop(
        p,
        [&](int attempt) {
          return std::vector<std::string>{"run",     "cart_join", "-w",       std::to_string(workers_of(attempt)),
                                          "-d",      state,       "-s",       "0.02",
                                          "--input", in.dir,      "--output", out};
        },
        [&] { return pt::committed_fraction(state, in.bytes); }, dir);
    if (!pt::loop_finished(result)) {
      ADD_FAILURE() << pt::loop_finished(result).message();
      return -1;
    }
    // The uninterrupted run matched the reference, so this one must equal it.
    pt::expect_output_like_reference(out, ref_lines, result);

    // inspect: the last run's worker count, one key per user, every input
    // read to its end, the output committed at its full length.
    const int last_workers = workers_of(static_cast<int>(result.attempts.size()) - 1);
    const auto o = pt::run_engine({"inspect", state});
    EXPECT_TRUE(o.ok()) << o.describe();
    auto has = [&](const std::string& re) { return std::regex_search(o.out, std::regex(re)); };
    EXPECT_TRUE(has(fmt::format(R"(workers:\s+{}\b)", last_workers))) << "expected workers " << last_workers << "\n"
                                                                      << o.out;
    EXPECT_TRUE(has(fmt::format(R"(\bjoiner:\s+{}\b)", in.ref.carts.size()))) << o.out;
    for (const auto& f : in.files) {
      EXPECT_TRUE(has(fmt::format(R"({}:?\s+{}\b)", pt::regex_escape(f), fs::file_size(f)))) << f << "\n" << o.out;
    }
    EXPECT_TRUE(has(fmt::format(R"({}:?\s+{}\b)", pt::regex_escape(out), pt::read_file(out).size()))) << o.out;
    return result.kills;
  });
  EXPECT_GE(kills, 20);
}

}  // namespace
