// Every operator of operators/operators.hpp on TestingSource/TestingSink with
// several source partitions, run with 1, 2 and 4 workers: the results equal a
// reference computed by plain loops in the test (as multisets, and per key in
// order where one partition's per-key order must survive end to end).

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "connectors/testing/testing.hpp"
#include "engine/errors.hpp"
#include "engine/runtime.hpp"
#include "engine/warnings.hpp"
#include "operators/operators.hpp"
#include "tests/support/flow_testing.hpp"
#include "tests/support/unit_testing.hpp"

namespace {

using engine::Dataflow;
using engine::KV;
using engine::Stream;
using flow_testing::by_key;
using flow_testing::collected;
using flow_testing::options;
using flow_testing::run_flow;
using flow_testing::sink;
using flow_testing::source;
using unit_testing::counts;
namespace op = engine::op;

// One test event: which partition it came from, its position there, a key and a value.
struct Ev {
  std::string key;
  int part = 0;
  int seq = 0;
  int64_t value = 0;
  auto operator<=>(const Ev&) const = default;
};

using Parts = std::vector<std::vector<Ev>>;

constexpr int kParts = 5;
constexpr int kPerPart = 1500;
constexpr int kKeysPerPart = 40;

// Deterministic events. With `shard_keys`, each key lives in exactly one
// partition (so per-key order is fully defined); otherwise keys span partitions.
Parts make_events(int parts, int per_part, int keys_per_part, uint64_t seed, bool shard_keys = true,
                  const std::string& key_prefix = "k") {
  std::mt19937_64 rng(seed);
  Parts out(parts);
  for (int p = 0; p < parts; ++p) {
    for (int i = 0; i < per_part; ++i) {
      const int k = static_cast<int>(rng() % keys_per_part);
      const int key_index = shard_keys ? p + parts * k : static_cast<int>(rng() % (keys_per_part * parts));
      out[p].push_back(Ev{fmt::format("{}{}", key_prefix, key_index), p, i, static_cast<int64_t>(rng() % 100) - 10});
    }
  }
  return out;
}

// All items of all partitions, partition by partition.
std::vector<Ev> flatten(const Parts& parts) {
  std::vector<Ev> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// Per key, the items in arrival order.
std::map<std::string, std::vector<Ev>> ev_by_key(const std::vector<Ev>& items) {
  std::map<std::string, std::vector<Ev>> out;
  for (const auto& e : items) out[e.key].push_back(e);
  return out;
}

// Runs a flow whose body `build(flow)` returns the stream to collect; returns what reached the sink.
template <class T, class Build>
std::vector<T> run_collect(uint32_t workers, Build build, engine::RunOptions opts = {}) {
  opts.workers = workers;
  auto out = collected<T>();
  run_flow("ops", opts, [&](Dataflow& flow) {
    Stream<T> s = build(flow);
    op::output("out", s, sink<T>(out));
  });
  return out->snapshot();
}

class Operators : public ::testing::TestWithParam<uint32_t> {
 protected:
  uint32_t workers() const { return GetParam(); }
  Parts parts_ = make_events(kParts, kPerPart, kKeysPerPart, 42);
  std::vector<Ev> all_ = flatten(parts_);
};

TEST_P(Operators, InputToOutputDeliversEveryItemInPartitionOrder) {
  auto out = run_collect<Ev>(workers(), [&](Dataflow& f) { return op::input("in", f, source(parts_)); });
  EXPECT_EQ(counts(out), counts(all_));
  // Each partition's items arrive in the partition's order.
  std::map<int, std::vector<int>> seqs;
  for (const auto& e : out) seqs[e.part].push_back(e.seq);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kParts));
  for (const auto& [p, s] : seqs) {
    std::vector<int> expected;
    for (const auto& e : parts_[p]) expected.push_back(e.seq);
    EXPECT_EQ(s, expected) << "partition " << p;
  }
}

TEST_P(Operators, MapTransformsEveryItem) {
  auto f = [](Ev e) {
    e.value = e.value * 3 + 1;
    return e;
  };
  auto out = run_collect<Ev>(workers(),
                             [&](Dataflow& fl) { return op::map("triple", op::input("in", fl, source(parts_)), f); });
  std::vector<Ev> expected;
  for (const auto& e : all_) expected.push_back(f(e));
  EXPECT_EQ(counts(out), counts(expected));
  EXPECT_EQ(ev_by_key(out), ev_by_key(expected));
}

