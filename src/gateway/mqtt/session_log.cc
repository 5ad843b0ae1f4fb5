// Session log file format (all integers big-endian):
//   file   := "TARNMQL1" record*
//   record := u32 length | u32 crc32c(body) | body       (length = body size)
//   body   := u8 type | fields
// A generation file starts with a snapshot ended by a kSnapshotEnd record; later records are
// changes. Replay applies records in order; the first damaged record ends the file.
#include "gateway/mqtt/session_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/log.h"
#include "ops/metrics.h"

namespace tarn::gateway::mqtt {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[] = "TARNMQL1";
constexpr size_t kMagicLen = 8;
constexpr uint32_t kMaxRecord = 512u << 20;

enum RecType : uint8_t {
  kSessionPut = 1, kSessionDel = 2, kSubPut = 3, kSubDel = 4, kMsgPut = 5, kMsgDel = 6,
  kRetainPut = 7, kRetainDel = 8, kSnapshotEnd = 9, kQos2InPut = 10, kQos2InDel = 11,
};

uint32_t Crc32cTableEntry(uint32_t i) {
  uint32_t c = i;
  for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  return c;
}

void PutU8(std::string* o, uint8_t v) { o->push_back(char(v)); }
void PutU32(std::string* o, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o->push_back(char((v >> s) & 0xff));
}
void PutU64(std::string* o, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) o->push_back(char((v >> s) & 0xff));
}
void PutBytes(std::string* o, std::string_view s) {
  PutU32(o, uint32_t(s.size()));
  o->append(s);
}

