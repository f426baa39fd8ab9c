// Building flows: invalid flows are rejected with a clear ConfigError when
// built (duplicate or empty step ids, stateful steps on unkeyed streams, no
// output), and to_mermaid / to_json describe exactly the steps and edges built.

#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "connectors/testing/testing.hpp"
#include "engine/dataflow.hpp"
#include "engine/errors.hpp"
#include "engine/runtime.hpp"
#include "operators/operators.hpp"
#include "tests/support/flow_testing.hpp"
#include "tests/support/unit_testing.hpp"

namespace {

using engine::ConfigError;
using engine::Dataflow;
using engine::KV;
using engine::Stream;
using flow_testing::collected;
using flow_testing::sink;
using flow_testing::source;
using unit_testing::error_message_of;
namespace op = engine::op;

// A small two-partition input of ints.
Stream<int> ints(Dataflow& f, const std::string& id = "in") {
  return op::input(id, f, source<int>({{1, 2, 3}, {4, 5}}));
}

// Makes KV items without keying the stream (for the unkeyed-stream checks).
auto as_kv = [](int x) { return KV<int>(std::to_string(x % 2), x); };
// A running-sum mapper for stateful_map.
auto add = [](std::optional<int>& s, int v) {
  s = s.value_or(0) + v;
  return *s;
};

// Whether `part` occurs in `s`.
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---- step ids ---------------------------------------------------------------

TEST(DataflowIds, DuplicateMapIdIsRejectedWhenBuilt) {
  Dataflow f("dups");
  auto a = op::map("double", ints(f), [](int x) { return 2 * x; });
  const auto msg = error_message_of<ConfigError>([&] { op::map("double", a, [](int x) { return x + 1; }); });
  EXPECT_TRUE(contains(msg, "'double'")) << msg;
  EXPECT_TRUE(contains(msg, "duplicate")) << msg;
}

TEST(DataflowIds, DuplicateIdAcrossKindsIsRejected) {
  {
    Dataflow f("dups");
    ints(f, "src");
    const auto msg = error_message_of<ConfigError>([&] { op::input("src", f, source<int>({{1}})); });
    EXPECT_TRUE(contains(msg, "'src'")) << msg;
  }
  {
    Dataflow f("dups");
    auto m = op::map("step", ints(f), [](int x) { return x; });
    const auto msg = error_message_of<ConfigError>([&] { op::output("step", m, sink<int>(collected<int>())); });
    EXPECT_TRUE(contains(msg, "'step'")) << msg;
  }
  {
    Dataflow f("dups");
    auto keyed = op::key_on("key", ints(f), [](int x) { return std::to_string(x); });
    const auto msg = error_message_of<ConfigError>([&] { op::stateful_map<int>("key", keyed, add); });
    EXPECT_TRUE(contains(msg, "'key'")) << msg;
  }
  {
    Dataflow f("dups");
    auto spread = op::redistribute("spread", ints(f));
    const auto msg = error_message_of<ConfigError>([&] { op::filter("spread", spread, [](int) { return true; }); });
    EXPECT_TRUE(contains(msg, "'spread'")) << msg;
  }
  {
    Dataflow f("dups");
    auto b = op::branch("b", ints(f), [](int x) { return x > 2; });
    const auto msg = error_message_of<ConfigError>([&] {
      op::merge("b", std::vector<Stream<int>>{b.trues, b.falses});
    });
    EXPECT_TRUE(contains(msg, "'b'")) << msg;
  }
}

TEST(DataflowIds, DistinctIdsAreAccepted) {
  Dataflow f("ok");
  auto spread = op::redistribute("spread", ints(f));  // its hidden exchange shares the id
  auto keyed = op::key_on("key", spread, [](int x) { return std::to_string(x); });
  auto sums = op::stateful_map<int>("sum", keyed, add);
  EXPECT_NO_THROW(op::output("out", sums, sink<KV<int>>(collected<KV<int>>())));
  EXPECT_NO_THROW(f.validate());
  EXPECT_EQ(f.stateful_step_ids(), std::vector<std::string>{"sum"});
}

TEST(DataflowIds, EmptyIdIsRejected) {
  Dataflow f("empty");
  auto in = ints(f);
  error_message_of<ConfigError>([&] { op::map("", in, [](int x) { return x; }); });
}

// ---- stateful steps need keyed streams ------------------------------------------
// A stateful step on an unkeyed stream does not compile (tests/compile_fail/
// shows the message); here: which overload each stream type reaches.

// What op::stateful_map returns for a stream of type S: void is the overload that refuses to compile.
template <class S>
using StatefulOn = decltype(op::stateful_map<int>("sum", std::declval<const S&>(), add));

TEST(DataflowKeyed, OnlyKeyedStreamsReachAStatefulStep) {
  static_assert(std::is_same_v<StatefulOn<engine::KeyedStream<int>>, engine::KeyedStream<int>>);
  // Items of the KV type are not enough: map() does not route by key.
  static_assert(std::is_void_v<StatefulOn<Stream<KV<int>>>>);
  static_assert(std::is_void_v<StatefulOn<Stream<int>>>);
  Dataflow f("keyed_types");
  auto keyed = op::key_on("key", ints(f), [](int x) { return std::to_string(x); });
  static_assert(std::is_same_v<decltype(keyed), engine::KeyedStream<int>>);
  auto remapped = op::map("remap", keyed, [](KV<int>&& kv) { return KV<int>(kv.first + "x", kv.second); });
  static_assert(std::is_same_v<decltype(remapped), Stream<KV<int>>>, "map loses keyedness");
  auto pairs = op::map("pairs", ints(f, "in2"), as_kv);
  static_assert(std::is_same_v<decltype(pairs), Stream<KV<int>>>);
  auto both = op::merge("both", std::vector<Stream<KV<int>>>{keyed, pairs});
  static_assert(std::is_same_v<decltype(both), Stream<KV<int>>>, "a merge with an unkeyed stream is unkeyed");
  SUCCEED();
}

TEST(DataflowKeyed, KeyPreservingStepsFeedStatefulSteps) {
  Dataflow f("keyed");
  auto keyed = op::key_on("key", ints(f), [](int x) { return std::to_string(x % 3); });
  auto kept = op::filter("filter", keyed, [](const KV<int>& kv) { return kv.second > 0; });
  auto seen = op::inspect("inspect", kept, [](const KV<int>&) {});
  auto vals = op::map_value("map_value", seen, [](int v) { return v * 2; });
  auto b = op::branch("branch", vals, [](const KV<int>& kv) { return kv.second > 4; });
  auto merged = op::merge("merge", std::vector<engine::KeyedStream<int>>{b.trues, b.falses});
  auto spread = op::redistribute("redistribute", merged);
  static_assert(std::is_same_v<decltype(spread), engine::KeyedStream<int>>);
  auto s1 = op::stateful_map("s1", spread, add);  // the state type is deduced from add's first parameter
  static_assert(std::is_same_v<decltype(s1), engine::KeyedStream<int>>);
  auto s2 = op::stateful_flat_map("s2", s1, [](std::optional<int>&, int v) { return std::vector<int>{v, v}; });
  static_assert(std::is_same_v<decltype(s2), engine::KeyedStream<int>>);
  auto s3 = op::stateful_map<int>("s3", s2, add);  // a stateful step's output is keyed
  op::output("out", s3, sink<KV<int>>(collected<KV<int>>()));
  EXPECT_NO_THROW(f.validate());
  EXPECT_EQ(f.stateful_step_ids(), (std::vector<std::string>{"s1", "s2", "s3"}));
}

// ---- whole-flow checks ------------------------------------------------------------

TEST(DataflowValidate, FlowWithoutOutputIsRejected) {
  Dataflow f("no_output");
  op::map("m", ints(f), [](int x) { return x; });
  const auto msg = error_message_of<ConfigError>([&] { f.validate(); });
  EXPECT_TRUE(contains(msg, "no output")) << msg;
  const auto run_msg = error_message_of<ConfigError>([&] { engine::run(f, flow_testing::options(2)); });
  EXPECT_TRUE(contains(run_msg, "no output")) << run_msg;
}

TEST(DataflowValidate, EmptyFlowIsRejected) {
  Dataflow f("nothing");
  const auto msg = error_message_of<ConfigError>([&] { engine::run(f, flow_testing::options(1)); });
  EXPECT_TRUE(contains(msg, "no input")) << msg;
}

TEST(DataflowValidate, BadRunOptionsAreConfigErrors) {
  Dataflow f("opts");
  op::output("out", ints(f), sink<int>(collected<int>()));
  auto o = flow_testing::options(0);
  EXPECT_TRUE(contains(error_message_of<ConfigError>([&] { engine::run(f, o); }), "workers"));
  o = flow_testing::options(1, -1.0);
  EXPECT_TRUE(contains(error_message_of<ConfigError>([&] { engine::run(f, o); }), "snapshot"));
}

// ---- visualize --------------------------------------------------------------------

struct Shape {
  std::map<std::string, std::string> kinds;                           // id -> kind
  std::set<std::tuple<std::string, std::string, std::string>> edges;  // (up, port label, down)
  std::map<std::string, std::vector<std::string>> inputs;             // id -> upstream ids in port order
};

// Builds a flow using most operators; `shape` records, by hand, the steps and edges it should have.
void build_sample(Dataflow& f, Shape& shape) {
  auto node = [&](const std::string& id, const std::string& kind, std::vector<std::string> ups,
                  std::vector<std::string> ports = {}) {
    shape.kinds[id] = kind;
    shape.inputs[id] = ups;
    for (size_t i = 0; i < ups.size(); ++i) shape.edges.emplace(ups[i], ports.empty() ? "down" : ports[i], id);
  };
  auto lines = op::input("in_a", f, source<std::string>({{"1", "2"}, {"x"}}));
  node("in_a", "input", {});
  auto nums = op::filter_map("parse", lines, [](const std::string& s) -> std::optional<int> {
    if (s.empty() || s[0] < '0' || s[0] > '9') return std::nullopt;
    return std::stoi(s);
  });
  node("parse", "filter_map", {"in_a"});
  auto keyed = op::key_on("key", nums, [](int x) { return std::to_string(x % 2); });
  node("key", "key_on", {"parse"});
  auto sums = op::stateful_map<int>("sum", keyed, add);
  node("sum", "stateful_map", {"key"});
  auto split = op::branch("split", sums, [](const KV<int>& kv) { return kv.second > 1; });
  node("split", "branch", {"sum"});
  auto big = op::map_value("big", split.trues, [](int v) { return v * 10; });
  node("big", "map_value", {"split"}, {"trues"});
  auto small = op::inspect("small", split.falses, [](const KV<int>&) {});
  node("small", "inspect", {"split"}, {"falses"});
  auto both = op::merge("both", std::vector<Stream<KV<int>>>{big, small});
  node("both", "merge", {"big", "small"});
  auto spread = op::redistribute("spread", both);
  node("spread", "redistribute", {"both"});
  auto text = op::map("fmt", spread, [](KV<int>&& kv) { return kv.first + "=" + std::to_string(kv.second); });
  node("fmt", "map", {"spread"});
  op::output("out", text, sink<std::string>(collected<std::string>()));
  node("out", "output", {"fmt"});
  auto other = op::input("in_b", f, source<int>({{7}}));
  node("in_b", "input", {});
  auto more = op::flat_map("extra", other, [](int x) { return std::vector<int>{x, x}; });
  node("extra", "flat_map", {"in_b"});
  auto evens = op::filter("evens", more, [](int x) { return x % 2 == 0; });
  node("evens", "filter", {"extra"});
  op::output("out_b", evens, sink<int>(collected<int>()));
  node("out_b", "output", {"evens"});
}

TEST(DataflowVisualize, MermaidHasEveryStepAndEdge) {
  Dataflow f("sample");
  Shape shape;
  build_sample(f, shape);
  const std::string text = f.to_mermaid();

  const std::regex node_re(R"re(^sample\.(\w+)\["(\w+) \((\w+)\)"\]$)re");
  const std::regex edge_re(R"re(^sample\.(\w+) -- "(\w+) → up" --> sample\.(\w+)$)re");
  std::map<std::string, std::string> kinds;
  std::set<std::tuple<std::string, std::string, std::string>> edges;
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 3u) << text;
  EXPECT_EQ(lines.front(), "flowchart TD");
  EXPECT_EQ(lines[1], "subgraph \"sample (Dataflow)\"");
  EXPECT_EQ(lines.back(), "end");
  std::set<std::string> declared;
  for (size_t i = 2; i + 1 < lines.size(); ++i) {
    std::smatch m;
    if (std::regex_match(lines[i], m, node_re)) {
      EXPECT_EQ(m[1], m[2]) << lines[i];
      EXPECT_TRUE(kinds.emplace(m[1], m[3]).second) << "node twice: " << lines[i];
      declared.insert(m[1]);
    } else if (std::regex_match(lines[i], m, edge_re)) {
      EXPECT_TRUE(edges.emplace(m[1], m[2], m[3]).second) << "edge twice: " << lines[i];
      EXPECT_TRUE(declared.count(m[3])) << "edge before its node: " << lines[i];
    } else {
      ADD_FAILURE() << "unexpected mermaid line: " << lines[i];
    }
  }
  EXPECT_EQ(kinds, shape.kinds);
  EXPECT_EQ(edges, shape.edges);
}

