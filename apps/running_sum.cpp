// running_sum: the recovery tutorial's running sum. One integer per line in,
// ('ALL', sum) out; appending lines and running again continues the sum.

#include <charconv>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "apps/app.hpp"
#include "connectors/file_sink.hpp"
#include "connectors/file_source.hpp"
#include "engine/context.hpp"
#include "engine/describe.hpp"
#include "operators/operators.hpp"

namespace po = boost::program_options;

namespace engine {

App running_sum_app() {
  App a;
  a.name = "running_sum";
  a.summary = "running sum of the numbers in a file, key \"ALL\" (the recovery tutorial)";
  a.options = [](po::options_description& d) {
    d.add_options()("input", po::value<std::string>(),
                    "file (or directory) of integers, one per line (default: data/running-sum.txt)")(
        "output", po::value<std::string>(), "output file (default: stdout)");
  };
  a.build = [](const po::variables_map& vm) {
    const std::string input = vm.count("input") ? vm["input"].as<std::string>() : bundled_data("running-sum.txt");
    auto flow = std::make_unique<Dataflow>("running_sum");
    auto lines = op::input("inp", *flow, file_or_dir_source(input));
    auto numbers = op::filter_map("parse", lines, [](const std::string& line) -> std::optional<int64_t> {
      int64_t v = 0;
      const auto* end = line.data() + line.size();
      const auto [p, ec] = std::from_chars(line.data(), end, v);
      if (ec == std::errc() && p == end) return v;
      if (!line.empty()) {
        warn_item("not an integer", fmt::format("{}: skipping line that is not an integer: {}",
                                                current_origin().describe(), describe_item(line)));
      }
      return std::nullopt;
    });
    auto keyed = op::key_on("key_stream", numbers, [](const int64_t&) { return std::string("ALL"); });
    auto sums = op::stateful_map<int64_t>("running_count", keyed, [](std::optional<int64_t>& sum, int64_t&& x) {
      sum = sum.value_or(0) + x;
      return *sum;
    });
    auto out = op::map("format", sums, [](KV<int64_t>&& kv) { return fmt::format("('{}', {})", kv.first, kv.second); });
    if (vm.count("output")) {
      op::output("out", out, std::make_shared<FileSink>(vm["output"].as<std::string>()));
    } else {
      op::output("out", out, std::make_shared<StdOutSink>());
    }
    return BuiltApp{std::move(flow), nullptr};
  };
  return a;
}

}  // namespace engine
