#include "connectors/kafka/kafka.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/errors.hpp"
#include "engine/hash.hpp"
#include "engine/stored_number.hpp"

namespace engine {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kLinePadding = 64;  // as LineReader: parsers may read past a line's end
constexpr auto kWaitWarnEvery = std::chrono::seconds(5);

// What librdkafka's callbacks report for one client; any thread.
struct ClientEvents {
  std::mutex mu;
  std::string last_error;  // guarded by mu
  std::atomic<bool> all_brokers_down{false};
  std::atomic<bool> fatal{false};
  // Producers: failed deliveries and the first reason.
  std::atomic<uint64_t> failed{0};
  std::string first_failure;  // guarded by mu

  void error(const std::string& text) {
    std::lock_guard<std::mutex> lk(mu);
    last_error = text;
  }
  std::string last() {
    std::lock_guard<std::mutex> lk(mu);
    return last_error;
  }
};

void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* ev = static_cast<ClientEvents*>(opaque);
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) ev->all_brokers_down = true;
  if (code == RD_KAFKA_RESP_ERR__FATAL) ev->fatal = true;
  ev->error(code == RD_KAFKA_RESP_ERR__AUTHENTICATION ? fmt::format("authentication failed: {}", reason) : reason);
}

void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* text) {
  // librdkafka's own log lines: errors are remembered for our one-line messages, the rest is debug output.
  if (level <= 3) {
    if (auto* ev = static_cast<ClientEvents*>(rd_kafka_opaque(rk))) ev->error(text);
  }
  spdlog::debug("kafka {}: {}", facility, text);
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  auto* ev = static_cast<ClientEvents*>(opaque);
  if (ev->failed.fetch_add(1) == 0) {
    std::lock_guard<std::mutex> lk(ev->mu);
    ev->first_failure = rd_kafka_err2str(msg->err);
  }
}

// An rd_kafka_t with the engine's settings; destroyed with the object.
class Client {
 public:
  Client(const KafkaUri& uri, const KafkaSettings& settings, rd_kafka_type_t type)
      : events_(std::make_unique<ClientEvents>()) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const std::string& key, const std::string& value, bool user) {
      char err[512];
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        if (user) throw ConfigError(fmt::format("--kafka-opt {}={}: {}", key, value, err));
        throw ConfigError(fmt::format("Kafka client setting {}={}: {}", key, value, err));
      }
    };
    set("bootstrap.servers", uri.brokers, false);
    set("client.id", "engine", false);
    set("socket.connection.setup.timeout.ms", std::to_string(kConnectSeconds * 1000), false);
    if (type == RD_KAFKA_CONSUMER) {
      set("group.id", "engine", false);  // required by the consumer API; never joined (assign() only)
      set("enable.auto.commit", "false", false);
      set("enable.auto.offset.store", "false", false);
      set("allow.auto.create.topics", "false", false);
      set("fetch.wait.max.ms", "10", false);             // a trickling topic reaches the engine within milliseconds
      set("queued.max.messages.kbytes", "2048", false);  // prefetched per partition: one consumer each
      set("fetch.message.max.bytes", "1048576", false);  // per partition and fetch; a larger message still comes whole
      set("fetch.max.bytes", "4194304", false);          // one consumer per partition: small fetches
    } else {
      set("linger.ms", "1", false);
      set("message.timeout.ms", std::to_string(kDeliverySeconds * 1000), false);
      set("enable.idempotence", "true", false);  // retries keep order and add no duplicates
      set("message.max.bytes", "16777216", false);
      rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    }
    for (const auto& [key, value] : settings.options) set(key, value, true);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, events_.get());
    char err[512];
    rk_ = rd_kafka_new(type, conf, err, sizeof(err));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      throw ConfigError(fmt::format("cannot make a Kafka client for {}: {}", uri.brokers, err));
    }
  }
  ~Client() {
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  rd_kafka_t* get() const { return rk_; }
  ClientEvents& events() { return *events_; }
  // The last error a callback reported, as ": TEXT" (or ""), after serving pending callbacks.
  std::string last_error_suffix() {
    rd_kafka_poll(rk_, 0);
    const std::string e = events_->last();
    return e.empty() ? "" : ": " + e;
  }

 private:
  std::unique_ptr<ClientEvents> events_;
  rd_kafka_t* rk_ = nullptr;
};

