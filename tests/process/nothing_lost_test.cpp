// Nothing lost, nothing destroyed, with the real binary: a last line without
// its newline is not consumed until it is complete; a file is one partition
// however it is spelled, and a resume with other inputs or outputs is
// refused; no output may overwrite an input or land in the state dir; ten
// thousand input files fit in bounded memory and descriptors; stray
// arguments, special files, warning floods and signals get clear answers.

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process_testing.hpp"

namespace pt = process_testing;
namespace fs = std::filesystem;

namespace {

using pt::contains;
using pt::expect_one_line_error;
using pt::read_file;
using pt::TempDir;
using pt::write_file;

std::string event(const std::string& user, const char* type, int64_t id) {
  return fmt::format(R"({{"user_id": "{}", "type": "{}", "order_id": {}}})", user, type, id);
}

// `n` cart events over 50 users: orders, then payments of some of them.
std::string cart_lines(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    const std::string user = fmt::format("u{}", i % 50);
    s += event(user, i % 3 == 2 ? "payment" : "order", i % 3 == 2 ? i - 2 : i) + "\n";
  }
  return s;
}

// The committed source offsets of a state dir (`engine inspect --json`): partition -> byte offset.
std::map<std::string, uint64_t> committed_offsets(const std::string& state_dir) {
  const auto o = pt::run_engine({"inspect", state_dir, "--json"});
  EXPECT_TRUE(o.ok()) << o.describe();
  std::map<std::string, uint64_t> out;
  const auto j = nlohmann::json::parse(o.out, nullptr, false);
  if (!j.is_object() || !j.contains("source_offsets")) return out;
  for (const auto& [step, parts] : j["source_offsets"].items()) {
    for (const auto& [part, v] : parts.items()) out[part] = std::stoull(v.get<std::string>());
  }
  return out;
}

// ---- a last line without its newline ------------------------------------------------

class PartialLine : public ::testing::TestWithParam<uint32_t> {};

// The append-and-rerun story: a 1001-line file whose last line is a 20-byte fragment
// (a writer is still appending), the rest appended, the same command again:
// every event counts once, as in one run over the finished file.
TEST_P(PartialLine, AFragmentCompletedLaterIsReadExactlyOnce) {
  TempDir tmp;
  const std::string in = tmp.sub("in.json");
  const std::string out = tmp.sub("out.json");
  const std::string complete = cart_lines(1000);
  const std::string last = event("u7", "order", 7777);
  const std::string fragment = last.substr(0, 20);
  write_file(in, complete + fragment);
  const std::vector<std::string> cmd = {"run",     "cart_join", "-w",       std::to_string(GetParam()),
                                        "-s",      "0.01",      "-d",       tmp.sub("st"),
                                        "--input", in,          "--output", out};
  const auto first = pt::run_engine(cmd);
  ASSERT_TRUE(first.ok()) << first.describe();
  // The run really ended there, so the fragment was read as a last (bad) line ...
  EXPECT_TRUE(contains(first.err, "line 1001")) << first.err;
  // ... but it is not committed: the committed offset stops at the last newline.
  EXPECT_EQ(committed_offsets(tmp.sub("st")), (std::map<std::string, uint64_t>{{in, complete.size()}}));

  pt::append_file(in, last.substr(20) + "\n" + event("u7", "payment", 7777) + "\n");
  const auto second = pt::run_engine(cmd);
  ASSERT_TRUE(second.ok()) << second.describe();
  EXPECT_FALSE(contains(second.err, "skipping bad line")) << second.err;
  const auto ref = pt::reference_join({in});
  EXPECT_EQ(ref.bad_lines, 0u);
  EXPECT_TRUE(pt::matches_reference(pt::split_lines(read_file(out)), ref));
  EXPECT_EQ(ref.carts.at("u7").back().paid.back(), 7777);
}

INSTANTIATE_TEST_SUITE_P(Workers, PartialLine, ::testing::Values(1u, 2u));

