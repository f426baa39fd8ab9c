#pragma once
// engine::main: the whole `engine` command line for a program's own flows.
// A program that links engine::engine gets run (with every run flag), list,
// visualize, inspect and --help, with the same one-line errors and exit
// codes as the `engine` binary, from one call:
//
//   int main(int argc, char** argv) { return engine::main(argc, argv, {wordcount_app()}); }
//
// Exit codes: 0 done; 1 failed (bad input, a step error, an unusable state
// dir); 2 usage error; 128 + signal when SIGINT/SIGTERM stopped a run before
// its input ended (its last epoch is committed).

#include <vector>

#include "cli/app.hpp"

namespace engine {

// Main thread, once. Never throws: every error is one line on stderr.
int main(int argc, char** argv, const std::vector<App>& apps);

}  // namespace engine
