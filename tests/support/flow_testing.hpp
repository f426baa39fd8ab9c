#pragma once
// Shared helpers for the in-process tests (tests/*_test.cpp): temporary
// directories, directory fingerprints, running a flow built by a function,
// grouping keyed output, reading a state dir, FaultInjectingStore and
// CountingStore, and the keyed-sum scenario of the recovery tests.
//
// Reference results in tests are always computed by plain code in the test,
// never by the engine; these helpers only move data around.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "connectors/testing/testing.hpp"
#include "engine/codec.hpp"
#include "engine/dataflow.hpp"
#include "engine/errors.hpp"
#include "engine/options.hpp"
#include "engine/runtime.hpp"
#include "engine/store.hpp"
#include "operators/operators.hpp"

namespace flow_testing {

namespace fs = std::filesystem;
namespace op = engine::op;

template <class V>
using KV = engine::KV<V>;
template <class T>
using Collected = typename engine::TestingSink<T>::Collected;

// ---- files and directories --------------------------------------------------

// A fresh directory under ::testing::TempDir() (or another base), removed
// (recursively) when destroyed.
class TempDir {
 public:
  TempDir() : TempDir(::testing::TempDir()) {}
  // A fresh directory under `base`, which must exist (see memory_temp_base()).
  explicit TempDir(const std::string& base) {
    std::string pattern = (fs::path(base) / "engine_test_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);  // best effort: a leftover temp dir must not fail a test
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // A path inside this directory (not created).
  std::string sub(std::string_view name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

// /dev/shm when it is a directory (tmpfs: fsync costs nothing), else the
// usual temp dir. For tests that run thousands of synced commits whose
// durability is not what they check.
inline std::string memory_temp_base() {
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  return ::testing::TempDir();
}

inline uint64_t fnv1a(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// What a directory holds: relative path -> "dir" or "size:hash" of the content.
// Two equal fingerprints mean the directory was not modified.
using Fingerprint = std::map<std::string, std::string>;

inline Fingerprint fingerprint(const std::string& dir) {
  Fingerprint out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_directory()) {
      out[rel] = "dir";
    } else {
      const std::string content = read_file(e.path().string());
      out[rel] = fmt::format("{}:{:016x}", content.size(), fnv1a(content));
    }
  }
  return out;
}

// Total size of the regular files under `dir`.
inline uint64_t dir_size(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

// ---- running flows -----------------------------------------------------------

// Builds a fresh Dataflow with `build(flow)` and runs it (a Dataflow cannot be
// reused or moved, so every run gets its own).
template <class Build>
engine::RunStats run_flow(const std::string& name, const engine::RunOptions& opts, Build&& build) {
  engine::Dataflow flow(name);
  build(flow);
  return engine::run(flow, opts);
}

// Options of a run with recovery in `dir` (snapshot interval in seconds, 0: an epoch per item).
inline engine::RunOptions recovery_options(const std::string& dir, uint32_t workers, double interval,
                                           engine::SnapshotMode mode = engine::SnapshotMode::kBatch) {
  engine::RunOptions o;
  o.workers = workers;
  o.state_dir = dir;
  o.snapshot_interval = interval;
  o.snapshot_mode = mode;
  return o;
}

inline engine::RunOptions options(uint32_t workers, double snapshot_interval = 10.0) {
  engine::RunOptions o;
  o.workers = workers;
  o.snapshot_interval = snapshot_interval;
  return o;
}

template <class T>
std::shared_ptr<engine::TestingSource<T>> source(std::vector<std::vector<T>> parts) {
  return std::make_shared<engine::TestingSource<T>>(std::move(parts));
}

template <class T>
std::shared_ptr<engine::TestingSink<T>> sink(const std::shared_ptr<Collected<T>>& collected) {
  return std::make_shared<engine::TestingSink<T>>(collected);
}

template <class T>
std::shared_ptr<Collected<T>> collected() {
  return std::make_shared<Collected<T>>();
}

// ---- comparing output ----------------------------------------------------------

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Keyed items grouped per key, in arrival order within each key.
template <class V>
std::map<std::string, std::vector<V>> by_key(const std::vector<KV<V>>& items) {
  std::map<std::string, std::vector<V>> out;
  for (const auto& [k, v] : items) out[k].push_back(v);
  return out;
}

// Items grouped by `group(item)`, in arrival order within each group.
template <class T, class G>
auto group_by(const std::vector<T>& items, G group) {
  std::map<std::remove_cvref_t<std::invoke_result_t<G&, const T&>>, std::vector<T>> out;
  for (const auto& x : items) out[group(x)].push_back(x);
  return out;
}

// ---- reading a state dir ----------------------------------------------------------

// Every key starting with `prefix`, with its value.
inline std::map<std::string, std::string> scan_all(const engine::Store& store, std::string_view prefix) {
  std::map<std::string, std::string> out;
  store.scan(prefix, [&](std::string_view k, std::string_view v) { out.emplace(std::string(k), std::string(v)); });
  return out;
}

// The prefix of every state key of one stateful step (the store's key layout).
inline std::string state_step_prefix(std::string_view step) { return engine::keys::state_step_prefix(step); }

// The committed state of stateful step `step`: user key -> decoded state.
// Fails the test (ADD_FAILURE) on a key stored in the wrong key group.
template <class S>
std::map<std::string, S> read_state(const engine::Store& store, std::string_view step) {
  std::map<std::string, S> out;
  store.scan_state(step, [&](uint32_t kg, std::string_view key, std::string_view v) {
    const std::string user_key(key);
    if (kg != engine::key_group_of(user_key, store.key_groups())) {
      ADD_FAILURE() << "key '" << user_key << "' stored in key group " << kg;
    }
    out.emplace(user_key, engine::decode_value<S>(v));
  });
  return out;
}

// The committed resume state of a TestingSource partition (the next item
// index), from a description of the store.
inline size_t source_offset(const engine::StoreDescription& d, const std::string& step, const std::string& part) {
  const auto s = d.source_offsets.find(step);
  if (s == d.source_offsets.end() || !s->second.count(part)) return 0;
  return static_cast<size_t>(engine::parse_stored_number(s->second.at(part), "a test source offset"));
}

// ---- fault injection ---------------------------------------------------------------

// A Store that forwards to a RocksStore but throws engine::StateError on the
// Nth write() and/or the Nth commit() (1-based; 0 = never), as RocksDB's
// fault_injection_fs does for files. The fault fires once; later calls are
// forwarded again. Thread-safe like the store it wraps.
class FaultInjectingStore final : public engine::Store {
 public:
  enum class When {
    kInstead,  // the failing call writes nothing (a crash before the write)
    kAfter,    // the call reaches RocksDB, then reports a failure (a crash after it)
  };
  struct Plan {
    uint64_t fail_write = 0;
    uint64_t fail_commit = 0;
    When when = When::kInstead;
    std::chrono::microseconds commit_delay{0};  // every commit takes this much longer (a slow disk)
  };

  FaultInjectingStore(std::unique_ptr<engine::RocksStore> inner, Plan plan) : inner_(std::move(inner)), plan_(plan) {}

  std::optional<engine::CommitRecord> committed() const override { return inner_->committed(); }
  uint32_t key_groups() const override { return inner_->key_groups(); }
  std::optional<std::string> get(std::string_view key) const override { return inner_->get(key); }
  void scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& visit) const override {
    inner_->scan(prefix, visit);
  }

  void stage(uint64_t epoch, const engine::WriteSet& writes) override {
    const uint64_t n = ++writes_;
    if (n != plan_.fail_write) return inner_->stage(epoch, writes);
    fired_ = true;
    if (plan_.when == When::kAfter) inner_->stage(epoch, writes);
    throw engine::StateError(fmt::format("injected fault on staged write #{}", n));
  }

  void commit(engine::WriteSet&& writes, const engine::CommitRecord& record) override {
    const uint64_t n = ++commits_;
    if (plan_.commit_delay.count() > 0) std::this_thread::sleep_for(plan_.commit_delay);
    if (n != plan_.fail_commit) {
      inner_->commit(std::move(writes), record);
      std::lock_guard<std::mutex> lk(mu_);
      committed_epochs_.push_back(record.epoch);
      return;
    }
    fired_ = true;
    {
      std::lock_guard<std::mutex> lk(mu_);
      failed_epoch_ = record.epoch;
    }
    if (plan_.when == When::kAfter) inner_->commit(std::move(writes), record);
    throw engine::StateError(fmt::format("injected fault on commit #{} (epoch {})", n, record.epoch));
  }

  // The epochs of the commits that succeeded, in order.
  std::vector<uint64_t> committed_epochs() const {
    std::lock_guard<std::mutex> lk(mu_);
    return committed_epochs_;
  }
  // The epoch the failing commit was for (0: none failed).
  uint64_t failed_epoch() const {
    std::lock_guard<std::mutex> lk(mu_);
    return failed_epoch_;
  }

  void fold_staged(uint64_t upto) override { inner_->fold_staged(upto); }
  void backup(const std::string& dir) override { inner_->backup(dir); }

  uint64_t writes() const { return writes_.load(); }
  uint64_t commits() const { return commits_.load(); }
  bool fired() const { return fired_.load(); }
  engine::RocksStore& inner() { return *inner_; }

 private:
  std::unique_ptr<engine::RocksStore> inner_;
  const Plan plan_;
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<bool> fired_{false};
  mutable std::mutex mu_;
  std::vector<uint64_t> committed_epochs_;  // guarded by mu_
  uint64_t failed_epoch_ = 0;               // guarded by mu_
};

// A Store that forwards to a RocksStore and records every read: get() calls
// and, per scan(), its prefix and how many keys it visited. The lazy-restore
// test uses it to see which key groups a resumed run read. It also counts
// commits and the order of their state keys. Thread-safe.
class CountingStore final : public engine::Store {
 public:
  explicit CountingStore(std::unique_ptr<engine::RocksStore> inner) : inner_(std::move(inner)) {}

  std::optional<engine::CommitRecord> committed() const override { return inner_->committed(); }
  uint32_t key_groups() const override { return inner_->key_groups(); }
  std::optional<std::string> get(std::string_view key) const override {
    ++gets_;
    return inner_->get(key);
  }
  void scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& visit) const override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      prefixes_.emplace_back(prefix);
    }
    inner_->scan(prefix, [&](std::string_view k, std::string_view v) {
      ++scanned_keys_;
      visit(k, v);
    });
  }
  void stage(uint64_t epoch, const engine::WriteSet& writes) override { inner_->stage(epoch, writes); }
  void commit(engine::WriteSet&& writes, const engine::CommitRecord& record) override {
    ++commits_;
    count_state_runs(writes);
    inner_->commit(std::move(writes), record);
  }
  // The most ascending runs of state keys (S keys) one commit's writes came
  // in: a worker writes its changed state in key order, so a commit of one
  // epoch has at most one run per worker and stateful step.
  size_t most_state_runs() const { return most_state_runs_.load(); }

