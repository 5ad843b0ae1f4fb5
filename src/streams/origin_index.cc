#include "streams/origin_index.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "core/hash.h"
#include "streams/wal.h"

namespace tarn::streams {

namespace {

constexpr char kMetaOrigin = 'O';  // meta kind: a device message's origin
constexpr size_t kMetaSize = 1 + 8 + 8;
constexpr char kSnapshotMagic[8] = {'T', 'A', 'R', 'N', 'O', 'R', 'G', '1'};
constexpr size_t kSnapshotEntry = 32;

void PutU64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = char((v >> (8 * i)) & 0xff);
  out->append(b, 8);
}
// Little-endian, as PutU64.
void StoreU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = char((v >> (8 * i)) & 0xff);
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | uint8_t(p[i]);
  return v;
}

}  // namespace

uint64_t OriginIndex::Key(const RecordOrigin& o) {
  uint64_t h = StableHash64(o.client_id, 0x6f726967696e31ull);
  h = StableHashCombine(h, o.packet_id);
  return StableHashCombine(h, o.slot);
}

std::string OriginIndex::EncodeMeta(const RecordOrigin& o) {
  std::string m;
  m.reserve(kMetaSize);
  m.push_back(kMetaOrigin);
  PutU64(&m, Key(o));
  PutU64(&m, o.payload_hash);
  return m;
}

void OriginIndex::AddMeta(std::string_view meta, uint64_t seq, int64_t arrival_micros) {
  if (meta.size() != kMetaSize || meta[0] != kMetaOrigin) return;
  Add(GetU64(meta.data() + 1), GetU64(meta.data() + 9), seq, arrival_micros);
}

void OriginIndex::Add(uint64_t key, uint64_t payload_hash, uint64_t seq, int64_t arrival_micros) {
  if (!reserved_ && map_.size() >= kReserveAt) {
    // A busy stream: room for max_entries at once, so the table is not rehashed (and faulted
    // in anew) at every doubling on the way there — four rehashes of up to half a million
    // entries each at the default 1 Mi, a few per cent of the e2e server's CPU in a 30 s run.
    // A quiet stream stays small.
    reserved_ = true;
    map_.reserve(max_entries_ + 1);
  }
  map_.insert_or_assign(key, Entry{payload_hash, seq, arrival_micros});
  order_.push_back({key, seq, arrival_micros});
  newest_ = std::max(newest_, arrival_micros);
  Expire(newest_);
}

void OriginIndex::Expire(int64_t now_micros) {
  while (!order_.empty() &&
         (order_.front().arrival_micros < now_micros - window_ || order_.size() > max_entries_)) {
    const Order& o = order_.front();
    auto it = map_.find(o.key);
    // Only if no newer record of the key replaced the entry.
    if (it != map_.end() && it->second.seq == o.seq) map_.erase(it);
    order_.pop_front();
  }
}

bool OriginIndex::Contains(const RecordOrigin& o, int64_t now_micros) const {
  auto it = map_.find(Key(o));
  return it != map_.end() && it->second.payload_hash == o.payload_hash &&
         it->second.arrival_micros >= now_micros - window_;
}

std::string OriginIndex::Snapshot(uint64_t through, int64_t now_micros) const {
  // Sized once and written in place: at a million entries, appending 8 bytes at a time (the
  // string growing to 32 MiB by doubling) cost ~1 % of the e2e server's CPU, under the stream's
  // mutex, at every deletion of delivered segments.
  std::string out(sizeof(kSnapshotMagic) + map_.size() * kSnapshotEntry + 4, '\0');  // + CRC
  std::memcpy(out.data(), kSnapshotMagic, sizeof(kSnapshotMagic));
  char* p = out.data() + sizeof(kSnapshotMagic);
  for (const auto& [key, e] : map_) {
    if (e.seq > through || e.arrival_micros < now_micros - window_) continue;
    StoreU64(p, key);
    StoreU64(p + 8, e.payload_hash);
    StoreU64(p + 16, e.seq);
    StoreU64(p + 24, uint64_t(e.arrival_micros));
    p += kSnapshotEntry;
  }
  out.resize(size_t(p - out.data()));  // the capacity keeps room for the CRC
  uint32_t crc = WalCrc(out);
  for (int i = 0; i < 4; ++i) out.push_back(char((crc >> (8 * i)) & 0xff));
  return out;
}

bool OriginIndex::Load(std::string_view bytes, int64_t now_micros) {
  if (bytes.size() < sizeof(kSnapshotMagic) + 4 ||
      std::memcmp(bytes.data(), kSnapshotMagic, sizeof(kSnapshotMagic)) != 0 ||
      (bytes.size() - sizeof(kSnapshotMagic) - 4) % kSnapshotEntry != 0) {
    return false;
  }
  std::string_view body = bytes.substr(0, bytes.size() - 4);
  uint32_t crc = 0;
  for (int i = 3; i >= 0; --i) crc = (crc << 8) | uint8_t(bytes[body.size() + i]);
  if (WalCrc(body) != crc) return false;
  // Oldest first, so that the order the entries expire in is their records' order.
  std::vector<Order> entries;
  std::unordered_map<uint64_t, uint64_t> hashes;
  for (size_t at = sizeof(kSnapshotMagic); at < body.size(); at += kSnapshotEntry) {
    const char* p = body.data() + at;
    Order o{GetU64(p), GetU64(p + 16), int64_t(GetU64(p + 24))};
    if (o.arrival_micros < now_micros - window_) continue;
    hashes[o.key] = GetU64(p + 8);
    entries.push_back(o);
  }
  std::sort(entries.begin(), entries.end(),
            [](const Order& a, const Order& b) { return a.seq < b.seq; });
  for (const Order& o : entries) Add(o.key, hashes[o.key], o.seq, o.arrival_micros);
  return true;
}

}  // namespace tarn::streams
