#include "streams/origin_index.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/hash.h"
#include "streams/wal.h"

namespace tarn::streams {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSecond = 1000000;

RecordOrigin Origin(std::string_view client, uint16_t pid, std::string_view payload,
                    bool dup = true, uint64_t slot = 7) {
  RecordOrigin o;
  o.client_id = client;
  o.packet_id = pid;
  o.dup = dup;
  o.payload_hash = StableHash64(payload);
  o.slot = slot;
  return o;
}

TEST(StableHashTest, ValuesAreFixedForever) {
  // Stored in every stream's log: a change here would make resends after an upgrade land twice.
  EXPECT_EQ(StableHash64(""), 7638366455124501078ull);
  EXPECT_EQ(StableHash64("sensors/sensor-001/telemetry"), 18252542794700301040ull);
  EXPECT_EQ(StableHash64("abc", 42), 5806702805779339725ull);
  EXPECT_NE(StableHash64("abc"), StableHash64("abd"));
  EXPECT_NE(StableHash64(std::string(8, 'a')), StableHash64(std::string(9, 'a')));
}

TEST(OriginIndexTest, ResendMatchesOnlyTheSameClientPacketSlotAndPayload) {
  OriginIndex idx(600 * kSecond, 1000);
  RecordOrigin a = Origin("dev-1", 5, "{\"seq\":1}");
  idx.Add(OriginIndex::Key(a), a.payload_hash, 1, 100 * kSecond);
  EXPECT_TRUE(idx.Contains(a, 101 * kSecond));
  EXPECT_FALSE(idx.Contains(Origin("dev-2", 5, "{\"seq\":1}"), 101 * kSecond));
  EXPECT_FALSE(idx.Contains(Origin("dev-1", 6, "{\"seq\":1}"), 101 * kSecond));
  EXPECT_FALSE(idx.Contains(Origin("dev-1", 5, "{\"seq\":2}"), 101 * kSecond));
  EXPECT_FALSE(idx.Contains(Origin("dev-1", 5, "{\"seq\":1}", true, 8), 101 * kSecond));
}

TEST(OriginIndexTest, APacketIdReusedByANewMessageReplacesTheOldEntry) {
  OriginIndex idx(600 * kSecond, 1000);
  RecordOrigin first = Origin("dev-1", 5, "{\"v\":1}");
  RecordOrigin second = Origin("dev-1", 5, "{\"v\":2}");
  idx.Add(OriginIndex::Key(first), first.payload_hash, 1, 100 * kSecond);
  idx.Add(OriginIndex::Key(second), second.payload_hash, 2, 101 * kSecond);
  EXPECT_TRUE(idx.Contains(second, 102 * kSecond));
  // The first message was acknowledged (its id was reused): a DUP with its payload is not it.
  EXPECT_FALSE(idx.Contains(first, 102 * kSecond));
  EXPECT_EQ(idx.size(), 1u);
}

TEST(OriginIndexTest, EntriesExpireByWindowAndByCount) {
  OriginIndex idx(10 * kSecond, 3);
  std::vector<RecordOrigin> o;
  std::vector<std::string> payloads;
  for (int i = 0; i < 5; ++i) payloads.push_back("p" + std::to_string(i));
  for (int i = 0; i < 5; ++i) o.push_back(Origin("dev", uint16_t(i + 1), payloads[i]));
  for (int i = 0; i < 4; ++i) idx.Add(OriginIndex::Key(o[i]), o[i].payload_hash, i + 1, 100 * kSecond);
  EXPECT_EQ(idx.size(), 3u);                        // the oldest went first
  EXPECT_FALSE(idx.Contains(o[0], 100 * kSecond));
  EXPECT_TRUE(idx.Contains(o[1], 100 * kSecond));
  EXPECT_FALSE(idx.Contains(o[1], 111 * kSecond));  // older than the window at lookup
  idx.Add(OriginIndex::Key(o[4]), o[4].payload_hash, 5, 120 * kSecond);
  EXPECT_EQ(idx.size(), 1u);                        // the window passed the others
  EXPECT_TRUE(idx.Contains(o[4], 121 * kSecond));
}

TEST(OriginIndexTest, MetaAndSnapshotRoundTrip) {
  OriginIndex idx(600 * kSecond, 1000);
  RecordOrigin a = Origin("dev-1", 1, "a"), b = Origin("dev-2", 2, "b"), c = Origin("dev-3", 3, "c");
  idx.AddMeta(OriginIndex::EncodeMeta(a), 10, 100 * kSecond);
  idx.AddMeta(OriginIndex::EncodeMeta(b), 11, 100 * kSecond);
  idx.AddMeta(OriginIndex::EncodeMeta(c), 12, 100 * kSecond);
  idx.AddMeta("", 13, 100 * kSecond);          // a record without origin
  idx.AddMeta("Xgarbage", 14, 100 * kSecond);  // another kind of meta
  EXPECT_EQ(idx.size(), 3u);
  std::string snap = idx.Snapshot(/*through=*/11, 101 * kSecond);
  OriginIndex back(600 * kSecond, 1000);
  ASSERT_TRUE(back.Load(snap, 102 * kSecond));
  EXPECT_TRUE(back.Contains(a, 102 * kSecond));
  EXPECT_TRUE(back.Contains(b, 102 * kSecond));
  EXPECT_FALSE(back.Contains(c, 102 * kSecond));  // seq 12 is still in the log, not the snapshot
  // Out of the window by the time it is loaded: skipped.
  OriginIndex late(600 * kSecond, 1000);
  ASSERT_TRUE(late.Load(snap, 800 * kSecond));
  EXPECT_EQ(late.size(), 0u);
  // Damage is detected, nothing is loaded.
  std::string bad = snap;
  bad[12] ^= 1;
  OriginIndex damaged(600 * kSecond, 1000);
  EXPECT_FALSE(damaged.Load(bad, 102 * kSecond));
  EXPECT_FALSE(damaged.Load(snap.substr(0, snap.size() - 1), 102 * kSecond));
  EXPECT_EQ(damaged.size(), 0u);
}

class WalMetaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tarn-walmeta-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(WalMetaTest, MetaIsReplayedAndScanSeesDeliveredRecordsToo) {
  {
    auto w = Wal::Open(dir_, {}, [](WalRecord&&) {}, nullptr);
    ASSERT_TRUE(w.ok());
    std::vector<WalRecord> recs;
    recs.push_back({0, 5, "one", "m1"});
    recs.push_back({0, 6, "two", ""});
    recs.push_back({0, 7, "three", std::string("m\0" "3", 3)});
    ASSERT_TRUE((*w)->AppendSync(std::move(recs)).ok());
    ASSERT_TRUE((*w)->Checkpoint(1, "").ok());
  }
  std::vector<WalRecord> replayed, scanned;
  WalHooks hooks;
  hooks.scan = [&](const WalRecord& r) { scanned.push_back(r); };
  auto w = Wal::Open(dir_, {}, [&](WalRecord&& r) { replayed.push_back(std::move(r)); }, nullptr,
                     hooks);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(scanned.size(), 3u);
  EXPECT_EQ(scanned[0].meta, "m1");
  EXPECT_EQ(scanned[0].seq, 1u);
  EXPECT_TRUE(scanned[0].data.empty());  // scan never copies data
  ASSERT_EQ(replayed.size(), 2u);       // seq 1 is delivered
  EXPECT_EQ(replayed[0].data, "two");
  EXPECT_EQ(replayed[0].meta, "");
  EXPECT_EQ(replayed[1].data, "three");
  EXPECT_EQ(replayed[1].meta, std::string("m\0" "3", 3));
  EXPECT_EQ(replayed[1].arrival_micros, 7);
}

// A segment in the format before record meta existed (magic TARNWAL1, body = seq | arrival |
// data) is still read after an upgrade.
TEST_F(WalMetaTest, VersionOneSegmentsAreStillRead) {
  std::string seg("TARNWAL1", 8);
  auto put = [](std::string* o, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) o->push_back(char((v >> (8 * i)) & 0xff));
  };
  for (uint64_t seq = 1; seq <= 2; ++seq) {
    std::string body;
    put(&body, seq, 8);
    put(&body, 1000 + seq, 8);
    body += "old-" + std::to_string(seq);
    put(&seg, body.size(), 4);
    put(&seg, WalCrc(body), 4);
    seg += body;
  }
  std::ofstream(dir_ + "/00000000000000000001.wal", std::ios::binary) << seg;
  std::vector<WalRecord> replayed;
  {
    auto w = Wal::Open(dir_, {}, [&](WalRecord&& r) { replayed.push_back(std::move(r)); }, nullptr);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_EQ(replayed.size(), 2u);
    EXPECT_EQ(replayed[1].data, "old-2");
    EXPECT_EQ(replayed[1].arrival_micros, 1002);
    EXPECT_EQ((*w)->next_seq(), 3u);
    std::vector<WalRecord> more;
    more.push_back({0, 9, "new", "meta"});
    ASSERT_TRUE((*w)->AppendSync(std::move(more)).ok());
  }
  replayed.clear();
  auto w = Wal::Open(dir_, {}, [&](WalRecord&& r) { replayed.push_back(std::move(r)); }, nullptr);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(replayed.size(), 3u);
  EXPECT_EQ(replayed[2].data, "new");
  EXPECT_EQ(replayed[2].meta, "meta");
}

