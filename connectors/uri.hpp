#pragma once
// What an app's --input and --output name, turned into connectors: a file, a
// directory, "-" (stdin) or kafka://HOST:PORT[,...]/TOPIC for inputs; a file,
// a directory (a path ending in / or an existing one), kafka://... or
// nothing (stdout) for outputs. Apps get the flags that go with them from
// AppFlags::input() and AppFlags::output() (cli/app.hpp).

#include <cstdint>
#include <memory>
#include <string>

#include "connectors/kafka/kafka.hpp"
#include "engine/connector.hpp"
#include "engine/dataflow.hpp"

namespace engine {

// --input PATH_OR_URI [--follow] [--kafka-opt K=V ...] [--kafka-start S] [--kafka-bounded]
struct InputSpec {
  std::string path;     // "" = the app's default
  bool follow = false;  // files and directories: keep reading what is appended
  KafkaSettings kafka;
};

// --output PATH_OR_URI [--output-parts N] [--kafka-opt K=V ...]
struct OutputSpec {
  std::string path;    // "" = stdout
  uint32_t parts = 4;  // part files of an output directory
  KafkaSettings kafka;
};

// The lines of `in` (or of `fallback` when in.path is empty). Throws InputError / ConfigError.
std::shared_ptr<const Source<std::string>> lines_source(const InputSpec& in, const std::string& fallback = "");

// Whether `out` takes keyed lines: a directory of part files by key, or a
// Kafka topic with the key as the message key.
bool keyed_output(const OutputSpec& out);
// The sink of keyed_output(); throws ConfigError for any other output.
std::shared_ptr<const Sink<KV<std::string>>> keyed_lines_sink(const OutputSpec& out);
// A file, a Kafka topic (messages without keys) or stdout.
std::shared_ptr<const Sink<std::string>> lines_sink(const OutputSpec& out);

}  // namespace engine
