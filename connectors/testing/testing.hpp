#pragma once
// TestingSource / TestingSink: in-memory connectors for tests, with the same
// resume semantics as the file ones (an index per partition).

#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/connector.hpp"
#include "engine/stored_number.hpp"

namespace engine {

// Items split into partitions; each partition resumes at an item index.
template <class T>
class TestingSource final : public Source<T> {
 public:
  explicit TestingSource(std::vector<T> items) : parts_{std::move(items)} {}
  explicit TestingSource(std::vector<std::vector<T>> parts) : parts_(std::move(parts)) {}

  std::vector<std::string> list_parts() const override {
    std::vector<std::string> names;
    for (size_t i = 0; i < parts_.size(); ++i) names.push_back(fmt::format("part-{}", i));
    return names;
  }

  std::unique_ptr<SourcePartition<T>> build_part(const std::string& part,
                                                 const std::optional<std::string>& resume) const override {
    const size_t index = std::stoul(part.substr(5));
    return std::make_unique<Reader>(parts_.at(index),
                                    resume ? parse_stored_number(*resume, "the resume state of " + part) : 0);
  }

 private:
  class Reader final : public SourcePartition<T> {
   public:
    Reader(const std::vector<T>& items, size_t next) : items_(items), next_(next) {}
    bool next_batch(SourceBatch<T>& batch, size_t max) override {
      batch.first_line = next_ + 1;
      for (size_t n = 0; n < max && next_ < items_.size(); ++n) batch.next() = items_[next_++];
      return next_ < items_.size();
    }
    std::string snapshot() const override { return std::to_string(next_); }

   private:
    const std::vector<T>& items_;
    size_t next_;
  };
  std::vector<std::vector<T>> parts_;
};

// Collects every item; thread-safe. On resume, items past the committed count
// are dropped (as a file sink truncates).
template <class T>
class TestingSink final : public Sink<T> {
 public:
  struct Collected {
    std::mutex mu;
    std::vector<T> items;
    std::vector<T> snapshot() {
      std::lock_guard<std::mutex> lk(mu);
      return items;
    }
  };

  explicit TestingSink(std::shared_ptr<Collected> out) : out_(std::move(out)) {}
  std::vector<std::string> list_parts() const override { return {"collected"}; }
  std::unique_ptr<SinkPartition<T>> build_part(const std::string&,
                                               const std::optional<std::string>& resume) const override {
    {
      std::lock_guard<std::mutex> lk(out_->mu);
      // Nothing committed: start empty, as a file sink truncates to 0.
      const size_t keep =
          resume ? std::min<size_t>(out_->items.size(), parse_stored_number(*resume, "the collected count")) : 0;
      out_->items.erase(out_->items.begin() + static_cast<std::ptrdiff_t>(keep), out_->items.end());
    }
    return std::make_unique<Writer>(out_);
  }

 private:
  class Writer final : public SinkPartition<T> {
   public:
    explicit Writer(std::shared_ptr<Collected> out) : out_(std::move(out)) {}
    void write(T&& item) override {
      std::lock_guard<std::mutex> lk(out_->mu);
      out_->items.push_back(std::move(item));
    }
    std::string snapshot(bool) override {
      std::lock_guard<std::mutex> lk(out_->mu);
      return std::to_string(out_->items.size());
    }

   private:
    std::shared_ptr<Collected> out_;
  };
  std::shared_ptr<Collected> out_;
};

}  // namespace engine
