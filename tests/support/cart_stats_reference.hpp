#pragma once
// The cart_stats reference for the process tests, written plainly: reads the
// generated input files one after the other, decides lateness per file (the
// largest ts of the file so far minus the lateness), and counts orders and
// payments per user and tumbling, sliding or session window; the expected
// output lines are formatted here, independently of the app.

#include <algorithm>
#include <cstdint>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/support/process_testing.hpp"

namespace cart_stats_reference {

namespace pt = process_testing;

struct Ev {
  std::string user;
  bool payment = false;
  int64_t ts = 0;
  std::string line;
};

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
inline int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

inline std::string iso(int64_t ms) {
  const int64_t days = (ms >= 0 ? ms : ms - 86'399'999) / 86'400'000;
  int64_t rest = ms - days * 86'400'000;
  // civil_from_days
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  const int64_t h = rest / 3'600'000;
  rest %= 3'600'000;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", y, m, d, h, rest / 60'000, (rest % 60'000) / 1000,
                     rest % 1000);
}

// The events of one generated file, in file order.
inline std::vector<Ev> read_events(const std::string& path) {
  static const std::regex kLine(
      R"re(\{"user_id": "([^"]+)", "type": "(order|payment)", "order_id": \d+, "ts": "(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z"\})re");
  std::vector<Ev> out;
  for (const auto& line : pt::split_lines(pt::read_file(path))) {
    if (line.empty()) continue;
    std::smatch m;
    if (!std::regex_match(line, m, kLine)) {
      ADD_FAILURE() << "unexpected input line " << line;
      continue;
    }
    auto n = [&](int i) { return std::stoll(m[i].str()); };
    const int64_t ms = ((days_from_civil(n(3), n(4), n(5)) * 24 + n(6)) * 60 + n(7)) * 60'000 + n(8) * 1000 + n(9);
    out.push_back(Ev{m[1].str(), m[2].str() == "payment", ms, line});
  }
  return out;
}

struct Expected {
  std::multiset<std::string> lines;  // the output lines
  std::multiset<std::string> late;   // the late input lines
};

// window: "tumbling:S", "sliding:S:O" or "session:G" (seconds, integers).
inline Expected reference(const std::vector<std::string>& files, const std::string& window, int64_t lateness_s) {
  std::vector<std::string> parts;
  for (size_t at = 0, next; at != std::string::npos; at = next == std::string::npos ? next : next + 1) {
    next = window.find(':', at);
    parts.push_back(window.substr(at, next == std::string::npos ? std::string::npos : next - at));
  }
  const int64_t wait = lateness_s * 1000;
  Expected ex;
  std::map<std::string, std::vector<std::pair<int64_t, bool>>> on_time;  // user -> (ts, payment)
  for (const auto& f : files) {
    int64_t max = INT64_MIN;
    for (const auto& e : read_events(f)) {
      if (max != INT64_MIN && e.ts < max - wait) {
        ex.late.insert(e.line);
        continue;
      }
      max = std::max(max, e.ts);
      on_time[e.user].push_back({e.ts, e.payment});
    }
  }
  auto line = [](const std::string& user, int64_t start, int64_t end, int64_t orders, int64_t payments) {
    return fmt::format(R"({{"user_id": "{}", "window_start": "{}", "window_end": "{}", "orders": {}, "payments": {}}})",
                       user, iso(start), iso(end), orders, payments);
  };
  for (auto& [user, evs] : on_time) {
    if (parts[0] == "session") {
      const int64_t gap = std::stoll(parts[1]) * 1000;
      std::sort(evs.begin(), evs.end());
      int64_t open = evs[0].first, last = open, orders = 0, payments = 0;
      for (const auto& [ts, pay] : evs) {
        if (ts - last > gap) {
          ex.lines.insert(line(user, open, last, orders, payments));
          open = ts;
          orders = payments = 0;
        }
        last = ts;
        (pay ? payments : orders) += 1;
      }
      ex.lines.insert(line(user, open, last, orders, payments));
      continue;
    }
    const int64_t len = std::stoll(parts[1]) * 1000;
    const int64_t off = parts[0] == "sliding" ? std::stoll(parts[2]) * 1000 : len;
    std::map<int64_t, std::pair<int64_t, int64_t>> wins;  // start -> (orders, payments)
    for (const auto& [ts, pay] : evs) {
      // Every start s = k * off with s <= ts < s + len.
      int64_t k = ts / off;
      if (ts < 0 && ts % off != 0) --k;
      for (; k * off + len > ts; --k) {
        auto& w = wins[k * off];
        (pay ? w.second : w.first) += 1;
      }
    }
    for (const auto& [start, c] : wins) ex.lines.insert(line(user, start, start + len, c.first, c.second));
  }
  return ex;
}

// Generates a timestamped cart input (gen_cart --ts-start) into `dir`.
inline void generate(const std::string& dir, uint64_t events, uint64_t users, uint64_t files, uint64_t seed,
                     uint64_t jitter_ms, uint64_t late_every) {
  const auto o = pt::run_process(pt::kGenCart, {"--events",     std::to_string(events),
                                                "--users",      std::to_string(users),
                                                "--files",      std::to_string(files),
                                                "--out",        dir,
                                                "--seed",       std::to_string(seed),
                                                "--ts-start",   "1795255200000",
                                                "--ts-step-ms", "20",
                                                "--jitter-ms",  std::to_string(jitter_ms),
                                                "--late-every", std::to_string(late_every),
                                                "--late-ms",    "120000"},
                                 pt::Seconds(120));
  ASSERT_TRUE(o.ok()) << "gen_cart failed: " << o.describe();
}

inline std::multiset<std::string> as_set(const std::vector<std::string>& lines) {
  std::multiset<std::string> s;
  for (const auto& l : lines) {
    if (!l.empty()) s.insert(l);
  }
  return s;
}

}  // namespace cart_stats_reference
