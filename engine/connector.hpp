#pragma once
// Source and sink interfaces. A connector is split into partitions with ids
// that are stable across runs (a file's canonical path, not its spelling);
// each partition lives on one worker, and its resume state (offset /
// position) is part of every committed epoch.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace engine {

// What a connector reads or writes on disk, for the checks a run makes before
// it opens anything: no output may overwrite an input or the state dir, and a
// resumed run must read and write what the committed run did.
struct Footprint {
  // Recorded in the state dir at every run's first commit; a resume with
  // another identity is refused ("" = not checked). E.g. "file /abs/in.json".
  std::string identity;
  std::vector<std::string> files;  // canonical paths of files read or written
  std::vector<std::string> dirs;   // canonical paths of directories read (all files in them) or written into
};

// The items one poll of a source partition produced. Slots are reused from
// poll to poll so that, say, line strings keep their memory: a reader fills
// next() by assignment. T must be default-constructible.
template <class T>
struct SourceBatch {
  std::vector<T> slots;
  size_t size = 0;                  // items in slots[0, size)
  uint64_t first_line = 0;          // 1-based line (or index) of slots[0]; item i is at first_line + i ...
  std::vector<uint64_t> positions;  // ... unless the reader fills this: then item i is at positions[i]

  T& next() {
    if (size == slots.size()) slots.emplace_back();
    return slots[size++];
  }
  // Where item i came from (a line number, a Kafka offset).
  uint64_t position(size_t i) const { return positions.empty() ? first_line + i : positions[i]; }
  void clear() {
    size = 0;
    positions.clear();
  }
};

// One partition of a source, opened on the worker that reads it. Not thread-safe.
template <class T>
class SourcePartition {
 public:
  virtual ~SourcePartition() = default;
  // Worker thread. Adds at most `max` items to `batch` (which arrives with
  // size 0) and sets batch.first_line. Returns false once the partition is
  // exhausted (it may still have added items in that call).
  virtual bool next_batch(SourceBatch<T>& batch, size_t max) = 0;
  // Worker thread. Resume state that skips every item returned so far.
  virtual std::string snapshot() const = 0;
  // Worker thread, after next_batch returned false: whether the partition
  // ends with bytes it did not take because they are not an item yet (a last
  // line without its newline: a writer may still be appending to it).
  virtual bool has_tail() const { return false; }
  // Worker thread, only in the run's tail epoch, which is never committed (a
  // bounded run that really ends at the end of its input): like next_batch,
  // but the unterminated rest counts as a last item. Called on a partition
  // built afresh at its last snapshot. Default: next_batch.
  virtual bool next_tail_batch(SourceBatch<T>& batch, size_t max) { return next_batch(batch, max); }
};

// Immutable description of a source; shared by all workers.
template <class T>
class Source {
 public:
  using Item = T;
  virtual ~Source() = default;
  // Main thread, once per run, before list_parts. Throws InputError if the input is missing.
  virtual Footprint footprint() const { return {}; }
  // Main thread, once per run. Throws InputError if the input is missing.
  virtual std::vector<std::string> list_parts() const = 0;
  // Any thread: how messages name partition `part` (a path as the user wrote it). Default: the id.
  virtual std::string describe_part(const std::string& part) const { return part; }
  // What an item's position is called in messages ("line", "offset"). Default: "line".
  virtual const char* position_name() const { return "line"; }
  // How many partitions one worker keeps open at once; 0: as many as the
  // engine allows (a few, bounded by the file-descriptor limit). Default: 0.
  virtual size_t max_open_parts() const { return 0; }
  // Whether the source never ends by itself (a followed file, a Kafka topic):
  // a signal is then its normal end, not an interruption. Default: false.
  virtual bool unbounded() const { return false; }
  // Worker thread, followed sources: the partitions now, when new ones may
  // have appeared since list_parts (a followed directory). Default: none.
  virtual bool discovers_parts() const { return false; }
  // Worker thread. Opens `part`, continuing after `resume` when given.
  // Throws InputError / StateError.
  virtual std::unique_ptr<SourcePartition<T>> build_part(const std::string& part,
                                                         const std::optional<std::string>& resume) const = 0;
};

// One partition of a sink, opened on the worker that owns it. Not thread-safe.
template <class T>
class SinkPartition {
 public:
  virtual ~SinkPartition() = default;
  // Worker thread, once per item.
  virtual void write(T&& item) = 0;
  // Worker thread: takes `count` string items as one block, each followed by
  // '\n', exactly as `count` calls of write() would have written them (line
  // sinks of std::string only). Returns false, taking nothing, if the
  // partition cannot. Default: false.
  virtual bool write_lines(std::string_view lines, size_t count) {
    (void)lines;
    (void)count;
    return false;
  }
  // Worker thread, at the end of every epoch: the resume state covering
  // everything written so far; with `durable`, that output is also flushed
  // and fsynced now (else syncer() makes it durable for the commit).
  virtual std::string snapshot(bool durable) = 0;
  // Worker thread, when the worker goes idle and every --flush-interval:
  // write what is buffered out (no fsync), so output is visible within
  // milliseconds of its input at low rates. Default: nothing.
  virtual void flush() {}
  // Worker thread, once, when a run ended well: deliver everything written
  // (a network sink waits for its acknowledgements). Throws. Default: nothing.
  virtual void finish() {}
  // Worker thread, after snapshot(false): what makes the output up to that
  // snapshot durable, to be called later from any thread (the commit
  // thread), even after this partition is gone; it may wait for the worker
  // to write out what it buffered (flush()). Empty when there is nothing to sync.
  virtual std::function<void()> syncer() { return {}; }
  // Worker thread, once, right after build_part, when recovery is on: every
  // epoch's output will be made durable, so the partition may start writing
  // its output back to disk early, leaving little for the commit's sync to
  // wait for. Default: nothing.
  virtual void expect_durable() {}
};

// Immutable description of a sink; shared by all workers.
template <class T>
class Sink {
 public:
  using Item = T;
  virtual ~Sink() = default;
  // Main thread, once per run, before list_parts. Creates nothing.
  virtual Footprint footprint() const { return {}; }
  // Main thread, once per run. Creates nothing.
  virtual std::vector<std::string> list_parts() const = 0;
  // Main thread, once per run, after every check passed and before any
  // build_part: creates what the partitions need (an output directory).
  virtual void prepare() const {}
  // Worker thread. Opens `part`; with `resume`, first discards anything past it
  // (a file sink truncates to the committed length: exactly-once output).
  virtual std::unique_ptr<SinkPartition<T>> build_part(const std::string& part,
                                                       const std::optional<std::string>& resume) const = 0;
  // Which partition (index into list_parts()) an item goes to. Any thread.
  virtual size_t part_of(const T& item, size_t parts) const {
    (void)item;
    (void)parts;
    return 0;
  }
  // Whether a resumed run can rewrite output past the committed position
  // (files: yes; stdout: no, so it is at-least-once).
  virtual bool exactly_once() const { return true; }
};

// Partition `i` of `n` is read or written by worker i % workers.
inline uint32_t owner_of_part(size_t i, uint32_t workers) { return static_cast<uint32_t>(i % workers); }

}  // namespace engine
