// The engine as a library: install this build into a fresh prefix, build
// examples/wordcount against it with nothing but find_package(engine), and
// run that program as a user would, SIGKILLed again and again and resumed;
// its counts are checked against a word count computed here.

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace fs = std::filesystem;

namespace {

// Runs a shell command with its output in `log`; true if it exited 0.
bool sh(const std::string& command, const std::string& log) {
  return std::system(fmt::format("({}) > '{}' 2>&1", command, log).c_str()) == 0;
}

// The words of `text` as the example defines them, counted plainly: runs of
// ASCII letters, lower-cased.
std::map<std::string, uint64_t> count_words(const std::string& text) {
  std::map<std::string, uint64_t> counts;
  std::string word;
  for (const char c : text + "\n") {
    if (std::isalpha(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 128) {
      word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    } else if (!word.empty()) {
      ++counts[word];
      word.clear();
    }
  }
  return counts;
}

class WordcountExample : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new pt::TempDir();
    const std::string prefix = dir_->sub("prefix");
    const std::string build = dir_->sub("build");
    ASSERT_TRUE(sh(fmt::format("'{}' --install '{}' --prefix '{}'", ENGINE_CMAKE, ENGINE_BUILD_DIR, prefix),
                   dir_->sub("install.log")))
        << pt::read_file(dir_->sub("install.log"));
    ASSERT_TRUE(sh(fmt::format("'{0}' -S '{1}/examples/wordcount' -B '{2}' -DCMAKE_PREFIX_PATH='{3}' && '{0}' "
                               "--build '{2}' -j2",
                               ENGINE_CMAKE, pt::kSourceDir, build, prefix),
                   dir_->sub("build.log")))
        << pt::read_file(dir_->sub("build.log"));
    bin_ = build + "/wordcount";
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static pt::TempDir* dir_;
  static std::string bin_;
};

pt::TempDir* WordcountExample::dir_ = nullptr;
std::string WordcountExample::bin_;

TEST_F(WordcountExample, CountsOneFileLikeTheReference) {
  pt::TempDir tmp;
  const std::string text = "The cat, the DOG.\nthe end; Ünïcode and 42 digits-split\n";
  pt::write_file(tmp.sub("in.txt"), text);
  const auto o = pt::run_process(bin_, {"run", "wordcount", "--input", tmp.sub("in.txt"), "-w", "2"});
  ASSERT_TRUE(o.ok()) << o.describe();
  std::map<std::string, uint64_t> last;
  std::map<std::string, std::vector<uint64_t>> seen;
  static const std::regex line(R"re(\{"word": "([a-z]+)", "count": (\d+)\})re");
  for (const auto& l : pt::nonempty_lines(o.out)) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l, m, line)) << l;
    seen[m[1]].push_back(std::stoull(m[2]));
    last[m[1]] = std::stoull(m[2]);
  }
  EXPECT_EQ(last, count_words(text));
  EXPECT_EQ(last.at("the"), 3u);
  EXPECT_EQ(seen.at("the"), (std::vector<uint64_t>{1, 2, 3}));
  // The whole command line came with engine::main.
  for (const auto& args : std::vector<std::vector<std::string>>{{"--help"}, {"list"}, {"run", "--help"}}) {
    EXPECT_TRUE(pt::run_process(bin_, args).ok()) << fmt::format("{}", fmt::join(args, " "));
  }
  const auto bad = pt::run_process(bin_, {"run", "wordcount"});
  pt::expect_one_line_error(bad, "no --input");
  EXPECT_EQ(bad.exit_code, 2);
}

// Kill -9 at random moments with recovery on, resume with the same command:
// per word, the output counts 1, 2, ..., N exactly once, and N is the word's
// count in the input.
TEST_F(WordcountExample, KilledAndResumedCountsEveryWordOnce) {
  pt::TempDir tmp;
  std::mt19937_64 rng(pt::kill_seed(17));
  const std::vector<std::string> vocabulary = {"alpha", "Beta", "gamma", "DELTA",  "epsilon", "zeta", "eta",
                                               "theta", "iota", "kappa", "lambda", "mu",      "nu",   "xi"};
  std::string all;
  fs::create_directories(tmp.sub("in"));
  for (int f = 0; f < 3; ++f) {
    std::string text;
    for (int i = 0; i < 40000; ++i) {
      for (int w = 0; w < 6; ++w) {
        text += vocabulary[rng() % vocabulary.size()] + std::string(w % 3 == 0 ? ", " : " ");
      }
      text += fmt::format("{}!\n", i);
    }
    pt::write_file(tmp.sub(fmt::format("in/part-{}.txt", f)), text);
    all += text;
  }
  const auto expected = count_words(all);
  auto args_for = [&](const std::string& state, const std::string& out) {
    return std::vector<std::string>{"run", "wordcount", "-w",          "2",        "-s", "0.01", "-d",
                                    state, "--input",   tmp.sub("in"), "--output", out,  "-q"};
  };
  // Per word, the output counts 1, 2, ..., N exactly once: nothing doubled or lost.
  auto check_output = [&](const std::string& out) {
    std::map<std::string, uint64_t> last;
    static const std::regex line(R"re(\{"word": "([a-z]+)", "count": (\d+)\})re");
    const std::string text = pt::read_file(out);
    if (text.empty() || text.back() != '\n') return ::testing::AssertionFailure() << "empty or torn output";
    for (const auto& l : pt::split_lines(text)) {
      std::smatch m;
      if (!std::regex_match(l, m, line)) return ::testing::AssertionFailure() << "malformed line: " << l;
      const uint64_t n = std::stoull(m[2]);
      if (n != ++last[m[1]]) {
        return ::testing::AssertionFailure()
               << "word " << m[1] << ": count " << n << " after " << n - 1 << " lines of it (doubled or lost output)";
      }
    }
    if (last != expected) return ::testing::AssertionFailure() << "final counts differ from the input's";
    return ::testing::AssertionSuccess();
  };
  const auto clean = pt::run_process(bin_, args_for(tmp.sub("clean-state"), tmp.sub("clean.json")));
  ASSERT_TRUE(clean.ok()) << clean.describe();
  ASSERT_TRUE(check_output(tmp.sub("clean.json"))) << "the uninterrupted run is already wrong";

  pt::KillPlan plan;
  plan.bin = bin_;
  plan.seed = pt::kill_seed(23);
  plan.min_kills = 20;
  plan.expected_run_seconds = std::max(0.1, 4 * clean.seconds);
  const int kills = pt::kill_rounds(tmp.path(), plan, 6, [&](const std::string& dir, const pt::KillPlan& p) {
    const std::string state = dir + "/state";
    const std::string out = dir + "/out.json";
    const auto result = pt::kill_loop(
        p, [&](int) { return args_for(state, out); }, [&] { return pt::committed_fraction(state, all.size()); }, dir);
    if (!pt::loop_finished(result)) {
      ADD_FAILURE() << pt::loop_finished(result).message();
      return -1;
    }
    EXPECT_TRUE(check_output(out)) << "kills at " << result.schedule();
    return result.kills;
  });
  EXPECT_GE(kills, 20);
}

}  // namespace
