#include "streams/wal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>

#include "core/data_dir.h"
#include "core/log.h"
#include "ops/metrics.h"

namespace tarn::streams {

namespace fs = std::filesystem;

namespace {

// Segments are written as version 3 (records checked with CRC-32C); versions 1 (no meta field)
// and 2 (CRC-32) are still read.
constexpr char kMagic[8] = {'T', 'A', 'R', 'N', 'W', 'A', 'L', '3'};
constexpr char kMagicV2[8] = {'T', 'A', 'R', 'N', 'W', 'A', 'L', '2'};
constexpr char kMagicV1[8] = {'T', 'A', 'R', 'N', 'W', 'A', 'L', '1'};
constexpr size_t kRecordHeader = 8;   // length + crc
constexpr size_t kBodyHeaderV1 = 16;  // seq + arrival time
constexpr size_t kBodyHeader = 20;    // seq + arrival time + meta length
constexpr uint32_t kMaxBody = 16u << 20;
// Buffers of at most this size are kept for the next batch (Wal::spare_bytes_).
constexpr size_t kMaxSpareBytes = 16u << 20;
// Retired segment files are renamed <kSparePrefix><n> until a new segment reuses them, for at
// most kSpareMaxAgeNs (after that their pages may have left the page cache, and overwriting a
// partly written page that is not cached would read it from the disk first).
constexpr const char* kSparePrefix = "recycle-";
constexpr int64_t kSpareMaxAgeNs = 60'000'000'000;

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void PutU32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = char((v >> (8 * i)) & 0xff);
  out->append(b, 4);
}
void PutU64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = char((v >> (8 * i)) & 0xff);
  out->append(b, 8);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | uint8_t(p[i]);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | uint8_t(p[i]);
  return v;
}

size_t EncodedSize(const WalRecord& r) {
  return kRecordHeader + kBodyHeader + r.meta.size() + r.data.size();
}

void EncodeRecord(const WalRecord& r, std::string* out) {
  // The body is built in place after a header whose CRC is filled in once the body is there.
  size_t at = out->size();
  size_t body = kBodyHeader + r.meta.size() + r.data.size();
  out->reserve(at + kRecordHeader + body);
  PutU32(out, uint32_t(body));
  PutU32(out, 0);
  PutU64(out, r.seq);
  PutU64(out, uint64_t(r.arrival_micros));
  PutU32(out, uint32_t(r.meta.size()));
  out->append(r.meta);
  out->append(r.data);
  uint32_t crc = WalCrc32c(std::string_view(out->data() + at + kRecordHeader, body));
  for (int i = 0; i < 4; ++i) (*out)[at + 4 + i] = char((crc >> (8 * i)) & 0xff);
}

std::string SegmentName(uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020llu.wal", static_cast<unsigned long long>(first_seq));
  return buf;
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error(ErrorCode::kIoError, "opening " + dir + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Error(ErrorCode::kIoError, "syncing " + dir + ": " + std::strerror(errno));
  return Status::OK();
}

Status WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error(ErrorCode::kIoError, std::string("writing WAL segment: ") + std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
  return Status::OK();
}

Status ReadWhole(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(ErrorCode::kIoError, "opening " + path + ": " + std::strerror(errno));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Error(ErrorCode::kIoError, "reading " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    out->append(buf, size_t(n));
  }
  ::close(fd);
  return Status::OK();
}

}  // namespace

uint32_t WalCrc(std::string_view data) {
  return uint32_t(::crc32(0L, reinterpret_cast<const Bytef*>(data.data()), uInt(data.size())));
}

