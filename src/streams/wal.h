// A delivery stream's write-ahead log under <data>/wal/<stream>/ (DESIGN.md §3).
//
// Every record a producer hands to a stream is appended here and acknowledged only once it is
// on disk (fdatasync). Concurrent appenders share one fsync: appends go into a pending batch
// that a writer thread owned by the Wal writes and syncs in one go, then completes every
// appender of the batch (group commit). The caller's thread never does I/O.
//
// On disk:
//   <dir>/<first-seq, 20 digits>.wal   segments: 8-byte magic "TARNWAL1", then records
//       record = u32 body length | u32 crc32(body) | body
//       body   = u64 seq | i64 arrival time (µs since epoch) | data bytes      (little endian)
//   <dir>/checkpoint                   "<delivered-through seq>\n<opaque consumer state>",
//                                      replaced atomically (temp, fsync, rename, fsync dir)
//
// Open() replays every record after the checkpoint's sequence to the caller, in order. A torn
// or corrupt tail (a crash mid-write) is truncated with a warning; Open never refuses to start
// over a damaged log. Sequence numbers are dense and strictly increasing across restarts.
// A segment is deleted only when the consumer's checkpoint says every record in it is
// delivered. When the log's segments reach the disk quota, Append fails with
// kFirehoseServiceUnavailable (backpressure) until a checkpoint frees space.
//
// Thread-safety: every method is thread-safe. Completions run on the writer thread: they must
// be short and must not call back into this Wal's Append.
#pragma once

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

namespace tarn::streams {

struct WalRecord {
  uint64_t seq = 0;
  int64_t arrival_micros = 0;
  std::string data;
};

struct WalOptions {
  uint64_t segment_bytes = 64ull << 20;  // a new segment starts after this many bytes
  uint64_t quota_bytes = 1ull << 30;     // segments + pending bytes above this → backpressure
  // Test hook: no fdatasync (the crash test's child never skips it).
  bool sync = true;
};

// Called once per group commit with the records that just became durable, in sequence order,
// before their appenders are acknowledged.
using DurableFn = std::function<void(std::vector<WalRecord>&& records)>;
// Called for one appended batch: OK with the batch's first sequence number, or the error.
using AppendDone = std::function<void(const Status& status, uint64_t first_seq)>;

class Wal {
 public:
  // Opens (creating) the log in `dir`, truncating a damaged tail, and calls `replay` for each
  // record after the checkpoint, in order, before returning. `on_durable` receives every record
  // appended from now on once it is durable. Starts the writer thread.
  static Result<std::unique_ptr<Wal>> Open(const std::string& dir, const WalOptions& options,
                                           const std::function<void(WalRecord&&)>& replay,
                                           DurableFn on_durable);
  ~Wal();  // completes pending appends (writes and syncs them), stops the writer

  // Appends `records` (data + arrival time; seq is assigned here, dense and in order) as one
  // unit; `done` runs on the writer thread after the fsync that made them durable, or with an
  // error (quota full: kFirehoseServiceUnavailable; I/O failure: kIoError) — then nothing of
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
  struct Batch {
    std::string bytes;  // encoded records
    std::vector<WalRecord> records;
    std::vector<AppendDone> done;
    std::vector<uint64_t> first_seqs;  // per done
  };

  Wal(std::string dir, WalOptions options, DurableFn on_durable);
  Status Recover(const std::function<void(WalRecord&&)>& replay);
  Status OpenNewSegment(uint64_t first_seq);  // caller holds no lock; writer thread or Open
  void WriterLoop();
  void DeleteDeliveredSegments();

  const std::string dir_;
  const WalOptions options_;
  DurableFn on_durable_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Batch pending_;               // guarded by mu_
  uint64_t next_seq_ = 1;       // guarded by mu_
  uint64_t disk_bytes_ = 0;     // guarded by mu_ (segments on disk)
  uint64_t delivered_ = 0;      // guarded by mu_
  std::string state_;           // guarded by mu_
  std::deque<Segment> segments_;  // guarded by mu_; the last one is being written
  Status failed_;               // guarded by mu_; set after an I/O error, then appends fail
  bool stop_ = false;           // guarded by mu_

  std::mutex checkpoint_mu_;  // serialises Checkpoint() calls
  int fd_ = -1;               // the active segment; writer thread only (and Open)
  uint64_t fd_bytes_ = 0;     // writer thread only
  std::thread writer_;
};

// CRC-32 (IEEE, as zlib's crc32) of `data`.
uint32_t WalCrc(std::string_view data);

}  // namespace tarn::streams
