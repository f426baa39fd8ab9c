#pragma once
// StatusLine: the live status line of a run on a terminal (items in and
// out, items/s, committed epoch), rewritten in place on stderr about once a
// second and erased when the run ends.
//
// Thread safety: update() from the run's progress thread; the destructor on
// the main thread after the run returned.

#include <cstdint>

#include "engine/options.hpp"

namespace engine::cli {

class StatusLine {
 public:
  StatusLine() = default;
  ~StatusLine();
  StatusLine(const StatusLine&) = delete;
  StatusLine& operator=(const StatusLine&) = delete;

  void update(const RunProgress& p);

 private:
  uint64_t last_in_ = 0;
  bool shown_ = false;
};

}  // namespace engine::cli