  void fold_staged(uint64_t upto) override { inner_->fold_staged(upto); }
  void backup(const std::string& dir) override { inner_->backup(dir); }

  uint64_t commits() const { return commits_.load(); }
  uint64_t gets() const { return gets_.load(); }
  uint64_t scanned_keys() const { return scanned_keys_.load(); }
  std::vector<std::string> scan_prefixes() const {
    std::lock_guard<std::mutex> lk(mu_);
    return prefixes_;
  }
  // The key groups of stateful step `step` that some scan() read ("S step \0 kg" prefixes).
  std::set<uint32_t> scanned_groups(std::string_view step) const {
    std::map<std::string, uint32_t> group_of_prefix;
    for (uint32_t kg = 0; kg < key_groups(); ++kg) group_of_prefix[engine::keys::state_prefix(step, kg)] = kg;
    std::set<uint32_t> out;
    for (const auto& prefix : scan_prefixes()) {
      if (auto it = group_of_prefix.find(prefix); it != group_of_prefix.end()) out.insert(it->second);
    }
    return out;
  }
  engine::RocksStore& inner() { return *inner_; }

 private:
  void count_state_runs(const engine::WriteSet& writes) {
    size_t runs = 0;
    std::string_view last;
    for (const auto& w : writes) {
      if (!w.key.starts_with('S')) continue;
      if (runs == 0 || w.key < last) ++runs;
      last = w.key;
    }
    if (runs > most_state_runs_.load()) most_state_runs_.store(runs);  // one commit at a time
  }