class In {
 public:
  explicit In(std::string_view s) : s_(s) {}
  bool U8(uint8_t* v) {
    if (s_.size() < 1) return false;
    *v = uint8_t(s_[0]);
    s_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    if (s_.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v = (*v << 8) | uint8_t(s_[i]);
    s_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (s_.size() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v = (*v << 8) | uint8_t(s_[i]);
    s_.remove_prefix(8);
    return true;
  }
  bool Bytes(std::string* v) {
    uint32_t n;
    if (!U32(&n) || s_.size() < n) return false;
    v->assign(s_.data(), n);
    s_.remove_prefix(n);
    return true;
  }
  bool empty() const { return s_.empty(); }

 private:
  std::string_view s_;
};

void PutMessage(std::string* o, const Message& m) {
  PutBytes(o, m.topic);
  PutBytes(o, m.payload);
  PutU8(o, m.qos);
  PutU8(o, m.retain ? 1 : 0);
  PutU64(o, uint64_t(m.expiry_ms));
  PutBytes(o, m.origin);
  std::string props;
  AppendProperties(&props, m.props);
  PutBytes(o, props);
}

bool GetMessage(In* in, Message* m) {
  uint8_t retain;
  uint64_t expiry;
  std::string props;
  if (!in->Bytes(&m->topic) || !in->Bytes(&m->payload) || !in->U8(&m->qos) || !in->U8(&retain) ||
      !in->U64(&expiry) || !in->Bytes(&m->origin) || !in->Bytes(&props)) {
    return false;
  }
  m->retain = retain;
  m->expiry_ms = int64_t(expiry);
  std::string_view pv(props);
  return ParseProperties(&pv, &m->props, AllPropertiesMask()) == 0 && pv.empty();
}

std::string FrameRecord(const std::string& body) {
  std::string out;
  out.reserve(body.size() + 8);
  PutU32(&out, uint32_t(body.size()));
  PutU32(&out, Crc32c(body));
  out += body;
  return out;
}

// Applies one record body to the state. False = not understood (treated as damage).
bool Apply(std::string_view body, RecoveredState* st) {
  In in(body);
  uint8_t type;
  if (!in.U8(&type)) return false;
  std::string cid;
  switch (type) {
    case kSessionPut: {
      uint32_t exp;
      if (!in.Bytes(&cid) || !in.U32(&exp)) return false;
      auto& s = st->sessions[cid];
      s.expiry_interval = exp;
      if (!in.empty() && (!in.Bytes(&s.identity) || !in.Bytes(&s.username))) return false;
      return in.empty();
    }
    case kSessionDel:
      if (!in.Bytes(&cid)) return false;
      st->sessions.erase(cid);
      return in.empty();
    case kSubPut: {
      Subscription s;
      uint8_t flags;
      if (!in.Bytes(&cid) || !in.Bytes(&s.filter) || !in.U8(&s.qos) || !in.U8(&flags) ||
          !in.U8(&s.retain_handling) || !in.U32(&s.subscription_id)) {
        return false;
      }
      s.no_local = flags & 1;
      s.retain_as_published = flags & 2;
      st->sessions[cid].subscriptions[s.filter] = s;
      return in.empty();
    }
    case kSubDel: {
      std::string f;
      if (!in.Bytes(&cid) || !in.Bytes(&f)) return false;
      auto it = st->sessions.find(cid);
      if (it != st->sessions.end()) it->second.subscriptions.erase(f);
      return in.empty();
    }
    case kMsgPut: {
      StoredMessage m;
      uint8_t retain;
      uint32_t nids;
      if (!in.Bytes(&cid) || !in.U64(&m.seq) || !in.U8(&m.qos) || !in.U8(&retain) || !in.U32(&nids)) {
        return false;
      }
      if (nids > 1024) return false;
      for (uint32_t i = 0; i < nids; ++i) {
        uint32_t id;
        if (!in.U32(&id)) return false;
        m.subscription_ids.push_back(id);
      }
      m.retain = retain;
      if (!GetMessage(&in, &m.msg)) return false;
      auto& s = st->sessions[cid];
      s.next_seq = std::max(s.next_seq, m.seq + 1);
      s.messages[m.seq] = std::move(m);
      return in.empty();
    }
    case kMsgDel: {
      uint64_t seq;
      if (!in.Bytes(&cid) || !in.U64(&seq)) return false;
      auto it = st->sessions.find(cid);
      if (it != st->sessions.end()) it->second.messages.erase(seq);
      return in.empty();
    }
    case kRetainPut: {
      Message m;
      if (!GetMessage(&in, &m)) return false;
      std::string topic = m.topic;
      st->retained[topic] = std::move(m);
      return in.empty();
    }
    case kRetainDel: {
      std::string topic;
      if (!in.Bytes(&topic)) return false;
      st->retained.erase(topic);
      return in.empty();
    }
    case kQos2InPut:
    case kQos2InDel: {
      uint32_t id;
      if (!in.Bytes(&cid) || !in.U32(&id) || id == 0 || id > 0xFFFF) return false;
      if (type == kQos2InPut) {
        st->sessions[cid].qos2_received.insert(uint16_t(id));
      } else {
        auto it = st->sessions.find(cid);
        if (it != st->sessions.end()) it->second.qos2_received.erase(uint16_t(id));
      }
      return in.empty();
    }
    case kSnapshotEnd:
      return in.empty();
    default:
      return false;
  }
}

std::string GenName(uint64_t gen) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "sessions-%016llu.log", static_cast<unsigned long long>(gen));
  return buf;
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Error(ErrorCode::kIoError, "cannot open " + dir);
  ::fsync(fd);
  ::close(fd);
  return Status::OK();
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(size_t(n));
  }
  return true;
}

}  // namespace

