#pragma once
// Dataflow: the immutable description of a flow (its steps and edges), built
// once on the main thread by the operator functions in operators/operators.hpp.
// Running it instantiates every step once per worker (StepInstance); the
// description itself is never mutated after build and is shared read-only.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/connector.hpp"
#include "engine/errors.hpp"

namespace engine {

class WorkerContext;
class EpochWriter;

template <class V>
using KV = std::pair<std::string, V>;

// Consumes items pushed by an upstream step on the same worker (a direct call:
// stateless steps on one worker are fused this way).
template <class T>
class Receiver {
 public:
  virtual ~Receiver() = default;
  // Worker thread only; once per item.
  virtual void push(T&& item) = 0;
};

// A step's output port on one worker: fans items out to downstream receivers.
template <class T>
class Output {
 public:
  void connect(Receiver<T>* r) {
    receivers_.push_back(r);
    only_ = receivers_.size() == 1 ? r : nullptr;
  }
  bool connected() const { return !receivers_.empty(); }
  // The only receiver, or nullptr if there are none or several.
  Receiver<T>* sole() const { return receivers_.size() == 1 ? receivers_[0] : nullptr; }

  void push(T&& item) {
    if (only_ != nullptr) {
      only_->push(std::move(item));
      return;
    }
    const size_t n = receivers_.size();
    if (n == 0) return;
    for (size_t i = 0; i + 1 < n; ++i) {
      T copy(item);
      receivers_[i]->push(std::move(copy));
    }
    receivers_[n - 1]->push(std::move(item));
  }

 private:
  std::vector<Receiver<T>*> receivers_;
  Receiver<T>* only_ = nullptr;  // receivers_[0] when it is the only one
};

// The mutable per-worker state of one step. Owned by one worker; not thread-safe.
class StepInstance {
 public:
  virtual ~StepInstance() = default;
  // Wiring, called once when the worker builds its graph: typed Receiver<In>*
  // for input `port` and Output<Out>* for output `port`, erased to void*; the
  // operator that created the edge knows both types.
  virtual void* input(int port) {
    (void)port;
    return nullptr;
  }
  virtual void* output(int port) {
    (void)port;
    return nullptr;
  }
  // Worker thread, once per epoch after every item of the epoch reached this
  // step: stateful steps write changed keys, sinks make output durable.
  virtual void end_epoch(EpochWriter& writer) { (void)writer; }
  // Worker thread, after each processed batch (immediate snapshot mode).
  virtual void stage(EpochWriter& writer) { (void)writer; }
  // Worker thread, when the worker goes idle and every --flush-interval:
  // outputs write what they buffer. Default: nothing.
  virtual void flush_output() {}
  // Worker thread, once, when the run ended well: outputs deliver everything
  // (a network sink waits for acknowledgements). Throws. Default: nothing.
  virtual void finish() {}
  // Worker thread, once, when the run ends: how many keys the step holds in
  // memory (stateful steps; nullopt for the others). Reported in --stats.
  virtual std::optional<uint64_t> keys_in_memory() const { return std::nullopt; }
};

// How items reach a step whose input crosses workers.
enum class Routing : uint8_t {
  kLocal,          // no exchange: same worker, direct call
  kByKey,          // hash(key) -> key group -> owner worker
  kRoundRobin,     // redistribute
  kSinkPartition,  // to the worker owning the sink partition
};

enum class StepRole : uint8_t { kStateless, kStateful, kInput, kOutput, kExchange };

struct Edge {
  int step = -1;  // upstream step index
  int port = 0;   // upstream output port
  // Connects upstream output `port` on one worker to input `in_port` of the downstream instance.
  std::function<void(StepInstance& up, StepInstance& down)> connect;
};

struct StepDesc {
  std::string id;    // user-given, unique in the flow ("" for internal exchange steps)
  std::string kind;  // "map", "stateful_map", ... (shown by visualize)
  StepRole role = StepRole::kStateless;
  std::vector<Edge> inputs;
  int outputs = 1;
  Routing routing = Routing::kLocal;  // for kExchange steps
  // Worker thread, once per run: the step's instance on that worker.
  std::function<std::unique_ptr<StepInstance>(WorkerContext&, int step_index)> make;
  // Input and output steps, main thread, once per run, in this order: what
  // the connector touches on disk, its partitions, and (outputs, after every
  // check passed) creating what its partitions need.
  std::function<Footprint()> footprint;
  std::function<std::vector<std::string>()> list_parts;
  std::function<void()> prepare;
};

template <class T>
class Stream;

// The description of a flow under construction, then run. Movable (its steps
// live in a Graph that streams point at, which never moves); not thread-safe
// while being built.
class Dataflow {
 public:
  // The steps and edges. Streams built on a flow point at its Graph.
  class Graph {
   public:
    explicit Graph(std::string name) : name_(std::move(name)) {}
    const std::string& name() const { return name_; }
    const std::vector<StepDesc>& steps() const { return steps_; }
    // Adds a step; throws ConfigError on a duplicate or empty step id.
    int add_step(StepDesc desc);

   private:
    std::string name_;
    std::vector<StepDesc> steps_;
  };

  explicit Dataflow(std::string name) : g_(std::make_unique<Graph>(std::move(name))) {}

  const std::string& name() const { return g_->name(); }
  const std::vector<StepDesc>& steps() const { return g_->steps(); }
  int add_step(StepDesc desc) { return g_->add_step(std::move(desc)); }
  Graph& graph() { return *g_; }

  // An edge from `from` into input `in_port` of the step being added.
  template <class T>
  static Edge edge(const Stream<T>& from, int in_port) {
    const int port = from.port();
    return Edge{from.step(), port, [port, in_port](StepInstance& up, StepInstance& down) {
                  auto* out = static_cast<Output<T>*>(up.output(port));
                  auto* rx = static_cast<Receiver<T>*>(down.input(in_port));
                  ENGINE_CHECK(out != nullptr && rx != nullptr, "step wiring has no port");
                  out->connect(rx);
                }};
  }

  // Ids of the stateful steps, sorted: their names key stored state.
  std::vector<std::string> stateful_step_ids() const;

  // Checks the whole flow (an input and an output exist). Throws ConfigError.
  void validate() const;

  std::string to_mermaid() const;
  std::string to_json() const;

 private:
  std::unique_ptr<Graph> g_;
};

// A typed handle on one output port of a step, used to build the flow.
template <class T>
class Stream {
 public:
  using Item = T;
  Stream(Dataflow::Graph* graph, int step, int port) : graph_(graph), step_(step), port_(port) {}
  Dataflow::Graph& graph() const { return *graph_; }
  int step() const { return step_; }
  int port() const { return port_; }

 private:
  Dataflow::Graph* graph_;
  int step_;
  int port_;
};

// A stream of (key, value) items that may feed a stateful step: made by
// key_on, map_value, a stateful step, or a step that keeps its input's keys
// (filter, inspect, branch, merge, redistribute). Any stream of pairs is not
// enough: a stateful step on an unkeyed stream does not compile.
template <class V>
class KeyedStream : public Stream<KV<V>> {
 public:
  using Value = V;
  using Stream<KV<V>>::Stream;
  explicit KeyedStream(const Stream<KV<V>>& s) : Stream<KV<V>>(s) {}
};

}  // namespace engine
