// The `engine` command line: run, list, visualize, inspect.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "apps/app.hpp"
#include "engine/errors.hpp"
#include "engine/runtime.hpp"
#include "engine/store.hpp"

namespace po = boost::program_options;
using engine::App;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage = R"(engine: a parallel streaming dataflow engine with crash-safe recovery

usage:
  engine run APP [-w N] [-d DIR] [-s SECONDS] [--snapshot-mode M] [-b DIR]
                 [--on-error P] [APP OPTIONS]
  engine list                         registered apps, one line each
  engine visualize APP [--format mermaid|json]
  engine inspect DIR                  what a state dir holds
  engine COMMAND --help               help for one command

examples:
  engine run cart_join -w 4
  engine run cart_join -w 2 -d state/ -s 1 --input events/ --output carts.json
)";

struct UsageError : engine::ConfigError {
  using ConfigError::ConfigError;
};

const App& find_app(const std::vector<App>& apps, const std::string& name) {
  for (const auto& a : apps) {
    if (a.name == name) return a;
  }
  throw UsageError(fmt::format("unknown app '{}' ('engine list' shows the apps)", name));
}

po::options_description run_options() {
  po::options_description d("run options");
  d.add_options()("help,h", "show this help")("workers,w", po::value<uint32_t>()->default_value(1), "worker threads")(
      "local-state-dir,d", po::value<std::string>(), "recovery: RocksDB state directory (recovery is off without it)")(
      "snapshot-interval,s", po::value<double>()->default_value(10.0),
      "seconds per epoch (commit interval); 0 = one epoch per input item")(
      "snapshot-mode", po::value<std::string>()->default_value("batch"),
      "batch: write changed state at epoch end; immediate: write changes as they happen")(
      "backup,b", po::value<std::string>(), "keep a backup of the committed state in this directory")(
      "on-error", po::value<std::string>()->default_value("fail"), "fail | skip | dead-letter:PATH")(
      "key-groups", po::value<uint32_t>()->default_value(1024), "key groups of a new state dir")(
      "batch-size", po::value<size_t>()->default_value(1024), "items per exchange batch")(
      "stats", po::value<std::string>(), "write run statistics as JSON to this file")(
      "allow-io-change", "resume although the inputs or outputs differ from the committed run's (changed ones start "
                         "afresh)")(
      "quiet,q", "only warnings and errors on stderr");
  return d;
}

std::vector<std::string> rest(int argc, char** argv, int from) { return {argv + from, argv + argc}; }

// Parses flags; a stray word (a forgotten "-d" before a directory, say) is a usage error, not ignored.
po::variables_map parse(const std::vector<std::string>& args, const po::options_description& d) {
  po::variables_map vm;
  try {
    const auto parsed = po::command_line_parser(args).options(d).run();
    const auto stray = po::collect_unrecognized(parsed.options, po::include_positional);
    if (!stray.empty()) {
      throw UsageError(fmt::format("unexpected argument '{}' (options are given with their flag, e.g. -d {})",
                                   stray.front(), stray.front()));
    }
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return vm;
}

int cmd_list(const std::vector<App>& apps) {
  for (const auto& a : apps) std::printf("%-16s %s\n", a.name.c_str(), a.summary.c_str());
  return 0;
}

int cmd_visualize(const std::vector<App>& apps, const std::vector<std::string>& args) {
  po::options_description d("visualize options");
  d.add_options()("help,h", "show this help")("format", po::value<std::string>()->default_value("mermaid"),
                                              "mermaid | json");
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: engine visualize APP [--format mermaid|json]\n\n" << d;
    return args.empty() ? kExitUsage : 0;
  }
  const App& app = find_app(apps, args[0]);
  po::options_description all;
  all.add(d);
  po::options_description app_opts(app.name + " options");
  app.options(app_opts);
  all.add(app_opts);
  auto vm = parse({args.begin() + 1, args.end()}, all);
  if (vm.count("help")) {
    std::cout << "usage: engine visualize " << app.name << " [--format mermaid|json]\n\n" << all;
    return 0;
  }
  auto built = app.build(vm);
  const auto format = vm["format"].as<std::string>();
  if (format == "mermaid") {
    std::cout << built.flow->to_mermaid();
  } else if (format == "json") {
    std::cout << built.flow->to_json() << "\n";
  } else {
    throw UsageError(fmt::format("--format must be mermaid or json, got '{}'", format));
  }
  return 0;
}

