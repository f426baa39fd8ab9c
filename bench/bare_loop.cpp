// bare_loop: the single-threaded cart join with no engine, the reference the
// benchmarks compare the engine against. It does the same work as the
// cart_join app with the app's own functions (cart::parse_event_into,
// cart::apply, cart::put_cart) and the engine's own hash table, so that only
// the engine's overhead is compared: read JSON lines, parse and validate them,
// update a per-user cart, format one output line per update and write it.
//
//   bare_loop --input DIR_OR_FILE --output FILE [--stats FILE]
//   bare_loop --window tumbling:S|sliding:S:O|session:G [--lateness SEC] --input ... --output ...
//
// A directory is read file after file, regular files sorted by name.
// Validation (as the engine's deserializer): a line must be a JSON object
// with a string "user_id", a "type" of "order" or "payment" and an integer
// "order_id"; anything else is skipped and counted. Blank lines are ignored.
// An order appends its id to the user's unpaid list; a payment whose id is
// unpaid moves it to the paid list; a payment for an unknown order is
// ignored and counted (no output). Output lines look like
//   {"user_id": "a", "paid_order_ids": [2, 1], "unpaid_order_ids": []}
//
// With --window it is instead the cart_stats app with no engine: events need
// a "ts"; orders and payments are counted per user and event-time window and
// one cart_stats::format_window line is written per window as it closes. The
// watermark rule is the engine's (operators/windowing.hpp): each file has its
// own watermark, its largest ts read so far minus --lateness; an event below
// its file's watermark is late (dropped and counted); a window closes when the
// minimum watermark over all files (a file not read yet holds it back) is
// past it; every window closes at the end of the input.

#include <fcntl.h>
#include <fmt/core.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <queue>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "apps/cart_join.hpp"
#include "apps/cart_stats.hpp"
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
  uint64_t late = 0;              // --window: events below their file's watermark
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

using engine::cart_stats::WindowSpec;

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Event-time windows per user, closed by the files' minimum watermark.
class WindowCounter {
 public:
  static constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();

  WindowCounter(OutputWriter& writer, Counters& counters, WindowSpec spec, int64_t wait_ms, size_t files)
      : writer_(writer), counters_(counters), spec_(spec), wait_ms_(wait_ms), max_ts_(files, kMinTime) {}

  void begin_file(size_t index) { file_ = index; }

  void add(const engine::cart::Event& e) {
    int64_t& max_ts = max_ts_[file_];
    if (max_ts != kMinTime && e.ts < max_ts - wait_ms_) {
      ++counters_.late;
      return;
    }
    const uint64_t hash = engine::stable_hash(e.user_id);
    Windows* windows = users_.find(hash, e.user_id);
    if (windows == nullptr) windows = users_.try_emplace(hash, e.user_id).first;
    if (spec_.kind == WindowSpec::Kind::kSession) {
      add_to_session(*windows, hash, e);
    } else {
      const int64_t len = spec_.length_ms;
      const int64_t off = spec_.kind == WindowSpec::Kind::kSliding ? spec_.offset_ms : len;
      for (int64_t k = floor_div(e.ts - len, off) + 1; k <= floor_div(e.ts, off); ++k) {
        Window& w = find_or_open(*windows, hash, e.user_id, k * off, k * off + len);
        (e.payment ? w.payments : w.orders) += 1;
      }
    }
    if (e.ts > max_ts) {
      max_ts = e.ts;
      advance();
    }
  }

  // The input ended: every window closes.
  void finish() {
    watermark_ = std::numeric_limits<int64_t>::max();
    close_due();
  }

 private:
  struct Window {
    int64_t start = 0;  // tumbling/sliding: [start, end); session: first and last ts
    int64_t end = 0;
    int64_t orders = 0;
    int64_t payments = 0;
  };
  // One user's open windows, by start, and the one due entry that stands for
  // them (at no later than their earliest close).
  struct Windows {
    std::vector<Window> open;
    int64_t due_at = std::numeric_limits<int64_t>::max();
    uint64_t due_id = 0;  // the entry's id; older entries of the user are stale
  };
  struct Due {
    int64_t at;  // the watermark that closes it: tumbling/sliding end, session last + gap + 1
    uint64_t id;
    uint64_t hash;
    std::string user;
    bool operator>(const Due& o) const { return at > o.at; }
  };

