#pragma once
// Shared helpers for the process tests (tests/process/*_test.cpp): run the real
// `engine` binary (ENGINE_BIN, or $ENGINE_TEST_BIN) and the cart generator (GEN_CART_BIN) as child
// processes with stdout/stderr captured to files, wait for them with a timeout,
// SIGKILL them at random moments and resume them (kill_loop), and compute the
// cart_join reference result with plain code (reference_join).
//
// Kill loops are seeded: a failure message names its seed, and
// ENGINE_KILL_SEED=N replays that seed's delays; ENGINE_KILL_VERBOSE=1 prints
// every attempt (committed progress, killed or not, run time).
//
// Children always run with ENGINE_SOURCE_DIR (the repo root) as their working
// directory, so the bundled default input is "data/cart-join.json" whatever
// directory the test binary was started from. A hung child never hangs a test:
// every wait has a deadline, after which the child is SIGKILLed and the run is
// reported as timed out.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/flow_testing.hpp"

extern char** environ;

namespace process_testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;
using flow_testing::fingerprint;
using flow_testing::Fingerprint;
using flow_testing::read_file;
using flow_testing::read_lines;
using flow_testing::sorted;
using flow_testing::TempDir;
using flow_testing::write_file;

// ENGINE_TEST_BIN, when set, names another engine binary to run (the
// sanitizer step runs these tests against its sanitized build).
inline const char* const kEngine = [] {
  const char* bin = std::getenv("ENGINE_TEST_BIN");
  return bin != nullptr && *bin != '\0' ? bin : ENGINE_BIN;
}();
inline constexpr const char* kGenCart = GEN_CART_BIN;
inline constexpr const char* kSourceDir = ENGINE_SOURCE_DIR;
// Default deadline of one engine run in these tests (generous: the machine is shared).
inline constexpr Seconds kDefaultTimeout{120.0};

// ---- text helpers ------------------------------------------------------------------

// `text` split at '\n'; a last line without '\n' is kept (see complete_lines for killed output).
inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// The '\n'-terminated lines of `text`: a torn last line (a write cut by SIGKILL) is dropped.
inline std::vector<std::string> complete_lines(const std::string& text) {
  const size_t end = text.rfind('\n');
  if (end == std::string::npos) return {};
  return split_lines(text.substr(0, end + 1));
}

// The non-empty lines of `text`.
inline std::vector<std::string> nonempty_lines(const std::string& text) {
  std::vector<std::string> out;
  for (auto& l : split_lines(text)) {
    if (!l.empty()) out.push_back(std::move(l));
  }
  return out;
}

// Whether `needle` occurs in `haystack`.
inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// `text` with every regex metacharacter escaped, to match it literally inside a std::regex.
inline std::string regex_escape(const std::string& text) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(text, special, R"(\$&)");
}