// Both sides of the rule on the recovery tutorial's running sum: a finished
// file's last line without a newline is read (the run ends there), yet a
// later append that turns "2" into "25" counts 25, not 2 and 5.
TEST(PartialLineRule, TheLastLineIsReadButNotCommitted) {
  TempDir tmp;
  const std::string in = tmp.sub("sums.txt");
  write_file(in, "0\n1\n2");
  const auto plain = pt::run_engine({"run", "running_sum", "--input", in, "-q"});
  ASSERT_TRUE(plain.ok()) << plain.describe();
  EXPECT_EQ(plain.out, "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n");

  const std::string out = tmp.sub("sums.out");
  const std::vector<std::string> cmd = {"run",         "running_sum", "--input", in,  "-d",
                                        tmp.sub("st"), "--output",    out,       "-q"};
  ASSERT_TRUE(pt::run_engine(cmd).ok());
  EXPECT_EQ(read_file(out), "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n");
  EXPECT_EQ(committed_offsets(tmp.sub("st")).at(in), 4u) << "the unterminated '2' must not be committed";
  // Unchanged input, same command: the output is rewritten, not doubled.
  ASSERT_TRUE(pt::run_engine(cmd).ok());
  EXPECT_EQ(read_file(out), "('ALL', 0)\n('ALL', 1)\n('ALL', 3)\n");

  pt::append_file(in, "5\n3\n");  // the file is now 0, 1, 25, 3
  ASSERT_TRUE(pt::run_engine(cmd).ok());
  EXPECT_EQ(read_file(out), "('ALL', 0)\n('ALL', 1)\n('ALL', 26)\n('ALL', 29)\n");
}

// A writer appends a cart file in 4 KB chunks (cutting lines anywhere) while
// the same command runs again and again; after a last run, the output is
// exactly that of one run over the finished file.
TEST(PartialLineRule, AFileAppendedInChunksWhileReadLosesNothing) {
  TempDir tmp;
  const std::string gen = tmp.sub("gen");
  pt::generate_carts(gen, 60000, 2000, 1, 11);
  const std::string content = read_file(pt::files_in(gen).at(0));
  const std::string in = tmp.sub("in.json");
  const std::string out = tmp.sub("out.json");
  write_file(in, "");
  std::atomic<bool> written{false};
  std::atomic<int> runs{0};
  // The writer holds back its last 8 KB until three runs have read the growing
  // file, so runs overlap the appends however fast or slow the machine is.
  std::thread writer([&] {
    for (size_t off = 0; off < content.size(); off += 4096) {
      if (off + 8192 >= content.size()) {
        while (runs.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      pt::append_file(in, std::string_view(content).substr(off, 4096));
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    written = true;
  });
  const std::vector<std::string> cmd = {"run",         "cart_join", "-w", "2",        "-s", "0.005", "-d",
                                        tmp.sub("st"), "--input",   in,   "--output", out,  "-q"};
  bool failed = false;
  while (!written.load()) {
    const auto o = pt::run_engine(cmd);
    ++runs;
    if (!o.ok()) {
      ADD_FAILURE() << "run " << runs.load() << ": " << o.describe();
      failed = true;
      runs = 1000;  // release the writer
      break;
    }
  }
  writer.join();
  ASSERT_FALSE(failed);
  const auto last = pt::run_engine(cmd);
  ASSERT_TRUE(last.ok()) << last.describe();
  EXPECT_GE(runs.load(), 3);
  const auto ref = pt::reference_join({in});
  EXPECT_EQ(ref.bad_lines, 0u);
  EXPECT_TRUE(pt::matches_reference(pt::split_lines(read_file(out)), ref)) << runs.load() << " runs while appending";
}

// ---- a partition is a file, not a spelling ----------------------------------------

class PathIdentity : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = pt::make_cart_input(tmp_.sub("in"), 30000, 3000, 3, 5);
    const auto o = run({"--input", "in", "-d", "st", "--output", "out.json"});
    ASSERT_TRUE(o.ok()) << o.describe();
    ASSERT_TRUE(pt::matches_reference(pt::split_lines(read_file(tmp_.sub("out.json"))), input_.ref));
  }
  pt::Outcome run(std::vector<std::string> args, const std::string& cwd = "") {
    args.insert(args.begin(), {"run", "cart_join", "-w", "2"});
    return pt::run_engine_in(cwd.empty() ? tmp_.path() : cwd, args);
  }
  TempDir tmp_;
  pt::CartInput input_;
};

TEST_F(PathIdentity, SpellingsOfOneFileAreOnePartition) {
  const auto out_before = read_file(tmp_.sub("out.json"));
  fs::create_symlink(tmp_.sub("in"), tmp_.sub("in_link"));
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--input", "./in", "-d", "./st", "--output", "./out.json"},
           {"--input", tmp_.sub("in") + "/", "-d", tmp_.sub("st"), "--output", tmp_.sub("out.json")},
           {"--input", "in_link", "-d", "st/", "--output", "./in/../out.json"}}) {
    SCOPED_TRACE(fmt::format("{}", fmt::join(args, " ")));
    const auto o = run(args);
    ASSERT_TRUE(o.ok()) << o.describe();
    EXPECT_TRUE(contains(o.err, "0 items in, 0 items out")) << o.err;
    EXPECT_EQ(read_file(tmp_.sub("out.json")), out_before) << "the committed output was cut or rewritten";
  }
}

