// Kafka in and out with the real binary, against librdkafka's mock cluster
// (engine::MockKafka in this process, or `engine kafka-mock` on its own):
// kcat talks to `engine kafka-mock`; cart_join from a topic equals the plain
// reference, to a topic delivers every line keyed by user; bad addresses,
// unknown topics and bad options are one-line errors in bounded time; a
// broker outage is waited out; bad messages are bad lines named by topic,
// partition and offset.

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "connectors/kafka/kafka.hpp"
#include "connectors/kafka/mock_cluster.hpp"
#include "tests/support/kafka_testing.hpp"
#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace kt = kafka_testing;
namespace fs = std::filesystem;

namespace {

using pt::contains;
using pt::read_file;

// The generated cart events of `dir` as Kafka messages keyed by user (one user's events in one partition, in order).
std::vector<std::pair<std::string, std::string>> keyed_events(const std::vector<std::string>& files) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : files) {
    for (const auto& line : pt::read_lines(f)) {
      const auto j = nlohmann::json::parse(line);
      out.emplace_back(j.at("user_id").get<std::string>(), line);
    }
  }
  return out;
}

// Starts `engine kafka-mock ARGS` and reads the bootstrap address it prints first.
struct MockProcess {
  explicit MockProcess(const pt::TempDir& dir, std::vector<std::string> args)
      : child(
            pt::kEngine,
            [&] {
              args.insert(args.begin(), "kafka-mock");
              return args;
            }(),
            dir.sub("mock.out"), dir.sub("mock.err")) {
    const auto deadline = pt::Clock::now() + std::chrono::seconds(20);
    while (pt::Clock::now() < deadline && child.running()) {
      const std::string out = read_file(dir.sub("mock.out"));
      if (const auto nl = out.find('\n'); nl != std::string::npos) {
        address = out.substr(0, nl);
        return;
      }
      child.wait_for(pt::Seconds(0.01));
    }
  }
  pt::Child child;
  std::string address;
};

TEST(KafkaMock, KcatProducesToItAndConsumesFromIt) {
  pt::TempDir tmp;
  const uint16_t port = kt::free_port();
  MockProcess mock(tmp, {"--port", std::to_string(port), "--topic", "greetings:2"});
  ASSERT_EQ(mock.address, fmt::format("127.0.0.1:{}", port)) << read_file(tmp.sub("mock.err"));
  pt::write_file(tmp.sub("in.txt"), "hello\nworld\n");
  const auto produced = pt::run_process(
      "/bin/sh", {"-c", fmt::format("kcat -P -b {} -t greetings < {}", mock.address, tmp.sub("in.txt"))});
  ASSERT_TRUE(produced.ok()) << produced.describe();
  const auto consumed = pt::run_process(
      "/usr/bin/kcat", {"-C", "-b", mock.address, "-t", "greetings", "-o", "beginning", "-e", "-q", "-f", "%s\n"});
  ASSERT_TRUE(consumed.ok()) << consumed.describe();
  EXPECT_EQ(pt::sorted(pt::nonempty_lines(consumed.out)), (std::vector<std::string>{"hello", "world"}));
  mock.child.signal(SIGINT);
  ASSERT_TRUE(mock.child.wait_for(pt::Seconds(20)));
  EXPECT_TRUE(pt::outcome_of(mock.child.status(), 0).ok());
}

