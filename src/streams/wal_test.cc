#include "streams/wal.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <thread>

namespace tarn::streams {
namespace {

namespace fs = std::filesystem;

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tarn-wal-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<WalRecord> Recs(std::initializer_list<std::string> data, int64_t ts = 7) {
    std::vector<WalRecord> v;
    for (const auto& d : data) v.push_back({0, ts, d, ""});
    return v;
  }

  std::unique_ptr<Wal> OpenWal(std::vector<WalRecord>* replayed, WalOptions o = {},
                               DurableFn durable = nullptr) {
    auto w = Wal::Open(dir_, o, [&](WalRecord&& r) { replayed->push_back(std::move(r)); },
                       std::move(durable));
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return std::move(w).value();
  }

  // Retired segment files waiting for reuse (recycle-<n>).
  size_t Spares() const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      n += e.path().filename().string().rfind("recycle-", 0) == 0;
    }
    return n;
  }

  std::string dir_;
};

TEST_F(WalTest, AppendReplayKeepsOrderSequenceAndTime) {
  std::vector<WalRecord> replayed;
  {
    auto wal = OpenWal(&replayed);
    auto s = wal->AppendSync(Recs({"a", "bb"}, 11));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, 1u);
    s = wal->AppendSync(Recs({std::string("c\0d", 3)}, 12));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, 3u);
  }
  auto wal = OpenWal(&replayed);
  ASSERT_EQ(replayed.size(), 3u);
  EXPECT_EQ(replayed[0].data, "a");
  EXPECT_EQ(replayed[0].seq, 1u);
  EXPECT_EQ(replayed[0].arrival_micros, 11);
  EXPECT_EQ(replayed[2].data, std::string("c\0d", 3));
  EXPECT_EQ(replayed[2].arrival_micros, 12);
  EXPECT_EQ(wal->next_seq(), 4u);
}

