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

#include "connectors/uri.hpp"
#include "engine/dataflow.hpp"
#include "engine/errors.hpp"

namespace engine {

// One flag of an app, as the command line shows it.
struct AppFlag {
  std::string name;  // "input" for --input
  std::string help;
  std::string default_text;  // shown by --help; "" = none
  bool is_switch = false;    // takes no value (--strict)
  bool repeated = false;     // may be given more than once (--kafka-opt)
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
    flags_.push_back(AppFlag{name, std::move(help), std::move(shown), false, false});
    setters_.push_back([name, field](Options& o, const std::string& text) { o.*field = parse<T>(name, text); });
    return *this;
  }
  // --NAME with no value: sets o.*field to true.
  AppFlags& flag(std::string name, bool Options::*field, std::string help) {
    flags_.push_back(AppFlag{std::move(name), std::move(help), "", true, false});
    setters_.push_back([field](Options& o, const std::string&) { o.*field = true; });
    return *this;
  }

  // --input PATH_OR_URI and what goes with it (--follow, --kafka-opt,
  // --kafka-start, --kafka-bounded), into o.*field (connectors/uri.hpp).
  AppFlags& input(InputSpec Options::*field, std::string help) {
    custom("input", std::move(help), false, false, [field](Options& o, const std::string& v) { (o.*field).path = v; });
    custom("follow", "keep reading what is appended to the input files (and new files of an input directory)", true,
           false, [field](Options& o, const std::string&) { (o.*field).follow = true; });
    custom("kafka-start", "earliest | latest: where a Kafka partition with no committed offset starts", false, false,
           [field](Options& o, const std::string& v) {
             if (v != "earliest" && v != "latest") {
               throw ConfigError(fmt::format("--kafka-start must be earliest or latest, got '{}'", v));
             }
             (o.*field).kafka.start_latest = v == "latest";
           });
    custom("kafka-bounded", "stop at the end of the Kafka topic as it was when the run started", true, false,
           [field](Options& o, const std::string&) { (o.*field).kafka.bounded = true; });
    kafka_options([field](Options& o) -> KafkaSettings& { return (o.*field).kafka; });
    return *this;
  }

  // --output PATH_OR_URI and what goes with it (--output-parts, --kafka-opt), into o.*field.
  AppFlags& output(OutputSpec Options::*field, std::string help) {
    custom("output", std::move(help), false, false, [field](Options& o, const std::string& v) { (o.*field).path = v; });
    flags_.push_back(AppFlag{"output-parts", "part files of an output directory (fixed for a state dir)",
                             std::to_string(OutputSpec{}.parts), false, false});
    setters_.push_back(
        [field](Options& o, const std::string& v) { (o.*field).parts = parse<uint32_t>("output-parts", v); });
    kafka_options([field](Options& o) -> KafkaSettings& { return (o.*field).kafka; });
    return *this;
  }

  const std::vector<AppFlag>& flags() const { return flags_; }
  // Fills `o` from `given` (flag name -> its values). Throws ConfigError on a bad value.
  void fill(Options& o, const std::map<std::string, std::vector<std::string>>& given) const {
    for (size_t i = 0; i < flags_.size(); ++i) {
      if (auto it = given.find(flags_[i].name); it != given.end()) {
        for (const auto& v : it->second) setters_[i](o, v);
      }
    }
    for (const auto& kafka : kafka_targets_) {
      if (auto it = given.find("kafka-opt"); it != given.end()) {
        for (const auto& v : it->second) kafka(o).options.push_back(parse_kafka_option(v));
      }
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

  void custom(std::string name, std::string help, bool is_switch, bool repeated,
              std::function<void(Options&, const std::string&)> set) {
    flags_.push_back(AppFlag{std::move(name), std::move(help), "", is_switch, repeated});
    setters_.push_back(std::move(set));
  }
  // --kafka-opt KEY=VALUE (repeatable), shared by the input and the output.
  void kafka_options(std::function<KafkaSettings&(Options&)> target) {
    if (kafka_targets_.empty()) {
      flags_.push_back(AppFlag{"kafka-opt", "KEY=VALUE: a librdkafka client property (repeatable)", "", false, true});
      setters_.push_back([](Options&, const std::string&) {});  // applied by fill() to every Kafka connector
    }
    kafka_targets_.push_back(std::move(target));
  }

  std::vector<AppFlag> flags_;
  std::vector<std::function<void(Options&, const std::string&)>> setters_;
  std::vector<std::function<KafkaSettings&(Options&)>> kafka_targets_;
};

struct App {
  std::string name;
  std::string summary;
  std::vector<AppFlag> flags;
  // Builds the flow from the flags given (name -> its values; a switch has
  // one ""). Throws ConfigError (a bad flag value) or InputError.
  std::function<BuiltFlow(const std::map<std::string, std::vector<std::string>>& given)> build;

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
    a.build = [flags,
               build = std::move(build)](const std::map<std::string, std::vector<std::string>>& given) -> BuiltFlow {
      Options o{};
      flags->fill(o, given);
      return BuiltFlow(build(o));
    };
    return a;
  }
};

}  // namespace engine
