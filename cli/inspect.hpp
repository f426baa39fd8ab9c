#pragma once
// `engine inspect DIR [--json]`: what a state dir holds, read-only.

#include <string>
#include <vector>

namespace engine::cli {

// Prints the description of state dir args[0] (as JSON with --json). Returns
// the exit code; throws StateError for a dir that is not a state dir.
int inspect_command(const std::vector<std::string>& args);

}  // namespace engine::cli
