#include "security/audit/audit.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <variant>
#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "core/data_dir.h"
#include "core/log.h"
#include "core/strings.h"
#include "ops/metrics.h"

namespace tarn::security::audit {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxBatch = 5000;  // records per log file before an early flush
constexpr char kDigestKeyFile[] = "audit-digest.key";

std::string EventSource(const std::string& service) {
  std::string s = service.empty() ? "tarn" : service;
  if (s == "iotdata") s = "iot-data";
  return s + ".amazonaws.com";
}

bool ReadOnlyAction(const std::string& a) {
  for (const char* p : {"Get", "List", "Head", "Describe", "Lookup", "Search", "Select"}) {
    if (StartsWith(a, p)) return true;
  }
  return false;
}

// S3 object-level operations are CloudTrail data events; everything else management events.
bool DataEvent(const std::string& service, const std::string& action) {
  if (service != "s3") return false;
  static const char* kBucketLevel[] = {"ListBuckets", "CreateBucket", "DeleteBucket", "HeadBucket",
                                       "GetBucketLocation", "PutBucketPolicy", "GetBucketPolicy",
                                       "DeleteBucketPolicy", "PutBucketVersioning", "GetBucketVersioning",
                                       "PutBucketTagging", "GetBucketTagging", "DeleteBucketTagging"};
  for (const char* a : kBucketLevel) {
    if (action == a) return false;
  }
  return true;
}

std::string DatePath(int64_t seconds) {
  std::string iso = FormatIso8601(seconds);  // 2026-11-25T12:00:00Z
  return iso.substr(0, 4) + "/" + iso.substr(5, 2) + "/" + iso.substr(8, 2);
}

std::string Compact(int64_t seconds, bool with_seconds) {
  std::string iso = FormatIso8601(seconds);
  std::string out = iso.substr(0, 4) + iso.substr(5, 2) + iso.substr(8, 2) + "T" + iso.substr(11, 2) +
                    iso.substr(14, 2);
  if (with_seconds) out += iso.substr(17, 2);
  return out + "Z";
}

Result<std::string> ReadObject(storage::ObjectStore* store, const std::string& bucket, const std::string& key) {
  ASSIGN_OR_RETURN(auto reader, store->GetObject(bucket, key, {}));
  std::string out;
  char buf[64 * 1024];
  while (true) {
    ASSIGN_OR_RETURN(size_t n, reader->Read(buf, sizeof(buf)));
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

Result<std::string> LoadOrCreateKey(const std::string& keys_dir) {
  std::string path = keys_dir + "/" + kDigestKeyFile;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    ASSIGN_OR_RETURN(std::string k, ReadFile(path));
    if (k.size() != 32) return Error(ErrorCode::kFailedPrecondition, path + " is not a 32-byte key");
    return k;
  }
  std::string k = RandomBytes(32);
  RETURN_IF_ERROR(WriteFileAtomic(path, k, 0600));
  return k;
}

// CloudTrail's digest string to sign, with HMAC-SHA256 in place of RSA:
//   digestEndTime \n bucket/key \n hex(SHA-256(digest object bytes)) \n previousSignature
std::string DigestStringToSign(const std::string& end_time, const std::string& bucket, const std::string& key,
                               const std::string& hash_hex, const std::string& previous_signature) {
  return end_time + "\n" + bucket + "/" + key + "\n" + hash_hex + "\n" + previous_signature;
}

}  // namespace

Result<std::string> Gzip(const std::string& data) {
  z_stream zs{};
  // Level 1: CloudTrail records repeat themselves, so the fastest level still shrinks a log file
  // several times, at a fraction of the default level's CPU per audited call.
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Error(ErrorCode::kInternal, "deflateInit2 failed");
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  // Output in chunks: sizing the string to deflateBound() would write zeros over the whole
  // input's size for an output several times smaller.
  std::string out;
  char buf[64 * 1024];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = deflate(&zs, Z_FINISH);
    out.append(buf, sizeof(buf) - zs.avail_out);
  }
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return Error(ErrorCode::kInternal, "gzip failed");
  return out;
}

Result<std::string> Gunzip(const std::string& data) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return Error(ErrorCode::kInternal, "inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[64 * 1024];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return Error(ErrorCode::kInvalidArgument, "not a valid gzip stream");
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return Error(ErrorCode::kInvalidArgument, "truncated gzip stream");
    }
  }
  inflateEnd(&zs);
  return out;
}

// --- AuditTrail --------------------------------------------------------------------------

namespace {

constexpr size_t kWakeEvents = 2000;  // queued events that wake the writer before its interval

// An API call as captured on the request's thread: plain copies (or moves) of what its record
// needs, formatted later by the writer.
struct AuditedCall {
  std::string service, action, resource, request_id, region;
  Identity identity;
  std::map<std::string, std::string> params;
  std::string source_ip, user_agent, method;
  bool secure = false;
  int http_status = 200;
  bool failed = false;          // the call returned an error:
  std::string_view error_code;  //   its AWS code (the error registry's static storage)
  std::string error_message;
};

// A service event, or the summary of a throttle window: the window's first event and counts.
struct AuditedServiceEvent {
  ServiceEvent event;
  bool summary = false, overflow = false;
  uint64_t denied = 0;
  int64_t first_ms = 0, last_ms = 0;
  std::vector<std::string> resources;
};

// `call` is a const net::ApiCall& (copied) or a net::ApiCall&& (moved from).
template <typename Call>
void Capture(AuditedCall& c, Call&& call, const net::AuditContext& context, int http_status,
             const Status& error) {
  c.service = std::forward<Call>(call).service;
  c.action = std::forward<Call>(call).action;
  c.resource = std::forward<Call>(call).resource;
  c.request_id = std::forward<Call>(call).request_id;
  c.region = std::forward<Call>(call).region;
  c.identity = std::forward<Call>(call).identity;
  c.params = std::forward<Call>(call).audit_params;
  c.source_ip = context.remote_ip;
  c.user_agent = context.user_agent;
  if (c.action.empty()) c.method = context.method;
  c.secure = context.secure;
  c.http_status = http_status;
  if (!error.ok()) {
    c.failed = true;
    c.error_code = error.info().aws_code;
    c.error_message = error.message();
  }
}

constexpr size_t kInsertRows = 32;  // events per INSERT statement when indexing a batch

// INSERT INTO audit_events(…) VALUES(?1, … ?10), (?11, … ?20) … for `rows` events.
std::string InsertEventsSql(size_t rows) {
  std::string sql =
      "INSERT INTO audit_events(event_id, event_time_ms, event_name, event_source, username, access_key_id, "
      "read_only, resource_type, resource_name, record) VALUES";
  for (size_t r = 0; r < rows; ++r) {
    sql += r ? ",(" : "(";
    for (size_t c = 1; c <= 10; ++c) sql += (c > 1 ? ",?" : "?") + std::to_string(r * 10 + c);
    sql += ')';
  }
  return sql;
}

// RFC 4122 version 4 UUID text from 16 random bytes.
std::string Uuid(std::string_view random) {
  static const char* kHex = "0123456789abcdef";
  std::string out(36, '-');
  size_t o = 0;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++o;
    unsigned char c = static_cast<unsigned char>(random[i]);
    if (i == 6) c = static_cast<unsigned char>((c & 0x0F) | 0x40);
    if (i == 8) c = static_cast<unsigned char>((c & 0x3F) | 0x80);
    out[o++] = kHex[c >> 4];
    out[o++] = kHex[c & 15];
  }
  return out;
}