TEST_F(PathIdentity, AnotherInputOrOutputIsRefusedUntouched) {
  fs::copy(tmp_.sub("in"), tmp_.sub("other"));
  fs::create_directories(tmp_.sub("sub/in"));
  fs::copy(tmp_.sub("in"), tmp_.sub("sub/in"));
  const auto state_before = pt::fingerprint(tmp_.sub("st"));
  const auto out_before = read_file(tmp_.sub("out.json"));
  struct Case {
    std::vector<std::string> args;
    std::string cwd;
    std::vector<std::string> named;
  };
  const std::vector<Case> cases = {
      {{"--input", "other", "-d", "st", "--output", "out.json"}, "", {"'input'", tmp_.sub("in"), tmp_.sub("other")}},
      {{"--input", "in", "-d", "st", "--output", "new.json"}, "", {"'output'", tmp_.sub("new.json")}},
      {{"--input", "in", "-d", "st", "--output", "carts/"}, "", {"'output'", tmp_.sub("carts")}},
      {{"--input", "in", "-d", "st"}, "", {"'output'", "stdout"}},
      // The same words from another working directory name other files.
      {{"--input", "in", "-d", "../st", "--output", "../out.json"}, tmp_.sub("sub"), {tmp_.sub("sub/in")}},
  };
  for (const auto& c : cases) {
    const auto o = run(c.args, c.cwd);
    expect_one_line_error(o, fmt::format("{}", fmt::join(c.args, " ")));
    for (const auto& n : c.named) EXPECT_TRUE(contains(o.err, n)) << "'" << n << "' not named: " << o.err;
    EXPECT_TRUE(contains(o.err, "--allow-io-change")) << o.err;
    EXPECT_EQ(pt::fingerprint(tmp_.sub("st")), state_before);
    EXPECT_EQ(read_file(tmp_.sub("out.json")), out_before);
  }
  EXPECT_FALSE(fs::exists(tmp_.sub("new.json")));
  EXPECT_FALSE(fs::exists(tmp_.sub("carts")));
  // Said explicitly, the new input is read from its start on top of the restored state.
  const auto o = run({"--input", "other", "-d", "st", "--output", "out.json", "--allow-io-change"});
  ASSERT_TRUE(o.ok()) << o.describe();
  EXPECT_TRUE(contains(o.err, fmt::format("{} items in", input_.ref.events))) << o.err;
}

TEST(OutputParts, AChangedPartCountIsRefused) {
  TempDir tmp;
  write_file(tmp.sub("in.json"), cart_lines(300));
  const auto cmd = [&](const char* parts) {
    return std::vector<std::string>{"run",
                                    "cart_join",
                                    "--input",
                                    tmp.sub("in.json"),
                                    "-d",
                                    tmp.sub("st"),
                                    "--output",
                                    tmp.sub("carts") + "/",
                                    "--output-parts",
                                    parts};
  };
  ASSERT_TRUE(pt::run_engine(cmd("4")).ok());
  const auto before = pt::fingerprint(tmp.sub("carts"));
  const auto o = pt::run_engine(cmd("8"));
  expect_one_line_error(o, "--output-parts 8 after 4");
  EXPECT_TRUE(contains(o.err, "4 part files")) << o.err;
  EXPECT_TRUE(contains(o.err, "8 part files")) << o.err;
  EXPECT_EQ(pt::fingerprint(tmp.sub("carts")), before);
  EXPECT_TRUE(pt::run_engine(cmd("4")).ok());
}

// ---- never destroy an input ---------------------------------------------------------