// Appends `content` to the file at `path` (creating it), as a user adding input lines would.
inline void append_file(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  if (!out) throw std::runtime_error("cannot append to " + path);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

// ---- child processes ----------------------------------------------------------------

// One child process with stdin from /dev/null and stdout/stderr redirected to
// files. The destructor SIGKILLs and reaps a child that is still running, so a
// failing test never leaves an engine behind. Owned by one thread.
class Child {
 public:
  Child(const std::string& bin, const std::vector<std::string>& args, const std::string& out_path,
        const std::string& err_path, const std::string& cwd = kSourceDir) {
    std::vector<std::string> argv_storage;
    argv_storage.push_back(bin);
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    // A clean signal state: nothing blocked, default handlers for what a test runner may change.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (const int sig : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD}) sigaddset(&defaults, sig);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const int rc = ::posix_spawn(&pid_, bin.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error(fmt::format("cannot start {}: {}", bin, std::strerror(rc)));
    started_ = Clock::now();
  }
  ~Child() {
    if (running()) kill_now();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Waits up to `timeout` for the child to exit; true if it did (status() is then valid).
  bool wait_for(Seconds timeout) {
    if (!running()) return true;
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
    for (;;) {
      if (poll()) return true;
      const auto now = Clock::now();
      if (now >= deadline) return false;
      std::this_thread::sleep_for(std::min<Clock::duration>(deadline - now, std::chrono::microseconds(500)));
    }
  }

  // SIGKILLs the child (if it still runs) and reaps it.
  void kill_now() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    rusage usage{};
    while (::wait4(pid_, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    status_ = status;
    max_rss_kb_ = usage.ru_maxrss;
    ended_ = Clock::now();
  }

  bool running() const { return !status_.has_value(); }
  // Sends `sig` to the child (if it still runs).
  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  // Peak resident memory of the child in KiB; only after it ended.
  long max_rss_kb() const { return max_rss_kb_; }
  // The raw wait status; only after the child ended.
  int status() const { return status_.value(); }
  pid_t pid() const { return pid_; }
  // Seconds from start to exit (or to now while running).
  double seconds() const { return Seconds((status_ ? ended_ : Clock::now()) - started_).count(); }

 private:
  bool poll() {
    int status = 0;
    rusage usage{};
    const pid_t r = ::wait4(pid_, &status, WNOHANG, &usage);
    if (r == pid_) {
      status_ = status;
      max_rss_kb_ = usage.ru_maxrss;
      ended_ = Clock::now();
      return true;
    }
    return false;
  }

  pid_t pid_ = -1;
  std::optional<int> status_;
  long max_rss_kb_ = 0;
  Clock::time_point started_;
  Clock::time_point ended_;
};

// How a finished run ended and what it printed.
struct Outcome {
  bool timed_out = false;
  bool exited = false;  // normal exit (not a signal)
  int exit_code = -1;
  int signal = 0;  // the terminating signal, if any
  double seconds = 0;
  std::string out;
  std::string err;
  long max_rss_kb = 0;  // peak resident memory

  bool ok() const { return exited && exit_code == 0; }
  std::vector<std::string> out_lines() const { return split_lines(out); }
  std::vector<std::string> err_lines() const { return nonempty_lines(err); }
  // For failure messages: how it ended, then its stderr.
  std::string describe() const {
    std::string how = timed_out ? "timed out (killed)"
                      : exited  ? fmt::format("exit {}", exit_code)
                                : fmt::format("killed by signal {} ({})", signal, strsignal(signal));
    return fmt::format("{} after {:.2f} s\n--- stderr ---\n{}--- stdout (first 2000 bytes) ---\n{}", how, seconds, err,
                       out.substr(0, 2000));
  }
};

// An Outcome (without output) from a raw wait status.
inline Outcome outcome_of(int status, double seconds) {
  Outcome o;
  o.seconds = seconds;
  if (WIFEXITED(status)) {
    o.exited = true;
    o.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    o.signal = WTERMSIG(status);
  }
  return o;
}

// Runs `bin args...` to completion (at most `timeout`, then SIGKILL) and returns what it printed.
inline Outcome run_process(const std::string& bin, const std::vector<std::string>& args,
                           Seconds timeout = kDefaultTimeout, const std::string& cwd = kSourceDir) {
  TempDir capture;
  const std::string out_path = capture.sub("stdout");
  const std::string err_path = capture.sub("stderr");
  Child child(bin, args, out_path, err_path, cwd);
  const bool done = child.wait_for(timeout);
  if (!done) child.kill_now();
  Outcome o = outcome_of(child.status(), child.seconds());
  o.timed_out = !done;
  o.max_rss_kb = child.max_rss_kb();
  o.out = read_file(out_path);
  o.err = read_file(err_path);
  return o;
}

// `engine args...`, to completion.
inline Outcome run_engine(const std::vector<std::string>& args, Seconds timeout = kDefaultTimeout) {
  return run_process(kEngine, args, timeout);
}

// `engine args...` in working directory `cwd`, to completion.
inline Outcome run_engine_in(const std::string& cwd, const std::vector<std::string>& args,
                             Seconds timeout = kDefaultTimeout) {
  return run_process(kEngine, args, timeout, cwd);
}

// Asserts that `o` is a refused command: exactly one line on stderr, starting
// "engine: error:", a non-zero exit code, no signal, no C++ runtime noise.
inline void expect_one_line_error(const Outcome& o, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_FALSE(o.timed_out);
  EXPECT_TRUE(o.exited) << "ended by a signal: " << o.describe();
  EXPECT_NE(o.exit_code, 0) << o.describe();
  const auto lines = o.err_lines();
  ASSERT_EQ(lines.size(), 1u) << o.describe();
  EXPECT_EQ(lines[0].rfind("engine: error: ", 0), 0u) << lines[0];
  EXPECT_GT(lines[0].size(), std::string("engine: error: ").size() + 10) << "an error line should say what is wrong";
  EXPECT_FALSE(contains(o.err, "terminate called")) << o.err;
  EXPECT_FALSE(contains(o.err, "what():")) << o.err;
  EXPECT_TRUE(o.out.empty()) << "a refused command printed data: " << o.out;
}

// Writes `events` generated cart events for `users` users into `files` files
// DIR/part-NNN.json (each user in one file); fails the test if gen_cart fails.
inline void generate_carts(const std::string& dir, uint64_t events, uint64_t users, uint64_t files, uint64_t seed) {
  const auto o = run_process(kGenCart,
                             {"--events", std::to_string(events), "--users", std::to_string(users), "--files",
                              std::to_string(files), "--out", dir, "--seed", std::to_string(seed)},
                             Seconds(120));
  ASSERT_TRUE(o.ok()) << "gen_cart failed: " << o.describe();
}

// The regular files of `dir` as "DIR/NAME" (the engine's DirSource partition names), sorted.
inline std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back((fs::path(dir) / e.path().filename()).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- cart_join: plain reference and output parsing ---------------------------------

// One cart_join output line, parsed.
struct Cart {
  std::string user;
  std::vector<int64_t> paid;
  std::vector<int64_t> unpaid;
  bool operator==(const Cart&) const = default;
};

// A short readable form of a cart, for failure messages.
inline std::string to_string(const Cart& c) {
  return fmt::format("user {} paid [{}] unpaid [{}]", c.user, fmt::join(c.paid, ", "), fmt::join(c.unpaid, ", "));
}

// How GoogleTest prints a Cart.
inline void PrintTo(const Cart& c, std::ostream* os) { *os << to_string(c); }

// Parses a cart_join output line {"user_id": .., "paid_order_ids": [..], "unpaid_order_ids": [..]}.
inline std::optional<Cart> parse_cart(const std::string& line) {
  const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.size() != 3 || !j.contains("user_id") || !j["user_id"].is_string()) return std::nullopt;
  Cart c;
  c.user = j["user_id"].get<std::string>();
  for (const auto& [field, ids] : {std::pair{"paid_order_ids", &c.paid}, std::pair{"unpaid_order_ids", &c.unpaid}}) {
    if (!j.contains(field) || !j[field].is_array()) return std::nullopt;
    for (const auto& id : j[field]) {
      if (!id.is_number_integer()) return std::nullopt;
      ids->push_back(id.get<int64_t>());
    }
  }
  return c;
}

// Per user, the carts after each accepted event, in order: what cart_join must print.
using CartsByUser = std::map<std::string, std::vector<Cart>>;

// What reference_join computes: the expected updates and the line counts.
struct Reference {
  CartsByUser carts;
  uint64_t events = 0;     // accepted lines
  uint64_t bad_lines = 0;  // rejected lines (what the engine skips or dead-letters)
  uint64_t outputs = 0;    // updates (an unknown payment gives none)
};

// The shopping-cart join of DESIGN.md section 6 on JSON-lines files, written
// plainly: a line counts only if it is a JSON object with a string user_id,
// type "order" or "payment" and an integer order_id; an order appends its id
// to unpaid; a payment moves its id from unpaid to the end of paid, or is
// ignored (no update) if the id is not unpaid. Files are read one after the
// other, so every user must live in one file (ADD_FAILURE otherwise).
inline Reference reference_join(const std::vector<std::string>& files) {
  Reference ref;
  std::map<std::string, Cart> state;
  std::map<std::string, std::string> file_of_user;
  for (const auto& path : files) {
    for (const auto& line : read_lines(path)) {
      const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      const bool good = j.is_object() && j.contains("user_id") && j["user_id"].is_string() && j.contains("type") &&
                        j["type"].is_string() && (j["type"] == "order" || j["type"] == "payment") &&
                        j.contains("order_id") && j["order_id"].is_number_integer();
      if (!good) {
        ++ref.bad_lines;
        continue;
      }
      ++ref.events;
      const std::string user = j["user_id"].get<std::string>();
      const auto [it, fresh] = file_of_user.emplace(user, path);
      if (!fresh && it->second != path) ADD_FAILURE() << "user " << user << " is in " << it->second << " and " << path;
      Cart& cart = state[user];
      cart.user = user;
      const int64_t id = j["order_id"].get<int64_t>();
      if (j["type"] == "order") {
        cart.unpaid.push_back(id);
      } else {
        const auto pos = std::find(cart.unpaid.begin(), cart.unpaid.end(), id);
        if (pos == cart.unpaid.end()) continue;  // unknown payment: no update
        cart.unpaid.erase(pos);
        cart.paid.push_back(id);
      }
      ref.carts[user].push_back(cart);
      ++ref.outputs;
    }
  }
  return ref;
}

// The user_id of a cart_join output line, or "<malformed>" if it is not a
// cart line. A fast path reads the id of a plain line directly; anything
// else goes through the JSON parser.
inline std::string user_of(const std::string& line) {
  static constexpr std::string_view kPrefix = R"({"user_id": ")";
  static constexpr std::string_view kNext = R"(", "paid_order_ids": [)";
  if (line.compare(0, kPrefix.size(), kPrefix) == 0) {
    const size_t end = line.find('"', kPrefix.size());
    const std::string_view id(line.data() + kPrefix.size(), end == std::string::npos ? 0 : end - kPrefix.size());
    if (end != std::string::npos && id.find('\\') == std::string_view::npos &&
        line.compare(end, kNext.size(), kNext) == 0 && line.back() == '}') {
      return std::string(id);
    }
  }
  const auto c = parse_cart(line);
  return c ? c->user : std::string("<malformed>");
}

// Output lines grouped by user_id, in order within each user. Lines that are
// not cart lines are collected under the key "<malformed>".
inline std::map<std::string, std::vector<std::string>> lines_by_user(const std::vector<std::string>& lines) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& line : lines) out[user_of(line)].push_back(line);
  return out;
}