// Appends a JSON object member by member, in the order written (CloudTrail's field order).
// Keys are literals; values go through AppendJsonString (invalid UTF-8 → U+FFFD).
class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(*out) {}
  void Begin() {
    out_ += '{';
    first_ = true;
  }
  void End() {
    out_ += '}';
    first_ = false;
  }
  void Key(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += '"';
    out_ += key;
    out_ += "\":";
  }
  void Open(std::string_view key) {
    Key(key);
    Begin();
  }
  void Str(std::string_view key, std::string_view v) {
    Key(key);
    AppendJsonString(&out_, v);
  }
  void Bool(std::string_view key, bool v) {
    Key(key);
    out_ += v ? "true" : "false";
  }
  void Null(std::string_view key) {
    Key(key);
    out_ += "null";
  }
  void Raw(std::string_view key, std::string_view json_text) {
    Key(key);
    out_ += json_text;
  }
  // {"k":"v",…}, or null when empty (CloudTrail's requestParameters).
  void StringMap(std::string_view key, const std::map<std::string, std::string>& m) {
    if (m.empty()) return Null(key);
    Open(key);
    for (const auto& [k, v] : m) {
      if (!first_) out_ += ',';
      first_ = false;
      AppendJsonString(&out_, k);
      out_ += ':';
      AppendJsonString(&out_, v);
    }
    End();
  }
  // "resources":[{"type":…,"ARN":…}]
  void Resource(std::string_view type, std::string_view arn) {
    Key("resources");
    out_ += '[';
    Begin();
    Str("type", type);
    Str("ARN", arn);
    End();
    out_ += ']';
  }

 private:
  std::string& out_;
  bool first_ = true;
};

}  // namespace

struct AuditTrail::Queued {
  int64_t time_us = 0;
  std::variant<AuditedCall, AuditedServiceEvent> what;
};

AuditTrail::AuditTrail(MetaStore* meta, storage::ObjectStore* store, AuditOptions options, std::string key)
    : meta_(meta), store_(store), opt_(std::move(options)), digest_key_(std::move(key)) {
  if (!opt_.clock) opt_.clock = Clock::Real();
  last_flush_s_ = last_digest_s_ = opt_.clock->NowSeconds();
  last_throttle_ms_ = opt_.clock->NowMillis();
  if (opt_.max_queued_events == 0) opt_.max_queued_events = 1;
  auto& m = ops::Metrics();
  recorded_ = &m.Counter("tarn_audit_events_recorded_total", "Audit events recorded (queued for the trail)");
  indexed_ = &m.Counter("tarn_audit_events_indexed_total", "Audit events written to the audit index");
  backpressure_ = &m.Counter("tarn_audit_backpressure_waits_total",
                             "Calls that waited for room in the full audit queue");
  write_errors_ = &m.Counter("tarn_audit_write_errors_total",
                             "Failed writes of the audit index or log files (retried)");
}

AuditTrail::~AuditTrail() { Stop(); }

Result<std::unique_ptr<AuditTrail>> AuditTrail::Open(MetaStore* meta, storage::ObjectStore* store,
                                                     AuditOptions options) {
  RETURN_IF_ERROR(meta->Migrate("audit", {
      {1, R"sql(
        CREATE TABLE audit_events (
          seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, event_time_ms INTEGER NOT NULL,
          event_name TEXT NOT NULL, event_source TEXT NOT NULL, username TEXT NOT NULL,
          access_key_id TEXT NOT NULL, read_only INTEGER NOT NULL, resource_type TEXT NOT NULL,
          resource_name TEXT NOT NULL, record TEXT NOT NULL);
        CREATE INDEX audit_events_time ON audit_events(event_time_ms);
        CREATE INDEX audit_events_name ON audit_events(event_name);
        CREATE INDEX audit_events_user ON audit_events(username);
        CREATE TABLE audit_log_files (
          key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, oldest_ms INTEGER NOT NULL,
          newest_ms INTEGER NOT NULL, written INTEGER NOT NULL, digest_key TEXT);
        CREATE TABLE audit_digests (
          key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, signature TEXT NOT NULL, end_time TEXT NOT NULL,
          written INTEGER NOT NULL);
      )sql"},
      // log_key: the log file that holds the event; NULL while it is only in the index, so
      // that events indexed before a crash still reach a log file after the restart.
      {2, R"sql(
        ALTER TABLE audit_events ADD COLUMN log_key TEXT;
        UPDATE audit_events SET log_key = '';
        CREATE INDEX audit_events_unwritten ON audit_events(seq) WHERE log_key IS NULL;
      )sql"},
      // Events reach log files in seq order, so one number says which are written: every
      // event with seq <= audit_written.seq. It replaces log_key (no longer maintained),
      // whose partial index and per-event UPDATE cost as much as indexing the event.
      {3, R"sql(
        CREATE TABLE audit_written (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
        INSERT INTO audit_written(id, seq) VALUES(1, COALESCE(
            (SELECT MIN(seq) FROM audit_events WHERE log_key IS NULL) - 1,
            (SELECT MAX(seq) FROM audit_events), 0));
        DROP INDEX audit_events_unwritten;
      )sql"},
  }));
  ASSIGN_OR_RETURN(std::string key, LoadOrCreateKey(options.keys_dir));
  std::unique_ptr<AuditTrail> trail(new AuditTrail(meta, store, std::move(options), std::move(key)));
  RETURN_IF_ERROR(trail->RecoverUnwritten());
  return trail;
}

Status AuditTrail::RecoverUnwritten() {
  std::lock_guard<std::mutex> lock(write_mu_);
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "SELECT seq, event_time_ms, record FROM audit_events "
      "WHERE seq > (SELECT seq FROM audit_written) ORDER BY seq"));
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    batch_last_seq_ = st.ColumnInt(0);
    if (batch_.empty()) batch_oldest_ms_ = st.ColumnInt(1);
    batch_newest_ms_ = st.ColumnInt(1);
    batch_.push_back(st.ColumnText(2));
  }
  if (!batch_.empty()) {
    TLOG_INFO("audit", "{} audit events indexed before the last stop go into the next log file", batch_.size());
  }
  return Status::OK();
}

