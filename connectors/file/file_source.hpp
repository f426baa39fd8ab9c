#pragma once
// FileSource: one file = one partition; DirSource: one partition per file of a
// directory. Both yield lines (without the newline) and resume at a byte
// offset. A partition's id is the file's canonical path, so "in", "./in" and
// "/abs/in" are one partition; messages name files as the user wrote them.
//
// A line is the bytes up to a newline. Bytes after the last newline are not a
// line yet (a writer may be appending to the file): they are never consumed
// by a committed epoch; only the tail epoch at the very end of a bounded run
// reads them as a last line (see SourcePartition::next_tail_batch). A UTF-8
// byte-order mark at the start of a file is skipped.
//
// Followed (follow = true, `--follow`): at the end of a file the reader keeps
// polling for appended bytes (each poll of an idle worker, a few ms apart);
// a directory's new files become new partitions (looked for every second).
// A followed file that shrinks below what was read (truncated) is read again
// from its start, with a warning; one replaced by another file at its path
// (a rename, log rotation) likewise: the new file from its start.
//
// StdinSource reads standard input as it comes (`--input -`): it cannot be
// replayed, so a resume restores the committed state and goes on with
// whatever comes next; an unterminated last line is read when input ends.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/connector.hpp"

namespace engine {

// Reads a file line by line in large chunks. Lines may be of any length and
// hold any bytes (NUL, invalid UTF-8). Each line's capacity leaves
// kLinePadding spare bytes so parsers like simdjson can read past its end.
// Its buffer is sized to what is left of the file (at most kChunk, growing
// only for longer lines). Owned by one worker; not thread-safe.
class LineReader final : public SourcePartition<std::string> {
 public:
  static constexpr size_t kLinePadding = 64;
  static constexpr size_t kChunk = 1 << 20;

  enum class Mode : uint8_t {
    kFile,    // a file read to its end
    kFollow,  // a file followed as it grows
    kStream,  // a pipe (stdin): read as bytes arrive, never seeked
  };

  // Opens `path` at `offset` (byte) where the next line is number `line`;
  // `name` is how errors call the file. Throws InputError.
  LineReader(std::string path, std::string name, uint64_t offset, uint64_t line, Mode mode = Mode::kFile);
  // Reads the open descriptor `fd` (not owned) as a stream.
  LineReader(int fd, std::string name, uint64_t offset, uint64_t line);
  ~LineReader() override;
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  bool next_batch(SourceBatch<std::string>& batch, size_t max) override;
  bool next_tail_batch(SourceBatch<std::string>& batch, size_t max) override;
  bool has_tail() const override { return tail_; }
  // "OFFSET LINE": the byte offset and number of the next unread line.
  std::string snapshot() const override;

  // Throws StateError naming `name` if `state` is not "OFFSET LINE".
  static std::pair<uint64_t, uint64_t> parse_snapshot(const std::string& name, const std::string& state);

 private:
  bool read_lines(SourceBatch<std::string>& batch, size_t max, bool take_unterminated);
  bool fill();
  // A stream: whether bytes (or the end) can be read now without blocking.
  bool readable() const;
  // Follow mode at the end of the file: starts again from the top of a
  // truncated or replaced file (looked at once a second).
  void check_followed();
  void restart(const char* why);

  std::string path_;
  std::string name_;
  Mode mode_ = Mode::kFile;
  bool owns_fd_ = true;
  bool bom_checked_ = false;
  int64_t last_check_ns_ = 0;  // follow mode: steady-clock time of the last check_followed()
  int fd_ = -1;
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;  // bytes of buf_
  size_t pos_ = 0;  // next unread byte in buf_
  size_t end_ = 0;  // valid bytes in buf_
  bool eof_ = false;
  bool tail_ = false;    // exhausted with unterminated bytes left in buf_
  uint64_t offset_ = 0;  // file offset of buf_[pos_]
  uint64_t line_ = 1;
};

class FileSource final : public Source<std::string> {
 public:
  explicit FileSource(std::string path, bool follow = false);
  bool unbounded() const override { return follow_; }
  Footprint footprint() const override;
  std::vector<std::string> list_parts() const override;
  std::string describe_part(const std::string& part) const override;
  std::unique_ptr<SourcePartition<std::string>> build_part(const std::string& part,
                                                           const std::optional<std::string>& resume) const override;

 private:
  std::string path_;  // as given
  std::string id_;    // canonical
  bool follow_;
};

class DirSource final : public Source<std::string> {
 public:
  explicit DirSource(std::string dir, bool follow = false);
  bool unbounded() const override { return follow_; }
  bool discovers_parts() const override { return follow_; }
  Footprint footprint() const override;
  // The regular files of the directory, sorted; each id is "CANONICAL_DIR/FILE".
  std::vector<std::string> list_parts() const override;
  // "DIR/FILE" with DIR as given.
  std::string describe_part(const std::string& part) const override;
  std::unique_ptr<SourcePartition<std::string>> build_part(const std::string& part,
                                                           const std::optional<std::string>& resume) const override;

 private:
  std::string dir_;  // as given
  std::string id_;   // canonical
  bool follow_;
};

class StdinSource final : public Source<std::string> {
 public:
  Footprint footprint() const override { return Footprint{"stdin", {}, {}}; }
  std::vector<std::string> list_parts() const override { return {"stdin"}; }
  std::unique_ptr<SourcePartition<std::string>> build_part(const std::string& part,
                                                           const std::optional<std::string>& resume) const override;
};

// A FileSource for a file, a DirSource for a directory (both followed with
// `follow`), a StdinSource for "-"; throws InputError if `path` is none of
// these (missing, or a FIFO, a device, ...).
std::shared_ptr<const Source<std::string>> file_or_dir_source(const std::string& path, bool follow = false);

}  // namespace engine
