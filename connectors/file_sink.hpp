#pragma once
// FileSink: lines to one file (one partition), exactly-once across resumes by
// truncating to the committed length. DirSink: keyed lines to a directory of
// part files, exactly-once the same way. StdOutSink: lines to stdout,
// at-least-once.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/connector.hpp"
#include "engine/dataflow.hpp"

namespace engine {

// An open output file descriptor shared by a sink partition and the syncs it
// hands to the commit thread; closed when the last of them is gone.
class OutputFile {
 public:
  // Opens (creating) `path` for writing. Throws InputError.
  explicit OutputFile(std::string path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Any thread: fdatasync. Throws InputError.
  void sync() const;

 private:
  std::string path_;
  int fd_ = -1;
};

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
  std::function<void()> syncer() override;
  // From now on, starts the disk write of every kWritebackChunk bytes written.
  void expect_durable() override { writeback_ = true; }

  static constexpr uint64_t kWritebackChunk = 8 << 20;

 private:
  void flush();
  void write_out(const char* data, size_t size);
  std::shared_ptr<OutputFile> file_;
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

// DirSink: keyed lines to a directory of `parts` files part-000 ... (one
// partition each, spread over the workers); a key's lines all go to one file,
// in order. Each file is exactly-once like FileSink's. Keep `parts` the same
// across resumes of one state dir.
class DirSink final : public Sink<KV<std::string>> {
 public:
  DirSink(std::string dir, uint32_t parts);
  std::vector<std::string> list_parts() const override;
  std::unique_ptr<SinkPartition<KV<std::string>>> build_part(const std::string& part,
                                                             const std::optional<std::string>& resume) const override;
  size_t part_of(const KV<std::string>& item, size_t parts) const override;

 private:
  std::string dir_;
  uint32_t parts_;
};

class StdOutSink final : public Sink<std::string> {
 public:
  std::vector<std::string> list_parts() const override { return {"stdout"}; }
  std::unique_ptr<SinkPartition<std::string>> build_part(const std::string& part,
                                                         const std::optional<std::string>& resume) const override;
  bool exactly_once() const override { return false; }
};

}  // namespace engine