namespace {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one table for CPUs without SSE 4.2.
struct Crc32cTable {
  uint32_t t[256];
};
constexpr Crc32cTable MakeCrc32cTable() {
  Crc32cTable c{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t v = i;
    for (int k = 0; k < 8; ++k) v = (v >> 1) ^ (0x82F63B78u & (0u - (v & 1)));
    c.t[i] = v;
  }
  return c;
}
constexpr Crc32cTable kCrc32c = MakeCrc32cTable();

uint32_t Crc32cPortable(const unsigned char* p, size_t n, uint32_t crc) {
  while (n--) crc = (crc >> 8) ^ kCrc32c.t[(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
// SSE 4.2's crc32 instruction computes exactly this CRC, 8 bytes per instruction: ~5x zlib's
// CRC-32 on a 200-byte record, which it replaced as the largest item of the log's append.
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(const unsigned char* p, size_t n,
                                                        uint32_t crc) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  uint32_t c32 = uint32_t(c);
  for (; n > 0; --n) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

// Three streams at once. Each crc32 waits 3 cycles for the previous one's result but a new one
// can start every cycle, so one chain uses a third of the unit: split a block into three equal
// parts A B C, run their CRCs side by side (A's from the running value, B's and C's from zero),
// then join them by linearity: crc(A B C) = crc(A)·x^(8·2L) + crc(B)·x^(8·L) + crc(C) mod P,
// L the length of a part (the method of Intel's "Fast CRC Computation for iSCSI Polynomial Using
// CRC32 Instruction", 2011). The shifts are carry-less multiplications by x^(8L - 33) mod P,
// reduced by one crc32 of the 64-bit product (which multiplies by x^32; the product of two
// bit-reflected values carries one more factor x).
constexpr size_t kCrcMaxWords = 128;  // 8-byte words per part: blocks of at most 3 KiB
struct Crc32cShifts {
  uint32_t one[kCrcMaxWords + 1];  // [m]: x^(64m - 33) mod P, bit-reflected: shifts over a part
  uint32_t two[kCrcMaxWords + 1];  // [m]: x^(128m - 33) mod P: shifts over two parts
};
constexpr uint32_t MulX(uint32_t v, int times) {  // v·x^times mod P, bit-reflected
  for (int i = 0; i < times; ++i) v = (v >> 1) ^ (0x82F63B78u & (0u - (v & 1)));
  return v;
}
constexpr Crc32cShifts MakeCrc32cShifts() {
  Crc32cShifts s{};
  uint32_t one = MulX(0x80000000u, 64 - 33);   // x^0 is bit 31
  uint32_t two = MulX(0x80000000u, 128 - 33);
  for (size_t m = 1; m <= kCrcMaxWords; ++m) {
    s.one[m] = one;
    s.two[m] = two;
    one = MulX(one, 64);
    two = MulX(two, 128);
  }
  return s;
}
constexpr Crc32cShifts kCrc32cShifts = MakeCrc32cShifts();

__attribute__((target("sse4.2,pclmul"))) uint32_t Crc32cSse42ThreeWay(const unsigned char* p,
                                                                       size_t n, uint32_t crc) {
  while (n >= 24) {
    size_t words = std::min(n / 24, kCrcMaxWords), part = words * 8;
    uint64_t a = crc, b = 0, c = 0;
    for (size_t i = 0; i < part; i += 8) {
      uint64_t va, vb, vc;
      std::memcpy(&va, p + i, 8);
      std::memcpy(&vb, p + part + i, 8);
      std::memcpy(&vc, p + 2 * part + i, 8);
      a = __builtin_ia32_crc32di(a, va);
      b = __builtin_ia32_crc32di(b, vb);
      c = __builtin_ia32_crc32di(c, vc);
    }
    __m128i sa = _mm_clmulepi64_si128(_mm_cvtsi32_si128(int(a)),
                                      _mm_cvtsi32_si128(int(kCrc32cShifts.two[words])), 0);
    __m128i sb = _mm_clmulepi64_si128(_mm_cvtsi32_si128(int(b)),
                                      _mm_cvtsi32_si128(int(kCrc32cShifts.one[words])), 0);
    uint64_t joined = uint64_t(_mm_cvtsi128_si64(_mm_xor_si128(sa, sb)));
    crc = uint32_t(__builtin_ia32_crc32di(0, joined) ^ c);
    p += 3 * part;
    n -= 3 * part;
  }
  // At most two words and seven bytes: the fewest dependent steps.
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  crc = uint32_t(c);
  if (n & 4) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    crc = __builtin_ia32_crc32si(crc, v);
    p += 4;
  }
  if (n & 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    crc = __builtin_ia32_crc32hi(crc, v);
    p += 2;
  }
  if (n & 1) crc = __builtin_ia32_crc32qi(crc, *p);
  return crc;
}

const bool kHaveSse42 = [] {
  __builtin_cpu_init();  // may run before libgcc's own constructor
  return __builtin_cpu_supports("sse4.2") != 0;
}();
const bool kHaveClmul = kHaveSse42 && __builtin_cpu_supports("pclmul") != 0;
// Below this length the join costs more than the parallel streams win (bench/streams/codec_bench).
constexpr size_t kCrcThreeWayMin = 128;
#endif

}  // namespace

namespace internal {
uint32_t WalCrc32cOneStream(std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
#if defined(__x86_64__)
  if (kHaveSse42) return ~Crc32cSse42(p, data.size(), ~0u);
#endif
  return ~Crc32cPortable(p, data.size(), ~0u);
}
uint32_t WalCrc32cThreeWay(std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
#if defined(__x86_64__)
  if (kHaveClmul) return ~Crc32cSse42ThreeWay(p, data.size(), ~0u);
#endif
  return ~Crc32cPortable(p, data.size(), ~0u);
}
uint32_t WalCrc32cPortable(std::string_view data) {
  return ~Crc32cPortable(reinterpret_cast<const unsigned char*>(data.data()), data.size(), ~0u);
}
}  // namespace internal

uint32_t WalCrc32c(std::string_view data) {
#if defined(__x86_64__)
  if (kHaveClmul && data.size() >= kCrcThreeWayMin) return internal::WalCrc32cThreeWay(data);
#endif
  return internal::WalCrc32cOneStream(data);
}

Wal::Wal(std::string dir, WalOptions options, DurableFn on_durable, WalHooks hooks)
    : dir_(std::move(dir)),
      options_(options),
      on_durable_(std::move(on_durable)),
      hooks_(std::move(hooks)) {}

Result<std::unique_ptr<Wal>> Wal::Open(const std::string& dir, const WalOptions& options,
                                       const std::function<void(WalRecord&&)>& replay,
                                       DurableFn on_durable, WalHooks hooks) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error(ErrorCode::kIoError, "creating " + dir + ": " + ec.message());
  std::unique_ptr<Wal> wal(new Wal(dir, options, std::move(on_durable), std::move(hooks)));
  RETURN_IF_ERROR(wal->Recover(replay));
  RETURN_IF_ERROR(wal->OpenNewSegment(wal->next_seq_));
  size_t n = size_t(std::max(1, options.committers));
  for (size_t i = 0; i < n; ++i) {
    wal->committers_.emplace_back([w = wal.get(), i] {
      pthread_setname_np(pthread_self(), ("wal-commit-" + std::to_string(i)).c_str());
      w->CommitterLoop(i);
    });
  }
  return wal;
}

Status Wal::Recover(const std::function<void(WalRecord&&)>& replay) {
  // The checkpoint: "<delivered-through>\n<state>".
  std::string cp_path = dir_ + "/checkpoint";
  if (fs::exists(cp_path)) {
    ASSIGN_OR_RETURN(std::string cp, ReadFile(cp_path));
    size_t nl = cp.find('\n');
    std::string first = cp.substr(0, nl);
    char* end = nullptr;
    unsigned long long v = std::strtoull(first.c_str(), &end, 10);
    if (first.empty() || *end != '\0') {
      // Written atomically, so this is outside damage: replaying everything is safe for the
      // consumer (its flushes are idempotent), losing records is not.
      TLOG_WARN("wal", "{}: unreadable checkpoint ignored; replaying the whole log", dir_);
    } else {
      delivered_ = v;
      state_ = nl == std::string::npos ? "" : cp.substr(nl + 1);
    }
  }
  std::vector<std::pair<uint64_t, std::string>> files;
  for (const auto& e : fs::directory_iterator(dir_)) {
    std::string name = e.path().filename().string();
    if (name.rfind(kSparePrefix, 0) == 0) {
      // A retired segment of the previous run: how long ago, and whether its pages are still
      // cached, is unknown, so it is not reused.
      std::error_code rm;
      fs::remove(e.path(), rm);
      continue;
    }
    if (name.size() != 24 || name.substr(20) != ".wal") continue;
    files.emplace_back(std::strtoull(name.substr(0, 20).c_str(), nullptr, 10), e.path().string());
  }
  std::sort(files.begin(), files.end());
  uint64_t last_seq = 0;
  // Sequence numbers continue after the newest segment's name even when it holds no record
  // (a crash right after it was started).
  uint64_t named = files.empty() || files.back().first == 0 ? 0 : files.back().first - 1;
  for (const auto& [first, path] : files) {
    std::string buf;
    RETURN_IF_ERROR(ReadWhole(path, &buf));
    auto has_magic = [&](const char* magic) {
      return buf.size() >= sizeof(kMagic) && std::memcmp(buf.data(), magic, sizeof(kMagic)) == 0;
    };
    bool v1 = has_magic(kMagicV1);
    bool v3 = has_magic(kMagic);
    if (!v1 && !v3 && !has_magic(kMagicV2)) {
      TLOG_WARN("wal", "{}: segment without a valid header (torn at creation); removed", path);
      std::error_code rm;
      fs::remove(path, rm);
      continue;
    }
    const size_t body_header = v1 ? kBodyHeaderV1 : kBodyHeader;
    size_t pos = sizeof(kMagic);
    uint64_t expect = 0;
    while (pos < buf.size()) {
      bool bad = false;
      uint32_t len = 0;
      if (buf.size() - pos < kRecordHeader) {
        bad = true;
      } else {
        len = GetU32(buf.data() + pos);
        uint32_t crc = GetU32(buf.data() + pos + 4);
        if (len < body_header || len > kMaxBody || buf.size() - pos - kRecordHeader < len ||
            (v3 ? WalCrc32c : WalCrc)(std::string_view(buf.data() + pos + kRecordHeader, len)) !=
                crc) {
          bad = true;
        }
      }
      WalRecord r;
      if (!bad) {
        const char* b = buf.data() + pos + kRecordHeader;
        r.seq = GetU64(b);
        r.arrival_micros = int64_t(GetU64(b + 8));
        uint32_t meta = v1 ? 0 : GetU32(b + 16);
        // Every record of a segment has a sequence number from its name's on: the records of
        // an earlier use of a reused file, after the last one written, are all below it.
        if ((expect && r.seq != expect) || r.seq <= last_seq || r.seq < first ||
            meta > len - body_header) {
          bad = true;
        }
        if (!bad) {
          r.meta.assign(b + body_header, meta);
          if (hooks_.scan) hooks_.scan(r);
          if (r.seq > delivered_) {
            r.data.assign(b + body_header + meta, len - body_header - meta);
          }
        }
      }
      if (bad) {
        TLOG_WARN("wal", "{}: the log ends at offset {} (a torn or corrupt tail, or a reused "
                  "file's earlier contents); truncating {} bytes", path, pos, buf.size() - pos);
        if (::truncate(path.c_str(), off_t(pos)) != 0) {
          return Error(ErrorCode::kIoError, "truncating " + path + ": " + std::strerror(errno));
        }
        buf.resize(pos);
        break;
      }
      expect = r.seq + 1;
      last_seq = r.seq;
      pos += kRecordHeader + len;
      if (r.seq > delivered_) replay(std::move(r));
    }
    segments_.push_back({first, path, buf.size()});
    disk_bytes_ += buf.size();
  }
  next_seq_ = std::max({last_seq, delivered_, named}) + 1;
  // Segments left entirely behind the checkpoint (a crash between checkpoint and delete).
  DeleteDeliveredSegments();
  return Status::OK();
}

Wal::SegmentFile::~SegmentFile() {
  if (fd >= 0) ::close(fd);
  for (int f : sync_fds) ::close(f);
}

Status Wal::OpenNewSegment(uint64_t first_seq) {
  std::string path = dir_ + "/" + SegmentName(first_seq);
  auto file = std::make_shared<SegmentFile>();
  // A retired segment's file, when one was retired recently: overwritten from the start. Its
  // new name is durable (directory fsync below) before anything in it is acknowledged.
  std::vector<std::string> stale;
  std::string spare = TakeSpareFile(&stale);
  for (const auto& f : stale) {
    std::error_code rm;
    fs::remove(f, rm);
  }
  const bool reused = !spare.empty() && ::rename(spare.c_str(), path.c_str()) == 0;
  if (!spare.empty() && !reused) {
    std::error_code rm;
    fs::remove(spare, rm);
  }
  file->fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (reused ? 0 : O_TRUNC), 0644);
  if (file->fd < 0) {
    return Error(ErrorCode::kIoError, "creating " + path + ": " + std::strerror(errno));
  }
  // One descriptor per committer, opened before anything is written, so that each sees every
  // writeback error of the file (Linux reports an error once per open file description).
  for (int i = 0; i < std::max(1, options_.committers); ++i) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Error(ErrorCode::kIoError, "opening " + path + ": " + std::strerror(errno));
    file->sync_fds.push_back(fd);
  }
  Status st = WriteAll(file->fd, kMagic, sizeof(kMagic));
  if (st.ok() && options_.sync && ::fdatasync(file->fd) != 0) {
    st = Error(ErrorCode::kIoError, "syncing " + path + ": " + std::strerror(errno));
  }
  if (st.ok() && options_.sync) st = SyncDir(dir_);
  if (!st.ok()) return st;
  file_ = std::move(file);
  file_bytes_ = sizeof(kMagic);
  std::lock_guard<std::mutex> l(mu_);
  // An empty segment of the same name from a previous run was just truncated: replace it.
  if (!segments_.empty() && segments_.back().path == path) {
    disk_bytes_ -= segments_.back().bytes;
    segments_.pop_back();
  }
  segments_.push_back({first_seq, path, sizeof(kMagic)});
  disk_bytes_ += sizeof(kMagic);
  return Status::OK();
}

