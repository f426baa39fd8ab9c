#include "engine/runtime.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>

#include <cmath>
#include <cstdio>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/append_file.hpp"
#include "engine/errors.hpp"
#include "engine/io_check.hpp"
#include "engine/run_shared.hpp"
#include "engine/store.hpp"
#include "engine/worker.hpp"

namespace engine {

std::string RunOptions::validate() const {
  if (workers < 1 || workers > 256) return fmt::format("-w/--workers must be between 1 and 256, got {}", workers);
  if (!std::isfinite(snapshot_interval) || snapshot_interval < 0) {
    return fmt::format("-s/--snapshot-interval must be a number of seconds >= 0, got {}", snapshot_interval);
  }
  if (key_groups < 1 || key_groups > (1u << 20)) return "key groups must be between 1 and 1048576";
  if (on_error == ErrorPolicy::kDeadLetter && dead_letter_path.empty()) {
    return "--on-error dead-letter:PATH needs a PATH";
  }
  if (!backup_dir.empty() && state_dir.empty() && store == nullptr) return "-b/--backup needs -d/--local-state-dir";
  if (snapshot_mode == SnapshotMode::kImmediate && state_dir.empty() && store == nullptr) {
    return "--snapshot-mode needs -d/--local-state-dir";
  }
  if (batch_size < 1 || source_batch < 1 || ring_capacity < 2) return "batch sizes must be positive";
  return "";
}

std::string parse_error_policy(const std::string& text, RunOptions& opts) {
  if (text == "fail") {
    opts.on_error = ErrorPolicy::kFail;
  } else if (text == "skip") {
    opts.on_error = ErrorPolicy::kSkip;
  } else if (text.rfind("dead-letter:", 0) == 0 && text.size() > 12) {
    opts.on_error = ErrorPolicy::kDeadLetter;
    opts.dead_letter_path = text.substr(12);
  } else {
    return fmt::format("--on-error must be fail, skip or dead-letter:PATH, got '{}'", text);
  }
  return "";
}

namespace {

// Finds, for each exchange, what feeds it without crossing another exchange.
void compute_exchange_inputs(RunShared& sh) {
  const auto& steps = sh.flow.steps();
  sh.exchange_of_step.assign(steps.size(), -1);
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].role != StepRole::kExchange) continue;
    sh.exchange_of_step[i] = static_cast<int>(sh.exchange_steps.size());
    sh.exchange_steps.push_back(static_cast<int>(i));
  }
  for (int step : sh.exchange_steps) {
    bool after_sources = false;
    std::vector<int> after;
    std::vector<int> stack;
    std::vector<bool> seen(steps.size(), false);
    for (const auto& e : steps[step].inputs) stack.push_back(e.step);
    while (!stack.empty()) {
      const int s = stack.back();
      stack.pop_back();
      if (seen[s]) continue;
      seen[s] = true;
      if (steps[s].role == StepRole::kInput) {
        after_sources = true;
      } else if (steps[s].role == StepRole::kExchange) {
        after.push_back(sh.exchange_of_step[s]);
      } else {
        for (const auto& e : steps[s].inputs) stack.push_back(e.step);
      }
    }
    sh.exchange_after_sources.push_back(after_sources);
    sh.exchange_after.push_back(std::move(after));
  }
  sh.exchange_segment.resize(sh.exchange_steps.size());
  std::vector<bool> behind_sources(steps.size(), false);
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].role == StepRole::kInput) behind_sources[i] = true;
    if (steps[i].role == StepRole::kExchange || steps[i].role == StepRole::kInput) continue;
    for (const auto& e : steps[i].inputs) {
      const int x = sh.exchange_of_step[static_cast<size_t>(e.step)];
      if (x >= 0) sh.exchange_segment[static_cast<size_t>(x)].push_back(static_cast<int>(i));
      if (behind_sources[static_cast<size_t>(e.step)]) behind_sources[i] = true;
    }
    if (behind_sources[i]) sh.source_segment.push_back(static_cast<int>(i));
  }
}

