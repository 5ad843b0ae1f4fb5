#include "storage/local_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/strings.h"
#include "storage/checksum.h"

namespace tarn::storage {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr size_t kIoBuffer = 1 << 20;
// Digests run over this much at a time, so the bytes stay in the L1 cache from one to the next.
constexpr size_t kHashBlock = 16 << 10;
// Objects larger than this start their writeback while they stream (sync_file_range).
constexpr uint64_t kWritebackChunk = 8 << 20;
// O_DIRECT needs buffers, offsets and lengths aligned to the device's logical block.
constexpr size_t kDirectAlign = 4096;
constexpr const char* kInternal = ".tarn";

Status Errno(const std::string& what) {
  return Error(ErrorCode::kIoError, what + ": " + std::strerror(errno));
}

Status FsyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("fsync " + path);
  return Status::OK();
}

std::string Parent(const std::string& path) {
  size_t p = path.rfind('/');
  return p == std::string::npos ? "." : path.substr(0, p);
}

// mkdir -p below `base` for the relative `rel` directory; false when a component exists and is
// not a directory (the key then takes an internal location). Appends the directories it
// created to `created` (their entries in their parents must be fsynced too).
bool MakeDirs(const std::string& base, const std::string& rel, std::vector<std::string>* created) {
  std::string path = base;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t slash = rel.find('/', start);
    path += '/';
    path.append(rel, start, slash == std::string::npos ? std::string::npos : slash - start);
    if (::mkdir(path.c_str(), 0755) == 0) {
      created->push_back(path);
    } else {
      if (errno != EEXIST) return false;
      struct stat st;
      if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

json AttrsToJson(const ObjectAttributes& a) {
  json j = json::object();
  if (!a.content_type.empty()) j["ct"] = a.content_type;
  if (!a.content_encoding.empty()) j["ce"] = a.content_encoding;
  if (!a.content_disposition.empty()) j["cd"] = a.content_disposition;
  if (!a.content_language.empty()) j["cl"] = a.content_language;
  if (!a.cache_control.empty()) j["cc"] = a.cache_control;
  if (!a.expires.empty()) j["ex"] = a.expires;
  if (!a.user_metadata.empty()) j["m"] = a.user_metadata;
  if (!a.tags.empty()) j["t"] = a.tags;
  return j;
}

ObjectAttributes AttrsFromJson(const std::string& s) {
  ObjectAttributes a;
  json j = json::parse(s, nullptr, false);
  if (!j.is_object()) return a;
  a.content_type = j.value("ct", "");
  a.content_encoding = j.value("ce", "");
  a.content_disposition = j.value("cd", "");
  a.content_language = j.value("cl", "");
  a.cache_control = j.value("cc", "");
  a.expires = j.value("ex", "");
  if (j.contains("m")) a.user_metadata = j["m"].get<std::map<std::string, std::string>>();
  if (j.contains("t")) a.tags = j["t"].get<std::map<std::string, std::string>>();
  return a;
}

std::map<std::string, std::string> MapFromJson(const std::string& s) {
  json j = json::parse(s, nullptr, false);
  if (!j.is_object()) return {};
  return j.get<std::map<std::string, std::string>>();
}

std::string StripQuotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return ToLower(s);
}

// Reads an open object file with pread, from [first, first + length).
class FileObjectReader final : public ObjectReader {
 public:
  FileObjectReader(int fd, ObjectInfo info, uint64_t first, uint64_t length)
      : fd_(fd), info_(std::move(info)), first_(first), length_(length) {}
  ~FileObjectReader() override {
    if (fd_ >= 0) ::close(fd_);
  }
  const ObjectInfo& info() const override { return info_; }
  uint64_t first() const override { return first_; }
  uint64_t length() const override { return length_; }
  Result<size_t> Read(char* buf, size_t n) override {
    uint64_t left = length_ - pos_;
    if (left == 0 || n == 0) return size_t{0};
    size_t want = static_cast<size_t>(std::min<uint64_t>(left, n));
    ssize_t got;
    do {
      got = ::pread(fd_, buf, want, static_cast<off_t>(first_ + pos_));
    } while (got < 0 && errno == EINTR);
    if (got < 0) return Errno("reading " + info_.key);
    if (got == 0) return Error(ErrorCode::kIoError, "object file shorter than its index entry");
    pos_ += static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }

 private:
  int fd_;
  ObjectInfo info_;
  uint64_t first_, length_, pos_ = 0;
};

class ReaderSource final : public ByteSource {
 public:
  explicit ReaderSource(ObjectReader* r) : r_(r) {}
  Result<size_t> Read(char* buf, size_t n) override { return r_->Read(buf, n); }

 private:
  ObjectReader* r_;
};

const char* kSelectCols =
    "bucket, key, version_id, is_latest, delete_marker, size, etag, modified, parts, attrs, "
    "checksums, location, seq, part_sizes, part_checksums";

std::vector<uint64_t> ParsePartSizes(const std::string& s) {
  std::vector<uint64_t> out;
  for (const std::string& n : Split(s, ',')) {
    if (auto v = ParseUint64(n)) out.push_back(*v);
  }
  return out;
}

}  // namespace

struct LocalObjectStore::Row {
  std::string bucket, key, version_id;
  bool is_latest = true, delete_marker = false;
  uint64_t size = 0;
  std::string etag;
  int64_t modified = 0;
  int parts = 0;
  std::string attrs = "{}", checksums = "{}", location;
  int64_t seq = 0;
  std::string part_sizes;  // "n1,n2,…" for multipart objects
  std::string part_checksums;  // JSON array of {name: base64}, or empty

  static Row From(const Statement& q) {
    Row r;
    r.bucket = q.ColumnText(0);
    r.key = q.ColumnText(1);
    r.version_id = q.ColumnText(2);
    r.is_latest = q.ColumnInt(3) != 0;
    r.delete_marker = q.ColumnInt(4) != 0;
    r.size = static_cast<uint64_t>(q.ColumnInt(5));
    r.etag = q.ColumnText(6);
    r.modified = q.ColumnInt(7);
    r.parts = static_cast<int>(q.ColumnInt(8));
    r.attrs = q.ColumnText(9);
    r.checksums = q.ColumnText(10);
    r.location = q.ColumnText(11);
    r.seq = q.ColumnInt(12);
    r.part_sizes = q.ColumnText(13);
    r.part_checksums = q.ColumnText(14);
    return r;
  }
  ObjectInfo Info() const {
    ObjectInfo i;
    i.bucket = bucket;
    i.key = key;
    i.version_id = version_id;
    i.is_latest = is_latest;
    i.delete_marker = delete_marker;
    i.size = size;
    i.etag = etag;
    i.last_modified_ms = modified;
    i.parts_count = parts;
    i.attrs = AttrsFromJson(attrs);
    i.checksums = MapFromJson(checksums);
    i.part_sizes = ParsePartSizes(part_sizes);
    if (!part_checksums.empty()) {
      json pc = json::parse(part_checksums, nullptr, false);
      if (pc.is_array()) {
        for (const auto& m : pc) {
          std::map<std::string, std::string> sums;
          if (m.is_object()) {
            for (const auto& [k, v] : m.items()) {
              if (v.is_string()) sums[k] = v.get<std::string>();
            }
          }
          i.part_checksums.push_back(std::move(sums));
        }
      }
    }
    return i;
  }
};

// A temp file holding a PUT's bytes until it is committed; removed if never committed.
struct LocalObjectStore::Staged {
  std::string tmp;
  uint64_t size = 0;
  std::string md5;  // raw
  std::map<std::string, std::string> checksums;  // name → base64
  std::map<std::string, std::string> raw_checksums;
  std::string payload_sha256;  // raw, when asked for
  Staged() = default;
  Staged(Staged&& o) noexcept { *this = std::move(o); }
  Staged& operator=(Staged&& o) noexcept {
    tmp = std::move(o.tmp);
    o.tmp.clear();
    size = o.size;
    md5 = std::move(o.md5);
    checksums = std::move(o.checksums);
    raw_checksums = std::move(o.raw_checksums);
    payload_sha256 = std::move(o.payload_sha256);
    return *this;
  }
  ~Staged() {
    if (!tmp.empty()) ::unlink(tmp.c_str());
  }
};