void AuditTrail::Record(const net::ApiCall& call, const net::AuditContext& context, int http_status,
                        const Status& error) {
  Queued q;
  q.time_us = opt_.clock->NowMicros();
  Capture(q.what.emplace<AuditedCall>(), call, context, http_status, error);
  Enqueue(std::move(q));
}

void AuditTrail::Record(net::ApiCall&& call, const net::AuditContext& context, int http_status,
                        const Status& error) {
  Queued q;
  q.time_us = opt_.clock->NowMicros();
  Capture(q.what.emplace<AuditedCall>(), std::move(call), context, http_status, error);
  Enqueue(std::move(q));
}

void AuditTrail::Enqueue(Queued&& q) {
  recorded_->Inc();
  std::unique_lock<std::mutex> lock(mu_);
  if (!stop_ && queue_.size() + taken_ >= opt_.max_queued_events) {
    // Backpressure: the caller waits for the writer rather than the event being dropped.
    backpressure_->Inc();
    cv_.notify_one();
    room_cv_.wait(lock, [&] { return stop_ || queue_.size() + taken_ < opt_.max_queued_events; });
  }
  queue_.push_back(std::move(q));
  if (queue_.size() == kWakeEvents) cv_.notify_one();
}

void AuditTrail::RecordServiceEvent(ServiceEvent ev) {
  std::string key = ev.throttle_key;
  std::string resource = ev.resource_arn;
  RecordServiceEvent(key, resource, [&ev] { return std::move(ev); });
}

void AuditTrail::RecordServiceEvent(const std::string& throttle_key, std::string_view resource_arn,
                                    const std::function<ServiceEvent()>& make) {
  int64_t now_ms = opt_.clock->NowMillis();
  std::string key = throttle_key;
  if (!key.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = throttles_.find(key);
    if (it == throttles_.end() && throttles_.size() >= opt_.throttle_max_keys) {
      key = "*";  // the overflow key: everything beyond the tracked devices
      it = throttles_.find(key);
    }
    if (it != throttles_.end() && now_ms - it->second.window_start_ms < opt_.throttle_window_seconds * 1000) {
      // Counted only: the event is not even built.
      Throttle& t = it->second;
      if (t.suppressed++ == 0) t.first_ms = now_ms;
      t.last_ms = now_ms;
      if (t.resources.size() < 10 &&
          std::find(t.resources.begin(), t.resources.end(), resource_arn) == t.resources.end()) {
        t.resources.emplace_back(resource_arn);
      }
      return;
    }
    // The window ended before the writer saw it: its summary goes first.
    if (it != throttles_.end() && it->second.suppressed) QueueSummary(it->second);
  }
  Queued q;
  q.time_us = now_ms * 1000;
  auto& s = q.what.emplace<AuditedServiceEvent>();
  s.event = make();
  if (!key.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    Throttle& t = throttles_[key];
    t = Throttle();
    t.window_start_ms = now_ms;
    t.overflow = key == "*";
    t.first = s.event;  // the window's summary repeats it
  }
  Enqueue(std::move(q));
}

void AuditTrail::QueueSummary(Throttle& t) {
  Queued q;
  q.time_us = t.last_ms * 1000;
  auto& s = q.what.emplace<AuditedServiceEvent>();
  s.event = std::move(t.first);
  s.summary = true;
  s.overflow = t.overflow;
  s.denied = t.suppressed;
  s.first_ms = t.first_ms;
  s.last_ms = t.last_ms;
  s.resources = std::move(t.resources);
  t.suppressed = 0;  // summarised once
  recorded_->Inc();
  // Not held back by a full queue: mu_ is held, and a summary stands for many events.
  queue_.push_back(std::move(q));
}

void AuditTrail::FlushThrottles(bool all) {
  int64_t now_ms = opt_.clock->NowMillis();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = throttles_.begin(); it != throttles_.end();) {
    Throttle& t = it->second;
    if (!all && now_ms - t.window_start_ms < opt_.throttle_window_seconds * 1000) {
      ++it;
      continue;
    }
    if (t.suppressed) QueueSummary(t);
    it = throttles_.erase(it);
  }
}

