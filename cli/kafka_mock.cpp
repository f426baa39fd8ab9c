#include "cli/kafka_mock.hpp"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include "cli/run_flags.hpp"
#include "connectors/kafka/mock_cluster.hpp"

namespace po = boost::program_options;

namespace engine::cli {

int kafka_mock_command(const std::vector<std::string>& args) {
  po::options_description d("kafka-mock options");
  d.add_options()("help,h", "show this help")(
      "port", po::value<uint16_t>()->default_value(0),
      "also take bootstrap connections on 127.0.0.1:PORT (forwarded to the first broker); 0 = none")(
      "brokers", po::value<int>()->default_value(1), "brokers in the cluster")(
      "topic", po::value<std::vector<std::string>>()->composing(), "NAME:PARTITIONS, a topic to create (repeatable)");
  const auto vm = parse_flags(args, d);
  if (vm.count("help")) {
    std::cout << "usage: engine kafka-mock [--port P] [--brokers N] [--topic NAME:PARTITIONS ...]\n\n"
                 "Runs librdkafka's mock Kafka cluster on 127.0.0.1 until SIGINT or SIGTERM and prints its\n"
                 "bootstrap address as the first line. Its data lives in memory. Topics that are not created\n"
                 "here are created on first use with one partition.\n\n"
              << d;
    return 0;
  }
  std::vector<std::pair<std::string, int>> topics;
  if (vm.count("topic")) {
    for (const auto& t : vm["topic"].as<std::vector<std::string>>()) {
      const auto colon = t.rfind(':');
      int partitions = 1;
      try {
        partitions = colon == std::string::npos ? 1 : std::stoi(t.substr(colon + 1));
      } catch (const std::exception&) {
        partitions = 0;
      }
      if (colon == 0 || partitions < 1) throw UsageError(fmt::format("--topic takes NAME:PARTITIONS, got '{}'", t));
      topics.emplace_back(t.substr(0, colon), partitions);
    }
  }
  // The cluster's threads must not take the signals: this thread waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  MockKafka kafka(vm["brokers"].as<int>(), vm["port"].as<uint16_t>());
  for (const auto& [name, partitions] : topics) kafka.create_topic(name, partitions);
  std::printf("%s\n", kafka.bootstrap().c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "engine: mock Kafka cluster, brokers %s; SIGINT or SIGTERM stops it\n", kafka.brokers().c_str());
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}

}  // namespace engine::cli