class KafkaFlows : public ::testing::Test {
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

TEST_F(KafkaFlows, CartJoinFromATopicEqualsTheReference) {
  const auto input = pt::make_cart_input(tmp_.sub("gen"), 30000, 3000, 3, 41);
  kafka_->create_topic("events", 3);
  kt::produce(brokers_, "events", keyed_events(input.files));
  for (const uint32_t w : {1u, 2u, 4u}) {
    SCOPED_TRACE(fmt::format("-w {}", w));
    const std::string out = tmp_.sub(fmt::format("out-{}.json", w));
    const auto o = pt::run_engine({"run", "cart_join", "-w", std::to_string(w), "--input", uri("events"),
                                   "--kafka-bounded", "-d", tmp_.sub(fmt::format("st-{}", w)), "--output", out});
    ASSERT_TRUE(o.ok()) << o.describe();
    EXPECT_TRUE(pt::matches_reference(pt::split_lines(read_file(out)), input.ref));
    // The committed offsets are the topic's ends: a second run reads nothing.
    const auto again = pt::run_engine({"run", "cart_join", "-w", std::to_string(w), "--input", uri("events"),
                                       "--kafka-bounded", "-d", tmp_.sub(fmt::format("st-{}", w)), "--output", out});
    ASSERT_TRUE(again.ok()) << again.describe();
    EXPECT_TRUE(contains(again.err, "0 items in")) << again.err;
  }
}

TEST_F(KafkaFlows, CartJoinToATopicDeliversEveryLineKeyedByUser) {
  const auto input = pt::make_cart_input(tmp_.sub("gen"), 20000, 2000, 2, 43);
  kafka_->create_topic("carts", 4);
  const auto o = pt::run_engine(
      {"run", "cart_join", "-w", "2", "--input", input.dir, "--output", uri("carts"), "-d", tmp_.sub("st")});
  ASSERT_TRUE(o.ok()) << o.describe();
  const auto messages = kt::consume_all(brokers_, "carts", 4);
  std::vector<std::string> lines;
  std::map<std::string, int32_t> partition_of_user;
  for (const auto& m : messages) {
    lines.push_back(m.value);
    EXPECT_EQ(pt::user_of(m.value), m.key) << "the message key is the user";
    const auto [it, fresh] = partition_of_user.emplace(m.key, m.partition);
    EXPECT_TRUE(fresh || it->second == m.partition) << "user " << m.key << " in two partitions";
  }
  // Read back partition by partition, each user's lines are in order.
  EXPECT_TRUE(pt::matches_reference(lines, input.ref));
}

TEST_F(KafkaFlows, BadMessagesAreBadLinesNamedByTopicPartitionAndOffset) {
  kafka_->create_topic("mixed", 1);
  const std::string good = R"({"user_id": "a", "type": "order", "order_id": 1})";
  kt::produce(brokers_, "mixed",
              {{"a", good},
               {"a", ""},
               {"a", std::string("\xff\xfe not utf-8")},
               {"a", "not json"},
               {"a", R"({"user_id": "a", "type": "order", "order_id": 2, "z": tru})"},
               // A large message (the mock cluster drops a partition's messages beyond ~4 MB; a real
               // broker takes what its message.max.bytes allows, the engine reads up to 16 MB).
               {"a", std::string(3 << 20, 'x')},
               {"a", R"({"user_id": "a", "type": "order", "order_id": 3})"}});
  const std::string dead = tmp_.sub("dead.jsonl");
  const auto o = pt::run_engine({"run", "cart_join", "--strict", "--input", uri("mixed"), "--kafka-bounded",
                                 "--on-error", "dead-letter:" + dead, "--output", tmp_.sub("out.json")});
  ASSERT_TRUE(o.ok()) << o.describe();
  EXPECT_EQ(pt::split_lines(read_file(tmp_.sub("out.json"))),
            (std::vector<std::string>{R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1]})",
                                      R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1, 3]})"}));
  std::vector<int64_t> offsets;
  for (const auto& line : pt::nonempty_lines(read_file(dead))) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("source"), "kafka topic mixed partition 0") << line;
    offsets.push_back(j.at("offset").get<int64_t>());
  }
  EXPECT_EQ(offsets, (std::vector<int64_t>{1, 2, 3, 4, 5}));
  // Without --strict, the warnings say where.
  const auto warned = pt::run_engine(
      {"run", "cart_join", "--input", uri("mixed"), "--kafka-bounded", "--output", tmp_.sub("out2.json")});
  ASSERT_TRUE(warned.ok()) << warned.describe();
  EXPECT_TRUE(contains(warned.err, "kafka topic mixed partition 0 offset 4: skipping bad line (not JSON)"))
      << warned.err;
}

