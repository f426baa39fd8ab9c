// The tutorials of /work/shared/seeds, run through the real `engine` binary:
// the cart join on the bundled file (seeds 000-002), the crash-fix-resume
// story with --strict and -d (seeds 000/001), dead letters, the running sum
// with appended input (seed 004), refusing another app's state, and backups.
//
// The expected texts are the tutorials' outputs written as the JSON lines that
// DESIGN.md section 6 specifies (the tutorials print Python dicts).

#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace fs = std::filesystem;

namespace {

// Seed 002: the 7 updates, per user in order.
const std::vector<std::string> kUserA = {
    R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1]})",
    R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1, 2]})",
    R"({"user_id": "a", "paid_order_ids": [2], "unpaid_order_ids": [1]})",
    R"({"user_id": "a", "paid_order_ids": [2, 1], "unpaid_order_ids": []})",
};
const std::vector<std::string> kUserB = {
    R"({"user_id": "b", "paid_order_ids": [], "unpaid_order_ids": [3]})",
    R"({"user_id": "b", "paid_order_ids": [], "unpaid_order_ids": [3, 4]})",
    R"({"user_id": "b", "paid_order_ids": [4], "unpaid_order_ids": [3]})",
};
// Seed 000: the 5 updates printed before the crash on `FAIL HERE`, in file order.
const std::vector<std::string> kBeforeCrash = {kUserA[0], kUserA[1], kUserB[0], kUserA[2], kUserB[1]};
// Seed 000: the 2 updates printed by the fixed dataflow when it resumes.
const std::vector<std::string> kAfterResume = {
    R"({"user_id": "a", "paid_order_ids": [2, 1], "unpaid_order_ids": []})",
    R"({"user_id": "b", "paid_order_ids": [4], "unpaid_order_ids": [3]})",
};
const std::string kBundled = "data/cart-join.json";

std::map<std::string, std::vector<std::string>> per_user(const std::vector<std::string>& lines) {
  return pt::lines_by_user(lines);
}

// Asserts `lines` are the tutorial's 7 updates, in per-user order.
void expect_seven_updates(const std::vector<std::string>& lines) {
  EXPECT_EQ(lines.size(), 7u);
  const auto users = per_user(lines);
  EXPECT_EQ(users.size(), 2u);
  EXPECT_EQ(users.count("a") ? users.at("a") : std::vector<std::string>{}, kUserA);
  EXPECT_EQ(users.count("b") ? users.at("b") : std::vector<std::string>{}, kUserB);
}

// The stderr lines that mention the bundled file's line 6 (the `FAIL HERE` line).
std::vector<std::string> lines_about_line_6(const pt::Outcome& o) {
  std::vector<std::string> out;
  const std::regex line6(R"(data/cart-join\.json\D*\b6\b)");
  for (const auto& l : o.err_lines()) {
    if (std::regex_search(l, line6)) out.push_back(l);
  }
  return out;
}

// Asserts the run ended by itself with exit 0.
void expect_ok(const pt::Outcome& o) {
  EXPECT_TRUE(o.ok()) << o.describe();
  EXPECT_FALSE(pt::contains(o.err, "terminate called")) << o.err;
}

class CartJoinWorkers : public ::testing::TestWithParam<int> {};

TEST_P(CartJoinWorkers, PrintsTheSevenUpdatesAndWarnsAboutLine6) {
  const auto o = pt::run_engine({"run", "cart_join", "-w", std::to_string(GetParam())});
  expect_ok(o);
  expect_seven_updates(o.out_lines());
  ASSERT_FALSE(o.out.empty());
  EXPECT_EQ(o.out.back(), '\n');
  const auto warnings = lines_about_line_6(o);
  ASSERT_EQ(warnings.size(), 1u) << "expected one warning naming data/cart-join.json line 6:\n" << o.err;
  EXPECT_TRUE(pt::contains(warnings[0], "warn")) << warnings[0];
  EXPECT_TRUE(pt::contains(warnings[0], "FAIL HERE")) << warnings[0];
}

INSTANTIATE_TEST_SUITE_P(Tutorial, CartJoinWorkers, ::testing::Values(1, 2, 4));

