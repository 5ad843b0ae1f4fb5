// The local-filesystem object store under <data>/objects/ (docs/storage.md).
//
//   <objects>/<bucket>/<key>                 an object whose key the filesystem can hold, at
//                                            its natural path (DuckDB/Spark read it as is)
//   <objects>/.tarn/blobs/<bucket>/<xx>/<id> objects it cannot (`a` beside `a/b`, `..`, `//`,
//                                            trailing `/`, segments over 255 bytes)
//   <objects>/.tarn/versions/<bucket>/…      non-current versions of versioned buckets
//   <objects>/.tarn/tmp/                     PUTs in progress (same filesystem: rename is atomic)
//   <objects>/.tarn/uploads/<upload-id>/<n>  multipart parts
//
// The SQLite index (tables s3_*) is the truth: key → location, size, ETag, metadata, versions.
// A PUT streams into tmp/, fsyncs, records an intent row, renames into place, fsyncs the
// directory and then applies the index change; Open() finishes or rolls back intents left by
// a crash, so a reader sees the old object or the whole new one.
//
// Thread-safety: thread-safe. Commits (rename + index) are serialised by one lock held for a
// rename and a SQLite transaction, never while bytes stream.
#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>
#include <string>

#include "core/meta_store.h"
#include "storage/object_store.h"

namespace tarn::storage {

class LocalObjectStore final : public ObjectStore {
 public:
  // `root` is <data>/objects; `meta` holds the index. Creates `default_buckets` if missing.
  static Result<std::unique_ptr<LocalObjectStore>> Open(
      const std::string& root, MetaStore* meta, const std::string& region,
      const std::vector<std::string>& default_buckets = {});
  ~LocalObjectStore() override;

  Status CreateBucket(const std::string& bucket) override;
  Status DeleteBucket(const std::string& bucket) override;
  Result<BucketInfo> HeadBucket(const std::string& bucket) override;
  Result<std::vector<BucketInfo>> ListBuckets() override;
  Status SetVersioning(const std::string& bucket, Versioning v) override;
  Result<Versioning> GetVersioning(const std::string& bucket) override;
  Status SetBucketConfig(const std::string& bucket, const std::string& name,
                         const std::string& value) override;
  Result<std::optional<std::string>> GetBucketConfig(const std::string& bucket,
                                                     const std::string& name) override;

  Result<ObjectInfo> PutObject(const std::string& bucket, const std::string& key,
                               ByteSource& data, const PutOptions& options) override;
  Result<std::unique_ptr<ObjectReader>> GetObject(const std::string& bucket,
                                                  const std::string& key,
                                                  const GetOptions& options) override;
  Result<ObjectInfo> HeadObject(const std::string& bucket, const std::string& key,
                                const std::string& version_id) override;
  Result<DeleteResult> DeleteObject(const std::string& bucket, const std::string& key,
                                    const std::string& version_id) override;
  Result<ListResult> ListObjects(const std::string& bucket, const ListOptions& options) override;
  Result<VersionListResult> ListObjectVersions(const std::string& bucket,
                                               const VersionListOptions& options) override;
  Result<ObjectInfo> CopyObject(const std::string& src_bucket, const std::string& src_key,
                                const std::string& src_version, const std::string& dst_bucket,
                                const std::string& dst_key,
                                const ObjectAttributes* replace_attrs) override;
  Status SetObjectTags(const std::string& bucket, const std::string& key,
                       const std::string& version_id,
                       const std::map<std::string, std::string>& tags) override;
  Result<std::string> LocalPath(const std::string& bucket, const std::string& key) override;
  Result<std::string> LocalBucketDir(const std::string& bucket) override;

  Result<UploadInfo> CreateMultipartUpload(const std::string& bucket, const std::string& key,
                                           const ObjectAttributes& attrs,
                                           const std::vector<ChecksumAlgorithm>& checksums) override;
  Result<PartInfo> UploadPart(const std::string& bucket, const std::string& key,
                              const std::string& upload_id, int part_number, ByteSource& data,
                              const std::vector<ChecksumAlgorithm>& checksums,
                              const std::function<Status(const PartInfo&)>& verify) override;
  Result<ObjectInfo> CompleteMultipartUpload(const std::string& bucket, const std::string& key,
                                             const std::string& upload_id,
                                             const std::vector<CompletePart>& parts) override;
  Status AbortMultipartUpload(const std::string& bucket, const std::string& key,
                              const std::string& upload_id) override;
  Result<std::vector<UploadInfo>> ListMultipartUploads(const std::string& bucket,
                                                       const std::string& prefix) override;
  Result<UploadInfo> GetUpload(const std::string& bucket, const std::string& key,
                               const std::string& upload_id) override;
  Result<std::vector<PartInfo>> ListParts(const std::string& bucket, const std::string& key,
                                          const std::string& upload_id) override;

  // Minimum size of every part but the last (S3: 5 MiB). Tests lower it.
  void set_min_part_size(uint64_t n) { min_part_size_ = n; }

  // True when `key` can live at <bucket>/<key> on a POSIX filesystem (no empty, "." or ".."
  // segment, none over 255 bytes, no NUL).
  static bool IsNaturalKey(std::string_view key);

 private:
  struct Row;
  struct Staged;
  LocalObjectStore(std::string root, MetaStore* meta, std::string region);
  Status Init(const std::vector<std::string>& default_buckets);
  Status RecoverIntents();
  Result<Versioning> BucketVersioning(const std::string& bucket);
  Result<std::optional<Row>> FindRow(const std::string& bucket, const std::string& key,
                                     const std::string& version_id);
  // Streams `data` into a new temp file, hashing as it goes.
  Result<Staged> Stage(ByteSource& data, uint64_t max_size,
                       const std::vector<ChecksumAlgorithm>& checksums);
  // Makes a staged file the current version of bucket/key (under mu_).
  Result<ObjectInfo> Commit(const std::string& bucket, const std::string& key, Staged& staged,
                            ObjectInfo info);
  Status ApplyIntent(const std::string& row_json);
  Status RemoveFile(const std::string& location, const std::string& bucket);
  std::string Abs(const std::string& location) const { return root_ + "/" + location; }
  std::string NewVersionId();

  std::string root_;
  MetaStore* meta_;
  std::string region_;
  uint64_t min_part_size_ = 5ull << 20;
  std::atomic<int64_t> seq_{0};
  // Exclusive for commits, deletes and directory changes; shared to resolve + open a file.
  std::shared_mutex mu_;
};

}  // namespace tarn::storage