LocalObjectStore::LocalObjectStore(std::string root, MetaStore* meta, std::string region)
    : root_(std::move(root)), meta_(meta), region_(std::move(region)) {
  const char* direct = std::getenv("TARN_STORAGE_DIRECT_IO");
  use_direct_io_ = direct && std::string_view(direct) == "1";
}
LocalObjectStore::~LocalObjectStore() = default;

bool LocalObjectStore::IsNaturalKey(std::string_view key) {
  if (key.empty() || key.size() > 1024) return false;
  if (key.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    std::string_view seg =
        key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty() || seg == "." || seg == ".." || seg.size() > 255) return false;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return true;
}

Result<std::unique_ptr<LocalObjectStore>> LocalObjectStore::Open(
    const std::string& root, MetaStore* meta, const std::string& region,
    const std::vector<std::string>& default_buckets) {
  std::unique_ptr<LocalObjectStore> s(new LocalObjectStore(root, meta, region));
  RETURN_IF_ERROR(s->Init(default_buckets));
  return s;
}

Status LocalObjectStore::Init(const std::vector<std::string>& default_buckets) {
  RETURN_IF_ERROR(meta_->Migrate("storage", {
      {1,
       "CREATE TABLE s3_buckets (name TEXT PRIMARY KEY, created INTEGER NOT NULL, "
       "  versioning INTEGER NOT NULL DEFAULT 0);"
       "CREATE TABLE s3_bucket_config (bucket TEXT NOT NULL, name TEXT NOT NULL, "
       "  value TEXT NOT NULL, PRIMARY KEY (bucket, name));"
       "CREATE TABLE s3_objects (bucket TEXT NOT NULL, key TEXT NOT NULL, "
       "  version_id TEXT NOT NULL, is_latest INTEGER NOT NULL, delete_marker INTEGER NOT NULL, "
       "  size INTEGER NOT NULL, etag TEXT NOT NULL, modified INTEGER NOT NULL, "
       "  parts INTEGER NOT NULL, attrs TEXT NOT NULL, checksums TEXT NOT NULL, "
       "  location TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (bucket, key, version_id));"
       "CREATE INDEX s3_objects_current ON s3_objects (bucket, key) "
       "  WHERE is_latest = 1 AND delete_marker = 0;"
       "CREATE TABLE s3_uploads (upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, "
       "  key TEXT NOT NULL, initiated INTEGER NOT NULL, attrs TEXT NOT NULL, "
       "  checksums TEXT NOT NULL);"
       "CREATE INDEX s3_uploads_by_key ON s3_uploads (bucket, key);"
       "CREATE TABLE s3_parts (upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, "
       "  size INTEGER NOT NULL, etag TEXT NOT NULL, modified INTEGER NOT NULL, "
       "  checksums TEXT NOT NULL, PRIMARY KEY (upload_id, part_number));"
       "CREATE TABLE s3_intents (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"},
      // Sizes of a multipart object's parts, for GET/HEAD with ?partNumber=N.
      {2, "ALTER TABLE s3_objects ADD COLUMN part_sizes TEXT NOT NULL DEFAULT '';"},
      // x-amz-checksum-type of a multipart upload ("" = COMPOSITE, or "FULL_OBJECT").
      {3, "ALTER TABLE s3_uploads ADD COLUMN checksum_type TEXT NOT NULL DEFAULT '';"},
      // Each part's checksums (JSON array of {name: base64}) for GET ?partNumber=N.
      {4, "ALTER TABLE s3_objects ADD COLUMN part_checksums TEXT NOT NULL DEFAULT '';"},
  }));
  std::vector<std::string> subs = {"", "/.tarn", "/.tarn/tmp", "/.tarn/blobs", "/.tarn/versions",
                                   "/.tarn/uploads"};
  for (unsigned i = 0; i < kTempShards; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "/.tarn/tmp/%02x", i);
    subs.push_back(name);
  }
  for (const auto& sub : subs) {
    std::error_code ec;
    fs::create_directories(root_ + sub, ec);
    if (ec) return Error(ErrorCode::kIoError, "creating " + root_ + sub + ": " + ec.message());
  }
  {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT COALESCE(MAX(seq), 0) FROM s3_objects"));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) seq_ = q.ColumnInt(0);
  }
  RETURN_IF_ERROR(RecoverIntents());
  // Leftover temp files belong to PUTs that never committed.
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root_ + "/.tarn/tmp", ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory(ec)) fs::remove(it->path(), ec);
  }
  for (const auto& b : default_buckets) {
    Status s = CreateBucket(b);
    if (!s.ok() && s.code() != ErrorCode::kBucketAlreadyOwnedByYou) return s;
  }
  return Status::OK();
}

Status LocalObjectStore::RecoverIntents() {
  std::vector<std::pair<int64_t, std::string>> intents;
  {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT id, body FROM s3_intents ORDER BY id"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      intents.emplace_back(q.ColumnInt(0), q.ColumnText(1));
    }
  }
  for (const auto& [id, body] : intents) {
    json j = json::parse(body, nullptr, false);
    std::string tmp = j.is_object() ? j.value("tmp", "") : "";
    struct stat st;
    if (!tmp.empty() && ::stat(tmp.c_str(), &st) == 0) {
      // The rename never happened: the PUT did not take effect.
      ::unlink(tmp.c_str());
      ASSIGN_OR_RETURN(Statement d, meta_->Prepare("DELETE FROM s3_intents WHERE id = ?1"));
      d.Bind(1, id);
      RETURN_IF_ERROR(d.Run());
      TLOG_INFO("storage", "rolled back an interrupted PUT of {}", j.value("key", ""));
    } else {
      std::vector<Unlink> unlink_after;
      RETURN_IF_ERROR(ApplyIntent(body, id, &unlink_after));
      for (const auto& u : unlink_after) RemoveFile(u.location, u.bucket).IgnoreError();
      TLOG_INFO("storage", "completed an interrupted PUT of {}", j.value("key", ""));
    }
  }
  return Status::OK();
}

// ---- buckets ----

Status LocalObjectStore::CreateBucket(const std::string& bucket) {
  if (!IsValidBucketName(bucket)) {
    return Error(ErrorCode::kInvalidBucketName, "The specified bucket is not valid: " + bucket);
  }
  std::unique_lock lock(mu_);
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "INSERT INTO s3_buckets(name, created) VALUES(?1, ?2) ON CONFLICT(name) DO NOTHING"));
  q.Bind(1, bucket).Bind(2, Clock::Real()->NowMillis());
  RETURN_IF_ERROR(q.Run());
  if (meta_->Changes() == 0) {
    return Error(ErrorCode::kBucketAlreadyOwnedByYou,
                 "Your previous request to create the named bucket succeeded and you already own it");
  }
  if (::mkdir((root_ + "/" + bucket).c_str(), 0755) != 0 && errno != EEXIST) {
    return Errno("creating bucket directory");
  }
  return Status::OK();
}

Status LocalObjectStore::DeleteBucket(const std::string& bucket) {
  std::unique_lock lock(mu_);
  RETURN_IF_ERROR(BucketVersioning(bucket));
  for (const char* sql : {"SELECT 1 FROM s3_objects WHERE bucket = ?1 LIMIT 1",
                          "SELECT 1 FROM s3_uploads WHERE bucket = ?1 LIMIT 1"}) {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(sql));
    q.Bind(1, bucket);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) {
      return Error(ErrorCode::kBucketNotEmpty, "The bucket you tried to delete is not empty");
    }
  }
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    for (const char* sql : {"DELETE FROM s3_buckets WHERE name = ?1",
                            "DELETE FROM s3_bucket_config WHERE bucket = ?1"}) {
      ASSIGN_OR_RETURN(Statement q, meta_->Prepare(sql));
      q.Bind(1, bucket);
      RETURN_IF_ERROR(q.Run());
    }
    return Status::OK();
  }));
  // Only empty directories can remain (objects are gone from the index); files an operator
  // dropped in by hand are kept.
  std::error_code ec;
  std::vector<fs::path> dirs;
  for (auto it = fs::recursive_directory_iterator(root_ + "/" + bucket, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) dirs.push_back(it->path());
  }
  for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) ::rmdir(d->c_str());
  ::rmdir((root_ + "/" + bucket).c_str());
  return Status::OK();
}

Result<BucketInfo> LocalObjectStore::HeadBucket(const std::string& bucket) {
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT created FROM s3_buckets WHERE name = ?1"));
  q.Bind(1, bucket);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Error(ErrorCode::kNoSuchBucket, "The specified bucket does not exist");
  return BucketInfo{bucket, q.ColumnInt(0), region_};
}

