// A byte-stream server for long-lived protocol connections (MQTT today): plain TCP, TLS with
// optional mutual TLS, and WebSocket (binary frames). Boost.Asio/Beast stay inside
// stream_server.cc; protocol code sees StreamConnection / StreamHandler only.
//
// Threading: a StreamServer runs a few event loops (StreamServer::Create's `threads`), each an
// io_context with one thread; listeners accept on the first and spread connections round-robin,
// and a connection stays on its loop. There is no thread per connection, and an idle plain-TCP
// connection owns no read buffer (the server waits for readability and reads into a
// per-thread buffer), so tens of thousands of idle clients cost little memory.
//
// Contract of the callbacks: for one connection, OnData and OnClose are never called
// concurrently; OnClose is called exactly once, last. StreamConnection is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"

namespace tarn::net {

enum class StreamTransport { kTcp, kTls, kWebSocket };
const char* StreamTransportName(StreamTransport t);

// Who is on the other end.
struct StreamPeer {
  std::string listener;  // the listener's name ("mqtt", "mqtts", "mqtt_ws")
  StreamTransport transport = StreamTransport::kTcp;
  std::string remote_ip;
  uint16_t remote_port = 0;
  // Mutual TLS: set when the client presented a certificate that verified against the CA.
  bool has_client_cert = false;
  std::string cert_subject_cn;           // subject common name
  std::string cert_fingerprint_sha256;   // lowercase hex of the DER certificate's SHA-256
};

class StreamConnection {
 public:
  virtual ~StreamConnection() = default;
  // Queues `bytes` for sending. Returns false (and queues nothing) when the connection is
  // closed or when the queued bytes would exceed the listener's max_queued_bytes: a peer that
  // does not read is then aborted (its handler gets OnClose), never allowed to grow memory.
  virtual bool Send(std::string bytes) = 0;
  // Bytes accepted by Send and not yet written to the socket.
  virtual size_t queued_bytes() const = 0;
  // Closes the connection. flush=true sends what is queued first (bounded by a few seconds);
  // flush=false drops it. Idempotent; OnClose follows.
  virtual void Close(bool flush = true) = 0;
  virtual const StreamPeer& peer() const = 0;
};

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // Bytes received, in order. The view is valid only during the call.
  virtual void OnData(std::string_view data) = 0;
  // The connection is closed (by either side); no further calls follow.
  virtual void OnClose() = 0;
};

// Creates the handler of a new connection. The handler may keep `conn` (to send from other
// threads) but must drop it in OnClose.
using StreamHandlerFactory =
    std::function<std::unique_ptr<StreamHandler>(std::shared_ptr<StreamConnection> conn)>;

struct StreamListenerOptions {
  std::string name = "stream";
  ListenAddress listen;
  StreamTransport transport = StreamTransport::kTcp;
  TlsConfig tls;                    // kTls: cert_file/key_file required; client_ca_file = mTLS
  bool require_client_cert = false;  // with client_ca_file: refuse clients without one
  std::string ws_path = "/mqtt";     // kWebSocket: the only accepted request path
  std::string ws_subprotocol = "mqtt";
  size_t max_queued_bytes = 4 << 20;
  size_t max_connections = 100000;
  uint32_t handshake_timeout_ms = 10000;  // TLS / WebSocket handshake must finish in this
};

class StreamServer {
 public:
  // Starts `threads` I/O threads; listeners are added with Listen.
  static std::unique_ptr<StreamServer> Create(int threads = 2);
  virtual ~StreamServer() = default;

  // Binds and starts accepting. The factory must outlive the server. Returns "host:port".
  virtual Result<std::string> Listen(const StreamListenerOptions& options,
                                     StreamHandlerFactory factory) = 0;
  // Stops accepting, closes every connection (flush=false, handlers get OnClose), joins the
  // I/O threads. Idempotent.
  virtual void Stop() = 0;
  // Open connections over all listeners.
  virtual size_t connections() const = 0;
};

// Writes a self-signed server certificate (EC P-256, 10 years) for `common_name` with the
// given DNS / IP subject alternative names, if `cert_file` does not exist yet.
Status EnsureSelfSignedCertificate(const std::string& cert_file, const std::string& key_file,
                                   const std::string& common_name,
                                   const std::vector<std::string>& dns_names,
                                   const std::vector<std::string>& ip_addresses);

}  // namespace tarn::net
