#pragma once
// StateTable: the map from key to state of a stateful step on one worker.
//
// Open addressing with linear probing over one array of slots. A slot holds
// the key's 64-bit stable hash (engine/hash.hpp, computed once per item by
// the exchange that routed it), the key and the value, so a lookup usually
// touches one or two adjacent cache lines instead of the bucket, the previous
// node and the node of std::unordered_map. The slot index is taken from the
// hash's top bits: the low bits choose the key group (hash % key_groups), so
// on one worker they are far from uniform.
//
// Owned by one worker; not thread-safe.
//
// Invariants:
//  1. capacity is a power of two >= kMinCapacity; size <= capacity * 3 / 4.
//  2. A slot is empty iff its tag is 0; tag = hash | 1, so no key has tag 0.
//  3. Every key sits at its home slot (tag >> shift) or after it, with no
//     empty slot in between (erase shifts later slots back to keep this).
//  4. Pointers to values are valid while moves() is unchanged: until an
//     insert that grows the table or an erase.

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace engine {

// Allocates large slot arrays on 2 MB boundaries and asks the kernel for
// transparent huge pages there: lookups land on random slots, and with 4 KB
// pages nearly each one would also miss the TLB.
template <class T>
struct SlotAllocator {
  using value_type = T;
  static constexpr size_t kHuge = size_t{2} << 20;

  SlotAllocator() = default;
  template <class U>
  SlotAllocator(const SlotAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHuge) return std::allocator<T>().allocate(n);
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (p == nullptr) throw std::bad_alloc();
    (void)::madvise(p, rounded, MADV_HUGEPAGE);  // only a hint: without THP the table still works
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) < kHuge) {
      std::allocator<T>().deallocate(p, n);
    } else {
      std::free(p);
    }
  }
  template <class U>
  bool operator==(const SlotAllocator<U>&) const noexcept {
    return true;
  }
};

template <class V>
class StateTable {
 public:
  StateTable() { reset(kMinCapacity); }

  size_t size() const { return size_; }
  // Counts the grows and erases, the only calls that move values (invariant 4).
  uint64_t moves() const { return moves_; }

  // The value of `key`, or nullptr.
  V* find(uint64_t hash, std::string_view key) {
    const uint64_t tag = hash | 1;
    for (size_t i = home(tag);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.tag == tag && s.key == key) return &s.value;
      if (s.tag == 0) return nullptr;
    }
  }

  // The value of `key`, default-constructed if the key is new; second is true if it was inserted.
  std::pair<V*, bool> try_emplace(uint64_t hash, std::string_view key) {
    if (V* v = find(hash, key)) return {v, false};
    if ((size_ + 1) * 4 > capacity() * 3) grow();
    Slot& s = free_slot(hash | 1);
    s.key.assign(key);
    ++size_;
    return {&s.value, true};
  }

  // Removes `key` if present; returns whether it was.
  bool erase(uint64_t hash, std::string_view key) {
    const uint64_t tag = hash | 1;
    size_t i = home(tag);
    for (;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.tag == 0) return false;
      if (s.tag == tag && s.key == key) break;
    }
    // Backward-shift deletion: move later keys of the run into the hole when
    // the hole lies between their home slot and their slot.
    size_t hole = i;
    for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      Slot& s = slots_[j];
      if (s.tag == 0) break;
      const size_t h = home(s.tag);
      const bool movable = hole <= j ? (h <= hole || h > j) : (h <= hole && h > j);
      if (!movable) continue;
      slots_[hole] = std::move(s);
      hole = j;
    }
    clear_slot(slots_[hole]);
    --size_;
    ++moves_;
    return true;
  }

 private:
  static constexpr size_t kMinCapacity = 16;

  struct Slot {
    uint64_t tag = 0;
    std::string key;
    V value{};
  };

  size_t capacity() const { return mask_ + 1; }
  size_t home(uint64_t tag) const { return static_cast<size_t>(tag >> shift_); }

  void reset(size_t capacity) {
    slots_ = std::vector<Slot, SlotAllocator<Slot>>(capacity);
    mask_ = capacity - 1;
    shift_ = 64;
    for (size_t c = capacity; c > 1; c >>= 1) --shift_;
  }

  // The first empty slot of `tag`'s probe sequence, tagged. The key must be absent.
  Slot& free_slot(uint64_t tag) {
    size_t i = home(tag);
    while (slots_[i].tag != 0) i = (i + 1) & mask_;
    slots_[i].tag = tag;
    return slots_[i];
  }

  static void clear_slot(Slot& s) {
    s.tag = 0;
    s.key = std::string();
    s.value = V{};
  }

  void grow() {
    ++moves_;
    std::vector<Slot, SlotAllocator<Slot>> old = std::move(slots_);
    reset(old.size() * 2);
    for (Slot& s : old) {
      if (s.tag == 0) continue;
      Slot& d = free_slot(s.tag);
      d.key = std::move(s.key);
      d.value = std::move(s.value);
    }
  }

  std::vector<Slot, SlotAllocator<Slot>> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
  uint64_t moves_ = 0;
};

}  // namespace engine