// The partition ids of `topic`, asking the brokers for at most `timeout_ms`.
// A source asks for the metadata of all topics (`must_exist`): asking for
// one topic by name makes a broker that auto-creates topics create it, and a
// misspelled topic would then be read, empty, forever. Throws InputError.
std::vector<int32_t> topic_partitions(Client& client, const KafkaUri& uri, bool must_exist,
                                      int timeout_ms = kConnectSeconds * 1000) {
  rd_kafka_topic_t* rkt = must_exist ? nullptr : rd_kafka_topic_new(client.get(), uri.topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(client.get(), must_exist ? 1 : 0, rkt, &md, timeout_ms);
  if (rkt != nullptr) rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw InputError(fmt::format("cannot reach Kafka at {} within {} s ({}){}", uri.brokers, timeout_ms / 1000,
                                 rd_kafka_err2str(err), client.last_error_suffix()));
  }
  std::vector<int32_t> ids;
  std::string problem = fmt::format("Kafka topic '{}' does not exist at {}", uri.topic, uri.brokers);
  for (int t = 0; t < md->topic_cnt; ++t) {
    const auto& topic = md->topics[t];
    if (uri.topic != topic.topic) continue;
    problem.clear();
    if (topic.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      problem = fmt::format("Kafka topic '{}' does not exist at {}", uri.topic, uri.brokers);
    } else if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      problem = fmt::format("Kafka topic '{}' at {}: {}", uri.topic, uri.brokers, rd_kafka_err2str(topic.err));
    }
    for (int p = 0; p < topic.partition_cnt; ++p) ids.push_back(topic.partitions[p].id);
  }
  rd_kafka_metadata_destroy(md);
  if (!problem.empty()) throw InputError(problem);
  if (ids.empty()) throw InputError(fmt::format("Kafka topic '{}' at {} has no partitions", uri.topic, uri.brokers));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string identity_of(const KafkaUri& uri) { return fmt::format("kafka {}/{}", uri.brokers, uri.topic); }

int32_t partition_of_part(const std::string& part) {
  const auto slash = part.rfind('/');
  return static_cast<int32_t>(parse_stored_number(std::string_view(part).substr(slash + 1), "a Kafka partition id"));
}

// One topic partition, read through its own consumer handle.
class KafkaReader final : public SourcePartition<std::string> {
 public:
  KafkaReader(const KafkaUri& uri, const KafkaSettings& settings, int32_t partition,
              const std::optional<std::string>& resume, std::string name)
      : uri_(uri),
        client_(uri, settings, RD_KAFKA_CONSUMER),
        partition_(partition),
        name_(std::move(name)),
        bounded_(settings.bounded) {
    int64_t low = 0;
    int64_t high = 0;
    const auto err = rd_kafka_query_watermark_offsets(client_.get(), uri.topic.c_str(), partition, &low, &high,
                                                      kConnectSeconds * 1000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw InputError(fmt::format("cannot read the offsets of {} from {} within {} s ({}){}", name_, uri.brokers,
                                   kConnectSeconds, rd_kafka_err2str(err), client_.last_error_suffix()));
    }
    end_ = high;
    if (resume) {
      next_ = static_cast<int64_t>(parse_stored_number(*resume, fmt::format("the committed offset of {}", name_)));
      if (next_ > high) {
        throw InputError(fmt::format("the committed offset {} of {} is past its end ({}); was the topic recreated?",
                                     next_, name_, high));
      }
      if (next_ < low) {
        spdlog::warn("{}: offsets {} to {} were deleted (retention) before they were read; going on at {}", name_,
                     next_, low - 1, low);
        next_ = low;
      }
    } else {
      next_ = settings.start_latest ? high : low;
    }
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, uri.topic.c_str(), partition)->offset = next_;
    const auto assigned = rd_kafka_assign(client_.get(), list);
    rd_kafka_topic_partition_list_destroy(list);
    if (assigned != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw InputError(fmt::format("cannot read {}: {}", name_, rd_kafka_err2str(assigned)));
    }
    queue_ = rd_kafka_queue_get_consumer(client_.get());
    last_message_ = Clock::now();
  }
  ~KafkaReader() override {
    if (queue_ != nullptr) rd_kafka_queue_destroy(queue_);
  }

  bool next_batch(SourceBatch<std::string>& batch, size_t max) override {
    batch.first_line = static_cast<uint64_t>(next_);
    if (bounded_ && next_ >= end_) return false;
    rd_kafka_poll(client_.get(), 0);  // error callbacks
    if (client_.events().fatal) throw InputError(fmt::format("reading {}{}", name_, client_.last_error_suffix()));
    constexpr size_t kMaxBatch = 1024;
    rd_kafka_message_t* msgs[kMaxBatch];
    const ssize_t n = rd_kafka_consume_batch_queue(queue_, 0, msgs, std::min(max, kMaxBatch));
    if (n < 0) throw InputError(fmt::format("reading {}: {}", name_, rd_kafka_err2str(rd_kafka_last_error())));
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = msgs[i];
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::string& line = batch.next();
        const size_t len = m->len;
        if (line.capacity() < len + kLinePadding) line.reserve(len + kLinePadding);
        line.assign(static_cast<const char*>(m->payload), len);
        batch.positions.push_back(static_cast<uint64_t>(m->offset));
        next_ = m->offset + 1;
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        const std::string why = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        for (ssize_t j = i + 1; j < n; ++j) rd_kafka_message_destroy(msgs[j]);
        throw InputError(fmt::format("reading {}: {}", name_, why));
      }
      rd_kafka_message_destroy(m);
    }
    const auto now = Clock::now();
    if (n > 0) {
      last_message_ = now;
      client_.events().all_brokers_down = false;
    } else if (client_.events().all_brokers_down && now - last_warned_ >= kWaitWarnEvery) {
      last_warned_ = now;
      spdlog::warn("{}: Kafka at {} does not answer; waiting for it{}", name_, uri_.brokers,
                   client_.last_error_suffix());
    }
    if (partition_ == 0 && now - last_checked_ >= std::chrono::seconds(10)) check_partitions(now);
    return !(bounded_ && next_ >= end_);
  }

  std::string snapshot() const override { return std::to_string(next_); }

 private:
  // Partition 0's reader looks every 10 s for partitions added to the topic,
  // and stops the run with a clear message when there are some: the next run
  // reads them from their start.
  void check_partitions(Clock::time_point now) {
    last_checked_ = now;
    if (known_partitions_ == 0) {
      known_partitions_ = topic_partitions(client_, uri_, true).size();
      return;
    }
    std::vector<int32_t> ids;
    try {
      ids = topic_partitions(client_, uri_, true, 1000);
    } catch (const InputError&) {
      return;  // a slow or absent broker: the next check will tell
    }
    if (ids.size() > known_partitions_) {
      throw InputError(fmt::format(
          "Kafka topic '{}' grew from {} to {} partitions while this run read it; run the same command again to read "
          "the new ones (from their start)",
          uri_.topic, known_partitions_, ids.size()));
    }
  }

  KafkaUri uri_;
  Client client_;
  int32_t partition_;
  std::string name_;
  bool bounded_;
  int64_t next_ = 0;  // offset of the next message to return
  int64_t end_ = 0;   // high watermark at start
  rd_kafka_queue_t* queue_ = nullptr;
  size_t known_partitions_ = 0;
  Clock::time_point last_message_;
  Clock::time_point last_warned_{};
  Clock::time_point last_checked_{};
};

