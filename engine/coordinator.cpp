#include "engine/coordinator.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/errors.hpp"
#include "engine/run_shared.hpp"
#include "engine/store.hpp"

namespace engine {

namespace {
double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }
}  // namespace

Coordinator::~Coordinator() {
  if (committer_.joinable()) drain();
}

void Coordinator::start(uint64_t first_epoch, bool async) {
  committed_.store(first_epoch - 1);
  completed_.store(first_epoch - 1);
  if (async) committer_ = std::thread([this] { commit_loop(); });
}

void Coordinator::report(uint32_t worker, EpochWriter&& w, bool inputs_done) {
  std::unique_lock<std::mutex> lk(mu_);
  Pending& p = pending_[w.epoch];
  if (shared_.store != nullptr) {
    for (const auto& [key, value] : w.writes) p.bytes += key.size() + (value ? value->size() : 0);
    if (p.writes.empty()) {
      p.writes = std::move(w.writes);
    } else {
      p.writes.insert(p.writes.end(), std::make_move_iterator(w.writes.begin()),
                      std::make_move_iterator(w.writes.end()));
    }
  }
  if (!w.dead_letters.empty()) p.dead_letters[worker] = std::move(w.dead_letters);
  for (auto& [partition, sync] : w.syncs) p.syncs[partition] = std::move(sync);
  p.all_done = p.all_done && inputs_done;
  if (++p.reported < shared_.workers) return;
  Pending done = std::move(p);
  pending_.erase(w.epoch);
  for (auto& [worker_index, lines] : done.dead_letters) {
    for (auto& line : lines) done.dead_letter_lines.push_back(std::move(line));
  }
  done.dead_letters.clear();
  const bool tail = final_.load() != kNever && w.epoch > final_.load();
  if (done.all_done && !tail) {
    // Known now, before the commit: every worker stops after the tail epoch.
    final_.store(w.epoch, std::memory_order_release);
    room_cv_.notify_all();
    shared_.wake_all();
  }
  completed_.store(w.epoch, std::memory_order_release);
  if (tail_waiters_.load() > 0) shared_.wake_all();
  if (committer_.joinable()) {
    pending_bytes_.fetch_add(done.bytes);
    ready_.emplace(w.epoch, std::move(done));
    lk.unlock();
    ready_cv_.notify_one();
    return;
  }
  lk.unlock();
  if (tail) {
    finish_tail(done);
  } else {
    commit(w.epoch, done);
  }
}

void Coordinator::merge(Pending& group, Pending&& next) {
  group.writes.insert(group.writes.end(), std::make_move_iterator(next.writes.begin()),
                      std::make_move_iterator(next.writes.end()));
  group.bytes += next.bytes;
  for (auto& line : next.dead_letter_lines) group.dead_letter_lines.push_back(std::move(line));
  for (auto& [partition, sync] : next.syncs) group.syncs[partition] = std::move(sync);
}

void Coordinator::commit_loop() noexcept {
  for (;;) {
    std::unique_lock<std::mutex> lk(mu_);
    ready_cv_.wait(lk, [&] { return !ready_.empty() || draining_; });
    if (ready_.empty()) return;  // draining and nothing left
    auto node = ready_.extract(ready_.begin());
    uint64_t last = node.key();
    Pending& group = node.mapped();
    const uint64_t group_bytes = group.bytes;
    // Epochs before a failed one are complete on every worker and commit;
    // nothing from the failed epoch on does.
    if (last >= fail_epoch_.load()) {
      pending_bytes_.fetch_sub(group_bytes);
      continue;
    }
    if (last > final_.load()) {
      lk.unlock();
      pending_bytes_.fetch_sub(group_bytes);
      try {
        finish_tail(group);
      } catch (...) {
        fail(last, std::current_exception());
      }
      continue;
    }
    // Group commit: every next epoch that is complete too joins this commit.
    const uint64_t most = shared_.opts.max_epochs_per_commit;
    const uint64_t first = last;
    while (!ready_.empty() && ready_.begin()->first == last + 1 && last + 1 < fail_epoch_.load() &&
           last + 1 <= final_.load() && (most == 0 || last + 1 - first < most)) {
      auto next = ready_.extract(ready_.begin());
      merge(group, std::move(next.mapped()));
      last = next.key();
    }
    lk.unlock();
    const uint64_t bytes = group.bytes;
    try {
      commit(last, group);
    } catch (...) {
      fail(last, std::current_exception());
    }
    pending_bytes_.fetch_sub(bytes);
    room_cv_.notify_all();
    shared_.wake_all();  // workers whose sources waited for room
  }
}