Wal::~Wal() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : committers_) t.join();
  // A reused segment holds its earlier contents after the last record: cut them off, so that
  // the next Open finds a clean end (after a crash it finds the end by sequence numbers).
  if (file_ && ::ftruncate(file_->fd, off_t(file_bytes_)) != 0) {
    TLOG_WARN("wal", "{}: truncating the active segment: {}", dir_, std::strerror(errno));
  }
}

void Wal::Append(std::vector<WalRecord> records, AppendDone done) {
  if (records.empty()) {
    done(Status::OK(), 0);
    return;
  }
  std::unique_lock<std::mutex> l(mu_);
  if (!failed_.ok()) {
    Status st = failed_;
    l.unlock();
    done(st, 0);
    return;
  }
  size_t add = 0;
  for (const auto& r : records) add += EncodedSize(r);
  if (disk_bytes_ + pending_.bytes.size() + add > options_.quota_bytes) {
    l.unlock();
    done(Error(ErrorCode::kFirehoseServiceUnavailable,
               "the delivery stream's write-ahead log is full (quota " +
                   std::to_string(options_.quota_bytes >> 20) +
                   " MiB) while earlier records await delivery; retry later"),
         0);
    return;
  }
  uint64_t first = next_seq_;
  for (auto& r : records) {
    r.seq = next_seq_++;
    EncodeRecord(r, &pending_.bytes);
    pending_.records.push_back(std::move(r));
  }
  pending_.done.push_back(std::move(done));
  pending_.first_seqs.push_back(first);
  if (options_.commit_seconds) pending_.appended_ns.push_back(SteadyNs());
  l.unlock();
  cv_.notify_one();
}