TEST_P(Operators, MapChangesTheItemType) {
  auto out = run_collect<std::string>(workers(), [&](Dataflow& fl) {
    return op::map("describe", op::input("in", fl, source(parts_)),
                   [](const Ev& e) { return fmt::format("{}/{}/{}", e.key, e.seq, e.value); });
  });
  std::vector<std::string> expected;
  for (const auto& e : all_) expected.push_back(fmt::format("{}/{}/{}", e.key, e.seq, e.value));
  EXPECT_EQ(counts(out), counts(expected));
}

TEST_P(Operators, FilterKeepsMatchingItemsInOrder) {
  auto keep = [](const Ev& e) { return e.value % 3 == 0; };
  auto out = run_collect<Ev>(workers(),
                             [&](Dataflow& f) { return op::filter("div3", op::input("in", f, source(parts_)), keep); });
  std::vector<Ev> expected;
  for (const auto& e : all_) {
    if (keep(e)) expected.push_back(e);
  }
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(ev_by_key(out), ev_by_key(expected));
}

TEST_P(Operators, FilterMapDropsNulloptAndMapsTheRest) {
  auto fm = [](Ev e) -> std::optional<Ev> {
    if (e.value < 40) return std::nullopt;
    e.value = -e.value;
    return e;
  };
  auto out = run_collect<Ev>(
      workers(), [&](Dataflow& f) { return op::filter_map("big", op::input("in", f, source(parts_)), fm); });
  std::vector<Ev> expected;
  for (const auto& e : all_) {
    if (auto r = fm(e)) expected.push_back(*r);
  }
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(ev_by_key(out), ev_by_key(expected));
}

TEST_P(Operators, FlatMapEmitsZeroOrMoreItemsEach) {
  auto fm = [](const Ev& e) {
    std::vector<Ev> v;
    for (int64_t i = 0; i < std::abs(e.value) % 4; ++i) {
      Ev x = e;
      x.value = e.value * 10 + i;
      v.push_back(x);
    }
    return v;
  };
  auto out = run_collect<Ev>(workers(),
                             [&](Dataflow& f) { return op::flat_map("fan", op::input("in", f, source(parts_)), fm); });
  std::vector<Ev> expected;
  for (const auto& e : all_) {
    for (auto& x : fm(e)) expected.push_back(x);
  }
  ASSERT_GT(expected.size(), all_.size());  // some items emit several, some none
  EXPECT_EQ(ev_by_key(out), ev_by_key(expected));
}

TEST_P(Operators, KeyOnPairsEachItemWithItsKey) {
  auto out = run_collect<KV<Ev>>(workers(), [&](Dataflow& f) {
    return op::key_on("key", op::input("in", f, source(parts_)), [](const Ev& e) { return e.key; });
  });
  ASSERT_EQ(out.size(), all_.size());
  for (const auto& [k, e] : out) EXPECT_EQ(k, e.key);
  std::vector<Ev> values;
  for (const auto& kv : out) values.push_back(kv.second);
  EXPECT_EQ(ev_by_key(values), ev_by_key(all_));
}

TEST_P(Operators, MapValueKeepsTheKey) {
  auto out = run_collect<KV<int64_t>>(workers(), [&](Dataflow& f) {
    auto keyed = op::key_on("key", op::input("in", f, source(parts_)), [](const Ev& e) { return e.key; });
    return op::map_value("square", keyed, [](const Ev& e) { return e.value * e.value + e.seq; });
  });
  std::vector<KV<int64_t>> expected;
  for (const auto& e : all_) expected.emplace_back(e.key, e.value * e.value + e.seq);
  EXPECT_EQ(by_key(out), by_key(expected));
}

