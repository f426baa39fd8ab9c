// The exchange under concurrency: the SPSC ring (engine/spsc_ring.hpp) moves
// millions of pointers between two threads in FIFO order with nothing lost or
// duplicated, and in a 4-worker flow every keyed item reaches the owner worker
// of its key exactly once, in per-key order. Also run under ThreadSanitizer
// (-DENGINE_TSAN=ON), where the sizes shrink to keep it quick.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "connectors/testing/testing.hpp"
#include "engine/hash.hpp"
#include "engine/runtime.hpp"
#include "engine/spsc_ring.hpp"
#include "operators/operators.hpp"
#include "tests/support/flow_testing.hpp"
#include "tests/support/unit_testing.hpp"

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
#else
constexpr bool kTsan = false;
#endif

using engine::SpscRing;
using unit_testing::Watchdog;

// ---- the ring alone, one thread ------------------------------------------------

TEST(SpscRing, CapacityRoundsUpToPowerOfTwo) {
  EXPECT_EQ(SpscRing<int>(2).capacity(), 2u);
  EXPECT_EQ(SpscRing<int>(3).capacity(), 4u);
  EXPECT_EQ(SpscRing<int>(4).capacity(), 4u);
  EXPECT_EQ(SpscRing<int>(5).capacity(), 8u);
  EXPECT_EQ(SpscRing<int>(1000).capacity(), 1024u);
}

TEST(SpscRing, FullAndEmptyAreReportedAndOrderIsFifo) {
  SpscRing<int> ring(4);
  std::vector<int> v(10);
  EXPECT_EQ(ring.try_pop(), nullptr);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(ring.try_push(&v[i]));
  EXPECT_EQ(ring.size_approx(), 4u);
  EXPECT_FALSE(ring.try_push(&v[4]));  // full: the caller keeps the item
  EXPECT_EQ(ring.try_pop(), &v[0]);
  EXPECT_TRUE(ring.try_push(&v[4]));
  EXPECT_FALSE(ring.try_push(&v[5]));
  for (int i = 1; i <= 4; ++i) EXPECT_EQ(ring.try_pop(), &v[i]);
  EXPECT_EQ(ring.try_pop(), nullptr);
  EXPECT_EQ(ring.size_approx(), 0u);
}

TEST(SpscRing, WrapsAroundManyTimes) {
  SpscRing<uint64_t> ring(2);
  std::vector<uint64_t> v(3);
  uint64_t pushed = 0;
  uint64_t popped = 0;
  // Indices go far past the capacity; every slot is reused tens of thousands of times.
  for (int round = 0; round < 100000; ++round) {
    while (ring.try_push(&v[pushed % 3])) ++pushed;
    const size_t k = 1 + round % 2;
    for (size_t i = 0; i < k; ++i) {
      uint64_t* p = ring.try_pop();
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(p, &v[popped % 3]);
      ++popped;
    }
  }
  while (uint64_t* p = ring.try_pop()) {
    ASSERT_EQ(p, &v[popped % 3]);
    ++popped;
  }
  EXPECT_EQ(popped, pushed);
  EXPECT_GT(pushed, 100000u);
}

// ---- the ring between two threads ---------------------------------------------------

// Waits a little after the `spins`-th failed attempt: busy at first, then yields
// the core (this machine may have fewer cores than busy threads).
void backoff(int spins) {
  if (spins < 100) return;
  std::this_thread::yield();
}

