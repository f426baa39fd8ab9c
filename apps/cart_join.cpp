#include "apps/cart_join.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "apps/registry.hpp"
#include "connectors/uri.hpp"
#include "engine/context.hpp"
#include "engine/describe.hpp"
#include "engine/errors.hpp"
#include "operators/operators.hpp"

namespace engine::cart {

namespace {

struct Counts {
  std::atomic<uint64_t> bad_lines{0};
  std::atomic<uint64_t> ignored_payments{0};
};

char* put(char* out, std::string_view text) {
  std::memcpy(out, text.data(), text.size());
  return out + text.size();
}

// Writes `s` as a JSON string with its quotes; at most 2 + 6 * s.size() bytes.
char* put_json_string(char* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out++ = '"';
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && c != '"' && c != '\\') {
      *out++ = c;
    } else if (c == '"' || c == '\\') {
      *out++ = '\\';
      *out++ = c;
    } else if (c == '\n') {
      out = put(out, "\\n");
    } else {
      out = put(out, "\\u00");
      *out++ = kHex[byte >> 4];
      *out++ = kHex[byte & 0xf];
    }
  }
  *out++ = '"';
  return out;
}

// Writes [a, b, ...]; at most 2 + 22 * (end - begin) bytes.
char* put_ids(char* out, const int64_t* begin, const int64_t* end) {
  *out++ = '[';
  for (const int64_t* p = begin; p != end; ++p) {
    if (p != begin) out = put(out, ", ");
    out = std::to_chars(out, out + 20, *p).ptr;
  }
  *out++ = ']';
  return out;
}

// key == literal, compared with a known length (inlined, unlike string_view's ==).
template <size_t N>
bool is(std::string_view key, const char (&literal)[N]) {
  return key.size() == N - 1 && std::memcmp(key.data(), literal, N - 1) == 0;
}

}  // namespace

char* put_cart(char* out, std::string_view user_id, const Cart& cart) {
  const int64_t* ids = cart.ids.data();
  out = put(out, "{\"user_id\": ");
  out = put_json_string(out, user_id);
  out = put(out, ", \"paid_order_ids\": ");
  out = put_ids(out, ids, ids + cart.paid);
  out = put(out, ", \"unpaid_order_ids\": ");
  out = put_ids(out, ids + cart.paid, ids + cart.ids.size());
  *out++ = '}';
  return out;
}

size_t format_bound(std::string_view user_id, const Cart& cart) {
  return 64 + 6 * user_id.size() + 22 * cart.ids.size();
}