TEST_F(WalMetaTest, BeforeDeleteRunsWithTheLastSeqAndAnErrorKeepsTheSegments) {
  WalOptions o;
  o.segment_bytes = 64;  // a segment per append
  std::vector<uint64_t> calls;
  bool fail = true;
  WalHooks hooks;
  hooks.before_delete = [&](uint64_t last) -> Status {
    calls.push_back(last);
    if (fail) return Error(ErrorCode::kIoError, "disk said no");
    return Status::OK();
  };
  auto w = Wal::Open(dir_, o, [](WalRecord&&) {}, nullptr, hooks);
  ASSERT_TRUE(w.ok());
  for (int i = 0; i < 3; ++i) {
    std::vector<WalRecord> r;
    r.push_back({0, 1, std::string(80, 'x'), ""});
    ASSERT_TRUE((*w)->AppendSync(std::move(r)).ok());
  }
  auto segments = [&] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) n += e.path().extension() == ".wal";
    return n;
  };
  size_t before = segments();
  ASSERT_GE(before, 3u);
  ASSERT_TRUE((*w)->Checkpoint(2, "").ok());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], 2u);
  EXPECT_EQ(segments(), before);  // the hook failed: nothing deleted
  fail = false;
  ASSERT_TRUE((*w)->Checkpoint(2, "").ok());
  EXPECT_EQ(calls.back(), 2u);
  EXPECT_LT(segments(), before);
}

