// One delivery stream's in-memory state: its configuration, WAL, partition buffers and the
// per-partition delivery marks persisted in the WAL checkpoint. Internal to src/streams/.
//
// Delivery marks (the checkpoint state, JSON {"<partition>": [delivered_last, inflight_first,
// inflight_last]}): a partition's records are flushed in sequence order, so every record of
// partition P with seq <= delivered_last is in an object; [inflight_first, inflight_last] is
// a flush that was started (its intent written before its objects) and must be repeated
// exactly on recovery. The WAL's delivered-through sequence is the low-water mark below which
// every record of every partition is delivered.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ops/metrics.h"
#include "streams/convert.h"
#include "streams/destination.h"
#include "streams/jq.h"
#include "streams/origin_index.h"
#include "streams/wal.h"

namespace tarn::streams {

struct RecordError {
  std::string code, message;
};

// 88 bytes: every buffered record is written once into its partition's vector, so its size is
// the memory a fill touches (two strings for the rare error cost 64 bytes on every record).
struct BufferedRecord {
  WalRecord rec;
  // Set for records routed to the error output before delivery (dynamic partitioning failed).
  std::unique_ptr<RecordError> error;
};

struct PartitionBuffer {
  std::vector<BufferedRecord> records;  // seq ascending
  uint64_t bytes = 0;
  int64_t first_mono = 0;  // Clock::MonotonicNanos() when the oldest buffered record arrived
  // A flush to repeat with exactly these records (recovery, or a failed attempt).
  std::vector<BufferedRecord> redo;
  // A flush job of this partition is queued or running: the partition's next flush waits for
  // it, so a partition's objects are written in sequence order, one intent at a time.
  bool busy = false;
  // After a failed delivery, the repeat waits until retry_after (Clock::MonotonicNanos());
  // the wait doubles from 100 ms up to 5 s while deliveries keep failing.
  int64_t retry_after = 0;
  int64_t retry_backoff_ns = 0;
  // Records routed here since `records` was last empty, and how many the previous fill reached:
  // a new fill reserves room at once instead of growing (and moving) the vector ~20 times.
  size_t fill = 0;
  size_t last_fill = 0;
};

struct PartitionMark {
  uint64_t delivered_last = 0;
  uint64_t inflight_first = 0, inflight_last = 0;  // 0 = none
};

// One object of a data partition's folder that compaction may merge (docs/streams.md
// "Compaction"): its key, its WAL sequence range (from its name) and its size.
struct FolderObject {
  std::string key;
  uint64_t first = 0, last = 0, size = 0;
};

// The objects compaction knows in one data partition's folder. The folder is listed once per
// process (objects written before a restart); after that flushes and merges keep the list.
struct PartitionFolder {
  std::string partition;  // the partition key ("D:<prefix>") whose records the folder holds
  std::string bucket, prefix, extension;
  std::string parquet_compression;
  bool listed = false;
  bool wanted = false;      // an object was added since the policy last found nothing to merge
  bool compacting = false;  // a compaction job of this folder is queued or running
  int64_t last_object_mono = 0;  // when a flush last added an object (Clock::MonotonicNanos)
  std::vector<FolderObject> objects;  // sequence order
};

// Inputs of a merge, deleted once readers that listed them before the merged object existed
// are done (streams.compaction_grace_seconds).
struct PendingDelete {
  std::string bucket, prefix;
  std::vector<std::string> keys;
  int64_t due_mono = 0;
};

class DeliveryStream {
 public:
  std::string name, arn, type;

  std::mutex mu;
  std::shared_ptr<const DestinationConfig> config;  // guarded by mu
  std::shared_ptr<JqQuery> jq;                      // guarded by mu; null without a query
  std::map<std::string, PartitionBuffer> buffers;   // guarded by mu
  std::map<std::string, PartitionMark> marks;       // guarded by mu
  // IntervalInSeconds 0: when each partition flushed last, for those that flushed within
  // StreamServiceOptions::zero_interval_gap_ms (older entries are dropped). Guarded by mu.
  std::unordered_map<std::string, int64_t> recent_flushes;
  uint64_t max_seen = 0;                            // guarded by mu: last routed seq
  bool deleted = false;                             // guarded by mu
  // Output bytes per buffered input byte (after Parquet encoding or gzip), a moving average over
  // the stream's deliveries, so that SizeInMBs is met by the files written rather than by the
  // records received (the Firehose documentation's reading of the hint). Guarded by mu.
  double output_ratio = 1.0;
  // PartitionOf's cache for prefixes without query keys; guarded by mu.
  int64_t cached_second = -1;
  const DestinationConfig* cached_config = nullptr;
  std::string cached_partition;
  // The query keys of the record being routed, and those of RouteLive's current run of records
  // sharing a partition; kept so that their nodes and strings are reused. Guarded by mu.
  std::map<std::string, std::string> query_keys, run_keys;

