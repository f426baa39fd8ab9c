// File connectors: FileSource/DirSource read lines of any length and any bytes
// and resume exactly after the last returned line; DirSource lists its files
// sorted and refuses missing or empty inputs; FileSink writes lines, reports
// its length and truncates to a committed length on resume.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "connectors/file/file_sink.hpp"
#include "connectors/file/file_source.hpp"
#include "connectors/testing/testing.hpp"
#include "engine/errors.hpp"
#include "operators/operators.hpp"
#include "tests/support/flow_testing.hpp"
#include "tests/support/unit_testing.hpp"

namespace {

using engine::DirSource;
using engine::FileSink;
using engine::FileSource;
using engine::SourceBatch;
using flow_testing::read_file;
using flow_testing::TempDir;
using flow_testing::write_file;
using unit_testing::error_message_of;
namespace fs = std::filesystem;

// Whether `part` occurs in `s`.
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Reference line splitting: lines end at '\n'; one trailing '\r' (CRLF) is
// not part of the line. Bytes after the last '\n' are not a line but the
// tail, read as a last line only at the very end of a run. Also returns the
// byte offset just after each line.
struct RefLines {
  std::vector<std::string> lines;  // complete lines
  std::vector<uint64_t> end_offsets;
  std::optional<std::string> tail;  // the unterminated rest, if any
  // Every line a run that ends here reads: the complete ones, then the tail.
  std::vector<std::string> all() const {
    auto v = lines;
    if (tail) v.push_back(*tail);
    return v;
  }
};

RefLines ref_lines(const std::string& content) {
  RefLines r;
  size_t start = 0;
  while (start < content.size()) {
    size_t nl = content.find('\n', start);
    const bool has_nl = nl != std::string::npos;
    if (!has_nl) nl = content.size();
    std::string line = content.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!has_nl) {
      r.tail = line;
      break;
    }
    r.lines.push_back(line);
    start = nl + 1;
    r.end_offsets.push_back(start);
  }
  return r;
}

// What reading a partition returned: lines, the first_line of each batch's
// first item, the last snapshot, and whether the partition reported a tail.
struct ReadResult {
  std::vector<std::string> lines;
  std::vector<uint64_t> line_numbers;
  std::string snapshot;
  bool has_tail = false;
};

// Reads `part` of `source` (from `resume`) to the end, `max` items per call;
// at most `limit` lines. With `tail`, reads on as the tail epoch does: from
// the last snapshot on a partition built afresh, taking the unterminated rest.
ReadResult read_part(const engine::Source<std::string>& source, const std::string& part,
                     const std::optional<std::string>& resume, size_t max, size_t limit = SIZE_MAX, bool tail = false) {
  auto reader = source.build_part(part, resume);
  ReadResult r;
  SourceBatch<std::string> batch;
  auto read = [&](bool in_tail) {
    bool more = true;
    while (more && r.lines.size() < limit) {
      batch.size = 0;
      const size_t n = std::min(max, limit - r.lines.size());
      more = in_tail ? reader->next_tail_batch(batch, n) : reader->next_batch(batch, n);
      for (size_t i = 0; i < batch.size; ++i) {
        r.lines.push_back(batch.slots[i]);
        r.line_numbers.push_back(batch.first_line + i);
      }
    }
    return more;
  };
  const bool more = read(false);
  r.snapshot = reader->snapshot();
  r.has_tail = !more && reader->has_tail();
  if (tail && r.has_tail) {
    reader = source.build_part(part, r.snapshot);
    read(true);
  }
  return r;
}

