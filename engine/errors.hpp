#pragma once
// The engine's exception hierarchy. Every error a user can cause carries enough
// context (what and where) to be printed as one line.

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace engine {

// Base of all engine errors; what() is the one-line message shown to users.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad flags, unknown apps, invalid flows (duplicate step ids, ...). Exit code 2.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Unreadable or malformed input (missing file, bad line in strict mode).
class InputError : public Error {
 public:
  using Error::Error;
};

// The state dir cannot be used: another app, another format, corrupt, I/O error.
class StateError : public Error {
 public:
  using Error::Error;
};

// A user step threw on an item and the error policy is `fail`.
class StepError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] void check_failed(const char* cond, const std::string& msg, const char* file, int line);

}  // namespace engine

// Broken invariants: these are engine bugs, not user errors.
#define ENGINE_CHECK(cond, msg)                                            \
  do {                                                                     \
    if (!(cond)) ::engine::check_failed(#cond, (msg), __FILE__, __LINE__); \
  } while (0)
