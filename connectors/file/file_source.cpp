#include "connectors/file/file_source.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/errors.hpp"
#include "engine/paths.hpp"
#include "engine/stored_number.hpp"

namespace engine {
namespace fs = std::filesystem;

namespace {
constexpr size_t kMinBuffer = 4096;

constexpr int64_t kFollowCheckNs = 1'000'000'000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<SourcePartition<std::string>> open_lines(const std::string& path, const std::string& name,
                                                         const std::optional<std::string>& resume, bool follow) {
  uint64_t offset = 0;
  uint64_t line = 1;
  if (resume) std::tie(offset, line) = LineReader::parse_snapshot(name, *resume);
  return std::make_unique<LineReader>(path, name, offset, line,
                                      follow ? LineReader::Mode::kFollow : LineReader::Mode::kFile);
}

// Refuses what is not a regular file or directory with a line saying what it is.
void refuse_special(const std::string& path, const char* role) {
  if (const auto kind = special_file_kind(path); !kind.empty()) {
    throw InputError(fmt::format(
        "{} {} is {}, not a regular file or a directory: only files (or directories of them) can be read and "
        "resumed at an offset",
        role, path, kind));
  }
}
}  // namespace

LineReader::LineReader(int fd, std::string name, uint64_t offset, uint64_t line)
    : name_(std::move(name)), mode_(Mode::kStream), owns_fd_(false), fd_(fd), offset_(offset), line_(line) {
  cap_ = kChunk;
  buf_ = std::make_unique_for_overwrite<char[]>(cap_);
  bom_checked_ = offset != 0;
}