TEST(WalCrcTest, Crc32cKnownAnswers) {
  // RFC 3720 §B.4 test vectors and the common check value of "123456789".
  EXPECT_EQ(WalCrc32c(""), 0u);
  EXPECT_EQ(WalCrc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(WalCrc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(WalCrc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[i] = char(i);
  EXPECT_EQ(WalCrc32c(inc), 0x46DD794Eu);
  // Every length and alignment through the 8-byte steps and the tail agrees with a bitwise CRC.
  std::string buf(300, '\0');
  std::mt19937 rnd(3);
  for (char& c : buf) c = char(rnd());
  for (size_t off = 0; off < 8; ++off) {
    for (size_t n = 0; off + n <= buf.size(); n += 7) {
      uint32_t c = ~0u;
      for (size_t i = 0; i < n; ++i) {
        c ^= uint8_t(buf[off + i]);
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
      }
      ASSERT_EQ(WalCrc32c(std::string_view(buf).substr(off, n)), ~c) << off << " " << n;
    }
  }
}

TEST(WalCrcTest, Crc32cThreeStreamsMatchOneStream) {
  // RFC 3720 §B.4's vectors through each path on its own, whatever the length threshold.
  std::string inc(32, '\0'), dec(32, '\0');
  for (int i = 0; i < 32; ++i) inc[i] = char(i), dec[i] = char(31 - i);
  for (auto crc : {internal::WalCrc32cThreeWay, internal::WalCrc32cOneStream,
                   internal::WalCrc32cPortable}) {
    EXPECT_EQ(crc(std::string(32, '\0')), 0x8A9136AAu);
    EXPECT_EQ(crc(std::string(32, '\xff')), 0x62A8AB43u);
    EXPECT_EQ(crc(inc), 0x46DD794Eu);
    EXPECT_EQ(crc(dec), 0x113FDB5Cu);
    EXPECT_EQ(crc("123456789"), 0xE3069283u);
  }
  // Every length through several 3 KiB blocks, at every alignment, against the table.
  std::mt19937 rnd(5);
  std::string buf(64 + 7000, '\0');
  for (char& c : buf) c = char(rnd());
  for (size_t n = 0; n <= 7000; ++n) {
    size_t off = rnd() % 64;
    std::string_view d = std::string_view(buf).substr(off, n);
    uint32_t want = internal::WalCrc32cPortable(d);
    ASSERT_EQ(internal::WalCrc32cThreeWay(d), want) << n << " " << off;
    ASSERT_EQ(internal::WalCrc32cOneStream(d), want) << n << " " << off;
    ASSERT_EQ(WalCrc32c(d), want) << n << " " << off;
  }
  for (size_t off = 0; off < 64; ++off) {
    for (size_t n : {0, 1, 23, 24, 127, 128, 129, 230, 231, 3072, 3073}) {
      std::string_view d = std::string_view(buf).substr(off, n);
      ASSERT_EQ(internal::WalCrc32cThreeWay(d), internal::WalCrc32cPortable(d)) << n << " " << off;
    }
  }
  // A long run of ones and zeros (where a wrong shift constant would show).
  std::string big(100000, '\xff');
  for (size_t i = 0; i < big.size(); i += 3) big[i] = 0;
  EXPECT_EQ(WalCrc32c(big), internal::WalCrc32cPortable(big));
}

// Segments of the previous format (TARNWAL2: CRC-32 instead of CRC-32C) are still read after an
// upgrade, and new records go to a new segment in the current format.
TEST_F(WalTest, VersionTwoSegmentsAreStillRead) {
  std::string seg("TARNWAL2", 8);
  auto put = [](std::string* o, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) o->push_back(char((v >> (8 * i)) & 0xff));
  };
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    std::string body;
    put(&body, seq, 8);
    put(&body, 500 + seq, 8);
    put(&body, 1, 4);
    body += "m";
    body += "v2-" + std::to_string(seq);
    put(&seg, body.size(), 4);
    put(&seg, WalCrc(body), 4);
    seg += body;
  }
  std::ofstream(dir_ + "/00000000000000000001.wal", std::ios::binary) << seg;
  std::vector<WalRecord> replayed;
  {
    auto wal = OpenWal(&replayed);
    ASSERT_EQ(replayed.size(), 3u);
    EXPECT_EQ(replayed[2].data, "v2-3");
    EXPECT_EQ(replayed[2].meta, "m");
    EXPECT_EQ(replayed[2].arrival_micros, 503);
    ASSERT_TRUE(wal->AppendSync(Recs({"v3-4"})).ok());
  }
  replayed.clear();
  auto wal = OpenWal(&replayed);
  ASSERT_EQ(replayed.size(), 4u);
  EXPECT_EQ(replayed[1].data, "v2-2");
  EXPECT_EQ(replayed[3].data, "v3-4");
  EXPECT_EQ(replayed[3].seq, 4u);
  std::ifstream in(dir_ + "/00000000000000000004.wal", std::ios::binary);
  std::string magic(8, '\0');
  in.read(magic.data(), 8);
  EXPECT_EQ(magic, "TARNWAL3");
}

TEST_F(WalTest, DurableCallbackSeesEveryRecordInOrderOnce) {
  std::vector<WalRecord> replayed;
  std::mutex mu;
  std::vector<uint64_t> seen;
  auto wal = OpenWal(&replayed, {}, [&](std::vector<WalRecord>&& rs) {
    std::lock_guard<std::mutex> l(mu);
    for (auto& r : rs) seen.push_back(r.seq);
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(wal->AppendSync(Recs({std::to_string(t) + ":" + std::to_string(i)})).ok());
      }
    });
  }
  for (auto& t : ts) t.join();
  wal.reset();
  ASSERT_EQ(seen.size(), 1600u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i + 1);
}

