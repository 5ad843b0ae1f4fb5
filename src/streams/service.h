// Delivery streams (Kinesis Data Firehose in Tarn, DESIGN.md §1): the stream definitions, each
// stream's write-ahead log, its per-partition buffers and the flush into the object store.
//
//   producer ─Append─▶ Wal (group-commit fsync, ack) ─▶ partition buffers ─flush─▶ ObjectStore
//                                                                 (Parquet via DuckDB, or raw)
//
// Definitions live in the MetaStore (module "streams", table firehose_streams); records live in
// <data>/wal/<stream>/ until a flush has put them in objects. A flush is idempotent: its
// object key carries the stream, the first record's arrival time and the WAL sequence range, and
// the range is recorded in the WAL checkpoint (an "intent") before the object is written, so
// recovery after a crash rewrites exactly the same object — never a duplicate, never a gap.
//
// Thread-safety: thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/meta_store.h"
#include "core/status.h"
#include "streams/record_sink.h"
#include "streams/wal.h"

namespace tarn::storage {
class ObjectStore;
}
namespace tarn::catalog {
class CatalogStore;
}

namespace tarn::streams {

struct StreamServiceOptions {
  std::string wal_root;  // <data>/wal
  std::string account_id;
  std::string region = "us-east-1";
  WalOptions wal;
  Clock* clock = Clock::Real();
  // Run a flusher thread that flushes due buffers. Tests switch it off and call FlushDue().
  bool background_flush = true;
  // Flush jobs (one partition's records → objects) run on a pool of this many threads: different
  // partitions and streams convert and deliver in parallel, one job per partition at a time.
  int flush_threads = 2;
  // Device resends (docs/streams.md, "Exactly once from devices"): a record's origin is
  // remembered this long after it arrived, for at most this many records per stream.
  int64_t dedup_window_seconds = 600;
  size_t dedup_max_entries = 1 << 20;
  // Compaction of small Parquet objects (docs/streams.md "Compaction"): merge this many objects
  // of one size level into one (0 = off); delete the merged inputs this long after the merged
  // object landed, so that a query which listed them just before still finds them.
  size_t compaction_files = 8;
  int64_t compaction_grace_ms = 30000;
  // IntervalInSeconds 0 (docs/streams.md "Buffering"): a partition's next flush starts at least
  // this long after its previous one started, unless its buffer reached SizeInMBs. A busy stream
  // then writes a few larger objects a second instead of one small object per WAL commit: fewer
  // conversions, checkpoints, file creations and compaction rewrites, for at most this much
  // more latency. 0 = flush as soon as the partition's previous flush ends.
  int64_t zero_interval_gap_ms = 250;
};

struct PutResult {
  Status status;    // per record
  uint64_t seq = 0; // WAL sequence number when OK
};

class DeliveryStream;
struct DestinationConfig;
struct BufferedRecord;
struct FlushJob;
struct FolderObject;

class StreamService final : public RecordSink {
 public:
  // `catalog` may be null: format conversion is then refused at create.
  static Result<std::unique_ptr<StreamService>> Open(MetaStore* meta, storage::ObjectStore* store,
                                                     catalog::CatalogStore* catalog,
                                                     StreamServiceOptions options);
  ~StreamService() override;  // flushes nothing: the WAL keeps what was not delivered

  // --- control plane (Firehose API shapes, nlohmann::json in and out) ---
  Result<std::string> Create(const std::string& name, const std::string& type,
                             const nlohmann::json& extended_s3, const nlohmann::json& tags);
  Result<nlohmann::json> Describe(const std::string& name);  // DeliveryStreamDescription
  Result<std::vector<std::string>> List();
  Status Delete(const std::string& name);
  Status UpdateDestination(const std::string& name, const std::string& version_id,
                           const std::string& destination_id, const nlohmann::json& update);
  Status Tag(const std::string& name, const nlohmann::json& tags);
  Status Untag(const std::string& name, const std::vector<std::string>& keys);
  Result<nlohmann::json> Tags(const std::string& name);  // [{Key, Value}] sorted by key
  std::string Arn(const std::string& name) const;
  bool Exists(const std::string& name);

  // --- data plane ---
  // Appends `records` as one WAL batch; `done` gets one PutResult per record once durable.
  void Put(const std::string& name, std::vector<std::string> records,
           std::function<void(std::vector<PutResult>)> done);
  void Append(const std::string& stream, std::string data,
              std::function<void(const Status&)> done,
              const RecordOrigin* origin = nullptr) override;
  // Checks against the schema table as read at most a second ago (a schema change reaches the
  // check within a second, the flush at once).
  Status CheckConversion(const std::string& stream, std::string_view data) override;

  // --- flushing ---
  // Flushes every partition whose buffer is due (size or interval reached) and waits for it.
  Status FlushDue();
  // Flushes everything buffered (shutdown, tests) and waits for it.
  Status FlushAll();