void Coordinator::drain() {
  if (!committer_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    draining_ = true;
  }
  ready_cv_.notify_one();
  committer_.join();
}

bool Coordinator::has_room(uint64_t epoch) const {
  if (!committer_.joinable()) return true;
  if (epoch > committed_.load() + kMaxEpochsInFlight) return false;
  return pending_bytes_.load() <= kMaxPendingBytes || epoch <= completed_.load() + 1;
}

void Coordinator::wait_for_room(uint64_t epoch) {
  if (has_room(epoch)) return;
  std::unique_lock<std::mutex> lk(mu_);
  room_cv_.wait(lk, [&] { return has_room(epoch) || should_exit(epoch) || failed() || shared_.stop.load(); });
}

void Coordinator::wake_waiters() {
  {
    std::lock_guard<std::mutex> lk(mu_);  // pairs with wait_for_room
  }
  room_cv_.notify_all();
}

void Coordinator::commit(uint64_t epoch, Pending& p) {
  std::lock_guard<std::mutex> g(commit_mu_);
  ENGINE_CHECK(committed_.load() < epoch, "epochs must commit in order");
  const auto started = std::chrono::steady_clock::now();
  Store* store = shared_.store;
  for (const auto& [partition, sync] : p.syncs) sync();
  if (dead_letters_) {
    append_dead_letters(p, store != nullptr);
    if (store != nullptr)
      p.writes.emplace_back(std::string(keys::kDeadLetter), std::to_string(dead_letters_->length()));
  }
  if (store != nullptr) {
    for (auto& [key, value] : first_writes_) p.writes.emplace_back(std::move(key), std::move(value));
    first_writes_.clear();
    store->commit(std::move(p.writes), CommitRecord{epoch, shared_.workers, shared_.key_groups, unix_now()});
    if (shared_.opts.snapshot_mode == SnapshotMode::kImmediate) store->fold_staged(epoch);
    const double now = unix_now();
    if (!shared_.opts.backup_dir.empty() && now - last_backup_ >= std::max(1.0, shared_.opts.snapshot_interval)) {
      store->backup(shared_.opts.backup_dir);
      last_backup_ = now;
    }
  }
  if (store != nullptr) {
    commit_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    epochs_committed_ += epoch - committed_.load();
  }
  {
    // Under mu_ so that a worker in wait_for_room cannot miss the change.
    std::lock_guard<std::mutex> lk(mu_);
    committed_.store(epoch);
  }
}

Coordinator::CommitStats Coordinator::commit_stats() const {
  std::lock_guard<std::mutex> g(commit_mu_);
  CommitStats st;
  st.commits = commit_seconds_.size();
  st.epochs = epochs_committed_;
  if (commit_seconds_.empty()) return st;
  auto sorted = commit_seconds_;
  std::sort(sorted.begin(), sorted.end());
  const auto at = [&](double q) { return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()))]; };
  st.p50_seconds = at(0.5);
  st.p99_seconds = at(0.99);
  st.max_seconds = sorted.back();
  return st;
}

void Coordinator::append_dead_letters(const Pending& p, bool durable) {
  std::string buf;
  for (const auto& l : p.dead_letter_lines) {
    buf += l;
    buf += '\n';
  }
  if (buf.empty()) return;
  dead_letters_->append(buf.data(), buf.size());
  if (durable) dead_letters_->sync();
}

void Coordinator::finish_tail(Pending& p) {
  std::lock_guard<std::mutex> g(commit_mu_);
  if (dead_letters_) append_dead_letters(p, false);
}

void Coordinator::fail(uint64_t epoch, std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lk(error_mu_);
    if (!error_) error_ = std::move(error);
  }
  uint64_t cur = fail_epoch_.load();
  while (epoch < cur && !fail_epoch_.compare_exchange_weak(cur, epoch)) {
  }
  {
    std::lock_guard<std::mutex> lk(mu_);  // pairs with wait_for_room
  }
  room_cv_.notify_all();
  shared_.wake_all();
}

std::exception_ptr Coordinator::error() const {
  std::lock_guard<std::mutex> lk(error_mu_);
  return error_;
}

void Coordinator::finish() {
  if (shared_.store != nullptr && !shared_.opts.backup_dir.empty() && committed_.load() > 0) {
    shared_.store->backup(shared_.opts.backup_dir);
  }
}

}  // namespace engine