// A producer shared by a sink partition and the syncs it hands to the commit thread.
class Producer {
 public:
  // Asks for the topic's metadata before the first message: without it, a
  // new producer's first messages waited about a second for the partitions'
  // leader, and no epoch could commit until they were acknowledged (cart_join
  // of 40k events to a local broker took 1.1 s instead of 0.2 s). Throws InputError.
  Producer(const KafkaUri& uri, const KafkaSettings& settings) : uri_(uri), client_(uri, settings, RD_KAFKA_PRODUCER) {
    (void)topic_partitions(client_, uri_, false);
  }

  // Worker thread. Throws InputError.
  void produce(const char* key, size_t key_len, const std::string& value) {
    for (;;) {
      const auto err =
          rd_kafka_producev(client_.get(), RD_KAFKA_V_TOPIC(uri_.topic.c_str()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(const_cast<char*>(key), key_len),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        throw InputError(
            fmt::format("cannot send to Kafka topic '{}' at {}: {}", uri_.topic, uri_.brokers, rd_kafka_err2str(err)));
      }
      rd_kafka_poll(client_.get(), 10);  // the local queue is full: let deliveries drain it
    }
    if (++since_poll_ >= 1000) poll();
    check();
  }
  // Any thread: serves delivery reports.
  void poll() {
    since_poll_ = 0;
    rd_kafka_poll(client_.get(), 0);
  }
  // Any thread: waits until every message produced so far is acknowledged
  // (at most kDeliverySeconds). Throws InputError.
  void deliver_all() {
    const auto err = rd_kafka_flush(client_.get(), kDeliverySeconds * 1000);
    check();
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw InputError(fmt::format("Kafka at {} did not acknowledge {} message(s) for topic '{}' within {} s{}",
                                   uri_.brokers, rd_kafka_outq_len(client_.get()), uri_.topic, kDeliverySeconds,
                                   client_.last_error_suffix()));
    }
  }

