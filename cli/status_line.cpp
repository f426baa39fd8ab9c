#include "cli/status_line.hpp"

#include <cstdio>
#include <string>

namespace engine::cli {

StatusLine::~StatusLine() {
  if (shown_) std::fputs("\r\x1b[K", stderr);
}

void StatusLine::update(const RunProgress& p) {
  const std::string committed = !p.recovery              ? "- (no -d)"
                                : p.committed_epoch == 0 ? "none yet"
                                                         : std::to_string(p.committed_epoch);
  std::fprintf(stderr, "\r\x1b[K[engine] %llu items in, %llu out, %llu items/s, committed epoch %s",
               static_cast<unsigned long long>(p.items_in), static_cast<unsigned long long>(p.items_out),
               static_cast<unsigned long long>(p.items_in - last_in_), committed.c_str());
  std::fflush(stderr);
  last_in_ = p.items_in;
  shown_ = true;
}

}  // namespace engine::cli
