#pragma once
// Type helpers of the operator API: what a callable returns or takes.

#include <iterator>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "engine/dataflow.hpp"

namespace engine::op::detail {

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

// The element type of a range (what flat_map emits).
template <class R>
using RangeElement = std::remove_cvref_t<decltype(*std::begin(std::declval<R&>()))>;

// The first parameter type of a callable that is not generic (a lambda, a
// function or a function pointer); `void` if it cannot be told.
template <class F, class = void>
struct FirstParam {
  using type = void;
};
template <class R, class A, class... Rest>
struct FirstParam<R (*)(A, Rest...)> {
  using type = A;
};
template <class R, class A, class... Rest>
struct FirstParam<R(A, Rest...)> {
  using type = A;
};
template <class C, class R, class A, class... Rest>
struct FirstParam<R (C::*)(A, Rest...)> {
  using type = A;
};
template <class C, class R, class A, class... Rest>
struct FirstParam<R (C::*)(A, Rest...) const> {
  using type = A;
};
template <class F>
struct FirstParam<F, std::void_t<decltype(&F::operator())>> : FirstParam<decltype(&F::operator())> {};

// The state type S of a stateful mapper taking `std::optional<S>&` first.
template <class F>
struct StateOf {
  using Param = typename FirstParam<std::remove_cvref_t<F>>::type;
  static constexpr bool kKnown = IsOptional<std::remove_cvref_t<Param>>::value && std::is_lvalue_reference_v<Param>;
  using type = typename std::conditional_t<kKnown, std::remove_cvref_t<Param>, std::optional<void*>>::value_type;
};

// Which stream type a step that keeps its input's keys returns: the input's own.
template <class S>
concept AnyStream = std::is_base_of_v<Stream<typename S::Item>, S>;

}  // namespace engine::op::detail
