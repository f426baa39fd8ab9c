#pragma once
// describe_item(): a short printable form of any item, for error messages and
// dead letters. Strings print as themselves, keyed items as "key: value",
// JSON-convertible and fmt-formattable types through their formatters.

#include <concepts>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace engine {

inline constexpr size_t kMaxDescribedItem = 200;

template <class T>
std::string describe_item(const T& item);

namespace detail {
template <class T>
struct IsPair : std::false_type {};
template <class A, class B>
struct IsPair<std::pair<A, B>> : std::true_type {};

template <class T>
std::string describe_full(const T& item) {
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return std::string(std::string_view(item));
  } else if constexpr (std::is_arithmetic_v<T>) {
    return fmt::format("{}", item);
  } else if constexpr (IsPair<T>::value) {
    return describe_full(item.first) + ": " + describe_full(item.second);
  } else if constexpr (requires(nlohmann::json & j) { j = item; }) {
    return nlohmann::json(item).dump();
  } else if constexpr (fmt::is_formattable<T>::value) {
    return fmt::format("{}", item);
  } else {
    return "<unprintable item>";
  }
}
}  // namespace detail

template <class T>
std::string describe_item(const T& item) {
  std::string s = detail::describe_full(item);
  if (s.size() > kMaxDescribedItem) {
    s.resize(kMaxDescribedItem);
    s += "...";
  }
  return s;
}

}  // namespace engine