IndexedEvent AuditTrail::Format(Queued& q, std::string_view random) {
  IndexedEvent e;
  e.event_id = Uuid(random.substr(0, 16));
  e.event_time_ms = q.time_us / 1000;
  int64_t seconds = q.time_us / 1000000;
  if (seconds != time_cache_s_) {
    time_cache_ = FormatIso8601(seconds);
    time_cache_s_ = seconds;
  }
  std::string& out = e.record_json;
  out.reserve(1024);
  JsonWriter w(&out);
  w.Begin();
  w.Str("eventVersion", "1.08");
  if (auto* c = std::get_if<AuditedCall>(&q.what)) {
    const Identity& id = c->identity;
    e.event_name = c->action.empty() ? c->method : c->action;
    e.event_source = EventSource(c->service);
    e.username = id.anonymous() ? "" : id.type == Identity::Type::kRoot ? "root" : id.user_name;
    e.access_key_id = id.access_key_id;
    e.read_only = ReadOnlyAction(e.event_name);
    if (!c->resource.empty()) {
      e.resource_name = c->resource;
      e.resource_type = c->service == "s3" ? "AWS::S3::Object" : "AWS::" + c->service;
    }
    bool data = DataEvent(c->service, c->action);
    w.Open("userIdentity");
    if (id.anonymous()) {
      w.Str("type", "AWSAccount");
      w.Str("principalId", "");
      w.Str("accountId", "anonymous");
    } else {
      w.Str("type", id.TypeName());
      w.Str("principalId", id.type == Identity::Type::kRoot ? id.account_id : id.principal_id);
      w.Str("arn", id.arn);
      w.Str("accountId", id.account_id);
      if (!id.access_key_id.empty()) w.Str("accessKeyId", id.access_key_id);
      if (id.type == Identity::Type::kUser) w.Str("userName", id.user_name);
      if (id.type == Identity::Type::kAssumedRole) {
        size_t at = id.arn.find("assumed-role/");
        std::string rest = at == std::string::npos ? "" : id.arn.substr(at + 13);
        std::string role = rest.substr(0, rest.find('/'));
        w.Open("sessionContext");
        w.Open("sessionIssuer");
        w.Str("type", "Role");
        w.Str("arn", "arn:aws:iam::" + id.account_id + ":role/" + role);
        w.Str("accountId", id.account_id);
        w.Str("userName", role);
        w.End();
        w.End();
      }
    }
    w.End();
    w.Str("eventTime", time_cache_);
    w.Str("eventSource", e.event_source);
    w.Str("eventName", e.event_name);
    w.Str("awsRegion", c->region.empty() ? opt_.region : c->region);
    w.Str("sourceIPAddress", c->source_ip);
    w.Str("userAgent", c->user_agent);
    if (c->failed) {
      w.Str("errorCode", c->error_code);
      w.Str("errorMessage", c->error_message);
    } else if (c->http_status >= 400) {
      w.Str("errorCode", std::to_string(c->http_status));
    }
    w.StringMap("requestParameters", c->params);
    w.Null("responseElements");
    // A call without a request id (a SQL statement) gets a fresh one here, off its thread.
    w.Str("requestID", c->request_id.empty() ? Uuid(random.substr(16, 16)) : c->request_id);
    w.Str("eventID", e.event_id);
    w.Bool("readOnly", e.read_only);
    if (!e.resource_name.empty()) w.Resource(e.resource_type, e.resource_name);
    w.Str("eventType", "AwsApiCall");
    w.Bool("managementEvent", !data);
    w.Str("recipientAccountId", opt_.account_id);
    w.Str("eventCategory", data ? "Data" : "Management");
    if (c->secure) {
      w.Open("tlsDetails");
      w.Str("tlsVersion", "TLSv1.3");
      w.End();
    }
    w.End();
    return e;
  }

  auto& s = std::get<AuditedServiceEvent>(q.what);
  const ServiceEvent& ev = s.event;
  e.event_name = ev.event_name;
  e.event_source = ev.event_source;
  e.username = ev.username;
  e.resource_type = ev.resource_type;
  e.resource_name = ev.resource_arn;
  json extra = ev.additional_event_data_json.empty()
                   ? json::object()
                   : json::parse(ev.additional_event_data_json, nullptr, false);
  if (!extra.is_object()) extra = json::object();
  if (s.summary) {
    if (s.overflow) {
      // The overflow window mixes devices: the summary names none of them.
      extra.erase("policyVariables");
      extra["overflow"] = true;
    }
    extra["aggregated"] = true;
    extra["deniedCount"] = s.denied;
    extra["firstEventTime"] = FormatIso8601(s.first_ms / 1000);
    extra["lastEventTime"] = FormatIso8601(s.last_ms / 1000);
    extra["resources"] = s.resources;
  }
  bool anonymous_summary = s.summary && s.overflow;
  if (anonymous_summary) e.username.clear();
  w.Open("userIdentity");
  w.Str("type", ev.principal_type);
  w.Str("principalId", anonymous_summary ? "*" : ev.principal_id);
  w.Str("arn", anonymous_summary ? "*" : ev.principal_arn);
  w.Str("accountId", opt_.account_id);
  if (ev.principal_type == "IAMUser" && !anonymous_summary) w.Str("userName", ev.username);
  w.End();
  w.Str("eventTime", time_cache_);
  w.Str("eventSource", ev.event_source);
  w.Str("eventName", ev.event_name);
  w.Str("awsRegion", opt_.region);
  w.Str("sourceIPAddress", ev.source_ip);
  w.Str("userAgent", ev.user_agent);
  if (!ev.error_code.empty()) {
    w.Str("errorCode", ev.error_code);
    w.Str("errorMessage",
          anonymous_summary ? "more denials than the tracked devices (overflow)" : ev.error_message);
  }
  if (anonymous_summary) {
    w.Null("requestParameters");
  } else {
    w.StringMap("requestParameters", ev.request_parameters);
  }
  w.Null("responseElements");
  w.Raw("additionalEventData", extra.dump(-1, ' ', false, json::error_handler_t::replace));
  w.Str("eventID", e.event_id);
  w.Bool("readOnly", false);
  if (!ev.resource_arn.empty()) w.Resource(ev.resource_type, ev.resource_arn);
  w.Str("eventType", "AwsApiCall");
  w.Bool("managementEvent", false);
  w.Str("recipientAccountId", opt_.account_id);
  w.Str("eventCategory", "Data");
  w.End();
  return e;
}

