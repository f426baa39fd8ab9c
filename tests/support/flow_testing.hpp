#pragma once
// Shared helpers for the in-process tests (tests/*_test.cpp): temporary
// directories, directory fingerprints, running a flow built by a function,
// grouping keyed output, reading a state dir, and FaultInjectingStore.
//
// Reference results in tests are always computed by plain code in the test,
// never by the engine; these helpers only move data around.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "connectors/testing.hpp"
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

// A fresh directory under ::testing::TempDir(), removed (recursively) when destroyed.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::path(::testing::TempDir()) / "engine_test_XXXXXX").string();
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

// "S step \0": the prefix of every state key of one stateful step.
inline std::string state_step_prefix(std::string_view step) {
  std::string p = "S";
  p.append(step);
  p.push_back('\0');
  return p;
}

// The committed state of stateful step `step`: user key -> decoded state.
// Fails the test (ADD_FAILURE) on a key stored in the wrong key group.
template <class S>
std::map<std::string, S> read_state(const engine::Store& store, std::string_view step) {
  const std::string prefix = state_step_prefix(step);
  std::map<std::string, S> out;
  store.scan(prefix, [&](std::string_view k, std::string_view v) {
    const std::string user_key(k.substr(prefix.size() + 4));
    uint32_t kg = 0;
    for (char c : k.substr(prefix.size(), 4)) kg = (kg << 8) | static_cast<uint8_t>(c);
    if (kg != engine::key_group_of(user_key, store.key_groups())) {
      ADD_FAILURE() << "key '" << user_key << "' stored in key group " << kg;
    }
    out.emplace(user_key, engine::decode_value<S>(v));
  });
  return out;
}

// The committed resume state of a TestingSource partition: the next item index.
inline size_t source_offset(const engine::Store& store, std::string_view step, std::string_view part) {
  const auto v = store.get(engine::keys::source(step, part));
  return v ? static_cast<size_t>(std::stoull(*v)) : 0;
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
  };

  FaultInjectingStore(std::unique_ptr<engine::RocksStore> inner, Plan plan)
      : inner_(std::move(inner)), plan_(plan) {}

  std::optional<engine::CommitRecord> committed() const override { return inner_->committed(); }
  uint32_t key_groups() const override { return inner_->key_groups(); }
  std::optional<std::string> get(std::string_view key) const override { return inner_->get(key); }
  void scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& visit) const override {
    inner_->scan(prefix, visit);
  }

  void write(rocksdb::WriteBatch& batch) override {
    const uint64_t n = ++writes_;
    if (n != plan_.fail_write) return inner_->write(batch);
    fired_ = true;
    if (plan_.when == When::kAfter) inner_->write(batch);
    throw engine::StateError(fmt::format("injected fault on write #{}", n));
  }

  void commit(rocksdb::WriteBatch& batch, const engine::CommitRecord& record) override {
    const uint64_t n = ++commits_;
    if (n != plan_.fail_commit) return inner_->commit(batch, record);
    fired_ = true;
    if (plan_.when == When::kAfter) inner_->commit(batch, record);
    throw engine::StateError(fmt::format("injected fault on commit #{} (epoch {})", n, record.epoch));
  }

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
};

}  // namespace flow_testing