Result<uint64_t> Wal::AppendSync(std::vector<WalRecord> records) {
  auto p = std::make_shared<std::promise<std::pair<Status, uint64_t>>>();
  auto f = p->get_future();
  Append(std::move(records), [p](const Status& st, uint64_t seq) { p->set_value({st, seq}); });
  auto [st, seq] = f.get();
  if (!st.ok()) return st;
  return seq;
}

void Wal::CommitterLoop(size_t index) {
  for (;;) {
    std::shared_ptr<SegmentFile> file;
    uint64_t target = 0;
    Status st;
    {
      // Take everything appended so far and write it, in log order. The committer holding
      // write_mu_ is the one waiting for work; the others are syncing or waiting for it.
      std::unique_lock<std::mutex> wl(write_mu_);
      Batch batch;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !pending_.done.empty(); });
        if (pending_.done.empty()) return;  // stopping, nothing left
        std::swap(batch, pending_);
        if (!spare_bytes_.empty()) {
          pending_.bytes.swap(spare_bytes_.back());
          spare_bytes_.pop_back();
        }
        if (!spare_records_.empty()) {
          pending_.records.swap(spare_records_.back());
          spare_records_.pop_back();
        }
        st = failed_;  // appended before a failure: not written after it
      }
      if (st.ok() && file_bytes_ >= options_.segment_bytes) {
        // Everything in the old segment becomes durable before the new one is written, so a
        // sync of the new segment covers every earlier position.
        if (options_.sync && ::fdatasync(file_->sync_fds[index]) != 0) {
          st = Error(ErrorCode::kIoError, std::string("syncing WAL segment: ") + std::strerror(errno));
        }
        if (st.ok()) Complete(written_pos_, Status::OK());
        if (st.ok()) st = OpenNewSegment(batch.records.front().seq);
      }
      if (st.ok()) st = WriteAll(file_->fd, batch.bytes.data(), batch.bytes.size());
      size_t n = batch.bytes.size();
      batch.bytes.clear();  // written: the buffer goes back to pending_ (see spare_bytes_)
      {
        std::lock_guard<std::mutex> l(mu_);
        if (st.ok()) {
          segments_.back().bytes += n;
          disk_bytes_ += n;
        }
        if (batch.bytes.capacity() <= kMaxSpareBytes && spare_bytes_.size() < MaxSpares()) {
          spare_bytes_.push_back(std::move(batch.bytes));
        }
      }
      if (st.ok()) {
        file_bytes_ += n;
        written_pos_ += n;
      }
      target = written_pos_;
      file = file_;
      {
        std::lock_guard<std::mutex> cl(complete_mu_);
        written_.push_back({target, std::move(batch)});
      }
      if (!st.ok()) {
        Complete(0, st);
        continue;
      }
    }
    // The sync runs outside write_mu_: the next batch is written (and its sync started) by
    // another committer meanwhile.
    int64_t t0 = SteadyNs();
    if (options_.sync && ::fdatasync(file->sync_fds[index]) != 0) {
      st = Error(ErrorCode::kIoError, std::string("syncing WAL segment: ") + std::strerror(errno));
    }
    if (options_.sync_seconds) options_.sync_seconds->Observe(double(SteadyNs() - t0) / 1e9);
    Complete(target, st);
  }
}