// Past the size where the table is sized for max_entries at once (OriginIndex::Add), the index
// behaves as before: newest wins, max_entries oldest first, the window, snapshot and load.
TEST(OriginIndexTest, LargeIndexKeepsItsRulesPastTheReservation) {
  constexpr size_t kMax = 100000;
  OriginIndex idx(600 * kSecond, kMax);
  std::vector<std::string> clients;  // RecordOrigin::client_id is a view
  for (size_t i = 0; i < 50000; ++i) clients.push_back("dev-" + std::to_string(i));
  auto origin = [&clients](size_t i, std::string_view payload) {
    return Origin(clients[i % 50000], uint16_t(1 + i / 50000), payload);
  };
  const size_t n = 150000;
  for (size_t i = 0; i < n; ++i) {
    RecordOrigin o = origin(i, "p" + std::to_string(i));
    idx.Add(OriginIndex::Key(o), o.payload_hash, i + 1, 100 * kSecond + int64_t(i));
  }
  EXPECT_EQ(idx.size(), kMax);
  int64_t now = 100 * kSecond + int64_t(n);
  EXPECT_FALSE(idx.Contains(origin(0, "p0"), now));            // beyond max_entries: gone
  EXPECT_FALSE(idx.Contains(origin(n - kMax - 1, "p" + std::to_string(n - kMax - 1)), now));
  EXPECT_TRUE(idx.Contains(origin(n - kMax, "p" + std::to_string(n - kMax)), now));
  EXPECT_TRUE(idx.Contains(origin(n - 1, "p" + std::to_string(n - 1)), now));
  // A key reused by a newer record: the newest wins.
  RecordOrigin again = origin(n - 1, "newer");
  idx.Add(OriginIndex::Key(again), again.payload_hash, n + 1, now);
  EXPECT_TRUE(idx.Contains(again, now));
  EXPECT_FALSE(idx.Contains(origin(n - 1, "p" + std::to_string(n - 1)), now));
  // Snapshot and load: the same answers.
  std::string snap = idx.Snapshot(n + 1, now);
  OriginIndex loaded(600 * kSecond, kMax);
  ASSERT_TRUE(loaded.Load(snap, now));
  EXPECT_EQ(loaded.size(), idx.size());
  EXPECT_TRUE(loaded.Contains(again, now));
  // The newer record pushed the oldest entry out (max_entries counts records).
  EXPECT_FALSE(idx.Contains(origin(n - kMax, "p" + std::to_string(n - kMax)), now));
  EXPECT_FALSE(loaded.Contains(origin(n - kMax, "p" + std::to_string(n - kMax)), now));
  EXPECT_TRUE(loaded.Contains(origin(n - kMax + 1, "p" + std::to_string(n - kMax + 1)), now));
  EXPECT_FALSE(loaded.Contains(origin(0, "p0"), now));
  // The window: a record 601 s newer expires every earlier one.
  RecordOrigin late = Origin("late", 1, "x");
  idx.Add(OriginIndex::Key(late), late.payload_hash, n + 2, now + 601 * kSecond);
  EXPECT_EQ(idx.size(), 1u);
  EXPECT_TRUE(idx.Contains(late, now + 601 * kSecond));
}

