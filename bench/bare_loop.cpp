// bare_loop: the single-threaded cart join with no engine, the reference the
// benchmarks compare the engine against. It does the same work as the
// cart_join app with the app's own functions (cart::parse_event_into,
// cart::apply, cart::put_cart) and the engine's own hash table, so that only
// the engine's overhead is compared: read JSON lines, parse and validate them,
// update a per-user cart, format one output line per update and write it.
//
//   bare_loop --input DIR_OR_FILE --output FILE [--stats FILE]
//
// A directory is read file after file, regular files sorted by name.
// Validation (as the engine's deserializer): a line must be a JSON object
// with a string "user_id", a "type" of "order" or "payment" and an integer
// "order_id"; anything else is skipped and counted. Blank lines are ignored.
// An order appends its id to the user's unpaid list; a payment whose id is
// unpaid moves it to the paid list; a payment for an unknown order is
// ignored and counted (no output). Output lines look like
//   {"user_id": "a", "paid_order_ids": [2, 1], "unpaid_order_ids": []}

#include <fcntl.h>
#include <fmt/core.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "apps/cart_join.hpp"
#include "engine/hash.hpp"
#include "engine/state_table.hpp"

namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

using engine::cart::Cart;

// Carts by user id: the engine's open-addressing StateTable keyed by the
// engine's stable hash, so the reference gets the same hash map as the engine.
using CartMap = engine::StateTable<Cart>;

struct Counters {
  uint64_t items_in = 0;          // non-blank input lines
  uint64_t items_out = 0;         // output lines
  uint64_t skipped_invalid = 0;   // lines that failed validation
  uint64_t ignored_payments = 0;  // payments for an order that is not unpaid
  uint64_t bytes_in = 0;
  double first_item_seconds = -1;
};

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Buffered output through write(2). Single-threaded.
class OutputWriter {
 public:
  static constexpr size_t kCapacity = 4 << 20;

  explicit OutputWriter(const std::string& path)
      : path_(path), buffer_(std::make_unique_for_overwrite<char[]>(kCapacity)) {
    if (path == "-") {
      fd_ = STDOUT_FILENO;
    } else {
      fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd_ < 0) throw_errno("cannot create " + path);
    }
  }
  OutputWriter(const OutputWriter&) = delete;
  OutputWriter& operator=(const OutputWriter&) = delete;
  ~OutputWriter() {
    if (fd_ > STDOUT_FILENO) static_cast<void>(::close(fd_));  // finish() reports errors
  }

  // Returns a pointer with room for `bytes` more bytes; commit() what was used.
  char* reserve(size_t bytes) {
    if (size_ + bytes > kCapacity) {
      flush();
      if (bytes > kCapacity) throw std::length_error("output line longer than the output buffer");
    }
    return buffer_.get() + size_;
  }
  void commit(char* end) { size_ = static_cast<size_t>(end - buffer_.get()); }

  void finish() {
    flush();
    if (fd_ > STDOUT_FILENO) {
      const int fd = fd_;
      fd_ = -1;
      if (::close(fd) != 0) throw_errno("cannot close " + path_);
    }
  }

 private:
  void flush() {
    const char* data = buffer_.get();
    size_t left = size_;
    while (left > 0) {
      const ssize_t n = ::write(fd_, data, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("cannot write " + path_);
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
    size_ = 0;
  }

  std::string path_;
  int fd_ = -1;
  std::unique_ptr<char[]> buffer_;
  size_t size_ = 0;
};

void write_update(OutputWriter& writer, std::string_view user, const Cart& cart) {
  char* out = engine::cart::put_cart(writer.reserve(engine::cart::format_bound(user, cart) + 1), user, cart);
  *out++ = '\n';
  writer.commit(out);
}

// Runs the whole join over the input files; reads each file in large chunks
// so that every line has SIMDJSON_PADDING readable bytes after it.
class BareLoop {
 public:
  static constexpr size_t kChunk = 8 << 20;

  BareLoop(OutputWriter& writer, Clock::time_point start)
      : writer_(writer),
        start_(start),
        buffer_size_(kChunk + simdjson::SIMDJSON_PADDING),
        buffer_(std::make_unique_for_overwrite<char[]>(buffer_size_)) {}

  void run_file(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_errno("cannot open " + path.string());
    static_cast<void>(::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL));  // only a hint
    try {
      read_lines(fd, path);
    } catch (...) {
      static_cast<void>(::close(fd));
      throw;
    }
    static_cast<void>(::close(fd));  // read-only: a close error loses nothing
  }

  const Counters& counters() const { return counters_; }

 private:
  void read_lines(int fd, const fs::path& path) {
    size_t filled = 0;  // bytes of buffer_ holding data, starting with a partial line
    bool eof = false;
    while (!eof) {
      const size_t room = buffer_size_ - simdjson::SIMDJSON_PADDING - filled;
      const ssize_t n = ::read(fd, buffer_.get() + filled, room);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("cannot read " + path.string());
      }
      eof = (n == 0);
      filled += static_cast<size_t>(n);
      counters_.bytes_in += static_cast<size_t>(n);

      const char* const base = buffer_.get();
      const char* const end = base + filled;
      const char* line = base;
      while (true) {
        const char* newline = static_cast<const char*>(std::memchr(line, '\n', static_cast<size_t>(end - line)));
        if (newline == nullptr) break;
        process_line(line, static_cast<size_t>(newline - line));
        line = newline + 1;
      }
      if (eof && line < end) {  // last line without '\n'
        process_line(line, static_cast<size_t>(end - line));
        line = end;
      }
      const size_t rest = static_cast<size_t>(end - line);
      std::memmove(buffer_.get(), line, rest);
      filled = rest;
      if (!eof && filled == buffer_size_ - simdjson::SIMDJSON_PADDING) grow_buffer(filled);
    }
  }

  // Called when one line does not fit: doubles the buffer, keeping `filled` bytes.
  void grow_buffer(size_t filled) {
    const size_t bigger = 2 * buffer_size_;
    std::unique_ptr<char[]> next = std::make_unique_for_overwrite<char[]>(bigger);
    std::memcpy(next.get(), buffer_.get(), filled);
    buffer_ = std::move(next);
    buffer_size_ = bigger;
  }

  // Applies one event; returns the cart to emit, or nullptr if nothing changed.
  const Cart* apply_event(const engine::cart::Event& event) {
    const uint64_t hash = engine::stable_hash(event.user_id);
    Cart* cart = carts_.find(hash, event.user_id);
    if (cart == nullptr) {
      if (event.payment) {
        ++counters_.ignored_payments;
        return nullptr;
      }
      cart = carts_.try_emplace(hash, event.user_id).first;
    }
    if (!engine::cart::apply(*cart, event)) {
      ++counters_.ignored_payments;
      return nullptr;
    }
    return cart;
  }

  void process_line(const char* line, size_t size) {
    if (size > 0 && line[size - 1] == '\r') --size;
    if (std::all_of(line, line + size, [](char c) { return c == ' ' || c == '\t'; })) return;
    if (counters_.items_in++ == 0) {
      counters_.first_item_seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    }
    const size_t capacity = static_cast<size_t>(buffer_.get() + buffer_size_ - line);
    if (!engine::cart::parse_event_into(line, size, capacity, event_, why_)) {
      ++counters_.skipped_invalid;
      return;
    }
    const Cart* cart = apply_event(event_);
    if (cart == nullptr) return;
    write_update(writer_, event_.user_id, *cart);
    ++counters_.items_out;
  }

  OutputWriter& writer_;
  Clock::time_point start_;
  size_t buffer_size_;  // includes SIMDJSON_PADDING bytes at the end
  std::unique_ptr<char[]> buffer_;
  engine::cart::Event event_;  // reused: its user_id keeps its capacity
  std::string why_;
  CartMap carts_;
  Counters counters_;
};