  std::unique_ptr<engine::RocksStore> inner_;
  mutable std::mutex mu_;
  mutable std::vector<std::string> prefixes_;
  mutable std::atomic<uint64_t> gets_{0};
  mutable std::atomic<uint64_t> scanned_keys_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<size_t> most_state_runs_{0};
};

// ---- errors and hangs ------------------------------------------------------------

// Runs `f`, which must throw E (or a subclass); returns what() so the caller
// can check the message. Records a test failure (and returns "") otherwise.
template <class E, class F>
std::string error_message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got " << typeid(e).name() << ": " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing was thrown";
  return "";
}

// Ends the test binary with a message if it is still alive after `limit`: a
// hung multi-worker run then fails at once instead of at ctest's TIMEOUT.
class Watchdog {
 public:
  Watchdog(std::chrono::seconds limit, std::string what) : what_(std::move(what)) {
    thread_ = std::thread([this, limit] {
      std::unique_lock<std::mutex> lk(mu_);
      if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
        std::fprintf(stderr, "watchdog: %s still running after %lld s; aborting the test binary\n", what_.c_str(),
                     static_cast<long long>(limit.count()));
        std::_Exit(3);
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::string what_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// ---- the keyed-sum scenario of the recovery tests ---------------------------------
//
// The recovery tests run one flow again and again over growing input:
//
//   input "inp" -> map "parse" -> key_on "key" -> stateful_map "sum"
//               -> map "format" -> output "out"
//
// Items are lines "KEY VALUE" (adds VALUE to KEY's state (count, sum)),
// "KEY del" (discards KEY's state: the mapper sets it to std::nullopt) and
// "KEY bad" ('parse' throws on it: the error policies' test item). Every other
// item emits one output line: "KEY COUNT SUM" or "KEY del".

inline constexpr std::string_view kSumFlow = "keyed_sum";
inline constexpr std::string_view kSumStep = "sum";
using SumState = std::pair<int64_t, int64_t>;  // (count, sum)
using Parts = std::vector<std::vector<std::string>>;

struct SumCommand {
  std::string key;
  bool del = false;
  int64_t value = 0;
};

// The store identity of the keyed-sum flow, for opening its state dirs.
inline engine::StoreIdentity sum_identity() { return {std::string(kSumFlow), {std::string(kSumStep)}, 1024, {}}; }

// Builds the keyed-sum flow into `flow`. 'parse' also throws on every item in
// `poison`: a bug in a step that the test "fixes" by leaving it out next run.
inline void build_sum_flow(engine::Dataflow& flow, std::shared_ptr<const engine::Source<std::string>> src,
                           std::shared_ptr<const engine::Sink<std::string>> out, std::set<std::string> poison = {}) {
  auto lines = op::input("inp", flow, std::move(src));
  auto cmds = op::map("parse", lines, [poison = std::move(poison)](const std::string& line) {
    if (poison.count(line) != 0) throw std::runtime_error("poisoned item");
    const auto space = line.find(' ');
    if (space == std::string::npos) throw std::invalid_argument("no space in item");
    SumCommand c;
    c.key = line.substr(0, space);
    const std::string_view rest = std::string_view(line).substr(space + 1);
    if (rest == "del") {
      c.del = true;
      return c;
    }
    const auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), c.value);
    if (ec != std::errc() || p != rest.data() + rest.size()) {
      throw std::invalid_argument(fmt::format("not a number: '{}'", rest));
    }
    return c;
  });
  auto keyed = op::key_on("key", cmds, [](const SumCommand& c) { return c.key; });
  auto sums = op::stateful_map<SumState>(std::string(kSumStep), keyed,
                                         [](std::optional<SumState>& st, SumCommand&& c) -> std::string {
                                           if (c.del) {
                                             st.reset();
                                             return "del";
                                           }
                                           if (!st) st.emplace(0, 0);
                                           st->first += 1;
                                           st->second += c.value;
                                           return fmt::format("{} {}", st->first, st->second);
                                         });
  auto lines_out = op::map("format", sums, [](KV<std::string>&& kv) { return kv.first + " " + kv.second; });
  op::output("out", lines_out, std::move(out));
}

// Runs the keyed-sum flow over TestingSource partitions `parts` into `out`.
inline engine::RunStats run_sum(const engine::RunOptions& opts, const Parts& parts,
                                const std::shared_ptr<Collected<std::string>>& out, std::set<std::string> poison = {}) {
  engine::Dataflow flow{std::string(kSumFlow)};
  build_sum_flow(flow, std::make_shared<engine::TestingSource<std::string>>(parts),
                 std::make_shared<engine::TestingSink<std::string>>(out), std::move(poison));
  return engine::run(flow, opts);
}

// Deterministic keyed-sum items: `parts` partitions of `per_part` items; the
// keys of partition p are "pP-kJ" (J < keys_per_part), so all items of a key
// come from one partition and its output order is fixed. About one item in
// `del_every` is a "del" and one in `bad_every` a "bad" (0: none).
inline Parts sum_items(size_t parts, size_t per_part, size_t keys_per_part, uint32_t seed, size_t del_every = 0,
                       size_t bad_every = 0) {
  std::mt19937 rng(seed);
  Parts out(parts);
  for (size_t p = 0; p < parts; ++p) {
    for (size_t i = 0; i < per_part; ++i) {
      const std::string key = fmt::format("p{}-k{}", p, rng() % keys_per_part);
      const uint32_t roll = rng();
      if (bad_every != 0 && roll % bad_every == 0) {
        out[p].push_back(key + " bad");
      } else if (del_every != 0 && (roll / 7) % del_every == 0) {
        out[p].push_back(key + " del");
      } else {
        out[p].push_back(fmt::format("{} {}", key, static_cast<int64_t>(rng() % 2001) - 1000));
      }
    }
  }
  return out;
}

// The number of items of every partition (the offsets of a finished run).
inline std::vector<size_t> part_sizes(const Parts& parts) {
  std::vector<size_t> out;
  for (const auto& p : parts) out.push_back(p.size());
  return out;
}

// What the keyed-sum flow must produce from the first upto[p] items of every
// partition p (all items when `upto` is empty), computed by plain loops.
struct SumReference {
  std::map<std::string, SumState> state;                    // live keys only
  std::map<std::string, std::vector<std::string>> outputs;  // output lines per key, in order
  size_t output_count = 0;
  std::vector<std::pair<size_t, size_t>> bad;  // (partition, index) of every "bad" item
};

inline SumReference sum_reference(const Parts& parts, const std::vector<size_t>& upto = {}) {
  SumReference r;
  for (size_t p = 0; p < parts.size(); ++p) {
    const size_t n = upto.empty() ? parts[p].size() : std::min(upto.at(p), parts[p].size());
    for (size_t i = 0; i < n; ++i) {
      const std::string& line = parts[p][i];
      const std::string key = line.substr(0, line.find(' '));
      const std::string rest = line.substr(line.find(' ') + 1);
      if (rest == "bad") {
        r.bad.emplace_back(p, i);
        continue;
      }
      if (rest == "del") {
        r.state.erase(key);
        r.outputs[key].push_back(key + " del");
      } else {
        auto& [count, sum] = r.state[key];
        count += 1;
        sum += std::stoll(rest);
        r.outputs[key].push_back(fmt::format("{} {} {}", key, count, sum));
      }
      ++r.output_count;
    }
  }
  return r;
}

// Output lines grouped by their first word (the key), in arrival order per key.
inline std::map<std::string, std::vector<std::string>> by_first_word(const std::vector<std::string>& lines) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& l : lines) out[l.substr(0, l.find(' '))].push_back(l);
  return out;
}