TEST_P(Operators, InspectSeesEveryItemOnTheWorkerReadingItsPartition) {
  std::mutex mu;
  std::vector<std::pair<Ev, uint32_t>> seen;
  auto out = run_collect<Ev>(workers(), [&](Dataflow& f) {
    return op::inspect("look", op::input("in", f, source(parts_)), [&](const Ev& e, uint32_t worker) {
      std::lock_guard<std::mutex> lk(mu);
      seen.emplace_back(e, worker);
    });
  });
  EXPECT_EQ(counts(out), counts(all_));
  std::vector<Ev> seen_items;
  for (const auto& [e, w] : seen) {
    seen_items.push_back(e);
    // Partition i is read by worker i % workers (engine::owner_of_part).
    EXPECT_EQ(w, static_cast<uint32_t>(e.part) % workers()) << "item " << e.key << "/" << e.seq;
  }
  EXPECT_EQ(counts(seen_items), counts(all_));
}

TEST_P(Operators, InspectWithoutWorkerIndexPassesItemsThrough) {
  std::atomic<uint64_t> sum{0};
  auto out = run_collect<Ev>(workers(), [&](Dataflow& f) {
    return op::inspect("look", op::input("in", f, source(parts_)),
                       [&](const Ev& e) { sum.fetch_add(static_cast<uint64_t>(e.seq + 1)); });
  });
  uint64_t expected = 0;
  for (const auto& e : all_) expected += static_cast<uint64_t>(e.seq + 1);
  EXPECT_EQ(sum.load(), expected);
  EXPECT_EQ(counts(out), counts(all_));
}

TEST_P(Operators, BranchSplitsIntoTruesAndFalses) {
  auto pred = [](const Ev& e) { return e.value > 20; };
  auto trues = collected<Ev>();
  auto falses = collected<Ev>();
  run_flow("branch", options(workers()), [&](Dataflow& f) {
    auto b = op::branch("split", op::input("in", f, source(parts_)), pred);
    op::output("out_trues", b.trues, sink<Ev>(trues));
    op::output("out_falses", b.falses, sink<Ev>(falses));
  });
  std::vector<Ev> exp_t, exp_f;
  for (const auto& e : all_) (pred(e) ? exp_t : exp_f).push_back(e);
  ASSERT_FALSE(exp_t.empty());
  ASSERT_FALSE(exp_f.empty());
  EXPECT_EQ(ev_by_key(trues->snapshot()), ev_by_key(exp_t));
  EXPECT_EQ(ev_by_key(falses->snapshot()), ev_by_key(exp_f));
}

TEST_P(Operators, MergeInterleavesTwoInputs) {
  const Parts other = make_events(3, 700, 10, 7, true, "other");
  auto out = run_collect<Ev>(workers(), [&](Dataflow& f) {
    auto a = op::input("in_a", f, source(parts_));
    auto b = op::input("in_b", f, source(other));
    return op::merge("both", std::vector<Stream<Ev>>{a, b});
  });
  std::vector<Ev> expected = all_;
  for (const auto& e : flatten(other)) expected.push_back(e);
  EXPECT_EQ(counts(out), counts(expected));
  EXPECT_EQ(ev_by_key(out), ev_by_key(expected));  // keys of the two inputs are distinct
}

TEST_P(Operators, BranchThenMergeGivesBackEveryItem) {
  auto out = run_collect<Ev>(workers(), [&](Dataflow& f) {
    auto b = op::branch("split", op::input("in", f, source(parts_)), [](const Ev& e) { return e.seq % 2 == 0; });
    auto odd = op::map("tag_odd", b.falses, [](Ev e) {
      e.value += 1000;
      return e;
    });
    return op::merge("join", std::vector<Stream<Ev>>{b.trues, odd});
  });
  std::vector<Ev> expected;
  for (auto e : all_) {
    if (e.seq % 2 != 0) e.value += 1000;
    expected.push_back(e);
  }
  EXPECT_EQ(ev_by_key(out), ev_by_key(expected));
}