Status AuditTrail::IndexPending() {
  std::vector<Queued>& taken = spare_;  // empty; swapped with queue_ so both keep their capacity
  {
    std::lock_guard<std::mutex> lock(mu_);
    taken.swap(queue_);
    taken_ += taken.size();  // still counted against max_queued_events until indexed
  }
  if (!taken.empty()) {
    // Event and request ids for the whole batch from one call into the CSPRNG.
    std::string random = RandomBytes(32 * taken.size());
    unindexed_.reserve(unindexed_.size() + taken.size());
    for (size_t i = 0; i < taken.size(); ++i) {
      unindexed_.push_back(Format(taken[i], std::string_view(random).substr(32 * i, 32)));
    }
    taken.clear();
    // Both buffers keep their capacity (no reallocation on the callers' path), unless a burst
    // made them large.
    if (taken.capacity() > 32 * kWakeEvents) std::vector<Queued>().swap(taken);
  }
  if (unindexed_.empty()) return Status::OK();
  int64_t last_seq = 0;
  // One transaction per batch (group commit). On failure the events stay in unindexed_, in
  // order, and the next call retries them first.
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    // kInsertRows events per INSERT: AUTOINCREMENT updates sqlite_sequence once per statement,
    // not once per event.
    static const std::string kInsertMany = InsertEventsSql(kInsertRows);
    static const std::string kInsertOne = InsertEventsSql(1);
    size_t i = 0;
    for (size_t rows : {kInsertRows, size_t{1}}) {
      if (unindexed_.size() - i < rows) continue;
      ASSIGN_OR_RETURN(Statement st, meta_->Prepare(rows == 1 ? kInsertOne : kInsertMany));
      for (; unindexed_.size() - i >= rows; i += rows) {
        for (size_t r = 0; r < rows; ++r) {
          const IndexedEvent& e = unindexed_[i + r];
          int p = static_cast<int>(r * 10);
          st.Bind(p + 1, e.event_id).Bind(p + 2, e.event_time_ms).Bind(p + 3, e.event_name)
              .Bind(p + 4, e.event_source).Bind(p + 5, e.username).Bind(p + 6, e.access_key_id)
              .Bind(p + 7, int64_t(e.read_only ? 1 : 0)).Bind(p + 8, e.resource_type)
              .Bind(p + 9, e.resource_name).Bind(p + 10, e.record_json);
        }
        RETURN_IF_ERROR(st.Run());
        RETURN_IF_ERROR(st.Reset());
      }
    }
    last_seq = meta_->LastInsertRowId();
    return Status::OK();
  }));
  size_t n = unindexed_.size();
  for (IndexedEvent& e : unindexed_) {
    if (batch_.empty()) batch_oldest_ms_ = e.event_time_ms;
    batch_newest_ms_ = e.event_time_ms;
    batch_.push_back(std::move(e.record_json));
  }
  batch_last_seq_ = last_seq;
  unindexed_.clear();
  indexed_->Inc(n);
  {
    std::lock_guard<std::mutex> lock(mu_);
    taken_ -= n;
  }
  room_cv_.notify_all();
  return Status::OK();
}

Status AuditTrail::WriteLogFile() {
  if (batch_.empty()) return Status::OK();
  size_t size = 16;
  for (const std::string& r : batch_) size += r.size() + 1;
  std::string body;
  body.reserve(size);
  body = "{\"Records\":[";
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (i) body += ',';
    body += batch_[i];
  }
  body += "]}";
  ASSIGN_OR_RETURN(std::string gz, Gzip(body));
  int64_t now = opt_.clock->NowSeconds();
  std::string key = "AWSLogs/" + opt_.account_id + "/CloudTrail/" + opt_.region + "/" + DatePath(now) + "/" +
                    opt_.account_id + "_CloudTrail_" + opt_.region + "_" + Compact(now, false) + "_" +
                    RandomString(16) + ".json.gz";
  storage::PutOptions po;
  po.attrs.content_type = "application/json";
  po.attrs.content_encoding = "gzip";
  storage::StringSource src(gz);
  ASSIGN_OR_RETURN(storage::ObjectInfo info, store_->PutObject(opt_.bucket, key, src, po));
  (void)info;
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
        "INSERT INTO audit_log_files(key, sha256, oldest_ms, newest_ms, written) VALUES(?1, ?2, ?3, ?4, ?5)"));
    st.Bind(1, key).Bind(2, HexEncode(Sha256(gz))).Bind(3, batch_oldest_ms_).Bind(4, batch_newest_ms_).Bind(5, now);
    RETURN_IF_ERROR(st.Run());
    // batch_ is exactly the events after the old mark up to batch_last_seq_ (both change
    // under write_mu_).
    ASSIGN_OR_RETURN(Statement up, meta_->Prepare("UPDATE audit_written SET seq = ?1 WHERE id = 1"));
    up.Bind(1, batch_last_seq_);
    return up.Run();
  }));
  batch_.clear();
  last_flush_s_ = now;
  return Status::OK();
}

