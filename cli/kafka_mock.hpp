#pragma once
// `engine kafka-mock [--port P] [--brokers N] [--topic NAME:PARTITIONS ...]`:
// a local Kafka protocol endpoint (librdkafka's mock cluster) until SIGINT or
// SIGTERM; prints its bootstrap address (127.0.0.1:PORT) as the first line.

#include <string>
#include <vector>

namespace engine::cli {

// Returns the exit code; throws on bad flags (UsageError) or a port in use (InputError).
int kafka_mock_command(const std::vector<std::string>& args);

}  // namespace engine::cli