void Wal::Complete(uint64_t durable, const Status& error) {
  std::deque<Written> done;
  std::unique_lock<std::mutex> cl(complete_mu_);
  if (!error.ok()) {
    // What reached the disk is unknown: stop accepting until a restart recovers the log (a
    // torn tail is then truncated; nothing unacknowledged is replayed as acknowledged).
    std::lock_guard<std::mutex> l(mu_);
    if (failed_.ok()) {
      TLOG_ERROR("wal", "{}: {}; the stream refuses appends until restarted", dir_,
                 error.ToString());
      failed_ = Error(ErrorCode::kFirehoseServiceUnavailable,
                      "the delivery stream's write-ahead log failed: " + error.message());
    }
    done.swap(written_);
  } else {
    durable_pos_ = std::max(durable_pos_, durable);
    while (!written_.empty() && written_.front().end <= durable_pos_) {
      done.push_back(std::move(written_.front()));
      written_.pop_front();
    }
  }
  if (done.empty()) return;
  std::lock_guard<std::mutex> callbacks(callback_mu_);
  cl.unlock();
  Status reply = error.ok() ? error : Error(ErrorCode::kFirehoseServiceUnavailable, error.message());
  if (options_.commit_seconds) {
    int64_t now = SteadyNs();
    for (const Written& w : done) {
      for (int64_t t : w.batch.appended_ns) options_.commit_seconds->Observe(double(now - t) / 1e9);
    }
  }
  for (Written& w : done) {
    // The consumer sees the records before their appenders are acknowledged, so that a flush
    // requested after an acknowledgement always includes them.
    if (reply.ok() && on_durable_) on_durable_(std::move(w.batch.records));
    for (size_t i = 0; i < w.batch.done.size(); ++i) w.batch.done[i](reply, w.batch.first_seqs[i]);
  }
  // The consumer took the records' contents; their vectors go back to pending_.
  for (Written& w : done) w.batch.records.clear();
  std::lock_guard<std::mutex> l(mu_);
  for (Written& w : done) {
    if (spare_records_.size() >= MaxSpares()) break;
    if (w.batch.records.capacity() * sizeof(WalRecord) <= kMaxSpareBytes) {
      spare_records_.push_back(std::move(w.batch.records));
    }
  }
}