Status AuditTrail::WriteDigest() {
  int64_t now = opt_.clock->NowSeconds();
  ASSIGN_OR_RETURN(Statement files, meta_->Prepare(
      "SELECT key, sha256, oldest_ms, newest_ms FROM audit_log_files WHERE digest_key IS NULL ORDER BY key"));
  json logs = json::array();
  std::vector<std::string> keys;
  while (true) {
    ASSIGN_OR_RETURN(bool row, files.Step());
    if (!row) break;
    keys.push_back(files.ColumnText(0));
    logs.push_back({{"s3Bucket", opt_.bucket},
                    {"s3Object", files.ColumnText(0)},
                    {"hashValue", files.ColumnText(1)},
                    {"hashAlgorithm", "SHA-256"},
                    {"oldestEventTime", FormatIso8601(files.ColumnInt(2) / 1000)},
                    {"newestEventTime", FormatIso8601(files.ColumnInt(3) / 1000)}});
  }
  if (keys.empty()) return Status::OK();  // CloudTrail writes empty digests too; we skip them
  ASSIGN_OR_RETURN(Statement prev, meta_->Prepare(
      "SELECT key, sha256, signature, end_time FROM audit_digests ORDER BY written DESC, key DESC LIMIT 1"));
  ASSIGN_OR_RETURN(bool has_prev, prev.Step());
  std::string prev_key = has_prev ? prev.ColumnText(0) : "";
  std::string prev_hash = has_prev ? prev.ColumnText(1) : "";
  std::string prev_sig = has_prev ? prev.ColumnText(2) : "";
  std::string start_time = has_prev ? prev.ColumnText(3) : FormatIso8601(last_digest_s_);
  std::string end_time = FormatIso8601(now);
  std::string key = "AWSLogs/" + opt_.account_id + "/CloudTrail-Digest/" + opt_.region + "/" + DatePath(now) +
                    "/" + opt_.account_id + "_CloudTrail-Digest_" + opt_.region + "_tarn_" + opt_.region + "_" +
                    Compact(now, true) + "_" + RandomString(8) + ".json.gz";
  json digest = {
      {"awsAccountId", opt_.account_id},
      {"digestStartTime", start_time},
      {"digestEndTime", end_time},
      {"digestS3Bucket", opt_.bucket},
      {"digestS3Object", key},
      {"digestPublicKeyFingerprint", HexEncode(Sha256(digest_key_)).substr(0, 32)},
      {"digestSignatureAlgorithm", "HMAC-SHA256"},
      {"newestEventTime", logs.back()["newestEventTime"]},
      {"oldestEventTime", logs.front()["oldestEventTime"]},
      {"previousDigestS3Bucket", has_prev ? json(opt_.bucket) : json(nullptr)},
      {"previousDigestS3Object", has_prev ? json(prev_key) : json(nullptr)},
      {"previousDigestHashValue", has_prev ? json(prev_hash) : json(nullptr)},
      {"previousDigestHashAlgorithm", has_prev ? json("SHA-256") : json(nullptr)},
      {"previousDigestSignature", has_prev ? json(prev_sig) : json(nullptr)},
      {"logFiles", logs},
  };
  ASSIGN_OR_RETURN(std::string gz, Gzip(digest.dump()));
  std::string hash = HexEncode(Sha256(gz));
  std::string sig = HexEncode(HmacSha256(digest_key_, DigestStringToSign(end_time, opt_.bucket, key, hash, prev_sig)));
  storage::PutOptions po;
  po.attrs.content_type = "application/json";
  po.attrs.content_encoding = "gzip";
  po.attrs.user_metadata["signature"] = sig;
  po.attrs.user_metadata["signature-algorithm"] = "HMAC-SHA256";
  storage::StringSource src(gz);
  RETURN_IF_ERROR(store_->PutObject(opt_.bucket, key, src, po));
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement ins, meta_->Prepare(
        "INSERT INTO audit_digests(key, sha256, signature, end_time, written) VALUES(?1, ?2, ?3, ?4, ?5)"));
    ins.Bind(1, key).Bind(2, hash).Bind(3, sig).Bind(4, end_time).Bind(5, now);
    RETURN_IF_ERROR(ins.Run());
    ASSIGN_OR_RETURN(Statement up, meta_->Prepare("UPDATE audit_log_files SET digest_key = ?1 WHERE key = ?2"));
    for (const std::string& k : keys) {
      up.Bind(1, key).Bind(2, k);
      RETURN_IF_ERROR(up.Run());
      RETURN_IF_ERROR(up.Reset());
    }
    return Status::OK();
  }));
  last_digest_s_ = now;
  return Status::OK();
}

Status AuditTrail::Flush(bool with_digest) {
  std::lock_guard<std::mutex> lock(write_mu_);
  RETURN_IF_ERROR(IndexPending());
  RETURN_IF_ERROR(WriteLogFile());
  if (with_digest) RETURN_IF_ERROR(WriteDigest());
  return Status::OK();
}

void AuditTrail::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void AuditTrail::Run() {
  const auto interval = std::chrono::milliseconds(std::max<int64_t>(1, opt_.index_interval_ms));
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // After a failed write, wait the whole interval before retrying (no busy loop on a full
      // queue); otherwise wake early for a large batch or callers waiting for room.
      cv_.wait_for(lock, interval, [&] {
        return stop_ || (!failing_ && (queue_.size() >= kWakeEvents ||
                                       queue_.size() + taken_ >= opt_.max_queued_events));
      });
      if (stop_) return;
    }
    int64_t now_ms = opt_.clock->NowMillis();
    if (now_ms - last_throttle_ms_ >= 1000 || now_ms < last_throttle_ms_) {
      FlushThrottles(/*all=*/false);
      last_throttle_ms_ = now_ms;
    }
    std::lock_guard<std::mutex> lock(write_mu_);
    Status st = IndexPending();
    int64_t now = opt_.clock->NowSeconds();
    if (st.ok() && (now - last_flush_s_ >= opt_.flush_seconds || batch_.size() >= kMaxBatch)) st = WriteLogFile();
    if (st.ok() && now - last_digest_s_ >= opt_.digest_seconds) st = WriteDigest();
    std::lock_guard<std::mutex> state(mu_);
    if (!st.ok()) {
      write_errors_->Inc();
      // Once per streak: the events wait in memory (and callers, once the queue is full).
      if (!failing_) TLOG_WARN("audit", "writing the audit trail (retrying): {}", st.ToString());
      failing_ = true;
    } else if (failing_) {
      TLOG_INFO("audit", "writing the audit trail again");
      failing_ = false;
    }
  }
}

void AuditTrail::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  room_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  FlushThrottles(/*all=*/true);  // nothing counted is lost at shutdown
  Status st = Flush(/*with_digest=*/true);
  if (!st.ok()) TLOG_WARN("audit", "final audit flush: {}", st.ToString());
}

