#include "cli/inspect.hpp"

#include <iostream>

#include <nlohmann/json.hpp>

#include "engine/store.hpp"

namespace engine::cli {

int inspect_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: engine inspect DIR [--json]\n\nPrints the app, format version, committed epoch, worker and\n"
                 "key-group counts of the last run, keys per stateful step, the inputs and outputs it\n"
                 "recorded, source offsets and sink positions.\n";
    return args.empty() ? 2 : 0;
  }
  const bool as_json = args.size() > 1 && args[1] == "--json";
  const auto d = RocksStore::open_read_only(args[0])->describe();
  nlohmann::json j;
  j["dir"] = args[0];
  j["app"] = d.app;
  j["format_version"] = d.format_version;
  j["key_groups"] = d.key_groups;
  j["committed_epoch"] = d.commit ? nlohmann::json(d.commit->epoch) : nlohmann::json(nullptr);
  if (d.commit) j["workers"] = d.commit->workers;
  j["keys_per_step"] = d.keys_per_step;
  j["inputs_and_outputs"] = d.io;
  j["source_offsets"] = d.source_offsets;
  j["sink_positions"] = d.sink_positions;
  if (d.dead_letter_length) j["dead_letter_length"] = *d.dead_letter_length;
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "state dir:        " << args[0] << "\n"
            << "app:              " << d.app << "\n"
            << "format version:   " << d.format_version << "\n"
            << "committed epoch:  " << (d.commit ? std::to_string(d.commit->epoch) : "none") << "\n"
            << "workers:          " << (d.commit ? std::to_string(d.commit->workers) : "-") << "\n"
            << "key groups:       " << d.key_groups << "\n"
            << "keys per step:\n";
  for (const auto& [step, n] : d.keys_per_step) std::cout << "  " << step << ": " << n << "\n";
  std::cout << "inputs and outputs:\n";
  for (const auto& [step, identity] : d.io) std::cout << "  " << step << ": " << identity << "\n";
  std::cout << "source offsets (byte offset, next line):\n";
  for (const auto& [step, parts] : d.source_offsets) {
    for (const auto& [part, v] : parts) std::cout << "  " << step << " " << part << ": " << v << "\n";
  }
  std::cout << "sink positions (bytes):\n";
  for (const auto& [step, parts] : d.sink_positions) {
    for (const auto& [part, v] : parts) {
      std::cout << "  " << step << " " << part << ": " << (v.empty() ? "(none: at-least-once)" : v) << "\n";
    }
  }
  if (d.dead_letter_length) std::cout << "dead letters:     " << *d.dead_letter_length << " bytes\n";
  return 0;
}

}  // namespace engine::cli
