// cart_stats: orders and payments per user and event-time window.
//
//   engine run cart_stats --input PATH --window tumbling:60 [--lateness 5] [--output PATH] [--late PATH]
//   engine run cart_stats --input PATH --window sliding:60:15 ...
//   engine run cart_stats --input PATH --window session:30 ...
//
// Input: the cart events with an event time "ts" (ISO 8601 UTC, optional
// fraction, Z). One line per user and window when the window closes:
//   {"user_id": "u1", "window_start": "2026-11-21T10:00:00.000Z", "window_end": "2026-11-21T10:01:00.000Z",
//    "orders": 3, "payments": 2}
// Tumbling and sliding windows are [start, end), aligned to the Unix epoch; a
// session runs from its first event's ts to its last's and closes when no
// event of the user comes within GAP seconds (an event exactly GAP later
// joins it). The watermark rule is operators/windowing.hpp's: per input
// partition, the latest ts read minus --lateness; older events are late and
// go to --late as their input lines (or are counted on stderr).

#include "apps/cart_stats.hpp"

#include <atomic>
#include <charconv>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "apps/cart_join.hpp"
#include "apps/registry.hpp"
#include "connectors/uri.hpp"
#include "engine/context.hpp"
#include "engine/describe.hpp"
#include "engine/errors.hpp"
#include "operators/operators.hpp"
#include "operators/windowing.hpp"

namespace engine::cart_stats {

namespace {

struct Counts {
  std::atomic<uint64_t> bad_lines{0};
  std::atomic<uint64_t> late{0};
};

// A parsed event: what the window needs, and its input line for --late.
struct StatsEvent {
  std::string user_id;
  int64_t ts = 0;
  bool payment = false;
  std::string line;  // kept only with --late
};

struct Tally {
  int64_t orders = 0;
  int64_t payments = 0;
};

std::optional<StatsEvent> deserialize(const std::string& line, bool strict, bool keep_line, Counts& counts) {
  std::string why;
  std::optional<cart::Event> e = cart::parse_event(line, why, /*need_ts=*/true);
  if (!e) {
    if (strict) throw InputError(why);
    counts.bad_lines.fetch_add(1, std::memory_order_relaxed);
    warn_item(why,
              fmt::format("{}: skipping bad line ({}): {}", current_origin().describe(), why, describe_item(line)));
    return std::nullopt;
  }
  std::optional<StatsEvent> out(std::in_place);
  out->user_id = std::move(e->user_id);
  out->ts = e->ts;
  out->payment = e->payment;
  if (keep_line) out->line = line;
  return out;
}

// The windower --window names, and what to call with it.
template <class Run>
auto with_windower(const std::string& spec, Run run) {
  const WindowSpec w = parse_window(spec);
  const op::Duration length(w.length_ms);
  switch (w.kind) {
    case WindowSpec::Kind::kTumbling:
      return run(op::TumblingWindower(length));
    case WindowSpec::Kind::kSliding:
      return run(op::SlidingWindower(length, op::Duration(w.offset_ms)));
    case WindowSpec::Kind::kSession:
      break;
  }
  return run(op::SessionWindower(length));
}

}  // namespace

WindowSpec parse_window(const std::string& spec) {
  auto fail = [&]() -> ConfigError {
    return ConfigError(fmt::format(
        "--window must be tumbling:LENGTH, sliding:LENGTH:OFFSET or session:GAP (seconds), got '{}'", spec));
  };
  std::vector<double> nums;
  const auto colon = spec.find(':');
  if (colon == std::string::npos) throw fail();
  const std::string kind = spec.substr(0, colon);
  std::string_view rest(spec);
  rest.remove_prefix(colon + 1);
  while (true) {
    const auto next = rest.find(':');
    const std::string_view part = rest.substr(0, next);
    double v = 0;
    const auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || p != part.data() + part.size() || part.empty() || !(v > 0)) throw fail();
    nums.push_back(v);
    if (next == std::string_view::npos) break;
    rest.remove_prefix(next + 1);
  }
  auto ms = [](double seconds) { return static_cast<int64_t>(seconds * 1000 + 0.5); };
  if (kind == "tumbling" && nums.size() == 1) return WindowSpec{WindowSpec::Kind::kTumbling, ms(nums[0]), 0};
  if (kind == "sliding" && nums.size() == 2) {
    if (nums[1] > nums[0]) {
      throw ConfigError(fmt::format("--window {}: the offset must not exceed the length", spec));
    }
    return WindowSpec{WindowSpec::Kind::kSliding, ms(nums[0]), ms(nums[1])};
  }
  if (kind == "session" && nums.size() == 1) return WindowSpec{WindowSpec::Kind::kSession, ms(nums[0]), 0};
  throw fail();
}