// Pipelined commit: several committers sync at once while segments rotate under them. Every
// acknowledgement comes after its records were handed to the consumer, in sequence order, and
// a reopened log replays exactly what was acknowledged, densely numbered.
TEST_F(WalTest, OverlappingSyncsAcrossRotationsAcknowledgeInOrder) {
  for (int committers : {1, 4}) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::vector<WalRecord> replayed;
    std::mutex mu;
    std::vector<uint64_t> seen;
    std::atomic<uint64_t> acked_max{0};
    WalOptions o;
    o.segment_bytes = 512;
    o.committers = committers;
    {
      auto wal = OpenWal(&replayed, o, [&](std::vector<WalRecord>&& rs) {
        std::lock_guard<std::mutex> l(mu);
        for (auto& r : rs) seen.push_back(r.seq);
      });
      std::vector<std::thread> ts;
      for (int t = 0; t < 8; ++t) {
        ts.emplace_back([&, t] {
          for (int i = 0; i < 60; ++i) {
            auto s = wal->AppendSync(Recs({std::to_string(t), std::string(size_t(i % 7) * 10, 'z')}));
            ASSERT_TRUE(s.ok());
            std::lock_guard<std::mutex> l(mu);
            // Acknowledged means the consumer already saw both records.
            ASSERT_GE(seen.size(), *s + 1);
            acked_max = std::max<uint64_t>(acked_max, *s + 1);
          }
        });
      }
      for (auto& t : ts) t.join();
    }
    ASSERT_EQ(seen.size(), 960u) << committers;
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], i + 1);
    size_t segments = 0;
    for (const auto& e : fs::directory_iterator(dir_)) segments += e.path().extension() == ".wal";
    EXPECT_GT(segments, 10u);
    auto wal = OpenWal(&replayed, o);
    ASSERT_EQ(replayed.size(), 960u);
    for (size_t i = 0; i < replayed.size(); ++i) ASSERT_EQ(replayed[i].seq, i + 1);
    EXPECT_EQ(wal->next_seq(), 961u);
  }
}

TEST_F(WalTest, TornTailIsTruncatedAndLogStillOpens) {
  std::vector<WalRecord> replayed;
  {
    auto wal = OpenWal(&replayed);
    ASSERT_TRUE(wal->AppendSync(Recs({"one", "two", "three"})).ok());
  }
  std::string seg;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().extension() == ".wal") seg = e.path();
  }
  ASSERT_FALSE(seg.empty());
  // A crash mid-write: half a record header, then garbage at the end.
  {
    std::ofstream f(seg, std::ios::app | std::ios::binary);
    f.write("\x30\x00\x00", 3);
  }
  // Corrupt the last full record's payload (a flipped bit): its CRC fails.
  auto size = fs::file_size(seg);
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(size - 4));
    f.put('X');
  }
  auto wal = OpenWal(&replayed);
  ASSERT_EQ(replayed.size(), 2u);
  EXPECT_EQ(replayed[1].data, "two");
  // The next record continues the sequence after the last intact one.
  auto s = wal->AppendSync(Recs({"four"}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 3u);
  wal.reset();
  replayed.clear();
  wal = OpenWal(&replayed);
  ASSERT_EQ(replayed.size(), 3u);
  EXPECT_EQ(replayed[2].data, "four");
}

TEST_F(WalTest, CheckpointSkipsDeliveredAndDeletesSegments) {
  std::vector<WalRecord> replayed;
  WalOptions o;
  o.segment_bytes = 100;  // a new segment for nearly every batch
  {
    auto wal = OpenWal(&replayed, o);
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(wal->AppendSync(Recs({std::string(60, char('a' + i))})).ok());
    }
    size_t before = 0;
    for (const auto& e : fs::directory_iterator(dir_)) before += e.path().extension() == ".wal";
    EXPECT_GE(before, 5u);
    ASSERT_TRUE(wal->Checkpoint(7, "state-7").ok());
    size_t after = 0;
    for (const auto& e : fs::directory_iterator(dir_)) after += e.path().extension() == ".wal";
    EXPECT_LT(after, before);
    // Never backwards.
    ASSERT_TRUE(wal->Checkpoint(3, "state-3").ok());
    EXPECT_EQ(wal->delivered_through(), 7u);
  }
  auto wal = OpenWal(&replayed, o);
  EXPECT_EQ(wal->checkpoint_state(), "state-3");
  ASSERT_EQ(replayed.size(), 3u);
  EXPECT_EQ(replayed[0].seq, 8u);
  EXPECT_EQ(replayed[0].data, std::string(60, 'h'));
  // Everything delivered: the sequence still continues after a restart.
  ASSERT_TRUE(wal->Checkpoint(10, "").ok());
  wal.reset();
  replayed.clear();
  wal = OpenWal(&replayed, o);
  EXPECT_TRUE(replayed.empty());
  EXPECT_EQ(wal->next_seq(), 11u);
}

