// running_sum: the recovery tutorial's running sum. One integer per line in,
// ('ALL', sum) out; appending lines and running again continues the sum.

#include <charconv>

#include <fmt/format.h>

#include "apps/registry.hpp"
#include "cli/app.hpp"
#include "connectors/uri.hpp"
#include "engine/context.hpp"
#include "engine/describe.hpp"
#include "operators/operators.hpp"

namespace engine {

namespace {

struct RunningSumOptions {
  InputSpec input;    // "" = the bundled data/running-sum.txt
  OutputSpec output;  // "" = stdout
};

std::optional<int64_t> parse_number(const std::string& line) {
  int64_t v = 0;
  const auto* end = line.data() + line.size();
  const auto [p, ec] = std::from_chars(line.data(), end, v);
  if (ec == std::errc() && p == end) return v;
  if (!line.empty()) {
    warn_item("not an integer", fmt::format("{}: skipping line that is not an integer: {}", current_origin().describe(),
                                            describe_item(line)));
  }
  return std::nullopt;
}

Dataflow running_sum_flow(const RunningSumOptions& o) {
  Dataflow flow("running_sum");
  auto lines = op::input("inp", flow, lines_source(o.input, bundled_data("running-sum.txt")));
  auto numbers = op::filter_map("parse", lines, parse_number);
  auto keyed = op::key_on("key_stream", numbers, [](const int64_t&) { return std::string("ALL"); });
  auto sums = op::stateful_map("running_count", keyed, [](std::optional<int64_t>& sum, int64_t&& x) {
    sum = sum.value_or(0) + x;
    return *sum;
  });
  auto out = op::map("format", sums, [](KV<int64_t>&& kv) { return fmt::format("('{}', {})", kv.first, kv.second); });
  op::output("out", out, lines_sink(o.output));
  return flow;
}

}  // namespace

App running_sum_app() {
  return App::make<RunningSumOptions>(
      "running_sum", "running sum of the numbers in a file, key \"ALL\" (the recovery tutorial)",
      [](AppFlags<RunningSumOptions>& f) {
        f.input(&RunningSumOptions::input,
                "file, directory, - or kafka://HOST:PORT/TOPIC of integers, one per line (default: "
                "data/running-sum.txt)")
            .output(&RunningSumOptions::output, "output file or kafka://HOST:PORT/TOPIC (default: stdout)");
      },
      running_sum_flow);
}

}  // namespace engine
