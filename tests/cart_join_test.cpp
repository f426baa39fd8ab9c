// cart_join (apps/cart_join.hpp): parse_event accepts the tutorial's lines and
// rejects bad ones with a reason; apply/format_cart match a reference; the
// whole app, run in-process with 1, 2 and 4 workers, gives the tutorial's
// per-user sequence on data/cart-join.json and, on a generated multi-file
// input, the same lines per user as an independent reference join written
// here with nlohmann/json and std::map.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "apps/cart_join.hpp"
#include "apps/registry.hpp"
#include "engine/runtime.hpp"
#include "tests/support/flow_testing.hpp"
#include "tests/support/unit_testing.hpp"

namespace {

namespace fs = std::filesystem;
using engine::cart::Cart;
using engine::cart::Event;
using flow_testing::read_lines;
using flow_testing::TempDir;
using flow_testing::write_file;

// Whether `part` occurs in `s`.
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const std::string kTutorialFile = std::string(ENGINE_SOURCE_DIR) + "/data/cart-join.json";

// ---- reference implementation (independent of the app) ---------------------------

// What a valid event is, decided with nlohmann/json: an object with a string
// user_id, a type "order" or "payment", and an integer order_id that fits int64.
std::optional<Event> ref_parse(const std::string& line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  if (!j.is_object()) return std::nullopt;
  if (!j.contains("user_id") || !j.contains("type") || !j.contains("order_id")) return std::nullopt;
  const auto& u = j["user_id"];
  const auto& t = j["type"];
  const auto& o = j["order_id"];
  if (!u.is_string() || !t.is_string()) return std::nullopt;
  if (t != "order" && t != "payment") return std::nullopt;
  if (!o.is_number_integer()) return std::nullopt;
  if (o.is_number_unsigned() && o.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return std::nullopt;
  }
  return Event{u.get<std::string>(), t == "payment", o.get<int64_t>()};
}

struct RefCart {
  std::vector<int64_t> paid;
  std::vector<int64_t> unpaid;
};

// An order adds to unpaid; a payment of an unpaid order moves it to the end of
// paid; anything else is ignored (false).
bool ref_apply(RefCart& c, bool payment, int64_t id) {
  if (!payment) {
    c.unpaid.push_back(id);
    return true;
  }
  auto it = std::find(c.unpaid.begin(), c.unpaid.end(), id);
  if (it == c.unpaid.end()) return false;
  c.unpaid.erase(it);
  c.paid.push_back(id);
  return true;
}

// The tutorial's output line, for user ids that need no JSON escaping.
std::string ref_format(const std::string& user, const RefCart& c) {
  return fmt::format(R"({{"user_id": "{}", "paid_order_ids": [{}], "unpaid_order_ids": [{}]}})", user,
                     fmt::join(c.paid, ", "), fmt::join(c.unpaid, ", "));
}

// Per user, the output lines the join must produce for `files` read in order
// (each user's events are all in one file, so per-user order is defined).
std::map<std::string, std::vector<std::string>> ref_join(const std::vector<std::string>& files) {
  std::map<std::string, RefCart> carts;
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& file : files) {
    for (const auto& line : read_lines(file)) {
      const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) continue;
      const std::string user = j.at("user_id").get<std::string>();
      RefCart& c = carts[user];
      if (ref_apply(c, j.at("type") == "payment", j.at("order_id").get<int64_t>())) {
        out[user].push_back(ref_format(user, c));
      }
    }
  }
  return out;
}

// Output lines grouped by their user_id (read with nlohmann), in file order.
std::map<std::string, std::vector<std::string>> lines_by_user(const std::vector<std::string>& lines) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& line : lines) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      ADD_FAILURE() << "output line is not JSON: " << line;
      continue;
    }
    out[j.at("user_id").get<std::string>()].push_back(line);
  }
  return out;
}

// ---- running the app in-process -------------------------------------------------

struct AppRun {
  engine::RunStats stats;
  std::string report;
};

