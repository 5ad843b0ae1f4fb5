// The object store: buckets of keyed, immutable byte objects — the landing, curated and audit
// zones of the lake (DESIGN.md §1, §3). Every module stores data through this interface
// in-process (streams write Parquet into `landing`, crawlers list and read, SQL reads files);
// the S3 REST service (storage/s3/) is one more caller.
//
// Contract (the same for every backend):
//  - A PUT is atomic and durable: readers see the old object or the whole new one, never a
//    torn one; once PutObject returns OK the bytes and metadata survive a crash.
//    Concurrent PUTs of one key: the last to commit wins, whole.
//  - Keys are any valid UTF-8 string of 1..1024 bytes; they round-trip exactly and never name
//    a file outside the store. Listing order is the byte order of the UTF-8 key (as S3).
//  - Bodies stream through ByteSource / ObjectReader with bounded memory whatever their size.
//
// Backends: LocalObjectStore (local_store.h, <data>/objects/). A remote S3-compatible backend
// (scale-out, DESIGN.md §7) implements the same interface; LocalPath() is then unavailable and
// callers that need a file (DuckDB has no httpfs) copy the object to a temporary file.
//
// Thread-safety: implementations are thread-safe. An ObjectReader belongs to one thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tarn::storage {

// A stream of bytes to store. Read returns 0 at the end; an error aborts the write.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
};

// A ByteSource over memory (tests, small objects written by modules).
class StringSource final : public ByteSource {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  Result<size_t> Read(char* buf, size_t n) override;

 private:
  std::string data_;
  size_t pos_ = 0;
};

// A ByteSource over a local file: objects written from files a module made (Parquet from a
// delivery stream or a merge, UNLOAD output).
class FileSource final : public ByteSource {
 public:
  // Opens `path` for reading (kIoError when it cannot).
  static Result<std::unique_ptr<FileSource>> Open(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  Result<size_t> Read(char* buf, size_t n) override;

 private:
  FileSource(std::FILE* f, std::string path) : f_(f), path_(std::move(path)) {}
  std::FILE* f_;
  std::string path_;
};

// Checksum algorithms of S3's additional checksums (x-amz-checksum-*).
enum class ChecksumAlgorithm { kCrc32, kCrc32c, kSha1, kSha256, kCrc64Nvme };
// "CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME".
const char* ChecksumName(ChecksumAlgorithm a);
// Parses a name as above (case-insensitive).
std::optional<ChecksumAlgorithm> ParseChecksumAlgorithm(std::string_view name);

// System and user metadata stored with an object.
struct ObjectAttributes {
  std::string content_type;  // empty = binary/octet-stream
  std::string content_encoding;
  std::string content_disposition;
  std::string content_language;
  std::string cache_control;
  std::string expires;
  std::map<std::string, std::string> user_metadata;  // x-amz-meta-<name> (name lower-case)
  std::map<std::string, std::string> tags;
};

struct ObjectInfo {
  std::string bucket;
  std::string key;
  std::string version_id;  // "null" when the object was written without versioning
  uint64_t size = 0;
  std::string etag;        // quoted-free hex: MD5, or "<md5-of-md5s>-N" for multipart
  int64_t last_modified_ms = 0;
  bool delete_marker = false;
  bool is_latest = true;
  int parts_count = 0;     // >0 for multipart objects
  std::vector<uint64_t> part_sizes;  // multipart objects: the size of each part, in order
  // Multipart objects: each part's checksums (name → base64), in order, for GET/HEAD
  // ?partNumber=N with x-amz-checksum-mode ENABLED. Empty when the upload had none.
  std::vector<std::map<std::string, std::string>> part_checksums;
  ObjectAttributes attrs;
  // Checksums computed at write time, base64 of the raw digest, by algorithm name
  // ("CRC32" → "AAAAAA==", composite multipart values carry a "-N" suffix).
  std::map<std::string, std::string> checksums;
  // Only while a PUT is verified (PutOptions::payload_sha256): the raw SHA-256 of the bytes.
  // Not stored.
  std::string payload_sha256;
};

struct PutOptions {
  ObjectAttributes attrs;
  // Checksums to compute while the bytes stream in (stored and returned in ObjectInfo).
  std::vector<ChecksumAlgorithm> checksums;
  // Also compute the SHA-256 of the bytes, in the same pass as the MD5 and the checksums, into
  // the `payload_sha256` that `verify` sees (the SigV4 payload hash, net::BodyReader::
  // TakePayloadSha256Check).
  bool payload_sha256 = false;
  // Upper bound on the object's size; kEntityTooLarge beyond it.
  uint64_t max_size = uint64_t{5} << 40;
  // Called after the last byte was read and before the object becomes visible, with what was
  // computed (size, etag, checksums). An error aborts the PUT and stores nothing (BadDigest,
  // checksum trailer mismatch, size mismatch).
  std::function<Status(const ObjectInfo& computed)> verify;
};

struct GetOptions {
  std::string version_id;  // empty = latest
  // Byte range [first, last] (inclusive, as HTTP Range); last clamped to size-1.
  std::optional<uint64_t> range_first;
  std::optional<uint64_t> range_last;
  // Suffix range: the last N bytes ("bytes=-N").
  std::optional<uint64_t> suffix_length;
};

// An open object: its metadata and a stream of the requested bytes. The bytes are those of
// the version that was current when it was opened, even if it is overwritten meanwhile.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  virtual const ObjectInfo& info() const = 0;
  // The byte range being read: [first, first + length).
  virtual uint64_t first() const = 0;
  virtual uint64_t length() const = 0;
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
};