TEST(OutputSafety, NoOutputMayOverwriteAnInputOrTheStateDir) {
  TempDir tmp;
  const std::string data = tmp.sub("data.jsonl");
  const std::string content = cart_lines(200);
  write_file(data, content);
  fs::create_directories(tmp.sub("dir"));
  write_file(tmp.sub("dir/a.json"), content);
  ASSERT_EQ(::link(data.c_str(), tmp.sub("hardlink.jsonl").c_str()), 0);
  ASSERT_TRUE(pt::run_engine({"run", "cart_join", "--input", data, "-d", tmp.sub("st"), "-q"}).ok());
  const auto state_before = pt::fingerprint(tmp.sub("st"));
  const std::string fresh = tmp.sub("fresh_state");
  struct Case {
    std::vector<std::string> args;
    std::string named;
  };
  const std::vector<Case> cases = {
      {{"--input", data, "--output", data, "-d", fresh}, "refusing to overwrite an input"},
      {{"--input", data, "--on-error", "dead-letter:" + data, "-d", fresh}, "dead-letter file"},
      {{"--input", data, "--stats", data, "-d", fresh}, "stats file"},
      {{"--input", data, "--output", tmp.sub("hardlink.jsonl")}, "refusing to overwrite an input"},
      {{"--input", tmp.sub("dir"), "--output", tmp.sub("dir/out.json"), "-d", fresh}, "inside input directory"},
      {{"--input", tmp.sub("dir"), "--output", tmp.sub("dir") + "/", "-d", fresh}, "inside input directory"},
      {{"--input", data, "-d", tmp.sub("st"), "--output", tmp.sub("st/out.json")}, "state dir"},
      {{"--input", data, "-d", tmp.sub("st"), "--on-error", "dead-letter:" + tmp.sub("st/db/x")}, "state dir"},
      {{"--input", data, "--output", tmp.sub("o.json"), "--on-error", "dead-letter:" + tmp.sub("o.json")}, "both"},
      {{"--input", data, "--output", tmp.sub("o.json"), "--stats", tmp.sub("no/such/dir/stats.json"), "-d", fresh},
       "cannot write stats file"},
      {{"--input", data, "--output", tmp.sub("o.json"), "--stats", tmp.sub("dir"), "-d", fresh},
       "cannot write stats file"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"run", "cart_join"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto o = pt::run_engine(args);
    const std::string what = fmt::format("{}", fmt::join(c.args, " "));
    expect_one_line_error(o, what);
    EXPECT_TRUE(contains(o.err, c.named)) << what << ": " << o.err;
    EXPECT_EQ(read_file(data), content) << what << " changed the input";
    EXPECT_EQ(read_file(tmp.sub("dir/a.json")), content) << what;
    EXPECT_FALSE(fs::exists(tmp.sub("dir/out.json"))) << what;
    EXPECT_FALSE(fs::exists(tmp.sub("dir/part-000"))) << what;
    EXPECT_FALSE(fs::exists(tmp.sub("o.json"))) << what << ": refused, yet an output was created";
    EXPECT_FALSE(fs::exists(fresh)) << what << ": refused, yet a state dir was created";
    EXPECT_EQ(pt::fingerprint(tmp.sub("st")), state_before) << what;
  }
}

// A state dir refused (another app's) is checked before any output is created.
TEST(OutputSafety, ARefusedRunCreatesNoOutput) {
  TempDir tmp;
  write_file(tmp.sub("sums.txt"), "1\n2\n");
  ASSERT_TRUE(pt::run_engine({"run", "running_sum", "--input", tmp.sub("sums.txt"), "-d", tmp.sub("st"), "-q"}).ok());
  const auto o = pt::run_engine({"run", "cart_join", "-d", tmp.sub("st"), "--output", tmp.sub("carts") + "/",
                                 "--on-error", "dead-letter:" + tmp.sub("dead.jsonl")});
  expect_one_line_error(o, "cart_join on running_sum's state dir");
  EXPECT_TRUE(contains(o.err, "running_sum")) << o.err;
  EXPECT_FALSE(fs::exists(tmp.sub("carts")));
  EXPECT_FALSE(fs::exists(tmp.sub("dead.jsonl")));
}

// ---- many files -----------------------------------------------------------------------

// Ten thousand small files: every partition is opened only when read, a few
// at a time, with a buffer sized to the file, so the run fits in 200 MB and 256
// file descriptors.
TEST(ManyFiles, TenThousandFilesInBoundedMemoryAndDescriptors) {
  TempDir tmp;
  const auto input = pt::make_cart_input(tmp.sub("in"), 200000, 20000, 10000, 3);
  const std::string out = tmp.sub("out.json");
  const auto o = pt::run_process("/bin/sh",
                                 {"-c", "ulimit -n 256 && exec \"$0\" \"$@\"", pt::kEngine, "run", "cart_join", "-w",
                                  "2", "-d", tmp.sub("st"), "--input", input.dir, "--output", out, "-s", "0.2"},
                                 pt::Seconds(300));
  ASSERT_TRUE(o.ok()) << o.describe();
  EXPECT_LT(o.max_rss_kb, 200 * 1024) << "peak RSS " << o.max_rss_kb / 1024 << " MB";
  EXPECT_TRUE(pt::matches_reference(pt::split_lines(read_file(out)), input.ref));
  std::printf("[ info ] 10000 files: peak RSS %ld MB, %.2f s\n", o.max_rss_kb / 1024, o.seconds);
}

// ---- smaller holes ----------------------------------------------------------------------

TEST(SmallHoles, AStrayArgumentIsAUsageError) {
  TempDir tmp;
  const auto o = pt::run_engine_in(tmp.path(), {"run", "cart_join", "-w", "2", "state/"});
  expect_one_line_error(o, "a forgotten -d");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_TRUE(contains(o.err, "state/")) << o.err;
  EXPECT_FALSE(fs::exists(tmp.sub("state")));
}

TEST(SmallHoles, SpecialFilesAsInputSayWhatTheyAre) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo(tmp.sub("pipe").c_str(), 0644), 0);
  for (const auto& [path, kind] : std::vector<std::pair<std::string, std::string>>{{tmp.sub("pipe"), "named pipe"},
                                                                                   {"/dev/zero", "character device"}}) {
    const auto o = pt::run_engine({"run", "cart_join", "--input", path}, pt::Seconds(20));
    expect_one_line_error(o, path);
    EXPECT_TRUE(contains(o.err, kind)) << o.err;
    EXPECT_FALSE(contains(o.err, "does not exist")) << o.err;
  }
}