TEST_P(Operators, RedistributeSpreadsItemsOverWorkersWithoutLoss) {
  // One partition: without redistribute every item would stay on worker 0.
  const Parts one = make_events(1, 4000, 50, 9);
  std::mutex mu;
  std::vector<std::pair<Ev, uint32_t>> seen;
  auto out = run_collect<Ev>(workers(), [&](Dataflow& f) {
    auto spread = op::redistribute("spread", op::input("in", f, source(one)));
    return op::inspect("where", spread, [&](const Ev& e, uint32_t w) {
      std::lock_guard<std::mutex> lk(mu);
      seen.emplace_back(e, w);
    });
  });
  EXPECT_EQ(counts(out), counts(one[0]));
  std::vector<Ev> seen_items;
  std::map<uint32_t, size_t> per_worker;
  for (const auto& [e, w] : seen) {
    seen_items.push_back(e);
    ++per_worker[w];
  }
  EXPECT_EQ(counts(seen_items), counts(one[0]));
  EXPECT_EQ(per_worker.size(), workers()) << "every worker must get some items";
  for (const auto& [w, n] : per_worker) {
    EXPECT_LT(w, workers());
    EXPECT_GE(n, one[0].size() / workers() / 2) << "worker " << w << " got too few items";
  }
}

// Running sum per key; a value divisible by 7 discards the state (the next item starts fresh).
std::string sum_step(std::optional<int64_t>& s, const Ev& e) {
  if (e.value % 7 == 0) {
    const bool had = s.has_value();
    s.reset();
    return fmt::format("reset(had={})", had);
  }
  const std::string how = s ? "cont" : "fresh";
  s = s.value_or(0) + e.value;
  return fmt::format("{}:{}", how, *s);
}

TEST_P(Operators, StatefulMapKeepsPerKeyStateAndDiscardsOnNullopt) {
  auto out = run_collect<KV<std::string>>(workers(), [&](Dataflow& f) {
    auto keyed = op::key_on("key", op::input("in", f, source(parts_)), [](const Ev& e) { return e.key; });
    return op::stateful_map<int64_t>("sum", keyed, [](std::optional<int64_t>& s, Ev&& e) { return sum_step(s, e); });
  });
  // Reference: the same step applied per key in partition order (each key lives in one partition).
  std::map<std::string, std::optional<int64_t>> states;
  std::vector<KV<std::string>> expected;
  size_t resets = 0;
  for (const auto& e : all_) {
    auto r = sum_step(states[e.key], e);
    resets += r.rfind("reset", 0) == 0;
    expected.emplace_back(e.key, r);
  }
  ASSERT_GT(resets, 50u);
  EXPECT_EQ(by_key(out), by_key(expected));
}

TEST_P(Operators, StatefulMapDiscardedStateStartsFresh) {
  const Parts small = {{Ev{"a", 0, 0, 5}, Ev{"a", 0, 1, 3}, Ev{"a", 0, 2, 14}, Ev{"a", 0, 3, 4}, Ev{"a", 0, 4, 0},
                        Ev{"a", 0, 5, 0}, Ev{"a", 0, 6, 2}},
                       {Ev{"b", 1, 0, 1}, Ev{"b", 1, 1, 21}, Ev{"b", 1, 2, 1}}};
  auto out = run_collect<KV<std::string>>(workers(), [&](Dataflow& f) {
    auto keyed = op::key_on("key", op::input("in", f, source(small)), [](const Ev& e) { return e.key; });
    return op::stateful_map<int64_t>("sum", keyed, [](std::optional<int64_t>& s, Ev&& e) { return sum_step(s, e); });
  });
  std::map<std::string, std::vector<std::string>> expected = {
      {"a", {"fresh:5", "cont:8", "reset(had=true)", "fresh:4", "reset(had=true)", "reset(had=false)", "fresh:2"}},
      {"b", {"fresh:1", "reset(had=true)", "fresh:1"}}};
  EXPECT_EQ(by_key(out), expected);
}

TEST_P(Operators, StatefulMapReturningNulloptEmitsNothing) {
  auto out = run_collect<KV<int64_t>>(workers(), [&](Dataflow& f) {
    auto keyed = op::key_on("key", op::input("in", f, source(parts_)), [](const Ev& e) { return e.key; });
    return op::stateful_map<int64_t>("every_third", keyed,
                                     [](std::optional<int64_t>& n, const Ev& e) -> std::optional<int64_t> {
                                       n = n.value_or(0) + 1;
                                       if (*n % 3 != 0) return std::nullopt;
                                       return e.seq;
                                     });
  });
  std::map<std::string, int64_t> n;
  std::vector<KV<int64_t>> expected;
  for (const auto& e : all_) {
    if (++n[e.key] % 3 == 0) expected.emplace_back(e.key, e.seq);
  }
  EXPECT_EQ(by_key(out), by_key(expected));
}

