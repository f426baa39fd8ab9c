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
        dirty_.push_back(Dirty{group_of_hash(hash, ctx_.key_groups()), hash, key});
      }
    } else if (!e.state) {
      states_.erase(hash, key);
    }
  }

  // Writes the keys changed since the last call in store key order (key
  // group, then key), so a commit's sort gets sorted input. A discarded key is
  // deleted from the store only if it was ever stored there.
  void write_changed(EpochWriter& w) {
    std::sort(dirty_.begin(), dirty_.end(),
              [](const Dirty& a, const Dirty& b) { return a.group != b.group ? a.group < b.group : a.key < b.key; });
    for (const auto& [kg, hash, key] : dirty_) {
      Entry* e = states_.find(hash, key);
      if (e->state) {
        w.put_state(step_, kg, key, encode_value(*e->state));
        e->dirty = false;
        e->stored = true;
      } else {
        if (e->stored) w.delete_state(step_, kg, key);
        states_.erase(hash, key);
      }
    }
    dirty_.clear();
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

  struct Dirty {
    uint32_t group;
    uint64_t hash;
    std::string key;
  };

  WorkerContext& ctx_;
  const std::string& step_;
  const bool track_;  // recovery on: keep changed keys (and discarded ones) until the epoch ends
  StateTable<Entry> states_;
  std::vector<Dirty> dirty_;  // keys changed this epoch
  std::vector<bool> loaded_;  // per key group; empty when there is nothing to restore
};

}  // namespace engine::op::detail
