#include "engine/append_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "engine/errors.hpp"
#include "engine/paths.hpp"

namespace engine {

AppendFile::AppendFile(std::string path, uint64_t keep, std::string what)
    : path_(std::move(path)), what_(std::move(what)), length_(keep), written_(keep) {
  bool created = true;
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0 && errno == EEXIST) {
    created = false;
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  }
  if (fd_ < 0) throw InputError(fmt::format("cannot open {} {}: {}", what_, path_, std::strerror(errno)));
  // A new file must survive a power loss together with the commit that counts its bytes.
  if (created) {
    if (const int err = sync_parent_dir(path_); err != 0) {
      ::close(fd_);
      throw InputError(fmt::format("cannot sync the directory of {} {}: {}", what_, path_, std::strerror(err)));
    }
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw InputError(fmt::format("cannot stat {} {}: {}", what_, path_, std::strerror(err)));
  }
  if (static_cast<uint64_t>(st.st_size) < keep) {
    ::close(fd_);
    throw StateError(
        fmt::format("{} {} has {} bytes but {} were committed; was it changed?", what_, path_, st.st_size, keep));
  }
  // Truncates only if there is something to cut: on ext4, truncating a file
  // to length 0 (even an empty one) makes close() write all its data back.
  const bool cut = static_cast<uint64_t>(st.st_size) > keep;
  if ((cut && ::ftruncate(fd_, static_cast<off_t>(keep)) != 0) ||
      ::lseek(fd_, static_cast<off_t>(keep), SEEK_SET) < 0) {
    const int err = errno;
    ::close(fd_);
    throw InputError(fmt::format("cannot truncate {} {}: {}", what_, path_, std::strerror(err)));
  }
}

AppendFile::~AppendFile() { ::close(fd_); }

void AppendFile::append(const char* data, size_t size) {
  size_t off = 0;
  while (off < size) {
    const ssize_t n = ::write(fd_, data + off, size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(fmt::format("cannot write {} {}: {}", what_, path_, std::strerror(errno)));
    off += static_cast<size_t>(n);
  }
  length_ += size;
  written_.store(length_, std::memory_order_release);
}

void AppendFile::sync_through(uint64_t length) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (written_.load(std::memory_order_acquire) < length) {
    if (!writing_.load() || std::chrono::steady_clock::now() > deadline) {
      throw InputError(fmt::format("{} {}: {} of {} bytes were written", what_, path_, written_.load(), length));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  sync();
}

void AppendFile::sync() const {
  if (::fdatasync(fd_) != 0) throw InputError(fmt::format("cannot sync {} {}: {}", what_, path_, std::strerror(errno)));
}

}  // namespace engine