  int64_t closes_at(const Window& w) const {
    return spec_.kind == WindowSpec::Kind::kSession ? w.end + spec_.length_ms + 1 : w.end;
  }

  // Makes sure a due entry no later than `at` stands for the user's windows.
  void schedule(Windows& windows, uint64_t hash, std::string_view user, int64_t at) {
    if (at >= windows.due_at) return;
    windows.due_at = at;
    windows.due_id = ++last_due_id_;
    due_.push(Due{at, windows.due_id, hash, std::string(user)});
  }

  Window& find_or_open(Windows& windows, uint64_t hash, const std::string& user, int64_t start, int64_t end) {
    std::vector<Window>& open = windows.open;
    auto it = std::lower_bound(open.begin(), open.end(), start, [](const Window& w, int64_t s) { return w.start < s; });
    if (it != open.end() && it->start == start) return *it;
    it = open.insert(it, Window{start, end, 0, 0});
    schedule(windows, hash, user, end);
    return *it;
  }

  // Joins the sessions within gap of e.ts (inclusive) into one, or opens one.
  void add_to_session(Windows& windows, uint64_t hash, const engine::cart::Event& e) {
    const int64_t gap = spec_.length_ms;
    std::vector<Window>& open = windows.open;
    auto first = std::lower_bound(open.begin(), open.end(), e.ts,
                                  [gap](const Window& w, int64_t ts) { return w.end + gap < ts; });
    auto last = first;
    while (last != open.end() && last->start - gap <= e.ts) ++last;
    if (first == last) {
      open.insert(first, Window{e.ts, e.ts, e.payment ? 0 : 1, e.payment ? 1 : 0});
      schedule(windows, hash, e.user_id, e.ts + gap + 1);
      return;
    }
    Window merged = *first;
    for (auto it = first + 1; it != last; ++it) {
      merged.end = std::max(merged.end, it->end);
      merged.orders += it->orders;
      merged.payments += it->payments;
    }
    merged.start = std::min(merged.start, e.ts);
    merged.end = std::max(merged.end, e.ts);
    (e.payment ? merged.payments : merged.orders) += 1;
    *first = merged;
    open.erase(first + 1, last);  // a session that grew closes later: its due entry reschedules
  }

  void advance() {
    int64_t wm = std::numeric_limits<int64_t>::max();
    for (int64_t max_ts : max_ts_) wm = std::min(wm, max_ts == kMinTime ? kMinTime : max_ts - wait_ms_);
    if (wm > watermark_) {
      watermark_ = wm;
      close_due();
    }
  }

  // Closes every window the watermark is past. A user's due entry that finds
  // its windows closing later (a session grew) schedules the next close.
  void close_due() {
    while (!due_.empty() && due_.top().at <= watermark_) {
      Due due = due_.top();
      due_.pop();
      Windows* windows = users_.find(due.hash, due.user);
      if (windows == nullptr || windows->due_id != due.id) continue;  // stale
      std::vector<Window>& open = windows->open;
      auto keep = open.begin();
      int64_t next = std::numeric_limits<int64_t>::max();
      for (Window& w : open) {
        if (closes_at(w) <= watermark_) {
          write_line(engine::cart_stats::format_window(due.user, w.start, w.end, w.orders, w.payments));
        } else {
          next = std::min(next, closes_at(w));
          *keep++ = w;
        }
      }
      open.erase(keep, open.end());
      if (open.empty()) {
        users_.erase(due.hash, due.user);
      } else {
        windows->due_at = std::numeric_limits<int64_t>::max();
        schedule(*windows, due.hash, due.user, next);
      }
    }
  }

  void write_line(const std::string& line) {
    char* out = writer_.reserve(line.size() + 1);
    std::memcpy(out, line.data(), line.size());
    out[line.size()] = '\n';
    writer_.commit(out + line.size() + 1);
    ++counters_.items_out;
  }