// One producer and one consumer move `n` pointers through a ring of `capacity`.
// Each pointed-to value is written just before its push, so the consumer also
// checks that a pop sees the producer's writes (release/acquire).
void move_pointers(uint64_t n, size_t capacity) {
  SpscRing<uint64_t> ring(capacity);
  std::vector<uint64_t> values(n, 0);
  std::atomic<uint64_t> full_hits{0};
  std::atomic<uint64_t> empty_hits{0};
  uint64_t wrong_pointer = 0;
  uint64_t wrong_value = 0;
  uint64_t received = 0;
  constexpr uint64_t kPauseEvery = 1 << 17;

  std::thread producer([&] {
    uint64_t full = 0;
    for (uint64_t i = 0; i < n; ++i) {
      values[i] = i * 7 + 1;
      if (i % kPauseEvery == kPauseEvery / 2) std::this_thread::sleep_for(std::chrono::microseconds(300));
      for (int spins = 0; !ring.try_push(&values[i]); ++spins) {
        ++full;
        backoff(spins);
      }
    }
    full_hits = full;
  });
  std::thread consumer([&] {
    uint64_t empty = 0;
    int spins = 0;
    while (received < n) {
      uint64_t* p = ring.try_pop();
      if (p == nullptr) {
        ++empty;
        backoff(spins++);
        continue;
      }
      spins = 0;
      if (p != &values[received]) ++wrong_pointer;
      if (*p != received * 7 + 1) ++wrong_value;
      ++received;
      // Pausing lets the producer fill the ring, so the full path is taken for sure.
      if (received % kPauseEvery == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    empty_hits = empty;
  });
  producer.join();
  consumer.join();
  EXPECT_EQ(received, n);
  EXPECT_EQ(wrong_pointer, 0u) << "out of order, lost or duplicated pointers";
  EXPECT_EQ(wrong_value, 0u) << "consumer saw a value before the producer's write";
  EXPECT_EQ(ring.try_pop(), nullptr) << "extra items left in the ring";
  EXPECT_GT(full_hits.load(), 0u) << "the full path was never taken";
  EXPECT_GT(empty_hits.load(), 0u) << "the empty path was never taken";
}

TEST(SpscRingConcurrent, MillionsOfPointersTinyRing) {
  Watchdog dog(std::chrono::seconds(120), "SPSC ring, capacity 4");
  move_pointers(kTsan ? 400000 : 2000000, 4);
}

TEST(SpscRingConcurrent, MillionsOfPointersSmallestRing) {
  Watchdog dog(std::chrono::seconds(120), "SPSC ring, capacity 2");
  move_pointers(kTsan ? 300000 : 1000000, 2);
}

TEST(SpscRingConcurrent, OwnedBatchesChangeThreads) {
  // Like the runtime: heap batches handed over as raw pointers, freed by the consumer.
  Watchdog dog(std::chrono::seconds(120), "SPSC ring, owned batches");
  struct Batch {
    uint64_t first = 0;
    std::vector<uint64_t> items;
  };
  const uint64_t batches = kTsan ? 20000 : 200000;
  SpscRing<Batch> ring(8);
  uint64_t bad = 0;
  uint64_t seen = 0;
  std::thread producer([&] {
    for (uint64_t b = 0; b < batches; ++b) {
      auto batch = std::make_unique<Batch>();
      batch->first = b * 16;
      for (uint64_t i = 0; i < 1 + b % 16; ++i) batch->items.push_back(b * 16 + i);
      Batch* raw = batch.release();
      while (!ring.try_push(raw)) std::this_thread::yield();
    }
  });
  std::thread consumer([&] {
    for (uint64_t b = 0; b < batches;) {
      Batch* raw = ring.try_pop();
      if (raw == nullptr) {
        std::this_thread::yield();
        continue;
      }
      std::unique_ptr<Batch> batch(raw);
      if (batch->first != b * 16 || batch->items.size() != 1 + b % 16) ++bad;
      for (uint64_t i = 0; i < batch->items.size(); ++i) bad += batch->items[i] != b * 16 + i;
      seen += batch->items.size();
      ++b;
    }
  });
  producer.join();
  consumer.join();
  EXPECT_EQ(bad, 0u);
  uint64_t expected = 0;
  for (uint64_t b = 0; b < batches; ++b) expected += 1 + b % 16;
  EXPECT_EQ(seen, expected);
}

// ---- the exchange in a flow ---------------------------------------------------------------

struct Item {
  std::string key;
  int part = 0;
  int seq = 0;
  int64_t count = 0;  // set by the stateful step: this item is the count-th of its key
  auto operator<=>(const Item&) const = default;
};

// Deterministic items with random keys (keys span partitions).
std::vector<std::vector<Item>> make_items(int parts, int per_part, int keys, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<Item>> out(parts);
  for (int p = 0; p < parts; ++p) {
    for (int i = 0; i < per_part; ++i) out[p].push_back(Item{fmt::format("user{}", rng() % keys), p, i, 0});
  }
  return out;
}

// One item as the inspect step after the exchange saw it.
struct Seen {
  Item item;
  uint32_t worker;
};

// Runs input -> key_on -> stateful_map (routes by key) -> inspect -> output with
// `opts` and checks routing, exactly-once delivery and per-key order.
void check_keyed_exchange(const std::vector<std::vector<Item>>& parts, engine::RunOptions opts) {
  namespace op = engine::op;
  std::mutex mu;
  std::vector<Seen> seen;
  auto out = flow_testing::collected<engine::KV<Item>>();
  flow_testing::run_flow("exchange", opts, [&](engine::Dataflow& f) {
    auto keyed =
        op::key_on("key", op::input("in", f, flow_testing::source(parts)), [](const Item& x) { return x.key; });
    auto counted = op::stateful_map<int64_t>("count", keyed, [](std::optional<int64_t>& n, Item&& x) {
      n = n.value_or(0) + 1;
      x.count = *n;
      return x;
    });
    auto looked = op::inspect("where", counted, [&](const engine::KV<Item>& kv, uint32_t w) {
      std::lock_guard<std::mutex> lk(mu);
      seen.push_back(Seen{kv.second, w});
    });
    op::output("out", looked, flow_testing::sink<engine::KV<Item>>(out));
  });

  size_t total = 0;
  std::map<std::string, int64_t> per_key;
  for (const auto& p : parts) {
    total += p.size();
    for (const auto& x : p) ++per_key[x.key];
  }
  ASSERT_EQ(seen.size(), total);

  // Exactly once: every (part, seq) once.
  std::set<std::pair<int, int>> ids;
  std::set<uint32_t> workers_used;
  std::map<std::string, std::vector<int64_t>> counts_by_key;
  std::map<std::pair<std::string, int>, std::vector<int>> seqs;  // (key, part) -> seqs in arrival order
  const uint32_t groups = opts.key_groups;
  for (const auto& s : seen) {
    EXPECT_TRUE(ids.emplace(s.item.part, s.item.seq).second) << "duplicate " << s.item.part << "/" << s.item.seq;
    const uint32_t owner = engine::owner_of_group(engine::key_group_of(s.item.key, groups), groups, opts.workers);
    if (s.worker != owner) {
      ADD_FAILURE() << s.item.key << " processed on worker " << s.worker << ", owner is " << owner;
      return;
    }
    workers_used.insert(s.worker);
    counts_by_key[s.item.key].push_back(s.item.count);
    seqs[{s.item.key, s.item.part}].push_back(s.item.seq);
  }
  EXPECT_EQ(workers_used.size(), opts.workers);
  // The stateful step sees each key's items one by one: counts 1, 2, ..., n.
  ASSERT_EQ(counts_by_key.size(), per_key.size());
  for (const auto& [k, cs] : counts_by_key) {
    std::vector<int64_t> expected(static_cast<size_t>(per_key[k]));
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<int64_t>(i + 1);
    ASSERT_EQ(cs, expected) << "key " << k;
  }
  // Per (key, partition): the partition's order.
  std::map<std::pair<std::string, int>, std::vector<int>> expected_seqs;
  for (const auto& p : parts) {
    for (const auto& x : p) expected_seqs[{x.key, x.part}].push_back(x.seq);
  }
  EXPECT_TRUE(seqs == expected_seqs) << "per-key order from one partition was not preserved after the exchange";

  // The sink (another exchange, to worker 0) got the same items, still in per-key order.
  const auto sunk = out->snapshot();
  ASSERT_EQ(sunk.size(), total);
  std::map<std::pair<std::string, int>, std::vector<int>> sunk_seqs;
  for (const auto& [k, x] : sunk) {
    EXPECT_EQ(k, x.key);
    sunk_seqs[{x.key, x.part}].push_back(x.seq);
  }
  EXPECT_TRUE(sunk_seqs == expected_seqs) << "per-key order lost on the way to the sink";
}

TEST(FlowExchange, FourWorkersEveryItemAtItsOwnerOnceInOrder) {
  Watchdog dog(std::chrono::seconds(120), "4-worker exchange");
  const auto parts = make_items(6, kTsan ? 5000 : 25000, 5000, 17);
  check_keyed_exchange(parts, flow_testing::options(4));
}

TEST(FlowExchange, TinyBatchesAndRingsBackpressure) {
  // Batches of 3 items in rings of 2: rings fill constantly and the overflow path runs.
  Watchdog dog(std::chrono::seconds(120), "4-worker exchange, tiny rings");
  auto opts = flow_testing::options(4);
  opts.batch_size = 3;
  opts.ring_capacity = 2;
  opts.source_batch = 7;
  check_keyed_exchange(make_items(5, kTsan ? 2000 : 8000, 700, 23), opts);
}

TEST(FlowExchange, ThreeWorkersOddKeyGroups) {
  Watchdog dog(std::chrono::seconds(120), "3-worker exchange");
  auto opts = flow_testing::options(3);
  opts.key_groups = 7;
  opts.batch_size = 16;
  check_keyed_exchange(make_items(4, kTsan ? 2000 : 10000, 300, 29), opts);
}

TEST(FlowExchange, EpochsCutEveryItemStillDeliverOnce) {
  // -s 0: one epoch per input item, so markers travel between every item.
  Watchdog dog(std::chrono::seconds(120), "exchange with one epoch per item");
  auto opts = flow_testing::options(4, 0.0);
  check_keyed_exchange(make_items(4, kTsan ? 200 : 600, 50, 31), opts);
}

}  // namespace

namespace {

// One sink partition (so worker 0 owns it) that is slow: its worker falls
// behind and the other workers' batches for it pile up in their overflow queues.
class SlowSink final : public engine::Sink<std::string> {
 public:
  std::vector<std::string> list_parts() const override { return {"only"}; }
  std::unique_ptr<engine::SinkPartition<std::string>> build_part(const std::string&,
                                                                 const std::optional<std::string>&) const override {
    return std::make_unique<Part>();
  }

 private:
  struct Part final : engine::SinkPartition<std::string> {
    void write(std::string&&) override { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }
    std::string snapshot(bool) override { return ""; }
  };
};

}  // namespace

// A worker that stops because another one failed may still hold, in its
// overflow queue, the marker of an earlier epoch that a slow peer needs to
// finish: the run must still end (with the step's error), not hang.
TEST(FlowExchange, FailureWhilePeersAreBackpressuredEndsTheRun) {
  Watchdog dog(std::chrono::seconds(120), "failure under backpressure");
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::vector<std::vector<std::string>> parts(3);
    for (int i = 0; i < 3000; ++i)
      parts[1].push_back(std::string(1, 'b').append(std::to_string(i)));         // floods worker 0
    for (int i = 0; i < 200; ++i) parts[2].push_back(i == 60 ? "bad" : "skip");  // fails a little later
    engine::Dataflow flow("failure_under_backpressure");
    auto in = engine::op::input("in", flow, std::make_shared<engine::TestingSource<std::string>>(parts));
    auto checked = engine::op::map("check", in, [](std::string&& s) {
      if (s == "bad") throw std::runtime_error("bad item");
      if (s == "skip") std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return std::move(s);
    });
    auto kept = engine::op::filter("drop", checked, [](const std::string& s) { return s != "skip"; });
    engine::op::output("out", kept, std::make_shared<SlowSink>());
    engine::RunOptions o;
    o.workers = 3;
    o.snapshot_interval = 0.05;
    o.batch_size = 4;
    o.source_batch = 4;
    o.ring_capacity = 2;
    const auto msg = flow_testing::error_message_of<engine::StepError>([&] { engine::run(flow, o); });
    EXPECT_NE(msg.find("'check'"), std::string::npos) << msg;
  }
}
