#pragma once
// Parker: lets an idle worker sleep until another thread has work for it.
//
// Thread safety: park() is called by the owning worker only; wake() by any
// thread (a peer that pushed into the worker's ring, the coordinator, the
// signal thread).
//
// Invariants:
//  1. Only the owner writes `sleeping_`: true before its last look for work,
//     false after it woke.
//  2. A waker publishes its work (a ring push, a flag) before wake(). The
//     seq_cst fence in wake() and the one after sleeping_ = true order the
//     two sides (Dekker): either the sleeper's last look sees the work, or
//     the waker sees sleeping_ and bumps seq_.
//  3. seq_ only grows, under mu_. The owner reads it before setting
//     sleeping_ and waits for it to change, so a wake between its last look
//     and its wait is not lost.
//  4. A sleep lasts at most the timeout given to park(), so a wake-up missed
//     anyway (ThreadSanitizer does not model the fences) only delays.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace engine {

class Parker {
 public:
  // Owner only: sleeps up to `timeout` unless `has_work()` (called once,
  // after the worker announced that it is going to sleep) finds work.
  template <class HasWork>
  void park(HasWork&& has_work, std::chrono::milliseconds timeout) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lk(mu_);
      seen = seq_;
    }
    sleeping_.store(true);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!has_work()) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_for(lk, timeout, [&] { return seq_ != seen; });
    }
    sleeping_.store(false);
  }

  // Any thread, after publishing work for the owner. Cheap when it is awake.
  void wake() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!sleeping_.load(std::memory_order_relaxed)) return;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++seq_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> sleeping_{false};
  uint64_t seq_ = 0;  // guarded by mu_
};

}  // namespace engine