// What a keyed-sum store holds at its committed epoch.
struct SumCommitted {
  std::optional<engine::CommitRecord> commit;
  std::vector<size_t> offsets;  // next item index of every TestingSource partition
  std::map<std::string, SumState> state;
  size_t sink_position = 0;  // TestingSink items the commit covers
  size_t staged = 0;         // immediate-mode staging keys ('T') still present
  std::optional<uint64_t> dead_letter_length;
};

inline SumCommitted read_sum_committed(const engine::Store& store, size_t parts) {
  SumCommitted c;
  const auto d = store.describe();
  c.commit = d.commit;
  for (size_t p = 0; p < parts; ++p) c.offsets.push_back(source_offset(d, "inp", fmt::format("part-{}", p)));
  c.state = read_state<SumState>(store, kSumStep);
  if (d.sink_positions.count("out") && d.sink_positions.at("out").count("collected")) {
    c.sink_position = engine::parse_stored_number(d.sink_positions.at("out").at("collected"), "the sink position");
  }
  c.staged = d.staged_writes;
  c.dead_letter_length = d.dead_letter_length;
  return c;
}

// Opens a keyed-sum state dir as a resumed run does (staged changes of the
// committed epoch folded in, later ones dropped), reads it and closes it.
inline SumCommitted reopen_sum_committed(const std::string& dir, size_t parts) {
  const auto store = engine::RocksStore::open(dir, sum_identity());
  return read_sum_committed(*store, parts);
}

