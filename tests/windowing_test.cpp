// The window operators of operators/windowing.hpp on TestingSource with
// several partitions whose events are in time order with a bounded disorder
// and some deliberately late events, run with 1, 2 and 4 workers, with and
// without recovery: every window, late item and window time equals a
// reference computed by plain loops here from the watermark rule (per source
// partition, the largest timestamp so far minus the wait).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "engine/errors.hpp"
#include "operators/join.hpp"
#include "operators/operators.hpp"
#include "operators/windowing.hpp"
#include "tests/support/flow_testing.hpp"

namespace {

using engine::Dataflow;
using engine::KV;
using flow_testing::collected;
using flow_testing::run_flow;
using flow_testing::sink;
using flow_testing::source;
using flow_testing::TempDir;
namespace op = engine::op;
using std::chrono::milliseconds;

struct TEv {
  std::string key;
  int64_t ts = 0;  // ms
  int part = 0;
  int seq = 0;
  auto operator<=>(const TEv&) const = default;
};

using Parts = std::vector<std::vector<TEv>>;

constexpr int64_t kWait = 200;

// Per partition: time goes up by 0..9 ms per event, each event jittered by up
// to `jitter` ms back (within the wait when jitter <= kWait), and every 97th
// event is 1-3 s old (late). Keys span partitions.
Parts make_parts(int parts, int per_part, int keys, int64_t jitter, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Parts out(parts);
  for (int p = 0; p < parts; ++p) {
    int64_t t = 1'700'000'000'000 + static_cast<int64_t>(rng() % 1000);
    for (int i = 0; i < per_part; ++i) {
      t += static_cast<int64_t>(rng() % 10);
      int64_t ts = t - static_cast<int64_t>(rng() % (jitter + 1));
      if (i % 97 == 96) ts = t - 1000 - static_cast<int64_t>(rng() % 2000);
      out[p].push_back(TEv{fmt::format("k{}", rng() % keys), ts, p, i});
    }
  }
  return out;
}

// The reference: which events are late (by their own partition's watermark).
std::set<std::pair<int, int>> reference_late(const Parts& parts, int64_t wait) {
  std::set<std::pair<int, int>> late;
  for (const auto& part : parts) {
    int64_t max = INT64_MIN;
    for (const auto& e : part) {
      if (max != INT64_MIN && e.ts < max - wait) {
        late.insert({e.part, e.seq});
      } else {
        max = std::max(max, e.ts);
      }
    }
  }
  return late;
}

int64_t fdiv(int64_t a, int64_t b) { return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0); }

// A closed window as the tests compare them: key, open, close, count, sum of seq.
using Win = std::tuple<std::string, int64_t, int64_t, int64_t, int64_t>;

// Reference windows [start, start + len) every `off` ms from the on-time events.
std::multiset<Win> reference_sliding(const Parts& parts, int64_t len, int64_t off) {
  const auto late = reference_late(parts, kWait);
  std::map<std::pair<std::string, int64_t>, std::pair<int64_t, int64_t>> acc;
  for (const auto& part : parts) {
    for (const auto& e : part) {
      if (late.count({e.part, e.seq}) != 0) continue;
      for (int64_t k = fdiv(e.ts - len, off) + 1; k * off <= e.ts; ++k) {
        auto& a = acc[{e.key, k * off}];
        a.first += 1;
        a.second += e.seq;
      }
    }
  }
  std::multiset<Win> out;
  for (const auto& [kw, a] : acc) out.insert(Win{kw.first, kw.second, kw.second + len, a.first, a.second});
  return out;
}

// Reference sessions: per key, the on-time timestamps sorted, split where two
// follow each other by more than `gap`.
std::multiset<Win> reference_sessions(const Parts& parts, int64_t gap) {
  const auto late = reference_late(parts, kWait);
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> per_key;  // (ts, seq)
  for (const auto& part : parts) {
    for (const auto& e : part) {
      if (late.count({e.part, e.seq}) == 0) per_key[e.key].push_back({e.ts, e.seq});
    }
  }
  std::multiset<Win> out;
  for (auto& [key, v] : per_key) {
    std::sort(v.begin(), v.end());
    int64_t open = v[0].first, last = v[0].first, n = 0, sum = 0;
    for (const auto& [ts, seq] : v) {
      if (ts - last > gap) {
        out.insert(Win{key, open, last, n, sum});
        open = ts;
        n = 0;
        sum = 0;
      }
      last = ts;
      ++n;
      sum += seq;
    }
    out.insert(Win{key, open, last, n, sum});
  }
  return out;
}

