// Live inputs with the real binary: a followed file keeps being read as a
// writer appends to it, a SIGTERM commits and exits 0, and the same command
// then goes on where it stopped; kill -9 while following loses and doubles
// nothing; a followed directory picks up new files; a truncated followed
// file is read again from its start; stdin is read as it comes; output
// appears while an epoch is still open (sinks flush when idle).

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace fs = std::filesystem;

namespace {

using pt::contains;
using pt::read_file;

size_t lines_in(const std::string& path) { return fs::exists(path) ? pt::complete_lines(read_file(path)).size() : 0; }

// Waits (at most 60 s) until `path` has `n` complete lines or `child` ended; whether it got there.
bool wait_for_lines(const std::string& path, size_t n, pt::Child& child) {
  const auto deadline = pt::Clock::now() + std::chrono::seconds(60);
  while (pt::Clock::now() < deadline && child.running()) {
    if (lines_in(path) >= n) return true;
    child.wait_for(pt::Seconds(0.01));
  }
  return lines_in(path) >= n;
}

// Stops a followed run with SIGTERM; it must commit and exit 0.
void stop(pt::Child& child, const std::string& err_path) {
  child.signal(SIGTERM);
  ASSERT_TRUE(child.wait_for(pt::Seconds(60)));
  const auto o = pt::outcome_of(child.status(), child.seconds());
  EXPECT_TRUE(o.ok()) << "a followed run stopped by SIGTERM exits 0: " << o.describe() << read_file(err_path);
}

class Follow : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = pt::make_cart_input(tmp_.sub("gen"), 40000, 4000, 1, 61);
    content_ = read_file(input_.files.at(0));
  }
  std::vector<std::string> args(const std::string& in, const std::string& out) const {
    return {"run",      "cart_join", "-w",           "2",        "-s", "0.05", "--input", in,
            "--follow", "-d",        tmp_.sub("st"), "--output", out};
  }
  pt::TempDir tmp_;
  pt::CartInput input_;
  std::string content_;
};

TEST_F(Follow, AppendStopAppendResumeEqualsOneRun) {
  const std::string in = tmp_.sub("in.json");
  const std::string out = tmp_.sub("out.json");
  const size_t half = content_.find('\n', content_.size() / 2) + 1;
  pt::write_file(in, "");
  {
    pt::Child engine(pt::kEngine, args(in, out), tmp_.sub("1.out"), tmp_.sub("1.err"));
    // The writer appends in 4 KB pieces (cutting lines) while the engine follows.
    for (size_t off = 0; off < half; off += 4096) {
      pt::append_file(in, std::string_view(content_).substr(off, std::min<size_t>(4096, half - off)));
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    const auto first_half = pt::reference_join({in});
    ASSERT_TRUE(wait_for_lines(out, first_half.outputs, engine)) << read_file(tmp_.sub("1.err"));
    stop(engine, tmp_.sub("1.err"));
  }
  pt::append_file(in, content_.substr(half));
  {
    pt::Child engine(pt::kEngine, args(in, out), tmp_.sub("2.out"), tmp_.sub("2.err"));
    ASSERT_TRUE(wait_for_lines(out, input_.ref.outputs, engine)) << read_file(tmp_.sub("2.err"));
    stop(engine, tmp_.sub("2.err"));
    EXPECT_TRUE(contains(read_file(tmp_.sub("2.err")), "resumed")) << read_file(tmp_.sub("2.err"));
  }
  EXPECT_TRUE(pt::matches_reference(pt::split_lines(read_file(out)), input_.ref));
}

TEST_F(Follow, KilledWhileFollowingAndAppendingLosesNothing) {
  const std::string in = tmp_.sub("in.json");
  const std::string out = tmp_.sub("out.json");
  pt::write_file(in, "");
  std::mt19937_64 rng(pt::kill_seed(71));
  size_t written = 0;
  for (int kill = 0; kill < 20; ++kill) {
    pt::Child engine(pt::kEngine, args(in, out), tmp_.sub("k.out"), tmp_.sub("k.err"));
    // Append a random piece, then kill after a random moment.
    const size_t piece = std::min(content_.size() - written, static_cast<size_t>(rng() % 60000));
    pt::append_file(in, std::string_view(content_).substr(written, piece));
    written += piece;
    engine.wait_for(pt::Seconds(std::uniform_real_distribution<double>(0.005, 0.4)(rng)));
    ASSERT_TRUE(engine.running()) << "a followed run ended by itself: " << read_file(tmp_.sub("k.err"));
    engine.kill_now();
  }
  pt::append_file(in, content_.substr(written));
  pt::Child engine(pt::kEngine, args(in, out), tmp_.sub("last.out"), tmp_.sub("last.err"));
  ASSERT_TRUE(wait_for_lines(out, input_.ref.outputs, engine)) << read_file(tmp_.sub("last.err"));
  stop(engine, tmp_.sub("last.err"));
  EXPECT_TRUE(pt::matches_reference(pt::split_lines(read_file(out)), input_.ref));
}

TEST_F(Follow, ADirectoryPicksUpNewFiles) {
  const std::string dir = tmp_.sub("events");
  fs::create_directories(dir);
  const std::string out = tmp_.sub("out.json");
  // One user per file: the reference may read the files in any order.
  pt::write_file(dir + "/a.json", R"({"user_id": "a", "type": "order", "order_id": 1})"
                                  "\n");
  pt::Child engine(pt::kEngine, args(dir, out), tmp_.sub("d.out"), tmp_.sub("d.err"));
  ASSERT_TRUE(wait_for_lines(out, 1, engine)) << read_file(tmp_.sub("d.err"));
  pt::write_file(dir + "/b.json", R"({"user_id": "b", "type": "order", "order_id": 2})"
                                  "\n");
  pt::append_file(dir + "/a.json", R"({"user_id": "a", "type": "payment", "order_id": 1})"
                                   "\n");
  ASSERT_TRUE(wait_for_lines(out, 3, engine)) << read_file(tmp_.sub("d.err"));
  stop(engine, tmp_.sub("d.err"));
  EXPECT_EQ(pt::sorted(pt::split_lines(read_file(out))),
            pt::sorted(std::vector<std::string>{R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1]})",
                                                R"({"user_id": "b", "paid_order_ids": [], "unpaid_order_ids": [2]})",
                                                R"({"user_id": "a", "paid_order_ids": [1], "unpaid_order_ids": []})"}));
}