Result<std::vector<BucketInfo>> LocalObjectStore::ListBuckets() {
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT name, created FROM s3_buckets ORDER BY name"));
  std::vector<BucketInfo> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.ColumnText(0), q.ColumnInt(1), region_});
  }
  return out;
}

Result<Versioning> LocalObjectStore::BucketVersioning(const std::string& bucket) {
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT versioning FROM s3_buckets WHERE name = ?1"));
  q.Bind(1, bucket);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Error(ErrorCode::kNoSuchBucket, "The specified bucket does not exist");
  return static_cast<Versioning>(q.ColumnInt(0));
}

Status LocalObjectStore::SetVersioning(const std::string& bucket, Versioning v) {
  ASSIGN_OR_RETURN(Versioning cur, BucketVersioning(bucket));
  if (v == Versioning::kUnversioned && cur != Versioning::kUnversioned) {
    return Error(ErrorCode::kInvalidArgument, "versioning can only be suspended once enabled");
  }
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare("UPDATE s3_buckets SET versioning = ?2 WHERE name = ?1"));
  q.Bind(1, bucket).Bind(2, static_cast<int64_t>(v));
  return q.Run();
}

Result<Versioning> LocalObjectStore::GetVersioning(const std::string& bucket) {
  return BucketVersioning(bucket);
}

Status LocalObjectStore::SetBucketConfig(const std::string& bucket, const std::string& name,
                                         const std::string& value) {
  RETURN_IF_ERROR(BucketVersioning(bucket));
  if (value.empty()) {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        "DELETE FROM s3_bucket_config WHERE bucket = ?1 AND name = ?2"));
    q.Bind(1, bucket).Bind(2, name);
    return q.Run();
  }
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "INSERT INTO s3_bucket_config(bucket, name, value) VALUES(?1, ?2, ?3) "
      "ON CONFLICT(bucket, name) DO UPDATE SET value = excluded.value"));
  q.Bind(1, bucket).Bind(2, name).Bind(3, value);
  return q.Run();
}

Result<std::optional<std::string>> LocalObjectStore::GetBucketConfig(const std::string& bucket,
                                                                     const std::string& name) {
  // One look-up answers both "does the bucket exist" and "is the document set" (this runs for
  // every S3 request: the bucket policy goes to the Authorizer).
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT c.value FROM s3_buckets b LEFT JOIN s3_bucket_config c "
      "ON c.bucket = b.name AND c.name = ?2 WHERE b.name = ?1"));
  q.Bind(1, bucket).Bind(2, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Error(ErrorCode::kNoSuchBucket, "The specified bucket does not exist");
  if (q.ColumnIsNull(0)) return std::optional<std::string>();
  return std::optional<std::string>(q.ColumnText(0));
}

// ---- objects ----

std::string LocalObjectStore::NewVersionId() {
  // Time-ordered prefix so ids sort by creation; random tail so they are unguessable.
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%013lld", static_cast<long long>(Clock::Real()->NowMillis()));
  return std::string(buf) + RandomString(19);
}

Result<std::optional<LocalObjectStore::Row>> LocalObjectStore::FindRow(
    const std::string& bucket, const std::string& key, const std::string& version_id) {
  std::string sql = std::string("SELECT ") + kSelectCols +
                    " FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND " +
                    (version_id.empty() ? "is_latest = 1" : "version_id = ?3");
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(sql));
  q.Bind(1, bucket).Bind(2, key);
  if (!version_id.empty()) q.Bind(3, version_id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<Row>();
  return std::optional<Row>(Row::From(q));
}

// PUT buffers are reused: a fresh 1 MiB allocation is a fresh mmap, whose first touch costs a
// page fault and a zeroed page per 4 KiB — as much CPU as the MD5 of the same bytes.
LocalObjectStore::IoBuffer LocalObjectStore::AcquireBuffer() {
  {
    std::lock_guard lock(buffers_mu_);
    if (!free_buffers_.empty()) {
      IoBuffer b = std::move(free_buffers_.back());
      free_buffers_.pop_back();
      return b;
    }
  }
  return IoBuffer(static_cast<char*>(std::aligned_alloc(kDirectAlign, kIoBuffer)));
}

void LocalObjectStore::ReleaseBuffer(IoBuffer b) {
  if (!b) return;
  std::lock_guard lock(buffers_mu_);
  if (free_buffers_.size() < kMaxFreeBuffers) free_buffers_.push_back(std::move(b));
}

std::string LocalObjectStore::NewTempPath() {
  // Temp files are spread over kTempShards folders: creating a file takes its folder's lock, and
  // on filesystems without a journal the fsync of a new file also writes its folder, so one
  // shared folder would serialise concurrent PUTs.
  unsigned shard = static_cast<unsigned>(temp_counter_.fetch_add(1, std::memory_order_relaxed)) %
                   kTempShards;
  char name[8];
  std::snprintf(name, sizeof(name), "%02x", shard);
  return root_ + "/.tarn/tmp/" + name + "/" + NewUuid();
}

Result<LocalObjectStore::Staged> LocalObjectStore::Stage(
    ByteSource& data, uint64_t max_size, const std::vector<ChecksumAlgorithm>& algorithms,
    bool payload_sha256) {
  Staged staged;
  std::string tmp = NewTempPath();
  // O_DIRECT: the bytes go from our buffer to the disk without a copy into the page cache (and
  // without evicting those pages again when the file is replaced), as MinIO writes objects.
  // Filesystems without it (tmpfs) refuse the flag; then the writes are buffered.
  bool direct = use_direct_io_;
  int fd = direct ? ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0644) : -1;
  if (fd < 0 && direct && errno == EINVAL) {
    direct = false;
    ::unlink(tmp.c_str());
  }
  if (!direct) fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("creating " + tmp);
  staged.tmp = tmp;
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  Hasher md5(Hasher::Algorithm::kMd5);
  std::vector<Checksummer> sums;
  for (auto a : algorithms) sums.emplace_back(a);
  // The payload's SHA-256 is an additional checksum's when the client asked for SHA256 too.
  std::optional<Hasher> sha256;
  bool sha256_requested =
      std::find(algorithms.begin(), algorithms.end(), ChecksumAlgorithm::kSha256) != algorithms.end();
  if (payload_sha256 && !sha256_requested) sha256.emplace(Hasher::Algorithm::kSha256);
  IoBuffer buf = AcquireBuffer();
  if (!buf) return Error(ErrorCode::kInternal, "out of memory");
  struct BufferReturn {
    LocalObjectStore* store;
    IoBuffer* buf;
    ~BufferReturn() { store->ReleaseBuffer(std::move(*buf)); }
  } give_back{this, &buf};
  auto write_all = [&](const char* p, size_t n) -> Status {
    while (n > 0) {
      ssize_t w = ::write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Errno("writing object data");
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return Status::OK();
  };
  uint64_t flushed = 0;  // bytes handed to the kernel for writeback so far
  bool eof = false;
  while (!eof) {
    // Fill the buffer before writing (one large write instead of one per network read), and
    // hash each piece as it arrives: every digest (MD5, the payload's SHA-256, the checksums)
    // runs over one kHashBlock at a time, so the block is read from memory once and stays in
    // the L1 cache for the others.
    size_t filled = 0;
    while (filled < kIoBuffer) {
      ASSIGN_OR_RETURN(size_t n, data.Read(buf.get() + filled, kIoBuffer - filled));
      if (n == 0) {
        eof = true;
        break;
      }
      staged.size += n;
      if (staged.size > max_size) {
        return Error(ErrorCode::kEntityTooLarge, "Your proposed upload exceeds the maximum allowed size");
      }
      for (size_t off = 0; off < n; off += kHashBlock) {
        std::string_view block(buf.get() + filled + off, std::min(kHashBlock, n - off));
        md5.Update(block);
        if (sha256) sha256->Update(block);
        for (auto& s : sums) s.Update(block);
      }
      filled += n;
    }
    size_t aligned = direct ? filled / kDirectAlign * kDirectAlign : filled;
    if (aligned > 0) {
      Status w = write_all(buf.get(), aligned);
      if (!w.ok() && direct && flushed == 0 && staged.size == filled && errno == EINVAL) {
        // The filesystem took the flag at open but refuses unaligned-to-its-block writes.
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_DIRECT);
        direct = false;
        aligned = filled;
        w = write_all(buf.get(), aligned);
      }
      RETURN_IF_ERROR(w);
    }
    if (aligned < filled) {
      // The unaligned tail of the object (only at the end): buffered.
      if (direct) {
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_DIRECT);
        direct = false;
      }
      RETURN_IF_ERROR(write_all(buf.get() + aligned, filled - aligned));
    }
    // Large buffered objects: start writing back what is written so far, so the final
    // fdatasync has little left to do and dirty pages stay bounded whatever the object's size.
    if (!direct && staged.size - flushed >= kWritebackChunk) {
      ::sync_file_range(fd, static_cast<off_t>(flushed), static_cast<off_t>(staged.size - flushed),
                        SYNC_FILE_RANGE_WRITE);
      flushed = staged.size;
    }
  }
  // fdatasync: the data and what is needed to read it back (size, blocks); timestamps can wait.
  if (::fdatasync(fd) != 0) return Errno("fsync object data");
  staged.md5 = md5.Final();
  for (auto& s : sums) {
    std::string raw = s.Final();
    staged.raw_checksums[ChecksumName(s.algorithm())] = raw;
    staged.checksums[ChecksumName(s.algorithm())] = Base64Encode(raw);
  }
  if (sha256) {
    staged.payload_sha256 = sha256->Final();
  } else if (payload_sha256) {
    staged.payload_sha256 = staged.raw_checksums[ChecksumName(ChecksumAlgorithm::kSha256)];
  }
  return staged;
}

