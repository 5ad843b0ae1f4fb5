// The broker's append-only log of persistent state under <data>/mqtt/: persistent sessions,
// their subscriptions and queued QoS 1/2 messages, and retained messages.
//
// Durability: Append() only copies the record into memory and returns its log sequence
// number (LSN); one writer thread writes and fdatasync()s batches (group commit) and then runs
// the WhenDurable callbacks, which is how the broker holds back a PUBACK until what it
// acknowledges is on disk without ever blocking a network thread on the disk.
//
// Compaction: Rotate() starts a new generation file that begins with a snapshot of the live
// state; the old file is deleted once the new one is durable. A generation whose snapshot is
// incomplete (crash during rotation) is set aside and the previous one is used.
//
// Damage: a torn or corrupt tail (short record, bad CRC, unknown type) is copied to
// "<file>.corrupt-<unix time>", cut off, and logged as a warning; the broker still starts.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/mqtt/types.h"

namespace tarn::gateway::mqtt {

struct StoredMessage {
  uint64_t seq = 0;
  uint8_t qos = 0;  // delivery QoS (min of publish and subscription)
  bool retain = false;
  std::vector<uint32_t> subscription_ids;
  Message msg;
};

struct RecoveredSession {
  uint32_t expiry_interval = 0;
  // Who the client last authenticated as, so authorisation of messages routed to the session
  // while it is offline after a restart sees the same identity.
  std::string identity;
  std::string username;
  std::map<std::string, Subscription> subscriptions;
  std::map<uint64_t, StoredMessage> messages;  // by seq
  // Incoming QoS 2 packet ids PUBREC'd and not yet released (MQTT 5.0 §4.3.3): a
  // retransmission after a restart is acknowledged, not delivered twice.
  std::set<uint16_t> qos2_received;
  uint64_t next_seq = 1;
};

struct RecoveredState {
  std::map<std::string, RecoveredSession> sessions;
  std::map<std::string, Message> retained;
  uint64_t records = 0;
  std::vector<std::string> warnings;
};

// Record encoders (the log itself only frames bytes).
namespace logrec {
std::string SessionPut(const std::string& client_id, uint32_t expiry_interval,
                       const std::string& identity = "", const std::string& username = "");
std::string SessionDel(const std::string& client_id);
std::string SubPut(const std::string& client_id, const Subscription& s);
std::string SubDel(const std::string& client_id, const std::string& filter);
std::string MsgPut(const std::string& client_id, const StoredMessage& m);
std::string MsgDel(const std::string& client_id, uint64_t seq);
std::string RetainPut(const Message& m);
std::string RetainDel(const std::string& topic);
std::string Qos2InPut(const std::string& client_id, uint16_t packet_id);
std::string Qos2InDel(const std::string& client_id, uint16_t packet_id);
}  // namespace logrec

class SessionLog {
 public:
  // Opens (creating) `dir`, replays the newest complete generation into *state.
  static Result<std::unique_ptr<SessionLog>> Open(const std::string& dir, RecoveredState* state);
  ~SessionLog();

  // Queues one record; returns its LSN. Never blocks on I/O.
  uint64_t Append(std::string record);
  // Runs `fn` once every record up to `lsn` is on disk (at once if it already is). `fn` runs
  // on the writer thread or the caller's; it must not call back into the log's owner's locks
  // in a way that waits for the writer.
  void WhenDurable(uint64_t lsn, std::function<void()> fn);
  uint64_t durable_lsn() const;
  uint64_t last_lsn() const;
  // Starts a new generation beginning with `snapshot` (encoded records); records appended
  // after this call go to the new generation.
  void Rotate(std::vector<std::string> snapshot);
  // Bytes appended since the current generation began (for deciding when to compact).
  uint64_t generation_bytes() const;
  uint64_t snapshot_bytes() const;
  // Writes and syncs everything queued, stops the writer. Idempotent.
  void Close();
  // Blocks until everything appended so far is durable (tests, shutdown).
  void Sync();

 private:
  SessionLog();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// CRC-32C (Castagnoli) of `data`.
uint32_t Crc32c(std::string_view data);

}  // namespace tarn::gateway::mqtt
