// engine::main: the commands run, list, visualize and inspect.

#include "cli/cli.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "cli/inspect.hpp"
#include "cli/kafka_mock.hpp"
#include "cli/run_flags.hpp"
#include "cli/status_line.hpp"
#include "engine/errors.hpp"
#include "engine/runtime.hpp"

namespace po = boost::program_options;

namespace engine {

namespace {

using cli::UsageError;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage = R"(usage:
  {0} run APP [-w N] [-d DIR] [-s SECONDS] [--snapshot-mode M] [-b DIR]
                 [--on-error P] [APP OPTIONS]
  {0} list                         the apps, one line each
  {0} visualize APP [--format mermaid|json]
  {0} inspect DIR                  what a state dir holds
  {0} kafka-mock [--port P] [--topic NAME:PARTITIONS ...]
                                   a local Kafka endpoint for demos and tests
  {0} COMMAND --help               help for one command

examples:
  {0} run {1} -w 4
  {0} run {1} -w 2 -d state/ -s 1
)";

std::string usage(const std::string& program, const std::vector<App>& apps) {
  return "engine: a parallel streaming dataflow engine with crash-safe recovery\n\n" +
         fmt::format(kUsage, program, apps.empty() ? "APP" : apps.front().name);
}

const App& find_app(const std::vector<App>& apps, const std::string& name, const std::string& program) {
  for (const auto& a : apps) {
    if (a.name == name) return a;
  }
  throw UsageError(fmt::format("unknown app '{}' ('{} list' shows the apps)", name, program));
}

// The app's flow from its flags; a bad or missing app flag is a usage error.
BuiltFlow build_app(const App& app, const po::variables_map& vm) {
  try {
    return app.build(cli::app_flag_values(vm, app));
  } catch (const UsageError&) {
    throw;
  } catch (const ConfigError& e) {
    throw UsageError(e.what());
  }
}

int cmd_list(const std::vector<App>& apps) {
  for (const auto& a : apps) std::printf("%-16s %s\n", a.name.c_str(), a.summary.c_str());
  return 0;
}

int cmd_visualize(const std::vector<App>& apps, const std::vector<std::string>& args, const std::string& program) {
  po::options_description d("visualize options");
  d.add_options()("help,h", "show this help")("format", po::value<std::string>()->default_value("mermaid"),
                                              "mermaid | json");
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: " << program << " visualize APP [--format mermaid|json]\n\n" << d;
    return args.empty() ? kExitUsage : 0;
  }
  const App& app = find_app(apps, args[0], program);
  po::options_description all;
  all.add(d);
  po::options_description app_opts(app.name + " options");
  cli::add_app_flags(app_opts, app);
  all.add(app_opts);
  const auto vm = cli::parse_flags({args.begin() + 1, args.end()}, all);
  if (vm.count("help")) {
    std::cout << "usage: " << program << " visualize " << app.name << " [--format mermaid|json]\n\n" << all;
    return 0;
  }
  const auto format = vm["format"].as<std::string>();
  if (format != "mermaid" && format != "json") {
    throw UsageError(fmt::format("--format must be mermaid or json, got '{}'", format));
  }
  const auto built = build_app(app, vm);
  std::cout << (format == "mermaid" ? built.flow.to_mermaid() : built.flow.to_json() + "\n");
  return 0;
}

void write_stats(const std::string& path, const std::string& app, const RunOptions& opts, const RunStats& stats) {
  std::ofstream f(path);
  f << nlohmann::json{{"app", app},
                      {"workers", opts.workers},
                      {"items_in", stats.items_in},
                      {"items_out", stats.items_out},
                      {"seconds", stats.seconds},
                      {"first_item_seconds", stats.first_item_seconds},
                      {"open_seconds", stats.open_seconds},
                      {"resumed", stats.resumed},
                      {"first_epoch", stats.first_epoch},
                      {"committed_epoch", stats.committed_epoch},
                      {"interrupted_by", stats.interrupted_by},
                      {"commits", stats.commits},
                      {"epochs_committed", stats.epochs_committed},
                      {"commit_p50_seconds", stats.commit_p50_seconds},
                      {"commit_p99_seconds", stats.commit_p99_seconds},
                      {"commit_max_seconds", stats.commit_max_seconds},
                      {"keys_in_memory", stats.keys_in_memory}}
           .dump()
    << "\n";
  if (!f) throw ConfigError(fmt::format("cannot write stats file {}", path));
}