TEST(DataflowVisualize, JsonHasEveryStepAndEdge) {
  Dataflow f("sample");
  Shape shape;
  build_sample(f, shape);
  const auto j = nlohmann::json::parse(f.to_json());
  EXPECT_EQ(j.at("flow"), "sample");
  std::map<std::string, std::string> kinds;
  std::map<std::string, std::vector<std::string>> inputs;
  for (const auto& s : j.at("steps")) {
    const std::string id = s.at("id");
    EXPECT_TRUE(kinds.emplace(id, s.at("kind").get<std::string>()).second) << "step twice: " << id;
    inputs[id] = s.at("inputs").get<std::vector<std::string>>();
    EXPECT_EQ(s.at("stateful").get<bool>(), id == "sum") << id;
    // Steps that receive their items through an exchange: stateful ones, redistribute, outputs.
    const bool exchanged = id == "sum" || id == "spread" || id == "out" || id == "out_b";
    EXPECT_EQ(s.at("exchange_before").get<bool>(), exchanged) << id;
  }
  EXPECT_EQ(kinds, shape.kinds);
  EXPECT_EQ(inputs, shape.inputs);
}

TEST(DataflowVisualize, TutorialShapedFlowMatchesTheTutorialGraph) {
  // The graph of seeds/002 (flow "shopping-cart-joiner"), built with our operators.
  Dataflow f("shopping-cart-joiner");
  auto in = op::input("input", f, source<std::string>({{"{}"}}));
  auto des = op::filter_map(
      "deserialize", in, [](const std::string& s) -> std::optional<KV<std::string>> { return KV<std::string>(s, s); });
  // The tutorial's deserializer returns (key, value) pairs; ours must be keyed explicitly.
  auto keyed = op::key_on("key", des, [](const KV<std::string>& kv) { return kv.first; });
  auto joined = op::stateful_map<int>("joiner", keyed, [](std::optional<int>& s, KV<std::string>&&) {
    s = s.value_or(0) + 1;
    return *s;
  });
  auto out = op::map("format_output", joined, [](KV<int>&& kv) { return kv.first; });
  op::output("output", out, sink<std::string>(collected<std::string>()));
  const std::string m = f.to_mermaid();
  for (const char* line : {
           "shopping-cart-joiner.input[\"input (input)\"]\n",
           "shopping-cart-joiner.deserialize[\"deserialize (filter_map)\"]\n",
           "shopping-cart-joiner.input -- \"down → up\" --> shopping-cart-joiner.deserialize\n",
           "shopping-cart-joiner.joiner[\"joiner (stateful_map)\"]\n",
           "shopping-cart-joiner.format_output[\"format_output (map)\"]\n",
           "shopping-cart-joiner.joiner -- \"down → up\" --> shopping-cart-joiner.format_output\n",
           "shopping-cart-joiner.output[\"output (output)\"]\n",
           "shopping-cart-joiner.format_output -- \"down → up\" --> shopping-cart-joiner.output\n",
       }) {
    EXPECT_TRUE(contains(m, line)) << "missing: " << line << "in:\n" << m;
  }
  EXPECT_TRUE(contains(m, "subgraph \"shopping-cart-joiner (Dataflow)\"\n")) << m;
}

}  // namespace