struct ListOptions {
  std::string prefix;
  std::string delimiter;    // empty = no grouping
  std::string start_after;  // exclusive; also the v1 marker / the decoded v2 token
  int max_keys = 1000;
};

struct ListResult {
  std::vector<ObjectInfo> objects;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  // The last key or common prefix returned: where the next page starts after.
  std::string next_start_after;
};

struct VersionListOptions {
  std::string prefix;
  std::string delimiter;
  std::string key_marker;
  std::string version_id_marker;
  int max_keys = 1000;
};

struct VersionListResult {
  std::vector<ObjectInfo> versions;  // includes delete markers (delete_marker = true)
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string next_key_marker;
  std::string next_version_id_marker;
};

struct BucketInfo {
  std::string name;
  int64_t created_ms = 0;
  std::string region;
};

enum class Versioning { kUnversioned, kEnabled, kSuspended };

struct DeleteResult {
  std::string version_id;    // version deleted, or of the delete marker created
  bool delete_marker = false;
};

struct PartInfo {
  int part_number = 0;
  uint64_t size = 0;
  std::string etag;  // hex MD5 of the part
  int64_t last_modified_ms = 0;
  std::map<std::string, std::string> checksums;
  std::string payload_sha256;  // as ObjectInfo::payload_sha256 (UploadPart's payload_sha256)
};

struct UploadInfo {
  std::string bucket, key, upload_id;
  int64_t initiated_ms = 0;
  ObjectAttributes attrs;
  std::vector<ChecksumAlgorithm> checksums;
  // S3 x-amz-checksum-type FULL_OBJECT: the object's CRC32/CRC32C is that of all its bytes
  // (combined from the parts' CRCs), not the COMPOSITE checksum of the parts' checksums.
  bool full_object_checksum = false;
};

struct CompletePart {
  int part_number = 0;
  std::string etag;  // as the client sent it, quotes allowed
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // --- buckets ---
  // kBucketAlreadyOwnedByYou when it exists; kInvalidBucketName for a name S3 would refuse.
  virtual Status CreateBucket(const std::string& bucket) = 0;
  // kBucketNotEmpty unless it holds no objects, versions or uploads.
  virtual Status DeleteBucket(const std::string& bucket) = 0;
  virtual Result<BucketInfo> HeadBucket(const std::string& bucket) = 0;  // kNoSuchBucket
  virtual Result<std::vector<BucketInfo>> ListBuckets() = 0;
  virtual Status SetVersioning(const std::string& bucket, Versioning v) = 0;
  virtual Result<Versioning> GetVersioning(const std::string& bucket) = 0;
  // Small per-bucket documents: "policy" (JSON), "tagging" (XML-free map as JSON) …; an empty
  // value deletes. Get returns nullopt when unset.
  virtual Status SetBucketConfig(const std::string& bucket, const std::string& name,
                                 const std::string& value) = 0;
  virtual Result<std::optional<std::string>> GetBucketConfig(const std::string& bucket,
                                                             const std::string& name) = 0;