class CrashFixResume : public ::testing::TestWithParam<int> {};

// Seeds 000/001: crash on line 6 with --strict, then the "fixed" run resumes
// from the last committed epoch and prints only the last two updates.
TEST_P(CrashFixResume, StrictCrashThenResume) {
  const std::string w = std::to_string(GetParam());
  pt::TempDir tmp;
  const std::string state = tmp.sub("state");

  const auto crash = pt::run_engine({"run", "cart_join", "-w", w, "--strict", "-s", "0", "-d", state});
  EXPECT_TRUE(crash.exited) << "the crash must be an error exit, not a signal: " << crash.describe();
  EXPECT_NE(crash.exit_code, 0) << crash.describe();
  EXPECT_FALSE(pt::contains(crash.err, "terminate called")) << crash.err;
  if (GetParam() == 1) {
    EXPECT_EQ(crash.out_lines(), kBeforeCrash);
  } else {
    const auto users = per_user(crash.out_lines());
    EXPECT_EQ(crash.out_lines().size(), 5u) << crash.out;
    EXPECT_EQ(users.count("a") ? users.at("a") : std::vector<std::string>{},
              std::vector<std::string>(kUserA.begin(), kUserA.begin() + 3));
    EXPECT_EQ(users.count("b") ? users.at("b") : std::vector<std::string>{},
              std::vector<std::string>(kUserB.begin(), kUserB.begin() + 2));
  }
  const auto errors = lines_about_line_6(crash);
  ASSERT_EQ(errors.size(), 1u) << "expected one clear error naming data/cart-join.json line 6:\n" << crash.err;
  EXPECT_EQ(errors[0].rfind("engine: error:", 0), 0u) << errors[0];
  int error_lines = 0;
  for (const auto& l : crash.err_lines()) error_lines += l.rfind("engine: error:", 0) == 0 ? 1 : 0;
  EXPECT_EQ(error_lines, 1) << crash.err;

  const auto resume = pt::run_engine({"run", "cart_join", "-w", w, "-s", "0", "-d", state});
  expect_ok(resume);
  if (GetParam() == 1) {
    EXPECT_EQ(resume.out_lines(), kAfterResume);
  } else {
    EXPECT_EQ(pt::sorted(resume.out_lines()), pt::sorted(kAfterResume));  // two users: no order between them
  }
}

INSTANTIATE_TEST_SUITE_P(Tutorial, CrashFixResume, ::testing::Values(1, 4));