// Checks that cart_join output `lines` holds exactly the reference updates, per user in order.
inline ::testing::AssertionResult matches_reference(const std::vector<std::string>& lines, const Reference& ref) {
  if (lines.size() != ref.outputs) {
    return ::testing::AssertionFailure() << lines.size() << " output lines, the reference has " << ref.outputs;
  }
  CartsByUser got;
  for (const auto& line : lines) {
    const auto c = parse_cart(line);
    if (!c) return ::testing::AssertionFailure() << "malformed output line: " << line;
    got[c->user].push_back(*c);
  }
  if (got.size() != ref.carts.size()) {
    return ::testing::AssertionFailure() << got.size() << " users in the output, " << ref.carts.size()
                                         << " in the reference";
  }
  for (const auto& [user, carts] : ref.carts) {
    const auto it = got.find(user);
    if (it == got.end()) return ::testing::AssertionFailure() << "user " << user << " missing from the output";
    if (it->second != carts) {
      size_t i = 0;
      while (i < carts.size() && i < it->second.size() && carts[i] == it->second[i]) ++i;
      return ::testing::AssertionFailure() << "user " << user << ": " << it->second.size() << " updates, reference "
                                           << carts.size() << "; first difference at update " << i << ": got "
                                           << (i < it->second.size() ? to_string(it->second[i]) : "(none)")
                                           << ", expected " << (i < carts.size() ? to_string(carts[i]) : "(none)");
    }
  }
  return ::testing::AssertionSuccess();
}