// Writes `content` to a file and checks FileSource returns exactly the reference lines, for several batch sizes.
void expect_reads_like_reference(const std::string& content, const std::string& what) {
  TempDir dir;
  const std::string path = dir.sub("input.txt");
  write_file(path, content);
  const auto ref = ref_lines(content);
  FileSource src(path);
  ASSERT_EQ(src.list_parts(), std::vector<std::string>{path});
  const uint64_t complete = ref.end_offsets.empty() ? 0 : ref.end_offsets.back();
  for (size_t max : {size_t{1}, size_t{3}, size_t{1024}}) {
    // Committed reading: the complete lines only; the snapshot stops before the tail.
    const auto got = read_part(src, path, std::nullopt, max);
    ASSERT_EQ(got.lines.size(), ref.lines.size()) << what << ", max " << max;
    for (size_t i = 0; i < ref.lines.size(); ++i) {
      ASSERT_EQ(got.lines[i], ref.lines[i]) << what << ": line " << i + 1 << ", max " << max;
      ASSERT_EQ(got.line_numbers[i], i + 1) << what;
    }
    EXPECT_EQ(got.snapshot, fmt::format("{} {}", complete, ref.lines.size() + 1)) << what;
    EXPECT_EQ(got.has_tail, ref.tail.has_value()) << what;
    // At the end of the run, the tail epoch adds the unterminated rest as a last line.
    const auto all = read_part(src, path, std::nullopt, max, SIZE_MAX, /*tail=*/true);
    const auto expected = ref.all();
    ASSERT_EQ(all.lines.size(), expected.size()) << what << ", max " << max;
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_EQ(all.lines[i], expected[i]) << what << ": line " << i + 1 << " with the tail, max " << max;
      ASSERT_EQ(all.line_numbers[i], i + 1) << what;
    }
  }
}

// ---- FileSource: content ------------------------------------------------------

