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

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ops/metrics.h"
#include "streams/destination.h"
#include "streams/jq.h"
#include "streams/wal.h"

namespace tarn::streams {

struct BufferedRecord {
  WalRecord rec;
  // Set for records routed to the error output before delivery (dynamic partitioning failed).
  std::string error_code, error_message;
};

struct PartitionBuffer {
  std::vector<BufferedRecord> records;  // seq ascending
  uint64_t bytes = 0;
  int64_t first_mono = 0;  // Clock::MonotonicNanos() when the oldest buffered record arrived
  // A flush to repeat with exactly these records (recovery, or a failed attempt).
  std::vector<BufferedRecord> redo;
};

struct PartitionMark {
  uint64_t delivered_last = 0;
  uint64_t inflight_first = 0, inflight_last = 0;  // 0 = none
};

class DeliveryStream {
 public:
  std::string name, arn, type;

  std::mutex mu;
  std::shared_ptr<const DestinationConfig> config;  // guarded by mu
  std::shared_ptr<JqQuery> jq;                      // guarded by mu; null without a query
  std::map<std::string, PartitionBuffer> buffers;   // guarded by mu
  std::map<std::string, PartitionMark> marks;       // guarded by mu
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

  std::unique_ptr<Wal> wal;
  std::mutex flush_mu;  // one flush of this stream at a time

  ops::CounterMetric* incoming_records = nullptr;
  ops::CounterMetric* incoming_bytes = nullptr;
  ops::CounterMetric* delivered_records = nullptr;
  ops::CounterMetric* delivered_bytes = nullptr;
  ops::CounterMetric* failed_conversion = nullptr;
  ops::CounterMetric* failed_processing = nullptr;
  ops::CounterMetric* delivery_errors = nullptr;
  ops::GaugeMetric* freshness = nullptr;
  ops::GaugeMetric* wal_bytes = nullptr;

  // The partition key a record belongs to: "D:<evaluated prefix>" for data, or
  // "E:<error-output-type>:<evaluated error prefix>" with the error filled in. Caller holds mu.
  std::string PartitionOf(const WalRecord& r, std::string* error_code, std::string* error_message);
  // Buffers a durable record (live or replayed). Caller holds mu.
  void Route(WalRecord&& r, int64_t now_mono, bool replay);
  // The highest seq below which everything is delivered. Caller holds mu.
  uint64_t LowWater() const;
  // Checkpoint state; drops marks the low-water mark makes redundant. Caller holds mu.
  std::string SerializeMarks(uint64_t low_water);
  void LoadMarks(const std::string& state);
};

}  // namespace tarn::streams