  // --- objects ---
  virtual Result<ObjectInfo> PutObject(const std::string& bucket, const std::string& key,
                                       ByteSource& data, const PutOptions& options) = 0;
  // kNoSuchKey (or kNoSuchVersion); kInvalidRange for a range starting past the end.
  virtual Result<std::unique_ptr<ObjectReader>> GetObject(const std::string& bucket,
                                                          const std::string& key,
                                                          const GetOptions& options) = 0;
  virtual Result<ObjectInfo> HeadObject(const std::string& bucket, const std::string& key,
                                        const std::string& version_id = "") = 0;
  // Deleting a missing key succeeds (S3). In a versioned bucket without version_id this
  // adds a delete marker; with version_id it removes that version for good.
  virtual Result<DeleteResult> DeleteObject(const std::string& bucket, const std::string& key,
                                            const std::string& version_id = "") = 0;
  virtual Result<ListResult> ListObjects(const std::string& bucket,
                                         const ListOptions& options) = 0;
  virtual Result<VersionListResult> ListObjectVersions(const std::string& bucket,
                                                       const VersionListOptions& options) = 0;
  // Copies an object (whole). With replace_attrs the destination takes `attrs`, else the
  // source's.
  virtual Result<ObjectInfo> CopyObject(const std::string& src_bucket, const std::string& src_key,
                                        const std::string& src_version,
                                        const std::string& dst_bucket, const std::string& dst_key,
                                        const ObjectAttributes* replace_attrs) = 0;
  // Replaces an object's tags in place (no new version).
  virtual Status SetObjectTags(const std::string& bucket, const std::string& key,
                               const std::string& version_id,
                               const std::map<std::string, std::string>& tags) = 0;

  // The local file holding the object's bytes (local backend only), for engines that read
  // files directly (DuckDB: read_parquet('<path>')). Valid until the object is overwritten
  // or deleted. kNotImplemented on remote backends.
  virtual Result<std::string> LocalPath(const std::string& bucket, const std::string& key) = 0;
  // The directory that mirrors `bucket` (and Hive-style prefixes under it) on the local
  // filesystem, so that globs like '<dir>/iot/x/year=*/**/*.parquet' work. Objects whose keys
  // the filesystem cannot hold are not under it (use LocalPath). kNotImplemented on remote
  // backends.
  virtual Result<std::string> LocalBucketDir(const std::string& bucket) = 0;

  // --- multipart uploads ---
  virtual Result<UploadInfo> CreateMultipartUpload(const std::string& bucket,
                                                   const std::string& key,
                                                   const ObjectAttributes& attrs,
                                                   const std::vector<ChecksumAlgorithm>& checksums,
                                                   bool full_object_checksum) = 0;
  // kNoSuchUpload; part numbers 1..10000. Computes the upload's checksum algorithms plus
  // `checksums`; `verify` and `payload_sha256` as in PutOptions.
  virtual Result<PartInfo> UploadPart(const std::string& bucket, const std::string& key,
                                      const std::string& upload_id, int part_number,
                                      ByteSource& data,
                                      const std::vector<ChecksumAlgorithm>& checksums,
                                      const std::function<Status(const PartInfo&)>& verify,
                                      bool payload_sha256 = false) = 0;
  // kInvalidPart (unknown part or ETag mismatch), kInvalidPartOrder, kEntityTooSmall (a part
  // other than the last under 5 MiB). `verify` (may be empty) sees the object's size, ETag and
  // checksums before it becomes visible; an error stores nothing and keeps the upload.
  virtual Result<ObjectInfo> CompleteMultipartUpload(
      const std::string& bucket, const std::string& key, const std::string& upload_id,
      const std::vector<CompletePart>& parts,
      const std::function<Status(const ObjectInfo&)>& verify) = 0;
  virtual Status AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                      const std::string& upload_id) = 0;
  virtual Result<std::vector<UploadInfo>> ListMultipartUploads(const std::string& bucket,
                                                               const std::string& prefix) = 0;
  virtual Result<UploadInfo> GetUpload(const std::string& bucket, const std::string& key,
                                       const std::string& upload_id) = 0;
  virtual Result<std::vector<PartInfo>> ListParts(const std::string& bucket,
                                                  const std::string& key,
                                                  const std::string& upload_id) = 0;
};

// S3 bucket naming rules (3–63 chars, lower-case letters, digits, '.', '-', starting and
// ending with a letter or digit, not an IP address).
bool IsValidBucketName(std::string_view name);
// S3 key rules as Tarn enforces them: 1..1024 bytes of valid UTF-8.
Status ValidateKey(std::string_view key);

}  // namespace tarn::storage
