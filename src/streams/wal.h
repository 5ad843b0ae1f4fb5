// A delivery stream's write-ahead log under <data>/wal/<stream>/ (DESIGN.md §3).
//
// Every record a producer hands to a stream is appended here and acknowledged only once it is
// on disk (fdatasync). Concurrent appenders share one fsync (group commit), and syncs overlap
// (pipelined): appends go into a pending batch; one of a few committer threads owned by the Wal
// takes the whole batch, writes it (writes are serialised, in sequence order), then runs
// fdatasync while the next committer is already free to write and sync the next batch. A
// batch is acknowledged once a sync that began after its write has returned, in sequence order.
// A producer therefore never waits for a sync that started before its records were written —
// on a disk whose cache flush takes milliseconds that wait was most of the latency. Each
// committer syncs through its own file descriptor, so a writeback error is reported to every
// committer (the kernel reports it once per open file), never swallowed by another one.
// The caller's thread never does I/O.
//
// On disk:
//   <dir>/<first-seq, 20 digits>.wal   segments: 8-byte magic "TARNWAL3", then records
//       record = u32 body length | u32 crc32c(body) | body
//       body   = u64 seq | i64 arrival time (µs since epoch) | u32 meta length | meta bytes |
//                data bytes                                                  (little endian)
//       Segments written before meta existed ("TARNWAL1") have no meta fields, and those of
//       "TARNWAL1" and "TARNWAL2" are checked with CRC-32 (zlib's) instead of CRC-32C; they are
//       still read. `meta` is the producer's small per-record attachment (the stream keeps a record's
//       origin there, for recognising a device's resend), opaque to the log.
//   <dir>/checkpoint                   "<delivered-through seq>\n<opaque consumer state>",
//                                      replaced atomically (temp, fsync, rename, fsync dir)
//
// Open() replays every record after the checkpoint's sequence to the caller, in order. A torn
// or corrupt tail (a crash mid-write) is truncated with a warning; Open never refuses to start
// over a damaged log. Sequence numbers are dense and strictly increasing across restarts.
// A segment is retired only when the consumer's checkpoint says every record in it is
// delivered: it is then renamed `recycle-<n>` (a few are kept, the rest deleted) and a later new
// segment takes such a file over and overwrites it from the start — its blocks are allocated
// and its pages are usually still cached, so the log's writes copy into existing pages instead
// of allocating fresh ones, and fdatasync has no file size to record. The bytes after a reused
// segment's last record are its earlier contents; their records have sequence numbers below the
// segment's first (its name), which is how Open tells the end of the log from them. A clean
// close truncates the active segment to its records. Spares older than a minute, or found at
// Open, are deleted instead (their pages may be gone from the cache: overwriting would read). When the log's segments reach the disk quota, Append fails with
// kFirehoseServiceUnavailable (backpressure) until a checkpoint frees space.
//
// Thread-safety: every method is thread-safe. Completions run on a committer thread, one batch
// at a time and in sequence order: they must be short and must not call back into this Wal's
// Append.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"

namespace tarn::ops {
class HistogramMetric;
}

