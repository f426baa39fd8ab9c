#pragma once
// WriteSet: store writes, key -> value or deletion, in any order; for one key
// the last write wins. An epoch's changed state is hundreds of thousands of
// writes, so they are packed into one byte buffer (each key followed by its
// value) with a 16-byte record per write: adding a write allocates nothing of
// its own, and the key and the value can be encoded straight into the buffer.
//
// Owned by one thread at a time (a worker builds it, the commit thread
// consumes it).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/errors.hpp"

namespace engine {

class WriteSet {
 public:
  struct Write {
    std::string_view key;
    std::optional<std::string_view> value;  // nullopt: delete the key
  };

  WriteSet() = default;
  WriteSet(std::initializer_list<std::pair<std::string_view, std::optional<std::string_view>>> writes) {
    for (const auto& [key, value] : writes) add(key, value);
  }

  void add(std::string_view key, std::optional<std::string_view> value) {
    add_built([&](std::string& out) { out.append(key); },
              [&](std::string& out) {
                if (value) out.append(*value);
                return value.has_value();
              });
  }

  // Adds a write whose bytes are appended in place: key(out) appends the key,
  // then value(out) appends the value and returns true, or appends nothing and
  // returns false for a delete.
  template <class KeyFn, class ValueFn>
  void add_built(KeyFn&& key, ValueFn&& value) {
    const size_t start = data_.size();
    size_t key_end = 0;
    bool put = false;
    try {  // a failed encoding leaves no bytes behind
      key(data_);
      key_end = data_.size();
      put = value(data_);
    } catch (...) {
      data_.resize(start);
      throw;
    }
    const size_t value_size = data_.size() - key_end;
    if (key_end - start >= kDeleted || value_size >= kDeleted) {
      data_.resize(start);
      throw StateError("a state key or value of 4 GB or more cannot be stored");
    }
    refs_.push_back(
        Ref{start, static_cast<uint32_t>(key_end - start), put ? static_cast<uint32_t>(value_size) : kDeleted});
  }

  // Moves other's writes after this one's.
  void append(WriteSet&& other) {
    if (refs_.empty()) {
      *this = std::move(other);
      other.clear();  // a moved-from string's contents are unspecified
      return;
    }
    const size_t shift = data_.size();
    data_.append(other.data_);
    // No exact reserve: a group commit appends epoch after epoch, and only
    // geometric growth keeps that linear.
    for (Ref r : other.refs_) {
      r.offset += shift;
      refs_.push_back(r);
    }
    other.clear();
  }

  void clear() {
    data_.clear();
    refs_.clear();
  }
  // Room for `writes` writes of `bytes` bytes in all, growing geometrically:
  // reserving before each of many additions stays linear.
  void reserve(size_t writes, size_t bytes) {
    if (writes > refs_.capacity()) refs_.reserve(std::max(writes, 2 * refs_.capacity()));
    if (bytes > data_.capacity()) data_.reserve(std::max(bytes, 2 * data_.capacity()));
  }

  size_t size() const { return refs_.size(); }
  bool empty() const { return refs_.empty(); }
  // Bytes of keys and values.
  size_t bytes() const { return data_.size(); }

  std::string_view key(size_t i) const { return {data_.data() + refs_[i].offset, refs_[i].key_size}; }
  Write operator[](size_t i) const {
    const Ref& r = refs_[i];
    const char* k = data_.data() + r.offset;
    if (r.value_size == kDeleted) return {{k, r.key_size}, std::nullopt};
    return {{k, r.key_size}, std::string_view(k + r.key_size, r.value_size)};
  }

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Write;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Write;

    const_iterator() = default;
    const_iterator(const WriteSet* set, size_t i) : set_(set), i_(i) {}
    Write operator*() const { return (*set_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++i_;
      return old;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }

   private:
    const WriteSet* set_ = nullptr;
    size_t i_ = 0;
  };
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, refs_.size()}; }

 private:
  static constexpr uint32_t kDeleted = std::numeric_limits<uint32_t>::max();
  struct Ref {
    size_t offset;  // of the key in data_; the value follows it
    uint32_t key_size;
    uint32_t value_size;  // kDeleted: a delete
  };

  std::string data_;
  std::vector<Ref> refs_;
};

}  // namespace engine