Result<ObjectInfo> LocalObjectStore::PutObject(const std::string& bucket, const std::string& key,
                                               ByteSource& data, const PutOptions& options) {
  RETURN_IF_ERROR(ValidateKey(key));
  RETURN_IF_ERROR(BucketVersioning(bucket));
  ASSIGN_OR_RETURN(Staged staged,
                   Stage(data, options.max_size, options.checksums, options.payload_sha256));
  ObjectInfo info;
  info.bucket = bucket;
  info.key = key;
  info.size = staged.size;
  info.etag = HexEncode(staged.md5);
  info.attrs = options.attrs;
  info.checksums = staged.checksums;
  info.payload_sha256 = staged.payload_sha256;
  if (options.verify) RETURN_IF_ERROR(options.verify(info));
  info.payload_sha256.clear();
  return Commit(bucket, key, staged, std::move(info));
}

// One PUT waiting to be committed by a group commit (see Commit).
struct LocalObjectStore::CommitRequest {
  const std::string* bucket;
  const std::string* key;
  Staged* staged;
  ObjectInfo info;
  Status status;
  bool done = false;  // guarded by commit_mu_
  // Signalled (under commit_mu_) when this request is done or has become the queue's front:
  // one condition variable per waiting PUT, so a batch wakes exactly its members and the next
  // leader, not every waiting thread twice per batch (that herd of futex wake-ups and context
  // switches was the largest cost of a small PUT after the fsyncs).
  std::condition_variable cv;
  // Filled by the leader while committing.
  std::string location;
  std::string intent;
  int64_t intent_id = 0;
  bool placed = false;
  // Paths whose parent folder got an entry from this commit besides the object's own (folders
  // created for the key, a preserved version's link): fsynced with it.
  std::vector<std::string> sync_parents;
};

// Group commit. PUTs stream and fsync their data in parallel; the commit (index intent, rename,
// index change, directory fsync) of all PUTs waiting at one time is done by one of them — the
// leader — in one pass: one SQLite transaction for all intents, the renames, one transaction
// for all index changes, then one fsync per directory touched. Each PUT is answered only after
// the directory fsync that covers its rename, so durability before the 200 is kept.
// (LevelDB's writer queue works the same way.)
Result<ObjectInfo> LocalObjectStore::Commit(const std::string& bucket, const std::string& key,
                                            Staged& staged, ObjectInfo info) {
  CommitRequest self;
  self.bucket = &bucket;
  self.key = &key;
  self.staged = &staged;
  self.info = std::move(info);
  std::unique_lock ql(commit_mu_);
  commit_queue_.push_back(&self);
  self.cv.wait(ql, [&] { return self.done || commit_queue_.front() == &self; });
  if (self.done) {
    if (!self.status.ok()) return self.status;
    return std::move(self.info);
  }
  // Leader: take everything queued so far (bounded, so one batch's latency stays bounded).
  std::vector<CommitRequest*> batch;
  for (CommitRequest* r : commit_queue_) {
    // A second PUT of a key already in the batch waits for the next one: it must see the
    // first one's file and index row (versioned buckets keep the replaced file).
    bool repeated = std::any_of(batch.begin(), batch.end(), [&](const CommitRequest* b) {
      return *b->key == *r->key && *b->bucket == *r->bucket;
    });
    if (repeated || batch.size() >= kMaxCommitBatch) break;
    batch.push_back(r);
  }
  ql.unlock();
  Status batch_status = CommitBatch(batch);
  // The next batch may start renaming while this one's directories are fsynced.
  ql.lock();
  for (size_t i = 0; i < batch.size(); ++i) commit_queue_.pop_front();
  if (!commit_queue_.empty()) commit_queue_.front()->cv.notify_one();
  ql.unlock();

  // Make the renames durable: each directory that received an entry once, and the parents of
  // directories created for these keys.
  std::vector<std::string> dirs;
  for (CommitRequest* r : batch) {
    if (!r->placed) continue;
    dirs.push_back(Parent(Abs(r->location)));
    for (const auto& d : r->sync_parents) dirs.push_back(Parent(d));
  }
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  Status sync_status;
  for (const auto& d : dirs) {
    struct stat st;
    if (::stat(d.c_str(), &st) != 0 && errno == ENOENT) continue;  // emptied and removed since
    Status s = FsyncPath(d, true);
    if (!s.ok() && sync_status.ok()) sync_status = s;
  }

  ql.lock();
  for (CommitRequest* r : batch) {
    if (r->status.ok() && !batch_status.ok()) r->status = batch_status;
    if (r->status.ok() && !sync_status.ok()) r->status = sync_status;
    r->done = true;
    if (r != &self) r->cv.notify_one();  // its thread is waiting on commit_mu_, so r lives on
  }
  ql.unlock();
  if (!self.status.ok()) return self.status;
  return std::move(self.info);
}

// Chooses where a committed object's file goes: its natural path when the filesystem can hold
// the key there, else an internal blob. Records folders it creates in `r->sync_parents`.
Status LocalObjectStore::PlaceRequest(CommitRequest* r) {
  const std::string& bucket = *r->bucket;
  const std::string& key = *r->key;
  std::string natural = bucket + "/" + key;
  if (IsNaturalKey(key)) {
    struct stat st;
    bool dir_there = ::lstat(Abs(natural).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    size_t slash = key.rfind('/');
    bool parents_ok = slash == std::string::npos ||
                      MakeDirs(root_ + "/" + bucket, key.substr(0, slash), &r->sync_parents);
    if (!dir_there && parents_ok) r->location = natural;
  }
  if (r->location.empty()) {
    std::string id = NewUuid();
    std::string rel = std::string(kInternal) + "/blobs/" + bucket + "/" + id.substr(0, 2);
    if (!MakeDirs(root_, rel, &r->sync_parents)) return Errno("creating " + rel);
    r->location = rel + "/" + id;
  }
  ObjectInfo& info = r->info;
  json intent = {{"tmp", r->staged->tmp},
                 {"bucket", bucket},
                 {"key", key},
                 {"version_id", info.version_id},
                 {"size", info.size},
                 {"etag", info.etag},
                 {"modified", info.last_modified_ms},
                 {"parts", info.parts_count},
                 {"attrs", AttrsToJson(info.attrs).dump()},
                 {"checksums", json(info.checksums).dump()},
                 {"location", r->location}};
  if (!info.part_sizes.empty()) intent["part_sizes"] = info.part_sizes;
  if (!info.part_checksums.empty()) intent["part_checksums"] = json(info.part_checksums).dump();
  // A version kept by this PUT whose file sits at the natural path moves aside first (a hard
  // link, so the rename only replaces the name).
  if (r->location == natural) {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        "SELECT version_id FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND location = ?3 "
        "AND version_id <> ?4"));
    q.BindAll(bucket, key, natural, info.version_id);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) {
      std::string vid = q.ColumnText(0);
      std::string rel = std::string(kInternal) + "/versions/" + bucket;
      if (!MakeDirs(root_, rel, &r->sync_parents)) return Errno("creating " + rel);
      std::string dest = rel + "/" + NewUuid();
      if (::link(Abs(natural).c_str(), Abs(dest).c_str()) != 0) return Errno("preserving version");
      r->sync_parents.push_back(Abs(dest));  // so that its folder is fsynced with the others
      intent["relocate_version"] = vid;
      intent["relocate_to"] = dest;
    }
  }
  r->intent = intent.dump();
  return Status::OK();
}