// Checks that two outputs hold the same lines per user in the same order
// (interleaving across users may differ): none missing, none doubled.
inline ::testing::AssertionResult same_lines_per_user(const std::vector<std::string>& got,
                                                      const std::vector<std::string>& expected) {
  const auto g = lines_by_user(got);
  const auto e = lines_by_user(expected);
  if (g.count("<malformed>")) {
    return ::testing::AssertionFailure() << g.at("<malformed>").size()
                                         << " malformed lines, the first: " << g.at("<malformed>").front();
  }
  for (const auto& [user, lines] : e) {
    const auto it = g.find(user);
    const size_t n = it == g.end() ? 0 : it->second.size();
    if (n != lines.size()) {
      return ::testing::AssertionFailure() << "user " << user << ": " << n << " lines, expected " << lines.size()
                                           << (n > lines.size() ? " (doubled output)" : " (missing output)");
    }
    for (size_t i = 0; i < n; ++i) {
      if (it->second[i] != lines[i]) {
        return ::testing::AssertionFailure()
               << "user " << user << " line " << i << ": got " << it->second[i] << ", expected " << lines[i];
      }
    }
  }
  for (const auto& [user, lines] : g) {
    if (!e.count(user)) return ::testing::AssertionFailure() << "unexpected user " << user << " in the output";
  }
  if (got.size() != expected.size()) {
    return ::testing::AssertionFailure() << got.size() << " lines, expected " << expected.size();
  }
  return ::testing::AssertionSuccess();
}

