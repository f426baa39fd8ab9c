// gen_cart: writes a deterministic stream of shopping-cart events (the
// tutorial's JSON lines) for the benchmarks, sharded by user into K files so
// that per-user order survives reading the files in parallel.
//
//   gen_cart --events N --users U --files K --out DIR [--seed S]
//            [--ts-start MS [--ts-step-ms D] [--jitter-ms J] [--late-every N --late-ms L]]
//
// With --ts-start every event also gets an event time "ts" (ISO 8601 UTC,
// milliseconds, Z), last in the line. Time starts at MS (ms since the Unix
// epoch) and advances by 0..2D ms per event across all users, so events are
// in time order with each one's ts up to J ms earlier than that (a bounded
// disorder); with --late-every, every Nth event is L ms older (late for any
// watermark waiting less than L - J). Without --ts-start the output is as before.
//
// Line format (spacing as in the tutorial's data):
//   {"user_id": "u42", "type": "order", "order_id": 17}
//   {"user_id": "u42", "type": "payment", "order_id": 17}
// Order ids come from one global counter starting at 1. A payment always pays
// an earlier, still-unpaid order of the same user (chosen at random); about
// 60% of events are orders and 40% payments (a user with nothing unpaid always
// gets an order; the payment it displaced is made by a later event).

#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "apps/cart_join.hpp"

namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;

// splitmix64: tiny, fast, and fully determined by the seed on every platform.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // In [0, bound); the modulo bias (< bound / 2^64) is irrelevant here.
  uint64_t below(uint64_t bound) { return next() % bound; }

 private:
  uint64_t state_;
};

// One output file with a large write buffer; flushes with write(2).
class ShardWriter {
 public:
  static constexpr size_t kFlushBytes = 1 << 20;

  explicit ShardWriter(const fs::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw std::system_error(errno, std::generic_category(), "cannot create " + path.string());
    }
    buffer_.reserve(kFlushBytes + 256);
  }
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  ShardWriter(ShardWriter&& other) noexcept
      : path_(std::move(other.path_)), fd_(other.fd_), buffer_(std::move(other.buffer_)) {
    other.fd_ = -1;
  }
  ~ShardWriter() {
    if (fd_ >= 0) static_cast<void>(::close(fd_));  // finish() reports close errors
  }

  void append(std::string_view text) {
    buffer_.append(text);
    if (buffer_.size() >= kFlushBytes) flush();
  }

  void finish() {
    flush();
    if (::close(fd_) != 0) {
      fd_ = -1;
      throw std::system_error(errno, std::generic_category(), "cannot close " + path_.string());
    }
    fd_ = -1;
  }

  uint64_t bytes_written() const { return bytes_written_; }

 private:
  void flush() {
    const char* data = buffer_.data();
    size_t left = buffer_.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, data, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "cannot write " + path_.string());
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
    bytes_written_ += buffer_.size();
    buffer_.clear();
  }

  fs::path path_;
  int fd_ = -1;
  std::string buffer_;
  uint64_t bytes_written_ = 0;
};

struct GenOptions {
  uint64_t events = 0;
  uint64_t users = 0;
  uint64_t files = 1;
  uint64_t seed = 1;
  fs::path out_dir;
  int64_t ts_start = -1;  // ms; < 0: no "ts"
  uint64_t ts_step = 10;
  uint64_t jitter = 0;
  uint64_t late_every = 0;
  uint64_t late_ms = 600'000;
};

std::string part_name(uint64_t index) { return fmt::format("part-{:03}.json", index); }

// Removes part files left by an earlier run with more files, so that reading
// DIR afterwards sees exactly this run's events. Only part-N.json names are touched.
void remove_stale_parts(const fs::path& dir, uint64_t files) {
  static const std::regex kPartName(R"(part-(\d+)\.json)");
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (!std::regex_match(name, match, kPartName)) continue;
    const std::string digits = match[1].str();
    uint64_t index = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    const bool ours = ec == std::errc() && index < files && name == part_name(index);
    if (!ours) fs::remove(entry.path());
  }
}

void append_int(std::string& line, uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  line.append(digits, end);
}