namespace tarn::streams {

struct WalRecord {
  uint64_t seq = 0;
  int64_t arrival_micros = 0;
  std::string data;
  std::string meta;  // opaque to the log, stored with the record (empty: none)
};

struct WalOptions {
  uint64_t segment_bytes = 64ull << 20;  // a new segment starts after this many bytes
  uint64_t quota_bytes = 1ull << 30;     // segments + pending bytes above this → backpressure
  // Committer threads, i.e. fdatasyncs that may be in flight at once (at least 1).
  int committers = 3;
  // Delivered segment files kept for reuse by new segments (0: delete them at once), while the
  // live and kept segments together fit in quota_bytes. A busy stream retires several segments
  // at each checkpoint and needs as many new ones before the next: with too few kept, the rest
  // are written into fresh page-cache pages (docs/streams.md).
  int recycled_segments = 16;
  // Test hook: no fdatasync (the crash test's child never skips it).
  bool sync = true;
  // Optional (may be null): seconds per fdatasync, and from Append to acknowledgement.
  ops::HistogramMetric* sync_seconds = nullptr;
  ops::HistogramMetric* commit_seconds = nullptr;
};

// Called once per group commit with the records that just became durable, in sequence order,
// before their appenders are acknowledged.
using DurableFn = std::function<void(std::vector<WalRecord>&& records)>;
// Called for one appended batch: OK with the batch's first sequence number, or the error.
using AppendDone = std::function<void(const Status& status, uint64_t first_seq)>;

// Optional hooks of a log's consumer.
struct WalHooks {
  // At Open: every intact record found in the log, delivered or not, in order, with its data
  // left empty (seq, arrival time and meta only) — before `replay` sees the undelivered ones.
  std::function<void(const WalRecord& header)> scan;
  // Before segments are deleted (their records all delivered): `last_seq` is the newest record
  // they hold. An error keeps them on disk until the next checkpoint. Runs on the thread that
  // called Checkpoint (or Open), with no lock of the log held.
  std::function<Status(uint64_t last_seq)> before_delete;
};

class Wal {
 public:
  // Opens (creating) the log in `dir`, truncating a damaged tail, and calls `replay` for each
  // record after the checkpoint, in order, before returning. `on_durable` receives every record
  // appended from now on once it is durable. Starts the writer thread.
  static Result<std::unique_ptr<Wal>> Open(const std::string& dir, const WalOptions& options,
                                           const std::function<void(WalRecord&&)>& replay,
                                           DurableFn on_durable, WalHooks hooks = {});
  ~Wal();  // completes pending appends (writes and syncs them), stops the committers

  // Appends `records` (data + arrival time; seq is assigned here, dense and in order) as one
  // unit; `done` runs on a committer thread after the fsync that made them durable, or with an
  // error (quota full or I/O failure: kFirehoseServiceUnavailable) — then nothing of
  // the batch is acknowledged. On a quota error `done` runs on the caller's thread before
  // Append returns.
  void Append(std::vector<WalRecord> records, AppendDone done);
  // Appends and waits for durability; returns the first sequence number.
  Result<uint64_t> AppendSync(std::vector<WalRecord> records);

  // Records that every record with seq <= `delivered_through` is durably delivered, with the
  // consumer's `state` (opaque to the Wal), atomically. Then deletes the segments whose records
  // are all delivered. `delivered_through` never moves backwards.
  Status Checkpoint(uint64_t delivered_through, const std::string& state);

  // The checkpoint as read at Open (or last written).
  uint64_t delivered_through() const;
  std::string checkpoint_state() const;
  // The sequence number the next appended record gets.
  uint64_t next_seq() const;
  // Bytes of segment files on disk (for metrics and the quota).
  uint64_t disk_bytes() const;
  const std::string& dir() const { return dir_; }

  // Closes the writer and removes the directory (DeleteDeliveryStream).
  static Status Destroy(std::unique_ptr<Wal> wal);

 private:
  struct Segment {
    uint64_t first_seq;
    std::string path;
    uint64_t bytes;
  };
  // The open segment being written: one descriptor for writes, one per committer for syncs.
  struct SegmentFile {
    int fd = -1;
    std::vector<int> sync_fds;
    ~SegmentFile();
  };
  struct Batch {
    std::string bytes;  // encoded records
    std::vector<WalRecord> records;
    std::vector<AppendDone> done;
    std::vector<uint64_t> first_seqs;  // per done
    std::vector<int64_t> appended_ns;  // per done: steady clock at Append
  };
  // A batch written to the segment, waiting for a sync that covers it.
  struct Written {
    uint64_t end = 0;  // log position (bytes written since Open) after the batch
    Batch batch;
  };