Result<std::pair<std::vector<IndexedEvent>, int64_t>> AuditTrail::Lookup(const LookupQuery& q) {
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    RETURN_IF_ERROR(IndexPending());  // what was recorded before this call is visible
  }
  std::string where = "WHERE 1=1";
  static const std::pair<const char*, const char*> kColumns[] = {
      {"EventId", "event_id"}, {"EventName", "event_name"}, {"Username", "username"},
      {"EventSource", "event_source"}, {"AccessKeyId", "access_key_id"}, {"ResourceType", "resource_type"},
      {"ResourceName", "resource_name"}, {"ReadOnly", "read_only"}};
  std::string column;
  for (const auto& [k, c] : kColumns) {
    if (q.attribute_key == k) column = c;
  }
  if (!q.attribute_key.empty()) {
    if (column.empty()) {
      return Error(ErrorCode::kInvalidLookupAttributes, "Unsupported lookup attribute " + q.attribute_key);
    }
    where += " AND " + column + " = ?1";
  }
  where += " AND (?2 = 0 OR event_time_ms >= ?2) AND (?3 = 0 OR event_time_ms <= ?3) AND (?4 = 0 OR seq < ?4)";
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "SELECT seq, event_id, event_time_ms, event_name, event_source, username, access_key_id, read_only, "
      "resource_type, resource_name, record FROM audit_events " + where + " ORDER BY seq DESC LIMIT ?5"));
  std::string value = q.attribute_value;
  if (column == "read_only") value = EqualsIgnoreCase(value, "true") ? "1" : "0";
  if (column == "read_only") st.Bind(1, int64_t(value == "1" ? 1 : 0));
  else st.Bind(1, value);
  st.Bind(2, q.start_ms).Bind(3, q.end_ms).Bind(4, q.before_seq).Bind(5, int64_t(q.max_results + 1));
  std::vector<IndexedEvent> out;
  int64_t next = 0, last_seq = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    if (static_cast<int>(out.size()) == q.max_results) {
      next = last_seq;
      break;
    }
    IndexedEvent e;
    last_seq = st.ColumnInt(0);
    e.event_id = st.ColumnText(1);
    e.event_time_ms = st.ColumnInt(2);
    e.event_name = st.ColumnText(3);
    e.event_source = st.ColumnText(4);
    e.username = st.ColumnText(5);
    e.access_key_id = st.ColumnText(6);
    e.read_only = st.ColumnInt(7) != 0;
    e.resource_type = st.ColumnText(8);
    e.resource_name = st.ColumnText(9);
    e.record_json = st.ColumnText(10);
    out.push_back(std::move(e));
  }
  return std::make_pair(std::move(out), next);
}

// --- LookupEvents --------------------------------------------------------------------------

CloudTrailApi::CloudTrailApi(AuditTrail* trail, const Authorizer* authz) : trail_(trail), authz_(authz) {}

namespace {
Result<int64_t> TimeParam(const json& v) {
  if (v.is_number()) return static_cast<int64_t>(v.get<double>() * 1000);
  if (v.is_string()) {
    int64_t t = ParseIso8601(v.get<std::string>());
    if (t >= 0) return t * 1000;
  }
  return Error(ErrorCode::kSerializationError, "StartTime/EndTime must be a timestamp");
}
}  // namespace

Status CloudTrailApi::Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) {
  if (call.action != "LookupEvents") {
    return Error(ErrorCode::kUnknownOperation, "Operation " + call.action + " is not supported by this lake");
  }
  call.resource = "*";
  if (call.identity.anonymous()) {
    return Error(ErrorCode::kMissingAuthenticationToken, "Request is missing Authentication Token");
  }
  AuthzRequest ar;
  ar.identity = &call.identity;
  ar.action = "cloudtrail:LookupEvents";
  ar.resource = "*";
  ar.context["aws:SourceIp"] = {request.remote_ip};
  ar.context["aws:SecureTransport"] = {request.secure ? "true" : "false"};
  if (!authz_->Authorize(ar).allowed) {
    return Error(ErrorCode::kAccessDeniedException,
                 "User: " + call.identity.arn + " is not authorized to perform: cloudtrail:LookupEvents");
  }
  auto* body = dynamic_cast<net::MemoryBodyReader*>(request.body);
  json in = json::parse(body && !body->data().empty() ? body->data() : std::string("{}"), nullptr, false);
  if (in.is_discarded() || !in.is_object()) return Error(ErrorCode::kSerializationError, "Malformed JSON body");
  LookupQuery q;
  if (in.contains("LookupAttributes")) {
    const json& la = in["LookupAttributes"];
    if (!la.is_array() || la.size() > 1) {
      return Error(ErrorCode::kInvalidLookupAttributes, "You can only specify one lookup attribute");
    }
    if (la.size() == 1) {
      q.attribute_key = la[0].value("AttributeKey", "");
      q.attribute_value = la[0].value("AttributeValue", "");
      call.audit_params["lookupAttribute"] = q.attribute_key + "=" + q.attribute_value;
    }
  }
  if (in.contains("StartTime")) {
    ASSIGN_OR_RETURN(q.start_ms, TimeParam(in["StartTime"]));
  }
  if (in.contains("EndTime")) {
    ASSIGN_OR_RETURN(q.end_ms, TimeParam(in["EndTime"]));
  }
  if (q.start_ms && q.end_ms && q.start_ms > q.end_ms) {
    return Error(ErrorCode::kInvalidTimeRange, "StartTime must be before EndTime");
  }
  if (in.contains("MaxResults")) {
    if (!in["MaxResults"].is_number_integer() || in["MaxResults"].get<int>() < 1 || in["MaxResults"].get<int>() > 50) {
      return Error(ErrorCode::kInvalidMaxResults, "MaxResults must be between 1 and 50");
    }
    q.max_results = in["MaxResults"].get<int>();
  }
  if (in.contains("NextToken")) {
    auto raw = Base64Decode(in["NextToken"].is_string() ? in["NextToken"].get<std::string>() : "");
    auto seq = raw ? ParseInt64(*raw) : std::nullopt;
    if (!seq || *seq <= 0) return Error(ErrorCode::kInvalidNextToken, "Invalid NextToken");
    q.before_seq = *seq;
  }
  ASSIGN_OR_RETURN(auto found, trail_->Lookup(q));
  json events = json::array();
  for (const IndexedEvent& e : found.first) {
    json ev = {{"EventId", e.event_id},
               {"EventName", e.event_name},
               {"ReadOnly", e.read_only ? "true" : "false"},
               {"EventTime", double(e.event_time_ms) / 1000.0},
               {"EventSource", e.event_source},
               {"CloudTrailEvent", e.record_json}};
    if (!e.username.empty()) ev["Username"] = e.username;
    if (!e.access_key_id.empty()) ev["AccessKeyId"] = e.access_key_id;
    ev["Resources"] = json::array();
    if (!e.resource_name.empty()) {
      ev["Resources"].push_back({{"ResourceType", e.resource_type}, {"ResourceName", e.resource_name}});
    }
    events.push_back(std::move(ev));
  }
  json out = {{"Events", events}};
  if (found.second) out["NextToken"] = Base64Encode(std::to_string(found.second));
  net::WriteJson(response, out.dump(-1, ' ', false, json::error_handler_t::replace));
  return Status::OK();
}