namespace {

// Reads a value the app does not need to its end, so that a broken one
// ("tru", "01", a bad escape or number) makes the whole line bad: simdjson's
// on-demand parser checks only the values it is asked for.
bool valid_json(simdjson::ondemand::value v, int depth) {
  if (depth > 64) return false;
  simdjson::ondemand::json_type t;
  if (v.type().get(t) != simdjson::SUCCESS) return false;
  switch (t) {
    case simdjson::ondemand::json_type::object: {
      simdjson::ondemand::object o;
      if (v.get_object().get(o) != simdjson::SUCCESS) return false;
      for (auto field : o) {
        std::string_view key;
        simdjson::ondemand::value inner;
        if (field.error() != simdjson::SUCCESS || field.unescaped_key().get(key) != simdjson::SUCCESS ||
            field.value().get(inner) != simdjson::SUCCESS || !valid_json(inner, depth + 1)) {
          return false;
        }
      }
      return true;
    }
    case simdjson::ondemand::json_type::array: {
      simdjson::ondemand::array a;
      if (v.get_array().get(a) != simdjson::SUCCESS) return false;
      for (auto element : a) {
        simdjson::ondemand::value inner;
        if (element.get(inner) != simdjson::SUCCESS || !valid_json(inner, depth + 1)) return false;
      }
      return true;
    }
    case simdjson::ondemand::json_type::string: {
      std::string_view text;
      return v.get_string().get(text) == simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::number: {
      simdjson::ondemand::number n;
      return v.get_number().get(n) == simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::boolean: {
      bool b = false;
      return v.get_bool().get(b) == simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::null: {
      bool null = false;
      return v.is_null().get(null) == simdjson::SUCCESS && null;
    }
  }
  return false;
}

}  // namespace

bool parse_event_into(const char* data, size_t size, size_t capacity, Event& e, std::string& why, bool need_ts) {
  thread_local simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(data, size, capacity).get(doc) != simdjson::SUCCESS) {
    why = "not JSON";
    return false;
  }
  simdjson::ondemand::json_type type;
  if (doc.type().get(type) != simdjson::SUCCESS) {
    why = "not JSON";
    return false;
  }
  if (type != simdjson::ondemand::json_type::object) {
    why = "not a JSON object";
    return false;
  }
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    why = "not JSON";
    return false;
  }
  bool has_user = false;
  bool has_type = false;
  bool has_id = false;
  bool has_ts = !need_ts;
  for (auto field : obj) {
    std::string_view key;
    if (field.error() != simdjson::SUCCESS || field.unescaped_key().get(key) != simdjson::SUCCESS) {
      why = "not JSON";
      return false;
    }
    if (is(key, "user_id")) {
      std::string_view v;
      if (field.value().get_string().get(v) != simdjson::SUCCESS) {
        why = "user_id is not a string";
        return false;
      }
      e.user_id.assign(v);
      has_user = true;
    } else if (is(key, "type")) {
      std::string_view v;
      if (field.value().get_string().get(v) != simdjson::SUCCESS || !(is(v, "order") || is(v, "payment"))) {
        why = "type is not \"order\" or \"payment\"";
        return false;
      }
      e.payment = is(v, "payment");
      has_type = true;
    } else if (is(key, "order_id")) {
      if (field.value().get_int64().get(e.order_id) != simdjson::SUCCESS) {
        why = "order_id is not an integer";
        return false;
      }
      has_id = true;
    } else if (need_ts && is(key, "ts")) {
      std::string_view v;
      if (field.value().get_string().get(v) != simdjson::SUCCESS || !parse_utc_ms(v, e.ts)) {
        why = "ts is not an ISO 8601 UTC time (2026-11-21T10:00:03.250Z)";
        return false;
      }
      has_ts = true;
    } else {
      simdjson::ondemand::value other;
      if (field.value().get(other) != simdjson::SUCCESS || !valid_json(other, 0)) {
        why = "not JSON";
        return false;
      }
    }
  }
  const char* trailing = nullptr;
  if (doc.current_location().get(trailing) == simdjson::SUCCESS) {
    why = "not JSON (trailing characters)";
    return false;
  }
  if (!has_user || !has_type || !has_id || !has_ts) {
    why = fmt::format("missing {}", !has_user ? "user_id" : !has_type ? "type" : !has_id ? "order_id" : "ts");
    return false;
  }
  return true;
}

std::optional<Event> parse_event(const std::string& line, std::string& why, bool need_ts) {
  thread_local std::string padded;
  const char* data = line.data();
  size_t capacity = line.capacity();
  if (capacity < line.size() + simdjson::SIMDJSON_PADDING) {
    padded.reserve(line.size() + simdjson::SIMDJSON_PADDING);
    padded.assign(line);
    data = padded.data();
    capacity = padded.capacity();
  }
  std::optional<Event> e(std::in_place);  // one return statement: no copy of the event
  if (!parse_event_into(data, line.size(), capacity, *e, why, need_ts)) e.reset();
  return e;
}

bool parse_utc_ms(std::string_view s, int64_t& ms) {
  // YYYY-MM-DDTHH:MM:SS[.fraction]Z
  auto digits = [&](size_t at, size_t n, int& out) {
    if (at + n > s.size()) return false;
    out = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 20 || !digits(0, 4, y) || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' || !digits(8, 2, d) ||
      s[10] != 'T' || !digits(11, 2, h) || s[13] != ':' || !digits(14, 2, mi) || s[16] != ':' || !digits(17, 2, sec)) {
    return false;
  }
  size_t i = 19;
  int frac_ms = 0;
  if (s[i] == '.') {
    ++i;
    const size_t start = i;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (i - start < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
    }
    const size_t n = i - start;
    if (n == 0 || n > 9) return false;
    for (size_t k = n; k < 3; ++k) frac_ms *= 10;
  }
  if (i + 1 != s.size() || s[i] != 'Z') return false;
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 59) return false;
  const auto days = std::chrono::sys_days(ymd).time_since_epoch().count();
  ms = ((static_cast<int64_t>(days) * 24 + h) * 60 + mi) * 60'000 + sec * 1000 + frac_ms;
  return true;
}

std::string json_string(std::string_view s) {
  std::string out(2 + 6 * s.size(), '\0');
  out.resize(static_cast<size_t>(put_json_string(out.data(), s) - out.data()));
  return out;
}