int cmd_inspect(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: engine inspect DIR [--json]\n\nPrints the app, format version, committed epoch, worker and\n"
                 "key-group counts of the last run, keys per stateful step, source offsets and sink positions.\n";
    return args.empty() ? kExitUsage : 0;
  }
  const bool as_json = args.size() > 1 && args[1] == "--json";
  auto store = engine::RocksStore::open_read_only(args[0]);
  nlohmann::json j;
  j["dir"] = args[0];
  j["app"] = store->get("M:app").value_or("?");
  j["format_version"] = store->get("M:format").value_or("?");
  j["key_groups"] = store->key_groups();
  if (auto c = store->committed()) {
    j["committed_epoch"] = c->epoch;
    j["workers"] = c->workers;
  } else {
    j["committed_epoch"] = nullptr;
  }
  std::map<std::string, uint64_t> keys_per_step;
  for (const auto& step : [&] {
         std::vector<std::string> steps;
         std::string joined = store->get("M:steps").value_or("");
         size_t start = 0;
         while (!joined.empty() && start <= joined.size()) {
           const size_t nl = joined.find('\n', start);
           steps.push_back(joined.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
           if (nl == std::string::npos) break;
           start = nl + 1;
         }
         return steps;
       }()) {
    uint64_t n = 0;
    store->scan(std::string("S") + step + std::string(1, '\0'), [&](std::string_view, std::string_view) { ++n; });
    keys_per_step[step] = n;
  }
  j["keys_per_step"] = keys_per_step;
  auto collect = [&](char tag) {
    nlohmann::json out = nlohmann::json::object();
    store->scan(std::string(1, tag), [&](std::string_view key, std::string_view value) {
      const auto zero = key.find('\0');
      const std::string step(key.substr(1, zero - 1));
      const std::string part(key.substr(zero + 1));
      out[step][part] = std::string(value);
    });
    return out;
  };
  j["source_offsets"] = collect('O');
  j["sink_positions"] = collect('P');
  if (auto d = store->get(std::string(engine::keys::kDeadLetter)))
    j["dead_letter_length"] = engine::parse_stored_number(*d, "the dead-letter file length");
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "state dir:        " << args[0] << "\n"
            << "app:              " << j["app"].get<std::string>() << "\n"
            << "format version:   " << j["format_version"].get<std::string>() << "\n"
            << "committed epoch:  " << (j["committed_epoch"].is_null() ? "none" : j["committed_epoch"].dump()) << "\n"
            << "workers:          " << (j.contains("workers") ? j["workers"].dump() : "-") << "\n"
            << "key groups:       " << store->key_groups() << "\n"
            << "keys per step:\n";
  for (const auto& [step, n] : keys_per_step) std::cout << "  " << step << ": " << n << "\n";
  std::cout << "source offsets (byte offset, next line):\n";
  for (const auto& [step, parts] : j["source_offsets"].items()) {
    for (const auto& [part, v] : parts.items())
      std::cout << "  " << step << " " << part << ": " << v.get<std::string>() << "\n";
  }
  std::cout << "sink positions (bytes):\n";
  for (const auto& [step, parts] : j["sink_positions"].items()) {
    for (const auto& [part, v] : parts.items()) {
      const auto s = v.get<std::string>();
      std::cout << "  " << step << " " << part << ": " << (s.empty() ? "(none: at-least-once)" : s) << "\n";
    }
  }
  if (j.contains("dead_letter_length")) std::cout << "dead letters:     " << j["dead_letter_length"] << " bytes\n";
  return 0;
}

