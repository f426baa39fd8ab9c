// WorkerContext, EpochWriter, error reporting: the runtime services steps use.

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "engine/context.hpp"
#include "engine/errors.hpp"
#include "engine/run_shared.hpp"
#include "engine/store.hpp"
#include "engine/worker.hpp"
#include "engine/worker_context.hpp"

namespace engine {

void check_failed(const char* cond, const std::string& msg, const char* file, int line) {
  std::fprintf(stderr, "engine: internal error: %s (%s) at %s:%d\n", msg.c_str(), cond, file, line);
  std::abort();
}

std::string ItemOrigin::describe() const {
  if (source == nullptr) return "";
  return fmt::format("{} {} {}", *source, unit, line);
}

void EpochWriter::append_state_key(std::string& out, std::string_view step, uint32_t kg, std::string_view key) {
  keys::append_state(out, step, kg, key);
}
void EpochWriter::put_state(std::string_view step, uint32_t kg, std::string_view key, std::string_view value) {
  put_state_encoded(step, kg, key, [&](std::string& out) { out.append(value); });
}
void EpochWriter::delete_state(std::string_view step, uint32_t kg, std::string_view key) {
  writes.add_built([&](std::string& out) { append_state_key(out, step, kg, key); }, [](std::string&) { return false; });
}
void EpochWriter::put_source(std::string_view step, std::string_view part, std::string_view state) {
  writes.add(keys::source(step, part), state);
}
void EpochWriter::put_sink(std::string_view step, std::string_view part, std::string_view state) {
  writes.add(keys::sink(step, part), state);
}

WorkerContext::WorkerContext(RunShared& shared, Worker& worker, uint32_t index)
    : shared_(shared), worker_(worker), index_(index), workers_(shared.workers), key_groups_(shared.key_groups) {}

uint32_t WorkerContext::workers() const { return workers_; }
uint32_t WorkerContext::key_groups() const { return key_groups_; }
size_t WorkerContext::batch_size() const { return shared_.opts.batch_size; }
SnapshotMode WorkerContext::snapshot_mode() const { return shared_.opts.snapshot_mode; }
uint64_t WorkerContext::epoch() const { return item_epoch_; }
bool WorkerContext::per_item_epochs() const { return shared_.opts.snapshot_interval <= 0; }
bool WorkerContext::recovery() const { return shared_.store != nullptr; }

bool WorkerContext::inputs_exhausted_by(uint64_t e) const {
  for (uint32_t w = 0; w < workers_; ++w) {
    if (shared_.exhausted_at[w].load(std::memory_order_acquire) > e) return false;
  }
  return true;
}

std::shared_ptr<void> WorkerContext::shared_for_step(int step_index,
                                                     const std::function<std::shared_ptr<void>()>& make) {
  std::lock_guard lock(shared_.step_shared_mu);
  auto& slot = shared_.step_shared[step_index];
  if (!slot) slot = make();
  return slot;
}
bool WorkerContext::restoring() const { return shared_.restoring; }
const StepDesc& WorkerContext::step(int index) const { return shared_.flow.steps()[index]; }
int WorkerContext::exchange_of_step(int step_index) const { return shared_.exchange_of_step[step_index]; }
const std::vector<std::string>& WorkerContext::parts_of(int step_index) const { return shared_.parts[step_index]; }
size_t WorkerContext::open_parts_limit() const { return shared_.open_parts_per_input; }

void WorkerContext::load_group(std::string_view step, uint32_t kg,
                               const std::function<void(std::string_view, std::string_view)>& visit) const {
  shared_.store->scan_group(step, kg, visit);
}

std::optional<std::string> WorkerContext::source_resume(std::string_view step, std::string_view part) const {
  if (!shared_.restoring) return std::nullopt;
  return shared_.store->get(keys::source(step, part));
}

std::optional<std::string> WorkerContext::sink_resume(std::string_view step, std::string_view part) const {
  if (!shared_.restoring) return std::nullopt;
  return shared_.store->get(keys::sink(step, part));
}

void WorkerContext::send(int exchange, uint32_t dest, std::unique_ptr<Batch> batch) {
  worker_.send(exchange, dest, std::move(batch));
}

void WorkerContext::add_dead_letter(std::string line) { worker_.add_dead_letter(std::move(line)); }

void WorkerContext::note_output() {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - shared_.start).count();
  int64_t none = -1;
  shared_.first_output_ns.compare_exchange_strong(none, ns);
}

void report_step_error(WorkerContext& ctx, const std::string& step_id, std::string_view kind, const std::string& item,
                       const std::exception& error) {
  const auto& origin = ctx.origin();
  const std::string where = origin.source != nullptr ? origin.describe() : "an exchanged item";
  const std::string message = fmt::format("step '{}' ({}) failed on {} (worker {}): {}; item: {}", step_id, kind, where,
                                          ctx.index(), error.what(), item);
  switch (ctx.shared().opts.on_error) {
    case ErrorPolicy::kFail:
      throw StepError(message);
    case ErrorPolicy::kSkip:
      warn_item(fmt::format("step '{}' failed", step_id), message + "; skipped");
      return;
    case ErrorPolicy::kDeadLetter: {
      nlohmann::json j{{"step", step_id},
                       {"source", origin.source != nullptr ? *origin.source : std::string()},
                       {origin.unit, origin.line},
                       {"worker", ctx.index()},
                       {"item", item},
                       {"error", error.what()}};
      ctx.add_dead_letter(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      return;
    }
  }
}

}  // namespace engine
