// bench_exchange and bench_stateful: synthetic flows that measure the exchange
// and the stateful path in isolation (used by bench/harness.py).

#include <fmt/format.h>

#include "cli/app.hpp"
#include "engine/connector.hpp"
#include "engine/hash.hpp"
#include "engine/stored_number.hpp"
#include "operators/operators.hpp"

namespace engine {

namespace {

// One partition per `parts`; partition p yields keys "k<i % keys>" for its
// share of `items` per run, continuing from its resume index.
class GeneratorSource final : public Source<std::string> {
 public:
  GeneratorSource(uint64_t items, uint64_t keys, uint32_t parts) : items_(items), keys_(keys), parts_(parts) {}
  std::vector<std::string> list_parts() const override {
    std::vector<std::string> names;
    for (uint32_t p = 0; p < parts_; ++p) names.push_back(fmt::format("gen-{}", p));
    return names;
  }
  std::unique_ptr<SourcePartition<std::string>> build_part(const std::string& part,
                                                           const std::optional<std::string>& resume) const override {
    const uint32_t p = static_cast<uint32_t>(std::stoul(part.substr(4)));
    const uint64_t start = resume ? parse_stored_number(*resume, "the resume state of " + part) : p;
    const uint64_t share = items_ / parts_ + (p < items_ % parts_ ? 1 : 0);
    return std::make_unique<Reader>(start, start + share * parts_, parts_, keys_);
  }

 private:
  class Reader final : public SourcePartition<std::string> {
   public:
    Reader(uint64_t next, uint64_t end, uint64_t step, uint64_t keys)
        : next_(next), end_(end), step_(step), keys_(keys) {}
    bool next_batch(SourceBatch<std::string>& batch, size_t max) override {
      batch.first_line = next_ / step_ + 1;
      for (size_t n = 0; n < max && next_ < end_; ++n, next_ += step_) {
        auto& key = batch.next();
        key.clear();
        fmt::format_to(std::back_inserter(key), "k{}", next_ % keys_);
      }
      return next_ < end_;
    }
    std::string snapshot() const override { return std::to_string(next_); }

   private:
    uint64_t next_, end_, step_, keys_;
  };
  uint64_t items_, keys_;
  uint32_t parts_;
};

// Counts items; `parts` partitions chosen by key hash so no worker is a funnel.
template <class T>
class NullSink final : public Sink<T> {
 public:
  explicit NullSink(uint32_t parts) : parts_(parts) {}
  std::vector<std::string> list_parts() const override {
    std::vector<std::string> names;
    for (uint32_t p = 0; p < parts_; ++p) names.push_back(fmt::format("null-{}", p));
    return names;
  }
  std::unique_ptr<SinkPartition<T>> build_part(const std::string&, const std::optional<std::string>&) const override {
    return std::make_unique<Part>();
  }
  size_t part_of(const T& item, size_t parts) const override { return stable_hash(item.first) % parts; }

 private:
  struct Part final : SinkPartition<T> {
    void write(T&&) override { ++count; }
    std::string snapshot(bool) override { return std::to_string(count); }
    uint64_t count = 0;
  };
  uint32_t parts_;
};

struct GeneratorOptions {
  uint64_t items = 1000000;
  uint64_t keys = 100000;
  uint32_t partitions = 2;
};

void generator_flags(AppFlags<GeneratorOptions>& f) {
  f.add("items", &GeneratorOptions::items, "items to generate in this run")
      .add("keys", &GeneratorOptions::keys, "distinct keys")
      .add("partitions", &GeneratorOptions::partitions, "source partitions");
}

}  // namespace

App bench_exchange_app() {
  return App::make<GeneratorOptions>("bench_exchange", "benchmark: keyed items crossing between workers, nothing else",
                                     generator_flags, [](const GeneratorOptions& o) {
                                       Dataflow flow("bench_exchange");
                                       auto items =
                                           op::input("gen", flow, GeneratorSource(o.items, o.keys, o.partitions));
                                       auto keyed = op::key_on("key", items, [](const std::string& k) { return k; });
                                       op::output("count", keyed, NullSink<KV<std::string>>(64));
                                       return flow;
                                     });
}

App bench_stateful_app() {
  return App::make<GeneratorOptions>(
      "bench_stateful", "benchmark: a per-key counter (stateful_map) on generated keys", generator_flags,
      [](const GeneratorOptions& o) {
        Dataflow flow("bench_stateful");
        auto items = op::input("gen", flow, GeneratorSource(o.items, o.keys, o.partitions));
        auto keyed = op::key_on("key", items, [](const std::string& k) { return k; });
        auto counts = op::stateful_map("count", keyed, [](std::optional<int64_t>& n, std::string&&) {
          n = n.value_or(0) + 1;
          return *n;
        });
        op::output("out", counts, NullSink<KV<int64_t>>(64));
        return flow;
      });
}

}  // namespace engine