  // --- compaction (docs/streams.md "Compaction"; compact.cc) ---
  // Merges every stream's small Parquet objects as the policy picks them, on this thread, until
  // nothing is left to merge, then deletes the merged inputs whose grace period is over. The
  // background flusher does the same on the flush pool; tests without it call this.
  Status Compact();

 private:
  StreamService(MetaStore* meta, storage::ObjectStore* store, catalog::CatalogStore* catalog,
                StreamServiceOptions options);
  Status InitFlush();
  Status LoadStreams();
  Result<std::shared_ptr<DeliveryStream>> OpenStream(const std::string& name,
                                                     const std::string& destination_json,
                                                     bool infer_schema);
  std::shared_ptr<DeliveryStream> Find(const std::string& name);
  Status ValidateForLake(const nlohmann::json& extended_s3, const std::string& name,
                         bool infer_schema);
  // The schema table of `config`, created from `records` when it is missing and the stream
  // infers schemas.
  Result<nlohmann::json> SchemaTable(DeliveryStream& s, const DestinationConfig& config,
                                     const std::vector<const WalRecord*>& records);
  // Flushes `s` (due partitions, or everything buffered) on the pool and waits.
  Status FlushStream(const std::shared_ptr<DeliveryStream>& s, bool all);
  // Takes the due (or all) partitions of `s` that have no job in flight, recording intents.
  // The jobs of `s`'s due partitions (all of them with `all`). With `paced_until` (the background
  // flusher), an IntervalInSeconds 0 partition also waits out options_.zero_interval_gap_ms since
  // its previous flush; the earliest time such a partition becomes due is lowered into it.
  std::vector<FlushJob> CollectJobs(const std::shared_ptr<DeliveryStream>& s, bool all,
                                    int64_t* paced_until = nullptr);
  // Runs jobs on the pool: Dispatch returns at once; RunAndWait returns the first error.
  void Dispatch(std::vector<FlushJob> jobs);
  Status RunAndWait(std::vector<FlushJob> jobs);
  Status RunJob(FlushJob& job);  // on a pool thread
  // Writes the stream's delivery marks to its WAL checkpoint (coalesced, see stream.h).
  Status CheckpointStream(DeliveryStream& s);
  // Waits until no flush job of `s` runs and keeps new ones from starting; caller holds s.mu.
  static void PauseFlushes(DeliveryStream& s, std::unique_lock<std::mutex>& lock);
  Status WriteJob(DeliveryStream& s, const DestinationConfig& config, const std::string& key,
                  const std::vector<BufferedRecord>& records, uint64_t* output_bytes,
                  FolderObject* parquet);
  Status RegisterPartition(const DestinationConfig& config, const nlohmann::json& table,
                           const std::string& partition);
  void UpdateFreshness(DeliveryStream& s);
  // Compaction (compact.cc). NoteObject records a Parquet object a flush wrote (caller holds
  // s.mu); ScheduleCompactions hands folders with work and due deletions to the pool;
  // CompactFolder lists the folder once, then does at most one merge (true when it merged).
  void NoteObject(DeliveryStream& s, const std::string& partition, const DestinationConfig& config,
                  FolderObject object);
  void ScheduleCompactions(const std::shared_ptr<DeliveryStream>& s);
  Result<bool> CompactFolder(DeliveryStream& s, const std::string& folder);
  // Deletes merged inputs whose grace period is over (all of them with `all`).
  Status DeleteMergedInputs(DeliveryStream& s, bool all);
  // Writes <wal dir>/compactions: the folders where a merge may have left covered objects.
  Status WriteCompactionsFile(DeliveryStream& s);
  // At start: deletes the covered objects that merges interrupted by a crash left behind.
  Status RecoverCompactions(DeliveryStream& s);
  // Lists a folder (no sub-folders): the stream's objects with `extension`, and the covered ones.
  Status ListFolder(const DeliveryStream& s, const std::string& bucket, const std::string& prefix,
                    const std::string& extension, std::vector<FolderObject>* live,
                    std::vector<std::string>* covered);
  void FlusherLoop();
  void Wake();

  MetaStore* meta_;
  storage::ObjectStore* store_;
  catalog::CatalogStore* catalog_;
  StreamServiceOptions options_;

  std::mutex create_mu_;  // serialises Create / UpdateDestination
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<DeliveryStream>> streams_;  // guarded by mu_

  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool stop_ = false;   // guarded by flusher_mu_
  bool wake_ = false;   // guarded by flusher_mu_
  std::thread flusher_;

  struct Flush;  // flush.cc
  std::shared_ptr<Flush> flush_;  // shared_ptr: Flush is complete only in flush.cc
  friend class DeliveryStream;
};

}  // namespace tarn::streams