TEST(SmallHoles, AMillionEmptyLinesDoNotFloodTheTerminal) {
  TempDir tmp;
  write_file(tmp.sub("empty.json"), std::string(1000000, '\n'));
  const auto o = pt::run_engine({"run", "cart_join", "--input", tmp.sub("empty.json")});
  ASSERT_TRUE(o.ok()) << o.describe();
  const auto lines = o.err_lines();
  EXPECT_LT(lines.size(), 20u) << o.err.substr(0, 2000);
  // Five shown, the rest counted (in one summary, or several if the run took more than 5 s).
  uint64_t counted = 0;
  static const std::regex summary(R"((\d+) more warning\(s\) not shown \(not JSON: (\d+)\))");
  for (const auto& line : lines) {
    std::smatch m;
    if (std::regex_search(line, m, summary)) {
      EXPECT_EQ(m[1].str(), m[2].str()) << line;
      counted += std::stoull(m[1].str());
    }
  }
  EXPECT_EQ(counted, 999995u) << o.err.substr(0, 2000);
  EXPECT_TRUE(contains(o.err, "empty.json line 1: skipping bad line")) << o.err.substr(0, 2000);
}

class Interrupted : public ::testing::TestWithParam<int> {};

// A signal before the input ended: the run commits its last epoch, says so
// and exits 128 + the signal; the same command then finishes the job exactly once.
TEST_P(Interrupted, CommitsSaysSoAndExitsWithTheSignal) {
  const int sig = GetParam();
  TempDir tmp;
  const auto input = pt::make_cart_input(tmp.sub("in"), 300000, 20000, 2, 9);  // -s 0 -d: a few seconds
  const std::string out = tmp.sub("out.json");
  const std::vector<std::string> args = {"run", "cart_join",   "-w",      "2",       "-s",       "0",
                                         "-d",  tmp.sub("st"), "--input", input.dir, "--output", out};
  {
    pt::Child child(pt::kEngine, args, tmp.sub("1.out"), tmp.sub("1.err"));
    const auto deadline = pt::Clock::now() + std::chrono::seconds(60);
    while (child.running() && pt::Clock::now() < deadline && (!fs::exists(out) || fs::file_size(out) == 0)) {
      child.wait_for(pt::Seconds(0.005));
    }
    ASSERT_TRUE(child.running()) << "finished before the signal: " << read_file(tmp.sub("1.err"));
    child.signal(sig);
    ASSERT_TRUE(child.wait_for(pt::Seconds(60)));
    const auto o = pt::outcome_of(child.status(), child.seconds());
    const std::string err = read_file(tmp.sub("1.err"));
    EXPECT_TRUE(o.exited) << err;
    EXPECT_EQ(o.exit_code, 128 + sig) << err;
    EXPECT_TRUE(contains(err, sig == SIGINT ? "interrupted by SIGINT" : "interrupted by SIGTERM")) << err;
    EXPECT_TRUE(std::regex_search(err, std::regex("committed epoch [1-9][0-9]*: run the same command again"))) << err;
  }
  const auto rest = pt::run_engine(args);
  ASSERT_TRUE(rest.ok()) << rest.describe();
  EXPECT_TRUE(pt::matches_reference(pt::split_lines(read_file(out)), input.ref));
}

