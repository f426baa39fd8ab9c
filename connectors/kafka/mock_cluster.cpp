#include "connectors/kafka/mock_cluster.hpp"

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "engine/errors.hpp"

namespace engine {

namespace {

// Copies bytes both ways between two connected sockets until either closes.
void pump(int a, int b) {
  char buf[64 * 1024];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, 500) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        closed = true;
        break;
      }
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = ::write(fds[1 - i].fd, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) {
          closed = true;
          break;
        }
        off += w;
      }
    }
    if (closed) break;
  }
  ::close(a);
  ::close(b);
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Accepts on 127.0.0.1:port and forwards every connection to 127.0.0.1:target.
class Forwarder {
 public:
  Forwarder(uint16_t port, uint16_t target) : target_(target) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw InputError(fmt::format("cannot make a socket: {}", std::strerror(errno)));
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const sockaddr_in addr = loopback(port);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd_, 64) != 0) {
      const int err = errno;
      ::close(fd_);
      throw InputError(fmt::format("cannot listen on 127.0.0.1:{}: {}", port, std::strerror(err)));
    }
    thread_ = std::thread([this] { loop(); });
  }
  ~Forwarder() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    for (auto& t : pumps_) t.detach();  // each ends when its sockets close
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const sockaddr_in addr = loopback(target_);
      if (upstream < 0 || ::connect(upstream, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(client);
        if (upstream >= 0) ::close(upstream);
        continue;
      }
      pumps_.emplace_back(pump, client, upstream);
    }
  }

  int fd_ = -1;
  uint16_t target_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> pumps_;  // accept thread only
};

uint16_t port_of(const std::string& address) {
  const auto colon = address.rfind(':');
  return static_cast<uint16_t>(std::stoul(address.substr(colon + 1)));
}

}  // namespace

struct MockKafka::Impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string brokers;
  std::unique_ptr<Forwarder> forwarder;
  uint16_t port = 0;
};

MockKafka::MockKafka(int brokers, uint16_t port) : impl_(std::make_unique<Impl>()) {
  if (brokers < 1) throw ConfigError("a mock Kafka cluster needs at least one broker");
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (impl_->rk == nullptr) throw InputError(fmt::format("cannot start the mock Kafka cluster: {}", err));
  impl_->cluster = rd_kafka_mock_cluster_new(impl_->rk, brokers);
  if (impl_->cluster == nullptr) {
    rd_kafka_destroy(impl_->rk);
    throw InputError("cannot start the mock Kafka cluster");
  }
  impl_->brokers = rd_kafka_mock_cluster_bootstraps(impl_->cluster);
  if (port != 0) {
    const std::string first = impl_->brokers.substr(0, impl_->brokers.find(','));
    impl_->forwarder = std::make_unique<Forwarder>(port, port_of(first));
    impl_->port = port;
  }
}

MockKafka::~MockKafka() {
  impl_->forwarder.reset();
  rd_kafka_mock_cluster_destroy(impl_->cluster);
  rd_kafka_destroy(impl_->rk);
}

void MockKafka::create_topic(const std::string& topic, int partitions) {
  const auto err = rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw InputError(fmt::format("cannot create topic '{}': {}", topic, rd_kafka_err2str(err)));
  }
}

void MockKafka::set_broker_up(int id, bool up) {
  if (up) {
    rd_kafka_mock_broker_set_up(impl_->cluster, id);
  } else {
    rd_kafka_mock_broker_set_down(impl_->cluster, id);
  }
}

std::string MockKafka::bootstrap() const {
  if (impl_->port != 0) return fmt::format("127.0.0.1:{}", impl_->port);
  return impl_->brokers.substr(0, impl_->brokers.find(','));
}

std::string MockKafka::brokers() const { return impl_->brokers; }

}  // namespace engine