// More followed files than a worker keeps open at once (16): idle ones take
// turns, so lines appended to any of them are read.
TEST_F(Follow, MoreFilesThanOpenSlotsAreAllFollowed) {
  const std::string dir = tmp_.sub("many");
  fs::create_directories(dir);
  const std::string out = tmp_.sub("out.json");
  for (int f = 0; f < 40; ++f) pt::write_file(fmt::format("{}/f{:02}.json", dir, f), "");
  pt::Child engine(pt::kEngine, {"run", "cart_join", "-w", "1", "--input", dir, "--follow", "--output", out},
                   tmp_.sub("m.out"), tmp_.sub("m.err"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int f = 0; f < 40; ++f) {
    pt::append_file(fmt::format("{}/f{:02}.json", dir, f),
                    fmt::format(R"({{"user_id": "u{}", "type": "order", "order_id": {}}})"
                                "\n",
                                f, f));
  }
  ASSERT_TRUE(wait_for_lines(out, 40, engine)) << lines_in(out) << " of 40 lines; " << read_file(tmp_.sub("m.err"));
  stop(engine, tmp_.sub("m.err"));
}

TEST_F(Follow, ATruncatedFileIsReadAgainFromItsStart) {
  const std::string in = tmp_.sub("log.txt");
  const std::string out = tmp_.sub("sums.out");
  pt::write_file(in, "1\n2\n3\n");
  pt::Child engine(pt::kEngine,
                   {"run", "running_sum", "--input", in, "--follow", "-d", tmp_.sub("sum-st"), "--output", out},
                   tmp_.sub("t.out"), tmp_.sub("t.err"));
  ASSERT_TRUE(wait_for_lines(out, 3, engine)) << read_file(tmp_.sub("t.err"));
  pt::write_file(in, "10\n");  // truncated, then a new first line
  ASSERT_TRUE(wait_for_lines(out, 4, engine)) << read_file(tmp_.sub("t.err"));
  stop(engine, tmp_.sub("t.err"));
  EXPECT_EQ(read_file(out), "('ALL', 1)\n('ALL', 3)\n('ALL', 6)\n('ALL', 16)\n");
  EXPECT_TRUE(contains(read_file(tmp_.sub("t.err")), "was truncated: reading it again from its start"))
      << read_file(tmp_.sub("t.err"));
}

TEST_F(Follow, OutputAppearsWhileTheEpochIsStillOpen) {
  const std::string in = tmp_.sub("in.json");
  const std::string out = tmp_.sub("out.json");
  pt::write_file(in, "");
  // One epoch of an hour: nothing commits, yet every line must reach the output file promptly.
  pt::Child engine(pt::kEngine, {"run", "cart_join", "--input", in, "--follow", "-s", "3600", "--output", out},
                   tmp_.sub("o.out"), tmp_.sub("o.err"));
  for (int i = 1; i <= 3; ++i) {
    pt::append_file(in, fmt::format(R"({{"user_id": "u", "type": "order", "order_id": {}}})"
                                    "\n",
                                    i));
    ASSERT_TRUE(wait_for_lines(out, static_cast<size_t>(i), engine)) << read_file(tmp_.sub("o.err"));
  }
  stop(engine, tmp_.sub("o.err"));
}

TEST(Stdin, IsReadAsItComesAndResumedWithoutReplay) {
  pt::TempDir tmp;
  const std::string state = tmp.sub("st");
  const auto first = pt::run_process(
      "/bin/sh",
      {"-c", fmt::format("printf '1\\n2\\n3' | '{}' run running_sum --input - -d '{}' -q", pt::kEngine, state)});
  ASSERT_TRUE(first.ok()) << first.describe();
  EXPECT_EQ(first.out, "('ALL', 1)\n('ALL', 3)\n('ALL', 6)\n");
  const auto second = pt::run_process(
      "/bin/sh", {"-c", fmt::format("printf '10\\n' | '{}' run running_sum --input - -d '{}' -q", pt::kEngine, state)});
  ASSERT_TRUE(second.ok()) << second.describe();
  EXPECT_EQ(second.out, "('ALL', 16)\n") << "the state is restored; stdin is not replayed";
  EXPECT_TRUE(contains(second.err, "stdin cannot be replayed")) << second.err;
}

TEST(Bom, AByteOrderMarkIsNotABadLine) {
  pt::TempDir tmp;
  pt::write_file(tmp.sub("bom.json"),
                 "\xEF\xBB\xBF"
                 R"({"user_id": "a", "type": "order", "order_id": 1})"
                 "\n");
  const auto o = pt::run_engine({"run", "cart_join", "--input", tmp.sub("bom.json")});
  ASSERT_TRUE(o.ok()) << o.describe();
  EXPECT_EQ(o.out, R"({"user_id": "a", "paid_order_ids": [], "unpaid_order_ids": [1]})"
                   "\n");
  EXPECT_FALSE(contains(o.err, "bad line")) << o.err;
}

}  // namespace
