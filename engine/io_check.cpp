#include "engine/io_check.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "engine/errors.hpp"
#include "engine/paths.hpp"
#include "engine/store.hpp"

namespace engine {
namespace fs = std::filesystem;

namespace {

// A path the run writes, and who writes it ("output step 'out'", "the dead-letter file").
struct Written {
  std::string path;
  std::string by;
};

std::optional<std::pair<dev_t, ino_t>> inode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::pair{st.st_dev, st.st_ino};
}

// "" if a file can be created or overwritten at `path`, else why not.
std::string why_unwritable(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return "it is a directory";
  if (fs::exists(path, ec)) return ::access(path.c_str(), W_OK) == 0 ? "" : std::strerror(errno);
  const fs::path parent = fs::path(path).parent_path();
  const std::string dir = parent.empty() ? "." : parent.string();
  if (!fs::is_directory(dir, ec)) return fmt::format("directory {} does not exist", dir);
  return ::access(dir.c_str(), W_OK | X_OK) == 0 ? "" : fmt::format("directory {}: {}", dir, std::strerror(errno));
}

}  // namespace

void check_outputs(const std::vector<StepFootprint>& steps, const RunOptions& opts) {
  std::vector<Written> written;
  for (const auto& s : steps) {
    if (!s.output) continue;
    for (const auto& f : s.footprint.files) written.push_back({f, fmt::format("the output file of step '{}'", s.step)});
  }
  if (opts.on_error == ErrorPolicy::kDeadLetter) {
    written.push_back({canonical_path(opts.dead_letter_path), "the dead-letter file"});
  }
  if (!opts.stats_path.empty()) written.push_back({canonical_path(opts.stats_path), "the stats file"});

  for (size_t i = 0; i < written.size(); ++i) {
    const auto& w = written[i];
    const auto inode = inode_of(w.path);
    for (const auto& s : steps) {
      if (s.output) continue;
      for (const auto& f : s.footprint.files) {
        if (w.path == f || (inode && inode == inode_of(f))) {
          throw ConfigError(
              fmt::format("{} {} is the input of step '{}'; refusing to overwrite an input", w.by, w.path, s.step));
        }
      }
      for (const auto& d : s.footprint.dirs) {
        if (is_within(w.path, d)) {
          throw ConfigError(
              fmt::format("{} {} is inside input directory {} of step '{}'; refusing to write among "
                          "the inputs",
                          w.by, w.path, d, s.step));
        }
      }
    }
    for (const auto& [dir, what] : {std::pair{opts.state_dir, "state dir"}, std::pair{opts.backup_dir, "backup dir"}}) {
      if (!dir.empty() && is_within(w.path, canonical_path(dir))) {
        throw ConfigError(fmt::format("{} {} is inside the {} {}; refusing to write there", w.by, w.path, what, dir));
      }
    }
    for (size_t j = 0; j < i; ++j) {
      if (written[j].path == w.path) {
        throw ConfigError(fmt::format("{} and {} are both {}; give them different paths", written[j].by, w.by, w.path));
      }
    }
  }
  if (!opts.stats_path.empty()) {
    if (const auto why = why_unwritable(opts.stats_path); !why.empty()) {
      throw ConfigError(fmt::format("cannot write stats file {}: {}", opts.stats_path, why));
    }
  }
}

void check_resumed_io(const std::vector<StepFootprint>& steps, const Store& store, const RunOptions& opts) {
  if (!store.committed()) return;
  std::string differences;
  for (const auto& s : steps) {
    const auto& identity = s.footprint.identity;
    if (identity.empty()) continue;
    const auto committed = store.get(keys::io(s.step));
    if (!committed || *committed == identity) continue;
    if (!differences.empty()) differences += "; ";
    differences += fmt::format("step '{}' {} {} in the committed run, this run {} {}", s.step,
                               s.output ? "wrote" : "read", *committed, s.output ? "writes" : "reads", identity);
  }
  if (!differences.empty() && !opts.allow_io_change) {
    throw ConfigError(
        fmt::format("state dir {} belongs to other inputs or outputs: {}; run with the committed ones, or pass "
                    "--allow-io-change to start the changed ones afresh",
                    opts.state_dir.empty() ? "(given)" : opts.state_dir, differences));
  }
}

std::vector<std::pair<std::string, std::string>> io_identity_writes(const std::vector<StepFootprint>& steps) {
  std::vector<std::pair<std::string, std::string>> writes;
  for (const auto& s : steps) {
    if (!s.footprint.identity.empty()) writes.emplace_back(keys::io(s.step), s.footprint.identity);
  }
  return writes;
}

}  // namespace engine
