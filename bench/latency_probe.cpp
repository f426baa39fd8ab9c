// latency_probe: end-to-end latency of cart_join on a live input. It writes
// cart orders at a fixed rate into a followed file or a Kafka topic, each
// order's id being the CLOCK_MONOTONIC time (ns) it was sent, and reads the
// engine's output file as it grows: the newest unpaid order id of an output
// line is the send time of the event that made it, so now - id is the
// latency from send to output line written (and read back, polling every
// 0.2 ms).
//
//   latency_probe --rate R --events N --users U (--file PATH | --kafka HOST:PORT/TOPIC) --output OUT
//   latency_probe --fill-from DIR --kafka HOST:PORT/TOPIC  (produce every line of DIR's files, keyed by user, and exit)
//
// Prints one JSON object: events sent and seen, the rate achieved, and the
// latency percentiles in milliseconds.

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/program_options.hpp>

namespace {

namespace po = boost::program_options;

int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Where orders go: appended to a file, or produced to a Kafka topic.
class Writer {
 public:
  Writer(const std::string& file, const std::string& kafka) {
    if (!file.empty()) {
      fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd_ < 0) throw std::runtime_error("cannot open " + file);
      return;
    }
    const auto slash = kafka.find('/');
    topic_ = kafka.substr(slash + 1);
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", kafka.substr(0, slash).c_str(), err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof(err));
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof(err));
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk_ == nullptr) throw std::runtime_error(err);
  }
  ~Writer() {
    if (fd_ >= 0) ::close(fd_);
    if (rk_ != nullptr) {
      rd_kafka_flush(rk_, 30000);
      rd_kafka_destroy(rk_);
    }
  }
  // One order of `user`; buffered until flush().
  void add(const std::string& user, int64_t id) {
    add_line(user, fmt::format(R"({{"user_id": "{}", "type": "order", "order_id": {}}})", user, id));
  }
  void add_line(const std::string& user, std::string line) {
    if (rk_ == nullptr) {
      buf_ += line;
      buf_ += '\n';
      return;
    }
    while (rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(const_cast<char*>(user.data()), user.size()),
                             RD_KAFKA_V_VALUE(line.data(), line.size()),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk_, 1);
    }
  }
  void flush() {
    if (rk_ != nullptr) {
      rd_kafka_poll(rk_, 0);
      return;
    }
    for (size_t off = 0; off < buf_.size();) {
      const ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
      if (n <= 0) throw std::runtime_error("cannot write the input file");
      off += static_cast<size_t>(n);
    }
    buf_.clear();
  }

 private:
  int fd_ = -1;
  rd_kafka_t* rk_ = nullptr;
  std::string topic_;
  std::string buf_;
};

// The newest unpaid order id of a cart_join output line: the number before its final "]}".
bool newest_order(const std::string& line, int64_t& id) {
  const auto end = line.rfind("]}");
  if (end == std::string::npos) return false;
  size_t start = end;
  while (start > 0 && (std::isdigit(static_cast<unsigned char>(line[start - 1])) || line[start - 1] == '-')) --start;
  return std::from_chars(line.data() + start, line.data() + end, id).ec == std::errc();
}

// Follows `path` and records the latency of every output line until `expected` lines or `stop`.
void read_output(const std::string& path, uint64_t expected, const std::atomic<bool>& stop,
                 std::vector<double>& latencies_ms, std::atomic<uint64_t>& seen) {
  int fd = -1;
  std::string pending;
  char buf[1 << 16];
  while (latencies_ms.size() < expected && !stop.load()) {
    if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const ssize_t n = fd < 0 ? 0 : ::read(fd, buf, sizeof(buf));
    if (n <= 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    const int64_t now = mono_ns();
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      int64_t id = 0;
      if (newest_order(pending.substr(start, nl - start), id)) {
        latencies_ms.push_back(static_cast<double>(now - id) / 1e6);
        seen.fetch_add(1);
      }
    }
    pending.erase(0, start);
  }
  if (fd >= 0) ::close(fd);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  double rate = 10000;
  uint64_t events = 0;
  std::string fill_from;
  uint64_t users = 10000;
  std::string file, kafka, output;
  po::options_description d("latency_probe options");
  d.add_options()("rate", po::value(&rate), "events per second")("events", po::value(&events), "events to send")(
      "fill-from", po::value(&fill_from), "produce every line of this directory's files to --kafka and exit")(
      "users", po::value(&users), "users")("file", po::value(&file), "input file the engine follows")(
      "kafka", po::value(&kafka), "HOST:PORT/TOPIC the engine reads")("output", po::value(&output),
                                                                      "the engine's output file");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, d), vm);
    po::notify(vm);
    if (file.empty() == kafka.empty()) throw po::error("give one of --file and --kafka");
    if (fill_from.empty() && (events == 0 || output.empty())) {
      throw po::error("give --events and --output (or --fill-from)");
    }
  } catch (const po::error& e) {
    std::fprintf(stderr, "latency_probe: %s\n", e.what());
    return 2;
  }
  try {
    Writer writer(file, kafka);
    if (!fill_from.empty()) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator(fill_from)) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        std::ifstream in(f);
        for (std::string line; std::getline(in, line);) {
          const auto at = line.find(R"("user_id": ")");
          const auto from = at == std::string::npos ? 0 : at + 12;
          writer.add_line(line.substr(from, line.find('"', from) - from), line);
        }
      }
      writer.flush();
      return 0;
    }
    std::atomic<bool> stop{false};
    std::vector<double> latencies;  // the reader's until it is joined
    std::atomic<uint64_t> seen{0};
    std::thread reader([&] { read_output(output, events, stop, latencies, seen); });
    const int64_t start = mono_ns();
    uint64_t sent = 0;
    while (sent < events) {
      const double elapsed = static_cast<double>(mono_ns() - start) / 1e9;
      const auto due = std::min<uint64_t>(events, static_cast<uint64_t>(elapsed * rate) + 1);
      for (; sent < due; ++sent) writer.add(fmt::format("u{}", sent % users), mono_ns());
      writer.flush();
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    const double send_seconds = static_cast<double>(mono_ns() - start) / 1e9;
    const int64_t deadline = mono_ns() + 30'000'000'000;
    while (mono_ns() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (seen.load() >= events) break;
    }
    stop = true;
    reader.join();
    std::printf(
        "{\"rate\": %.0f, \"events\": %llu, \"seen\": %zu, \"achieved_rate\": %.0f, \"p50_ms\": %.3f, "
        "\"p99_ms\": %.3f, \"max_ms\": %.3f}\n",
        rate, static_cast<unsigned long long>(events), latencies.size(), static_cast<double>(sent) / send_seconds,
        percentile(latencies, 0.5), percentile(latencies, 0.99), percentile(latencies, 1.0));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "latency_probe: %s\n", e.what());
    return 1;
  }
  return 0;
}
