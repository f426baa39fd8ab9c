#pragma once
// The apps of the `engine` binary.

#include <string>
#include <vector>

#include "cli/app.hpp"

namespace engine {

// Every built-in app, in `engine list` order.
std::vector<App> builtin_apps();

// The bundled data file `name` (data/NAME): ./data/NAME if it exists, else
// the installed copy next to the binary (BIN/../share/engine/data), else the
// copy in the source tree the binary was built from.
std::string bundled_data(const std::string& name);

}  // namespace engine
