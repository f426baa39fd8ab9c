#pragma once
// App: a named, registered dataflow that `engine run NAME` builds and runs.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "engine/dataflow.hpp"

namespace engine {

struct BuiltApp {
  std::unique_ptr<Dataflow> flow;
  // Called after the run: a line for stderr with app-specific counts ("" for none).
  std::function<std::string()> report;
};

struct App {
  std::string name;
  std::string summary;
  // Adds the app's own options (--input, ...).
  std::function<void(boost::program_options::options_description&)> options;
  // Builds the flow from parsed options. Throws ConfigError.
  std::function<BuiltApp(const boost::program_options::variables_map&)> build;
};

// Every app of this build, in `engine list` order.
std::vector<App> builtin_apps();

// The bundled data file `name` (data/NAME): ./data/NAME if it exists, else the
// copy in the source tree this binary was built from.
std::string bundled_data(const std::string& name);

}  // namespace engine