std::string format_window(std::string_view user_id, int64_t start_ms, int64_t end_ms, int64_t orders,
                          int64_t payments) {
  std::string out = R"({"user_id": )";
  out += cart::json_string(user_id);
  out += fmt::format(R"(, "window_start": "{}", "window_end": "{}", "orders": {}, "payments": {}}})",
                     cart::format_utc_ms(start_ms), cart::format_utc_ms(end_ms), orders, payments);
  return out;
}

BuiltFlow flow(const Options& o) {
  if (o.lateness < 0) throw ConfigError(fmt::format("--lateness must not be negative, got {}", o.lateness));
  auto counts = std::make_shared<Counts>();
  const bool strict = o.strict;
  const bool keep_lines = !o.late.empty();
  Dataflow flow("cart_stats");
  auto lines = op::input("input", flow, lines_source(o.input, bundled_data("cart-stats.json")));
  auto events = op::filter_map("deserialize", lines,
                               [=](const std::string& line) { return deserialize(line, strict, keep_lines, *counts); });
  auto keyed = op::key_on("key_on_user", events, [](const StatsEvent& e) { return e.user_id; });
  const auto wait = op::Duration(static_cast<int64_t>(o.lateness * 1000 + 0.5));
  auto clock = op::EventClock([](const StatsEvent& e) { return op::Time(op::Duration(e.ts)); }, wait);
  with_windower(o.window, [&](auto windower) {
    auto out = op::window(
        "window", keyed, clock, windower, [] { return Tally{}; },
        [](Tally&& t, StatsEvent&& e) {
          (e.payment ? t.payments : t.orders) += 1;
          return std::move(t);
        },
        [](Tally&& a, Tally&& b) {
          return Tally{a.orders + b.orders, a.payments + b.payments};
        },
        [](const op::WindowMeta& m, Tally&& t) { return std::pair<op::WindowMeta, Tally>(m, t); });
    auto format = [](KV<std::pair<int64_t, std::pair<op::WindowMeta, Tally>>>&& kv) {
      const auto& [meta, tally] = kv.second.second;
      return format_window(kv.first, meta.open_time.time_since_epoch().count(),
                           meta.close_time.time_since_epoch().count(), tally.orders, tally.payments);
    };
    if (keyed_output(o.output)) {
      auto lines_out = op::map("format_output", out.down, [format](auto&& kv) {
        std::string key = kv.first;
        return KV<std::string>(std::move(key), format(std::move(kv)));
      });
      op::output("output", lines_out, keyed_lines_sink(o.output));
    } else {
      op::output("output", op::map("format_output", out.down, format), lines_sink(o.output));
    }
    if (keep_lines) {
      auto late = op::map("late_lines", out.late,
                          [](KV<std::pair<int64_t, StatsEvent>>&& kv) { return std::move(kv.second.second.line); });
      OutputSpec late_spec;
      late_spec.path = o.late;
      op::output("late", late, lines_sink(late_spec));
    } else {
      op::inspect("count_late", out.late, [counts](const auto&) { counts->late.fetch_add(1); });
    }
    return 0;
  });
  auto report = [counts, keep_lines] {
    const auto bad = counts->bad_lines.load();
    const auto late = counts->late.load();
    std::string msg;
    if (bad > 0) msg = fmt::format("{} bad line(s) skipped", bad);
    if (late > 0 && !keep_lines) {
      msg += fmt::format("{}{} late event(s) dropped (older than the watermark; --late PATH keeps them)",
                         msg.empty() ? "" : ", ", late);
    }
    return msg.empty() ? msg : "cart_stats: " + msg;
  };
  return BuiltFlow(std::move(flow), report);
}

App app() {
  return App::make<Options>(
      "cart_stats", "orders and payments per user and event-time window (tumbling, sliding or session)",
      [](AppFlags<Options>& f) {
        f.input(&Options::input,
                "JSON-lines file, directory of them, - (stdin) or kafka://HOST:PORT/TOPIC; each event needs a \"ts\" "
                "(ISO 8601 UTC, e.g. 2026-11-21T10:00:03.250Z) (default: the bundled data/cart-stats.json)")
            .output(&Options::output,
                    "output file, directory of part files by user, or kafka://HOST:PORT/TOPIC (default: stdout)")
            .add("window", &Options::window,
                 "tumbling:LENGTH | sliding:LENGTH:OFFSET | session:GAP, in seconds (windows aligned to "
                 "1970-01-01T00:00:00Z)")
            .add("lateness", &Options::lateness,
                 "seconds the watermark waits behind the latest ts of each input partition; older events are late")
            .add("late", &Options::late, "file for late events' input lines (default: counted on stderr)")
            .flag("strict", &Options::strict,
                  "a bad input line is an error (handled by --on-error) instead of a warning");
      },
      flow);
}

}  // namespace engine::cart_stats

ENGINE_CODEC_FIELDS(engine::cart_stats::Tally, orders, payments);
