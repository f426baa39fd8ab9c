// Kafka under kill -9, with the real binary: the mock cluster lives in this
// test process and stays up while engines are SIGKILLed at random moments
// and resumed. From a topic to a file: the output equals an uninterrupted
// run (exactly-once read, exactly-once file output), also when the resumes
// change -w. From a file to a topic: every expected line arrives, and what is
// doubled is only a replay of the epoch in flight (at-least-once).

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

// Per user, `got` is the expected sequence with replays: each run of lines
// starts at or before where the lines before it got to, and together they
// reach the end (nothing missing, nothing out of order, only repeats).
::testing::AssertionResult replays_only(const std::vector<std::string>& got, const std::vector<std::string>& expected) {
  const auto want = pt::lines_by_user(expected);
  const auto have = pt::lines_by_user(got);
  for (const auto& [user, lines] : want) {
    const auto it = have.find(user);
    if (it == have.end()) return ::testing::AssertionFailure() << "user " << user << " missing";
    size_t reached = 0;  // lines of `lines` delivered so far
    size_t pos = 0;      // where the current run is
    for (const auto& line : it->second) {
      // The line is lines[pos] (the run goes on) or a replay from an earlier point.
      if (pos < lines.size() && line == lines[pos]) {
        ++pos;
      } else {
        size_t restart = 0;
        while (restart < reached && lines[restart] != line) ++restart;
        if (restart == reached) {
          return ::testing::AssertionFailure() << "user " << user << ": line out of order or unknown: " << line;
        }
        pos = restart + 1;
      }
      reached = std::max(reached, pos);
    }
    if (reached != lines.size()) {
      return ::testing::AssertionFailure()
             << "user " << user << ": " << reached << " of " << lines.size() << " lines delivered";
    }
  }
  return ::testing::AssertionSuccess();
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
  const auto input = pt::make_cart_input(tmp_.sub("gen"), 40000, 4000, 2, 53);
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
    kafka_->create_topic(topic, 2);
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
    for (const auto& m : kt::consume_all(brokers_, topic, 2)) got.push_back(m.value);
    EXPECT_GE(got.size(), ref_lines.size());
    EXPECT_TRUE(replays_only(got, ref_lines)) << "kills at " << result.schedule();
    return result.kills;
  });
  EXPECT_GE(kills, 20);
}

}  // namespace
