#include "engine/warnings.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace engine {

void WarningLog::warn(std::string_view source, std::string_view kind, std::string_view message) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = sources_.find(source);
  if (it == sources_.end()) it = sources_.emplace(std::string(source), Counts{}).first;
  Counts& c = it->second;
  if (c.shown < kShownPerSource) {
    ++c.shown;
    spdlog::warn("{}", message);
    if (c.shown == kShownPerSource) {
      spdlog::warn("{}: further warnings are counted and summarised every {} s", source, kSummaryEvery.count());
    }
    return;
  }
  auto k = c.hidden.find(kind);
  if (k == c.hidden.end()) k = c.hidden.emplace(std::string(kind), 0).first;
  ++k->second;
  if (Clock::now() - last_summary_ >= kSummaryEvery) summarise_locked();
}

void WarningLog::summarise() {
  std::lock_guard<std::mutex> lk(mu_);
  summarise_locked();
}

void WarningLog::summarise_locked() {
  last_summary_ = Clock::now();
  for (auto& [source, c] : sources_) {
    if (c.hidden.empty()) continue;
    uint64_t total = 0;
    std::string kinds;
    for (const auto& [kind, n] : c.hidden) {
      total += n;
      kinds += fmt::format("{}{}: {}", kinds.empty() ? "" : ", ", kind, n);
    }
    spdlog::warn("{}: {} more warning(s) not shown ({})", source, total, kinds);
    c.hidden.clear();
  }
}

}  // namespace engine