std::vector<fs::path> input_files(const fs::path& input) {
  if (!fs::is_directory(input)) {
    if (!fs::exists(input)) throw std::runtime_error("input not found: " + input.string());
    return {input};
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(input)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  return files;
}

void write_stats(const std::string& path, const Counters& counters, double seconds) {
  const std::string json = fmt::format(
      "{{\"items_in\": {}, \"items_out\": {}, \"seconds\": {:.6f}, \"first_item_seconds\": {:.6f}, "
      "\"skipped_invalid\": {}, \"ignored_payments\": {}, \"bytes_in\": {}}}\n",
      counters.items_in, counters.items_out, seconds, std::max(counters.first_item_seconds, 0.0),
      counters.skipped_invalid, counters.ignored_payments, counters.bytes_in);
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) throw_errno("cannot create " + path);
  const bool ok = std::fputs(json.c_str(), file) >= 0;
  if (std::fclose(file) != 0 || !ok) throw_errno("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  const Clock::time_point start = Clock::now();
  std::string input;
  std::string output;
  std::string stats;
  po::options_description desc(
      "bare_loop --input DIR_OR_FILE --output FILE [--stats FILE]\n"
      "Single-threaded cart join with no engine (the benchmark reference).\n"
      "Options");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("input", po::value<std::string>(&input)->required(), "JSON lines file, or directory of them (read in name order)")
      ("output", po::value<std::string>(&output)->required(), "output file, '-' for stdout")
      ("stats", po::value<std::string>(&stats), "write {items_in, items_out, seconds, ...} as JSON to this file");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::ostringstream help;
      help << desc;
      std::fputs(help.str().c_str(), stdout);
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "bare_loop: %s (see --help)\n", e.what());
    return 2;
  }

  try {
    const std::vector<fs::path> files = input_files(input);
    OutputWriter writer(output);
    BareLoop loop(writer, start);
    for (const fs::path& file : files) loop.run_file(file);
    writer.finish();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

    const Counters& counters = loop.counters();
    std::fputs(fmt::format("bare_loop: {} items in, {} items out, {:.2f} s, {:.0f} items/s\n", counters.items_in,
                           counters.items_out, seconds, static_cast<double>(counters.items_in) / seconds)
                   .c_str(),
               stderr);
    if (!stats.empty()) write_stats(stats, counters, seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bare_loop: %s\n", e.what());
    return 1;
  }
  return 0;
}
