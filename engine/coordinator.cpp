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
  reported_.assign(shared_.workers, first_epoch - 1);
  first_done_.assign(shared_.workers, kNever);
  if (async) committer_ = std::thread([this] { commit_loop(); });
}

void Coordinator::report(uint32_t worker, EpochWriter&& w) {
  std::unique_lock<std::mutex> lk(mu_);
  ENGINE_CHECK(w.epoch == reported_[worker] + 1, "epochs must be reported in order");
  if (!w.writes.empty() || !w.dead_letters.empty() || !w.syncs.empty()) {
    Pending& p = pending_[w.epoch];
    if (shared_.store != nullptr) {
      p.bytes += w.writes.bytes();
      p.writes.append(std::move(w.writes));
    }
    if (!w.dead_letters.empty()) p.dead_letters[worker] = std::move(w.dead_letters);
    for (auto& [partition, sync] : w.syncs) p.syncs[partition] = std::move(sync);
  }
  if (w.inputs_done) first_done_[worker] = std::min(first_done_[worker], w.epoch);
  reported(worker, w.epoch, lk);
}

void Coordinator::report_empty(uint32_t worker, uint64_t epoch) {
  std::unique_lock<std::mutex> lk(mu_);
  ENGINE_CHECK(epoch > reported_[worker], "epochs must be reported in order");
  reported(worker, epoch, lk);
}

void Coordinator::reported(uint32_t worker, uint64_t epoch, std::unique_lock<std::mutex>& lk) {
  // Only the worker that held the lowest report can move `completed` on;
  // the next move needs a report from it again, so moves never overlap.
  const uint64_t before = completed_.load();
  const bool was_lowest = reported_[worker] == before;
  reported_[worker] = epoch;
  if (!was_lowest) return;
  const uint64_t now = *std::min_element(reported_.begin(), reported_.end());
  if (now == before) return;
  // The final epoch: the first in which every worker's inputs were done
  // (once done, a worker's inputs stay done).
  if (final_.load() == kNever) {
    const uint64_t last = *std::max_element(first_done_.begin(), first_done_.end());
    if (last <= now) {
      // Known now, before the commit: every worker stops after the tail epoch.
      final_.store(last, std::memory_order_release);
      room_cv_.notify_all();
      shared_.wake_all();
    }
  }
  std::vector<std::pair<uint64_t, Pending>> complete;
  while (!pending_.empty() && pending_.begin()->first <= now) {
    auto node = pending_.extract(pending_.begin());
    Pending& p = node.mapped();
    for (auto& [worker_index, lines] : p.dead_letters) {
      for (auto& line : lines) p.dead_letter_lines.push_back(std::move(line));
    }
    p.dead_letters.clear();
    complete.emplace_back(node.key(), std::move(p));
  }
  completed_.store(now, std::memory_order_release);
  if (tail_waiters_.load() > 0) shared_.wake_all();
  if (committer_.joinable()) {
    for (auto& [e, p] : complete) {
      pending_bytes_.fetch_add(p.bytes);
      ready_.emplace(e, std::move(p));
    }
    lk.unlock();
    ready_cv_.notify_one();
    return;
  }
  // No store: nothing waits for a disk, the epochs are committed here, as
  // one group. Groups from several workers commit one after the other, in
  // order: the worker that finds none committing commits every queued one.
  Inline next;
  next.last = std::min(now, final_.load());
  for (auto& [e, p] : complete) {
    if (e <= next.last) {
      merge(next.group, std::move(p));
    } else {
      next.tails.push_back(std::move(p));
    }
  }
  inline_.push_back(std::move(next));
  if (inline_busy_) return;
  inline_busy_ = true;
  try {
    while (!inline_.empty()) {
      Inline g = std::move(inline_.front());
      inline_.pop_front();
      lk.unlock();
      if (g.last > committed_.load()) commit(g.last, g.group);
      for (auto& p : g.tails) finish_tail(p);
      lk.lock();
    }
  } catch (...) {
    if (!lk.owns_lock()) lk.lock();
    inline_busy_ = false;
    throw;
  }
  inline_busy_ = false;
}

void Coordinator::merge(Pending& group, Pending&& next) {
  group.writes.append(std::move(next.writes));
  group.bytes += next.bytes;
  for (auto& line : next.dead_letter_lines) group.dead_letter_lines.push_back(std::move(line));
  for (auto& [partition, sync] : next.syncs) group.syncs[partition] = std::move(sync);
}

void Coordinator::commit_loop() noexcept {
  for (;;) {
    std::unique_lock<std::mutex> lk(mu_);
    // Epochs up to `upto` commit as one group: the complete ones, not past
    // the final epoch, before a failed one (nothing from the failed epoch on
    // commits), at most max_epochs_per_commit of them.
    const auto upto = [&] {
      uint64_t last = std::min({completed_.load(), final_.load(), fail_epoch_.load() - 1});
      const uint64_t most = shared_.opts.max_epochs_per_commit;
      if (most != 0) last = std::min(last, committed_.load() + most);
      return last;
    };
    // Complete epochs past the final one (the tail) or at or past a failed one.
    const auto beyond = [&] {
      return !ready_.empty() && ready_.begin()->first > std::min(final_.load(), fail_epoch_.load() - 1);
    };
    ready_cv_.wait(lk, [&] { return upto() > committed_.load() || beyond() || draining_; });
    if (upto() > committed_.load()) {
      const uint64_t last = upto();
      Pending group;
      while (!ready_.empty() && ready_.begin()->first <= last) {
        auto node = ready_.extract(ready_.begin());
        merge(group, std::move(node.mapped()));
      }
      lk.unlock();
      const uint64_t bytes = group.bytes;
      const uint64_t first = committed_.load() + 1;
      try {
        commit(last, group);
      } catch (...) {
        fail(first, std::current_exception());  // nothing of the group commits, nor anything later
      }
      pending_bytes_.fetch_sub(bytes);
      room_cv_.notify_all();
      shared_.wake_all();  // workers whose sources waited for room
      continue;
    }
    if (beyond()) {
      auto node = ready_.extract(ready_.begin());
      lk.unlock();
      pending_bytes_.fetch_sub(node.mapped().bytes);
      if (node.key() < fail_epoch_.load()) {
        try {
          finish_tail(node.mapped());
        } catch (...) {
          fail(node.key(), std::current_exception());
        }
      }
      continue;
    }
    return;  // draining and nothing left
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
    if (store != nullptr) p.writes.add(keys::kDeadLetter, std::to_string(dead_letters_->length()));
  }
  if (store != nullptr) {
    for (const auto& [key, value] : first_writes_) p.writes.add(key, value);
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
