#pragma once
// parse_stored_number: the one parser of the decimal numbers the engine keeps
// in a state dir (offsets, positions, lengths, counts).

#include <charconv>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

#include "engine/errors.hpp"

namespace engine {

// The decimal number `value`; StateError naming `what` ("the resume state of
// input in.json") if it is anything else (empty, signs, spaces, trailing bytes).
inline uint64_t parse_stored_number(std::string_view value, std::string_view what) {
  uint64_t v = 0;
  const auto* end = value.data() + value.size();
  const auto [p, ec] = std::from_chars(value.data(), end, v);
  if (ec != std::errc() || p != end || value.empty()) {
    throw StateError(fmt::format("corrupt state dir: {} is '{}', not a number", what, value));
  }
  return v;
}

}  // namespace engine
