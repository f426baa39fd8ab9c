#include <filesystem>

#include "apps/app.hpp"
#include "apps/cart_join.hpp"

namespace engine {

App running_sum_app();
App bench_exchange_app();
App bench_stateful_app();

std::vector<App> builtin_apps() { return {cart::app(), running_sum_app(), bench_exchange_app(), bench_stateful_app()}; }

std::string bundled_data(const std::string& name) {
  const std::string local = "data/" + name;
  std::error_code ec;
#ifdef ENGINE_DATA_DIR
  if (!std::filesystem::exists(local, ec)) return std::string(ENGINE_DATA_DIR) + "/" + name;
#endif
  return local;
}

}  // namespace engine
