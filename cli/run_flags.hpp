#pragma once
// The flags of `engine run`: the ones every app has (parsed into
// RunOptions) and each app's own (handed to App::build as text).

#include <map>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "cli/app.hpp"
#include "engine/errors.hpp"
#include "engine/options.hpp"

namespace engine::cli {

// A bad command line: exit code 2.
struct UsageError : ConfigError {
  using ConfigError::ConfigError;
};

// -w, -d, -s, --snapshot-mode, -b, --on-error, --stats, -q, ...
boost::program_options::options_description run_flags();

// Adds the flags of `app` (as strings and switches) to `d`.
void add_app_flags(boost::program_options::options_description& d, const App& app);

// Parses `args` with the flags of `d`; a stray word (a directory without
// its -d, say) is a UsageError, as is any unknown flag.
boost::program_options::variables_map parse_flags(const std::vector<std::string>& args,
                                                  const boost::program_options::options_description& d);

// The flags of `app` given in `vm`: name -> its values ({""} for a switch that is on).
std::map<std::string, std::vector<std::string>> app_flag_values(const boost::program_options::variables_map& vm,
                                                                const App& app);

// RunOptions from the common flags in `vm`. Throws UsageError.
RunOptions run_options_from(const boost::program_options::variables_map& vm);

}  // namespace engine::cli