int cmd_run(const std::vector<App>& apps, const std::vector<std::string>& args, const std::string& program) {
  auto common = cli::run_flags();
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: " << program << " run APP [options] [APP OPTIONS]\n       " << program
              << " run APP --help   (the app's options)\n\n"
              << common;
    return args.empty() ? kExitUsage : 0;
  }
  const App& app = find_app(apps, args[0], program);
  po::options_description app_opts(app.name + " options");
  cli::add_app_flags(app_opts, app);
  po::options_description all;
  all.add(common).add(app_opts);
  const auto vm = cli::parse_flags({args.begin() + 1, args.end()}, all);
  if (vm.count("help")) {
    std::cout << "usage: " << program << " run " << app.name << " [options]\n" << app.summary << "\n\n" << all;
    return 0;
  }
  const bool quiet = vm.count("quiet") != 0;
  if (quiet) spdlog::set_level(spdlog::level::warn);
  RunOptions opts = cli::run_options_from(vm);
  // A live status line only where it cannot mix with data lines on the same terminal.
  std::optional<cli::StatusLine> status;
  const bool output_to_file = std::any_of(app.flags.begin(), app.flags.end(),
                                          [&](const AppFlag& f) { return f.name == "output" && vm.count("output"); });
  if (!quiet && ::isatty(STDERR_FILENO) != 0 && (::isatty(STDOUT_FILENO) == 0 || output_to_file)) {
    status.emplace();
    opts.on_progress = [&status](const RunProgress& p) { status->update(p); };
  }

  auto built = build_app(app, vm);
  const auto stats = run(built.flow, opts);
  status.reset();
  if (built.report) {
    if (auto line = built.report(); !line.empty()) spdlog::info("{}", line);
  }
  const double rate = stats.seconds > 0 ? static_cast<double>(stats.items_in) / stats.seconds : 0;
  std::fprintf(stderr, "engine: %s: %llu items in, %llu items out, %.2f s, %.0f items/s%s\n", app.name.c_str(),
               static_cast<unsigned long long>(stats.items_in), static_cast<unsigned long long>(stats.items_out),
               stats.seconds, rate,
               stats.resumed ? fmt::format(" (resumed after epoch {})", stats.first_epoch - 1).c_str() : "");
  if (!opts.stats_path.empty()) write_stats(opts.stats_path, app.name, opts, stats);
  if (stats.interrupted_by != 0) {
    std::fprintf(
        stderr, "engine: interrupted by %s before the input ended; %s\n",
        stats.interrupted_by == SIGINT ? "SIGINT" : "SIGTERM",
        opts.state_dir.empty()
            ? "nothing was committed (no -d)"
            : fmt::format("committed epoch {}: run the same command again to continue", stats.committed_epoch).c_str());
    return 128 + stats.interrupted_by;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv, const std::vector<App>& apps) {
  auto logger = spdlog::get("engine");
  if (!logger) logger = spdlog::stderr_color_mt("engine");
  logger->set_pattern("[%^%l%$] %v");
  spdlog::set_default_logger(logger);
  std::string program = argc > 0 ? std::string(argv[0]) : "engine";
  if (const auto slash = program.rfind('/'); slash != std::string::npos) program = program.substr(slash + 1);
  try {
    if (argc < 2) {
      std::fputs(usage(program, apps).c_str(), stderr);
      return kExitUsage;
    }
    const std::string cmd = argv[1];
    const std::vector<std::string> rest(argv + 2, argv + argc);
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::fputs(usage(program, apps).c_str(), stdout);
      return 0;
    }
    if (cmd == "list") return cmd_list(apps);
    if (cmd == "visualize") return cmd_visualize(apps, rest, program);
    if (cmd == "inspect") return cli::inspect_command(rest);
    if (cmd == "kafka-mock") return cli::kafka_mock_command(rest);
    if (cmd == "run") return cmd_run(apps, rest, program);
    throw UsageError(fmt::format("unknown command '{}' ({} --help)", cmd, program));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "engine: error: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine: error: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace engine