 private:
  void check() {
    auto& ev = client_.events();
    if (ev.failed.load() > 0) {
      std::lock_guard<std::mutex> lk(ev.mu);
      throw InputError(fmt::format("Kafka at {} refused {} message(s) for topic '{}': {}", uri_.brokers,
                                   ev.failed.load(), uri_.topic, ev.first_failure));
    }
    if (ev.fatal)
      throw InputError(fmt::format("Kafka producer for topic '{}'{}", uri_.topic, client_.last_error_suffix()));
  }

  KafkaUri uri_;
  Client client_;
  uint32_t since_poll_ = 0;
};

template <class T>
class KafkaWriter final : public SinkPartition<T> {
 public:
  explicit KafkaWriter(std::shared_ptr<Producer> producer) : producer_(std::move(producer)) {}
  void write(T&& item) override {
    if constexpr (std::is_same_v<T, std::string>) {
      producer_->produce(nullptr, 0, item);
    } else {
      producer_->produce(item.first.data(), item.first.size(), item.second);
    }
  }
  void flush() override { producer_->poll(); }
  std::string snapshot(bool) override {
    producer_->poll();
    return "";
  }
  std::function<void()> syncer() override {
    return [p = producer_] { p->deliver_all(); };
  }
  void finish() override { producer_->deliver_all(); }

 private:
  std::shared_ptr<Producer> producer_;
};

}  // namespace

bool is_kafka_uri(const std::string& text) { return text.rfind("kafka://", 0) == 0; }

KafkaUri parse_kafka_uri(const std::string& text) {
  const std::string rest = text.substr(std::strlen("kafka://"));
  const auto slash = rest.find('/');
  KafkaUri u;
  if (slash != std::string::npos) {
    u.brokers = rest.substr(0, slash);
    u.topic = rest.substr(slash + 1);
  }
  if (!is_kafka_uri(text) || u.brokers.empty() || u.topic.empty() || u.topic.find('/') != std::string::npos) {
    throw ConfigError(fmt::format("'{}' is not kafka://HOST:PORT[,HOST:PORT...]/TOPIC", text));
  }
  return u;
}

std::pair<std::string, std::string> parse_kafka_option(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError(fmt::format("--kafka-opt takes KEY=VALUE, got '{}'", text));
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

KafkaSource::KafkaSource(const std::string& uri, KafkaSettings settings)
    : uri_(parse_kafka_uri(uri)), settings_(std::move(settings)) {}

Footprint KafkaSource::footprint() const { return Footprint{identity_of(uri_), {}, {}}; }

std::vector<std::string> KafkaSource::list_parts() const {
  Client client(uri_, settings_, RD_KAFKA_CONSUMER);
  std::vector<std::string> parts;
  for (const int32_t id : topic_partitions(client, uri_, true)) parts.push_back(fmt::format("{}/{}", uri_.topic, id));
  return parts;
}

std::string KafkaSource::describe_part(const std::string& part) const {
  return fmt::format("kafka topic {} partition {}", uri_.topic, partition_of_part(part));
}

std::unique_ptr<SourcePartition<std::string>> KafkaSource::build_part(const std::string& part,
                                                                      const std::optional<std::string>& resume) const {
  return std::make_unique<KafkaReader>(uri_, settings_, partition_of_part(part), resume, describe_part(part));
}

template <class T>
KafkaSink<T>::KafkaSink(const std::string& uri, KafkaSettings settings)
    : uri_(parse_kafka_uri(uri)), settings_(std::move(settings)) {}

template <class T>
Footprint KafkaSink<T>::footprint() const {
  return Footprint{identity_of(uri_), {}, {}};
}

template <class T>
std::vector<std::string> KafkaSink<T>::list_parts() const {
  Client client(uri_, settings_, RD_KAFKA_PRODUCER);
  (void)topic_partitions(client, uri_, false);  // the brokers answer and know (or create) the topic
  std::vector<std::string> parts;
  for (size_t w = 0; w < kWriters; ++w) parts.push_back(fmt::format("{}#{}", uri_.topic, w));
  return parts;
}

template <class T>
std::unique_ptr<SinkPartition<T>> KafkaSink<T>::build_part(const std::string&,
                                                           const std::optional<std::string>&) const {
  return std::make_unique<KafkaWriter<T>>(std::make_shared<Producer>(uri_, settings_));
}

template <class T>
size_t KafkaSink<T>::part_of(const T& item, size_t parts) const {
  if constexpr (std::is_same_v<T, std::string>) {
    (void)item;
    (void)parts;
    return 0;
  } else {
    return stable_hash(item.first) % parts;
  }
}

template class KafkaSink<std::string>;
template class KafkaSink<KV<std::string>>;

}  // namespace engine
