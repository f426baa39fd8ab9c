// The `engine` binary: the command line over the built-in apps.

#include "apps/registry.hpp"
#include "cli/cli.hpp"

int main(int argc, char** argv) { return engine::main(argc, argv, engine::builtin_apps()); }