TEST(FileSource, FiveMegabyteLine) {
  std::string big(5 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  expect_reads_like_reference("first\n" + big + "\nlast\n", "5 MB line");
  expect_reads_like_reference(big, "5 MB line without newline");
}

TEST(FileSource, LinesAcrossChunkBoundaries) {
  // Many lines of random lengths (up to 200 KB) so lines straddle the reader's 1 MB chunks.
  std::mt19937_64 rng(5);
  std::string content;
  while (content.size() < (3u << 20)) {
    const size_t len = rng() % 4 == 0 ? rng() % 200000 : rng() % 100;
    for (size_t i = 0; i < len; ++i) content.push_back(static_cast<char>('a' + rng() % 26));
    content += rng() % 5 == 0 ? "\r\n" : "\n";
  }
  expect_reads_like_reference(content, "random lengths");
}

TEST(FileSource, EmptyLinesAndNoFinalNewline) {
  expect_reads_like_reference("", "empty file");
  expect_reads_like_reference("\n", "one empty line");
  expect_reads_like_reference("\n\n\na\n\n", "empty lines");
  expect_reads_like_reference("a\nb", "last line without newline");
  expect_reads_like_reference("only", "single line without newline");
}

TEST(FileSource, CrLfLineEndings) {
  expect_reads_like_reference("a\r\nb\r\n\r\nc", "crlf");
  expect_reads_like_reference("x\ry\r\n\r\r\n", "lone carriage returns stay inside lines");
}

TEST(FileSource, NulBytesAndInvalidUtf8) {
  const std::string content = std::string("a\0b\n", 4) + "\xff\xfe\xc0\x80\n" + std::string("\0\0\0", 3) + "\n" +
                              "\xed\xa0\x80 surrogate\n" + std::string("tail\0", 5);
  expect_reads_like_reference(content, "binary bytes");
  // Random bytes of every value (newlines included).
  std::mt19937_64 rng(77);
  std::string noise;
  for (int i = 0; i < 300000; ++i) noise.push_back(static_cast<char>(rng() % 8 == 0 ? '\n' : rng()));
  expect_reads_like_reference(noise, "random bytes");
}

TEST(FileSource, LinesKeepParserPadding) {
  TempDir dir;
  const std::string path = dir.sub("in");
  write_file(path, "short\n" + std::string(10000, 'y') + "\n");
  FileSource src(path);
  auto reader = src.build_part(path, std::nullopt);
  SourceBatch<std::string> batch;
  reader->next_batch(batch, 10);
  ASSERT_EQ(batch.size, 2u);
  for (size_t i = 0; i < batch.size; ++i) {
    EXPECT_GE(batch.slots[i].capacity(), batch.slots[i].size() + engine::LineReader::kLinePadding);
  }
}

// ---- FileSource: resume -----------------------------------------------------

TEST(FileSource, ResumeContinuesRightAfterTheLastReturnedLine) {
  TempDir dir;
  const std::string path = dir.sub("in.txt");
  const std::string content =
      std::string("one\r\n\n") + std::string("two\0two\n", 8) + "\xff\n\n" + "three\r\n" + "4\nlast";
  write_file(path, content);
  const auto ref = ref_lines(content);
  FileSource src(path);
  ASSERT_TRUE(ref.tail.has_value());
  for (size_t k = 0; k <= ref.lines.size(); ++k) {
    const auto first = read_part(src, path, std::nullopt, 2, k);
    ASSERT_EQ(first.lines.size(), k);
    // The snapshot is "OFFSET LINE": the byte after line k and the next line's number.
    const uint64_t offset = k == 0 ? 0 : ref.end_offsets[k - 1];
    EXPECT_EQ(first.snapshot, fmt::format("{} {}", offset, k + 1)) << "after " << k << " lines";
    const auto rest = read_part(src, path, first.snapshot, 3, SIZE_MAX, /*tail=*/true);
    std::vector<std::string> joined = first.lines;
    joined.insert(joined.end(), rest.lines.begin(), rest.lines.end());
    EXPECT_EQ(joined, ref.all()) << "resumed after " << k << " lines";
    for (size_t i = 0; i < rest.line_numbers.size(); ++i) EXPECT_EQ(rest.line_numbers[i], k + i + 1);
  }
}

TEST(FileSource, ResumeAroundAHugeLine) {
  TempDir dir;
  const std::string path = dir.sub("in.txt");
  const std::string content = "a\n" + std::string(3 << 20, 'h') + "\nb\nc";
  write_file(path, content);
  const auto ref = ref_lines(content);
  FileSource src(path);
  for (size_t k = 0; k <= ref.lines.size(); ++k) {
    const auto first = read_part(src, path, std::nullopt, 1, k);
    const auto rest = read_part(src, path, first.snapshot, 1024, SIZE_MAX, /*tail=*/true);
    std::vector<std::string> joined = first.lines;
    joined.insert(joined.end(), rest.lines.begin(), rest.lines.end());
    EXPECT_TRUE(joined == ref.all()) << "resumed after " << k << " lines";
  }
}

TEST(FileSource, ResumeAfterAppendReadsOnlyNewLines) {
  TempDir dir;
  const std::string path = dir.sub("in.txt");
  write_file(path, "0\n1\n");
  FileSource src(path);
  const auto first = read_part(src, path, std::nullopt, 10);
  ASSERT_EQ(first.lines, (std::vector<std::string>{"0", "1"}));
  write_file(path, "0\n1\n3\n4\n");
  const auto second = read_part(src, path, first.snapshot, 10);
  EXPECT_EQ(second.lines, (std::vector<std::string>{"3", "4"}));
  EXPECT_EQ(second.line_numbers, (std::vector<uint64_t>{3, 4}));
}

TEST(FileSource, ResumePastTheEndOfAShorterFileIsAnError) {
  TempDir dir;
  const std::string path = dir.sub("in.txt");
  write_file(path, "abc\n");
  FileSource src(path);
  const auto msg = error_message_of<engine::InputError>([&] { src.build_part(path, std::string("100 5")); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  const auto bad = error_message_of<engine::StateError>([&] { src.build_part(path, std::string("garbage")); });
  EXPECT_TRUE(contains(bad, path)) << bad;
}

TEST(FileSource, MissingFileIsInputErrorNamingThePath) {
  TempDir dir;
  const std::string path = dir.sub("nope.json");
  FileSource src(path);
  EXPECT_TRUE(contains(error_message_of<engine::InputError>([&] { src.list_parts(); }), path));
  EXPECT_TRUE(contains(error_message_of<engine::InputError>([&] { src.build_part(path, std::nullopt); }), path));
  EXPECT_TRUE(contains(error_message_of<engine::InputError>([&] { engine::file_or_dir_source(path); }), path));
  // A directory is not a file.
  EXPECT_TRUE(contains(error_message_of<engine::InputError>([&] { FileSource(dir.path()).list_parts(); }), dir.path()));
}

// ---- DirSource -----------------------------------------------------------------

TEST(DirSource, OnePartitionPerFileSorted) {
  TempDir dir;
  for (const char* name : {"b.json", "a.json", "c.txt", "10.json", "2.json"}) write_file(dir.sub(name), name);
  fs::create_directory(dir.sub("subdir"));
  write_file(dir.sub("subdir/inner.json"), "x");
  DirSource src(dir.path());
  std::vector<std::string> expected;
  for (const char* name : {"10.json", "2.json", "a.json", "b.json", "c.txt"}) expected.push_back(dir.sub(name));
  EXPECT_EQ(src.list_parts(), expected);
  // Each partition reads its own file.
  for (const auto& part : expected) {
    EXPECT_EQ(read_part(src, part, std::nullopt, 10, SIZE_MAX, /*tail=*/true).lines,
              std::vector<std::string>{fs::path(part).filename().string()});
  }
  auto either = engine::file_or_dir_source(dir.path());
  EXPECT_EQ(either->list_parts(), expected);
}

TEST(DirSource, MissingOrEmptyDirectoryIsInputErrorNamingThePath) {
  TempDir dir;
  const std::string missing = dir.sub("missing");
  EXPECT_TRUE(contains(error_message_of<engine::InputError>([&] { DirSource(missing).list_parts(); }), missing));
  const std::string empty = dir.sub("empty");
  fs::create_directory(empty);
  EXPECT_TRUE(contains(error_message_of<engine::InputError>([&] { DirSource(empty).list_parts(); }), empty));
  const std::string only_dirs = dir.sub("only_dirs");
  fs::create_directories(only_dirs + "/inner");
  EXPECT_TRUE(contains(error_message_of<engine::InputError>([&] { DirSource(only_dirs).list_parts(); }), only_dirs));
  // A file is not a directory.
  write_file(dir.sub("file"), "x\n");
  EXPECT_TRUE(contains(error_message_of<engine::InputError>([&] { DirSource(dir.sub("file")).list_parts(); }),
                       dir.sub("file")));
}

TEST(DirSource, MissingFileInAFlowIsInputError) {
  TempDir dir;
  const std::string path = dir.sub("gone.json");
  auto out = flow_testing::collected<std::string>();
  const auto msg = error_message_of<engine::InputError>([&] {
    flow_testing::run_flow("missing", flow_testing::options(2), [&](engine::Dataflow& f) {
      engine::op::output("out", engine::op::input("in", f, std::make_shared<FileSource>(path)),
                         flow_testing::sink<std::string>(out));
    });
  });
  EXPECT_TRUE(contains(msg, path)) << msg;
}

TEST(DirSource, FlowReadsEveryLineOncePerFileInOrder) {
  TempDir dir;
  std::map<std::string, std::vector<std::string>> lines_per_file;
  std::mt19937_64 rng(3);
  for (int f = 0; f < 5; ++f) {
    const std::string name = fmt::format("part-{}.txt", f);
    std::string content;
    for (int i = 0; i < 3000 + f * 500; ++i) {
      const std::string line = fmt::format("{}:{}:{}", f, i, std::string(rng() % 30, 'z'));
      lines_per_file[name].push_back(line);
      content += line + (i % 7 == 0 ? "\r\n" : "\n");
    }
    write_file(dir.sub(name), content);
  }
  for (uint32_t w : {1u, 2u, 4u}) {
    auto out = flow_testing::collected<std::string>();
    flow_testing::run_flow("dir", flow_testing::options(w), [&](engine::Dataflow& f) {
      engine::op::output("out", engine::op::input("in", f, std::make_shared<DirSource>(dir.path())),
                         flow_testing::sink<std::string>(out));
    });
    std::map<std::string, std::vector<std::string>> got;
    for (const auto& line : out->snapshot())
      got[fmt::format("part-{}.txt", line.substr(0, line.find(':')))].push_back(line);
    EXPECT_TRUE(got == lines_per_file) << "with " << w << " workers";
  }
}

// ---- FileSink -------------------------------------------------------------------

// The file content FileSink writes for `lines`.
std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

TEST(FileSink, WritesLinesAndReportsTheLength) {
  TempDir dir;
  const std::string path = dir.sub("out.txt");
  FileSink sink(path);
  EXPECT_EQ(sink.list_parts(), std::vector<std::string>{path});
  const std::vector<std::string> lines = {"a", "", std::string("nul\0byte", 8), std::string(200000, 'q'), "\xff"};
  auto part = sink.build_part(path, std::nullopt);
  std::string expected;
  for (auto line : lines) {
    expected += line + "\n";
    part->write(std::move(line));
    // The position counts buffered bytes; they reach the file on flush() (or the commit's sync).
    EXPECT_EQ(part->snapshot(false), std::to_string(expected.size()));
    part->flush();
    EXPECT_EQ(read_file(path), expected);
  }
  EXPECT_EQ(part->snapshot(true), std::to_string(expected.size()));
  part.reset();
  EXPECT_EQ(read_file(path), expected);
}

// The commit thread's sync waits for the worker to write out what the
// snapshot counted, then syncs; a partition gone before that is an error.
TEST(FileSink, TheSyncerWaitsForTheSnapshotsBytes) {
  TempDir dir;
  const std::string path = dir.sub("out.txt");
  auto part = FileSink(path).build_part(path, std::nullopt);
  part->write("buffered");
  EXPECT_EQ(part->snapshot(false), "9");
  auto sync = part->syncer();
  std::thread commit([&] { sync(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  part->flush();
  commit.join();
  EXPECT_EQ(read_file(path), "buffered\n");
  part->write("later");
  part->snapshot(false);
  auto late = part->syncer();
  part.reset();  // flushes on the way out: the later sync finds its bytes
  EXPECT_NO_THROW(late());
}

TEST(FileSink, DestructorFlushesBufferedLines) {
  TempDir dir;
  const std::string path = dir.sub("out.txt");
  {
    auto part = FileSink(path).build_part(path, std::nullopt);
    part->write("x");
    part->write("y");
  }
  EXPECT_EQ(read_file(path), "x\ny\n");
}

TEST(FileSink, ResumeTruncatesToTheCommittedLength) {
  TempDir dir;
  const std::string path = dir.sub("out.txt");
  FileSink sink(path);
  std::string committed;
  {
    auto part = sink.build_part(path, std::nullopt);
    for (const char* l : {"one", "two", "three"}) part->write(l);
    committed = part->snapshot(true);
    EXPECT_EQ(committed, std::to_string(joined({"one", "two", "three"}).size()));
    for (const char* l : {"lost1", "lost2"}) part->write(l);  // written after the commit: a crash loses them
    part->snapshot(false);
  }
  ASSERT_EQ(read_file(path), joined({"one", "two", "three", "lost1", "lost2"}));
  {
    auto part = sink.build_part(path, committed);
    EXPECT_EQ(read_file(path), joined({"one", "two", "three"}));
    part->write("four");
    EXPECT_EQ(part->snapshot(true), std::to_string(joined({"one", "two", "three", "four"}).size()));
  }
  EXPECT_EQ(read_file(path), joined({"one", "two", "three", "four"}));
}

TEST(FileSink, NewRunWithoutResumeStartsEmpty) {
  TempDir dir;
  const std::string path = dir.sub("out.txt");
  write_file(path, "old content\n");
  {
    auto part = FileSink(path).build_part(path, std::nullopt);
    part->write("new");
  }
  EXPECT_EQ(read_file(path), "new\n");
}

TEST(FileSink, FileShorterThanCommittedLengthIsRefused) {
  TempDir dir;
  const std::string path = dir.sub("out.txt");
  write_file(path, "0123456789");
  const auto msg = error_message_of<engine::StateError>([&] { FileSink(path).build_part(path, std::string("1000")); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_EQ(read_file(path), "0123456789");  // untouched
  const auto bad = error_message_of<engine::StateError>([&] { FileSink(path).build_part(path, std::string("ten")); });
  EXPECT_TRUE(contains(bad, path)) << bad;
}

TEST(FileSink, UnwritablePathIsAnError) {
  TempDir dir;
  const std::string path = dir.sub("no/such/dir/out.txt");
  EXPECT_TRUE(
      contains(error_message_of<engine::InputError>([&] { FileSink(path).build_part(path, std::nullopt); }), path));
}

// ---- DirSink --------------------------------------------------------------------

TEST(DirSink, ListsNumberedPartFilesAndCreatesTheDirectoryOnlyWhenPrepared) {
  TempDir dir;
  const std::string out = dir.sub("carts");
  engine::DirSink sink(out, 3);
  const std::vector<std::string> expected = {out + "/part-000", out + "/part-001", out + "/part-002"};
  EXPECT_EQ(sink.list_parts(), expected);
  EXPECT_FALSE(fs::exists(out)) << "listing (done before a run's checks) must create nothing";
  sink.prepare();
  EXPECT_TRUE(fs::is_directory(out));
  EXPECT_THROW(engine::DirSink(out, 0), engine::ConfigError);
}

// Every key's lines land in one part file, in order; every line exactly once.
TEST(DirSink, KeepsEachKeyInOnePartInOrderAcrossWorkers) {
  TempDir dir;
  const std::string out = dir.sub("out");
  std::vector<std::vector<std::string>> parts(3);
  std::map<std::string, std::vector<std::string>> expected;  // key -> its lines in input order
  for (int i = 0; i < 3000; ++i) {
    const std::string key = fmt::format("user{}", i % 97);
    const std::string line = fmt::format("{} {}", key, i);
    parts[static_cast<size_t>(i % 97) % 3].push_back(line);  // one key stays in one source partition
    expected[key].push_back(line);
  }
  for (uint32_t workers : {1u, 2u, 4u}) {
    fs::remove_all(out);
    engine::Dataflow flow("dir_sink");
    auto in = engine::op::input("in", flow, std::make_shared<engine::TestingSource<std::string>>(parts));
    auto keyed = engine::op::map("key", in, [](std::string&& line) {
      std::string key = line.substr(0, line.find(' '));
      return engine::KV<std::string>(std::move(key), std::move(line));
    });
    engine::op::output("out", keyed, std::make_shared<engine::DirSink>(out, 4));
    engine::RunOptions opts;
    opts.workers = workers;
    engine::run(flow, opts);

    std::map<std::string, std::vector<std::string>> got;
    std::map<std::string, std::string> file_of_key;
    for (const auto& entry : fs::directory_iterator(out)) {
      const std::string file = entry.path().filename().string();
      for (const auto& line : flow_testing::read_lines(entry.path().string())) {
        const std::string key = line.substr(0, line.find(' '));
        got[key].push_back(line);
        const auto [it, fresh] = file_of_key.emplace(key, file);
        EXPECT_TRUE(fresh || it->second == file) << key << " is in " << it->second << " and " << file;
      }
    }
    EXPECT_TRUE(got == expected) << "with " << workers << " workers";
  }
}

TEST(DirSink, ResumeTruncatesEveryPartToItsCommittedLength) {
  TempDir dir;
  const std::string out = dir.sub("out");
  engine::DirSink sink(out, 2);
  const auto names = sink.list_parts();
  sink.prepare();
  std::vector<std::string> committed;
  for (const auto& name : names) {
    auto part = sink.build_part(name, std::nullopt);
    part->write({"k", name + " kept"});
    committed.push_back(part->snapshot(true));
    part->write({"k", name + " lost"});
  }
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_EQ(read_file(names[i]), joined({names[i] + " kept", names[i] + " lost"}));
    auto part = sink.build_part(names[i], committed[i]);
    EXPECT_EQ(read_file(names[i]), joined({names[i] + " kept"}));
  }
}

}  // namespace
