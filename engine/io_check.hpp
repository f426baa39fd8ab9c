#pragma once
// The checks a run makes on its inputs and outputs before it opens anything
// for writing: no output may overwrite an input, lie inside an input
// directory or the state dir, or be written twice; and a resumed run must read
// and write what the committed run did.

#include <string>
#include <utility>
#include <vector>

#include "engine/connector.hpp"
#include "engine/options.hpp"

namespace engine {

class Store;

// The footprint of one input or output step.
struct StepFootprint {
  std::string step;
  bool output = false;
  Footprint footprint;
};

// Throws ConfigError with one line naming both paths if an output (a sink's
// file or part file, the dead-letter file, the stats file) is an input file,
// lies inside an input directory, the state dir or the backup dir, or is
// written by two outputs; or if the stats file cannot be written.
void check_outputs(const std::vector<StepFootprint>& steps, const RunOptions& opts);

// Throws ConfigError naming every input or output whose identity differs
// from the one the committed run in `store` recorded, unless
// opts.allow_io_change. Nothing committed: nothing to compare.
void check_resumed_io(const std::vector<StepFootprint>& steps, const Store& store, const RunOptions& opts);

// The store writes that record the identity of every input and output.
std::vector<std::pair<std::string, std::string>> io_identity_writes(const std::vector<StepFootprint>& steps);

}  // namespace engine
