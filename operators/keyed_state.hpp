#pragma once
// KeyedState<S>: the per-worker state of a stateful step, the core that
// stateful_map, windows and joins share. It holds the state of the keys this
// worker owns in a StateTable keyed by the hash the key exchange computed for
// routing, and:
//  - restores lazily: a key group's committed state is read from the store
//    the first time one of its keys is seen, so a resume starts at once
//    however much state is stored;
//  - tracks the keys changed in the current epoch (with recovery on) and
//    writes them at the end of the epoch (or when staged), in store key order;
//  - deletes a discarded key (state set to nullopt) from memory and, if it
//    was ever stored, from the store in the same epoch: no empty shells.
//
// Owned by one worker; not thread-safe.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/codec.hpp"
#include "engine/hash.hpp"
#include "engine/state_table.hpp"
#include "engine/worker_context.hpp"

namespace engine::op::detail {

template <class S>
class KeyedState {
 public:
  struct Entry {
    std::optional<S> state;
    bool dirty = false;   // changed in this epoch (recovery on)
    bool stored = false;  // the store holds a committed or staged value for the key
  };

  KeyedState(WorkerContext& ctx, const std::string& step) : ctx_(ctx), step_(step), track_(ctx.recovery()) {
    if (ctx.restoring()) loaded_.assign(ctx.key_groups(), false);
  }

  // The entry of `key` (hash: stable_hash(key)), loading its key group on
  // first sight; a new key gets an entry with no state. Valid until the next
  // changed() or find_or_add().
  Entry& find_or_add(uint64_t hash, const std::string& key) {
    Entry* e = states_.find(hash, key);
    if (e != nullptr) return *e;
    if (!loaded_.empty()) {
      const uint32_t kg = group_of_hash(hash, ctx_.key_groups());
      if (!loaded_[kg]) {
        load(kg);
        e = states_.find(hash, key);
        if (e != nullptr) return *e;
      }
    }
    return *states_.try_emplace(hash, key).first;
  }

  // After the state of `e` (the entry of key) may have changed: remembers the
  // key for the snapshot, or drops a discarded state at once when there are
  // no snapshots. Every reference into the table is invalid after.
  void changed(Entry& e, uint64_t hash, const std::string& key) {
    if (track_) {
      if (!e.dirty) {
        e.dirty = true;
        dirty_.push_back(Dirty{hash, dirty_keys_.size(), &e, states_.moves(), static_cast<uint32_t>(key.size()),
                               group_of_hash(hash, ctx_.key_groups())});
        dirty_keys_.append(key);
      }
    } else if (!e.state) {
      states_.erase(hash, key);
    }
  }

  // Writes the keys changed since the last call in store key order (key
  // group, then key), so a commit's sort gets sorted input. A discarded key is
  // deleted from the store only if it was ever stored there.
  void write_changed(EpochWriter& w) {
    sort_changed();
    // Entries recorded since the table last moved its values are used as they
    // are; the rest are looked up again. Discarded keys are erased after the
    // loop: an erase moves values.
    const uint64_t moves = states_.moves();
    bool discarded = false;
    // Room for the epoch's writes, guessed from the last epoch's bytes per key.
    const size_t bytes_before = w.writes.bytes();
    w.writes.reserve(w.writes.size() + order_.size(), bytes_before + order_.size() * bytes_per_key_);
    // The changed keys' records and entries are scattered in memory: each is
    // fetched some keys ahead of its turn, so the misses overlap.
    const size_t n = order_.size();
    for (size_t i = 0; i < n; ++i) {
      if (i + 2 * kAhead < n) __builtin_prefetch(&dirty_[order_[i + 2 * kAhead].index]);
      if (i + kAhead < n) {
        const Dirty& next = dirty_[order_[i + kAhead].index];
        __builtin_prefetch(dirty_keys_.data() + next.key_offset);
        if (next.moves == moves) __builtin_prefetch(next.entry);
      }
      if (i + kAhead / 2 < n) {  // its entry is in cache by now: fetch what the encoder will read through it
        const Dirty& soon = dirty_[order_[i + kAhead / 2].index];
        if (soon.moves == moves && soon.entry->state) prefetch_value(*soon.entry->state);
      }
      Dirty& d = dirty_[order_[i].index];
      const std::string_view key = key_of(d);
      Entry* e = d.moves == moves ? d.entry : states_.find(d.hash, key);
      e->dirty = false;
      if (e->state) {
        w.put_state_encoded(step_, d.group, key, [&](std::string& out) { encode_value_into(*e->state, out); });
        e->stored = true;
        d.entry = nullptr;
      } else {
        if (e->stored) w.delete_state(step_, d.group, key);
        discarded = true;
      }
    }
    if (n > 0) bytes_per_key_ = (w.writes.bytes() - bytes_before) / n + 1;
    if (discarded) {
      for (const Dirty& d : dirty_) {
        if (d.entry != nullptr) states_.erase(d.hash, key_of(d));
      }
    }
    dirty_.clear();
    dirty_keys_.clear();
  }