TEST_F(KafkaFlows, AnOutageOfTheBrokerIsWaitedOut) {
  const auto input = pt::make_cart_input(tmp_.sub("gen"), 20000, 2000, 2, 47);
  kafka_->create_topic("events", 2);
  const auto events = keyed_events(input.files);
  const std::vector<std::pair<std::string, std::string>> first(events.begin(), events.begin() + events.size() / 2);
  const std::vector<std::pair<std::string, std::string>> second(events.begin() + events.size() / 2, events.end());
  kt::produce(brokers_, "events", first);
  const std::string out = tmp_.sub("out.json");
  pt::Child engine(
      pt::kEngine,
      {"run", "cart_join", "-w", "2", "-s", "0.1", "--input", uri("events"), "-d", tmp_.sub("st"), "--output", out},
      tmp_.sub("e.out"), tmp_.sub("e.err"));
  auto lines_now = [&] { return fs::exists(out) ? pt::split_lines(read_file(out)).size() : 0; };
  const auto deadline = pt::Clock::now() + std::chrono::seconds(60);
  while (lines_now() == 0 && pt::Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kafka_->set_broker_up(1, false);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  kafka_->set_broker_up(1, true);
  kt::produce(brokers_, "events", second);
  while (lines_now() < input.ref.outputs && pt::Clock::now() < deadline && engine.running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  engine.signal(SIGTERM);
  ASSERT_TRUE(engine.wait_for(pt::Seconds(60)));
  const auto o = pt::outcome_of(engine.status(), engine.seconds());
  EXPECT_TRUE(o.ok()) << "a followed topic ends with SIGTERM and exit 0: " << read_file(tmp_.sub("e.err"));
  EXPECT_TRUE(pt::matches_reference(pt::split_lines(read_file(out)), input.ref));
}

TEST(KafkaErrors, BadAddressesTopicsAndOptionsAreOneLineErrorsInBoundedTime) {
  pt::TempDir tmp;
  engine::MockKafka kafka(1);
  const std::string closed = fmt::format("127.0.0.1:{}", kt::free_port());
  struct Case {
    std::vector<std::string> args;
    std::string named;
  };
  const std::vector<Case> cases = {
      {{"--input", fmt::format("kafka://{}/events", closed)}, closed},
      {{"--input", fmt::format("kafka://{}/events", kafka.bootstrap()), "--kafka-opt", "security.protocol=ssl"},
       kafka.bootstrap()},
      {{"--input", fmt::format("kafka://{}/no-such-topic", kafka.bootstrap())}, "no-such-topic"},
      {{"--input", "kafka://no-such-host.invalid:9092/events"}, "no-such-host.invalid"},
      {{"--input", "kafka:///events"}, "kafka:///events"},
      {{"--input", fmt::format("kafka://{}/events", kafka.bootstrap()), "--kafka-opt", "no.such.option=1"},
       "no.such.option"},
      {{"--input", fmt::format("kafka://{}/events", kafka.bootstrap()), "--kafka-opt", "novalue"}, "novalue"},
      {{"--input", fmt::format("kafka://{}/events", kafka.bootstrap()), "--kafka-start", "middle"}, "middle"},
      {{"--output", fmt::format("kafka://{}/events", closed)}, closed},
  };
  // The cases wait for brokers that never answer: run them side by side.
  std::vector<std::future<pt::Outcome>> runs;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<std::string> args = {"run", "cart_join", "-d", tmp.sub(fmt::format("st{}", i))};
    args.insert(args.end(), cases[i].args.begin(), cases[i].args.end());
    runs.push_back(std::async(std::launch::async, [args] { return pt::run_engine(args, pt::Seconds(60)); }));
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto o = runs[i].get();
    const std::string what = fmt::format("{}", fmt::join(cases[i].args, " "));
    pt::expect_one_line_error(o, what);
    EXPECT_TRUE(contains(o.err, cases[i].named)) << what << ": " << o.err;
    EXPECT_LT(o.seconds, engine::kConnectSeconds + 10) << what;
    EXPECT_FALSE(fs::exists(tmp.sub(fmt::format("st{}", i)))) << what << ": a refused run created its state dir";
  }
}

}  // namespace