// cart_join's options for an input and an output path.
engine::cart::Options cart_options(const std::string& input, const std::string& output) {
  engine::cart::Options o;
  o.input.path = input;
  o.output.path = output;
  return o;
}

// Builds the registered app from its options struct and runs it with `workers` threads.
AppRun run_cart_join(const engine::cart::Options& options, uint32_t workers) {
  const auto apps = engine::builtin_apps();
  EXPECT_TRUE(std::any_of(apps.begin(), apps.end(), [](const auto& a) { return a.name == "cart_join"; }));
  auto built = engine::cart::flow(options);
  AppRun r;
  r.stats = engine::run(built.flow, flow_testing::options(workers));
  r.report = built.report ? built.report() : "";
  return r;
}

// ---- parse_event ------------------------------------------------------------------

TEST(CartParse, AcceptsTheTutorialLines) {
  const auto lines = read_lines(kTutorialFile);
  ASSERT_EQ(lines.size(), 8u);
  size_t accepted = 0;
  for (const auto& line : lines) {
    std::string why;
    const auto got = engine::cart::parse_event(line, why);
    const auto want = ref_parse(line);
    ASSERT_EQ(got.has_value(), want.has_value()) << line << " (" << why << ")";
    if (!got) continue;
    ++accepted;
    EXPECT_EQ(got->user_id, want->user_id);
    EXPECT_EQ(got->payment, want->payment);
    EXPECT_EQ(got->order_id, want->order_id);
  }
  EXPECT_EQ(accepted, 7u);
}

TEST(CartParse, AcceptsOtherValidForms) {
  struct Case {
    std::string line;
    Event want;
  };
  const std::vector<Case> cases = {
      {R"({"order_id": 5, "type": "payment", "user_id": "zz"})", {"zz", true, 5}},
      {R"(  {  "user_id" :"a","type":"order" ,  "order_id":1 }  )", {"a", false, 1}},
      {R"({"user_id": "a", "extra": [1, {"x": null}], "type": "order", "order_id": 7})", {"a", false, 7}},
      {R"({"user_id": "a", "type": "order", "order_id": -3})", {"a", false, -3}},
      {R"({"user_id": "a", "type": "order", "order_id": 9223372036854775807})", {"a", false, INT64_MAX}},
      {R"({"user_id": "caf\u00e9 \"q\"", "type": "order", "order_id": 0})", {"caf\xc3\xa9 \"q\"", false, 0}},
      {R"({"user_id": "", "type": "payment", "order_id": 2})", {"", true, 2}},
  };
  for (const auto& c : cases) {
    std::string why;
    const auto got = engine::cart::parse_event(c.line, why);
    ASSERT_TRUE(got.has_value()) << c.line << " rejected: " << why;
    EXPECT_EQ(got->user_id, c.want.user_id) << c.line;
    EXPECT_EQ(got->payment, c.want.payment) << c.line;
    EXPECT_EQ(got->order_id, c.want.order_id) << c.line;
  }
}

