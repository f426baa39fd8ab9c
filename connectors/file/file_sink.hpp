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

#include "engine/append_file.hpp"
#include "engine/connector.hpp"
#include "engine/dataflow.hpp"

namespace engine {

// Writes lines through a buffer (written out when full, on flush(), and at
// the latest by the commit's sync); snapshot() returns the file length with
// what is buffered as the resume position (with `durable`, flushed and
// fsynced first). Not thread-safe.
class FileSinkPartition final : public SinkPartition<std::string> {
 public:
  // Truncates `path` to `keep` bytes (creating it). Throws StateError if the
  // file is shorter than `keep` (it was changed outside the engine).
  FileSinkPartition(std::string path, uint64_t keep);
  ~FileSinkPartition() override;
  void write(std::string&& line) override;
  bool write_lines(std::string_view lines, size_t count) override;
  std::string snapshot(bool durable) override;
  void flush() override;
  void finish() override { flush(); }
  std::function<void()> syncer() override;
  // From now on, starts the disk write of every kWritebackChunk bytes written.
  void expect_durable() override { writeback_ = true; }

  static constexpr uint64_t kWritebackChunk = 8 << 20;

 private:
  void write_out(const char* data, size_t size);
  std::shared_ptr<AppendFile> file_;
  std::string buf_;
  uint64_t length_ = 0;
  uint64_t position_ = 0;  // at the last snapshot: length_ + what was buffered
  bool writeback_ = false;
  uint64_t written_back_ = 0;  // bytes before this offset are being or have been written back
};

class FileSink final : public Sink<std::string> {
 public:
  explicit FileSink(std::string path);
  Footprint footprint() const override;
  // One partition: the file's canonical path.
  std::vector<std::string> list_parts() const override { return {id_}; }
  std::unique_ptr<SinkPartition<std::string>> build_part(const std::string& part,
                                                         const std::optional<std::string>& resume) const override;

 private:
  std::string id_;  // canonical path
};

// DirSink: keyed lines to a directory of `parts` files part-000 ... (one
// partition each, spread over the workers); a key's lines all go to one file,
// in order. Each file is exactly-once like FileSink's. `parts` is part of the
// sink's identity: a resume with another count is refused.
class DirSink final : public Sink<KV<std::string>> {
 public:
  DirSink(std::string dir, uint32_t parts);
  Footprint footprint() const override;
  std::vector<std::string> list_parts() const override;
  // Creates the directory (durably).
  void prepare() const override;
  std::unique_ptr<SinkPartition<KV<std::string>>> build_part(const std::string& part,
                                                             const std::optional<std::string>& resume) const override;
  size_t part_of(const KV<std::string>& item, size_t parts) const override;

 private:
  std::string dir_;  // canonical path
  uint32_t parts_;
};

class StdOutSink final : public Sink<std::string> {
 public:
  Footprint footprint() const override { return Footprint{"stdout", {}, {}}; }
  std::vector<std::string> list_parts() const override { return {"stdout"}; }
  std::unique_ptr<SinkPartition<std::string>> build_part(const std::string& part,
                                                         const std::optional<std::string>& resume) const override;
  bool exactly_once() const override { return false; }
};

}  // namespace engine