uint32_t Crc32c(std::string_view data) {
  static const auto* table = [] {
    auto* t = new uint32_t[256];
    for (uint32_t i = 0; i < 256; ++i) t[i] = Crc32cTableEntry(i);
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char ch : data) c = table[(c ^ ch) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

namespace logrec {
std::string SessionPut(const std::string& client_id, uint32_t expiry_interval,
                       const std::string& identity, const std::string& username) {
  std::string b;
  PutU8(&b, kSessionPut);
  PutBytes(&b, client_id);
  PutU32(&b, expiry_interval);
  PutBytes(&b, identity);
  PutBytes(&b, username);
  return b;
}
std::string SessionDel(const std::string& client_id) {
  std::string b;
  PutU8(&b, kSessionDel);
  PutBytes(&b, client_id);
  return b;
}
std::string SubPut(const std::string& client_id, const Subscription& s) {
  std::string b;
  PutU8(&b, kSubPut);
  PutBytes(&b, client_id);
  PutBytes(&b, s.filter);
  PutU8(&b, s.qos);
  PutU8(&b, uint8_t((s.no_local ? 1 : 0) | (s.retain_as_published ? 2 : 0)));
  PutU8(&b, s.retain_handling);
  PutU32(&b, s.subscription_id);
  return b;
}
std::string SubDel(const std::string& client_id, const std::string& filter) {
  std::string b;
  PutU8(&b, kSubDel);
  PutBytes(&b, client_id);
  PutBytes(&b, filter);
  return b;
}
std::string MsgPut(const std::string& client_id, const StoredMessage& m) {
  std::string b;
  PutU8(&b, kMsgPut);
  PutBytes(&b, client_id);
  PutU64(&b, m.seq);
  PutU8(&b, m.qos);
  PutU8(&b, m.retain ? 1 : 0);
  PutU32(&b, uint32_t(m.subscription_ids.size()));
  for (uint32_t id : m.subscription_ids) PutU32(&b, id);
  PutMessage(&b, m.msg);
  return b;
}
std::string MsgDel(const std::string& client_id, uint64_t seq) {
  std::string b;
  PutU8(&b, kMsgDel);
  PutBytes(&b, client_id);
  PutU64(&b, seq);
  return b;
}
std::string RetainPut(const Message& m) {
  std::string b;
  PutU8(&b, kRetainPut);
  PutMessage(&b, m);
  return b;
}
std::string Qos2InPut(const std::string& client_id, uint16_t packet_id) {
  std::string b;
  PutU8(&b, kQos2InPut);
  PutBytes(&b, client_id);
  PutU32(&b, packet_id);
  return b;
}
std::string Qos2InDel(const std::string& client_id, uint16_t packet_id) {
  std::string b;
  PutU8(&b, kQos2InDel);
  PutBytes(&b, client_id);
  PutU32(&b, packet_id);
  return b;
}
std::string RetainDel(const std::string& topic) {
  std::string b;
  PutU8(&b, kRetainDel);
  PutBytes(&b, topic);
  return b;
}
}  // namespace logrec

struct SessionLog::Impl {
  std::string dir;
  uint64_t gen = 0;
  int fd = -1;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::condition_variable durable_cv;
  struct Chunk {
    bool rotate = false;
    std::string data;
    uint64_t last_lsn = 0;
  };
  std::deque<Chunk> chunks;                                 // guarded by mu
  uint64_t next_lsn = 1;                                    // guarded by mu
  uint64_t durable = 0;                                     // guarded by mu
  uint64_t notified = 0;  // durable and its WhenDurable callbacks have run; guarded by mu
  std::multimap<uint64_t, std::function<void()>> waiters;   // guarded by mu
  uint64_t gen_bytes = 0;                                   // guarded by mu
  uint64_t snap_bytes = 0;                                  // guarded by mu
  bool stop = false;                                        // guarded by mu
  bool closed = false;
  std::thread writer;

  ops::CounterMetric* fsyncs = nullptr;
  ops::CounterMetric* write_errors = nullptr;

  void WriterLoop() {
    pthread_setname_np(pthread_self(), "mqtt-log");
    for (;;) {
      std::deque<Chunk> work;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || !chunks.empty(); });
        if (chunks.empty() && stop) return;
        work.swap(chunks);
      }
      uint64_t last = 0;
      std::vector<std::string> old_files;
      bool ok = true;
      for (auto& c : work) {
        if (c.rotate) {
          if (fd >= 0) ::fdatasync(fd);
          std::string path = dir + "/" + GenName(gen + 1);
          int nfd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
          if (nfd < 0) {
            TLOG_ERROR("mqtt", "session log: cannot create {}: {}", path, std::strerror(errno));
            ok = false;
            continue;  // keep appending to the current generation
          }
          old_files.push_back(dir + "/" + GenName(gen));
          if (fd >= 0) ::close(fd);
          fd = nfd;
          ++gen;
          ok = WriteAll(fd, std::string_view(kMagic, kMagicLen)) && ok;
        }
        if (!WriteAll(fd, c.data)) ok = false;
        last = std::max(last, c.last_lsn);
      }
      if (::fdatasync(fd) != 0) ok = false;
      fsyncs->Inc();
      if (!ok) {
        write_errors->Inc();
        TLOG_ERROR("mqtt", "session log: write or sync failed in {}: {}", dir, std::strerror(errno));
      }
      if (!old_files.empty()) {
        SyncDir(dir).IgnoreError();
        for (const auto& f : old_files) {
          std::error_code ec;
          fs::remove(f, ec);
        }
        SyncDir(dir).IgnoreError();
      }
      std::vector<std::function<void()>> ready;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (last > durable) durable = last;
        auto end = waiters.upper_bound(durable);
        for (auto it = waiters.begin(); it != end; ++it) ready.push_back(std::move(it->second));
        waiters.erase(waiters.begin(), end);
      }
      for (auto& fn : ready) fn();
      {
        std::lock_guard<std::mutex> lock(mu);
        if (last > notified) notified = last;
      }
      durable_cv.notify_all();
    }
  }
};

