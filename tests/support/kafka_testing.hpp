#pragma once
// Helpers for the Kafka tests: a producer that writes lines (keyed, so one
// key stays in one partition, in order) and a consumer that reads a whole
// topic back, both on librdkafka's C API; a free local port for
// `engine kafka-mock --port`. The cluster itself is engine::MockKafka (in the
// test process, which outlives every killed engine) or `engine kafka-mock`.

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace kafka_testing {

// A port on 127.0.0.1 that nothing listens on right now.
inline uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline rd_kafka_t* make_client(rd_kafka_type_t type, const std::string& brokers,
                               const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  std::vector<std::pair<std::string, std::string>> all = {{"bootstrap.servers", brokers}, {"log_level", "3"}};
  if (type == RD_KAFKA_CONSUMER) {
    all.insert(all.end(), {{"group.id", "test"}, {"enable.auto.commit", "false"}, {"enable.partition.eof", "true"}});
  } else {
    all.insert(all.end(), {{"linger.ms", "5"}, {"message.max.bytes", "16777216"}});
  }
  all.insert(all.end(), extra.begin(), extra.end());
  for (const auto& [k, v] : all) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      throw std::runtime_error(err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) throw std::runtime_error(err);
  return rk;
}

// Produces every (key, value) to `topic` and waits until all are acknowledged.
inline void produce(const std::string& brokers, const std::string& topic,
                    const std::vector<std::pair<std::string, std::string>>& messages) {
  rd_kafka_t* rk = make_client(RD_KAFKA_PRODUCER, brokers);
  for (const auto& [key, value] : messages) {
    for (;;) {
      const auto err =
          rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) throw std::runtime_error(rd_kafka_err2str(err));
      rd_kafka_poll(rk, 10);
    }
  }
  const auto err = rd_kafka_flush(rk, 60000);
  rd_kafka_destroy(rk);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error("produce: not all messages were acknowledged");
}

// One consumed message.
struct Message {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
};

// Every message of `topic` (all `partitions`), read from the start to the current end.
// Throws std::runtime_error if a partition no longer starts at offset 0: the
// mock cluster keeps at most 5 MB per partition and drops the oldest
// messages beyond that, which a test must not mistake for lost output.
inline std::vector<Message> consume_all(const std::string& brokers, const std::string& topic, int partitions) {
  rd_kafka_t* rk = make_client(RD_KAFKA_CONSUMER, brokers);
  for (int p = 0; p < partitions; ++p) {
    int64_t low = -1;
    int64_t high = -1;
    const auto err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 10000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR || low != 0) {
      rd_kafka_destroy(rk);
      throw std::runtime_error(
          err != RD_KAFKA_RESP_ERR_NO_ERROR
              ? fmt::format("cannot read the offsets of {} partition {}: {}", topic, p, rd_kafka_err2str(err))
              : fmt::format("{} partition {} starts at offset {} of {}: the mock cluster dropped its oldest messages "
                            "(it keeps 5 MB per partition); the test wrote too much",
                            topic, p, low, high));
    }
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<Message> out;
  int at_end = 0;
  for (int idle = 0; at_end < partitions && idle < 600;) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) {
      ++idle;
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++at_end;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.push_back(Message{m->partition, m->offset,
                            m->key != nullptr ? std::string(static_cast<const char*>(m->key), m->key_len) : "",
                            std::string(static_cast<const char*>(m->payload), m->len)});
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

}  // namespace kafka_testing