Status LocalObjectStore::CommitBatch(const std::vector<CommitRequest*>& batch) {
  std::unique_lock lock(mu_);
  std::map<std::string, Result<Versioning>> versioning;
  for (CommitRequest* r : batch) {
    auto it = versioning.find(*r->bucket);
    if (it == versioning.end()) it = versioning.emplace(*r->bucket, BucketVersioning(*r->bucket)).first;
    if (!it->second.ok()) {
      r->status = it->second.status();
      continue;
    }
    r->info.version_id = *it->second == Versioning::kEnabled ? NewVersionId() : "null";
    r->info.last_modified_ms = Clock::Real()->NowMillis();
    r->info.is_latest = true;
    r->status = PlaceRequest(r);
  }
  // 1. The intents, in one transaction: from here a crash is finished or rolled back by Open().
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare("INSERT INTO s3_intents(body) VALUES(?1)"));
    for (CommitRequest* r : batch) {
      if (!r->status.ok()) continue;
      RETURN_IF_ERROR(q.Reset());
      q.Bind(1, r->intent);
      RETURN_IF_ERROR(q.Run());
      r->intent_id = meta_->LastInsertRowId();
    }
    return Status::OK();
  }));
  // 2. The renames, in arrival order (the last PUT of a key wins).
  for (CommitRequest* r : batch) {
    if (!r->status.ok()) continue;
    if (::rename(r->staged->tmp.c_str(), Abs(r->location).c_str()) != 0) {
      r->status = Errno("placing object");
      continue;
    }
    r->staged->tmp.clear();
    r->placed = true;
  }
  // 3. The index changes, in one transaction; intents whose rename failed just go.
  std::vector<Unlink> unlink_after;
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    for (CommitRequest* r : batch) {
      if (r->placed) {
        RETURN_IF_ERROR(ApplyIntent(r->intent, r->intent_id, &unlink_after));
      } else if (r->intent_id != 0) {
        ASSIGN_OR_RETURN(Statement d, meta_->Prepare("DELETE FROM s3_intents WHERE id = ?1"));
        d.Bind(1, r->intent_id);
        RETURN_IF_ERROR(d.Run());
      }
    }
    return Status::OK();
  }));
  for (const auto& u : unlink_after) RemoveFile(u.location, u.bucket).IgnoreError();
  return Status::OK();
}

// Makes the index match a placed file: the new row becomes the latest, a replaced "null"
// version goes, a moved version points at its new file, the intent row goes. Idempotent (crash
// recovery reruns it). Files no longer referenced are added to `unlink_after`, to be removed
// once the transaction has committed.
Status LocalObjectStore::ApplyIntent(const std::string& body, int64_t intent_id,
                                     std::vector<Unlink>* unlink_after) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return Error(ErrorCode::kInternal, "unreadable commit intent");
  std::string bucket = j["bucket"], key = j["key"], vid = j["version_id"];
  std::string location = j["location"];
  return meta_->Transaction([&]() -> Status {
    if (j.contains("relocate_version")) {
      ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
          "UPDATE s3_objects SET location = ?4 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"));
      q.BindAll(bucket, key, j["relocate_version"].get<std::string>(),
                j["relocate_to"].get<std::string>());
      RETURN_IF_ERROR(q.Run());
    }
    {
      ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
          "SELECT location FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"));
      q.BindAll(bucket, key, vid);
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (row) {
        std::string old = q.ColumnText(0);
        if (!old.empty() && old != location) unlink_after->push_back({old, bucket});
      }
    }
    for (const char* sql :
         {"DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3",
          "UPDATE s3_objects SET is_latest = 0 WHERE bucket = ?1 AND key = ?2 AND is_latest = 1"}) {
      ASSIGN_OR_RETURN(Statement q, meta_->Prepare(sql));
      q.Bind(1, bucket).Bind(2, key);
      if (std::string_view(sql).find("?3") != std::string_view::npos) q.Bind(3, vid);
      RETURN_IF_ERROR(q.Run());
    }
    std::string part_sizes;
    if (j.contains("part_sizes")) {
      for (const auto& n : j["part_sizes"]) {
        if (!part_sizes.empty()) part_sizes += ',';
        part_sizes += std::to_string(n.get<uint64_t>());
      }
    }
    ASSIGN_OR_RETURN(Statement ins, meta_->Prepare(
        "INSERT INTO s3_objects(bucket, key, version_id, is_latest, delete_marker, size, etag, "
        "modified, parts, attrs, checksums, location, seq, part_sizes, part_checksums) "
        "VALUES(?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"));
    ins.Bind(1, bucket).Bind(2, key).Bind(3, vid);
    ins.Bind(4, int64_t{j.value("delete_marker", false) ? 1 : 0});
    ins.Bind(5, j["size"].get<int64_t>()).Bind(6, j["etag"].get<std::string>());
    ins.Bind(7, j["modified"].get<int64_t>()).Bind(8, j["parts"].get<int64_t>());
    ins.Bind(9, j["attrs"].get<std::string>()).Bind(10, j["checksums"].get<std::string>());
    ins.Bind(11, location).Bind(12, ++seq_).Bind(13, part_sizes);
    ins.Bind(14, j.value("part_checksums", std::string()));
    RETURN_IF_ERROR(ins.Run());
    ASSIGN_OR_RETURN(Statement d, meta_->Prepare("DELETE FROM s3_intents WHERE id = ?1"));
    d.Bind(1, intent_id);
    return d.Run();
  });
}

// Removes an object file and the directories its removal emptied (up to the bucket folder),
// so that a later key can use that name for a file.
Status LocalObjectStore::RemoveFile(const std::string& location, const std::string& bucket) {
  if (location.empty()) return Status::OK();
  if (::unlink(Abs(location).c_str()) != 0 && errno != ENOENT) return Errno("removing object");
  if (StartsWith(location, bucket + "/")) {
    std::string dir = Parent(location);
    while (dir.size() > bucket.size() && ::rmdir(Abs(dir).c_str()) == 0) dir = Parent(dir);
  }
  return Status::OK();
}

