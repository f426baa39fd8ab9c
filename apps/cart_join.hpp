#pragma once
// cart_join: the tutorials' shopping-cart join. Orders and payments joined per
// user_id; one JSON line per cart update.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/app.hpp"
#include "connectors/uri.hpp"
#include "engine/codec.hpp"

namespace engine::cart {

struct Event {
  std::string user_id;
  bool payment = false;
  int64_t order_id = 0;
  int64_t ts = 0;  // ms since the Unix epoch (UTC); parsed only when asked for
};

// Order ids of one user: ids[0, paid) are paid in payment order, the rest
// unpaid in order order. One vector, so copying a cart is one allocation.
struct Cart {
  std::vector<int64_t> ids;
  uint32_t paid = 0;
  bool operator==(const Cart&) const = default;
};

// Parses one input line; nullopt with `why` set when it is not a valid event.
// With need_ts, the line must also have a "ts" (see parse_utc_ms).
std::optional<Event> parse_event(const std::string& line, std::string& why, bool need_ts = false);

// parse_event's work on the `size` bytes at `data`, of which `capacity` are
// readable (at least size + simdjson's padding): fills `e`, or returns false
// with `why` set.
bool parse_event_into(const char* data, size_t size, size_t capacity, Event& e, std::string& why, bool need_ts = false);

// An ISO 8601 UTC time with an optional fraction and a Z
// ("2026-11-21T10:00:03.250Z") as ms since the Unix epoch; false if it is not one.
bool parse_utc_ms(std::string_view text, int64_t& ms);
// ms since the Unix epoch as "2026-11-21T10:00:03.250Z" (UTC, milliseconds, Z).
std::string format_utc_ms(int64_t ms);
// `s` as a JSON string literal, quotes included.
std::string json_string(std::string_view s);

// Applies an event; false if it was a payment for an unknown order (ignored).
bool apply(Cart& cart, const Event& e);

// {"user_id": "a", "paid_order_ids": [2, 1], "unpaid_order_ids": []}
std::string format_cart(const std::string& user_id, const Cart& cart);

// format_cart into `out`, which has room for format_bound() bytes; returns the end.
char* put_cart(char* out, std::string_view user_id, const Cart& cart);
size_t format_bound(std::string_view user_id, const Cart& cart);

// The app's flags.
struct Options {
  InputSpec input;      // path "" = the bundled data/cart-join.json
  OutputSpec output;    // "" = stdout; a directory = part files by user; kafka:// = messages keyed by user
  bool strict = false;  // a bad line throws (the tutorial's crash) instead of being skipped
};

// The flow: input -> deserialize -> key_on_user -> joiner -> format_output -> output.
BuiltFlow flow(const Options& options);

App app();

}  // namespace engine::cart

// A cart's snapshot (codec version 2): the number of ids, how many of them
// are paid, then the ids as zigzag varints, each the difference from the id
// before it (the first from 0). A user's order ids are near each other, so an
// id takes ~3 bytes instead of 8. Version 1 (the ids as a vector of int64,
// then the paid count as a uint32) is still read. The paid count is checked
// on decode: a corrupt one would make every later use of the cart read out of
// bounds.
template <>
struct engine::Codec<engine::cart::Cart> {
  static constexpr uint8_t kVersion = 2;
  static void encode(const engine::cart::Cart& v, std::string& out) {
    put_varint(out, v.ids.size());
    put_varint(out, v.paid);
    uint64_t last = 0;
    for (const int64_t id : v.ids) {
      const uint64_t delta = static_cast<uint64_t>(id) - last;  // wraps: a signed difference
      put_varint(out, (delta << 1) ^ (0 - (delta >> 63)));      // zigzag: small either way
      last = static_cast<uint64_t>(id);
    }
  }
  static void prefetch(const engine::cart::Cart& v) { Codec<std::vector<int64_t>>::prefetch(v.ids); }
  static engine::cart::Cart decode(Reader& in) {
    engine::cart::Cart v;
    const uint64_t n = in.length();  // every id takes at least one byte
    const uint64_t paid = in.varint();
    if (paid > n) throw StateError("corrupt cart state: more paid orders than orders");
    v.paid = static_cast<uint32_t>(paid);
    v.ids.resize(n);
    uint64_t last = 0;
    for (int64_t& id : v.ids) {
      const uint64_t z = in.varint();
      last += (z >> 1) ^ (0 - (z & 1));
      id = static_cast<int64_t>(last);
    }
    return v;
  }
  static engine::cart::Cart decode_version(Reader& in, uint8_t /*version 1*/) {
    engine::cart::Cart v;
    v.ids = Codec<std::vector<int64_t>>::decode(in);
    v.paid = Codec<uint32_t>::decode(in);
    if (v.paid > v.ids.size()) throw StateError("corrupt cart state: more paid orders than orders");
    return v;
  }
};