TEST_F(WalTest, QuotaGivesBackpressureUntilCheckpointFreesSpace) {
  std::vector<WalRecord> replayed;
  WalOptions o;
  o.segment_bytes = 1000;
  o.quota_bytes = 3000;
  auto wal = OpenWal(&replayed, o);
  Status last;
  int accepted = 0;
  for (int i = 0; i < 100; ++i) {
    auto s = wal->AppendSync(Recs({std::string(200, 'x')}));
    if (!s.ok()) {
      last = s.status();
      break;
    }
    ++accepted;
  }
  EXPECT_EQ(last.code(), ErrorCode::kFirehoseServiceUnavailable);
  EXPECT_GT(accepted, 5);
  ASSERT_TRUE(wal->Checkpoint(wal->next_seq() - 1, "").ok());
  EXPECT_TRUE(wal->AppendSync(Recs({std::string(200, 'x')})).ok());
}

// Retired segments are renamed for reuse, a new segment takes one over (its old bytes after the
// new records), and neither a crash nor a clean restart ever replays those old bytes.
TEST_F(WalTest, RetiredSegmentsAreReusedAndTheirOldRecordsNeverReplay) {
  WalOptions o;
  o.segment_bytes = 600;
  auto seg = [&](uint64_t first) {
    char b[32];
    std::snprintf(b, sizeof(b), "/%020llu.wal", static_cast<unsigned long long>(first));
    return dir_ + b;
  };
  const std::string big(100, 'o');  // a 128-byte record
  // A child runs until segment 16 has taken over segment 1's file, then dies without closing:
  // that file still holds segment 1's records after segment 16's one — valid records with
  // sequence numbers 2 to 8.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto w = Wal::Open(dir_, o, [](WalRecord&&) {}, nullptr);
    if (!w.ok()) ::_exit(3);
    Wal& wal = **w;
    if (!wal.AppendSync(Recs({big, big, big, big, big, big, big, big})).ok()) ::_exit(4);  // 1-8
    if (!wal.AppendSync(Recs({"b9"})).ok()) ::_exit(5);  // 9: segment 9
    if (!wal.Checkpoint(8, "").ok() || fs::exists(seg(1)) || Spares() != 1) ::_exit(6);
    if (!wal.AppendSync(Recs({big, big, big, big, big, big})).ok()) ::_exit(7);  // 10-15
    if (!wal.AppendSync(Recs({big})).ok()) ::_exit(8);  // 16: segment 16, segment 1's file
    ::_exit(Spares() == 0 && fs::exists(seg(16)) ? 0 : 9);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(fs::file_size(seg(16)), 8u + 8u * 128u);  // a fresh file would hold 8 + 128
  std::vector<WalRecord> replayed;
  {
    auto wal = OpenWal(&replayed, o);
    ASSERT_EQ(replayed.size(), 8u);  // 9 to 16; nothing of segment 1
    for (size_t i = 0; i < replayed.size(); ++i) EXPECT_EQ(replayed[i].seq, 9 + i);
    EXPECT_EQ(replayed[0].data, "b9");
    EXPECT_EQ(replayed[7].data, big);
    EXPECT_EQ(wal->next_seq(), 17u);
    EXPECT_EQ(fs::file_size(seg(16)), 8u + 128u);  // recovery cut the old records off
    // Segments 9 and 16 retire; segment 23 takes over the newest spare (segment 16's file), and
    // a clean close cuts its old bytes off.
    ASSERT_TRUE(wal->Checkpoint(16, "").ok());
    EXPECT_EQ(Spares(), 2u);
    ASSERT_TRUE(wal->AppendSync(Recs({big, big, big, big, big, big})).ok());  // 17-22
    ASSERT_TRUE(wal->AppendSync(Recs({"x23"})).ok());
    EXPECT_EQ(Spares(), 1u);
  }
  EXPECT_EQ(fs::file_size(seg(23)), 8u + 8u + 20u + 3u);
  replayed.clear();
  auto wal = OpenWal(&replayed, o);
  ASSERT_EQ(replayed.size(), 7u);
  EXPECT_EQ(replayed[0].seq, 17u);
  EXPECT_EQ(replayed[6].data, "x23");
  EXPECT_EQ(Spares(), 0u);  // spares of an earlier run are deleted at Open
}