Status Wal::Checkpoint(uint64_t delivered_through, const std::string& state) {
  std::lock_guard<std::mutex> cl(checkpoint_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    delivered_through = std::max(delivered_through, delivered_);
  }
  RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/checkpoint",
                                  std::to_string(delivered_through) + "\n" + state));
  {
    std::lock_guard<std::mutex> l(mu_);
    delivered_ = delivered_through;
    state_ = state;
  }
  DeleteDeliveredSegments();
  return Status::OK();
}

void Wal::DeleteDeliveredSegments() {
  size_t n = 0;
  uint64_t last_seq = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Segment i holds seqs [first_i, first_{i+1}); the last one is the active segment.
    while (n + 1 < segments_.size() && segments_[n + 1].first_seq - 1 <= delivered_) {
      last_seq = segments_[n + 1].first_seq - 1;
      ++n;
    }
  }
  if (n == 0) return;
  if (hooks_.before_delete) {
    Status st = hooks_.before_delete(last_seq);
    if (!st.ok()) {
      TLOG_WARN("wal", "{}: delivered segments kept for now: {}", dir_, st.ToString());
      return;
    }
  }
  // Only Checkpoint (serialised by checkpoint_mu_) and Open delete segments, so the first `n`
  // are still the ones counted above.
  std::vector<std::string> doomed;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t i = 0; i < n; ++i) {
      doomed.push_back(segments_.front().path);
      disk_bytes_ -= segments_.front().bytes;
      segments_.pop_front();
    }
  }
  for (const auto& p : doomed) {
    std::string spare;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (spare_files_.size() < size_t(std::max(0, options_.recycled_segments)) &&
          disk_bytes_ + (spare_files_.size() + 1) * options_.segment_bytes <=
              options_.quota_bytes) {
        spare = dir_ + "/" + kSparePrefix + std::to_string(spare_counter_++);
      }
    }
    if (!spare.empty() && ::rename(p.c_str(), spare.c_str()) == 0) {
      std::lock_guard<std::mutex> l(mu_);
      spare_files_.emplace_back(std::move(spare), SteadyNs());
      continue;
    }
    std::error_code ec;
    fs::remove(p, ec);
    if (ec) TLOG_WARN("wal", "removing delivered segment {}: {}", p, ec.message());
  }
}

