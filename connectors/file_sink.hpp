#pragma once
// FileSink: lines to one file (one partition), exactly-once across resumes by
// truncating to the committed length. StdOutSink: lines to stdout, at-least-once.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/connector.hpp"

namespace engine {

// Writes lines through a buffer; snapshot() flushes (and fsyncs when durable)
// and returns the file length as the resume position. Not thread-safe.
class FileSinkPartition final : public SinkPartition<std::string> {
 public:
  // Truncates `path` to `keep` bytes (creating it). Throws StateError if the
  // file is shorter than `keep` (it was changed outside the engine).
  FileSinkPartition(std::string path, uint64_t keep);
  ~FileSinkPartition() override;
  void write(std::string&& line) override;
  bool write_lines(std::string_view lines, size_t count) override;
  std::string snapshot(bool durable) override;
  // Flushes; `sync` fdatasyncs a duplicate of the file descriptor.
  std::string snapshot_deferred(std::function<void()>& sync) override;
  // From now on, starts the disk write of every kWritebackChunk bytes written.
  void expect_durable() override { writeback_ = true; }

  static constexpr uint64_t kWritebackChunk = 8 << 20;

 private:
  void flush();
  void write_out(const char* data, size_t size);
  std::string path_;
  int fd_ = -1;
  std::string buf_;
  uint64_t length_ = 0;
  bool writeback_ = false;
  uint64_t written_back_ = 0;  // bytes before this offset are being or have been written back
};

class FileSink final : public Sink<std::string> {
 public:
  explicit FileSink(std::string path) : path_(std::move(path)) {}
  std::vector<std::string> list_parts() const override { return {path_}; }
  std::unique_ptr<SinkPartition<std::string>> build_part(const std::string& part,
                                                         const std::optional<std::string>& resume) const override;

 private:
  std::string path_;
};

class StdOutSink final : public Sink<std::string> {
 public:
  std::vector<std::string> list_parts() const override { return {"stdout"}; }
  std::unique_ptr<SinkPartition<std::string>> build_part(const std::string& part,
                                                         const std::optional<std::string>& resume) const override;
  bool exactly_once() const override { return false; }
};

}  // namespace engine
