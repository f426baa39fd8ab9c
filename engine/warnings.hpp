#pragma once
// WarningLog: warnings about bad items (an input line that is not JSON, an
// item a step failed on under --on-error skip), limited so that a bad input
// cannot flood the terminal: the first kShownPerSource warnings of each input
// step are printed, later ones are counted by kind and summarised every
// kSummaryEvery and at the end of the run.
//
// Thread safety: every method may be called from any thread.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace engine {

class WarningLog {
 public:
  static constexpr uint64_t kShownPerSource = 5;
  static constexpr std::chrono::seconds kSummaryEvery{5};

  // Prints `message` as a warning unless `source` (an input step) already
  // had kShownPerSource of them; then counts it under `kind`.
  void warn(std::string_view source, std::string_view kind, std::string_view message);
  // Prints, per source, what was counted and not shown since the last summary.
  void summarise();

 private:
  using Clock = std::chrono::steady_clock;
  struct Counts {
    uint64_t shown = 0;
    std::map<std::string, uint64_t, std::less<>> hidden;  // by kind, since the last summary
  };
  void summarise_locked();

  std::mutex mu_;
  std::map<std::string, Counts, std::less<>> sources_;  // guarded by mu_
  Clock::time_point last_summary_ = Clock::now();       // guarded by mu_
};

}  // namespace engine
