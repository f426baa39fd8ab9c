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
    // Sorted by (group, the key's first 8 bytes) as integers; only keys that
    // share their first 8 bytes are compared in full.
    order_.clear();
    order_.reserve(dirty_.size());
    for (uint32_t i = 0; i < dirty_.size(); ++i)
      order_.push_back(Order{key_prefix(key_of(dirty_[i])), dirty_[i].group, i});
    std::sort(order_.begin(), order_.end(), [this](const Order& a, const Order& b) {
      if (a.group != b.group) return a.group < b.group;
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      return key_of(dirty_[a.index]) < key_of(dirty_[b.index]);
    });
    // Entries recorded since the table last moved its values are used as they
    // are; the rest are looked up again. Discarded keys are erased after the
    // loop: an erase moves values.
    const uint64_t moves = states_.moves();
    bool discarded = false;
    for (const Order& o : order_) {
      Dirty& d = dirty_[o.index];
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
  std::vector<Dirty> dirty_;  // keys changed this epoch
  std::string dirty_keys_;    // their bytes
  std::vector<Order> order_;  // write_changed's sort, kept for its capacity
  std::vector<bool> loaded_;  // per key group; empty when there is nothing to restore
};

}  // namespace engine::op::detail
