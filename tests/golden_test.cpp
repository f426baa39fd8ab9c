// Golden values of everything on disk that must never change silently: the
// key hash and the key-group mapping (stored state is found by them), the
// codec's bytes for each built-in type and for the cart, the store's key
// layout, the commit record, and the resume states of the file connectors.
// Round trips cannot catch a change made symmetrically to both directions;
// these literals can. A failure here means a state dir written before the
// change is read wrongly after it: bump kFormatVersion / kCodecVersion and
// refuse (or migrate) the old one instead of editing the literal.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "apps/cart_join.hpp"
#include "connectors/file/file_source.hpp"
#include "engine/codec.hpp"
#include "engine/hash.hpp"
#include "engine/store.hpp"
#include "tests/support/flow_testing.hpp"

namespace {

// The bytes as a C++ literal would spell them, for readable failures.
std::string hex(const std::string& bytes) {
  std::string out;
  for (const unsigned char c : bytes) out += fmt::format("{:02x} ", c);
  return out;
}

std::string bytes(std::initializer_list<int> b) {
  std::string out;
  for (const int x : b) out.push_back(static_cast<char>(x));
  return out;
}

struct Point {
  int32_t x = 0;
  std::string label;
};

}  // namespace

ENGINE_CODEC_FIELDS(Point, x, label);

