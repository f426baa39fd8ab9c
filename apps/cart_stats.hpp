#pragma once
// cart_stats: orders and payments per user and event-time window (tumbling,
// sliding or session), from the cart events with a "ts". See cart_stats.cpp.

#include <cstdint>
#include <string>
#include <string_view>

#include "cli/app.hpp"
#include "connectors/uri.hpp"

namespace engine::cart_stats {

struct Options {
  InputSpec input;    // path "" = the bundled data/cart-stats.json
  OutputSpec output;  // "" = stdout
  std::string window = "tumbling:60";
  double lateness = 0;  // seconds: the EventClock's wait
  std::string late;     // "" = late events are counted, not kept
  bool strict = false;  // a bad line is an error (handled by --on-error)
};

// --window's value in ms: tumbling:LENGTH, sliding:LENGTH:OFFSET or session:GAP (seconds).
struct WindowSpec {
  enum class Kind { kTumbling, kSliding, kSession };
  Kind kind = Kind::kTumbling;
  int64_t length_ms = 0;  // tumbling and sliding: the length; session: the gap
  int64_t offset_ms = 0;  // sliding: how often a window starts
};
// Throws ConfigError naming the flag and the value when it is not one.
WindowSpec parse_window(const std::string& spec);

// {"user_id": "u1", "window_start": "...", "window_end": "...", "orders": 3, "payments": 2}
std::string format_window(std::string_view user_id, int64_t start_ms, int64_t end_ms, int64_t orders, int64_t payments);

// input -> deserialize -> key_on_user -> window -> format_output -> output (late -> --late).
BuiltFlow flow(const Options& options);

App app();

}  // namespace engine::cart_stats
