#include "connectors/file_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "engine/errors.hpp"

namespace engine {
namespace fs = std::filesystem;

namespace {
constexpr size_t kChunk = 1 << 20;

std::unique_ptr<SourcePartition<std::string>> open_lines(const std::string& path,
                                                         const std::optional<std::string>& resume) {
  uint64_t offset = 0;
  uint64_t line = 1;
  if (resume) std::tie(offset, line) = LineReader::parse_snapshot(path, *resume);
  return std::make_unique<LineReader>(path, offset, line);
}
}  // namespace

LineReader::LineReader(std::string path, uint64_t offset, uint64_t line)
    : path_(std::move(path)), buf_(kChunk), offset_(offset), line_(line) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw InputError(fmt::format("cannot open input file {}: {}", path_, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    throw InputError(fmt::format("cannot stat input file {}: {}", path_, std::strerror(errno)));
  if (static_cast<uint64_t>(st.st_size) < offset) {
    throw InputError(fmt::format("input file {} has {} bytes but the committed offset is {}; was it replaced?", path_,
                                 st.st_size, offset));
  }
  if (::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0) {
    throw InputError(fmt::format("cannot seek input file {}: {}", path_, std::strerror(errno)));
  }
}

LineReader::~LineReader() {
  if (fd_ >= 0) ::close(fd_);
}

std::pair<uint64_t, uint64_t> LineReader::parse_snapshot(const std::string& path, const std::string& state) {
  unsigned long long offset = 0;
  unsigned long long line = 0;
  if (std::sscanf(state.c_str(), "%llu %llu", &offset, &line) != 2) {
    throw StateError(fmt::format("corrupt resume state '{}' for input {}", state, path));
  }
  return {offset, line};
}

std::string LineReader::snapshot() const { return fmt::format("{} {}", offset_, line_); }

// Moves unread bytes to the front and reads more; grows the buffer for long lines.
bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
  for (;;) {
    const ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(fmt::format("cannot read input file {}: {}", path_, std::strerror(errno)));
    if (n == 0) {
      eof_ = true;
      return false;
    }
    end_ += static_cast<size_t>(n);
    return true;
  }
}

bool LineReader::next_batch(SourceBatch<std::string>& batch, size_t max) {
  batch.first_line = line_;
  size_t produced = 0;
  while (produced < max) {
    const char* start = buf_.data() + pos_;
    const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
    size_t len;
    size_t consumed;
    if (nl != nullptr) {
      len = static_cast<size_t>(nl - start);
      consumed = len + 1;
    } else {
      if (fill()) continue;
      if (pos_ == end_) return false;  // exhausted
      len = end_ - pos_;               // last line without a newline
      consumed = len;
    }
    start = buf_.data() + pos_;
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

std::vector<std::string> FileSource::list_parts() const {
  std::error_code ec;
  if (!fs::is_regular_file(path_, ec)) throw InputError(fmt::format("input file {} does not exist", path_));
  return {path_};
}

std::unique_ptr<SourcePartition<std::string>> FileSource::build_part(const std::string& part,
                                                                     const std::optional<std::string>& resume) const {
  return open_lines(part, resume);
}

std::vector<std::string> DirSource::list_parts() const {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) throw InputError(fmt::format("input directory {} does not exist", dir_));
  std::vector<std::string> parts;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (entry.is_regular_file()) parts.push_back((fs::path(dir_) / entry.path().filename()).string());
  }
  if (ec) throw InputError(fmt::format("cannot list input directory {}: {}", dir_, ec.message()));
  if (parts.empty()) throw InputError(fmt::format("input directory {} has no files", dir_));
  std::sort(parts.begin(), parts.end());
  return parts;
}

std::unique_ptr<SourcePartition<std::string>> DirSource::build_part(const std::string& part,
                                                                    const std::optional<std::string>& resume) const {
  return open_lines(part, resume);
}

std::shared_ptr<const Source<std::string>> file_or_dir_source(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return std::make_shared<DirSource>(path);
  if (fs::is_regular_file(path, ec)) return std::make_shared<FileSource>(path);
  throw InputError(fmt::format("input {} does not exist", path));
}

}  // namespace engine
