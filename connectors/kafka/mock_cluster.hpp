#pragma once
// MockKafka: librdkafka's built-in mock cluster as a local Kafka protocol
// endpoint, for demos and tests (`engine kafka-mock`). Its brokers listen on
// 127.0.0.1 at ports they choose; with `port`, a small forwarding listener on
// 127.0.0.1:port hands each bootstrap connection on to the first broker, so a
// fixed address (127.0.0.1:9092) works; clients then talk to the brokers at
// the addresses the cluster advertises. Data lives in memory until the
// cluster is destroyed.
//
// Thread safety: create topics from one thread; the cluster itself serves
// clients on threads of its own.

#include <cstdint>
#include <memory>
#include <string>

namespace engine {

class MockKafka {
 public:
  // Starts `brokers` brokers (and the forwarder when port != 0). Throws InputError.
  explicit MockKafka(int brokers, uint16_t port = 0);
  ~MockKafka();
  MockKafka(const MockKafka&) = delete;
  MockKafka& operator=(const MockKafka&) = delete;

  // Creates `topic` with `partitions` partitions. Throws InputError.
  void create_topic(const std::string& topic, int partitions);
  // Takes broker `id` (1-based) down or brings it back (tests of outages).
  void set_broker_up(int id, bool up);
  // What a client bootstraps from: "127.0.0.1:PORT" (the forwarder's, else the first broker's).
  std::string bootstrap() const;
  // Every broker's address, comma-separated.
  std::string brokers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace engine
