#include "streams/wal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>

#include "core/data_dir.h"
#include "core/log.h"

namespace tarn::streams {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'T', 'A', 'R', 'N', 'W', 'A', 'L', '1'};
constexpr size_t kRecordHeader = 8;   // length + crc
constexpr size_t kBodyHeader = 16;    // seq + arrival time
constexpr uint32_t kMaxBody = 16u << 20;

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

void EncodeRecord(const WalRecord& r, std::string* out) {
  std::string body;
  body.reserve(kBodyHeader + r.data.size());
  PutU64(&body, r.seq);
  PutU64(&body, uint64_t(r.arrival_micros));
  body.append(r.data);
  PutU32(out, uint32_t(body.size()));
  PutU32(out, WalCrc(body));
  out->append(body);
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

Wal::Wal(std::string dir, WalOptions options, DurableFn on_durable)
    : dir_(std::move(dir)), options_(options), on_durable_(std::move(on_durable)) {}

Result<std::unique_ptr<Wal>> Wal::Open(const std::string& dir, const WalOptions& options,
                                       const std::function<void(WalRecord&&)>& replay,
                                       DurableFn on_durable) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error(ErrorCode::kIoError, "creating " + dir + ": " + ec.message());
  std::unique_ptr<Wal> wal(new Wal(dir, options, std::move(on_durable)));
  RETURN_IF_ERROR(wal->Recover(replay));
  RETURN_IF_ERROR(wal->OpenNewSegment(wal->next_seq_));
  wal->writer_ = std::thread([w = wal.get()] { w->WriterLoop(); });
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
    if (name.size() != 24 || name.substr(20) != ".wal") continue;
    files.emplace_back(std::strtoull(name.substr(0, 20).c_str(), nullptr, 10), e.path().string());
  }
  std::sort(files.begin(), files.end());
  uint64_t last_seq = 0;
  for (const auto& [first, path] : files) {
    std::string buf;
    RETURN_IF_ERROR(ReadWhole(path, &buf));
    if (buf.size() < sizeof(kMagic) || std::memcmp(buf.data(), kMagic, sizeof(kMagic)) != 0) {
      TLOG_WARN("wal", "{}: segment without a valid header (torn at creation); removed", path);
      std::error_code rm;
      fs::remove(path, rm);
      continue;
    }
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
        if (len < kBodyHeader || len > kMaxBody || buf.size() - pos - kRecordHeader < len ||
            WalCrc(std::string_view(buf.data() + pos + kRecordHeader, len)) != crc) {
          bad = true;
        }
      }
      WalRecord r;
      if (!bad) {
        const char* b = buf.data() + pos + kRecordHeader;
        r.seq = GetU64(b);
        r.arrival_micros = int64_t(GetU64(b + 8));
        if ((expect && r.seq != expect) || r.seq <= last_seq) bad = true;
        if (!bad) r.data.assign(b + kBodyHeader, len - kBodyHeader);
      }
      if (bad) {
        TLOG_WARN("wal", "{}: damaged record at offset {} (torn or corrupt tail); truncating "
                  "{} bytes", path, pos, buf.size() - pos);
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
  next_seq_ = std::max(last_seq, delivered_) + 1;
  // Segments left entirely behind the checkpoint (a crash between checkpoint and delete).
  DeleteDeliveredSegments();
  return Status::OK();
}

Status Wal::OpenNewSegment(uint64_t first_seq) {
  std::string path = dir_ + "/" + SegmentName(first_seq);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error(ErrorCode::kIoError, "creating " + path + ": " + std::strerror(errno));
  Status st = WriteAll(fd, kMagic, sizeof(kMagic));
  if (st.ok() && options_.sync && ::fdatasync(fd) != 0) {
    st = Error(ErrorCode::kIoError, "syncing " + path + ": " + std::strerror(errno));
  }
  if (st.ok() && options_.sync) st = SyncDir(dir_);
  if (!st.ok()) {
    ::close(fd);
    return st;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  fd_bytes_ = sizeof(kMagic);
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
  if (writer_.joinable()) writer_.join();
  if (fd_ >= 0) ::close(fd_);
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
  for (const auto& r : records) add += kRecordHeader + kBodyHeader + r.data.size();
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

void Wal::WriterLoop() {
  for (;;) {
    Batch batch;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !pending_.done.empty(); });
      if (pending_.done.empty()) return;  // stopping, nothing left
      std::swap(batch, pending_);
    }
    Status st;
    if (fd_bytes_ >= options_.segment_bytes) st = OpenNewSegment(batch.records.front().seq);
    if (st.ok()) st = WriteAll(fd_, batch.bytes.data(), batch.bytes.size());
    if (st.ok() && options_.sync && ::fdatasync(fd_) != 0) {
      st = Error(ErrorCode::kIoError, std::string("syncing WAL segment: ") + std::strerror(errno));
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      if (st.ok()) {
        fd_bytes_ += batch.bytes.size();
        segments_.back().bytes += batch.bytes.size();
        disk_bytes_ += batch.bytes.size();
      } else {
        // What reached the disk is unknown: stop accepting until a restart recovers the log
        // (the torn tail is then truncated and nothing unacknowledged is replayed as acked).
        TLOG_ERROR("wal", "{}: {}; the stream refuses appends until restarted", dir_,
                   st.ToString());
        failed_ = Error(ErrorCode::kFirehoseServiceUnavailable,
                        "the delivery stream's write-ahead log failed: " + st.message());
      }
    }
    // The consumer sees the records before their appenders are acknowledged, so that a flush
    // requested after an acknowledgement always includes them.
    if (st.ok() && on_durable_) on_durable_(std::move(batch.records));
    Status reply = st.ok() ? st : Error(ErrorCode::kFirehoseServiceUnavailable, st.message());
    for (size_t i = 0; i < batch.done.size(); ++i) batch.done[i](reply, batch.first_seqs[i]);
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
  std::vector<std::string> doomed;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Segment i holds seqs [first_i, first_{i+1}); the last one is the active segment.
    while (segments_.size() > 1 && segments_[1].first_seq - 1 <= delivered_) {
      doomed.push_back(segments_.front().path);
      disk_bytes_ -= segments_.front().bytes;
      segments_.pop_front();
    }
  }
  for (const auto& p : doomed) {
    std::error_code ec;
    fs::remove(p, ec);
    if (ec) TLOG_WARN("wal", "removing delivered segment {}: {}", p, ec.message());
  }
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