Result<std::unique_ptr<ObjectReader>> LocalObjectStore::GetObject(const std::string& bucket,
                                                                  const std::string& key,
                                                                  const GetOptions& options) {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(std::optional<Row> row, FindRow(bucket, key, options.version_id));
  if (!row) RETURN_IF_ERROR(BucketVersioning(bucket));  // NoSuchBucket before NoSuchKey
  if (!row || row->delete_marker) {
    if (!options.version_id.empty() && !row) {
      return Error(ErrorCode::kNoSuchVersion, "The specified version does not exist.");
    }
    return Error(ErrorCode::kNoSuchKey, "The specified key does not exist.");
  }
  uint64_t size = row->size, first = 0, length = size;
  if (options.suffix_length) {
    if (*options.suffix_length == 0 || size == 0) {
      return Error(ErrorCode::kInvalidRange, "The requested range is not satisfiable");
    }
    length = std::min(*options.suffix_length, size);
    first = size - length;
  } else if (options.range_first) {
    first = *options.range_first;
    if (first >= size) return Error(ErrorCode::kInvalidRange, "The requested range is not satisfiable");
    uint64_t last = options.range_last ? std::min(*options.range_last, size - 1) : size - 1;
    if (last < first) return Error(ErrorCode::kInvalidRange, "The requested range is not satisfiable");
    length = last - first + 1;
  }
  int fd = ::open(Abs(row->location).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("opening object " + key);
  return std::unique_ptr<ObjectReader>(new FileObjectReader(fd, row->Info(), first, length));
}

Result<ObjectInfo> LocalObjectStore::HeadObject(const std::string& bucket, const std::string& key,
                                                const std::string& version_id) {
  ASSIGN_OR_RETURN(std::optional<Row> row, FindRow(bucket, key, version_id));
  if (!row) RETURN_IF_ERROR(BucketVersioning(bucket));
  if (!row) {
    if (!version_id.empty()) return Error(ErrorCode::kNoSuchVersion, "The specified version does not exist.");
    return Error(ErrorCode::kNoSuchKey, "The specified key does not exist.");
  }
  if (row->delete_marker) return Error(ErrorCode::kNoSuchKey, "The specified key does not exist.");
  return row->Info();
}

Result<DeleteResult> LocalObjectStore::DeleteObject(const std::string& bucket,
                                                    const std::string& key,
                                                    const std::string& version_id) {
  std::unique_lock lock(mu_);
  ASSIGN_OR_RETURN(Versioning versioning, BucketVersioning(bucket));
  DeleteResult result;
  std::vector<std::string> unlink_after;
  if (!version_id.empty() || versioning == Versioning::kUnversioned) {
    std::string vid = version_id.empty() ? "null" : version_id;
    ASSIGN_OR_RETURN(std::optional<Row> row, FindRow(bucket, key, vid));
    result.version_id = version_id;
    if (!row) return result;
    result.delete_marker = row->delete_marker;
    RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
      ASSIGN_OR_RETURN(Statement d, meta_->Prepare(
          "DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"));
      d.BindAll(bucket, key, vid);
      RETURN_IF_ERROR(d.Run());
      if (row->is_latest) {
        ASSIGN_OR_RETURN(Statement u, meta_->Prepare(
            "UPDATE s3_objects SET is_latest = 1 WHERE rowid = (SELECT rowid FROM s3_objects "
            "WHERE bucket = ?1 AND key = ?2 ORDER BY seq DESC LIMIT 1)"));
        u.BindAll(bucket, key);
        RETURN_IF_ERROR(u.Run());
      }
      return Status::OK();
    }));
    RETURN_IF_ERROR(RemoveFile(row->location, bucket));
    return result;
  }
  // Versioned delete without a version id: a delete marker becomes the latest version.
  std::string marker_vid = versioning == Versioning::kEnabled ? NewVersionId() : "null";
  std::string natural = bucket + "/" + key;
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT version_id FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND location = ?3"));
  q.BindAll(bucket, key, natural);
  ASSIGN_OR_RETURN(bool at_natural, q.Step());
  std::string natural_vid = at_natural ? q.ColumnText(0) : "";
  std::string moved_to;
  if (at_natural && natural_vid != marker_vid) {
    std::string rel = std::string(kInternal) + "/versions/" + bucket;
    std::error_code ec;
    fs::create_directories(root_ + "/" + rel, ec);
    moved_to = rel + "/" + NewUuid();
    if (::link(Abs(natural).c_str(), Abs(moved_to).c_str()) != 0) return Errno("preserving version");
  }
  ASSIGN_OR_RETURN(std::optional<Row> null_row, FindRow(bucket, key, "null"));
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    if (!moved_to.empty()) {
      ASSIGN_OR_RETURN(Statement u, meta_->Prepare(
          "UPDATE s3_objects SET location = ?4 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"));
      u.BindAll(bucket, key, natural_vid, moved_to);
      RETURN_IF_ERROR(u.Run());
    }
    if (marker_vid == "null" && null_row) {
      ASSIGN_OR_RETURN(Statement d, meta_->Prepare(
          "DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND version_id = 'null'"));
      d.BindAll(bucket, key);
      RETURN_IF_ERROR(d.Run());
      if (null_row->location != natural || moved_to.empty()) unlink_after.push_back(null_row->location);
    }
    ASSIGN_OR_RETURN(Statement u, meta_->Prepare(
        "UPDATE s3_objects SET is_latest = 0 WHERE bucket = ?1 AND key = ?2"));
    u.BindAll(bucket, key);
    RETURN_IF_ERROR(u.Run());
    ASSIGN_OR_RETURN(Statement ins, meta_->Prepare(
        "INSERT INTO s3_objects(bucket, key, version_id, is_latest, delete_marker, size, etag, "
        "modified, parts, attrs, checksums, location, seq) "
        "VALUES(?1, ?2, ?3, 1, 1, 0, '', ?4, 0, '{}', '{}', '', ?5)"));
    ins.Bind(1, bucket).Bind(2, key).Bind(3, marker_vid).Bind(4, Clock::Real()->NowMillis());
    ins.Bind(5, ++seq_);
    return ins.Run();
  }));
  if (!moved_to.empty()) unlink_after.push_back(natural);
  for (const auto& loc : unlink_after) RemoveFile(loc, bucket).IgnoreError();
  result.version_id = marker_vid;
  result.delete_marker = true;
  return result;
}

Result<ListResult> LocalObjectStore::ListObjects(const std::string& bucket,
                                                 const ListOptions& options) {
  RETURN_IF_ERROR(BucketVersioning(bucket));
  ListResult out;
  if (options.max_keys <= 0) return out;
  const std::string& prefix = options.prefix;
  const std::string& delim = options.delimiter;
  // Cursor: list keys > cursor. Valid UTF-8 never holds 0xFF, so cp + "\xff" sorts after
  // every key that starts with the common prefix cp.
  std::string cursor = options.start_after;
  if (!delim.empty() && StartsWith(cursor, prefix) && EndsWith(cursor, delim) &&
      cursor.find(delim, prefix.size()) == cursor.size() - delim.size()) {
    cursor += "\xff";  // resuming after a common prefix
  }
  if (cursor < prefix) cursor = prefix;
  bool inclusive = cursor == prefix && options.start_after < prefix;
  size_t want = static_cast<size_t>(options.max_keys) + 1;
  size_t count = 0;
  std::string last_returned;
  bool done = false;
  while (!done && count < want) {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        std::string("SELECT ") + kSelectCols + " FROM s3_objects WHERE bucket = ?1 AND " +
        (inclusive ? "key >= ?2" : "key > ?2") +
        " AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT ?3"));
    q.Bind(1, bucket).Bind(2, cursor).Bind(3, static_cast<int64_t>(want - count + 1));
    inclusive = false;
    bool any = false, restart = false;
    while (!restart) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      any = true;
      std::string key = q.ColumnText(1);
      if (!StartsWith(key, prefix)) {
        done = true;
        break;
      }
      size_t pos = delim.empty() ? std::string::npos : key.find(delim, prefix.size());
      if (pos != std::string::npos) {
        std::string cp = key.substr(0, pos + delim.size());
        ++count;
        if (count < want) {
          out.common_prefixes.push_back(cp);
          last_returned = cp;
        }
        cursor = cp + "\xff";
        restart = true;
      } else {
        ++count;
        if (count < want) {
          out.objects.push_back(Row::From(q).Info());
          last_returned = key;
        }
        cursor = key;
      }
      if (count >= want) break;
    }
    if (!any) done = true;
  }
  out.truncated = count >= want;
  out.next_start_after = last_returned;
  return out;
}

