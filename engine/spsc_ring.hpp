#pragma once
// Bounded single-producer/single-consumer ring of pointers.
//
// Thread safety: exactly one producer thread calls try_push, exactly one
// consumer thread calls try_pop; size_approx may be called from either.
//
// Invariants:
//  1. head_ (next slot to pop) is written only by the consumer, tail_ (next
//     slot to push) only by the producer; both only grow.
//  2. 0 <= tail_ - head_ <= capacity; slots in [head_, tail_) hold published items.
//  3. head_ and tail_ live on separate cache lines; each side caches the other's
//     index and re-reads it only when the cached value says full/empty.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/errors.hpp"

namespace engine {

inline constexpr size_t kCacheLine = 64;

template <class T>
class SpscRing {
 public:
  explicit SpscRing(size_t capacity) : mask_(round_up(capacity) - 1), slots_(new T*[mask_ + 1]) {}

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Producer side only. Returns false if the ring is full (caller keeps the item).
  bool try_push(T* item) noexcept {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ > mask_) return false;
    }
    slots_[tail & mask_] = item;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer side only. Returns nullptr if empty.
  T* try_pop() noexcept {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return nullptr;
    }
    T* item = slots_[head & mask_];
    head_.store(head + 1, std::memory_order_release);
    return item;
  }

  // Either side; exact only when the other side is quiescent.
  size_t size_approx() const noexcept {
    return static_cast<size_t>(tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire));
  }
  size_t capacity() const noexcept { return mask_ + 1; }

 private:
  static size_t round_up(size_t n) {
    ENGINE_CHECK(n >= 2, "ring capacity must be at least 2");
    size_t c = 1;
    while (c < n) c <<= 1;
    return c;
  }

  const uint64_t mask_;
  const std::unique_ptr<T*[]> slots_;
  alignas(kCacheLine) std::atomic<uint64_t> head_{0};
  uint64_t tail_cache_ = 0;  // consumer's view of tail_
  alignas(kCacheLine) std::atomic<uint64_t> tail_{0};
  uint64_t head_cache_ = 0;  // producer's view of head_
  char pad_[kCacheLine - sizeof(uint64_t)]{};
};

}  // namespace engine