uint64_t generate(const GenOptions& options) {
  fs::create_directories(options.out_dir);
  remove_stale_parts(options.out_dir, options.files);

  std::vector<ShardWriter> shards;
  shards.reserve(options.files);
  for (uint64_t k = 0; k < options.files; ++k) {
    shards.emplace_back(options.out_dir / part_name(k));
  }

  SplitMix64 rng(options.seed);
  // unpaid[u] holds the user's unpaid order ids; their order does not matter here.
  std::vector<std::vector<uint64_t>> unpaid(options.users);
  uint64_t next_order_id = 1;
  uint64_t owed_payments = 0;
  int64_t now = options.ts_start;
  SplitMix64 time_rng(options.seed ^ 0x5851f42d4c957f2dULL);  // its own stream: the events are those without ts
  std::string line;
  line.reserve(128);

  for (uint64_t i = 0; i < options.events; ++i) {
    const uint64_t user = rng.below(options.users);
    std::vector<uint64_t>& open = unpaid[user];
    // 40% of draws ask for a payment; one drawn for a user with nothing
    // unpaid is owed and made by a later event, so the mix stays near 60/40.
    if (rng.below(100) < 40) ++owed_payments;
    const bool pay = owed_payments > 0 && !open.empty();
    if (pay) --owed_payments;
    uint64_t order_id;
    if (pay) {
      const uint64_t pick = rng.below(open.size());
      order_id = open[pick];
      open[pick] = open.back();
      open.pop_back();
    } else {
      order_id = next_order_id++;
      open.push_back(order_id);
    }

    line.assign(R"({"user_id": "u)");
    append_int(line, user);
    line.append(pay ? R"(", "type": "payment", "order_id": )" : R"(", "type": "order", "order_id": )");
    append_int(line, order_id);
    if (options.ts_start >= 0) {
      now += static_cast<int64_t>(time_rng.below(2 * options.ts_step + 1));
      int64_t ts = now - static_cast<int64_t>(time_rng.below(options.jitter + 1));
      if (options.late_every > 0 && i % options.late_every == options.late_every - 1) {
        ts -= static_cast<int64_t>(options.late_ms);
      }
      line.append(R"(, "ts": ")");
      line.append(engine::cart::format_utc_ms(ts));
      line.push_back('"');
    }
    line.append("}\n");
    shards[user % options.files].append(line);
  }

  uint64_t total_bytes = 0;
  for (ShardWriter& shard : shards) {
    shard.finish();
    total_bytes += shard.bytes_written();
  }
  return total_bytes;
}

}  // namespace

int main(int argc, char** argv) {
  GenOptions options;
  std::string out_dir;
  po::options_description desc(
      "gen_cart --events N --users U --files K --out DIR [--seed S]\n"
      "Writes N cart events for U users as JSON lines into DIR/part-000.json ...\n"
      "Options");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("events", po::value<uint64_t>(&options.events)->required(), "number of events N")
      ("users", po::value<uint64_t>(&options.users)->required(), "number of users U; user u goes to file u % K")
      ("files", po::value<uint64_t>(&options.files)->default_value(1), "number of output files K")
      ("out", po::value<std::string>(&out_dir)->required(), "output directory")
      ("seed", po::value<uint64_t>(&options.seed)->default_value(1), "PRNG seed; the same seed gives the same files")
      ("ts-start", po::value<int64_t>(&options.ts_start), "give events a \"ts\", starting at MS (ms since the Unix epoch)")
      ("ts-step-ms", po::value<uint64_t>(&options.ts_step)->default_value(10), "time advances 0..2D ms per event")
      ("jitter-ms", po::value<uint64_t>(&options.jitter)->default_value(0), "each ts up to J ms early (disorder)")
      ("late-every", po::value<uint64_t>(&options.late_every)->default_value(0), "every Nth event is late (0: none)")
      ("late-ms", po::value<uint64_t>(&options.late_ms)->default_value(600000), "how much older a late event is");
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
    if (options.users == 0 || options.files == 0) {
      throw po::error("--users and --files must be at least 1");
    }
  } catch (const po::error& e) {
    std::fprintf(stderr, "gen_cart: %s (see --help)\n", e.what());
    return 2;
  }
  options.out_dir = out_dir;

  try {
    const auto start = std::chrono::steady_clock::now();
    const uint64_t bytes = generate(options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fputs(fmt::format("gen_cart: {} events, {} users, {} files, {:.1f} MB in {:.2f} s -> {}\n", options.events,
                           options.users, options.files, static_cast<double>(bytes) / 1e6, seconds, out_dir)
                   .c_str(),
               stderr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gen_cart: %s\n", e.what());
    return 1;
  }
  return 0;
}
