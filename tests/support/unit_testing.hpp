#pragma once
// Helpers for the unit tests (operators, dataflow, codec, exchange,
// connectors, cart_join): error-message checks, a watchdog for concurrency
// tests, a capture of spdlog warnings, and multiset comparison.
//
// Like tests/support/flow_testing.hpp, these helpers never compute expected
// results; they only run code and compare.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "tests/support/flow_testing.hpp"

namespace unit_testing {

using flow_testing::error_message_of;
using flow_testing::Watchdog;

// An spdlog sink that keeps every formatted message (payload only).
class MemorySink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::pair<spdlog::level::level_enum, std::string>> messages() {
    std::lock_guard<std::mutex> lk(mutex_);
    return messages_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    messages_.emplace_back(msg.level, std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::vector<std::pair<spdlog::level::level_enum, std::string>> messages_;
};

// Replaces spdlog's default logger for its lifetime and records what is logged.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<MemorySink>()), previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Messages of exactly `level`.
  std::vector<std::string> at(spdlog::level::level_enum level) {
    std::vector<std::string> out;
    for (auto& [l, m] : sink_->messages()) {
      if (l == level) out.push_back(m);
    }
    return out;
  }

 private:
  std::shared_ptr<MemorySink> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

// Element -> count: compares two collections as multisets with readable diffs.
template <class T>
std::map<T, size_t> counts(const std::vector<T>& items) {
  std::map<T, size_t> out;
  for (const auto& x : items) ++out[x];
  return out;
}

}  // namespace unit_testing