// The snapshot file's bytes are fixed (files outlive upgrades): magic, then per entry key,
// payload hash, seq and arrival as little-endian 64-bit words, then the CRC of all that.
TEST(OriginIndexTest, SnapshotBytesAreFixed) {
  OriginIndex idx(600 * kSecond, 1000);
  idx.Add(0x0102030405060708ull, 0x1112131415161718ull, 42, 100 * kSecond);
  idx.Add(7, 8, 43, 101 * kSecond);  // seq beyond `through`: not written
  std::string want = "TARNORG1";
  for (uint64_t v : std::initializer_list<uint64_t>{0x0102030405060708ull, 0x1112131415161718ull, 42,
                                                   uint64_t(100 * kSecond)}) {
    for (int i = 0; i < 8; ++i) want.push_back(char((v >> (8 * i)) & 0xff));
  }
  uint32_t crc = WalCrc(want);
  for (int i = 0; i < 4; ++i) want.push_back(char((crc >> (8 * i)) & 0xff));
  EXPECT_EQ(idx.Snapshot(42, 101 * kSecond), want);
  OriginIndex empty(600 * kSecond, 1000);
  std::string none = "TARNORG1";
  crc = WalCrc(none);
  for (int i = 0; i < 4; ++i) none.push_back(char((crc >> (8 * i)) & 0xff));
  EXPECT_EQ(empty.Snapshot(100, 0), none);
}

}  // namespace
}  // namespace tarn::streams
