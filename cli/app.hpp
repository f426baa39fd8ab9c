#pragma once
// App: a named dataflow with flags of its own, which the engine command line
// (engine::main, cli/cli.hpp) lists, draws and runs. An app declares its
// flags over a plain options struct; the command line parses them, fills a
// fresh struct and hands it to the app's build function:
//
//   struct WordcountOptions {
//     std::string input = "words.txt";
//     std::string output;  // "" = stdout
//   };
//   engine::App wordcount_app() {
//     return engine::App::make<WordcountOptions>(
//         "wordcount", "running count per word",
//         [](engine::AppFlags<WordcountOptions>& f) {
//           f.add("input", &WordcountOptions::input, "text file or directory");
//           f.add("output", &WordcountOptions::output, "output file (default: stdout)");
//         },
//         [](const WordcountOptions& o) { return wordcount_flow(o); });
//   }
//
// Thread safety: built and used on the main thread.

#include <charconv>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "engine/dataflow.hpp"
#include "engine/errors.hpp"

namespace engine {

// One flag of an app, as the command line shows it.
struct AppFlag {
  std::string name;  // "input" for --input
  std::string help;
  std::string default_text;  // shown by --help; "" = none
  bool is_switch = false;    // takes no value (--strict)
};

// The flow an app built, and what to say after it ran.
struct BuiltFlow {
  BuiltFlow(Dataflow f) : flow(std::move(f)) {}  // NOLINT: an app may return just its Dataflow
  BuiltFlow(Dataflow f, std::function<std::string()> r) : flow(std::move(f)), report(std::move(r)) {}
  Dataflow flow;
  // Called after the run: a line for stderr with app-specific counts ("" or empty: none).
  std::function<std::string()> report;
};

// The flags of an app over its options struct `Options`.
template <class Options>
class AppFlags {
 public:
  // --NAME VALUE, parsed into o.*field: a std::string, an integer or a double.
  template <class T>
  AppFlags& add(std::string name, T Options::*field, std::string help) {
    static_assert(std::is_same_v<T, std::string> || std::is_arithmetic_v<T>, "flags are strings or numbers");
    static_assert(!std::is_same_v<T, bool>, "use flag() for a bool switch");
    const Options defaults{};
    std::string shown;
    if constexpr (std::is_same_v<T, std::string>) {
      shown = defaults.*field;
    } else {
      shown = fmt::format("{}", defaults.*field);
    }
    flags_.push_back(AppFlag{name, std::move(help), std::move(shown), false});
    setters_.push_back([name, field](Options& o, const std::string& text) { o.*field = parse<T>(name, text); });
    return *this;
  }
  // --NAME with no value: sets o.*field to true.
  AppFlags& flag(std::string name, bool Options::*field, std::string help) {
    flags_.push_back(AppFlag{std::move(name), std::move(help), "", true});
    setters_.push_back([field](Options& o, const std::string&) { o.*field = true; });
    return *this;
  }

  const std::vector<AppFlag>& flags() const { return flags_; }
  // Fills `o` from `given` (flag name -> text). Throws ConfigError on a bad number.
  void fill(Options& o, const std::map<std::string, std::string>& given) const {
    for (size_t i = 0; i < flags_.size(); ++i) {
      if (auto it = given.find(flags_[i].name); it != given.end()) setters_[i](o, it->second);
    }
  }

 private:
  template <class T>
  static T parse(const std::string& name, const std::string& text) {
    if constexpr (std::is_same_v<T, std::string>) {
      return text;
    } else {
      T v{};
      const auto* end = text.data() + text.size();
      const auto [p, ec] = std::from_chars(text.data(), end, v);
      if (ec != std::errc() || p != end || text.empty()) {
        throw ConfigError(fmt::format("--{} must be a number, got '{}'", name, text));
      }
      return v;
    }
  }

  std::vector<AppFlag> flags_;
  std::vector<std::function<void(Options&, const std::string&)>> setters_;
};

struct App {
  std::string name;
  std::string summary;
  std::vector<AppFlag> flags;
  // Builds the flow from the flags given (name -> text; switches map to
  // ""). Throws ConfigError (a bad flag value) or InputError.
  std::function<BuiltFlow(const std::map<std::string, std::string>& given)> build;

  // An app over the options struct `Options`: `declare(AppFlags<Options>&)`
  // adds its flags, `build(const Options&)` returns its Dataflow (or a BuiltFlow).
  template <class Options, class Declare, class Build>
  static App make(std::string name, std::string summary, Declare declare, Build build) {
    auto flags = std::make_shared<AppFlags<Options>>();
    declare(*flags);
    App a;
    a.name = std::move(name);
    a.summary = std::move(summary);
    a.flags = flags->flags();
    a.build = [flags, build = std::move(build)](const std::map<std::string, std::string>& given) -> BuiltFlow {
      Options o{};
      flags->fill(o, given);
      return BuiltFlow(build(o));
    };
    return a;
  }
};

}  // namespace engine