// A busy stream retires several segments at one checkpoint and needs as many new ones before the
// next: all of them are kept for reuse (up to recycled_segments, within the quota), so that the
// next segments overwrite cached pages instead of taking fresh ones.
TEST_F(WalTest, EverySegmentRetiredAtOnceIsKeptForReuseWithinTheQuota) {
  WalOptions o;
  o.segment_bytes = 600;
  o.quota_bytes = 10 * 600;
  const std::string big(100, 'o');  // a 128-byte record: five fill a segment
  std::vector<WalRecord> replayed;
  auto wal = OpenWal(&replayed, o);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(wal->AppendSync(Recs({big, big, big, big, big})).ok());  // segment 1 + 5i
  }
  ASSERT_TRUE(wal->AppendSync(Recs({"x"})).ok());  // 31: segment 31
  ASSERT_TRUE(wal->Checkpoint(30, "").ok());
  EXPECT_EQ(Spares(), 6u);
  // The next six segments take them over (the first batch still goes into segment 31): no new
  // file.
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(wal->AppendSync(Recs({big, big, big, big, big})).ok());
  }
  EXPECT_EQ(Spares(), 0u);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.path().extension() == ".wal";
  EXPECT_EQ(files, 7u);
  // A cap below the burst keeps only that many.
  ASSERT_TRUE(wal->Checkpoint(wal->next_seq() - 1, "").ok());
  wal.reset();
  o.recycled_segments = 2;
  wal = OpenWal(&replayed, o);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(wal->AppendSync(Recs({big, big, big, big, big})).ok());
  }
  ASSERT_TRUE(wal->AppendSync(Recs({"x"})).ok());
  ASSERT_TRUE(wal->Checkpoint(wal->next_seq() - 2, "").ok());
  EXPECT_EQ(Spares(), 2u);
}

// A crash right after a new segment took a spare over and wrote its header, before any record:
// the file holds the header and the retired segment's records, whose sequence numbers are below
// the new segment's name. Even with the checkpoint gone (every record replayed), none of them
// comes back, and the sequence continues after the segment's name.
TEST_F(WalTest, ReusedSegmentWithOnlyOldRecordsReplaysNothing) {
  WalOptions o;
  o.segment_bytes = 300;
  auto seg = [&](uint64_t first) {
    char b[32];
    std::snprintf(b, sizeof(b), "/%020llu.wal", static_cast<unsigned long long>(first));
    return dir_ + b;
  };
  std::vector<WalRecord> replayed;
  {
    auto wal = OpenWal(&replayed, o);
    ASSERT_TRUE(wal->AppendSync(Recs({std::string(100, 'a'), std::string(100, 'b'),
                                      std::string(100, 'c')})).ok());  // segment 1
    ASSERT_TRUE(wal->AppendSync(Recs({"d"})).ok());                      // segment 4
    ASSERT_TRUE(wal->Checkpoint(4, "").ok());
  }
  // What the crash leaves: segment 1's file under the name of segment 5, the active segment
  // 4 delivered and gone, and no checkpoint.
  std::string spare;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().filename().string().rfind("recycle-", 0) == 0) spare = e.path();
  }
  ASSERT_FALSE(spare.empty());
  fs::rename(spare, seg(5));
  fs::remove(seg(4));
  fs::remove(dir_ + "/checkpoint");
  auto wal = OpenWal(&replayed, o);
  EXPECT_TRUE(replayed.empty());
  EXPECT_EQ(wal->next_seq(), 5u);
  auto s = wal->AppendSync(Recs({"e"}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 5u);
}

