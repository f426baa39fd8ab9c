#pragma once
// call_user: the one place where a step runs user code on an item and
// catches what it throws. An exception from the user's callable goes to the
// run's error policy (fail / skip / dead-letter, engine/context.hpp); one
// from what runs after it (the downstream steps, fused by direct calls)
// propagates untouched, so it is reported once, by the step it came from.

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "engine/context.hpp"
#include "engine/describe.hpp"
#include "engine/errors.hpp"

namespace engine::op::detail {

// Calls f(args...) for the step `step` of kind `kind` and hands its result,
// neither copied nor moved, to then(result) (then() for a void callable).
// Returns false if f threw and the error policy dropped the item (`item` is
// how the error names it: take it by const& in callables that move from
// their argument). Throws StepError under --on-error fail.
template <class Item, class F, class Then, class... A>
bool call_user(WorkerContext& ctx, const std::string& step, std::string_view kind, const Item& item, F& f, Then&& then,
               A&&... args) {
  bool in_user_code = true;
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, A...>>) {
      f(std::forward<A>(args)...);
      in_user_code = false;
      then();
    } else {
      auto&& r = f(std::forward<A>(args)...);
      in_user_code = false;
      then(std::forward<decltype(r)>(r));
    }
    return true;
  } catch (const StepError&) {
    throw;
  } catch (const std::exception& e) {
    if (!in_user_code) throw;
    report_step_error(ctx, step, kind, describe_item(item), e);
    return false;
  }
}

}  // namespace engine::op::detail