SessionLog::SessionLog() : impl_(std::make_unique<Impl>()) {}
SessionLog::~SessionLog() { Close(); }

Result<std::unique_ptr<SessionLog>> SessionLog::Open(const std::string& dir, RecoveredState* state) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error(ErrorCode::kIoError, "cannot create " + dir + ": " + ec.message());
  std::vector<uint64_t> gens;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() == 29 && name.rfind("sessions-", 0) == 0 && name.substr(25) == ".log") {
      gens.push_back(std::stoull(name.substr(9, 16)));
    }
  }
  std::sort(gens.rbegin(), gens.rend());
  std::unique_ptr<SessionLog> log(new SessionLog());
  Impl& m = *log->impl_;
  m.dir = dir;
  m.fsyncs = &ops::Metrics().Counter("tarn_mqtt_log_fsyncs_total", "Group commits of the MQTT session log");
  m.write_errors = &ops::Metrics().Counter("tarn_mqtt_log_write_errors_total",
                                           "Failed writes or syncs of the MQTT session log");
  uint64_t chosen = 0;
  std::vector<std::string> warnings;
  for (uint64_t g : gens) {
    std::string path = dir + "/" + GenName(g);
    std::string data;
    {
      FILE* f = std::fopen(path.c_str(), "rb");
      if (!f) continue;
      char buf[1 << 16];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.append(buf, n);
      std::fclose(f);
    }
    RecoveredState st;
    size_t off = 0;
    bool snapshot_done = false;
    std::string problem;
    if (data.size() < kMagicLen || data.compare(0, kMagicLen, kMagic) != 0) {
      problem = "bad file header";
    } else {
      off = kMagicLen;
      while (off < data.size()) {
        if (data.size() - off < 8) { problem = "torn record header"; break; }
        In hdr(std::string_view(data).substr(off, 8));
        uint32_t len, crc;
        hdr.U32(&len);
        hdr.U32(&crc);
        if (len == 0 || len > kMaxRecord || data.size() - off - 8 < len) { problem = "torn record"; break; }
        std::string_view body(data.data() + off + 8, len);
        if (Crc32c(body) != crc) { problem = "checksum mismatch"; break; }
        if (!Apply(body, &st)) { problem = "undecodable record"; break; }
        if (uint8_t(body[0]) == kSnapshotEnd) snapshot_done = true;
        ++st.records;
        off += 8 + len;
      }
    }
    if (!snapshot_done) {
      // A generation whose snapshot never completed: the previous generation is still whole.
      std::string aside = path + ".incomplete-" + std::to_string(Clock::Real()->NowSeconds());
      fs::rename(path, aside, ec);
      std::string w = "session log " + path + " has no complete snapshot (" +
                      (problem.empty() ? "interrupted rotation" : problem) + "); set aside as " + aside;
      TLOG_WARN("mqtt", "{}", w);
      warnings.push_back(w);
      continue;
    }
    if (!problem.empty()) {
      std::string aside = path + ".corrupt-" + std::to_string(Clock::Real()->NowSeconds());
      FILE* f = std::fopen(aside.c_str(), "wb");
      if (f) {
        std::fwrite(data.data() + off, 1, data.size() - off, f);
        std::fclose(f);
      }
      if (::truncate(path.c_str(), off_t(off)) != 0) {
        return Error(ErrorCode::kIoError, "cannot truncate damaged session log " + path);
      }
      std::string w = "session log " + path + ": " + problem + " at byte " + std::to_string(off) +
                      "; " + std::to_string(data.size() - off) + " damaged bytes set aside in " + aside;
      TLOG_WARN("mqtt", "{}", w);
      warnings.push_back(w);
    }
    *state = std::move(st);
    chosen = g;
    m.gen_bytes = off;
    break;
  }
  if (chosen == 0) {
    // A fresh generation with an empty snapshot.
    chosen = gens.empty() ? 1 : gens.front() + 1;
    std::string path = dir + "/" + GenName(chosen);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Error(ErrorCode::kIoError, "cannot create " + path);
    std::string body(1, char(kSnapshotEnd));
    bool ok = WriteAll(fd, std::string_view(kMagic, kMagicLen)) && WriteAll(fd, FrameRecord(body));
    ::fsync(fd);
    ::close(fd);
    if (!ok) return Error(ErrorCode::kIoError, "cannot write " + path);
    RETURN_IF_ERROR(SyncDir(dir));
  }
  state->warnings = std::move(warnings);
  // Older generations are superseded by the chosen one.
  for (uint64_t g : gens) {
    if (g < chosen) fs::remove(dir + "/" + GenName(g), ec);
  }
  m.gen = chosen;
  std::string path = dir + "/" + GenName(chosen);
  m.fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (m.fd < 0) return Error(ErrorCode::kIoError, "cannot open " + path);
  m.writer = std::thread([impl = log->impl_.get()] { impl->WriterLoop(); });
  return log;
}