int cmd_run(const std::vector<App>& apps, const std::vector<std::string>& args) {
  auto common = run_options();
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: engine run APP [options] [APP OPTIONS]\n       engine run APP --help   (the app's options)\n\n"
              << common;
    return args.empty() ? kExitUsage : 0;
  }
  const App& app = find_app(apps, args[0]);
  po::options_description app_opts(app.name + " options");
  app.options(app_opts);
  po::options_description all;
  all.add(common).add(app_opts);
  auto vm = parse({args.begin() + 1, args.end()}, all);
  if (vm.count("help")) {
    std::cout << "usage: engine run " << app.name << " [options]\n" << app.summary << "\n\n" << all;
    return 0;
  }
  if (vm.count("quiet")) spdlog::set_level(spdlog::level::warn);

  engine::RunOptions opts;
  opts.workers = vm["workers"].as<uint32_t>();
  if (vm.count("local-state-dir")) opts.state_dir = vm["local-state-dir"].as<std::string>();
  opts.snapshot_interval = vm["snapshot-interval"].as<double>();
  const auto mode = vm["snapshot-mode"].as<std::string>();
  if (mode == "batch") {
    opts.snapshot_mode = engine::SnapshotMode::kBatch;
  } else if (mode == "immediate") {
    opts.snapshot_mode = engine::SnapshotMode::kImmediate;
  } else {
    throw UsageError(fmt::format("--snapshot-mode must be batch or immediate, got '{}'", mode));
  }
  if (vm["snapshot-mode"].defaulted() == false && opts.state_dir.empty()) {
    throw UsageError("--snapshot-mode needs -d/--local-state-dir");
  }
  if (vm.count("backup")) opts.backup_dir = vm["backup"].as<std::string>();
  if (auto err = engine::parse_error_policy(vm["on-error"].as<std::string>(), opts); !err.empty())
    throw UsageError(err);
  opts.key_groups = vm["key-groups"].as<uint32_t>();
  if (vm.count("stats")) opts.stats_path = vm["stats"].as<std::string>();
  opts.allow_io_change = vm.count("allow-io-change") != 0;
  opts.batch_size = vm["batch-size"].as<size_t>();
  // Only where it cannot mix with data lines on the same terminal.
  opts.status_line =
      !vm.count("quiet") && ::isatty(STDERR_FILENO) != 0 && (::isatty(STDOUT_FILENO) == 0 || vm.count("output") != 0);
  if (auto err = opts.validate(); !err.empty()) throw UsageError(err);

  auto built = app.build(vm);
  const auto stats = engine::run(*built.flow, opts);
  if (built.report) {
    if (auto line = built.report(); !line.empty()) spdlog::info("{}", line);
  }
  const double rate = stats.seconds > 0 ? static_cast<double>(stats.items_in) / stats.seconds : 0;
  std::fprintf(stderr, "engine: %s: %llu items in, %llu items out, %.2f s, %.0f items/s%s\n", app.name.c_str(),
               static_cast<unsigned long long>(stats.items_in), static_cast<unsigned long long>(stats.items_out),
               stats.seconds, rate,
               stats.resumed ? fmt::format(" (resumed after epoch {})", stats.first_epoch - 1).c_str() : "");
  if (!opts.stats_path.empty()) {
    std::ofstream f(opts.stats_path);
    f << nlohmann::json{{"app", app.name},
                        {"workers", opts.workers},
                        {"items_in", stats.items_in},
                        {"items_out", stats.items_out},
                        {"seconds", stats.seconds},
                        {"first_item_seconds", stats.first_item_seconds},
                        {"open_seconds", stats.open_seconds},
                        {"resumed", stats.resumed},
                        {"first_epoch", stats.first_epoch},
                        {"committed_epoch", stats.committed_epoch},
                        {"interrupted_by", stats.interrupted_by}}
             .dump()
      << "\n";
    if (!f) throw engine::ConfigError(fmt::format("cannot write stats file {}", opts.stats_path));
  }
  if (stats.interrupted_by != 0) {
    std::fprintf(stderr, "engine: interrupted by %s before the input ended; %s\n",
                 stats.interrupted_by == SIGINT ? "SIGINT" : "SIGTERM",
                 opts.state_dir.empty() && opts.store == nullptr
                     ? "nothing was committed (no -d)"
                     : fmt::format("committed epoch {}: run the same command again to continue",
                                   stats.committed_epoch)
                           .c_str());
    return 128 + stats.interrupted_by;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("engine");
  logger->set_pattern("[%^%l%$] %v");
  spdlog::set_default_logger(logger);
  try {
    const auto apps = engine::builtin_apps();
    if (argc < 2) {
      std::fputs(kUsage, stderr);
      return kExitUsage;
    }
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (cmd == "list") return cmd_list(apps);
    if (cmd == "visualize") return cmd_visualize(apps, rest(argc, argv, 2));
    if (cmd == "inspect") return cmd_inspect(rest(argc, argv, 2));
    if (cmd == "run") return cmd_run(apps, rest(argc, argv, 2));
    throw UsageError(fmt::format("unknown command '{}' (engine --help)", cmd));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "engine: error: %s\n", e.what());
    return kExitUsage;
  } catch (const engine::Error& e) {
    std::fprintf(stderr, "engine: error: %s\n", e.what());
    return kExitFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine: error: %s\n", e.what());
    return kExitFailed;
  }
}
