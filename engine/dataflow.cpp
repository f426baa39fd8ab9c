#include "engine/dataflow.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace engine {

int Dataflow::Graph::add_step(StepDesc desc) {
  if (desc.role != StepRole::kExchange) {
    if (desc.id.empty()) throw ConfigError(fmt::format("flow '{}': a {} step has an empty step id", name_, desc.kind));
    for (const auto& s : steps_) {
      if (s.role != StepRole::kExchange && s.id == desc.id) {
        throw ConfigError(
            fmt::format("flow '{}': duplicate step id '{}' ({} and {})", name_, desc.id, s.kind, desc.kind));
      }
    }
  }
  for (const auto& e : desc.inputs) {
    ENGINE_CHECK(e.step >= 0 && e.step < static_cast<int>(steps_.size()), "edge from a step of another flow");
  }
  steps_.push_back(std::move(desc));
  return static_cast<int>(steps_.size()) - 1;
}

std::vector<std::string> Dataflow::stateful_step_ids() const {
  std::vector<std::string> ids;
  for (const auto& s : steps()) {
    if (s.role == StepRole::kStateful) ids.push_back(s.id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

void Dataflow::validate() const {
  bool has_input = false;
  bool has_output = false;
  for (const auto& s : steps()) {
    has_input = has_input || s.role == StepRole::kInput;
    has_output = has_output || s.role == StepRole::kOutput;
  }
  if (!has_input) throw ConfigError(fmt::format("flow '{}' has no input step", name()));
  if (!has_output) throw ConfigError(fmt::format("flow '{}' has no output step", name()));
}

namespace {
// Visible (non-exchange) upstream steps of an edge: exchanges are looked through.
void visible_sources(const std::vector<StepDesc>& steps, const Edge& e, std::vector<int>& out) {
  const auto& up = steps[e.step];
  if (up.role == StepRole::kExchange) {
    for (const auto& in : up.inputs) visible_sources(steps, in, out);
    return;
  }
  out.push_back(e.step);
}
}  // namespace

std::string Dataflow::to_mermaid() const {
  const auto& all = steps();
  const auto& flow = name();
  std::string out = "flowchart TD\n";
  out += fmt::format("subgraph \"{} (Dataflow)\"\n", flow);
  for (const auto& s : all) {
    if (s.role == StepRole::kExchange) continue;
    out += fmt::format("{}.{}[\"{} ({})\"]\n", flow, s.id, s.id, s.kind);
    for (const auto& e : s.inputs) {
      std::vector<int> ups;
      visible_sources(all, e, ups);
      for (int u : ups) {
        const auto& up = all[u];
        const std::string port = up.outputs > 1 ? (e.port == 0 ? "trues" : "falses") : "down";
        out += fmt::format("{}.{} -- \"{} → up\" --> {}.{}\n", flow, up.id, port, flow, s.id);
      }
    }
  }
  out += "end\n";
  return out;
}

std::string Dataflow::to_json() const {
  const auto& all = steps();
  const auto& flow = name();
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : all) {
    if (s.role == StepRole::kExchange) continue;
    nlohmann::json ups = nlohmann::json::array();
    for (const auto& e : s.inputs) {
      std::vector<int> v;
      visible_sources(all, e, v);
      for (int u : v) ups.push_back(all[u].id);
    }
    steps.push_back({{"id", s.id},
                     {"kind", s.kind},
                     {"inputs", ups},
                     {"stateful", s.role == StepRole::kStateful},
                     {"exchange_before", !s.inputs.empty() && all[s.inputs[0].step].role == StepRole::kExchange}});
  }
  return nlohmann::json{{"flow", flow}, {"steps", steps}}.dump(2);
}

}  // namespace engine