uint64_t SessionLog::Append(std::string record) {
  Impl& m = *impl_;
  std::string framed = FrameRecord(record);
  std::lock_guard<std::mutex> lock(m.mu);
  uint64_t lsn = m.next_lsn++;
  if (m.chunks.empty() || m.chunks.back().rotate) m.chunks.emplace_back();
  auto& c = m.chunks.back();
  m.gen_bytes += framed.size();
  c.data += framed;
  c.last_lsn = lsn;
  m.cv.notify_one();
  return lsn;
}

void SessionLog::WhenDurable(uint64_t lsn, std::function<void()> fn) {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (lsn > m.durable) {
      m.waiters.emplace(lsn, std::move(fn));
      return;
    }
  }
  fn();
}

uint64_t SessionLog::durable_lsn() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->durable;
}

uint64_t SessionLog::last_lsn() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->next_lsn - 1;
}

void SessionLog::Rotate(std::vector<std::string> snapshot) {
  Impl& m = *impl_;
  Impl::Chunk c;
  c.rotate = true;
  for (auto& r : snapshot) c.data += FrameRecord(r);
  c.data += FrameRecord(std::string(1, char(kSnapshotEnd)));
  std::lock_guard<std::mutex> lock(m.mu);
  c.last_lsn = m.next_lsn++;
  m.gen_bytes = c.data.size();
  m.snap_bytes = c.data.size();
  m.chunks.push_back(std::move(c));
  m.cv.notify_one();
}

uint64_t SessionLog::generation_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->gen_bytes;
}

uint64_t SessionLog::snapshot_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->snap_bytes;
}

void SessionLog::Sync() {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mu);
  uint64_t target = m.next_lsn - 1;
  m.durable_cv.wait(lock, [&] { return m.notified >= target || m.stop; });
}

void SessionLog::Close() {
  Impl& m = *impl_;
  if (m.closed) return;
  m.closed = true;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.stop = true;
  }
  m.cv.notify_all();
  if (m.writer.joinable()) m.writer.join();
  if (m.fd >= 0) {
    ::fdatasync(m.fd);
    ::close(m.fd);
    m.fd = -1;
  }
}

}  // namespace tarn::gateway::mqtt
