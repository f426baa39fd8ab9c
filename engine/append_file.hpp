#pragma once
// AppendFile: an output file the engine only ever appends to, exactly-once
// across resumes: it is opened at its committed length (a longer file is cut
// back to it, a shorter one is refused: it was changed outside the engine).
// File sinks and the dead-letter file are written through it.
//
// Thread safety: append() and close_writes() from one thread (the owner);
// sync() and sync_through() from any thread, also after the owner let go of
// it (the commit thread holds a shared_ptr to make an epoch's output durable).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace engine {

class AppendFile {
 public:
  // Opens `path` (what: "output file", "dead-letter file": how errors name
  // it), creating it if missing (and making its directory entry durable), and
  // truncates it to `keep` bytes. Throws StateError if it holds fewer than
  // `keep` bytes, InputError if it cannot be opened.
  AppendFile(std::string path, uint64_t keep, std::string what);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  // Owner thread: writes all of `data`. Throws InputError.
  void append(const char* data, size_t size);
  // Any thread: fdatasync. Throws InputError.
  void sync() const;
  // Any thread (the commit thread): waits until the owner has written the
  // first `length` bytes (it writes what it buffers at least every flush
  // interval), then fdatasync. Throws InputError if the owner let go of the
  // file before, or after a minute.
  void sync_through(uint64_t length) const;
  // Owner thread: it will write no more (sync_through stops waiting).
  void close_writes() { writing_.store(false); }

  // Owner thread: bytes in the file (the committed length plus appends).
  uint64_t length() const { return length_; }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string what_;
  int fd_ = -1;
  uint64_t length_ = 0;
  std::atomic<uint64_t> written_{0};  // length_, for other threads
  std::atomic<bool> writing_{true};
};

}  // namespace engine
