#include "apps/registry.hpp"

#include <unistd.h>

#include <filesystem>

#include "apps/cart_join.hpp"
#include "apps/cart_stats.hpp"

namespace engine {

App running_sum_app();
App bench_exchange_app();
App bench_stateful_app();

std::vector<App> builtin_apps() {
  return {cart::app(), cart_stats::app(), running_sum_app(), bench_exchange_app(), bench_stateful_app()};
}

std::string bundled_data(const std::string& name) {
  namespace fs = std::filesystem;
  const std::string local = "data/" + name;
  std::error_code ec;
  if (fs::exists(local, ec)) return local;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "engine" / "data" / name;
    if (fs::exists(installed, ec)) return installed.string();
  }
#ifdef ENGINE_DATA_DIR
  return std::string(ENGINE_DATA_DIR) + "/" + name;
#else
  return local;
#endif
}

}  // namespace engine