TEST(CartParse, RejectsBadLinesWithAReason) {
  struct Case {
    std::string line;
    std::string reason;  // what the reason must contain (alternatives separated by '|')
  };
  auto mentions = [](const std::string& why, const std::string& alternatives) {
    size_t start = 0;
    for (;;) {
      const size_t bar = alternatives.find('|', start);
      if (contains(why, alternatives.substr(start, bar - start))) return true;
      if (bar == std::string::npos) return false;
      start = bar + 1;
    }
  };
  const std::vector<Case> cases = {
      {"FAIL HERE", "not JSON"},
      {"", "not JSON"},
      {"[1, 2]", "not a JSON object"},
      {R"([{"user_id": "a", "type": "order", "order_id": 1}])", "not a JSON object"},
      {"42", "not a JSON object"},
      {"-1.5", "not a JSON object"},
      {R"("text")", "not a JSON object"},
      {"null", "not a JSON object"},
      {R"({"user_id": 5, "type": "order", "order_id": 1})", "user_id"},
      {R"({"user_id": null, "type": "order", "order_id": 1})", "user_id"},
      {R"({"user_id": ["a"], "type": "order", "order_id": 1})", "user_id"},
      {R"({"user_id": "a", "type": "refund", "order_id": 1})", "type"},
      {R"({"user_id": "a", "type": "ORDER", "order_id": 1})", "type"},
      {R"({"user_id": "a", "type": 1, "order_id": 1})", "type"},
      {R"({"user_id": "a", "type": "order", "order_id": "1"})", "order_id"},
      {R"({"user_id": "a", "type": "order", "order_id": 1.5})", "order_id"},
      {R"({"user_id": "a", "type": "order", "order_id": 1.0})", "order_id"},
      {R"({"user_id": "a", "type": "order", "order_id": 1e3})", "order_id"},
      {R"({"user_id": "a", "type": "order", "order_id": 99999999999999999999})", "order_id"},
      {R"({"user_id": "a", "type": "order", "order_id": true})", "order_id"},
      {R"({"type": "order", "order_id": 1})", "missing user_id"},
      {R"({"user_id": "a", "order_id": 1})", "missing type"},
      {R"({"user_id": "a", "type": "order"})", "missing order_id"},
      {"{}", "missing"},
      {R"({"user_id": "a", "type": "order", "order_id": 1}{})", "trailing|not JSON"},
      {R"({"user_id": "a", "type": "order", "order_id": 1},)", ""},
      {R"({"user_id": "a", "type": "order", "order_id": 1,})", ""},
  };
  for (const auto& c : cases) {
    std::string why;
    const auto got = engine::cart::parse_event(c.line, why);
    EXPECT_FALSE(got.has_value()) << "accepted: " << c.line;
    EXPECT_FALSE(why.empty()) << "no reason for: " << c.line;
    EXPECT_TRUE(mentions(why, c.reason)) << c.line << " -> '" << why << "', expected it to mention '" << c.reason
                                         << "'";
  }
}

TEST(CartParse, MalformedObjectsAreReportedAsNotJson) {
  // A line that starts like an object but is not valid JSON must not be
  // reported as "not a JSON object" (misleading in the warning a user reads).
  for (const std::string& line : {std::string("{"), std::string(R"({"user_id": "a", "type": "order", "order_id": 1)"),
                                  std::string(R"({"user_id": "a", "type": "order", "order_id": 1} x)")}) {
    std::string why;
    EXPECT_FALSE(engine::cart::parse_event(line, why).has_value()) << line;
    EXPECT_TRUE(contains(why, "not JSON") || contains(why, "trailing")) << line << " -> '" << why << "'";
  }
}

TEST(CartParse, NulBytesAndInvalidUtf8DoNotCrash) {
  const std::string valid = R"({"user_id": "a", "type": "order", "order_id": 1})";
  std::vector<std::string> lines;
  for (size_t i = 0; i <= valid.size(); ++i)
    lines.push_back(valid.substr(0, i) + std::string(1, '\0') + valid.substr(i));
  lines.push_back(std::string("\0\0\0", 3));
  lines.push_back(R"({"user_id": ")" + std::string("\xff\xfe") + R"(", "type": "order", "order_id": 1})");
  lines.push_back(R"({"user_id": ")" + std::string("\xc0\x80") + R"(", "type": "order", "order_id": 1})");
  lines.push_back(R"({"user_id": ")" + std::string("\xed\xa0\x80") + R"(", "type": "order", "order_id": 1})");
  lines.push_back("\xef\xbb\xbf" + valid);  // a byte-order mark
  lines.push_back(std::string(100000, '{'));
  lines.push_back(std::string(100000, '['));
  for (const auto& line : lines) {
    std::string why;
    const auto got = engine::cart::parse_event(line, why);
    // None of these is valid JSON (NUL is not allowed anywhere, invalid UTF-8 neither).
    if (!ref_parse(line)) {
      EXPECT_FALSE(got.has_value()) << "accepted an invalid line of " << line.size() << " bytes";
      EXPECT_FALSE(why.empty());
    }
  }
}

