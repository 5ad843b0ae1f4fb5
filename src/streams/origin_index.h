// The recent origins of one delivery stream's records: what recognises a device's resend of a
// message whose record is already durable (docs/streams.md, "Exactly once from devices").
//
// An origin (record_sink.h) is reduced to a key — StableHash64 of the client id, packet id and
// slot — and the payload hash. The newest record of a key wins: a new message that reuses a
// packet id replaces the entry of the earlier one. Entries are forgotten when their record
// arrived more than `window` before the newest one, or, beyond `max_entries`, oldest first.
//
// Persistence: each record's origin travels in its WAL meta (EncodeMeta), so recovery rebuilds
// the index by scanning the log; before delivered segments are deleted, the stream writes the
// entries they hold to a snapshot file (Snapshot / Load), so an origin outlives its record's
// segment for the window even when the record was flushed at once (IntervalInSeconds 0).
//
// Not thread-safe: the stream guards it with its mutex.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "streams/record_sink.h"

namespace tarn::streams {

class OriginIndex {
 public:
  OriginIndex(int64_t window_micros, size_t max_entries)
      : window_(window_micros), max_entries_(max_entries) {}

  static uint64_t Key(const RecordOrigin& o);
  // The WAL meta of a record with this origin.
  static std::string EncodeMeta(const RecordOrigin& o);

  // Adds the origin of a durable record from its WAL meta; a meta that is not an origin (empty,
  // or another kind) is ignored.
  void AddMeta(std::string_view meta, uint64_t seq, int64_t arrival_micros);
  void Add(uint64_t key, uint64_t payload_hash, uint64_t seq, int64_t arrival_micros);
  // True when the newest record of `o`'s key has `o`'s payload hash and arrived within the
  // window before `now_micros`.
  bool Contains(const RecordOrigin& o, int64_t now_micros) const;

  // The entries of records with seq <= `through`, still within the window at `now_micros`,
  // as the snapshot file's bytes (magic, entries, CRC).
  std::string Snapshot(uint64_t through, int64_t now_micros) const;
  // Adds a snapshot's entries that are within the window at `now_micros`. False (and nothing
  // added) when the bytes are damaged.
  bool Load(std::string_view bytes, int64_t now_micros);

  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    uint64_t payload_hash;
    uint64_t seq;
    int64_t arrival_micros;
  };
  struct Order {
    uint64_t key;
    uint64_t seq;
    int64_t arrival_micros;
  };
  void Expire(int64_t now_micros);

  // Entries beyond which the table is sized for max_entries_ at once (see Add).
  static constexpr size_t kReserveAt = 1 << 16;

  const int64_t window_;
  const size_t max_entries_;
  bool reserved_ = false;
  // Open addressing: at a million entries a node per entry (std::unordered_map) made every
  // insert a cache miss and an allocation, a few per cent of the e2e server's CPU.
  absl::flat_hash_map<uint64_t, Entry> map_;
  std::deque<Order> order_;  // in the order entries were added (seq order, after recovery)
  int64_t newest_ = 0;       // newest arrival time added
};

}  // namespace tarn::streams