  // The keys held in memory (with state, or discarded and not yet written).
  size_t size() const { return states_.size(); }

  // Loads at once every key group this worker owns that holds committed
  // state (a resume), calling visit(hash, key, state) for each key restored:
  // for steps that must know all their keys, such as windows waiting to close.
  template <class Visit>
  void load_owned(Visit visit) {
    for (uint32_t kg = 0; kg < loaded_.size(); ++kg) {
      if (loaded_[kg] || owner_of_group(kg, ctx_.key_groups(), ctx_.workers()) != ctx_.index()) continue;
      loaded_[kg] = true;
      ctx_.load_group(step_, kg, [&](std::string_view key, std::string_view value) {
        const uint64_t hash = stable_hash(key);
        Entry& e = *states_.try_emplace(hash, key).first;
        e = Entry{decode_value<S>(value), false, true};
        visit(hash, key, *e.state);
      });
    }
  }

 private:
  void load(uint32_t kg) {
    loaded_[kg] = true;
    ctx_.load_group(step_, kg, [&](std::string_view key, std::string_view value) {
      *states_.try_emplace(stable_hash(key), key).first = Entry{decode_value<S>(value), false, true};
    });
  }

  // A key changed this epoch: its bytes in dirty_keys_, its entry as found
  // when the table had made `moves` moves.
  struct Dirty {
    uint64_t hash;
    size_t key_offset;
    Entry* entry;  // set to nullptr once its state is written; left set for a discarded key, erased after
    uint64_t moves;
    uint32_t key_size;
    uint32_t group;
  };
  struct Order {
    uint64_t prefix;
    uint32_t group;
    uint32_t index;  // into dirty_
  };

  // Fills order_ with the changed keys in store key order: by group, then by
  // the key's first 8 bytes as an integer, comparing whole keys only when
  // those are equal. Many keys are first counted into their groups, so each
  // sort is over one group's few keys.
  void sort_changed() {
    const size_t n = dirty_.size();
    const auto within_group = [this](const Order& a, const Order& b) {
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      return key_of(dirty_[a.index]) < key_of(dirty_[b.index]);
    };
    const uint32_t groups = ctx_.key_groups();
    if (n < groups) {
      order_.clear();
      for (uint32_t i = 0; i < n; ++i) order_.push_back(Order{key_prefix(key_of(dirty_[i])), dirty_[i].group, i});
      std::sort(order_.begin(), order_.end(), [&](const Order& a, const Order& b) {
        return a.group != b.group ? a.group < b.group : within_group(a, b);
      });
      return;
    }
    group_end_.assign(groups, 0);  // first the count of each group, then where it ends in order_
    for (const Dirty& d : dirty_) ++group_end_[d.group];
    uint32_t end = 0;
    for (uint32_t& g : group_end_) g = end += g;
    order_.resize(n);
    for (uint32_t i = static_cast<uint32_t>(n); i-- > 0;) {  // backwards, filling each group from its end
      const Dirty& d = dirty_[i];
      order_[--group_end_[d.group]] = Order{key_prefix(key_of(d)), d.group, i};
    }
    // group_end_[g] is now where group g starts.
    for (uint32_t g = 0; g < groups; ++g) {
      const uint32_t to = g + 1 < groups ? group_end_[g + 1] : static_cast<uint32_t>(n);
      if (to - group_end_[g] > 1) std::sort(order_.begin() + group_end_[g], order_.begin() + to, within_group);
    }
  }

  std::string_view key_of(const Dirty& d) const { return {dirty_keys_.data() + d.key_offset, d.key_size}; }
  // The first 8 bytes of `key` as a big-endian number, zero-padded: keys in
  // byte order have prefixes in numeric order (equal ones only if they share
  // those 8 bytes, or one is the other padded with zeros).
  static uint64_t key_prefix(std::string_view key) {
    uint64_t p = 0;
    const size_t n = std::min<size_t>(key.size(), 8);
    for (size_t i = 0; i < n; ++i) p |= uint64_t{static_cast<uint8_t>(key[i])} << (56 - 8 * i);
    return p;
  }

  WorkerContext& ctx_;
  const std::string& step_;
  const bool track_;  // recovery on: keep changed keys (and discarded ones) until the epoch ends
  StateTable<Entry> states_;
  std::vector<Dirty> dirty_;           // keys changed this epoch
  std::string dirty_keys_;             // their bytes
  std::vector<uint32_t> group_end_;    // sort_changed's counts by group
  std::vector<Order> order_;           // write_changed's sort, kept for its capacity
  size_t bytes_per_key_ = 0;           // in the last write_changed
  static constexpr size_t kAhead = 8;  // write_changed's prefetch distance, in keys
  std::vector<bool> loaded_;           // per key group; empty when there is nothing to restore
};

}  // namespace engine::op::detail
