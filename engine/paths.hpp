#pragma once
// Path helpers for the checks a run makes before it touches the disk: which
// file a path really names, whether one path lies inside another, what a
// special file is, and making a new directory entry durable.

#include <string>

namespace engine {

// The absolute form of `path` with every symlink of its longest existing
// prefix resolved and "." and ".." removed, so that two spellings of one file
// ("in", "./in", "/abs/in", a link to it) give the same string. Works for
// paths that do not exist yet (an output file about to be created).
std::string canonical_path(const std::string& path);

// Whether canonical path `path` is `dir` itself or lies inside it.
bool is_within(const std::string& path, const std::string& dir);

// For a path that exists but is neither a regular file nor a directory: what
// it is ("a named pipe (FIFO)", "a character device", ...); "" otherwise.
std::string special_file_kind(const std::string& path);

// fsync(2) of the directory `dir`, which makes entries created or renamed in
// it durable. Returns 0 or an errno value.
int sync_dir(const std::string& dir);

// sync_dir of the directory that holds `path`. Returns 0 or an errno value.
int sync_parent_dir(const std::string& path);

}  // namespace engine