// Checks that a keyed-sum store holds one consistent committed epoch: its
// state and sink position are exactly what the items before its source
// offsets produce, and no staged change is left over.
inline void expect_consistent(const SumCommitted& c, const Parts& parts) {
  EXPECT_EQ(c.staged, 0u) << "staged changes left after opening";
  if (!c.commit) {
    EXPECT_TRUE(c.state.empty()) << "state without a committed epoch";
    EXPECT_EQ(c.offsets, std::vector<size_t>(parts.size(), 0)) << "source offsets without a committed epoch";
    EXPECT_EQ(c.sink_position, 0u) << "sink position without a committed epoch";
    return;
  }
  const SumReference ref = sum_reference(parts, c.offsets);
  EXPECT_EQ(c.state, ref.state) << "state of epoch " << c.commit->epoch << " does not match its source offsets";
  EXPECT_EQ(c.sink_position, ref.output_count) << "sink position of epoch " << c.commit->epoch;
}

// Checks a finished keyed-sum run: the output (per key, in order) and the
// committed state equal the reference over all items, and every partition was
// read to its end.
inline void expect_finished(const std::vector<std::string>& output, const SumCommitted& c, const Parts& parts) {
  const SumReference ref = sum_reference(parts);
  EXPECT_EQ(output.size(), ref.output_count) << "output items (a duplicate or a loss)";
  EXPECT_EQ(by_first_word(output), ref.outputs);
  EXPECT_EQ(c.state, ref.state);
  EXPECT_EQ(c.offsets, part_sizes(parts));
  EXPECT_EQ(c.sink_position, ref.output_count);
  EXPECT_EQ(c.staged, 0u);
}

}  // namespace flow_testing