std::string Wal::TakeSpareFile(std::vector<std::string>* stale) {
  // The newest spare (the likeliest to be cached), unless it is too old to reuse; the spares
  // that are too old go to `stale`, for deletion.
  std::string reuse;
  std::lock_guard<std::mutex> l(mu_);
  const int64_t now = SteadyNs();
  while (!spare_files_.empty() && now - spare_files_.front().second > kSpareMaxAgeNs) {
    stale->push_back(std::move(spare_files_.front().first));
    spare_files_.pop_front();
  }
  if (!spare_files_.empty()) {
    reuse = std::move(spare_files_.back().first);
    spare_files_.pop_back();
  }
  return reuse;
}

uint64_t Wal::delivered_through() const {
  std::lock_guard<std::mutex> l(mu_);
  return delivered_;
}
std::string Wal::checkpoint_state() const {
  std::lock_guard<std::mutex> l(mu_);
  return state_;
}
uint64_t Wal::next_seq() const {
  std::lock_guard<std::mutex> l(mu_);
  return next_seq_;
}
uint64_t Wal::disk_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return disk_bytes_;
}

Status Wal::Destroy(std::unique_ptr<Wal> wal) {
  std::string dir = wal->dir_;
  wal.reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return Error(ErrorCode::kIoError, "removing " + dir + ": " + ec.message());
  return Status::OK();
}

}  // namespace tarn::streams
