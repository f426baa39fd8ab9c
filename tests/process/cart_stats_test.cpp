// cart_stats through the real binary: tumbling, sliding and session windows
// on a generated multi-file input (time order with a bounded disorder, some
// deliberately late events) with 1, 2 and 4 workers equal a plain reference
// (tests/support/cart_stats_reference.hpp); late lines go to --late exactly;
// the bundled example prints what the README shows; bad input and bad flags
// get one clear line.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/cart_stats_reference.hpp"
#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace ref = cart_stats_reference;

namespace {

struct Case {
  const char* window;
  const char* workers;
  const char* name;
};

class CartStats : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new pt::TempDir();
    ref::generate(tmp_->sub("in"), 120000, 3000, 4, 5, 4000, 997);
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  static pt::TempDir* tmp_;
};
pt::TempDir* CartStats::tmp_ = nullptr;

TEST_P(CartStats, EqualsTheReference) {
  const Case c = GetParam();
  const std::string in = tmp_->sub("in");
  const auto expected = ref::reference(pt::files_in(in), c.window, 5);
  ASSERT_FALSE(expected.late.empty());
  ASSERT_GT(expected.lines.size(), 1000u);
  pt::TempDir out;
  const auto o = pt::run_engine({"run", "cart_stats", "-w", c.workers, "-d", out.sub("state"), "-s", "0.01", "--input",
                                 in, "--window", c.window, "--lateness", "5", "--output", out.sub("out.json"), "--late",
                                 out.sub("late.json")});
  ASSERT_TRUE(o.ok()) << o.describe();
  EXPECT_TRUE(ref::as_set(pt::read_lines(out.sub("out.json"))) == expected.lines)
      << "the windows differ from the reference";
  EXPECT_TRUE(ref::as_set(pt::read_lines(out.sub("late.json"))) == expected.late) << "the late lines differ";
}