// --- verification --------------------------------------------------------------------------

Result<VerifyReport> VerifyAuditTrail(storage::ObjectStore* store, const std::string& bucket,
                                      const std::string& account_id, const std::string& keys_dir) {
  VerifyReport report;
  ASSIGN_OR_RETURN(std::string key, ReadFile(keys_dir + "/" + kDigestKeyFile));
  auto list_all = [&](const std::string& prefix) -> Result<std::vector<storage::ObjectInfo>> {
    std::vector<storage::ObjectInfo> out;
    storage::ListOptions lo;
    lo.prefix = prefix;
    while (true) {
      ASSIGN_OR_RETURN(storage::ListResult r, store->ListObjects(bucket, lo));
      for (auto& o : r.objects) out.push_back(std::move(o));
      if (!r.truncated) break;
      lo.start_after = r.next_start_after;
    }
    return out;
  };
  ASSIGN_OR_RETURN(auto digests, list_all("AWSLogs/" + account_id + "/CloudTrail-Digest/"));
  ASSIGN_OR_RETURN(auto logs, list_all("AWSLogs/" + account_id + "/CloudTrail/"));

  struct Digest {
    std::string key, hash, signature, end_time, prev_key, prev_hash, prev_sig;
    json files;
  };
  std::map<std::string, Digest> by_key;
  for (const storage::ObjectInfo& o : digests) {
    Digest d;
    d.key = o.key;
    ASSIGN_OR_RETURN(std::string bytes, ReadObject(store, bucket, o.key));
    d.hash = HexEncode(Sha256(bytes));
    auto sig = o.attrs.user_metadata.find("signature");
    d.signature = sig == o.attrs.user_metadata.end() ? "" : sig->second;
    auto plain = Gunzip(bytes);
    json doc = plain.ok() ? json::parse(*plain, nullptr, false) : json();
    if (!plain.ok() || doc.is_discarded() || !doc.is_object()) {
      report.problems.push_back("MODIFIED digest " + o.key + " (unreadable)");
      continue;
    }
    d.end_time = doc.value("digestEndTime", "");
    d.prev_key = doc["previousDigestS3Object"].is_string() ? doc["previousDigestS3Object"].get<std::string>() : "";
    d.prev_hash = doc["previousDigestHashValue"].is_string() ? doc["previousDigestHashValue"].get<std::string>() : "";
    d.prev_sig = doc["previousDigestSignature"].is_string() ? doc["previousDigestSignature"].get<std::string>() : "";
    d.files = doc.value("logFiles", json::array());
    std::string expect = HexEncode(HmacSha256(key, DigestStringToSign(d.end_time, bucket, o.key, d.hash, d.prev_sig)));
    if (d.signature.empty() || !ConstantTimeEquals(expect, d.signature)) {
      report.problems.push_back("MODIFIED digest " + o.key + " (signature does not verify)");
      continue;
    }
    by_key[o.key] = std::move(d);
  }
  report.digests = static_cast<int>(by_key.size());
  // The chain: each digest names its predecessor's key, hash and signature.
  std::set<std::string> referenced;
  for (const auto& [k, d] : by_key) {
    if (d.prev_key.empty()) continue;
    referenced.insert(d.prev_key);
    auto it = by_key.find(d.prev_key);
    if (it == by_key.end()) {
      report.problems.push_back("DELETED digest " + d.prev_key + " (named by " + k + ")");
    } else if (it->second.hash != d.prev_hash || it->second.signature != d.prev_sig) {
      report.problems.push_back("MODIFIED digest " + d.prev_key + " (hash differs from the chain)");
    }
  }
  int heads = 0;
  for (const auto& [k, d] : by_key) heads += referenced.count(k) ? 0 : 1;
  if (heads > 1) report.problems.push_back("INSERTED digest: the digest chain has " + std::to_string(heads) + " heads");

  std::map<std::string, std::string> listed;  // log key → hash
  for (const auto& [k, d] : by_key) {
    for (const json& f : d.files) listed[f.value("s3Object", "")] = f.value("hashValue", "");
  }
  std::set<std::string> present;
  for (const storage::ObjectInfo& o : logs) {
    present.insert(o.key);
    auto it = listed.find(o.key);
    if (it == listed.end()) {
      report.problems.push_back("INSERTED " + o.key);
      continue;
    }
    auto bytes = ReadObject(store, bucket, o.key);
    if (!bytes.ok()) {
      // Gone from under the index → deleted; present but unreadable at its recorded size (e.g.
      // rewritten shorter) → modified.
      const std::string& msg = bytes.status().message();
      bool gone = bytes.status().code() == ErrorCode::kNotFound ||
                  msg.find("No such file") != std::string::npos;
      report.problems.push_back((gone ? "DELETED " : "MODIFIED ") + o.key + " (" + msg + ")");
      continue;
    }
    if (HexEncode(Sha256(*bytes)) != it->second) report.problems.push_back("MODIFIED " + o.key);
    ++report.log_files;
  }
  for (const auto& [k, h] : listed) {
    if (!present.count(k)) report.problems.push_back("DELETED " + k);
  }
  // Files put beside the store's index (a local backend's directory) are insertions too.
  auto dir = store->LocalBucketDir(bucket);
  if (dir.ok()) {
    std::error_code ec;
    std::string root = *dir + "/AWSLogs/" + account_id + "/CloudTrail";
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      std::string rel = std::filesystem::relative(it->path(), *dir, ec).string();
      if (!present.count(rel)) report.problems.push_back("INSERTED " + rel + " (not in the object index)");
    }
  }
  return report;
}

}  // namespace tarn::security::audit