TEST(CartParse, AgreesWithAReferenceOnMutatedLines) {
  // Random edits of valid lines; parse_event must accept exactly what the
  // nlohmann-based reference accepts, with the same fields.
  const std::vector<std::string> seeds = {
      R"({"user_id": "a", "type": "order", "order_id": 1})",
      R"({"user_id": "user42", "type": "payment", "order_id": 123456})",
      R"({"order_id": -5, "user_id": "x\"y", "type": "order"})",
  };
  const std::string alphabet = R"({}[]":, 0123456789.-eEtruefalsnl\abxyz)";
  std::mt19937_64 rng(2024);
  size_t disagreements = 0;
  size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string line = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !line.empty(); ++e) {
      const size_t pos = rng() % line.size();
      const char c = rng() % 10 == 0 ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          line[pos] = c;
          break;
        case 1:
          line.insert(line.begin() + static_cast<std::ptrdiff_t>(pos), c);
          break;
        default:
          line.erase(pos, 1);
      }
    }
    std::string why;
    const auto got = engine::cart::parse_event(line, why);
    const auto want = ref_parse(line);
    accepted += want.has_value();
    const bool same =
        got.has_value() == want.has_value() &&
        (!got || (got->user_id == want->user_id && got->payment == want->payment && got->order_id == want->order_id));
    if (!same && ++disagreements <= 10) {
      ADD_FAILURE() << "parse_event " << (got ? "accepted" : "rejected (" + why + ")") << " but the reference "
                    << (want ? "accepts" : "rejects") << ": " << line;
    }
    if (!got) {
      EXPECT_FALSE(why.empty()) << line;
    }
  }
  EXPECT_EQ(disagreements, 0u);
  EXPECT_GT(accepted, 100u);  // the mutations keep some lines valid
}

// ---- apply and format_cart ------------------------------------------------------------

TEST(CartApply, MatchesTheReferenceOnRandomEvents) {
  std::mt19937_64 rng(8);
  std::map<std::string, Cart> carts;
  std::map<std::string, RefCart> refs;
  for (int i = 0; i < 20000; ++i) {
    const std::string user = fmt::format("u{}", rng() % 20);
    const bool payment = rng() % 2 == 0;
    const int64_t id = static_cast<int64_t>(rng() % 60);  // small ids: repeats, re-payments, unknown orders
    const bool applied = engine::cart::apply(carts[user], Event{user, payment, id});
    const bool ref_applied = ref_apply(refs[user], payment, id);
    ASSERT_EQ(applied, ref_applied) << "event " << i;
    const Cart& c = carts[user];
    const RefCart& r = refs[user];
    ASSERT_EQ(std::vector<int64_t>(c.ids.begin(), c.ids.begin() + c.paid), r.paid) << "event " << i;
    ASSERT_EQ(std::vector<int64_t>(c.ids.begin() + c.paid, c.ids.end()), r.unpaid) << "event " << i;
    ASSERT_EQ(engine::cart::format_cart(user, c), ref_format(user, r)) << "event " << i;
  }
}

// A stored cart whose paid count exceeds its ids is corrupt: a StateError on
// decode, not an out-of-bounds read when it is next used.
TEST(CartCodec, PaidCountBeyondTheIdsIsCorrupt) {
  engine::cart::Cart cart;
  cart.ids = {1, 2};
  cart.paid = 2;
  EXPECT_EQ(engine::decode_value<engine::cart::Cart>(engine::encode_value(cart)), cart);
  cart.paid = 5;
  EXPECT_THROW(engine::decode_value<engine::cart::Cart>(engine::encode_value(cart)), engine::StateError);
}

