#pragma once
// Per-worker facts that steps and connectors may read while they run.

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

namespace engine {

// Where the item being processed came from. Set by the worker for items read
// from a source on this worker; cleared (source == nullptr) for items that
// arrived through the exchange.
struct ItemOrigin {
  const std::string* step = nullptr;    // input step id
  const std::string* source = nullptr;  // partition name, e.g. "data/cart-join.json"
  const std::string* part = nullptr;    // partition id (as in WorkerContext::parts_of)
  uint64_t line = 0;                    // 1-based line (or index + 1 for in-memory sources), or offset
  const char* unit = "line";            // what `line` is: "line", "offset"

  // "data/cart-join.json line 6", "kafka topic t partition 0 offset 17", or "" when unknown.
  std::string describe() const;
};

// The origin of the item the calling worker thread is processing now; for use
// in user steps (a deserializer warning about a bad line, say).
const ItemOrigin& current_origin() noexcept;

// Logs a warning about the item being processed (a bad input line, say). In a
// run, the first few warnings of each input step are printed and later ones
// are counted under `kind` (e.g. "not JSON") and summarised every few seconds
// and at the end, so a bad file cannot flood the terminal. Outside a run
// (a unit test calling a parser), printed as is.
void warn_item(std::string_view kind, std::string_view message);

class WorkerContext;

// What a step calls when user code threw on an item; applies the run's error
// policy (fail / skip / dead-letter). Returns normally when the item is dropped.
void report_step_error(WorkerContext& ctx, const std::string& step_id, std::string_view kind, const std::string& item,
                       const std::exception& error);

}  // namespace engine