namespace {

TEST(Golden, StableHashAndKeyGroups) {
  struct Case {
    const char* key;
    uint64_t hash;
    uint32_t group;  // of 1024
    uint32_t owner;  // of 3 workers
  };
  for (const auto& c : std::vector<Case>{{"", 0x4e17cf67001b3979ULL, 377, 1},
                                         {"a", 0xd835a3aa7baaeb79ULL, 889, 2},
                                         {"u1", 0xb09ff5163e7d2324ULL, 804, 2},
                                         {"user_id_0123456789", 0x01268bef64650429ULL, 41, 0},
                                         {"ALL", 0x3b309c34fe8850bbULL, 187, 0},
                                         {"the", 0xb90b51d63b3aaa67ULL, 615, 1}}) {
    SCOPED_TRACE(c.key);
    EXPECT_EQ(engine::stable_hash(c.key), c.hash);
    EXPECT_EQ(engine::key_group_of(c.key, 1024), c.group);
    EXPECT_EQ(engine::owner_of_group(c.group, 1024, 3), c.owner);
  }
  // Contiguous ranges of key groups per worker.
  EXPECT_EQ(engine::owner_of_group(0, 1024, 4), 0u);
  EXPECT_EQ(engine::owner_of_group(255, 1024, 4), 0u);
  EXPECT_EQ(engine::owner_of_group(256, 1024, 4), 1u);
  EXPECT_EQ(engine::owner_of_group(1023, 1024, 4), 3u);
}

TEST(Golden, CodecBytesOfEachBuiltInType) {
  using engine::encode_value;
  // Every value starts with the codec version (1).
  EXPECT_EQ(hex(encode_value(int64_t{-2})), hex(bytes({1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})));
  EXPECT_EQ(hex(encode_value(uint32_t{0x01020304})), hex(bytes({1, 4, 3, 2, 1})));
  EXPECT_EQ(hex(encode_value(1.5)), hex(bytes({1, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f})));
  EXPECT_EQ(hex(encode_value(true)), hex(bytes({1, 1})));
  EXPECT_EQ(hex(encode_value(std::string("ab"))), hex(bytes({1, 2, 'a', 'b'})));
  EXPECT_EQ(hex(encode_value(std::string(200, 'x')).substr(0, 3)), hex(bytes({1, 0xc8, 0x01})));  // varint 200
  EXPECT_EQ(hex(encode_value(std::optional<int32_t>{})), hex(bytes({1, 0})));
  EXPECT_EQ(hex(encode_value(std::optional<int32_t>{7})), hex(bytes({1, 1, 7, 0, 0, 0})));
  EXPECT_EQ(hex(encode_value(std::pair<std::string, int32_t>{"k", 5})), hex(bytes({1, 1, 'k', 5, 0, 0, 0})));
  EXPECT_EQ(hex(encode_value(std::vector<int64_t>{1, 2})),
            hex(bytes({1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})));
  EXPECT_EQ(hex(encode_value(std::vector<std::string>{"a", ""})), hex(bytes({1, 2, 1, 'a', 0})));
  EXPECT_EQ(hex(encode_value(std::map<std::string, int32_t>{{"b", 2}, {"a", 1}})),
            hex(bytes({1, 2, 1, 'a', 1, 0, 0, 0, 1, 'b', 2, 0, 0, 0})));
  EXPECT_EQ(hex(encode_value(Point{-1, "p"})), hex(bytes({1, 0xff, 0xff, 0xff, 0xff, 1, 'p'})));
  // The cart, codec version 2: the number of ids, how many are paid, then
  // each id's difference from the one before as a zigzag varint (2, -1, 2).
  engine::cart::Cart cart;
  cart.ids = {2, 1, 3};
  cart.paid = 2;
  EXPECT_EQ(hex(encode_value(cart)), hex(bytes({2, 3, 2, 4, 1, 4})));
  cart.ids = {1000000, 1000300};
  cart.paid = 0;
  EXPECT_EQ(hex(encode_value(cart)), hex(bytes({2, 2, 0, 0x80, 0x89, 0x7a, 0xd8, 0x04})));  // 2000000, 600
  // Version 1, as earlier builds wrote it (the ids as a vector of int64, then
  // the paid count as a uint32), still reads back.
  const auto v1 = bytes({1, 3, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0});
  const auto old = engine::decode_value<engine::cart::Cart>(v1);
  EXPECT_EQ(old.ids, (std::vector<int64_t>{2, 1, 3}));
  EXPECT_EQ(old.paid, 2u);
}

TEST(Golden, StoreKeyLayout) {
  namespace keys = engine::keys;
  EXPECT_EQ(hex(keys::state("joiner", 5, "u1")),
            hex(bytes({'S', 'j', 'o', 'i', 'n', 'e', 'r', 0, 0, 0, 0, 5, 'u', '1'})));
  EXPECT_EQ(hex(keys::state_prefix("s", 0x01020304)), hex(bytes({'S', 's', 0, 1, 2, 3, 4})));
  EXPECT_EQ(hex(keys::state_step_prefix("s")), hex(bytes({'S', 's', 0})));
  EXPECT_EQ(hex(keys::source("input", "/d/a.json")), hex(std::string("Oinput\0/d/a.json", 16)));
  EXPECT_EQ(hex(keys::sink("output", "stdout")), hex(std::string("Poutput\0stdout", 14)));
  EXPECT_EQ(keys::io("input"), "Iinput");
  EXPECT_EQ(hex(keys::staged_prefix(0x0102)), hex(bytes({'T', 0, 0, 0, 0, 0, 0, 1, 2})));
  EXPECT_EQ(keys::kCommit, "M:commit");
  EXPECT_EQ(keys::kDeadLetter, "D:dead_letter");
  EXPECT_EQ(engine::kFormatVersion, 2);
  EXPECT_EQ(engine::kCodecVersion, 1);
}

TEST(Golden, CommitRecord) {
  EXPECT_EQ(engine::encode_commit(engine::CommitRecord{7, 2, 1024, 1.5}),
            R"({"epoch":7,"key_groups":1024,"time":1.5,"workers":2})");
  const auto r = engine::decode_commit(R"({"epoch":9,"key_groups":64,"time":2.0,"workers":3})");
  EXPECT_EQ(r.epoch, 9u);
  EXPECT_EQ(r.key_groups, 64u);
  EXPECT_EQ(r.workers, 3u);
}

// A file source's resume state is "OFFSET LINE": the byte after the last
// complete line read and the number of the next line.
TEST(Golden, FileSourceResumeState) {
  flow_testing::TempDir tmp;
  const std::string path = tmp.sub("in.txt");
  flow_testing::write_file(path, "ab\r\ncd\nfragment");
  engine::LineReader reader(path, path, 0, 1);
  engine::SourceBatch<std::string> batch;
  EXPECT_FALSE(reader.next_batch(batch, 10));
  EXPECT_EQ(reader.snapshot(), "7 3");
  EXPECT_EQ(engine::LineReader::parse_snapshot(path, "7 3"), (std::pair<uint64_t, uint64_t>{7, 3}));
}

}  // namespace
