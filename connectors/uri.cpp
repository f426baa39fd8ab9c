#include "connectors/uri.hpp"

#include <filesystem>

#include <fmt/format.h>

#include "connectors/file/file_sink.hpp"
#include "connectors/file/file_source.hpp"
#include "engine/errors.hpp"

namespace engine {

namespace {
bool is_directory_path(const std::string& path) {
  std::error_code ec;
  return !path.empty() && (path.back() == '/' || std::filesystem::is_directory(path, ec));
}
}  // namespace

std::shared_ptr<const Source<std::string>> lines_source(const InputSpec& in, const std::string& fallback) {
  const std::string path = in.path.empty() ? fallback : in.path;
  if (path.empty()) throw ConfigError("--input is required");
  if (is_kafka_uri(path)) {
    if (in.follow) throw ConfigError("--follow is for files and directories; a Kafka topic is always followed");
    return std::make_shared<KafkaSource>(path, in.kafka);
  }
  if (in.follow && path == "-") throw ConfigError("--follow is for files and directories, not stdin");
  return file_or_dir_source(path, in.follow);
}

bool keyed_output(const OutputSpec& out) { return is_kafka_uri(out.path) || is_directory_path(out.path); }

std::shared_ptr<const Sink<KV<std::string>>> keyed_lines_sink(const OutputSpec& out) {
  if (is_kafka_uri(out.path)) return std::make_shared<KafkaSink<KV<std::string>>>(out.path, out.kafka);
  if (is_directory_path(out.path)) return std::make_shared<DirSink>(out.path, out.parts);
  throw ConfigError(fmt::format("output '{}' does not take keyed lines", out.path));
}

std::shared_ptr<const Sink<std::string>> lines_sink(const OutputSpec& out) {
  if (out.path.empty() || out.path == "-") return std::make_shared<StdOutSink>();
  if (is_kafka_uri(out.path)) return std::make_shared<KafkaSink<std::string>>(out.path, out.kafka);
  return std::make_shared<FileSink>(out.path);
}

}  // namespace engine