// How many source partitions a worker keeps open per input step: what the
// file-descriptor limit leaves after the store and outputs, shared by every
// worker and input step, at most kMaxOpenParts.
size_t open_parts_per_input(const Dataflow& flow, uint32_t workers) {
  constexpr size_t kMaxOpenParts = 16;
  constexpr size_t kReservedFds = 96;  // RocksDB, outputs, std streams
  size_t inputs = 0;
  for (const auto& s : flow.steps()) inputs += s.role == StepRole::kInput ? 1 : 0;
  rlimit lim{};
  size_t fds = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) fds = static_cast<size_t>(lim.rlim_cur);
  const size_t budget = fds > kReservedFds ? (fds - kReservedFds) / 2 : 1;
  return std::clamp<size_t>(budget / std::max<size_t>(1, inputs * workers), 1, kMaxOpenParts);
}

// Turns SIGINT/SIGTERM into a graceful stop while a run is active. The signals
// are blocked in every thread and taken by sigwait on a dedicated thread.
class SignalGuard {
 public:
  explicit SignalGuard(RunShared& sh) : sh_(sh) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
    thread_ = std::thread([this, set] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGUSR2) {
          if (done_.load()) return;  // run finished
          continue;                  // not ours
        }
        if (sh_.stop.exchange(true)) std::_Exit(128 + sig);  // second signal: give up at once
        sh_.stop_signal.store(sig);
        spdlog::warn("{}: stopping after the current epoch (again to abort)", sig == SIGINT ? "SIGINT" : "SIGTERM");
        sh_.wake_all();
        sh_.coordinator.wake_waiters();
      }
    });
  }
  ~SignalGuard() {
    done_.store(true);
    pthread_kill(thread_.native_handle(), SIGUSR2);
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  RunShared& sh_;
  sigset_t old_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Calls opts.on_progress about once a second while the run is going (the
// command line draws its live status line with it).
class ProgressTicker {
 public:
  ProgressTicker(RunShared& sh, const std::vector<std::unique_ptr<Worker>>& workers) : sh_(sh), workers_(workers) {
    thread_ = std::thread([this] { loop(); });
  }
  ~ProgressTicker() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!cv_.wait_for(lk, std::chrono::seconds(1), [this] { return done_; })) {
      RunProgress p;
      for (const auto& w : workers_) {
        p.items_in += w->context().items_in();
        p.items_out += w->context().items_out();
      }
      p.committed_epoch = sh_.coordinator.committed();
      p.recovery = sh_.store != nullptr;
      sh_.opts.on_progress(p);
    }
  }

  RunShared& sh_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

RunStats run(const Dataflow& flow, const RunOptions& opts) {
  using Clock = std::chrono::steady_clock;
  if (auto err = opts.validate(); !err.empty()) throw ConfigError(err);
  flow.validate();

  RunShared sh(flow, opts);
  sh.start = Clock::now();
  sh.workers = opts.workers;
  compute_exchange_inputs(sh);
  const auto& steps = flow.steps();
  // Nothing is created or written before every check has passed.
  std::vector<StepFootprint> footprints;
  sh.parts.resize(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!steps[i].list_parts) continue;
    if (steps[i].footprint) {
      footprints.push_back(StepFootprint{steps[i].id, steps[i].role == StepRole::kOutput, steps[i].footprint()});
    }
    sh.parts[i] = steps[i].list_parts();
    if (sh.parts[i].empty()) {
      throw ConfigError(fmt::format("step '{}' ({}) has no partitions", steps[i].id, steps[i].kind));
    }
  }
  check_outputs(footprints, opts);
  sh.open_parts_per_input = open_parts_per_input(flow, opts.workers);

  // Signals are taken from here on, before the store starts RocksDB's
  // background threads: a thread created earlier would not have them blocked
  // and SIGTERM would kill the process instead of stopping it.
  sh.parkers = std::make_unique<Parker[]>(sh.workers);
  sh.exhausted_at = std::make_unique<std::atomic<uint64_t>[]>(sh.workers);
  for (uint32_t w = 0; w < sh.workers; ++w) sh.exhausted_at[w].store(~uint64_t{0});
  SignalGuard signals(sh);

  RunStats stats;
  std::unique_ptr<RocksStore> owned_store;
  if (opts.store != nullptr) {
    sh.store = opts.store;
    check_resumed_io(footprints, *sh.store, opts);
  } else if (!opts.state_dir.empty()) {
    StoreIdentity identity{flow.name(), flow.stateful_step_ids(), opts.key_groups,
                           [&](const Store& committed) { check_resumed_io(footprints, committed, opts); }};
    owned_store = RocksStore::open(opts.state_dir, identity, opts.backup_dir);
    sh.store = owned_store.get();
  }
  sh.key_groups = opts.key_groups;
  if (sh.store != nullptr) {
    sh.key_groups = sh.store->key_groups();
    if (const auto c = sh.store->committed()) {
      sh.restoring = true;
      sh.first_epoch = c->epoch + 1;
      stats.resumed = true;
      if (c->workers != opts.workers) {
        spdlog::info("rescaling: state of epoch {} was written by {} workers, now {}", c->epoch, c->workers,
                     opts.workers);
      }
    }
  }
  if (sh.store != nullptr) sh.coordinator.set_first_commit_writes(io_identity_writes(footprints));
  stats.open_seconds = std::chrono::duration<double>(Clock::now() - sh.start).count();
  stats.first_epoch = sh.first_epoch;

  for (const auto& step : steps) {
    if (step.prepare) step.prepare();
  }
  if (opts.on_error == ErrorPolicy::kDeadLetter) {
    uint64_t keep = 0;
    if (sh.restoring) {
      if (auto v = sh.store->get(keys::kDeadLetter)) keep = parse_stored_number(*v, "the dead-letter file length");
    }
    sh.coordinator.set_dead_letters(std::make_unique<AppendFile>(opts.dead_letter_path, keep, "dead-letter file"));
  }

  const size_t rings = sh.exchange_steps.size() * sh.workers * sh.workers;
  for (size_t i = 0; i < rings; ++i) sh.rings.push_back(std::make_unique<SpscRing<Batch>>(opts.ring_capacity));

  sh.coordinator.start(sh.first_epoch, /*async=*/sh.store != nullptr);
  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t w = 0; w < sh.workers; ++w) workers.push_back(std::make_unique<Worker>(sh, w));
  {
    std::optional<ProgressTicker> ticker;
    if (opts.on_progress) ticker.emplace(sh, workers);
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
    for (auto& t : threads) t.join();
    sh.coordinator.drain();
  }
  for (auto& w : workers) {
    stats.items_in += w->context().items_in();
    stats.items_out += w->context().items_out();
  }
  // Batches left in rings after a failed run.
  for (auto& r : sh.rings) {
    while (Batch* b = r->try_pop()) delete b;
  }
  sh.warnings.summarise();
  stats.seconds = std::chrono::duration<double>(Clock::now() - sh.start).count();
  const int64_t first = sh.first_output_ns.load();
  stats.first_item_seconds = first < 0 ? -1 : static_cast<double>(first) / 1e9;
  stats.committed_epoch = sh.coordinator.committed();
  const auto cs = sh.coordinator.commit_stats();
  stats.commits = cs.commits;
  stats.epochs_committed = cs.epochs;
  stats.commit_p50_seconds = cs.p50_seconds;
  stats.commit_p99_seconds = cs.p99_seconds;
  stats.commit_max_seconds = cs.max_seconds;
  stats.keys_in_memory = sh.keys_in_memory;
  if (sh.interrupted.load()) stats.interrupted_by = sh.stop_signal.load();
  if (sh.coordinator.failed()) std::rethrow_exception(sh.coordinator.error());
  sh.coordinator.finish();
  return stats;
}

}  // namespace engine
