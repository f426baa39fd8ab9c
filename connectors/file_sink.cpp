#include "connectors/file_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>

#include <fmt/format.h>

#include "engine/errors.hpp"

namespace engine {

namespace {
constexpr size_t kFlushAt = 1 << 16;

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
  if (!resume) return 0;
  try {
    return std::stoull(*resume);
  } catch (const std::exception&) {
    throw StateError(fmt::format("corrupt committed position '{}' for output {}", *resume, part));
  }
}

// A duplicated descriptor kept open for a deferred sync; closed with the last copy of the sync.
struct DupFd {
  explicit DupFd(int f) : fd(f) {}
  DupFd(const DupFd&) = delete;
  DupFd& operator=(const DupFd&) = delete;
  ~DupFd() { (void)::close(fd); }  // only used for fdatasync, whose result was checked
  const int fd;
};

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
  std::string snapshot(bool) override {
    flush();
    return "";
  }

 private:
  void flush() {
    write_all(STDOUT_FILENO, buf_.data(), buf_.size(), "stdout");
    buf_.clear();
  }
  std::string buf_;
};
}  // namespace

FileSinkPartition::FileSinkPartition(std::string path, uint64_t keep)
    : path_(std::move(path)), length_(keep), written_back_(keep) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InputError(fmt::format("cannot open output file {}: {}", path_, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw InputError(fmt::format("cannot stat output file {}", path_));
  if (static_cast<uint64_t>(st.st_size) < keep) {
    throw StateError(fmt::format("output file {} has {} bytes but {} were committed; was it changed?", path_,
                                 st.st_size, keep));
  }
  // Truncates only if there is something to cut: on ext4, truncating a file
  // to length 0 (even an empty one) makes close() write all its data back.
  const bool cut = static_cast<uint64_t>(st.st_size) > keep;
  if ((cut && ::ftruncate(fd_, static_cast<off_t>(keep)) != 0) || ::lseek(fd_, static_cast<off_t>(keep), SEEK_SET) < 0) {
    throw InputError(fmt::format("cannot truncate output file {}: {}", path_, std::strerror(errno)));
  }
  buf_.reserve(kFlushAt + 4096);
}

FileSinkPartition::~FileSinkPartition() {
  try {
    flush();
  } catch (...) {
    // A failing disk at shutdown: the committed length is still correct.
  }
  if (fd_ >= 0) ::close(fd_);
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
  write_all(fd_, data, size, "output file " + path_);
  length_ += size;
  if (writeback_ && length_ - written_back_ >= kWritebackChunk) {
    // Only starts the write (a hint); fdatasync at the end of the epoch reports errors.
    (void)::sync_file_range(fd_, static_cast<off_t>(written_back_), static_cast<off_t>(length_ - written_back_),
                            SYNC_FILE_RANGE_WRITE);
    written_back_ = length_;
  }
}

std::string FileSinkPartition::snapshot(bool durable) {
  flush();
  if (durable && ::fdatasync(fd_) != 0) {
    throw InputError(fmt::format("cannot sync output file {}: {}", path_, std::strerror(errno)));
  }
  return std::to_string(length_);
}

std::string FileSinkPartition::snapshot_deferred(std::function<void()>& sync) {
  flush();
  // A duplicate descriptor: the partition may be closed before the sync runs.
  const int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw InputError(fmt::format("cannot sync output file {}: {}", path_, std::strerror(errno)));
  auto owned = std::make_shared<const DupFd>(fd);
  sync = [owned, path = path_] {
    if (::fdatasync(owned->fd) != 0) {
      throw InputError(fmt::format("cannot sync output file {}: {}", path, std::strerror(errno)));
    }
  };
  return std::to_string(length_);
}

std::unique_ptr<SinkPartition<std::string>> FileSink::build_part(const std::string& part,
                                                                 const std::optional<std::string>& resume) const {
  return std::make_unique<FileSinkPartition>(part, parse_position(part, resume));
}

std::unique_ptr<SinkPartition<std::string>> StdOutSink::build_part(const std::string&,
                                                                   const std::optional<std::string>&) const {
  return std::make_unique<StdOutPartition>();
}

}  // namespace engine