  OutputWriter& writer_;
  Counters& counters_;
  WindowSpec spec_;
  int64_t wait_ms_;
  std::vector<int64_t> max_ts_;  // per file: its largest ts so far
  size_t file_ = 0;
  int64_t watermark_ = kMinTime;
  uint64_t last_due_id_ = 0;
  engine::StateTable<Windows> users_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
};

// Runs the whole join (or, with a WindowCounter, the windows) over the input files; reads each file in large chunks
// so that every line has SIMDJSON_PADDING readable bytes after it.
class BareLoop {
 public:
  static constexpr size_t kChunk = 8 << 20;

  BareLoop(OutputWriter& writer, Counters& counters, Clock::time_point start, WindowCounter* windows)
      : writer_(writer),
        counters_(counters),
        windows_(windows),
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
    if (!engine::cart::parse_event_into(line, size, capacity, event_, why_, /*need_ts=*/windows_ != nullptr)) {
      ++counters_.skipped_invalid;
      return;
    }
    if (windows_ != nullptr) {
      windows_->add(event_);
      return;
    }
    const Cart* cart = apply_event(event_);
    if (cart == nullptr) return;
    write_update(writer_, event_.user_id, *cart);
    ++counters_.items_out;
  }

  OutputWriter& writer_;
  Counters& counters_;
  WindowCounter* windows_;  // --window: events go here instead of the join
  Clock::time_point start_;
  size_t buffer_size_;  // includes SIMDJSON_PADDING bytes at the end
  std::unique_ptr<char[]> buffer_;
  engine::cart::Event event_;  // reused: its user_id keeps its capacity
  std::string why_;
  CartMap carts_;
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
      "\"skipped_invalid\": {}, \"ignored_payments\": {}, \"late\": {}, \"bytes_in\": {}}}\n",
      counters.items_in, counters.items_out, seconds, std::max(counters.first_item_seconds, 0.0),
      counters.skipped_invalid, counters.ignored_payments, counters.late, counters.bytes_in);
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
  std::string window;
  double lateness = 0;
  po::options_description desc(
      "bare_loop --input DIR_OR_FILE --output FILE [--stats FILE] [--window SPEC [--lateness SEC]]\n"
      "Single-threaded cart join (or, with --window, cart_stats) with no engine (the benchmark reference).\n"
      "Options");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("input", po::value<std::string>(&input)->required(), "JSON lines file, or directory of them (read in name order)")
      ("output", po::value<std::string>(&output)->required(), "output file, '-' for stdout")
      ("stats", po::value<std::string>(&stats), "write {items_in, items_out, seconds, ...} as JSON to this file")
      ("window", po::value<std::string>(&window), "tumbling:S | sliding:S:O | session:G: count per user and window as cart_stats does")
      ("lateness", po::value<double>(&lateness), "--window: seconds each file's watermark waits behind its latest ts");
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
    if (!(lateness >= 0)) throw std::runtime_error("--lateness must not be negative");
    OutputWriter writer(output);
    Counters counters;
    std::unique_ptr<WindowCounter> windows;
    if (!window.empty()) {
      windows = std::make_unique<WindowCounter>(writer, counters, engine::cart_stats::parse_window(window),
                                                static_cast<int64_t>(lateness * 1000 + 0.5), files.size());
    }
    BareLoop loop(writer, counters, start, windows.get());
    for (size_t i = 0; i < files.size(); ++i) {
      if (windows) windows->begin_file(i);
      loop.run_file(files[i]);
    }
    if (windows) windows->finish();
    writer.finish();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

    std::fputs(
        fmt::format("bare_loop: {} items in, {} items out, {} late, {:.2f} s, {:.0f} items/s\n", counters.items_in,
                    counters.items_out, counters.late, seconds, static_cast<double>(counters.items_in) / seconds)
            .c_str(),
        stderr);
    if (!stats.empty()) write_stats(stats, counters, seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bare_loop: %s\n", e.what());
    return 1;
  }
  return 0;
}