// Ids are stored as differences from the one before: any int64 ids, in any
// order, read back; a cut-off value and an unknown version are refused.
TEST(CartCodec, AnyIdsReadBackAndBrokenValuesAreRefused) {
  engine::cart::Cart cart;
  cart.ids = {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(), 0, -5, 7, 7, 3};
  cart.paid = 3;
  const std::string bytes = engine::encode_value(cart);
  EXPECT_EQ(engine::decode_value<engine::cart::Cart>(bytes), cart);
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    EXPECT_THROW(engine::decode_value<engine::cart::Cart>(bytes.substr(0, cut)), engine::StateError) << cut;
  }
  std::string newer = bytes;
  newer[0] = 3;
  const std::string msg =
      flow_testing::error_message_of<engine::StateError>([&] { engine::decode_value<engine::cart::Cart>(newer); });
  EXPECT_EQ(msg, "state value has codec version 3, this build reads 1 to 2");
}

TEST(CartFormat, TutorialLines) {
  Cart c;
  EXPECT_EQ(engine::cart::format_cart("a", c), R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": []})");
  engine::cart::apply(c, Event{"a", false, 2});
  engine::cart::apply(c, Event{"a", false, 1});
  engine::cart::apply(c, Event{"a", true, 2});
  engine::cart::apply(c, Event{"a", true, 1});
  EXPECT_EQ(engine::cart::format_cart("a", c), R"({"user_id": "a", "paid_order_ids": [2, 1], "unpaid_order_ids": []})");
  const Cart big{{std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()}, 1};
  EXPECT_EQ(engine::cart::format_cart("b", big), R"({"user_id": "b", "paid_order_ids": [-9223372036854775808], )"
                                                 R"("unpaid_order_ids": [-1, 0, 9223372036854775807]})");
}

TEST(CartFormat, UserIdsAreEscapedAsJson) {
  const Cart cart{{7, 8}, 1};
  for (const std::string& user :
       {std::string("quote\"back\\slash"), std::string("tab\tnl\ncr\r"), std::string("ctl\x01\x1f", 5),
        std::string("nul\0x", 5), std::string("caf\xc3\xa9 \xe2\x82\xac"), std::string("/slash")}) {
    const std::string line = engine::cart::format_cart(user, cart);
    const auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    EXPECT_EQ(j.at("user_id").get<std::string>(), user);
    EXPECT_EQ(j.at("paid_order_ids"), nlohmann::json({7}));
    EXPECT_EQ(j.at("unpaid_order_ids"), nlohmann::json({8}));
  }
}

// ---- the app, in-process -------------------------------------------------------------

TEST(CartJoinApp, TutorialSequencePerUserForEveryWorkerCount) {
  // The tutorial's output (seeds/002), as JSON lines.
  const std::map<std::string, std::vector<std::string>> expected = {
      {"a",
       {R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1]})",
        R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1, 2]})",
        R"({"user_id": "a", "paid_order_ids": [2], "unpaid_order_ids": [1]})",
        R"({"user_id": "a", "paid_order_ids": [2, 1], "unpaid_order_ids": []})"}},
      {"b",
       {R"({"user_id": "b", "paid_order_ids": [], "unpaid_order_ids": [3]})",
        R"({"user_id": "b", "paid_order_ids": [], "unpaid_order_ids": [3, 4]})",
        R"({"user_id": "b", "paid_order_ids": [4], "unpaid_order_ids": [3]})"}},
  };
  for (uint32_t w : {1u, 2u, 4u}) {
    SCOPED_TRACE(fmt::format("-w {}", w));
    TempDir dir;
    const std::string out = dir.sub("out.json");
    unit_testing::LogCapture logs;
    const auto run = run_cart_join(cart_options(kTutorialFile, out), w);
    const auto lines = read_lines(out);
    EXPECT_EQ(lines.size(), 7u);
    EXPECT_EQ(lines_by_user(lines), expected);
    EXPECT_EQ(run.stats.items_in, 8u);
    EXPECT_EQ(run.stats.items_out, 7u);
    const auto warnings = logs.at(spdlog::level::warn);
    ASSERT_EQ(warnings.size(), 1u) << fmt::format("{}", fmt::join(warnings, "\n"));
    EXPECT_TRUE(contains(warnings[0], "cart-join.json line 6")) << warnings[0];
    EXPECT_TRUE(contains(warnings[0], "FAIL HERE")) << warnings[0];
    EXPECT_TRUE(contains(run.report, "1 bad line")) << run.report;
  }
}