LineReader::LineReader(std::string path, std::string name, uint64_t offset, uint64_t line, Mode mode)
    : path_(std::move(path)), name_(std::move(name)), mode_(mode), offset_(offset), line_(line) {
  bom_checked_ = offset != 0;
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw InputError(fmt::format("cannot open input file {}: {}", name_, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw InputError(fmt::format("cannot stat input file {}: {}", name_, std::strerror(err)));
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < offset) {
    ::close(fd_);
    throw InputError(fmt::format("input file {} has {} bytes but the committed offset is {}; was it replaced?", name_,
                                 size, offset));
  }
  if (::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0) {
    const int err = errno;
    ::close(fd_);
    throw InputError(fmt::format("cannot seek input file {}: {}", name_, std::strerror(err)));
  }
  // Small files get small buffers: ten thousand of them must not cost a chunk each.
  cap_ = mode == Mode::kFollow ? kMinBuffer * 16
                               : static_cast<size_t>(std::clamp<uint64_t>(size - offset + 1, kMinBuffer, kChunk));
  buf_ = std::make_unique_for_overwrite<char[]>(cap_);
}

LineReader::~LineReader() {
  if (fd_ >= 0 && owns_fd_) ::close(fd_);
}

std::pair<uint64_t, uint64_t> LineReader::parse_snapshot(const std::string& name, const std::string& state) {
  const auto space = state.find(' ');
  if (space == std::string::npos) throw StateError(fmt::format("corrupt resume state '{}' for input {}", state, name));
  const std::string what = fmt::format("the resume state of input {}", name);
  return {parse_stored_number(std::string_view(state).substr(0, space), what),
          parse_stored_number(std::string_view(state).substr(space + 1), what)};
}

std::string LineReader::snapshot() const { return fmt::format("{} {}", offset_, line_); }

bool LineReader::readable() const {
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

void LineReader::restart(const char* why) {
  spdlog::warn("input {} was {}: reading it again from its start", name_, why);
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // gone for now: the next check tries again
  ::close(fd_);
  fd_ = fd;
  pos_ = end_ = 0;
  offset_ = 0;
  line_ = 1;
  eof_ = false;
  bom_checked_ = false;
}

void LineReader::check_followed() {
  const int64_t now = now_ns();
  if (now - last_check_ns_ < kFollowCheckNs) return;
  last_check_ns_ = now;
  struct stat open {};
  struct stat named {};
  if (::fstat(fd_, &open) != 0) return;
  if (::stat(path_.c_str(), &named) == 0 && (named.st_ino != open.st_ino || named.st_dev != open.st_dev)) {
    restart("replaced by another file");
  } else if (static_cast<uint64_t>(open.st_size) < offset_ + (end_ - pos_)) {
    // Opened again: the same descriptor would read on past the new end.
    restart("truncated");
  }
}

// Moves unread bytes to the front and reads more; grows the buffer for long lines.
bool LineReader::fill() {
  if (eof_) return false;
  if (mode_ == Mode::kStream && !readable()) return false;  // nothing yet; not the end
  if (pos_ > 0) {
    std::memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == cap_) {
    auto bigger = std::make_unique_for_overwrite<char[]>(cap_ * 2);
    std::memcpy(bigger.get(), buf_.get(), end_);
    buf_ = std::move(bigger);
    cap_ *= 2;
  }
  for (;;) {
    const ssize_t n = ::read(fd_, buf_.get() + end_, cap_ - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(fmt::format("cannot read input file {}: {}", name_, std::strerror(errno)));
    if (n == 0) {
      if (mode_ != Mode::kFollow) eof_ = true;  // a followed file may grow again
      return false;
    }
    end_ += static_cast<size_t>(n);
    return true;
  }
}

bool LineReader::next_batch(SourceBatch<std::string>& batch, size_t max) { return read_lines(batch, max, false); }

bool LineReader::next_tail_batch(SourceBatch<std::string>& batch, size_t max) { return read_lines(batch, max, true); }

bool LineReader::read_lines(SourceBatch<std::string>& batch, size_t max, bool take_unterminated) {
  batch.first_line = line_;
  size_t produced = 0;
  while (produced < max) {
    if (!bom_checked_) {
      if (end_ - pos_ < 3 && fill()) continue;
      bom_checked_ = end_ - pos_ >= 3 || eof_;
      if (end_ - pos_ >= 3 && std::memcmp(buf_.get() + pos_, "\xEF\xBB\xBF", 3) == 0) {
        pos_ += 3;
        offset_ += 3;
      }
      if (!bom_checked_) return true;  // a stream or followed file with fewer than 3 bytes yet
    }
    const char* start = buf_.get() + pos_;
    const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
    size_t len;
    size_t consumed;
    if (nl != nullptr) {
      len = static_cast<size_t>(nl - start);
      consumed = len + 1;
    } else {
      if (fill()) continue;
      if (mode_ == Mode::kFollow) {
        check_followed();
        return true;  // never exhausted: a line ends only with its newline
      }
      if (mode_ == Mode::kStream && !eof_) return true;  // more may come
      tail_ = pos_ < end_;
      // A stream cannot be read again: its unterminated last line is taken now.
      if (!tail_ || !(take_unterminated || mode_ == Mode::kStream)) return false;
      tail_ = false;
      len = end_ - pos_;
      consumed = len;
    }
    start = buf_.get() + pos_;
    size_t text = len;
    if (text > 0 && start[text - 1] == '\r') --text;
    std::string& line = batch.next();
    if (line.capacity() < text + kLinePadding) line.reserve(text + kLinePadding);
    line.assign(start, text);
    pos_ += consumed;
    offset_ += consumed;
    ++line_;
    ++produced;
  }
  return true;
}

FileSource::FileSource(std::string path, bool follow)
    : path_(std::move(path)), id_(canonical_path(path_)), follow_(follow) {}

Footprint FileSource::footprint() const { return Footprint{"file " + id_, {id_}, {}}; }

std::vector<std::string> FileSource::list_parts() const {
  refuse_special(path_, "input");
  std::error_code ec;
  if (!fs::exists(path_, ec)) throw InputError(fmt::format("input file {} does not exist", path_));
  if (!fs::is_regular_file(path_, ec)) throw InputError(fmt::format("input {} is not a regular file", path_));
  return {id_};
}

std::string FileSource::describe_part(const std::string&) const { return path_; }

std::unique_ptr<SourcePartition<std::string>> FileSource::build_part(const std::string& part,
                                                                     const std::optional<std::string>& resume) const {
  return open_lines(part, describe_part(part), resume, follow_);
}

DirSource::DirSource(std::string dir, bool follow) : dir_(std::move(dir)), id_(canonical_path(dir_)), follow_(follow) {}

Footprint DirSource::footprint() const { return Footprint{"dir " + id_, {}, {id_}}; }

std::vector<std::string> DirSource::list_parts() const {
  refuse_special(dir_, "input");
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) throw InputError(fmt::format("input directory {} does not exist", dir_));
  std::vector<std::string> parts;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (entry.is_regular_file()) parts.push_back(id_ + "/" + entry.path().filename().string());
  }
  if (ec) throw InputError(fmt::format("cannot list input directory {}: {}", dir_, ec.message()));
  if (parts.empty()) throw InputError(fmt::format("input directory {} has no files", dir_));
  std::sort(parts.begin(), parts.end());
  return parts;
}

std::string DirSource::describe_part(const std::string& part) const {
  if (part.size() <= id_.size() || part.compare(0, id_.size(), id_) != 0) return part;
  return (fs::path(dir_) / part.substr(id_.size() + 1)).string();
}

std::unique_ptr<SourcePartition<std::string>> DirSource::build_part(const std::string& part,
                                                                    const std::optional<std::string>& resume) const {
  return open_lines(part, describe_part(part), resume, follow_);
}

std::unique_ptr<SourcePartition<std::string>> StdinSource::build_part(const std::string& part,
                                                                      const std::optional<std::string>& resume) const {
  uint64_t offset = 0;
  uint64_t line = 1;
  if (resume) {
    std::tie(offset, line) = LineReader::parse_snapshot(part, *resume);
    spdlog::warn(
        "stdin cannot be replayed: the state of the last committed epoch is restored and reading goes on with what "
        "comes next");
  }
  return std::make_unique<LineReader>(STDIN_FILENO, "stdin", offset, line);
}

std::shared_ptr<const Source<std::string>> file_or_dir_source(const std::string& path, bool follow) {
  if (path == "-") return std::make_shared<StdinSource>();
  refuse_special(path, "input");
  std::error_code ec;
  if (fs::is_directory(path, ec)) return std::make_shared<DirSource>(path, follow);
  if (fs::is_regular_file(path, ec)) return std::make_shared<FileSource>(path, follow);
  throw InputError(fmt::format("input {} does not exist", path));
}

}  // namespace engine