// ---- kill loops ---------------------------------------------------------------------------

// How kill_loop chooses its SIGKILL moments. Between attempts the loop
// measures the committed progress p in [0, 1] and, from the fastest attempt
// so far, the rate at which attempts make it, so it knows about how long the
// rest of the run takes (before any progress: `expected_run_seconds`). Delays are
// drawn from [min_delay, `share` x that rest], half log-uniformly (many of a
// few ms: kills during start and restore) and half uniformly (kills while
// items flow and epochs commit). Once p reaches `guard_progress` before
// `min_kills` kills were made, delays drop below `guard_delay_seconds`, too
// short for a commit, so the run cannot finish before the required kills
// whatever the machine's speed. Then `late_kills` kills land late in the rest
// of the run (at 50-100% of it), and the next attempt may finish.
struct KillPlan {
  std::string bin = kEngine;  // the program run (the engine, or a program built on it)
  uint64_t seed = 1;
  int min_kills = 20;
  int late_kills = 2;
  double expected_run_seconds = 2.0;
  double share = 0.3;
  double min_delay_seconds = 0.001;
  double guard_progress = 0.85;
  double guard_delay_seconds = 0.02;
  Seconds final_timeout{120.0};  // deadline of an attempt that is not killed on purpose
};

// One attempt of a kill loop.
struct Attempt {
  std::vector<std::string> args;
  double delay = 0;     // planned kill moment (0: none)
  double progress = 0;  // committed share of the work when it started
  bool killed = false;
  int status = 0;
  std::string out_path;
  std::string err_path;
};

// What a kill loop did: its attempts, how many were killed, how it ended.
struct KillLoopResult {
  std::vector<Attempt> attempts;
  int kills = 0;
  bool finished = false;  // the last attempt exited 0 by itself
  std::string failure;    // why the loop stopped early ("" if it did not)

  // "DELAY[k]@PROGRESS ..." per attempt (k: killed), for failure messages.
  std::string schedule() const {
    std::string s;
    for (const auto& a : attempts) s += fmt::format("{:.3f}{}@{:.2f} ", a.delay, a.killed ? "k" : "", a.progress);
    return s;
  }
};

// The seed of a kill loop: ENGINE_KILL_SEED if set (to replay a failure), else `fallback`.
inline uint64_t kill_seed(uint64_t fallback) {
  if (const char* s = std::getenv("ENGINE_KILL_SEED")) return std::strtoull(s, nullptr, 10);
  return fallback;
}

