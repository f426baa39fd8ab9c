#pragma once
// Stable 64-bit string hash used for key routing. It must never change: key
// groups of stored state are derived from it (see engine/store.hpp).

#include <cstdint>
#include <cstring>
#include <string_view>

namespace engine {

inline uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}

// Reads 8-byte little-endian words; the tail is zero-padded and the length is mixed in.
inline uint64_t stable_hash(std::string_view s) noexcept {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (s.size() * 0xff51afd7ed558ccdULL);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix64(h ^ w) + 0x632be59bd9b4e019ULL;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = mix64(h ^ w ^ (uint64_t{n} << 56));
  }
  return mix64(h);
}

// The key group of a key whose stable_hash is `hash`.
inline uint32_t group_of_hash(uint64_t hash, uint32_t key_groups) noexcept {
  return static_cast<uint32_t>(hash % key_groups);
}

inline uint32_t key_group_of(std::string_view key, uint32_t key_groups) noexcept {
  return group_of_hash(stable_hash(key), key_groups);
}

// Key groups are assigned to workers in contiguous ranges (as Flink does), so a
// worker's groups are one range of the store's key space.
inline uint32_t owner_of_group(uint32_t group, uint32_t key_groups, uint32_t workers) noexcept {
  return static_cast<uint32_t>(uint64_t{group} * workers / key_groups);
}

}  // namespace engine