struct Acc {
  int64_t n = 0;
  int64_t seq_sum = 0;
};

}  // namespace

ENGINE_CODEC_FIELDS(TEv, key, ts, part, seq);
ENGINE_CODEC_FIELDS(Acc, n, seq_sum);

namespace {

struct Result {
  std::multiset<Win> windows;
  std::set<std::pair<int, int>> late;
  size_t meta = 0;
};

auto ts_of = [](const TEv& e) { return op::Time(milliseconds(e.ts)); };

// Runs a fold_window over `parts` with `windower`; windows as (key, open, close, count, seq sum).
template <class Windower>
Result run_windows(const Parts& parts, Windower windower, engine::RunOptions opts) {
  using Down = KV<std::pair<int64_t, std::tuple<int64_t, int64_t, int64_t, int64_t>>>;
  using Late = KV<std::pair<int64_t, TEv>>;
  using Meta = KV<std::pair<int64_t, op::WindowMeta>>;
  auto down = collected<Down>();
  auto late = collected<Late>();
  auto meta = collected<Meta>();
  run_flow("windows", opts, [&](Dataflow& f) {
    auto keyed = op::key_on("key", op::input("in", f, source(parts)), [](const TEv& e) { return e.key; });
    auto out = op::window(
        "win", keyed, op::EventClock(ts_of, milliseconds(kWait)), windower, [] { return Acc{}; },
        [](Acc&& a, TEv&& e) {
          a.n += 1;
          a.seq_sum += e.seq;
          return std::move(a);
        },
        [](Acc&& a, Acc&& b) {
          return Acc{a.n + b.n, a.seq_sum + b.seq_sum};
        },
        [](const op::WindowMeta& m, Acc&& a) {
          return std::tuple<int64_t, int64_t, int64_t, int64_t>(
              m.open_time.time_since_epoch().count(), m.close_time.time_since_epoch().count(), a.n, a.seq_sum);
        });
    op::output("down", out.down, sink<Down>(down));
    op::output("late", out.late, sink<Late>(late));
    op::output("meta", out.meta, sink<Meta>(meta));
  });
  Result r;
  for (const auto& [key, v] : down->snapshot()) {
    const auto& [open, close, n, sum] = v.second;
    r.windows.insert(Win{key, open, close, n, sum});
  }
  for (const auto& [key, v] : late->snapshot()) r.late.insert({v.second.part, v.second.seq});
  r.meta = meta->snapshot().size();
  return r;
}

engine::RunOptions opts_for(uint32_t workers, double interval = 0.001) {
  return flow_testing::options(workers, interval);
}

class Windows : public ::testing::TestWithParam<uint32_t> {
 protected:
  const Parts parts_ = make_parts(4, 3000, 37, 150, 7);
};

TEST_P(Windows, TumblingEqualsReference) {
  const auto r = run_windows(parts_, op::TumblingWindower(milliseconds(500)), opts_for(GetParam()));
  const auto expected = reference_sliding(parts_, 500, 500);
  EXPECT_EQ(r.windows, expected);
  EXPECT_EQ(r.late, reference_late(parts_, kWait));
  EXPECT_FALSE(r.late.empty());
  EXPECT_EQ(r.meta, expected.size());
}

TEST_P(Windows, SlidingEqualsReference) {
  const auto r = run_windows(parts_, op::SlidingWindower(milliseconds(600), milliseconds(200)), opts_for(GetParam()));
  EXPECT_EQ(r.windows, reference_sliding(parts_, 600, 200));
  EXPECT_EQ(r.late, reference_late(parts_, kWait));
}

TEST_P(Windows, SessionsEqualReferenceWithMerges) {
  // Keys rare enough that sessions end, disorder that makes items bridge two.
  const Parts parts = make_parts(3, 3000, 400, 150, 11);
  const auto r = run_windows(parts, op::SessionWindower(milliseconds(120)), opts_for(GetParam()));
  const auto expected = reference_sessions(parts, 120);
  EXPECT_EQ(r.windows, expected);
  EXPECT_GT(expected.size(), 1000u);
}

TEST_P(Windows, SameWindowsWithRecoveryAndAnEpochPerItem) {
  TempDir dir;
  const auto r = run_windows(parts_, op::TumblingWindower(milliseconds(500)),
                             flow_testing::recovery_options(dir.sub("state"), GetParam(), 0));
  EXPECT_EQ(r.windows, reference_sliding(parts_, 500, 500));
  EXPECT_EQ(r.late, reference_late(parts_, kWait));
}

INSTANTIATE_TEST_SUITE_P(Workers, Windows, ::testing::Values(1u, 2u, 4u));

TEST(Windowers, SessionGapIsInclusive) {
  // Items exactly gap apart are one session; one more millisecond splits it.
  Parts parts{{TEv{"a", 1000, 0, 0}, TEv{"a", 1100, 0, 1}, TEv{"a", 1201, 0, 2}}};
  const auto r = run_windows(parts, op::SessionWindower(milliseconds(100)), opts_for(1));
  EXPECT_EQ(r.windows, (std::multiset<Win>{Win{"a", 1000, 1100, 2, 1}, Win{"a", 1201, 1201, 1, 2}}));
}

TEST(Windowers, SessionBridgedByALateArrivingItemMerges) {
  // Two sessions 150 ms apart; an item in between (within the wait) joins them.
  Parts parts{{TEv{"a", 1000, 0, 0}, TEv{"a", 1150, 0, 1}, TEv{"a", 1080, 0, 2}}};
  const auto r = run_windows(parts, op::SessionWindower(milliseconds(100)), opts_for(1));
  EXPECT_EQ(r.windows, (std::multiset<Win>{Win{"a", 1000, 1150, 3, 3}}));
}

TEST(Windowers, TumblingIsHalfOpenAndAligned) {
  Parts parts{{TEv{"a", 59'999, 0, 0}, TEv{"a", 60'000, 0, 1}, TEv{"a", 119'999, 0, 2}}};
  const auto r = run_windows(parts, op::TumblingWindower(milliseconds(60'000)), opts_for(1));
  EXPECT_EQ(r.windows, (std::multiset<Win>{Win{"a", 0, 60'000, 1, 0}, Win{"a", 60'000, 120'000, 2, 3}}));
}

TEST(Windowers, SlidingOffsetLongerThanLengthIsRefused) {
  EXPECT_THROW(op::SlidingWindower(milliseconds(10), milliseconds(20)), engine::ConfigError);
  EXPECT_THROW(op::TumblingWindower(milliseconds(0)), engine::ConfigError);
}

TEST(Windowers, LatenessIsPerPartition) {
  // Partition 1 is far ahead of partition 0: partition 0's items are not late
  // because of it, whichever is read first.
  Parts parts{{TEv{"a", 1000, 0, 0}, TEv{"a", 1010, 0, 1}}, {TEv{"a", 900'000, 1, 0}, TEv{"a", 900'010, 1, 1}}};
  for (uint32_t w : {1u, 2u}) {
    const auto r = run_windows(parts, op::TumblingWindower(milliseconds(100)), opts_for(w));
    EXPECT_TRUE(r.late.empty());
    EXPECT_EQ(r.windows, (std::multiset<Win>{Win{"a", 1000, 1100, 2, 1}, Win{"a", 900'000, 900'100, 2, 1}}));
  }
}

TEST(Windows, ClosedWindowsLeaveNoState) {
  // Sessions of every key end long before the input does: with recovery, the
  // window step's committed state is empty at the end, and windows were
  // emitted while the input was still being read.
  TempDir dir;
  const Parts parts = make_parts(2, 4000, 300, 100, 3);
  const auto r = run_windows(parts, op::SessionWindower(milliseconds(50)),
                             flow_testing::recovery_options(dir.sub("state"), 2, 0.001));
  EXPECT_EQ(r.windows, reference_sessions(parts, 50));
  auto store = engine::RocksStore::open_read_only(dir.sub("state"));
  EXPECT_EQ(flow_testing::scan_all(*store, flow_testing::state_step_prefix("win")).size(), 0u);
  // The clock's state (one value per partition) is there, under the same layout.
  EXPECT_EQ(flow_testing::scan_all(*store, flow_testing::state_step_prefix("win.clock")).size(), 2u);
}

TEST(Windows, WindowsCloseWhileTheInputIsRead) {
  // An epoch per item: windows close as the watermark passes them, long
  // before the input ends (each emitted window records how many items had
  // been read by then).
  const Parts parts = make_parts(1, 20000, 5, 0, 9);
  auto read = std::make_shared<std::atomic<int64_t>>(0);
  auto seen_at = collected<int64_t>();
  run_flow("live", opts_for(1, 0), [&](Dataflow& f) {
    auto in = op::inspect("count", op::input("in", f, source(parts)), [read](const TEv&) { read->fetch_add(1); });
    auto keyed = op::key_on("key", in, [](const TEv& e) { return e.key; });
    auto out = op::count_window("win", keyed, op::EventClock(ts_of, milliseconds(0)),
                                op::TumblingWindower(milliseconds(1000)));
    op::output("at", op::map("when", out.down, [read](auto&&) { return read->load(); }), sink<int64_t>(seen_at));
  });
  const auto at = seen_at->snapshot();
  ASSERT_FALSE(at.empty());
  EXPECT_LT(*std::min_element(at.begin(), at.end()), 10000);
}

TEST(Finals, CountFoldMaxMinCollectAtTheEnd) {
  const Parts parts = make_parts(3, 2000, 50, 0, 5);
  std::map<std::string, int64_t> count, sum, max, min;
  std::map<std::string, size_t> sizes;
  for (const auto& p : parts) {
    for (const auto& e : p) {
      count[e.key] += 1;
      sum[e.key] += e.seq;
      max[e.key] = std::max(max.count(e.key) != 0 ? max[e.key] : INT64_MIN, e.ts);
      min[e.key] = std::min(min.count(e.key) != 0 ? min[e.key] : INT64_MAX, e.ts);
      sizes[e.key] += 1;
    }
  }
  for (uint32_t w : {1u, 3u}) {
    auto c = collected<KV<int64_t>>();
    auto s = collected<KV<int64_t>>();
    auto hi = collected<KV<TEv>>();
    auto lo = collected<KV<TEv>>();
    auto all = collected<KV<std::vector<TEv>>>();
    run_flow("finals", opts_for(w), [&](Dataflow& f) {
      auto keyed = op::key_on("key", op::input("in", f, source(parts)), [](const TEv& e) { return e.key; });
      op::output("c", op::count_final("count", keyed), sink<KV<int64_t>>(c));
      op::output("s",
                 op::fold_final(
                     "sum", keyed, [] { return int64_t{0}; }, [](int64_t a, TEv&& e) { return a + e.seq; }),
                 sink<KV<int64_t>>(s));
      auto by_ts = [](const TEv& e) { return e.ts; };
      op::output("hi", op::max_final("max", keyed, by_ts), sink<KV<TEv>>(hi));
      op::output("lo", op::min_final("min", keyed, by_ts), sink<KV<TEv>>(lo));
      op::output("all", op::collect("collect", keyed), sink<KV<std::vector<TEv>>>(all));
    });
    std::map<std::string, int64_t> got_count, got_sum, got_max, got_min;
    std::map<std::string, size_t> got_sizes;
    for (const auto& [k, v] : c->snapshot()) got_count[k] += v;
    for (const auto& [k, v] : s->snapshot()) got_sum[k] += v;
    for (const auto& [k, v] : hi->snapshot()) got_max[k] = v.ts;
    for (const auto& [k, v] : lo->snapshot()) got_min[k] = v.ts;
    for (const auto& [k, v] : all->snapshot()) got_sizes[k] += v.size();
    EXPECT_EQ(got_count, count);
    EXPECT_EQ(c->snapshot().size(), count.size());  // one value per key
    EXPECT_EQ(got_sum, sum);
    EXPECT_EQ(got_max, max);
    EXPECT_EQ(got_min, min);
    EXPECT_EQ(got_sizes, sizes);
  }
}

// ---- joins -----------------------------------------------------------------

struct Order {
  std::string user;
  int64_t id = 0;
  int64_t ts = 0;
  auto operator<=>(const Order&) const = default;
};
struct Payment {
  std::string user;
  int64_t id = 0;
  int64_t ts = 0;
  auto operator<=>(const Payment&) const = default;
};

}  // namespace

ENGINE_CODEC_FIELDS(Order, user, id, ts);
ENGINE_CODEC_FIELDS(Payment, user, id, ts);

namespace {

using Row = op::JoinRow<Order, Payment>;
using Rows = std::multiset<std::tuple<std::string, int64_t, int64_t>>;  // user, order id or -1, payment id or -1

// Orders: users u0..u99, `per_user` each, over 2 partitions; payments for the
// even users only, `pays` each.
struct JoinInput {
  std::vector<std::vector<Order>> orders{2};
  std::vector<std::vector<Payment>> payments{2};
};
JoinInput join_input(int per_user, int pays) {
  JoinInput in;
  for (int u = 0; u < 100; ++u) {
    for (int i = 0; i < per_user; ++i)
      in.orders[(u + i) % 2].push_back(Order{fmt::format("u{}", u), u * 10 + i, 1000 * i});
    if (u % 2 == 1) continue;
    for (int i = 0; i < pays; ++i)
      in.payments[i % 2].push_back(Payment{fmt::format("u{}", u), u * 100 + i, 1000 * i + 10});
  }
  return in;
}

Rows run_join(
    const JoinInput& in, uint32_t workers,
    const std::function<engine::KeyedStream<Row>(engine::KeyedStream<Order>, engine::KeyedStream<Payment>)>& j,
    const engine::RunOptions* opts = nullptr) {
  auto got = collected<KV<Row>>();
  run_flow("join", opts != nullptr ? *opts : opts_for(workers), [&](Dataflow& f) {
    auto o = op::key_on("ko", op::input("orders", f, source(in.orders)), [](const Order& x) { return x.user; });
    auto p = op::key_on("kp", op::input("payments", f, source(in.payments)), [](const Payment& x) { return x.user; });
    op::output("out", j(o, p), sink<KV<Row>>(got));
  });
  Rows rows;
  for (const auto& [k, row] : got->snapshot()) {
    rows.insert({k, std::get<0>(row) ? std::get<0>(row)->id : -1, std::get<1>(row) ? std::get<1>(row)->id : -1});
  }
  return rows;
}

TEST(Join, CompleteEmitsOnceBothSidesHaveAValue) {
  const JoinInput in = join_input(1, 1);
  Rows expected;
  for (int u = 0; u < 100; u += 2) expected.insert({fmt::format("u{}", u), u * 10, u * 100});
  for (uint32_t w : {1u, 2u, 4u}) {
    EXPECT_EQ(run_join(in, w, [](auto o, auto p) { return op::join("j", o, p); }), expected);
  }
}

TEST(Join, FinalProductIsTheCrossProductWithMissingSidesEmpty) {
  const JoinInput in = join_input(2, 3);
  Rows expected;
  for (int u = 0; u < 100; ++u) {
    for (int i = 0; i < 2; ++i) {
      if (u % 2 == 1) {
        expected.insert({fmt::format("u{}", u), u * 10 + i, -1});
        continue;
      }
      for (int k = 0; k < 3; ++k) expected.insert({fmt::format("u{}", u), u * 10 + i, u * 100 + k});
    }
  }
  for (uint32_t w : {1u, 3u}) {
    EXPECT_EQ(
        run_join(in, w,
                 [](auto o, auto p) { return op::join("j", op::InsertMode::kProduct, op::EmitMode::kFinal, o, p); }),
        expected);
  }
  TempDir dir;
  const auto rec = flow_testing::recovery_options(dir.sub("state"), 2, 0);
  EXPECT_EQ(
      run_join(
          in, 2, [](auto o, auto p) { return op::join("j", op::InsertMode::kProduct, op::EmitMode::kFinal, o, p); },
          &rec),
      expected);
}

TEST(Join, RunningEmitsAfterEveryValue) {
  const JoinInput in = join_input(2, 1);
  const auto rows = run_join(
      in, 2, [](auto o, auto p) { return op::join("j", op::InsertMode::kLast, op::EmitMode::kRunning, o, p); });
  EXPECT_EQ(rows.size(), 100u * 2 + 50u);  // one row per value
  // The last row of an even user has both sides: at least one complete row each.
  std::set<std::string> complete;
  for (const auto& [u, o, p] : rows) {
    if (o >= 0 && p >= 0) complete.insert(u);
  }
  EXPECT_EQ(complete.size(), 50u);
}

TEST(Join, WindowJoinsWithinEachWindow) {
  // Orders at 0 s and 1 s, payments at 10 ms and 1.01 s: per 1 s window, the
  // order and payment of that second.
  const JoinInput in = join_input(2, 2);
  Rows expected;
  for (int u = 0; u < 100; ++u) {
    for (int i = 0; i < 2; ++i) expected.insert({fmt::format("u{}", u), u * 10 + i, u % 2 == 0 ? u * 100 + i : -1});
  }
  for (uint32_t w : {1u, 2u}) {
    EXPECT_EQ(run_join(in, w,
                       [](auto o, auto p) {
                         auto ts = [](const auto& side) {
                           return std::visit([](const auto& x) { return op::Time(milliseconds(x.ts)); }, side);
                         };
                         return op::join_window("j", op::EventClock(ts, milliseconds(5000)),
                                                op::TumblingWindower(milliseconds(1000)), o, p)
                             .rows;
                       }),
              expected);
  }
}

}  // namespace
