#include "connectors/file/file_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>

#include <fmt/format.h>

#include "engine/errors.hpp"
#include "engine/hash.hpp"
#include "engine/paths.hpp"
#include "engine/stored_number.hpp"

namespace engine {
namespace fs = std::filesystem;

namespace {
constexpr size_t kFlushAt =
    1 << 20;  // large writes: ext4's per-write cost (inode time, journal) is paid 16x less often than at 64 KB

void write_all(int fd, const char* data, size_t size, const std::string& what) {
  size_t off = 0;
  while (off < size) {
    const ssize_t n = ::write(fd, data + off, size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(fmt::format("cannot write {}: {}", what, std::strerror(errno)));
    off += static_cast<size_t>(n);
  }
}

uint64_t parse_position(const std::string& part, const std::optional<std::string>& resume) {
  return resume ? parse_stored_number(*resume, fmt::format("the committed position of output {}", part)) : 0;
}

// Writes stdout lines through one buffer; flushes at the end of every epoch.
class StdOutPartition final : public SinkPartition<std::string> {
 public:
  ~StdOutPartition() override {
    try {
      flush();
    } catch (...) {
      // stdout closed (EPIPE): nothing left to report to.
    }
  }
  void write(std::string&& line) override {
    buf_.append(line);
    buf_.push_back('\n');
    if (buf_.size() >= kFlushAt) flush();
  }
  bool write_lines(std::string_view lines, size_t) override {
    buf_.append(lines);
    if (buf_.size() >= kFlushAt) flush();
    return true;
  }
  // Written at least every flush interval and when the worker idles, not at every epoch's end.
  std::string snapshot(bool) override { return ""; }
  void flush() override {
    if (buf_.empty()) return;
    write_all(STDOUT_FILENO, buf_.data(), buf_.size(), "stdout");
    buf_.clear();
  }

 private:
  std::string buf_;
};
}  // namespace

FileSinkPartition::FileSinkPartition(std::string path, uint64_t keep)
    : file_(std::make_shared<AppendFile>(std::move(path), keep, "output file")), length_(keep), written_back_(keep) {
  buf_.reserve(kFlushAt + 4096);
}

FileSinkPartition::~FileSinkPartition() {
  try {
    flush();
  } catch (...) {
    // A failing disk at shutdown: the committed length is still correct.
  }
  file_->close_writes();
}

void FileSinkPartition::write(std::string&& line) {
  buf_.append(line);
  buf_.push_back('\n');
  if (buf_.size() >= kFlushAt) flush();
}

bool FileSinkPartition::write_lines(std::string_view lines, size_t) {
  if (buf_.size() + lines.size() < kFlushAt) {
    buf_.append(lines);
    return true;
  }
  flush();
  write_out(lines.data(), lines.size());  // a large block goes out without a copy
  return true;
}

void FileSinkPartition::flush() {
  if (buf_.empty()) return;
  write_out(buf_.data(), buf_.size());
  buf_.clear();
}

void FileSinkPartition::write_out(const char* data, size_t size) {
  file_->append(data, size);
  length_ += size;
  if (writeback_ && length_ - written_back_ >= kWritebackChunk) {
    // Only starts the write (a hint); the commit's fdatasync reports errors.
    (void)::sync_file_range(file_->fd(), static_cast<off_t>(written_back_), static_cast<off_t>(length_ - written_back_),
                            SYNC_FILE_RANGE_WRITE);
    written_back_ = length_;
  }
}

// The position counts what is still buffered: an epoch's end costs no
// write; the commit's sync waits until the buffer reached the file.
std::string FileSinkPartition::snapshot(bool durable) {
  if (durable) {
    flush();
    file_->sync();
  }
  position_ = length_ + buf_.size();
  return std::to_string(position_);
}

std::function<void()> FileSinkPartition::syncer() {
  return [file = file_, position = position_] { file->sync_through(position); };
}

std::unique_ptr<SinkPartition<std::string>> FileSink::build_part(const std::string& part,
                                                                 const std::optional<std::string>& resume) const {
  return std::make_unique<FileSinkPartition>(part, parse_position(part, resume));
}

namespace {
// A DirSink partition: the value of each keyed line goes to one part file.
class DirSinkPartition final : public SinkPartition<KV<std::string>> {
 public:
  DirSinkPartition(std::string path, uint64_t keep) : file_(std::move(path), keep) {}
  void write(KV<std::string>&& item) override { file_.write(std::move(item.second)); }
  std::string snapshot(bool durable) override { return file_.snapshot(durable); }
  void flush() override { file_.flush(); }
  void finish() override { file_.finish(); }
  std::function<void()> syncer() override { return file_.syncer(); }
  void expect_durable() override { file_.expect_durable(); }

 private:
  FileSinkPartition file_;
};
}  // namespace

FileSink::FileSink(std::string path) : id_(canonical_path(path)) {}

Footprint FileSink::footprint() const { return Footprint{"file " + id_, {id_}, {}}; }

DirSink::DirSink(std::string dir, uint32_t parts) : dir_(canonical_path(dir)), parts_(parts) {
  if (parts_ == 0) throw ConfigError(fmt::format("output directory {} needs at least one part file", dir));
}

Footprint DirSink::footprint() const {
  Footprint f{fmt::format("dir {} ({} part files)", dir_, parts_), {}, {dir_}};
  for (const auto& part : list_parts()) f.files.push_back(part);
  return f;
}

std::vector<std::string> DirSink::list_parts() const {
  std::vector<std::string> names;
  for (uint32_t p = 0; p < parts_; ++p) names.push_back(fmt::format("{}/part-{:03}", dir_, p));
  return names;
}

void DirSink::prepare() const {
  // The directories made here must outlive a power loss with the part files in them.
  std::vector<fs::path> made;
  for (fs::path p = dir_; !p.empty() && !fs::exists(p); p = p.parent_path()) made.push_back(p);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_, ec)) {
    throw InputError(fmt::format("cannot create output directory {}: {}", dir_, ec ? ec.message() : "not a directory"));
  }
  for (const auto& p : made) {
    if (const int err = sync_parent_dir(p.string()); err != 0) {
      throw InputError(fmt::format("cannot sync the directory of {}: {}", p.string(), std::strerror(err)));
    }
  }
}

std::unique_ptr<SinkPartition<KV<std::string>>> DirSink::build_part(const std::string& part,
                                                                    const std::optional<std::string>& resume) const {
  return std::make_unique<DirSinkPartition>(part, parse_position(part, resume));
}

size_t DirSink::part_of(const KV<std::string>& item, size_t parts) const { return stable_hash(item.first) % parts; }

std::unique_ptr<SinkPartition<std::string>> StdOutSink::build_part(const std::string&,
                                                                   const std::optional<std::string>&) const {
  return std::make_unique<StdOutPartition>();
}

}  // namespace engine
