#pragma once
// FileSource: one file = one partition; DirSource: one partition per file of a
// directory. Both yield lines (without the newline) and resume at a byte offset.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/connector.hpp"

namespace engine {

// Reads a file line by line in large chunks. Lines may be of any length and
// hold any bytes (NUL, invalid UTF-8). Each line's capacity leaves
// kLinePadding spare bytes so parsers like simdjson can read past its end.
class LineReader final : public SourcePartition<std::string> {
 public:
  static constexpr size_t kLinePadding = 64;

  // Opens `path` at `offset` (byte) where the next line is number `line`.
  // Throws InputError.
  LineReader(std::string path, uint64_t offset, uint64_t line);
  ~LineReader() override;

  bool next_batch(SourceBatch<std::string>& batch, size_t max) override;
  // "OFFSET LINE": the byte offset and number of the next unread line.
  std::string snapshot() const override;

  static std::pair<uint64_t, uint64_t> parse_snapshot(const std::string& path, const std::string& state);

 private:
  bool fill();

  std::string path_;
  int fd_ = -1;
  std::vector<char> buf_;
  size_t pos_ = 0;  // next unread byte in buf_
  size_t end_ = 0;  // valid bytes in buf_
  bool eof_ = false;
  uint64_t offset_ = 0;  // file offset of buf_[pos_]
  uint64_t line_ = 1;
};

class FileSource final : public Source<std::string> {
 public:
  explicit FileSource(std::string path) : path_(std::move(path)) {}
  std::vector<std::string> list_parts() const override;
  std::unique_ptr<SourcePartition<std::string>> build_part(const std::string& part,
                                                           const std::optional<std::string>& resume) const override;

 private:
  std::string path_;
};

class DirSource final : public Source<std::string> {
 public:
  explicit DirSource(std::string dir) : dir_(std::move(dir)) {}
  // The regular files of the directory, sorted; each name is "DIR/FILE".
  std::vector<std::string> list_parts() const override;
  std::unique_ptr<SourcePartition<std::string>> build_part(const std::string& part,
                                                           const std::optional<std::string>& resume) const override;

 private:
  std::string dir_;
};

// A FileSource for a file, a DirSource for a directory; throws InputError if `path` is neither.
std::shared_ptr<const Source<std::string>> file_or_dir_source(const std::string& path);

}  // namespace engine