INSTANTIATE_TEST_SUITE_P(Signals, Interrupted, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& info) { return info.param == SIGINT ? "SIGINT" : "SIGTERM"; });

// ---- durability of new directory entries ----------------------------------------------

// Under strace: every file and directory the run creates (the output file,
// DirSink's directory and part files, the dead-letter file, the state dir) is
// followed by an fsync of the directory that holds it.
TEST(Durability, NewFilesAndDirectoriesAreSyncedIntoTheirParent) {
  ASSERT_EQ(std::system("command -v strace >/dev/null 2>&1"), 0) << "strace is needed (scripts/setup.sh installs it)";
  TempDir tmp;
  write_file(tmp.sub("in.json"), cart_lines(100) + "not json\n");
  for (const auto& output : {tmp.sub("out.json"), tmp.sub("new/carts") + "/"}) {
    SCOPED_TRACE(output);
    const std::string trace = tmp.sub("trace.txt");
    const std::string state = tmp.sub(output.back() == '/' ? "st2" : "st1");
    // LeakSanitizer cannot run under ptrace: off for the sanitizer build.
    const auto o = pt::run_process("/usr/bin/env",
                                   {"ASAN_OPTIONS=detect_leaks=0",
                                    "/usr/bin/strace",
                                    "-f",
                                    "-qq",
                                    "-e",
                                    "trace=openat,mkdir,fsync",
                                    "-o",
                                    trace,
                                    pt::kEngine,
                                    "run",
                                    "cart_join",
                                    "--strict",
                                    "--input",
                                    tmp.sub("in.json"),
                                    "-d",
                                    state,
                                    "--output",
                                    output,
                                    "--on-error",
                                    "dead-letter:" + tmp.sub(output.back() == '/' ? "dead2.jsonl" : "dead1.jsonl"),
                                    "-q"},
                                   pt::Seconds(120), tmp.path());
    ASSERT_TRUE(o.ok()) << o.describe();
    // fd -> directory it was opened on, and the directories fsynced after each created path.
    std::map<std::string, std::string> dir_of_fd;
    std::vector<std::string> created;
    std::set<std::string> synced_after;  // "created path|dir" pairs seen in order
    static const std::regex open_re(R"re(openat\(AT_FDCWD, "([^"]+)", ([A-Z_|]+).*\) = (\d+))re");
    static const std::regex mkdir_re(R"re(mkdir\("([^"]+)", .*\) = 0)re");
    static const std::regex fsync_re(R"re(fsync\((\d+)\)\s+= 0)re");
    for (const auto& line : pt::split_lines(read_file(trace))) {
      std::smatch m;
      if (std::regex_search(line, m, open_re)) {
        const std::string path = fs::absolute(fs::path(tmp.path()) / m[1].str()).lexically_normal().string();
        if (contains(m[2].str(), "O_DIRECTORY")) {
          dir_of_fd[m[3].str()] = path;
        } else {
          dir_of_fd.erase(m[3].str());
        }
        if (contains(m[2].str(), "O_CREAT")) created.push_back(path);
      } else if (std::regex_search(line, m, mkdir_re)) {
        created.push_back(fs::absolute(fs::path(tmp.path()) / m[1].str()).lexically_normal().string());
      } else if (std::regex_search(line, m, fsync_re) && dir_of_fd.count(m[1].str())) {
        std::string dir = dir_of_fd[m[1].str()];
        while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
        for (const auto& c : created) synced_after.insert(c + "|" + dir);
      }
    }
    auto expect_synced = [&](const std::string& path) {
      const std::string parent = fs::path(path).parent_path().string();
      EXPECT_TRUE(synced_after.count(path + "|" + parent))
          << path << " was created but " << parent << " was not fsynced after it";
    };
    expect_synced(state);
    if (output.back() == '/') {
      expect_synced(tmp.sub("new"));
      expect_synced(tmp.sub("new/carts"));
      expect_synced(tmp.sub("new/carts/part-000"));
      expect_synced(tmp.sub("dead2.jsonl"));
    } else {
      expect_synced(tmp.sub("out.json"));
      expect_synced(tmp.sub("dead1.jsonl"));
    }
  }
}

}  // namespace