// The committed share of the input of a state dir: the sum of its committed
// source offsets ("OFFSET LINE", from `engine inspect DIR --json`) over
// `input_bytes`; 0 if there is no committed state yet. Only used to pace kill
// loops, never to judge a result.
inline double committed_fraction(const std::string& state_dir, uint64_t input_bytes) {
  if (input_bytes == 0 || !fs::exists(state_dir)) return 0;
  const auto o = run_process(kEngine, {"inspect", state_dir, "--json"}, Seconds(60));
  if (!o.ok()) return 0;
  const auto j = nlohmann::json::parse(o.out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("source_offsets") || !j["source_offsets"].is_object()) return 0;
  uint64_t done = 0;
  for (const auto& [step, parts] : j["source_offsets"].items()) {
    for (const auto& [part, v] : parts.items()) {
      if (v.is_string()) done += std::strtoull(v.get<std::string>().c_str(), nullptr, 10);
    }
  }
  return std::min(1.0, static_cast<double>(done) / static_cast<double>(input_bytes));
}

// Runs `engine args_for(i)` again and again, SIGKILLing attempt i after a
// random delay (KillPlan; `progress()` gives the committed share of the work
// between attempts), until an attempt exits 0 by itself. An attempt that ends
// by itself with an error or a signal stops the loop (result.failure).
// Attempt i's stdout and stderr are kept in scratch_dir/attempt-NNN.{out,err}.
inline KillLoopResult kill_loop(const KillPlan& plan, const std::function<std::vector<std::string>(int)>& args_for,
                                const std::function<double()>& progress, const std::string& scratch_dir) {
  KillLoopResult result;
  std::mt19937_64 rng(plan.seed);
  auto draw = [&](double lo, double hi) {
    if (hi <= lo) return lo;
    if (std::bernoulli_distribution(0.5)(rng)) {
      std::uniform_real_distribution<double> u(std::log(lo), std::log(hi));
      return std::exp(u(rng));
    }
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  int late = 0;
  double last_p = 0;
  double last_seconds = 0;  // run time of the previous attempt
  double rate = 0;          // the fastest progress per second an attempt made so far
  for (int i = 0;; ++i) {
    Attempt a;
    a.args = args_for(i);
    a.out_path = fmt::format("{}/attempt-{:03}.out", scratch_dir, i);
    a.err_path = fmt::format("{}/attempt-{:03}.err", scratch_dir, i);
    const double p = i == 0 ? 0.0 : progress();
    if (p > last_p && last_seconds > 0) rate = std::max(rate, (p - last_p) / last_seconds);
    last_p = p;
    if (rate == 0) rate = 1 / plan.expected_run_seconds;
    const double rest = std::clamp((1 - p) / rate, 10 * plan.min_delay_seconds, 600.0);
    bool last = false;
    if (result.kills < plan.min_kills) {
      a.delay = draw(plan.min_delay_seconds, p >= plan.guard_progress ? plan.guard_delay_seconds : plan.share * rest);
    } else if (late < plan.late_kills) {
      ++late;
      a.delay = std::uniform_real_distribution<double>(0.5, 1.0)(rng) * rest;
    } else {
      last = true;
    }
    a.progress = p;
    Child child(plan.bin, a.args, a.out_path, a.err_path);
    const bool ended = child.wait_for(last ? plan.final_timeout : Seconds(a.delay));
    if (!ended) {
      child.kill_now();
      a.killed = !last;
      if (a.killed) ++result.kills;
    }
    a.status = child.status();
    last_seconds = child.seconds();
    if (std::getenv("ENGINE_KILL_VERBOSE")) {
      std::printf("[ kill ] attempt %d at progress %.3f: %s after %.3f s\n", i, p,
                  a.killed ? "killed" : "ended by itself", child.seconds());
    }
    result.attempts.push_back(a);
    if (a.killed) continue;
    const Outcome o = outcome_of(a.status, child.seconds());
    if (o.ok()) {
      result.finished = true;
    } else {
      Outcome full = o;
      full.timed_out = !ended;
      full.err = read_file(a.err_path);
      result.failure = fmt::format("attempt {} ({}) ended by itself: {}", i, fmt::join(a.args, " "), full.describe());
    }
    return result;
  }
}

// The stdout of every attempt, complete lines only (a killed attempt may have torn its last line).
inline std::vector<std::vector<std::string>> attempt_outputs(const KillLoopResult& r) {
  std::vector<std::vector<std::string>> out;
  for (const auto& a : r.attempts) out.push_back(complete_lines(read_file(a.out_path)));
  return out;
}

// ---- generated cart input ------------------------------------------------------------

// A generated multi-file cart input and its plain reference result.
struct CartInput {
  std::string dir;
  std::vector<std::string> files;  // as the engine names its partitions: DIR/part-NNN.json
  uint64_t bytes = 0;              // total size of the files
  Reference ref;
};

// Generates a cart input into `dir` (gen_cart) and computes its reference.
inline CartInput make_cart_input(const std::string& dir, uint64_t events, uint64_t users, uint64_t files,
                                 uint64_t seed) {
  CartInput in;
  in.dir = dir;
  generate_carts(dir, events, users, files, seed);
  in.files = files_in(dir);
  EXPECT_EQ(in.files.size(), files);
  for (const auto& f : in.files) in.bytes += fs::file_size(f);
  in.ref = reference_join(in.files);
  EXPECT_EQ(in.ref.events, events);
  EXPECT_LE(in.ref.carts.size(), users);  // a user may draw no event
  EXPECT_GE(in.ref.carts.size(), users * 9 / 10);
  return in;
}

// Checks that a kill loop ended with an attempt that exited 0 by itself.
inline ::testing::AssertionResult loop_finished(const KillLoopResult& r) {
  if (!r.failure.empty()) {
    return ::testing::AssertionFailure() << r.failure
                                         << "\nkill schedule (delay s, k = killed, @ progress): " << r.schedule();
  }
  if (!r.finished) return ::testing::AssertionFailure() << "the run never finished; schedule: " << r.schedule();
  return ::testing::AssertionSuccess() << r.kills << " kills";
}

// Checks the FileSink output `out` of a finished kill loop against the lines of
// the uninterrupted run: no torn last line, the same lines per user in order.
inline void expect_output_like_reference(const std::string& out, const std::vector<std::string>& ref_lines,
                                         const KillLoopResult& result) {
  const std::string text = read_file(out);
  EXPECT_TRUE(!text.empty() && text.back() == '\n') << "empty output or a torn last line";
  EXPECT_TRUE(same_lines_per_user(split_lines(text), ref_lines)) << "kills at " << result.schedule();
}

// Runs kill stories ("rounds", at most `max_rounds`) until `plan.min_kills`
// kills were made over all of them, and returns the total. Each round gets a
// fresh directory (for its state dir, outputs and attempts) and a plan asking
// for the kills still missing; `round(dir, plan)` runs its kill_loop, checks
// the outcome and returns the kills it made (or -1 after a failure, which
// stops). A second round is only needed when a run finished before all its
// kills were made (the machine got faster than the pace the loop measured);
// that round was judged like any other.
inline int kill_rounds(const std::string& parent, const KillPlan& plan, int max_rounds,
                       const std::function<int(const std::string& dir, const KillPlan& plan)>& round) {
  int kills = 0;
  for (int r = 0; r < max_rounds && kills < plan.min_kills; ++r) {
    const std::string dir = (fs::path(parent) / fmt::format("round-{}", r)).string();
    fs::create_directories(dir);
    KillPlan p = plan;
    p.min_kills = plan.min_kills - kills;
    p.seed = plan.seed + static_cast<uint64_t>(r);
    // A round that ended short of its kills ran faster than planned (the
    // uninterrupted run it was paced on may have shared the cores): the next
    // one plans on a quarter of the time.
    p.expected_run_seconds = plan.expected_run_seconds / static_cast<double>(1 << (2 * r));
    SCOPED_TRACE(fmt::format("round {} (seed {})", r, p.seed));
    const int k = round(dir, p);
    if (k < 0) return kills;
    kills += k;
    std::printf("[ info ] round %d: %d kills, seed %llu\n", r, k, static_cast<unsigned long long>(p.seed));
    std::error_code ec;
    fs::remove_all(dir, ec);  // best effort: disk space for the next round
  }
  return kills;
}

}  // namespace process_testing