// Checks a dead-letter file of the bundled input: exactly one JSON line, for line 6.
void expect_one_dead_letter_for_line_6(const std::string& path) {
  ASSERT_TRUE(fs::exists(path)) << path;
  const std::string text = pt::read_file(path);
  const auto lines = pt::split_lines(text);
  ASSERT_EQ(lines.size(), 1u) << text;
  EXPECT_EQ(text.back(), '\n');
  const auto j = nlohmann::json::parse(lines[0], nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << lines[0];
  for (const char* field : {"step", "source", "line", "item", "error"}) {
    EXPECT_TRUE(j.contains(field)) << field << " missing from " << lines[0];
  }
  EXPECT_EQ(j.value("step", ""), "deserialize");
  EXPECT_TRUE(pt::contains(j.value("source", ""), kBundled)) << lines[0];
  EXPECT_EQ(j.value("line", 0), 6);
  EXPECT_EQ(j.value("item", ""), "FAIL HERE");
  EXPECT_FALSE(j.value("error", "").empty()) << lines[0];
}

TEST(DeadLetter, StrictRunFinishesAndDeadLettersLine6) {
  pt::TempDir tmp;
  const std::string dead = tmp.sub("dead.jsonl");
  const auto o = pt::run_engine({"run", "cart_join", "-w", "2", "--strict", "--on-error", "dead-letter:" + dead});
  expect_ok(o);
  expect_seven_updates(o.out_lines());
  expect_one_dead_letter_for_line_6(dead);
}

TEST(DeadLetter, WithRecoveryTheRerunAddsNothing) {
  pt::TempDir tmp;
  const std::string dead = tmp.sub("dead.jsonl");
  const std::string state = tmp.sub("state");
  const std::vector<std::string> args = {"run", "cart_join", "-w",  "2",          "--strict",           "-s",
                                         "0",   "-d",        state, "--on-error", "dead-letter:" + dead};
  const auto first = pt::run_engine(args);
  expect_ok(first);
  expect_seven_updates(first.out_lines());
  expect_one_dead_letter_for_line_6(dead);
  // Everything was committed: a rerun reads nothing new and keeps the dead letter once.
  const auto again = pt::run_engine(args);
  expect_ok(again);
  EXPECT_TRUE(again.out.empty()) << again.out;
  expect_one_dead_letter_for_line_6(dead);
}

// Seed 004: the running sum of 0, 1, 2; then 3 and 4 are appended and the
// same command continues from the stored sum.
TEST(RunningSum, ResumesAfterAppendedInput) {
  pt::TempDir tmp;
  const std::string input = tmp.sub("numbers.txt");
  const std::string state = tmp.sub("db_dir");
  pt::write_file(input, "0\n1\n2\n");
  const std::vector<std::string> args = {"run", "running_sum", "--input", input, "-d", state, "-s", "30"};
  const auto first = pt::run_engine(args);
  expect_ok(first);
  EXPECT_EQ(first.out, "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n");

  pt::append_file(input, "3\n4\n");
  const auto second = pt::run_engine(args);
  expect_ok(second);
  EXPECT_EQ(second.out, "('ALL', 6)\n('ALL', 10)\n");
}

TEST(Refusal, AnotherAppsStateDirIsRefusedAndUntouched) {
  pt::TempDir tmp;
  const std::string state = tmp.sub("state");
  const std::string numbers = tmp.sub("numbers.txt");
  pt::write_file(numbers, "1\n2\n");
  const auto cart = pt::run_engine({"run", "cart_join", "-s", "0", "-d", state});
  expect_ok(cart);
  const auto before = pt::fingerprint(state);

  for (const auto& w : {"1", "3"}) {
    const auto o = pt::run_engine({"run", "running_sum", "-w", w, "--input", numbers, "-d", state});
    EXPECT_TRUE(o.exited) << o.describe();
    EXPECT_NE(o.exit_code, 0) << o.describe();
    const auto lines = o.err_lines();
    ASSERT_EQ(lines.size(), 1u) << o.err;
    EXPECT_EQ(lines[0].rfind("engine: error:", 0), 0u) << lines[0];
    EXPECT_TRUE(pt::contains(lines[0], "cart_join")) << "the error must say whose state it is: " << lines[0];
    EXPECT_TRUE(o.out.empty()) << o.out;
    EXPECT_EQ(pt::fingerprint(state), before) << "the refused run changed the state dir";
  }
  // The owner still resumes from it: nothing new, nothing printed.
  const auto owner = pt::run_engine({"run", "cart_join", "-s", "0", "-d", state});
  expect_ok(owner);
  EXPECT_TRUE(owner.out.empty()) << owner.out;
}

// Seed 004's -b/--backup: the state dir is lost, the backup brings it back.
TEST(Backup, ResumesFromTheBackupWhenTheStateDirIsGone) {
  pt::TempDir tmp;
  const std::string input = tmp.sub("numbers.txt");
  const std::string state = tmp.sub("db_dir");
  const std::string backup = tmp.sub("backup");
  pt::write_file(input, "0\n1\n2\n");
  const std::vector<std::string> args = {"run", "running_sum", "--input", input, "-d", state, "-b", backup, "-s", "0"};
  const auto first = pt::run_engine(args);
  expect_ok(first);
  EXPECT_EQ(first.out, "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n");
  ASSERT_TRUE(fs::is_directory(backup));
  EXPECT_FALSE(fs::is_empty(backup));

  fs::remove_all(state);
  pt::append_file(input, "3\n4\n");
  const auto second = pt::run_engine(args);
  expect_ok(second);
  EXPECT_EQ(second.out, "('ALL', 6)\n('ALL', 10)\n");

  // The restored state dir is a working one: appending again continues the sum.
  pt::append_file(input, "5\n");
  const auto third = pt::run_engine(args);
  expect_ok(third);
  EXPECT_EQ(third.out, "('ALL', 15)\n");
}

}  // namespace
