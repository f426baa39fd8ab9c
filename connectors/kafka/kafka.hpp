#pragma once
// Kafka in and out, through librdkafka.
//
// KafkaSource: one engine partition per topic partition, assigned to workers
// like files (assign(), no consumer group, no rebalancing); the resume state
// of a partition is the offset of its next message, kept in our snapshots, so
// a resume seeks every partition there: exactly-once read. Unbounded unless
// `bounded`, which stops at the high watermarks seen when the run started.
// A partition added to the topic while a run reads it stops the run with a
// clear error (its last epoch stays committed); the next run reads the new
// partition from its start.
//
// KafkaSink: each item becomes one message: key = the item's key for keyed
// items (KV<std::string>), none for plain lines; value = the line. Every
// message of an epoch is acknowledged by the brokers before the epoch
// commits, so nothing is lost; after a crash the epoch in flight may be
// written again: at-least-once.
//
// Failures are one-line errors within kConnectSeconds: no broker answers, an
// unknown topic, a bad address or option, an authentication failure. A
// broker that goes away mid-run: the source waits for it (and says so every
// few seconds), the sink retries each message for kDeliverySeconds, then the
// run stops with an error.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/connector.hpp"
#include "engine/dataflow.hpp"

namespace engine {

inline constexpr int kConnectSeconds = 10;
inline constexpr int kDeliverySeconds = 30;

// kafka://HOST:PORT[,HOST:PORT...]/TOPIC
struct KafkaUri {
  std::string brokers;  // "HOST:PORT,HOST:PORT"
  std::string topic;
};

// Whether `text` starts with kafka://.
bool is_kafka_uri(const std::string& text);
// Throws ConfigError naming `text` if it is not a kafka:// URI with brokers and a topic.
KafkaUri parse_kafka_uri(const std::string& text);

// What the command line says about Kafka.
struct KafkaSettings {
  // Extra client properties (--kafka-opt KEY=VALUE), applied last. Default: none.
  std::vector<std::pair<std::string, std::string>> options;
  // Where a partition with no committed offset starts: its first message
  // (earliest) or its end (latest). Default: earliest.
  bool start_latest = false;
  // Stop at the high watermarks seen at start. Default: unbounded.
  bool bounded = false;
};

// Parses "KEY=VALUE" (--kafka-opt); throws ConfigError.
std::pair<std::string, std::string> parse_kafka_option(const std::string& text);

class KafkaSource final : public Source<std::string> {
 public:
  KafkaSource(const std::string& uri, KafkaSettings settings);
  Footprint footprint() const override;
  // One partition per topic partition: "TOPIC/N". Asks the brokers (at most
  // kConnectSeconds). Throws InputError.
  std::vector<std::string> list_parts() const override;
  // "kafka topic TOPIC partition N"
  std::string describe_part(const std::string& part) const override;
  std::unique_ptr<SourcePartition<std::string>> build_part(const std::string& part,
                                                           const std::optional<std::string>& resume) const override;
  const char* position_name() const override { return "offset"; }
  // Every partition stays open: a consumer is costly to reopen (its
  // prefetched messages and connections), and an idle one costs little.
  size_t max_open_parts() const override { return static_cast<size_t>(-1); }
  bool unbounded() const override { return !settings_.bounded; }

 private:
  KafkaUri uri_;
  KafkaSettings settings_;
};

// Keyed or plain lines to a topic. Items are spread over kWriters sink
// partitions (one producer each) by their key, so one key's messages keep
// their order.
template <class T>
class KafkaSink final : public Sink<T> {
 public:
  static constexpr size_t kWriters = 4;
  KafkaSink(const std::string& uri, KafkaSettings settings);
  Footprint footprint() const override;
  // Checks that the brokers answer (at most kConnectSeconds). Throws InputError.
  std::vector<std::string> list_parts() const override;
  std::unique_ptr<SinkPartition<T>> build_part(const std::string& part,
                                               const std::optional<std::string>& resume) const override;
  size_t part_of(const T& item, size_t parts) const override;
  bool exactly_once() const override { return false; }

 private:
  KafkaUri uri_;
  KafkaSettings settings_;
};

extern template class KafkaSink<std::string>;
extern template class KafkaSink<KV<std::string>>;

}  // namespace engine