// A mapper may return a reference to its state. Discarding a state erases it
// from the worker's table (no recovery), which moves later keys' entries into
// its slot: the returned reference must not then show another key's state.
TEST_P(Operators, StatefulMapReturningAReferenceToADiscardedState) {
  std::vector<std::vector<std::string>> parts(3);
  std::vector<KV<int64_t>> expected;
  for (int i = 0; i < 6000; ++i) {  // every key gets a state...
    parts[static_cast<size_t>(i) % 3].push_back(fmt::format("k{} set", i));
    expected.emplace_back(fmt::format("k{}", i), i);
  }
  for (int i = 0; i < 6000; i += 3) {  // ...then every third one is discarded, long after its insertion
    parts[static_cast<size_t>(i) % 3].push_back(fmt::format("k{} drop", i));
  }
  auto out = run_collect<KV<int64_t>>(workers(), [&](Dataflow& f) {
    auto in = op::input("in", f, source(parts));
    auto keyed = op::key_on("key", in, [](const std::string& item) { return item.substr(0, item.find(' ')); });
    return op::stateful_map<int64_t>("by_ref", keyed,
                                     [](std::optional<int64_t>& s, std::string&& item) -> std::optional<int64_t>& {
                                       if (item.ends_with(" drop")) {
                                         s.reset();
                                       } else {
                                         s = std::stoll(item.substr(1, item.find(' ') - 1));
                                       }
                                       return s;
                                     });
  });
  EXPECT_EQ(by_key(out), by_key(expected));
}

TEST_P(Operators, StatefulMapCountsKeysThatSpanPartitions) {
  // Keys in every partition: arrival order across partitions is free, but the
  // k-th item of a key always sees count k.
  const Parts spread = make_events(kParts, kPerPart, 30, 5, false);
  auto out = run_collect<KV<int64_t>>(workers(), [&](Dataflow& f) {
    auto keyed = op::key_on("key", op::input("in", f, source(spread)), [](const Ev& e) { return e.key; });
    return op::stateful_map<int64_t>("count", keyed, [](std::optional<int64_t>& n, Ev&&) {
      n = n.value_or(0) + 1;
      return *n;
    });
  });
  std::map<std::string, int64_t> totals;
  for (const auto& e : flatten(spread)) ++totals[e.key];
  std::map<std::string, std::vector<int64_t>> expected;
  for (const auto& [k, n] : totals) {
    for (int64_t i = 1; i <= n; ++i) expected[k].push_back(i);
  }
  EXPECT_EQ(by_key(out), expected);  // in order too: the state's owner emits 1, 2, 3, ...
}

TEST_P(Operators, StatefulFlatMapEmitsSeveralItemsPerInput) {
  auto step = [](std::optional<int64_t>& count, const Ev& e) {
    count = count.value_or(0) + 1;
    std::vector<std::string> v;
    for (int64_t i = 0; i < std::abs(e.value) % 3 + 1; ++i) v.push_back(fmt::format("{}#{}#{}", e.seq, *count, i));
    if (e.value % 5 == 0) count.reset();
    return v;
  };
  auto out = run_collect<KV<std::string>>(workers(), [&](Dataflow& f) {
    auto keyed = op::key_on("key", op::input("in", f, source(parts_)), [](const Ev& e) { return e.key; });
    return op::stateful_flat_map<int64_t>("fan", keyed, step);
  });
  std::map<std::string, std::optional<int64_t>> states;
  std::vector<KV<std::string>> expected;
  for (const auto& e : all_) {
    for (auto& s : step(states[e.key], e)) expected.emplace_back(e.key, s);
  }
  ASSERT_GT(expected.size(), all_.size() * 3 / 2);
  EXPECT_EQ(by_key(out), by_key(expected));
}

