// The `engine` command line, run as a real process: help at every level,
// list, visualize (mermaid and JSON), one-line errors for bad arguments, the
// end-of-run summary line, and inspect.

#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process_testing.hpp"

namespace pt = process_testing;

namespace {

// The steps of cart_join and its edges, as DESIGN.md section 6 lists them.
const std::vector<std::string> kCartSteps = {"input",  "deserialize",   "key_on_user",
                                             "joiner", "format_output", "output"};
const std::set<std::pair<std::string, std::string>> kCartEdges = {{"input", "deserialize"},
                                                                  {"deserialize", "key_on_user"},
                                                                  {"key_on_user", "joiner"},
                                                                  {"joiner", "format_output"},
                                                                  {"format_output", "output"}};

using pt::expect_one_line_error;

// Asserts a successful help command: exit 0, `needles` in the usage on stdout, nothing on stderr.
void expect_help(const std::vector<std::string>& args, const std::vector<std::string>& needles) {
  const auto o = pt::run_engine(args);
  SCOPED_TRACE(fmt::format("engine {}", fmt::join(args, " ")));
  ASSERT_TRUE(o.ok()) << o.describe();
  EXPECT_TRUE(pt::contains(o.out, "usage")) << o.out;
  for (const auto& n : needles) EXPECT_TRUE(pt::contains(o.out, n)) << "'" << n << "' missing from\n" << o.out;
  EXPECT_TRUE(o.err.empty()) << o.err;
}

TEST(Cli, HelpAtEveryLevel) {
  expect_help({"--help"}, {"engine run", "engine list", "engine visualize", "engine inspect"});
  expect_help({"run", "--help"},
              {"--workers", "--local-state-dir", "--snapshot-interval", "--snapshot-mode", "--backup", "--on-error"});
  expect_help({"run", "cart_join", "--help"}, {"--input", "--output", "--strict", "--workers"});
  expect_help({"run", "running_sum", "--help"}, {"--input", "--workers"});
  expect_help({"visualize", "--help"}, {"--format"});
  expect_help({"inspect", "--help"}, {"DIR"});
}

TEST(Cli, ListNamesTheApps) {
  const auto o = pt::run_engine({"list"});
  ASSERT_TRUE(o.ok()) << o.describe();
  std::set<std::string> names;
  for (const auto& line : o.out_lines()) {
    if (line.empty()) continue;
    names.insert(line.substr(0, line.find_first_of(" \t")));
    EXPECT_NE(line.find_first_of(" \t"), std::string::npos) << "no summary on: " << line;
  }
  EXPECT_TRUE(names.count("cart_join")) << o.out;
  EXPECT_TRUE(names.count("running_sum")) << o.out;
}

TEST(Cli, VisualizeMermaidHasEveryStepAndEdge) {
  const auto o = pt::run_engine({"visualize", "cart_join"});
  ASSERT_TRUE(o.ok()) << o.describe();
  const auto lines = o.out_lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "flowchart TD");
  // Nodes: ID["step (kind)"]; edges: ID -- "label" --> ID (the tutorial's form).
  const std::regex node(R"re(^\s*(\S+)\["([^" ]+) \(([^)]+)\)"\]\s*$)re");
  const std::regex edge(R"re(^\s*(\S+)\s+--.*-->\s*(\S+)\s*$)re");
  std::map<std::string, std::string> step_of_node;
  std::vector<std::pair<std::string, std::string>> edge_nodes;
  bool subgraph = false;
  for (const auto& line : lines) {
    std::smatch m;
    if (std::regex_match(line, m, node)) {
      step_of_node[m[1]] = m[2];
    } else if (std::regex_match(line, m, edge)) {
      edge_nodes.emplace_back(m[1], m[2]);
    } else if (line.rfind("subgraph", 0) == 0) {
      subgraph = true;
    }
  }
  EXPECT_TRUE(subgraph) << o.out;
  std::set<std::string> steps;
  for (const auto& [node_id, step] : step_of_node) steps.insert(step);
  EXPECT_EQ(steps, std::set<std::string>(kCartSteps.begin(), kCartSteps.end())) << o.out;
  std::set<std::pair<std::string, std::string>> edges;
  for (const auto& [from, to] : edge_nodes) {
    ASSERT_TRUE(step_of_node.count(from) && step_of_node.count(to)) << "edge to an unknown node: " << from << " " << to;
    edges.emplace(step_of_node[from], step_of_node[to]);
  }
  EXPECT_EQ(edges, kCartEdges) << o.out;
  EXPECT_EQ(edge_nodes.size(), kCartEdges.size()) << o.out;
}

TEST(Cli, VisualizeJsonIsValidAndMatchesTheFlow) {
  const auto o = pt::run_engine({"visualize", "cart_join", "--format", "json"});
  ASSERT_TRUE(o.ok()) << o.describe();
  const auto j = nlohmann::json::parse(o.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON:\n" << o.out;
  ASSERT_TRUE(j.contains("steps") && j["steps"].is_array()) << o.out;
  std::set<std::string> steps;
  std::set<std::pair<std::string, std::string>> edges;
  for (const auto& s : j["steps"]) {
    ASSERT_TRUE(s.contains("id") && s["id"].is_string()) << s.dump();
    steps.insert(s["id"].get<std::string>());
    if (s.contains("inputs")) {
      for (const auto& in : s["inputs"]) edges.emplace(in.get<std::string>(), s["id"].get<std::string>());
    }
  }
  EXPECT_EQ(steps, std::set<std::string>(kCartSteps.begin(), kCartSteps.end()));
  EXPECT_EQ(edges, kCartEdges);
}

TEST(Cli, BadArgumentsGiveOneErrorLine) {
  pt::TempDir tmp;
  std::filesystem::create_directories(tmp.sub("empty"));
  const std::vector<std::vector<std::string>> cases = {
      {"bogus"},
      {"run", "no_such_app"},
      {"visualize", "no_such_app"},
      {"run", "cart_join", "--no-such-flag"},
      {"run", "cart_join", "-w", "0"},
      {"run", "cart_join", "-w", "abc"},
      {"run", "cart_join", "-w", "-3"},
      {"run", "cart_join", "-s", "-1"},
      {"run", "cart_join", "-s", "soon"},
      {"run", "cart_join", "--on-error", "bogus"},
      {"run", "cart_join", "--on-error", "dead-letter:"},
      {"run", "cart_join", "--snapshot-mode", "sometimes", "-d", tmp.sub("state")},
      {"run", "cart_join", "--input", tmp.sub("missing.json")},
      {"run", "cart_join", "--input", tmp.sub("empty")},
      {"run", "running_sum", "--input", tmp.sub("missing.txt")},
      {"visualize", "cart_join", "--format", "png"},
  };
  for (const auto& args : cases) {
    const auto o = pt::run_engine(args, pt::Seconds(60));
    expect_one_line_error(o, fmt::format("engine {}", fmt::join(args, " ")));
  }
  // A refused run writes no state dir.
  EXPECT_FALSE(std::filesystem::exists(tmp.sub("state")));
}

TEST(Cli, RunEndsWithOneSummaryLine) {
  pt::TempDir tmp;
  // Independent expectations: the bundled file's line count in, one update per good line out.
  const auto input_lines = pt::read_lines(std::string(pt::kSourceDir) + "/data/cart-join.json");
  const std::string out = tmp.sub("out.json");
  const auto o = pt::run_engine({"run", "cart_join", "-w", "2", "--output", out});
  ASSERT_TRUE(o.ok()) << o.describe();
  const auto written = pt::read_lines(out);
  EXPECT_EQ(written.size(), 7u);

  const std::regex summary(
      R"(^engine: .*\b(\d+) items in, (\d+) items out, (\d+(\.\d+)?) s, (\d+(\.\d+)?) items/s.*$)");
  const auto lines = o.err_lines();
  ASSERT_FALSE(lines.empty());
  int summaries = 0;
  for (const auto& l : lines) summaries += std::regex_match(l, summary) ? 1 : 0;
  EXPECT_EQ(summaries, 1) << o.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(lines.back(), m, summary)) << "the last stderr line is not the summary:\n" << o.err;
  EXPECT_EQ(std::stoull(m[1]), input_lines.size());
  EXPECT_EQ(std::stoull(m[2]), written.size());
  EXPECT_GE(std::stod(m[3]), 0.0);
  EXPECT_GE(std::stod(m[5]), 0.0);
}

TEST(Cli, InspectShowsWhatTheStateDirHolds) {
  pt::TempDir tmp;
  const std::string input = tmp.sub("events.json");
  const std::string out = tmp.sub("out.json");
  const std::string state = tmp.sub("state");
  // Three users, each line good.
  const std::string events = R"({"user_id": "a", "type": "order", "order_id": 1})"
                             "\n"
                             R"({"user_id": "b", "type": "order", "order_id": 2})"
                             "\n"
                             R"({"user_id": "c", "type": "order", "order_id": 3})"
                             "\n"
                             R"({"user_id": "a", "type": "payment", "order_id": 1})"
                             "\n";
  pt::write_file(input, events);
  const auto run =
      pt::run_engine({"run", "cart_join", "-w", "2", "-s", "0", "-d", state, "--input", input, "--output", out});
  ASSERT_TRUE(run.ok()) << run.describe();
  const uint64_t out_size = std::filesystem::file_size(out);
  ASSERT_EQ(pt::read_lines(out).size(), 4u);

  const auto o = pt::run_engine({"inspect", state});
  ASSERT_TRUE(o.ok()) << o.describe();
  auto has = [&](const std::string& re) {
    return std::regex_search(o.out, std::regex(re, std::regex::multiline | std::regex::ECMAScript));
  };
  EXPECT_TRUE(has(R"(app:\s+cart_join\b)")) << o.out;
  EXPECT_TRUE(has(R"(format version:\s+\d+)")) << o.out;
  EXPECT_TRUE(has(R"(committed epoch:\s+\d+)")) << o.out;
  EXPECT_TRUE(has(R"(workers:\s+2\b)")) << o.out;
  EXPECT_TRUE(has(R"(key groups:\s+1024\b)")) << o.out;  // the documented default
  EXPECT_TRUE(has(R"(keys per step)")) << o.out;
  EXPECT_TRUE(has(R"(\bjoiner:\s+3\b)")) << "three users -> three keys\n" << o.out;
  EXPECT_TRUE(has(R"(source offsets)")) << o.out;
  // The whole input was read: its offset is the file's size.
  EXPECT_TRUE(has(fmt::format(R"({}:?\s+{}\b)", pt::regex_escape(input), events.size()))) << o.out;
  EXPECT_TRUE(has(R"(sink positions)")) << o.out;
  // The output file's committed position is its length.
  EXPECT_TRUE(has(fmt::format(R"({}:?\s+{}\b)", pt::regex_escape(out), out_size))) << o.out;
}

TEST(Cli, InspectRefusesWhatIsNotAStateDir) {
  pt::TempDir tmp;
  pt::write_file(tmp.sub("file.txt"), "hello\n");
  expect_one_line_error(pt::run_engine({"inspect", tmp.path()}), "inspect a plain dir");
  const auto before = pt::fingerprint(tmp.path());
  expect_one_line_error(pt::run_engine({"inspect", tmp.sub("missing")}), "inspect a missing dir");
  expect_one_line_error(pt::run_engine({"inspect", tmp.sub("file.txt")}), "inspect a file");
  EXPECT_FALSE(std::filesystem::exists(tmp.sub("missing"))) << "inspect created the dir it was asked about";
  EXPECT_EQ(pt::fingerprint(tmp.path()), before) << "inspect changed what it looked at";
}

}  // namespace