Result<VersionListResult> LocalObjectStore::ListObjectVersions(const std::string& bucket,
                                                               const VersionListOptions& options) {
  RETURN_IF_ERROR(BucketVersioning(bucket));
  VersionListResult out;
  if (options.max_keys <= 0) return out;
  // Resume point: after (key_marker, version_id_marker) in (key ASC, seq DESC) order.
  enum class Mode { kFrom, kAfterKey, kWithinKey } mode = Mode::kFrom;
  const std::string& prefix = options.prefix;
  const std::string& delim = options.delimiter;
  std::string key_cursor = prefix;
  int64_t seq_cursor = 0;
  if (!options.key_marker.empty() && options.key_marker >= prefix) {
    key_cursor = options.key_marker;
    mode = Mode::kAfterKey;
    if (!options.version_id_marker.empty()) {
      ASSIGN_OR_RETURN(std::optional<Row> r,
                       FindRow(bucket, options.key_marker, options.version_id_marker));
      if (r) {
        mode = Mode::kWithinKey;
        seq_cursor = r->seq;
      }
    }
    if (mode == Mode::kAfterKey && !delim.empty() && StartsWith(key_cursor, prefix) &&
        EndsWith(key_cursor, delim) &&
        key_cursor.find(delim, prefix.size()) == key_cursor.size() - delim.size()) {
      key_cursor += "\xff";
    }
  }
  size_t want = static_cast<size_t>(options.max_keys) + 1, count = 0;
  std::string last_key, last_vid;
  bool done = false;
  while (!done && count < want) {
    const char* where = mode == Mode::kFrom      ? "key >= ?2"
                        : mode == Mode::kAfterKey ? "key > ?2"
                                                  : "(key > ?2 OR (key = ?2 AND seq < ?4))";
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        std::string("SELECT ") + kSelectCols + " FROM s3_objects WHERE bucket = ?1 AND " + where +
        " ORDER BY key, seq DESC LIMIT ?3"));
    q.Bind(1, bucket).Bind(2, key_cursor).Bind(3, static_cast<int64_t>(want - count + 1));
    if (mode == Mode::kWithinKey) q.Bind(4, seq_cursor);
    bool any = false, restart = false;
    while (!restart && count < want) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      any = true;
      Row r = Row::From(q);
      if (!StartsWith(r.key, prefix)) {
        done = true;
        break;
      }
      size_t pos = delim.empty() ? std::string::npos : r.key.find(delim, prefix.size());
      ++count;
      if (pos != std::string::npos) {
        std::string cp = r.key.substr(0, pos + delim.size());
        if (count < want) {
          out.common_prefixes.push_back(cp);
          last_key = cp;
          last_vid.clear();
        }
        key_cursor = cp + "\xff";
        mode = Mode::kAfterKey;
        restart = true;
      } else {
        if (count < want) {
          last_key = r.key;
          last_vid = r.version_id;
          out.versions.push_back(r.Info());
        }
        key_cursor = r.key;
        seq_cursor = r.seq;
        mode = Mode::kWithinKey;
      }
    }
    if (!any) done = true;
  }
  out.truncated = count >= want;
  if (out.truncated) {
    out.next_key_marker = last_key;
    out.next_version_id_marker = last_vid;
  }
  return out;
}

Result<ObjectInfo> LocalObjectStore::CopyObject(const std::string& src_bucket,
                                                const std::string& src_key,
                                                const std::string& src_version,
                                                const std::string& dst_bucket,
                                                const std::string& dst_key,
                                                const ObjectAttributes* replace_attrs) {
  GetOptions g;
  g.version_id = src_version;
  ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> reader, GetObject(src_bucket, src_key, g));
  PutOptions p;
  p.attrs = replace_attrs ? *replace_attrs : reader->info().attrs;
  if (!replace_attrs) p.attrs.tags = reader->info().attrs.tags;
  for (const auto& [name, value] : reader->info().checksums) {
    if (auto a = ParseChecksumAlgorithm(name)) p.checksums.push_back(*a);
  }
  ReaderSource source(reader.get());
  return PutObject(dst_bucket, dst_key, source, p);
}

Status LocalObjectStore::SetObjectTags(const std::string& bucket, const std::string& key,
                                       const std::string& version_id,
                                       const std::map<std::string, std::string>& tags) {
  std::unique_lock lock(mu_);
  ASSIGN_OR_RETURN(std::optional<Row> row, FindRow(bucket, key, version_id));
  if (!row || row->delete_marker) return Error(ErrorCode::kNoSuchKey, "The specified key does not exist.");
  ObjectAttributes attrs = AttrsFromJson(row->attrs);
  attrs.tags = tags;
  ASSIGN_OR_RETURN(Statement u, meta_->Prepare(
      "UPDATE s3_objects SET attrs = ?4 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"));
  u.BindAll(bucket, key, row->version_id, AttrsToJson(attrs).dump());
  return u.Run();
}

Result<std::string> LocalObjectStore::LocalPath(const std::string& bucket, const std::string& key) {
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(std::optional<Row> row, FindRow(bucket, key, ""));
  if (!row || row->delete_marker) return Error(ErrorCode::kNoSuchKey, "The specified key does not exist.");
  return Abs(row->location);
}

Result<std::string> LocalObjectStore::LocalBucketDir(const std::string& bucket) {
  RETURN_IF_ERROR(BucketVersioning(bucket));
  return root_ + "/" + bucket;
}

// ---- multipart ----

Result<UploadInfo> LocalObjectStore::CreateMultipartUpload(
    const std::string& bucket, const std::string& key, const ObjectAttributes& attrs,
    const std::vector<ChecksumAlgorithm>& checksums, bool full_object_checksum) {
  RETURN_IF_ERROR(ValidateKey(key));
  RETURN_IF_ERROR(BucketVersioning(bucket));
  UploadInfo u;
  u.bucket = bucket;
  u.key = key;
  u.upload_id = Base64Encode(RandomBytes(36));
  for (char& c : u.upload_id) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  // Never a leading '-': `aws s3api upload-part --upload-id -A0u…` would read it as an option.
  if (u.upload_id[0] == '-') u.upload_id[0] = 'A';
  u.initiated_ms = Clock::Real()->NowMillis();
  u.attrs = attrs;
  u.checksums = checksums;
  u.full_object_checksum = full_object_checksum;
  if (::mkdir((root_ + "/.tarn/uploads/" + u.upload_id).c_str(), 0755) != 0) {
    return Errno("creating upload directory");
  }
  json algos = json::array();
  for (auto a : checksums) algos.push_back(ChecksumName(a));
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "INSERT INTO s3_uploads(upload_id, bucket, key, initiated, attrs, checksums, checksum_type) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  q.Bind(1, u.upload_id).Bind(2, bucket).Bind(3, key).Bind(4, u.initiated_ms);
  q.Bind(5, AttrsToJson(attrs).dump()).Bind(6, algos.dump());
  q.Bind(7, full_object_checksum ? "FULL_OBJECT" : "");
  RETURN_IF_ERROR(q.Run());
  return u;
}

Result<UploadInfo> LocalObjectStore::GetUpload(const std::string& bucket, const std::string& key,
                                               const std::string& upload_id) {
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT initiated, attrs, checksums, checksum_type FROM s3_uploads "
      "WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3"));
  q.BindAll(upload_id, bucket, key);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) {
    return Error(ErrorCode::kNoSuchUpload,
                 "The specified upload does not exist. The upload ID may be invalid, or the upload "
                 "may have been aborted or completed.");
  }
  UploadInfo u;
  u.bucket = bucket;
  u.key = key;
  u.upload_id = upload_id;
  u.initiated_ms = q.ColumnInt(0);
  u.attrs = AttrsFromJson(q.ColumnText(1));
  u.full_object_checksum = q.ColumnText(3) == "FULL_OBJECT";
  json algos = json::parse(q.ColumnText(2), nullptr, false);
  if (algos.is_array()) {
    for (const auto& a : algos) {
      if (auto p = ParseChecksumAlgorithm(a.get<std::string>())) u.checksums.push_back(*p);
    }
  }
  return u;
}

Result<PartInfo> LocalObjectStore::UploadPart(const std::string& bucket, const std::string& key,
                                              const std::string& upload_id, int part_number,
                                              ByteSource& data,
                                              const std::vector<ChecksumAlgorithm>& checksums,
                                              const std::function<Status(const PartInfo&)>& verify,
                                              bool payload_sha256) {
  if (part_number < 1 || part_number > 10000) {
    return Error(ErrorCode::kInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive");
  }
  ASSIGN_OR_RETURN(UploadInfo upload, GetUpload(bucket, key, upload_id));
  std::vector<ChecksumAlgorithm> algorithms = upload.checksums;
  for (auto a : checksums) {
    if (std::find(algorithms.begin(), algorithms.end(), a) == algorithms.end()) algorithms.push_back(a);
  }
  ASSIGN_OR_RETURN(Staged staged, Stage(data, uint64_t{5} << 30, algorithms, payload_sha256));
  PartInfo part;
  part.part_number = part_number;
  part.size = staged.size;
  part.etag = HexEncode(staged.md5);
  part.last_modified_ms = Clock::Real()->NowMillis();
  part.checksums = staged.checksums;
  part.payload_sha256 = staged.payload_sha256;
  if (verify) RETURN_IF_ERROR(verify(part));
  part.payload_sha256.clear();
  std::string dest = root_ + "/.tarn/uploads/" + upload_id + "/" + std::to_string(part_number);
  std::unique_lock lock(mu_);
  RETURN_IF_ERROR(GetUpload(bucket, key, upload_id));  // not aborted meanwhile
  if (::rename(staged.tmp.c_str(), dest.c_str()) != 0) return Errno("placing part");
  staged.tmp.clear();
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "INSERT INTO s3_parts(upload_id, part_number, size, etag, modified, checksums) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(upload_id, part_number) DO UPDATE SET "
      "size = excluded.size, etag = excluded.etag, modified = excluded.modified, "
      "checksums = excluded.checksums"));
  q.Bind(1, upload_id).Bind(2, int64_t{part_number}).Bind(3, static_cast<int64_t>(part.size));
  q.Bind(4, part.etag).Bind(5, part.last_modified_ms).Bind(6, json(part.checksums).dump());
  RETURN_IF_ERROR(q.Run());
  lock.unlock();
  RETURN_IF_ERROR(FsyncPath(Parent(dest), true));  // the part is durable before its 200
  return part;
}

