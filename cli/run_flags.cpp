#include "cli/run_flags.hpp"

#include <fmt/format.h>

namespace po = boost::program_options;

namespace engine::cli {

po::options_description run_flags() {
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
      "flush-interval", po::value<uint32_t>()->default_value(10),
      "milliseconds: outputs write what they buffer at least this often (and whenever a worker is idle)")(
      "stats", po::value<std::string>(), "write run statistics as JSON to this file")(
      "allow-io-change",
      "resume although the inputs or outputs differ from the committed run's (changed ones start afresh)")(
      "quiet,q", "only warnings and errors on stderr");
  return d;
}

void add_app_flags(po::options_description& d, const App& app) {
  for (const auto& f : app.flags) {
    if (f.is_switch) {
      d.add_options()(f.name.c_str(), f.help.c_str());
    } else if (f.repeated) {
      d.add_options()(f.name.c_str(), po::value<std::vector<std::string>>()->composing(), f.help.c_str());
    } else if (!f.default_text.empty()) {
      d.add_options()(f.name.c_str(), po::value<std::string>()->default_value(f.default_text), f.help.c_str());
    } else {
      d.add_options()(f.name.c_str(), po::value<std::string>(), f.help.c_str());
    }
  }
}

po::variables_map parse_flags(const std::vector<std::string>& args, const po::options_description& d) {
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

std::map<std::string, std::vector<std::string>> app_flag_values(const po::variables_map& vm, const App& app) {
  std::map<std::string, std::vector<std::string>> given;
  for (const auto& f : app.flags) {
    if (!vm.count(f.name)) continue;
    if (f.is_switch) {
      given[f.name] = {std::string()};
    } else if (f.repeated) {
      given[f.name] = vm[f.name].as<std::vector<std::string>>();
    } else {
      given[f.name] = {vm[f.name].as<std::string>()};
    }
  }
  return given;
}

RunOptions run_options_from(const po::variables_map& vm) {
  RunOptions opts;
  opts.workers = vm["workers"].as<uint32_t>();
  if (vm.count("local-state-dir")) opts.state_dir = vm["local-state-dir"].as<std::string>();
  opts.snapshot_interval = vm["snapshot-interval"].as<double>();
  const auto mode = vm["snapshot-mode"].as<std::string>();
  if (mode == "batch") {
    opts.snapshot_mode = SnapshotMode::kBatch;
  } else if (mode == "immediate") {
    opts.snapshot_mode = SnapshotMode::kImmediate;
  } else {
    throw UsageError(fmt::format("--snapshot-mode must be batch or immediate, got '{}'", mode));
  }
  if (!vm["snapshot-mode"].defaulted() && opts.state_dir.empty()) {
    throw UsageError("--snapshot-mode needs -d/--local-state-dir");
  }
  if (vm.count("backup")) opts.backup_dir = vm["backup"].as<std::string>();
  if (auto err = parse_error_policy(vm["on-error"].as<std::string>(), opts); !err.empty()) throw UsageError(err);
  opts.key_groups = vm["key-groups"].as<uint32_t>();
  opts.batch_size = vm["batch-size"].as<size_t>();
  opts.flush_interval_ms = vm["flush-interval"].as<uint32_t>();
  if (vm.count("stats")) opts.stats_path = vm["stats"].as<std::string>();
  opts.allow_io_change = vm.count("allow-io-change") != 0;
  if (auto err = opts.validate(); !err.empty()) throw UsageError(err);
  return opts;
}

}  // namespace engine::cli