TEST_P(Operators, ChainOfKeyedStepsKeepsPerKeyOrder) {
  // key_on -> filter -> map_value -> stateful_map -> inspect -> stateful_map (its output is keyed too).
  auto out = run_collect<KV<std::string>>(workers(), [&](Dataflow& f) {
    auto keyed = op::key_on("key", op::input("in", f, source(parts_)), [](const Ev& e) { return e.key; });
    auto kept = op::filter("positive", keyed, [](const KV<Ev>& kv) { return kv.second.value >= 0; });
    auto vals = op::map_value("value", kept, [](const Ev& e) { return e.value; });
    auto maxes = op::stateful_map<int64_t>("max", vals, [](std::optional<int64_t>& m, int64_t v) {
      m = std::max(m.value_or(v), v);
      return *m;
    });
    auto looked = op::inspect("look", maxes, [](const KV<int64_t>&) {});
    return op::stateful_map<std::string>("history", looked, [](std::optional<std::string>& h, int64_t m) {
      h = h.value_or("") + fmt::format("{},", m);
      return *h;
    });
  });
  std::map<std::string, int64_t> maxes;
  std::map<std::string, std::string> hist;
  std::vector<KV<std::string>> expected;
  for (const auto& e : all_) {
    if (e.value < 0) continue;
    auto [it, fresh] = maxes.emplace(e.key, e.value);
    if (!fresh) it->second = std::max(it->second, e.value);
    hist[e.key] += fmt::format("{},", it->second);
    expected.emplace_back(e.key, hist[e.key]);
  }
  EXPECT_EQ(by_key(out), by_key(expected));
}

TEST_P(Operators, MergeOfKeyedStreamsFeedsAStatefulStep) {
  const Parts other = make_events(2, 500, 10, 11, true, "other");
  auto out = run_collect<KV<int64_t>>(workers(), [&](Dataflow& f) {
    auto a = op::key_on("key_a", op::input("in_a", f, source(parts_)), [](const Ev& e) { return e.key; });
    auto b = op::key_on("key_b", op::input("in_b", f, source(other)), [](const Ev& e) { return e.key; });
    auto both = op::merge("both", std::vector<engine::KeyedStream<Ev>>{a, b});
    return op::stateful_map<int64_t>("sum", both, [](std::optional<int64_t>& s, Ev&& e) {
      s = s.value_or(0) + e.value;
      return *s;
    });
  });
  std::map<std::string, int64_t> sums;
  std::vector<KV<int64_t>> expected;
  for (const auto& e : all_) expected.emplace_back(e.key, sums[e.key] += e.value);
  for (const auto& e : flatten(other)) expected.emplace_back(e.key, sums[e.key] += e.value);
  EXPECT_EQ(by_key(out), by_key(expected));
}

// ---- user exceptions ----------------------------------------------------------

// The items the failing steps below throw on.
bool is_bad(const Ev& e) { return e.seq % 97 == 13; }

