#pragma once
// run(): executes a Dataflow with the given options on worker threads.

#include "engine/dataflow.hpp"
#include "engine/options.hpp"

namespace engine {

// Runs `flow` until its inputs are exhausted (or SIGINT/SIGTERM), committing
// epochs to the state dir when recovery is on. Throws ConfigError / InputError
// / StateError before anything runs, and the first StepError / StateError /
// InputError of a failed run after every worker stopped (the last committed
// epoch is intact).
RunStats run(const Dataflow& flow, const RunOptions& opts);

}  // namespace engine