  Wal(std::string dir, WalOptions options, DurableFn on_durable, WalHooks hooks);
  Status Recover(const std::function<void(WalRecord&&)>& replay);
  Status OpenNewSegment(uint64_t first_seq);  // Open, or a committer holding write_mu_
  void CommitterLoop(size_t index);
  // Acknowledges, in order, every written batch that ends at or before `durable` (a log
  // position a successful sync covered); with an error, fails every written batch instead.
  void Complete(uint64_t durable, const Status& error);
  void DeleteDeliveredSegments();  // retires them: renamed for reuse, or deleted
  // A retired segment file to reuse for a new segment ("" for none); appends to `stale` the
  // spares too old to reuse.
  std::string TakeSpareFile(std::vector<std::string>* stale);
  size_t MaxSpares() const { return size_t(std::max(1, options_.committers)) + 1; }

  const std::string dir_;
  const WalOptions options_;
  DurableFn on_durable_;
  WalHooks hooks_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Batch pending_;               // guarded by mu_
  // Buffers of written batches, cleared, for the next pending batch: the encoded bytes and the
  // record vector keep their pages, so the hot path does not fault fresh memory in per batch
  // (a trap into the hypervisor per 4 KiB on a VM). One per batch that can be in flight (being
  // written or synced by a committer, or waiting for acknowledgement) and one more: with a
  // single spare, the next batch often started from an empty vector while the others synced.
  // Guarded by mu_.
  std::vector<std::string> spare_bytes_;
  std::vector<std::vector<WalRecord>> spare_records_;
  uint64_t next_seq_ = 1;       // guarded by mu_
  uint64_t disk_bytes_ = 0;     // guarded by mu_ (segments on disk)
  uint64_t delivered_ = 0;      // guarded by mu_
  std::string state_;           // guarded by mu_
  std::deque<Segment> segments_;  // guarded by mu_; the last one is being written
  // Retired segment files waiting for reuse, oldest first, with when they were retired
  // (steady clock ns); guarded by mu_.
  std::deque<std::pair<std::string, int64_t>> spare_files_;
  uint64_t spare_counter_ = 0;    // guarded by mu_: names recycle-<n>
  Status failed_;               // guarded by mu_; set after an I/O error, then appends fail
  bool stop_ = false;           // guarded by mu_

  // Serialises taking the pending batch and writing it, so the log is in sequence order.
  std::mutex write_mu_;
  std::shared_ptr<SegmentFile> file_;  // guarded by write_mu_ (and Open)
  uint64_t file_bytes_ = 0;            // guarded by write_mu_: bytes in the active segment
  uint64_t written_pos_ = 0;           // guarded by write_mu_: log position written

  std::mutex complete_mu_;
  std::deque<Written> written_;  // guarded by complete_mu_, in log order
  uint64_t durable_pos_ = 0;     // guarded by complete_mu_
  // Held while completions run, taken before complete_mu_ is released: completions of
  // consecutive batches never overlap or reorder.
  std::mutex callback_mu_;

  std::mutex checkpoint_mu_;  // serialises Checkpoint() calls
  std::vector<std::thread> committers_;
};

// CRC-32 (IEEE, as zlib's crc32) of `data`: records of segments TARNWAL1/2, origin snapshots.
uint32_t WalCrc(std::string_view data);
// CRC-32C (Castagnoli, as iSCSI's and ext4's) of `data`: records of segments TARNWAL3. SSE 4.2's
// crc32 instruction where the CPU has it, in three interleaved streams from 128 bytes on.
uint32_t WalCrc32c(std::string_view data);

namespace internal {
// WalCrc32c's paths on their own, whatever the length: one crc32 chain (the code before the
// three streams), the three streams, and the table (CPUs without SSE 4.2). For tests and
// benchmarks; all equal WalCrc32c.
uint32_t WalCrc32cOneStream(std::string_view data);
uint32_t WalCrc32cThreeWay(std::string_view data);
uint32_t WalCrc32cPortable(std::string_view data);
}  // namespace internal

}  // namespace tarn::streams
