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
// Thread-safety: thread-safe. Bytes stream and are fsynced in the caller's thread; commits
// (intent, rename, index change, directory fsync) are group-committed: the PUTs waiting at one
// time are committed together by one of them, under one lock held for the renames and two
// SQLite transactions, never while bytes stream (see Commit in local_store.cc).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

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
                                           const std::vector<ChecksumAlgorithm>& checksums,
                                           bool full_object_checksum) override;
  Result<PartInfo> UploadPart(const std::string& bucket, const std::string& key,
                              const std::string& upload_id, int part_number, ByteSource& data,
                              const std::vector<ChecksumAlgorithm>& checksums,
                              const std::function<Status(const PartInfo&)>& verify,
                              bool payload_sha256 = false) override;
  Result<ObjectInfo> CompleteMultipartUpload(
      const std::string& bucket, const std::string& key, const std::string& upload_id,
      const std::vector<CompletePart>& parts,
      const std::function<Status(const ObjectInfo&)>& verify) override;
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
  struct CommitRequest;
  struct Unlink {
    std::string location, bucket;
  };
  static constexpr unsigned kTempShards = 16;
  static constexpr size_t kMaxFreeBuffers = 32;
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  using IoBuffer = std::unique_ptr<char, FreeDeleter>;
  IoBuffer AcquireBuffer();
  void ReleaseBuffer(IoBuffer b);
  static constexpr size_t kMaxCommitBatch = 64;
  LocalObjectStore(std::string root, MetaStore* meta, std::string region);
  Status Init(const std::vector<std::string>& default_buckets);
  Status RecoverIntents();
  Result<Versioning> BucketVersioning(const std::string& bucket);
  Result<std::optional<Row>> FindRow(const std::string& bucket, const std::string& key,
                                     const std::string& version_id);
  // Streams `data` into a new temp file, hashing as it goes.
  Result<Staged> Stage(ByteSource& data, uint64_t max_size,
                       const std::vector<ChecksumAlgorithm>& checksums, bool payload_sha256);
  std::string NewTempPath();
  // Makes a staged file the current version of bucket/key, durably; group-committed.
  Result<ObjectInfo> Commit(const std::string& bucket, const std::string& key, Staged& staged,
                            ObjectInfo info);
  // The leader's part of a group commit (takes mu_).
  Status CommitBatch(const std::vector<CommitRequest*>& batch);
  Status PlaceRequest(CommitRequest* r);
  Status ApplyIntent(const std::string& body, int64_t intent_id, std::vector<Unlink>* unlink_after);
  Status RemoveFile(const std::string& location, const std::string& bucket);
  std::string Abs(const std::string& location) const { return root_ + "/" + location; }
  std::string NewVersionId();

  std::string root_;
  MetaStore* meta_;
  std::string region_;
  uint64_t min_part_size_ = 5ull << 20;
  std::atomic<int64_t> seq_{0};
  std::atomic<uint32_t> temp_counter_{0};
  bool use_direct_io_ = false;
  std::mutex buffers_mu_;
  std::vector<IoBuffer> free_buffers_;  // guarded by buffers_mu_
  // Group commit: PUTs waiting to commit, in arrival order; the front one leads.
  std::mutex commit_mu_;
  std::deque<CommitRequest*> commit_queue_;  // guarded by commit_mu_
  // Exclusive for commits, deletes and directory changes; shared to resolve + open a file.
  std::shared_mutex mu_;
};

}  // namespace tarn::storage