  // Compaction state, guarded by mu: folders by bucket + "/" + prefix; the delivered marks as
  // of the last checkpoint written (only objects whose records are durably delivered are merged,
  // so a WAL replay never writes one again); merged inputs waiting for their grace period; how
  // many merges of each folder may have left covered objects (persisted in <wal
  // dir>/compactions, cleared once their inputs are deleted).
  std::map<std::string, PartitionFolder> folders;
  std::map<std::string, uint64_t> durable_delivered;
  uint64_t durable_low = 0;
  std::vector<PendingDelete> pending_deletes;
  bool deleting = false;  // a job deleting due inputs is queued or running
  std::map<std::string, int> uncleaned;  // bucket + "/" + prefix → merges not yet cleaned up
  std::mutex compactions_file_mu;        // serialises writes of <wal dir>/compactions

  std::unique_ptr<Wal> wal;
  // Origins of recent records (device resends), guarded by mu; persisted through the WAL's
  // record meta and <wal dir>/origins (origin_index.h).
  std::unique_ptr<OriginIndex> origins;
  // CheckConversion's columns: the schema table as read at check_read_mono (Clock::MonotonicNanos,
  // 0 = never), read again when a second older; null when the stream converts nothing or its
  // table cannot be read. Guarded by check_mu (not mu: checks run beside the stream's appends).
  std::mutex check_mu;
  std::shared_ptr<const std::vector<ColumnSpec>> check_columns;
  int64_t check_read_mono = 0;

  // Tag tarn:schema-inference=on: a missing SchemaConfiguration table is created from the first
  // records converted (docs/streams.md).
  std::atomic<bool> infer_schema{false};

  // Flush jobs of this stream queued or running on the service's flush pool (any number of
  // partitions at once, one job per partition). Guarded by mu; jobs_cv is signalled (under mu)
  // when it drops. While paused > 0 no new job is taken (UpdateDestination, Delete).
  int jobs_running = 0;
  int paused = 0;
  std::condition_variable jobs_cv;
  // Checkpoints of the delivery marks coalesce: a caller that changed the marks asks for a
  // checkpoint (ticket = ++checkpoint_requested) and is done as soon as a checkpoint whose state
  // was taken after its ticket was written (checkpoint_written >= ticket).
  std::mutex checkpoint_mu;
  std::atomic<uint64_t> checkpoint_requested{0};
  uint64_t checkpoint_written = 0;  // guarded by checkpoint_mu

  ops::CounterMetric* incoming_records = nullptr;
  ops::CounterMetric* incoming_bytes = nullptr;
  ops::CounterMetric* delivered_records = nullptr;
  ops::CounterMetric* delivered_bytes = nullptr;
  ops::CounterMetric* failed_conversion = nullptr;
  ops::CounterMetric* failed_processing = nullptr;
  ops::CounterMetric* delivery_errors = nullptr;
  ops::CounterMetric* duplicates = nullptr;
  ops::CounterMetric* compactions = nullptr;
  ops::CounterMetric* compacted_objects = nullptr;
  ops::CounterMetric* compacted_bytes = nullptr;
  ops::GaugeMetric* freshness = nullptr;
  ops::GaugeMetric* wal_bytes = nullptr;

  // Runs the MetadataExtraction query (if any) over `r` into query_keys. Caller holds mu.
  Status ExtractKeys(const WalRecord& r);
  // The partition key a record belongs to, from ExtractKeys' result for it: "D:<evaluated
  // prefix>" for data, or "E:<error-output-type>:<evaluated error prefix>" with the error filled
  // in. Caller holds mu.
  std::string PartitionOf(const WalRecord& r, Status extracted, std::string* error_code,
                          std::string* error_message);
  // PartitionOf for `r`, recording a routing error in `b` (and the failed-processing metric).
  std::string PartitionFor(const WalRecord& r, Status extracted, BufferedRecord* b);
  // Buffers a durable record (live or replayed). Caller holds mu.
  void Route(WalRecord&& r, int64_t now_mono, bool replay);
  // Buffers one group commit's durable records, in order, as Route(…, false) would: without
  // query keys, records that arrived in the same second share one partition look-up. Caller
  // holds mu.
  void RouteLive(std::vector<WalRecord>&& records, int64_t now_mono);
  // Appends a routed record to `p`. Caller holds mu.
  void Buffer(PartitionBuffer& p, BufferedRecord&& b, int64_t now_mono);
  // Takes the record vector of a finished flush job back for a partition's next fill (its
  // memory stays faulted in: a fresh vector of a large fill faulted a page per ~46 records), of
  // any size unless it is far larger than the fill it held. Caller does not hold mu.
  void RecycleRecords(std::vector<BufferedRecord>&& records);
  // Empty vectors with capacity, from finished jobs (a few: a new fill may start before the job
  // of the previous one has handed its vector back), sorted by capacity. Guarded by mu.
  std::vector<std::vector<BufferedRecord>> spare_records;
  // The highest seq below which everything is delivered. Caller holds mu.
  uint64_t LowWater() const;
  // Checkpoint state; drops marks the low-water mark makes redundant. Caller holds mu.
  std::string SerializeMarks(uint64_t low_water);
  void LoadMarks(const std::string& state);
};

}  // namespace tarn::streams
