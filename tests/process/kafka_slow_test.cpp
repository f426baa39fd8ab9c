// Kafka under kill -9, with the real binary: the mock cluster lives in this
// test process and stays up while engines are SIGKILLed at random moments
// and resumed. From a topic to a file: the output equals an uninterrupted
// run (exactly-once read, exactly-once file output), also when the resumes
// change -w. From a file to a topic: every expected line arrives, and what is
// doubled is only a replay of the epoch in flight (at-least-once), which may
// interleave with the killed run's last messages.

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "connectors/kafka/mock_cluster.hpp"
#include "tests/support/kafka_testing.hpp"
#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace kt = kafka_testing;

namespace {

std::vector<std::pair<std::string, std::string>> keyed_events(const std::vector<std::string>& files) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : files) {
    for (const auto& line : pt::read_lines(f)) out.emplace_back(nlohmann::json::parse(line).at("user_id"), line);
  }
  return out;
}

// Per user, `got` is the expected sequence delivered by runs: each run sends
// a contiguous stretch of the user's lines in order, starting at or before
// where the lines delivered so far reach, and together they reach the end
// (nothing missing, nothing unknown, no gap). Runs may interleave: a killed
// engine's last produce requests can still land after the resumed one's first
// (nothing fences a dead producer without Kafka transactions).
::testing::AssertionResult replays_only(const std::vector<std::string>& got, const std::vector<std::string>& expected) {
  const auto want = pt::lines_by_user(expected);
  const auto have = pt::lines_by_user(got);
  for (const auto& [user, lines] : want) {
    const auto it = have.find(user);
    if (it == have.end()) return ::testing::AssertionFailure() << "user " << user << " missing";
    size_t reached = 0;        // lines[0, reached) are delivered
    std::vector<size_t> runs;  // the next line of each run so far
    for (const auto& line : it->second) {
      auto run = std::find_if(runs.begin(), runs.end(),
                              [&](size_t next) { return next < lines.size() && lines[next] == line; });
      if (run == runs.end()) {
        size_t start = 0;
        while (start <= reached && start < lines.size() && lines[start] != line) ++start;
        if (start > reached || start == lines.size()) {
          return ::testing::AssertionFailure() << "user " << user << ": line out of order or unknown: " << line
                                               << "\nexpected:\n  " << fmt::format("{}", fmt::join(lines, "\n  "))
                                               << "\nreceived:\n  " << fmt::format("{}", fmt::join(it->second, "\n  "));
        }
        run = runs.insert(runs.end(), start);
      }
      reached = std::max(reached, ++*run);
    }
    if (reached != lines.size()) {
      return ::testing::AssertionFailure()
             << "user " << user << ": " << reached << " of " << lines.size() << " lines delivered";
    }
  }
  return ::testing::AssertionSuccess();
}

// The checker itself, on one user's lines a, b, c, d.
TEST(ReplaysOnly, AcceptsReplaysAndInterleavedRunsAndRefusesGapsUnknownAndMissingLines) {
  const auto cart = [](int n) {
    return fmt::format(R"({{"user_id": "u", "paid_order_ids": [{}], "unpaid_order_ids": []}})", n);
  };
  const std::vector<std::string> want = {cart(1), cart(2), cart(3), cart(4)};
  const auto seq = [&](std::initializer_list<int> ids) {
    std::vector<std::string> out;
    for (const int i : ids) out.push_back(cart(i));
    return out;
  };
  EXPECT_TRUE(replays_only(seq({1, 2, 3, 4}), want));
  EXPECT_TRUE(replays_only(seq({1, 2, 3, 2, 3, 4}), want));     // resumed from an earlier commit
  EXPECT_TRUE(replays_only(seq({1, 2, 1, 3, 2, 3, 4}), want));  // the killed run's 3 landed after the resumed run's 1
  EXPECT_FALSE(replays_only(seq({1, 2, 4}), want));             // 3 lost
  EXPECT_FALSE(replays_only(seq({1, 2, 3}), want));             // the end never delivered
  EXPECT_FALSE(replays_only(seq({1, 2, 3, 5, 4}), want));       // a line no run sends
  EXPECT_FALSE(replays_only(seq({2, 1, 3, 4}), want));          // out of order
  EXPECT_FALSE(replays_only({}, want));                         // the user missing
}

class KafkaKills : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = std::make_unique<engine::MockKafka>(1);
    brokers_ = kafka_->bootstrap();
  }
  std::string uri(const std::string& topic) const { return fmt::format("kafka://{}/{}", brokers_, topic); }
  pt::TempDir tmp_;
  std::unique_ptr<engine::MockKafka> kafka_;
  std::string brokers_;
};