Result<std::vector<PartInfo>> LocalObjectStore::ListParts(const std::string& bucket,
                                                          const std::string& key,
                                                          const std::string& upload_id) {
  RETURN_IF_ERROR(GetUpload(bucket, key, upload_id));
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT part_number, size, etag, modified, checksums FROM s3_parts WHERE upload_id = ?1 "
      "ORDER BY part_number"));
  q.Bind(1, upload_id);
  std::vector<PartInfo> parts;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    PartInfo p;
    p.part_number = static_cast<int>(q.ColumnInt(0));
    p.size = static_cast<uint64_t>(q.ColumnInt(1));
    p.etag = q.ColumnText(2);
    p.last_modified_ms = q.ColumnInt(3);
    p.checksums = MapFromJson(q.ColumnText(4));
    parts.push_back(std::move(p));
  }
  return parts;
}

Result<ObjectInfo> LocalObjectStore::CompleteMultipartUpload(
    const std::string& bucket, const std::string& key, const std::string& upload_id,
    const std::vector<CompletePart>& parts, const std::function<Status(const ObjectInfo&)>& verify) {
  ASSIGN_OR_RETURN(UploadInfo upload, GetUpload(bucket, key, upload_id));
  ASSIGN_OR_RETURN(std::vector<PartInfo> stored, ListParts(bucket, key, upload_id));
  if (parts.empty()) {
    return Error(ErrorCode::kMalformedXML, "You must specify at least one part");
  }
  std::map<int, const PartInfo*> by_number;
  for (const auto& p : stored) by_number[p.part_number] = &p;
  std::vector<const PartInfo*> chosen;
  int prev = 0;
  for (const auto& cp : parts) {
    if (cp.part_number <= prev) {
      return Error(ErrorCode::kInvalidPartOrder,
                   "The list of parts was not in ascending order. Parts must be ordered by part number.");
    }
    prev = cp.part_number;
    auto it = by_number.find(cp.part_number);
    if (it == by_number.end() || StripQuotes(cp.etag) != it->second->etag) {
      return Error(ErrorCode::kInvalidPart,
                   "One or more of the specified parts could not be found. Part " +
                       std::to_string(cp.part_number) + " may not have been uploaded, or its ETag "
                       "does not match.");
    }
    chosen.push_back(it->second);
  }
  for (size_t i = 0; i + 1 < chosen.size(); ++i) {
    if (chosen[i]->size < min_part_size_) {
      return Error(ErrorCode::kEntityTooSmall,
                   "Your proposed upload is smaller than the minimum allowed size (part " +
                       std::to_string(chosen[i]->part_number) + ")");
    }
  }
  // Concatenate the parts into one temp file (copy_file_range: in-kernel, bounded memory).
  Staged staged;
  staged.tmp = NewTempPath();
  int out = ::open(staged.tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) return Errno("creating " + staged.tmp);
  std::string md5s;
  std::vector<uint64_t> part_sizes;
  std::vector<std::map<std::string, std::string>> part_checksums;
  std::map<std::string, std::string> composite_input;
  Status copy_status;
  for (const PartInfo* p : chosen) {
    std::string path = root_ + "/.tarn/uploads/" + upload_id + "/" + std::to_string(p->part_number);
    int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) {
      copy_status = Errno("opening part");
      break;
    }
    uint64_t left = p->size;
    while (left > 0) {
      ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, left, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        copy_status = n < 0 ? Errno("copying part") : Error(ErrorCode::kIoError, "part file is short");
        break;
      }
      left -= static_cast<uint64_t>(n);
    }
    ::close(in);
    if (!copy_status.ok()) break;
    md5s += HexDecode(p->etag).value_or("");
    part_sizes.push_back(p->size);
    // The part's checksums of the upload's algorithms, served with GET ?partNumber=N.
    std::map<std::string, std::string> kept;
    for (auto a : upload.checksums) {
      if (auto c = p->checksums.find(ChecksumName(a)); c != p->checksums.end()) kept.insert(*c);
    }
    if (!kept.empty()) part_checksums.push_back(std::move(kept));
    for (const auto& [name, b64] : p->checksums) composite_input[name] += Base64Decode(b64).value_or("");
    staged.size += p->size;
  }
  if (copy_status.ok() && ::fdatasync(out) != 0) copy_status = Errno("fsync object data");
  ::close(out);
  RETURN_IF_ERROR(copy_status);

  ObjectInfo info;
  info.bucket = bucket;
  info.key = key;
  info.size = staged.size;
  info.parts_count = static_cast<int>(chosen.size());
  info.part_sizes = std::move(part_sizes);
  if (part_checksums.size() == chosen.size()) info.part_checksums = std::move(part_checksums);
  info.etag = HexEncode(Md5(md5s)) + "-" + std::to_string(chosen.size());
  info.attrs = upload.attrs;
  for (auto a : upload.checksums) {
    auto it = composite_input.find(ChecksumName(a));
    if (it == composite_input.end()) continue;
    size_t width = a == ChecksumAlgorithm::kCrc64Nvme ? 8 : 4;
    if (upload.full_object_checksum && IsCrc(a) && it->second.size() == width * chosen.size()) {
      // FULL_OBJECT: the CRC of all the bytes, combined from the parts' CRCs and sizes.
      uint64_t whole = 0;
      for (size_t i = 0; i < chosen.size(); ++i) {
        uint64_t part = CrcFromRaw(std::string_view(it->second).substr(width * i, width));
        whole = CrcCombine(a, whole, part, chosen[i]->size);
      }
      info.checksums[ChecksumName(a)] = Base64Encode(CrcToRaw(a, whole));
      continue;
    }
    // S3 "composite" checksums: the checksum of the parts' checksums, suffixed with the count.
    info.checksums[ChecksumName(a)] =
        Base64Encode(ComputeChecksum(a, it->second)) + "-" + std::to_string(chosen.size());
  }
  if (verify) RETURN_IF_ERROR(verify(info));
  ASSIGN_OR_RETURN(ObjectInfo done, Commit(bucket, key, staged, std::move(info)));
  AbortMultipartUpload(bucket, key, upload_id).IgnoreError();
  return done;
}

Status LocalObjectStore::AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                              const std::string& upload_id) {
  std::unique_lock lock(mu_);
  RETURN_IF_ERROR(GetUpload(bucket, key, upload_id));
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    for (const char* sql : {"DELETE FROM s3_parts WHERE upload_id = ?1",
                            "DELETE FROM s3_uploads WHERE upload_id = ?1"}) {
      ASSIGN_OR_RETURN(Statement q, meta_->Prepare(sql));
      q.Bind(1, upload_id);
      RETURN_IF_ERROR(q.Run());
    }
    return Status::OK();
  }));
  std::error_code ec;
  fs::remove_all(root_ + "/.tarn/uploads/" + upload_id, ec);
  return Status::OK();
}

Result<std::vector<UploadInfo>> LocalObjectStore::ListMultipartUploads(const std::string& bucket,
                                                                       const std::string& prefix) {
  RETURN_IF_ERROR(BucketVersioning(bucket));
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT upload_id, key, initiated, attrs FROM s3_uploads WHERE bucket = ?1 AND key >= ?2 "
      "ORDER BY key, initiated, upload_id"));
  q.Bind(1, bucket).Bind(2, prefix);
  std::vector<UploadInfo> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    UploadInfo u;
    u.upload_id = q.ColumnText(0);
    u.key = q.ColumnText(1);
    if (!StartsWith(u.key, prefix)) break;
    u.bucket = bucket;
    u.initiated_ms = q.ColumnInt(2);
    u.attrs = AttrsFromJson(q.ColumnText(3));
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace tarn::storage