std::string format_utc_ms(int64_t ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(ms)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> hms{t - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                     hms.minutes().count(), hms.seconds().count(), hms.subseconds().count());
}

bool apply(Cart& cart, const Event& e) {
  if (!e.payment) {
    cart.ids.push_back(e.order_id);
    return true;
  }
  const auto unpaid = cart.ids.begin() + cart.paid;
  const auto it = std::find(unpaid, cart.ids.end(), e.order_id);
  if (it == cart.ids.end()) return false;
  std::rotate(unpaid, it, it + 1);  // the id becomes the last paid one; the unpaid keep their order
  ++cart.paid;
  return true;
}

std::string format_cart(const std::string& user_id, const Cart& cart) {
  // Formats on the stack and copies once: the line gets an exact-size allocation.
  char stack[1024];
  const size_t bound = format_bound(user_id, cart);
  if (bound <= sizeof(stack)) return std::string(stack, put_cart(stack, user_id, cart));
  std::string out(bound, '\0');
  out.resize(static_cast<size_t>(put_cart(out.data(), user_id, cart) - out.data()));
  return out;
}

namespace {

// The deserialize step: an event, or nullopt (a warning) for a bad line; with --strict a bad line throws.
std::optional<Event> deserialize(const std::string& line, bool strict, Counts& counts) {
  std::string why;
  std::optional<Event> e = parse_event(line, why);  // returned without a copy
  if (!e) {
    if (strict) throw InputError(why);
    counts.bad_lines.fetch_add(1, std::memory_order_relaxed);
    warn_item(why,
              fmt::format("{}: skipping bad line ({}): {}", current_origin().describe(), why, describe_item(line)));
  }
  return e;
}

// The joiner step: the user's cart after `e`, or nullopt for a payment of an unknown order.
std::optional<Cart> join(std::optional<Cart>& cart, const Event& e, Counts& counts) {
  if (!cart) cart.emplace();
  if (!apply(*cart, e)) {
    counts.ignored_payments.fetch_add(1, std::memory_order_relaxed);
    if (cart->ids.empty()) cart.reset();  // a user seen only through unknown payments keeps no state
    return std::nullopt;
  }
  return *cart;
}

}  // namespace

BuiltFlow flow(const Options& o) {
  auto counts = std::make_shared<Counts>();
  const bool strict = o.strict;
  Dataflow flow("cart_join");
  auto lines = op::input("input", flow, lines_source(o.input, bundled_data("cart-join.json")));
  auto events =
      op::filter_map("deserialize", lines, [=](const std::string& line) { return deserialize(line, strict, *counts); });
  auto keyed = op::key_on("key_on_user", events, [](const Event& e) { return e.user_id; });
  auto carts =
      op::stateful_map("joiner", keyed, [=](std::optional<Cart>& cart, Event&& e) { return join(cart, e, *counts); });
  if (keyed_output(o.output)) {
    // Part files by user, or Kafka messages keyed by user: each user's updates stay in order.
    auto out = op::map("format_output", carts, [](KV<Cart>&& kv) {
      std::string line = format_cart(kv.first, kv.second);
      return KV<std::string>(std::move(kv.first), std::move(line));
    });
    op::output("output", out, keyed_lines_sink(o.output));
  } else {
    auto out = op::map("format_output", carts, [](KV<Cart>&& kv) { return format_cart(kv.first, kv.second); });
    op::output("output", out, lines_sink(o.output));  // a file, or stdout
  }
  auto report = [counts] {
    const auto bad = counts->bad_lines.load();
    const auto ignored = counts->ignored_payments.load();
    if (bad == 0 && ignored == 0) return std::string();
    return fmt::format("cart_join: {} bad line(s) skipped, {} payment(s) for unknown orders ignored", bad, ignored);
  };
  return BuiltFlow(std::move(flow), report);
}

App app() {
  return App::make<Options>(
      "cart_join", "join orders and payments per user_id (the recoverable shopping-cart tutorial)",
      [](AppFlags<Options>& f) {
        f.input(&Options::input,
                "JSON-lines file, directory of them, - (stdin) or kafka://HOST:PORT/TOPIC (default: the bundled "
                "data/cart-join.json)")
            .output(&Options::output,
                    "output file, directory (an existing one, or a path ending in /) of part files by user, or "
                    "kafka://HOST:PORT/TOPIC (messages keyed by user) (default: stdout)")
            .flag("strict", &Options::strict,
                  "a bad input line is an error (handled by --on-error) instead of a warning");
      },
      flow);
}

}  // namespace engine::cart
