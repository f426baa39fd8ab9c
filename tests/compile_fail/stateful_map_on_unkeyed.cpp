// Must not compile: a stateful step on a stream that is not keyed. The
// test (tests/CMakeLists.txt) checks that the compiler says what to do.
#include <optional>
#include <string>

#include "connectors/testing/testing.hpp"
#include "operators/operators.hpp"

namespace op = engine::op;

void build(engine::Dataflow& flow) {
  auto lines = op::input("in", flow, engine::TestingSource<std::string>(std::vector<std::string>{"a b"}));
  auto pairs = op::map("pairs", lines, [](std::string&& s) { return engine::KV<std::string>(s, s); });
  op::stateful_map("count", pairs, [](std::optional<int>& n, std::string&&) { return n.value_or(0); });
}
