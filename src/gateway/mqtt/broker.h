// The MQTT 3.1.1 / 5.0 broker: sessions, subscriptions, retained messages, wills, QoS 0/1/2
// delivery, persistence through the session log, and the in-process publish/subscribe API
// the rules engine and delivery streams use.
//
// The broker owns no sockets: Accept() turns a net::StreamConnection (TCP, TLS, WebSocket)
// into a protocol handler. Authentication and authorisation are hooks (auth.h), so device
// policies plug in without touching protocol code.
//
// Thread-safe. Broker state is guarded by one mutex; no call holds it across I/O (sending
// only queues bytes on a connection) or across a hook that may block on the disk.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "gateway/mqtt/auth.h"
#include "gateway/mqtt/types.h"
#include "net/stream_server.h"

namespace tarn::gateway::mqtt {

struct BrokerOptions {
  bool allow_anonymous = false;
  // The largest packet accepted (MQTT 5.0 §3.1.2.11.4, advertised in CONNACK).
  uint32_t max_packet_size = 1 << 20;
  // How many QoS 1/2 PUBLISHes a client may have unacknowledged towards us (§3.3.4).
  uint16_t receive_maximum = 1024;
  uint16_t topic_alias_maximum = 64;
  // Per session: QoS 1/2 messages waiting for delivery (offline, or beyond the client's
  // receive maximum). When full, new messages for that session are dropped, counted in
  // tarn_mqtt_messages_dropped_total{reason="queue_full"} and logged.
  uint32_t max_queued_messages = 1000;
  // Upper bound on the session expiry a client may ask for (seconds).
  uint32_t max_session_expiry = 0xFFFFFFFF;
  // A connection must send CONNECT within this.
  uint32_t connect_timeout_ms = 10000;
  // Directory of the session log; empty = nothing persists across restarts.
  std::string data_dir;
  // The log is compacted once it grows past this and twice its last snapshot.
  uint64_t compact_min_bytes = 64ull << 20;
  // Sweep interval for keep-alive, will delay and session expiry.
  uint32_t sweep_interval_ms = 1000;
};

// Holds back the acknowledgement (PUBACK / PUBREC) of a client's QoS 1/2 PUBLISH while any
// copy of it exists. An in-process subscriber that must finish something before the publisher
// may consider the message delivered keeps a copy until then — the rules engine keeps it until
// every rule's actions are done, so a PUBACK means the reading is in the delivery stream's
// write-ahead log. One that ignores it lets the acknowledgement go when it returns. Null for
// QoS 0 and in-process publishes. Acknowledgements still leave in the order of their PUBLISHes.
class AckToken {
 public:
  virtual ~AckToken() = default;
  // The message could not be handled (e.g. its record could not be appended to a delivery
  // stream): its acknowledgement says so instead of success. `reason` is an MQTT 5 reason code
  // >= 0x80 (0x97 quota exceeded, 0x80 unspecified error …); `retryable` says whether sending the
  // message again may succeed. MQTT 5: PUBACK / PUBREC with `reason`. MQTT 3.1.1 has no negative
  // acknowledgement: a retryable refusal withholds the PUBACK and closes the connection once the
  // acknowledgements before it are sent, so the client resends the message (DUP) after it
  // reconnects; a refusal that a resend cannot cure is acknowledged as usual (docs/iot.md). The
  // first refusal wins. QoS 1 only: a QoS 2 PUBLISH gets its PUBREC (its packet id is the
  // session's until PUBREL, so a refused one could not be resent). Thread-safe.
  virtual void Refuse(uint8_t reason, bool retryable) = 0;
};
using AckHold = std::shared_ptr<AckToken>;
// A subscriber inside the process. It receives the message as published (publisher's QoS).
using LocalCallback = std::function<void(const Message&, AckHold)>;

class Broker {
 public:
  // Recovers persistent state from options.data_dir (if set). The hooks must outlive the
  // broker; `authorizer` may be null (everything allowed once authenticated).
  static Result<std::unique_ptr<Broker>> Open(const BrokerOptions& options,
                                              Authenticator* authenticator,
                                              AuthorizationHook* authorizer);
  virtual ~Broker() = default;

  // Protocol handler for a new network connection (a net::StreamHandlerFactory).
  virtual std::unique_ptr<net::StreamHandler> Accept(std::shared_ptr<net::StreamConnection> c) = 0;

  // In-process publish: routed like a client's PUBLISH (retained, QoS, properties). The
  // message's `origin` is empty. Fails with kInvalidArgument on an invalid topic or QoS.
  virtual Status Publish(const std::string& topic, std::string payload, int qos = 0,
                         bool retain = false, Properties props = Properties()) = 0;
  // Publish, then `durable` once what the publish stored for later — QoS 1/2 messages queued
  // for persistent sessions — is in the session log on disk: at once when it stored nothing, or
  // nothing persists. Called only after an OK return; on the log's writer thread or the caller's.
  // The rules engine's republishes use it, so that a device's PUBACK waits for them
  // (docs/iot.md "When a rule cannot take a message").
  virtual Status PublishDurable(const std::string& topic, std::string payload, int qos,
                                std::function<void()> durable) = 0;
  // In-process subscribe; returns a handle for Unsubscribe. The callback runs on the
  // publishing thread after the broker lock is released; it may call Publish. A tap
  // (`counts_as_subscriber` false, e.g. the rules engine watching "#") sees messages without
  // making them "matched": MQTT 5 PUBACK still says 0x10 No matching subscribers (§3.4.2.1).
  virtual Result<uint64_t> Subscribe(const std::string& filter, LocalCallback callback,
                                     bool counts_as_subscriber = true) = 0;
  virtual void Unsubscribe(uint64_t handle) = 0;

  // Closes the connection of the client with this client id, if it is connected (MQTT 5:
  // DISCONNECT with `reason` first). Its will is published and its session kept as after any
  // network failure. Returns whether a connection was closed.
  virtual bool DisconnectClient(const std::string& client_id, uint8_t reason) = 0;
  // Closes every connection that presented the client certificate with this SHA-256
  // fingerprint (hex, any case) — connected, or still between the TLS handshake and CONNACK,
  // so a CONNECT racing with the call cannot slip through. Used when a device certificate is
  // deactivated or revoked. Returns how many were closed.
  virtual size_t DisconnectCertificate(std::string_view fingerprint_sha256, uint8_t reason) = 0;
  // Both are thread-safe and may be called from any thread except from inside a hook or an
  // in-process subscriber callback.

  // Closes every client (MQTT 5: DISCONNECT 0x8B "server shutting down"), stops the sweeper
  // and syncs the session log. Idempotent.
  virtual void Stop() = 0;

  // Introspection for tests and metrics.
  virtual size_t connected_clients() const = 0;
  virtual size_t sessions() const = 0;
  virtual size_t retained_messages() const = 0;
};

}  // namespace tarn::gateway::mqtt