TEST_P(Operators, ExceptionInMapWithFailPolicyIsStepErrorNamingTheStep) {
  unit_testing::Watchdog dog(std::chrono::seconds(60), "failing run");
  unit_testing::LogCapture logs;
  const std::string msg = unit_testing::error_message_of<engine::StepError>([&] {
    run_collect<Ev>(workers(), [&](Dataflow& f) {
      return op::map("explode", op::input("in", f, source(parts_)), [](Ev e) {
        if (is_bad(e)) throw std::runtime_error(fmt::format("boom at seq {}", e.seq));
        return e;
      });
    });
  });
  EXPECT_NE(msg.find("'explode'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("boom at seq"), std::string::npos) << msg;
}

TEST_P(Operators, ExceptionInMapWithSkipPolicyDropsTheItem) {
  unit_testing::Watchdog dog(std::chrono::seconds(60), "skipping run");
  unit_testing::LogCapture logs;
  engine::RunOptions opts;
  opts.on_error = engine::ErrorPolicy::kSkip;
  auto out = run_collect<Ev>(
      workers(),
      [&](Dataflow& f) {
        return op::map("explode", op::input("in", f, source(parts_)), [](Ev e) {
          if (is_bad(e)) throw std::runtime_error("boom");
          return e;
        });
      },
      opts);
  std::vector<Ev> expected;
  for (const auto& e : all_) {
    if (!is_bad(e)) expected.push_back(e);
  }
  ASSERT_LT(expected.size(), all_.size());
  EXPECT_EQ(ev_by_key(out), ev_by_key(expected));
  // The first few skipped items are named one by one, the rest counted (a bad input must not flood the log).
  const auto warnings = logs.at(spdlog::level::warn);
  const uint64_t skipped = all_.size() - expected.size();
  ASSERT_GT(skipped, engine::WarningLog::kShownPerSource);
  uint64_t shown = 0;
  uint64_t counted = 0;
  static const std::regex summary(R"((\d+) more warning\(s\) not shown \(step 'explode' failed: (\d+)\))");
  for (const auto& w : warnings) {
    std::smatch m;
    if (w.find("step 'explode' (map) failed on ") != std::string::npos) {
      ++shown;
    } else if (std::regex_search(w, m, summary)) {
      EXPECT_EQ(m[1].str(), m[2].str()) << w;
      counted += std::stoull(m[1].str());
    }
  }
  EXPECT_EQ(shown, engine::WarningLog::kShownPerSource);
  EXPECT_EQ(shown + counted, skipped);
}

TEST_P(Operators, ExceptionInStatefulMapWithSkipPolicyLeavesStateUnchanged) {
  unit_testing::LogCapture logs;
  engine::RunOptions opts;
  opts.on_error = engine::ErrorPolicy::kSkip;
  auto out = run_collect<KV<int64_t>>(
      workers(),
      [&](Dataflow& f) {
        auto keyed = op::key_on("key", op::input("in", f, source(parts_)), [](const Ev& e) { return e.key; });
        return op::stateful_map<int64_t>("sum", keyed, [](std::optional<int64_t>& s, Ev&& e) {
          if (is_bad(e)) throw std::runtime_error("bad");
          s = s.value_or(0) + e.value;
          return *s;
        });
      },
      opts);
  std::map<std::string, int64_t> sums;
  std::vector<KV<int64_t>> expected;
  for (const auto& e : all_) {
    if (!is_bad(e)) expected.emplace_back(e.key, sums[e.key] += e.value);
  }
  EXPECT_EQ(by_key(out), by_key(expected));
}

TEST_P(Operators, ExceptionInStatefulMapWithFailPolicyIsStepError) {
  unit_testing::Watchdog dog(std::chrono::seconds(60), "failing stateful run");
  unit_testing::LogCapture logs;
  const std::string msg = unit_testing::error_message_of<engine::StepError>([&] {
    run_collect<KV<int64_t>>(workers(), [&](Dataflow& f) {
      auto keyed = op::key_on("key", op::input("in", f, source(parts_)), [](const Ev& e) { return e.key; });
      return op::stateful_map<int64_t>("joiner", keyed, [](std::optional<int64_t>&, Ev&& e) -> int64_t {
        if (is_bad(e)) throw std::runtime_error("stateful boom");
        return e.value;
      });
    });
  });
  EXPECT_NE(msg.find("'joiner'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stateful boom"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(Workers, Operators, ::testing::Values(1u, 2u, 4u),
                         [](const ::testing::TestParamInfo<uint32_t>& info) { return fmt::format("w{}", info.param); });

// The same pipeline with 1, 2 and 4 workers gives identical per-key output.
TEST(OperatorsAcrossWorkerCounts, SamePerKeyResultsForOneTwoAndFourWorkers) {
  const Parts parts = make_events(7, 1000, 25, 3);
  std::map<uint32_t, std::map<std::string, std::vector<std::string>>> results;
  for (uint32_t w : {1u, 2u, 4u}) {
    auto out = run_collect<KV<std::string>>(w, [&](Dataflow& f) {
      auto evs = op::flat_map("dup", op::input("in", f, source(parts)),
                              [](const Ev& e) { return std::vector<Ev>(static_cast<size_t>(e.seq % 2 + 1), e); });
      auto keyed = op::key_on("key", evs, [](const Ev& e) { return e.key; });
      return op::stateful_map<int64_t>("sum", keyed, [](std::optional<int64_t>& s, Ev&& e) { return sum_step(s, e); });
    });
    results[w] = by_key(out);
  }
  std::map<std::string, std::optional<int64_t>> states;
  std::map<std::string, std::vector<std::string>> expected;
  for (const auto& e : flatten(parts)) {
    for (int i = 0; i < e.seq % 2 + 1; ++i) expected[e.key].push_back(sum_step(states[e.key], e));
  }
  EXPECT_EQ(results[1], expected);
  EXPECT_EQ(results[2], results[1]);
  EXPECT_EQ(results[4], results[1]);
}

}  // namespace