INSTANTIATE_TEST_SUITE_P(
    Windows, CartStats,
    ::testing::Values(Case{"tumbling:60", "1", "tumbling_w1"}, Case{"tumbling:60", "2", "tumbling_w2"},
                      Case{"tumbling:60", "4", "tumbling_w4"}, Case{"sliding:60:15", "1", "sliding_w1"},
                      Case{"sliding:60:15", "2", "sliding_w2"}, Case{"sliding:60:15", "4", "sliding_w4"},
                      Case{"session:30", "1", "session_w1"}, Case{"session:30", "2", "session_w2"},
                      Case{"session:30", "4", "session_w4"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CartStatsApp, BundledExampleTumbling) {
  const auto o = pt::run_engine({"run", "cart_stats", "--window", "tumbling:60", "--lateness", "5"});
  ASSERT_TRUE(o.ok()) << o.describe();
  const std::multiset<std::string> expected{
      R"({"user_id": "a", "window_start": "2026-11-21T10:00:00.000Z", "window_end": "2026-11-21T10:01:00.000Z", "orders": 2, "payments": 1})",
      R"({"user_id": "a", "window_start": "2026-11-21T10:01:00.000Z", "window_end": "2026-11-21T10:02:00.000Z", "orders": 1, "payments": 0})",
      R"({"user_id": "a", "window_start": "2026-11-21T10:02:00.000Z", "window_end": "2026-11-21T10:03:00.000Z", "orders": 0, "payments": 1})",
      R"({"user_id": "b", "window_start": "2026-11-21T10:00:00.000Z", "window_end": "2026-11-21T10:01:00.000Z", "orders": 1, "payments": 0})",
      R"({"user_id": "b", "window_start": "2026-11-21T10:01:00.000Z", "window_end": "2026-11-21T10:02:00.000Z", "orders": 0, "payments": 1})",
      R"({"user_id": "c", "window_start": "2026-11-21T10:01:00.000Z", "window_end": "2026-11-21T10:02:00.000Z", "orders": 1, "payments": 0})",
      R"({"user_id": "c", "window_start": "2026-11-21T10:02:00.000Z", "window_end": "2026-11-21T10:03:00.000Z", "orders": 0, "payments": 1})"};
  EXPECT_EQ(ref::as_set(o.out_lines()), expected);
  EXPECT_TRUE(pt::contains(o.err, "1 late event(s) dropped")) << o.err;
}

TEST(CartStatsApp, BundledExampleSessions) {
  const auto o = pt::run_engine({"run", "cart_stats", "--window", "session:30", "--lateness", "5", "-w", "2"});
  ASSERT_TRUE(o.ok()) << o.describe();
  const std::multiset<std::string> expected{
      R"({"user_id": "a", "window_start": "2026-11-21T10:00:03.250Z", "window_end": "2026-11-21T10:01:02.000Z", "orders": 3, "payments": 1})",
      R"({"user_id": "a", "window_start": "2026-11-21T10:02:10.000Z", "window_end": "2026-11-21T10:02:10.000Z", "orders": 0, "payments": 1})",
      R"({"user_id": "b", "window_start": "2026-11-21T10:00:10.000Z", "window_end": "2026-11-21T10:00:10.000Z", "orders": 1, "payments": 0})",
      R"({"user_id": "b", "window_start": "2026-11-21T10:01:05.000Z", "window_end": "2026-11-21T10:01:05.000Z", "orders": 0, "payments": 1})",
      R"({"user_id": "c", "window_start": "2026-11-21T10:01:30.000Z", "window_end": "2026-11-21T10:01:30.000Z", "orders": 1, "payments": 0})",
      R"({"user_id": "c", "window_start": "2026-11-21T10:02:15.000Z", "window_end": "2026-11-21T10:02:15.000Z", "orders": 0, "payments": 1})"};
  EXPECT_EQ(ref::as_set(o.out_lines()), expected);
}

TEST(CartStatsApp, BadTimestampIsAWarningWithFileAndLine) {
  pt::TempDir tmp;
  const std::string in = tmp.sub("in.json");
  pt::write_file(in,
                 "{\"user_id\": \"a\", \"type\": \"order\", \"order_id\": 1, \"ts\": \"2026-11-21T10:00:00Z\"}\n"
                 "{\"user_id\": \"a\", \"type\": \"order\", \"order_id\": 2, \"ts\": \"yesterday\"}\n"
                 "{\"user_id\": \"a\", \"type\": \"order\", \"order_id\": 3}\n"
                 "{\"user_id\": \"a\", \"type\": \"order\", \"order_id\": 4, \"ts\": \"2026-02-30T10:00:00Z\"}\n");
  const auto o = pt::run_engine({"run", "cart_stats", "--input", in, "--window", "tumbling:60"});
  ASSERT_TRUE(o.ok()) << o.describe();
  EXPECT_EQ(o.out_lines().size(), 1u);
  EXPECT_TRUE(pt::contains(o.err, "in.json line 2")) << o.err;
  EXPECT_TRUE(pt::contains(o.err, "ts is not an ISO 8601 UTC time")) << o.err;
  EXPECT_TRUE(pt::contains(o.err, "in.json line 3")) << o.err;
  EXPECT_TRUE(pt::contains(o.err, "missing ts")) << o.err;
  EXPECT_TRUE(pt::contains(o.err, "in.json line 4")) << o.err;
  // --strict: a bad line is an error the --on-error policy handles (fail: exit non-zero, one line).
  const auto strict = pt::run_engine({"run", "cart_stats", "--input", in, "--window", "tumbling:60", "--strict"});
  EXPECT_FALSE(strict.ok());
  EXPECT_TRUE(pt::contains(strict.err, "in.json line 2")) << strict.err;
}

TEST(CartStatsApp, BadWindowFlagsAreOneLine) {
  for (const char* w : {"tumbling", "tumbling:0", "sliding:10:20", "session:x", "hopping:5", "tumbling:5:5"}) {
    SCOPED_TRACE(w);
    const auto o = pt::run_engine({"run", "cart_stats", "--window", w});
    pt::expect_one_line_error(o, "--window");
  }
  pt::expect_one_line_error(pt::run_engine({"run", "cart_stats", "--lateness", "-1"}), "--lateness");
}

}  // namespace