TEST_F(KafkaKills, FromATopicToAFileExactlyOnceAcrossKillsAndRescales) {
  const auto input = pt::make_cart_input(tmp_.sub("gen"), 60000, 6000, 4, 51);
  kafka_->create_topic("events", 4);
  kt::produce(brokers_, "events", keyed_events(input.files));
  const std::string ref_out = tmp_.sub("clean.json");
  const auto clean = pt::run_engine({"run", "cart_join", "-w", "2", "--input", uri("events"), "--kafka-bounded", "-d",
                                     tmp_.sub("clean-state"), "--output", ref_out});
  ASSERT_TRUE(clean.ok()) << clean.describe();
  const auto ref_lines = pt::read_lines(ref_out);
  ASSERT_TRUE(pt::matches_reference(ref_lines, input.ref));

  pt::KillPlan plan;
  plan.seed = pt::kill_seed(5101);
  plan.min_kills = 20;
  plan.expected_run_seconds = std::max(0.2, 4 * clean.seconds);
  const int kills = pt::kill_rounds(tmp_.path(), plan, 6, [&](const std::string& dir, const pt::KillPlan& p) {
    const std::string state = dir + "/state";
    const std::string out = dir + "/out.json";
    const auto result = pt::kill_loop(
        p,
        [&](int i) {
          const char* w[] = {"2", "1", "4", "2"};
          return std::vector<std::string>{
              "run", "cart_join", "-w",          w[i % 4],          "-s",       "0.02", "-d",
              state, "--input",   uri("events"), "--kafka-bounded", "--output", out};
        },
        [&] {
          // Progress: committed offsets over the messages produced.
          const auto o = pt::run_engine({"inspect", state, "--json"});
          const auto j = nlohmann::json::parse(o.out, nullptr, false);
          if (!o.ok() || !j.is_object() || !j.contains("source_offsets")) return 0.0;
          double done = 0;
          for (const auto& [step, parts] : j["source_offsets"].items()) {
            for (const auto& [part, v] : parts.items()) done += std::stod(v.get<std::string>());
          }
          return std::min(1.0, done / static_cast<double>(input.ref.events));
        },
        dir);
    if (!pt::loop_finished(result)) {
      ADD_FAILURE() << pt::loop_finished(result).message();
      return -1;
    }
    pt::expect_output_like_reference(out, ref_lines, result);
    return result.kills;
  });
  EXPECT_GE(kills, 20);
}

TEST_F(KafkaKills, FromAFileToATopicAtLeastOnceAcrossKills) {
  // Small enough that every attempt's output fits the mock cluster's 5 MB per
  // partition (consume_all refuses a topic it trimmed).
  const auto input = pt::make_cart_input(tmp_.sub("gen"), 12000, 1200, 2, 53);
  const std::string clean_out = tmp_.sub("clean.json");
  const auto clean = pt::run_engine({"run", "cart_join", "-w", "2", "--input", input.dir, "--output", clean_out});
  ASSERT_TRUE(clean.ok());
  const auto ref_lines = pt::read_lines(clean_out);

  pt::KillPlan plan;
  plan.seed = pt::kill_seed(5301);
  plan.min_kills = 20;
  plan.expected_run_seconds = std::max(0.2, 6 * clean.seconds);
  int round = 0;
  const int kills = pt::kill_rounds(tmp_.path(), plan, 6, [&](const std::string& dir, const pt::KillPlan& p) {
    const std::string topic = fmt::format("carts{}", round++);
    kafka_->create_topic(topic, 4);
    const std::string state = dir + "/state";
    const auto result = pt::kill_loop(
        p,
        [&](int) {
          return std::vector<std::string>{"run", "cart_join", "-w",      "2",       "-s",       "0.02",
                                          "-d",  state,       "--input", input.dir, "--output", uri(topic)};
        },
        [&] { return pt::committed_fraction(state, input.bytes); }, dir);
    if (!pt::loop_finished(result)) {
      ADD_FAILURE() << pt::loop_finished(result).message();
      return -1;
    }
    std::vector<std::string> got;
    for (const auto& m : kt::consume_all(brokers_, topic, 4)) got.push_back(m.value);
    EXPECT_GE(got.size(), ref_lines.size());
    EXPECT_TRUE(replays_only(got, ref_lines)) << "kills at " << result.schedule();
    return result.kills;
  });
  EXPECT_GE(kills, 20);
}

}  // namespace