TEST(CartJoinApp, BadLinesAreSkippedWithTheirLineNumbers) {
  TempDir dir;
  const std::string in = dir.sub("events.json");
  const std::vector<std::string> input = {
      R"({"user_id": "a", "type": "order", "order_id": 1})",    R"([1, 2])",
      R"({"user_id": 7, "type": "order", "order_id": 2})",
      R"({"user_id": "a", "type": "payment", "order_id": 99})",  // unknown order: ignored, no output
      R"({"user_id": "a", "type": "order", "order_id": "3"})",  std::string("\0\xff", 2),
      R"({"user_id": "a", "type": "payment", "order_id": 1})",
  };
  std::string content;
  for (const auto& l : input) content += l + "\n";
  write_file(in, content);
  for (uint32_t w : {1u, 2u}) {
    const std::string out = dir.sub(fmt::format("out{}.json", w));
    unit_testing::LogCapture logs;
    const auto run = run_cart_join(cart_options(in, out), w);
    EXPECT_EQ(read_lines(out),
              (std::vector<std::string>{R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1]})",
                                        R"({"user_id": "a", "paid_order_ids": [1], "unpaid_order_ids": []})"}));
    const auto warnings = logs.at(spdlog::level::warn);
    ASSERT_EQ(warnings.size(), 4u);
    for (int line : {2, 3, 5, 6}) {
      const std::string tag = fmt::format("events.json line {}", line);
      EXPECT_EQ(std::count_if(warnings.begin(), warnings.end(), [&](const std::string& m) { return contains(m, tag); }),
                1)
          << tag;
    }
    EXPECT_TRUE(contains(run.report, "4 bad line")) << run.report;
    EXPECT_TRUE(contains(run.report, "1 payment")) << run.report;
  }
}

TEST(CartJoinApp, GeneratedInputMatchesTheReferenceJoin) {
  TempDir dir;
  const std::string events = dir.sub("events");
  const std::string cmd =
      fmt::format("'{}' --events 120000 --users 3000 --files 4 --out '{}' --seed 11 > /dev/null", GEN_CART_BIN, events);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(events)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 4u);
  size_t event_count = 0;
  for (const auto& f : files) event_count += read_lines(f).size();
  ASSERT_GE(event_count, 100000u);

  const auto expected = ref_join(files);
  ASSERT_GT(expected.size(), 1000u);
  std::map<std::string, std::string> expected_final;
  size_t expected_lines = 0;
  for (const auto& [user, lines] : expected) {
    expected_final[user] = lines.back();
    expected_lines += lines.size();
  }

  for (uint32_t w : {1u, 2u, 4u}) {
    SCOPED_TRACE(fmt::format("-w {}", w));
    const std::string out = dir.sub(fmt::format("carts-w{}.json", w));
    const auto run = run_cart_join(cart_options(events, out), w);
    EXPECT_EQ(run.stats.items_in, event_count);
    const auto lines = read_lines(out);
    EXPECT_EQ(lines.size(), expected_lines);
    const auto got = lines_by_user(lines);
    std::map<std::string, std::string> got_final;
    for (const auto& [user, ls] : got) got_final[user] = ls.back();
    EXPECT_TRUE(got_final == expected_final) << "final carts differ";
    size_t users_differing = 0;
    for (const auto& [user, ls] : expected) {
      auto it = got.find(user);
      if (it == got.end() || it->second != ls) {
        if (++users_differing <= 3) ADD_FAILURE() << "user " << user << ": per-user sequence differs";
      }
    }
    EXPECT_EQ(users_differing, 0u);
    EXPECT_EQ(got.size(), expected.size());
  }
}

}  // namespace
