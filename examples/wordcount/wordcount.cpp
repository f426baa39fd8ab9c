// wordcount: Bytewax's classic example on the installed engine. Lines in,
// words out: a word is a run of ASCII letters, lower-cased (everything else,
// digits and non-ASCII bytes included, separates words); one line per word
// seen, with its running count: {"word": "the", "count": 3}.
//
//   wordcount run wordcount --input FILE_OR_DIR|-|kafka://... [--follow] [--output FILE] [-w N -d STATE_DIR ...]
//
// Every flag of `engine run` works (recovery with -d included): the program
// hands its app to engine::main and gets the whole command line.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "connectors/uri.hpp"
#include "engine/errors.hpp"
#include "operators/operators.hpp"

namespace op = engine::op;

namespace {

struct Options {
  engine::InputSpec input;    // a file, a directory (one partition per file), - or a Kafka topic
  engine::OutputSpec output;  // "" = stdout
};

// The lower-cased words of a line, split on everything that is not an ASCII letter.
std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  for (const char c : line) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      word.push_back(static_cast<char>(c | 0x20));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

engine::Dataflow wordcount(const Options& o) {
  if (o.input.path.empty()) throw engine::ConfigError("wordcount needs --input FILE_OR_DIR");
  engine::Dataflow flow("wordcount");
  auto lines = op::input("read", flow, engine::lines_source(o.input));
  auto words = op::flat_map("split", lines, split_words);
  auto keyed = op::key_on("key", words, [](const std::string& word) { return word; });
  auto counts = op::stateful_map("count", keyed, [](std::optional<int64_t>& count, std::string&&) {
    count = count.value_or(0) + 1;
    return *count;
  });
  auto out = op::map("format", counts, [](engine::KV<int64_t>&& kv) {
    return fmt::format(R"({{"word": "{}", "count": {}}})", kv.first, kv.second);
  });
  op::output("write", out, engine::lines_sink(o.output));
  return flow;
}

engine::App wordcount_app() {
  return engine::App::make<Options>(
      "wordcount", "running count of every word (lower-cased ASCII letters)",
      [](engine::AppFlags<Options>& f) {
        f.input(&Options::input, "text file, directory of them, - (stdin) or kafka://HOST:PORT/TOPIC")
            .output(&Options::output, "output file or kafka://HOST:PORT/TOPIC (default: stdout)");
      },
      wordcount);
}

}  // namespace

int main(int argc, char** argv) { return engine::main(argc, argv, {wordcount_app()}); }
