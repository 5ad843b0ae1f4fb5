#include "streams/compaction.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace tarn::streams {
namespace {

std::string Seq(uint64_t v) {
  std::string s = std::to_string(v);
  return std::string(20 - s.size(), '0') + s;
}

std::string Key(const std::string& folder, const std::string& stream, uint64_t first, uint64_t last,
                const std::string& ext = ".parquet") {
  return folder + stream + "-2026-12-07-10-00-00-" + Seq(first) + "-" + Seq(last) + ext;
}

TEST(StreamObjectName, ParsesTheStreamsNaming) {
  auto n = ParseStreamObjectName("iot/t/day=2026-12-07/" + Key("", "tele-metry", 5, 17));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->stream, "tele-metry");
  EXPECT_EQ(n->time, "2026-12-07-10-00-00");
  EXPECT_EQ(n->first, 5u);
  EXPECT_EQ(n->last, 17u);
  EXPECT_EQ(n->extension, ".parquet");
  auto raw = ParseStreamObjectName(Key("raw/", "s", 1, 2, ""));
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->extension, "");
}

TEST(StreamObjectName, RefusesOtherNames) {
  for (const std::string& k : std::vector<std::string>{
           "iot/t/part-0000.parquet", "iot/t/s-2026-12-07-10-00-00-1-2.parquet",  // short seqs
        "iot/t/-2026-12-07-10-00-00-" + Seq(1) + "-" + Seq(2) + ".parquet",    // no stream
        "iot/t/s-2026-12-07-10-00-0x-" + Seq(1) + "-" + Seq(2) + ".parquet",   // bad time
        "iot/t/s-2026-12-07-10-00-00-" + Seq(3) + "-" + Seq(2) + ".parquet",   // first > last
        "iot/t/s-2026-12-07-10-00-00-" + Seq(1) + "-" + Seq(2) + "x.parquet",  // not an extension
        std::string("")}) {
    EXPECT_FALSE(ParseStreamObjectName(k)) << k;
  }
}

TEST(CoveredObjects, HidesOnlyRangesContainedInAnotherOfTheSameStreamFolderAndExtension) {
  std::vector<std::string> keys = {
      Key("p/", "s", 1, 10),      // 0: small, covered by 3
      Key("p/", "s", 11, 20),     // 1: covered by 3
      Key("p/", "s", 21, 30),     // 2: not covered (after the merged range)
      Key("p/", "s", 1, 20),      // 3: the merged object
      Key("q/", "s", 1, 5),       // 4: another folder
      Key("p/", "other", 2, 3),   // 5: another stream
      Key("p/", "s", 2, 3, ".gz"),  // 6: another extension
      Key("p/", "s", 2, 3, ""),   // 7: no extension: never hidden
      "p/user-file.parquet",      // 8: not the stream's naming
      Key("p/", "s", 1, 20, ".parquet"),  // 9: the very same range as 3 (a duplicate key)
  };
  auto c = CoveredObjects(keys);
  std::vector<bool> want = {true, true, false, false, false, false, false, false, false, false};
  EXPECT_EQ(c, want);
}

TEST(CoveredObjects, NestedMergesAndSharedEnds) {
  // A level-2 merge over two level-1 merges whose inputs are still listed (kill -9 twice).
  std::vector<std::string> keys = {Key("p/", "s", 1, 4),  Key("p/", "s", 5, 8),
                                   Key("p/", "s", 1, 8),  Key("p/", "s", 9, 12),
                                   Key("p/", "s", 9, 16), Key("p/", "s", 1, 16),
                                   Key("p/", "s", 17, 17)};
  auto c = CoveredObjects(keys);
  std::vector<bool> want = {true, true, true, true, true, false, false};
  EXPECT_EQ(c, want);
}

// Simulates a partition: flushes append small objects; after each, merges run as the policy
// picks them. The count stays logarithmic and the bytes rewritten stay a few times the input.
TEST(PickMerge, KeepsTheObjectCountBoundedAndTheRewriteSmall) {
  CompactionPolicy policy;
  policy.min_files = 8;
  policy.target_bytes = 64ull << 20;
  policy.floor_bytes = 64 << 10;
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint64_t> small(8 << 10, 40 << 10);  // noisy flush sizes
  std::vector<CompactionFile> files;
  uint64_t seq = 0, written = 0, rewritten = 0;
  size_t max_count = 0;
  for (int flush = 0; flush < 50000; ++flush) {
    uint64_t size = small(rng);
    files.push_back({seq + 1, seq + 400, size});
    seq += 400;
    written += size;
    while (auto pick = PickMerge(files, policy)) {
      auto [b, e] = *pick;
      ASSERT_LT(b, e);
      ASSERT_GE(e - b, 2u);
      CompactionFile merged{files[b].first, files[e - 1].last, 0};
      for (size_t i = b; i < e; ++i) merged.size += files[i].size;
      rewritten += merged.size;
      files.erase(files.begin() + long(b), files.begin() + long(e));
      files.insert(files.begin() + long(b), merged);
    }
    size_t small_count = 0;
    for (const auto& f : files) small_count += f.size < policy.target_bytes;
    max_count = std::max(max_count, small_count);
  }
  // Sequence ranges stay sorted, disjoint and complete.
  for (size_t i = 1; i < files.size(); ++i) EXPECT_EQ(files[i].first, files[i - 1].last + 1);
  EXPECT_EQ(files.front().first, 1u);
  EXPECT_EQ(files.back().last, seq);
  EXPECT_LE(max_count, 40u);  // 50 000 flushes ≈ 1.2 GB: (8 - 1) per level, ~4 levels
  EXPECT_LE(rewritten, 5 * written);
  size_t final_count = files.size();
  EXPECT_LE(final_count, 40u + written / policy.target_bytes);
}

TEST(PickMerge, NothingBelowTheFanInAndFinalObjectsAreNeverInputs) {
  CompactionPolicy policy;
  policy.min_files = 4;
  policy.target_bytes = 1000;
  policy.floor_bytes = 10;
  std::vector<CompactionFile> files = {{1, 1, 5}, {2, 2, 5}, {3, 3, 5}};
  EXPECT_FALSE(PickMerge(files, policy));
  files.push_back({4, 4, 5});
  auto p = PickMerge(files, policy);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, std::make_pair(size_t(0), size_t(4)));
  // A final object splits runs: three small on each side merge nothing.
  files = {{1, 1, 5}, {2, 2, 5}, {3, 3, 5}, {4, 4, 2000}, {5, 5, 5}, {6, 6, 5}, {7, 7, 5}};
  EXPECT_FALSE(PickMerge(files, policy));
  // Inputs stop once they reach the target.
  files = {{1, 1, 600}, {2, 2, 600}, {3, 3, 600}, {4, 4, 600}};
  p = PickMerge(files, policy);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, std::make_pair(size_t(0), size_t(2)));
}

}  // namespace
}  // namespace tarn::streams