// A child appends in a loop and reports each acknowledged record on a pipe; the parent kills it
// with SIGKILL at a random moment, reopens the log and checks that every acknowledged record is
// there exactly once (and nothing appears that was never appended).
TEST_F(WalTest, CrashKeepsEveryAcknowledgedRecordExactlyOnce) {
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      WalOptions o;
      o.segment_bytes = 4096;  // rotations happen under the kill too
      auto w = Wal::Open(dir_, o, [](WalRecord&&) {}, nullptr);
      if (!w.ok()) ::_exit(3);
      std::vector<std::thread> ts;
      std::mutex pipe_mu;
      for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
          for (int i = 0;; ++i) {
            std::string id = std::to_string(round) + "-" + std::to_string(t) + "-" + std::to_string(i);
            std::vector<WalRecord> rs{{0, 0, id, ""}, {0, 0, id + "b", ""}};
            if (!(*w)->AppendSync(std::move(rs)).ok()) ::_exit(4);
            std::string line = id + "\n";
            std::lock_guard<std::mutex> l(pipe_mu);
            if (::write(fds[1], line.data(), line.size()) < 0) ::_exit(5);
          }
        });
      }
      for (auto& t : ts) t.join();
      ::_exit(0);
    }
    ::close(fds[1]);
    std::string acked;
    char buf[4096];
    // Let it run until a few hundred acknowledgements arrived, then kill it mid-flight.
    size_t lines = 0;
    while (lines < 300u + 200u * unsigned(round)) {
      ssize_t n = ::read(fds[0], buf, sizeof(buf));
      ASSERT_GT(n, 0) << "child died early";
      acked.append(buf, size_t(n));
      lines = size_t(std::count(acked.begin(), acked.end(), '\n'));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    for (;;) {  // acknowledgements written before the kill
      ssize_t n = ::read(fds[0], buf, sizeof(buf));
      if (n <= 0) break;
      acked.append(buf, size_t(n));
    }
    ::close(fds[0]);

    std::vector<WalRecord> replayed;
    auto wal = OpenWal(&replayed);
    std::map<std::string, int> count;
    uint64_t prev = wal->delivered_through();
    for (const auto& r : replayed) {
      ++count[r.data];
      EXPECT_EQ(r.seq, prev + 1) << "sequence gap";
      prev = r.seq;
    }
    size_t start = 0, n_acked = 0;
    while (start < acked.size()) {
      size_t nl = acked.find('\n', start);
      if (nl == std::string::npos) break;  // a torn line from the kill
      std::string id = acked.substr(start, nl - start);
      start = nl + 1;
      ++n_acked;
      EXPECT_EQ(count[id], 1) << "acknowledged record " << id << " lost or duplicated";
      EXPECT_EQ(count[id + "b"], 1) << id << "b";
    }
    for (const auto& [id, c] : count) EXPECT_EQ(c, 1) << id;
    EXPECT_GE(n_acked, 300u);
    // All of the log is delivered before the next round, which continues the sequence.
    ASSERT_TRUE(wal->Checkpoint(wal->next_seq() - 1, "").ok());
  }
}

}  // namespace
}  // namespace tarn::streams

namespace tarn::streams {
namespace {

// Random damage (bit flips, truncation, garbage appended) to a segment: Open never fails, and
// every record it replays is exactly the one written under that sequence number.
TEST(WalDamageTest, RandomDamageReplaysOnlyIntactRecordsAndNeverRefusesToStart) {
  std::mt19937 rng(42);
  for (int round = 0; round < 40; ++round) {
    char tmpl[] = "/tmp/tarn-waldmg-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::vector<std::string> written;
    {
      WalOptions o;
      o.sync = false;
      o.segment_bytes = 2048;
      auto w = Wal::Open(dir, o, [](WalRecord&&) {}, nullptr);
      ASSERT_TRUE(w.ok());
      for (int i = 0; i < 60; ++i) {
        std::string d = "rec-" + std::to_string(i) + std::string(size_t(rng() % 100), 'z');
        written.push_back(d);
        ASSERT_TRUE((*w)->AppendSync({{0, i, d, ""}}).ok());
      }
    }
    // Damage one segment.
    std::vector<std::string> segs;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ".wal") segs.push_back(e.path());
    }
    std::sort(segs.begin(), segs.end());
    std::string victim = segs[rng() % segs.size()];
    auto size = fs::file_size(victim);
    switch (round % 3) {
      case 0: fs::resize_file(victim, rng() % (size + 1)); break;
      case 1: {
        std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(std::streamoff(rng() % size));
        f.put(char(rng()));
        break;
      }
      case 2: {
        std::ofstream f(victim, std::ios::app | std::ios::binary);
        for (int i = 0; i < 37; ++i) f.put(char(rng()));
        break;
      }
    }
    std::vector<WalRecord> replayed;
    auto w = Wal::Open(dir, {}, [&](WalRecord&& r) { replayed.push_back(std::move(r)); }, nullptr);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    // Every replayed record is the one written with that sequence number.
    for (const auto& r : replayed) {
      ASSERT_GE(r.seq, 1u);
      ASSERT_LE(r.seq, written.size());
      EXPECT_EQ(r.data, written[r.seq - 1]);
    }
    // And appending still works, after the last record that survived.
    auto s = (*w)->AppendSync({{0, 0, "after", ""}});
    ASSERT_TRUE(s.ok());
    EXPECT_GT(*s, replayed.empty() ? 0u : replayed.back().seq);
    w->reset();
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace tarn::streams
