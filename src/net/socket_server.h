// A blocking, thread-per-connection TCP server for protocols with few, long-lived
// connections and long streaming responses (pgwire). Plain POSIX sockets; TLS is an
// in-band upgrade (OpenSSL) that the protocol handler asks for, e.g. after a PostgreSQL
// SSLRequest. The HTTP API uses HttpServer (Asio) instead.
//
// Thread-safety: SocketServer is thread-safe. A Socket belongs to its connection thread,
// except Shutdown(), which any thread may call to unblock it.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/status.h"

namespace tarn::net {

// A server-side TLS configuration (certificate + key), shared by connections.
class TlsServerContext {
 public:
  // Loads PEM files.
  static Result<std::shared_ptr<TlsServerContext>> FromFiles(const std::string& cert_file,
                                                             const std::string& key_file);
  // Loads <dir>/<name>.crt/.key, first creating a self-signed P-256 certificate for
  // "localhost"/127.0.0.1 (valid ten years) when they do not exist.
  static Result<std::shared_ptr<TlsServerContext>> SelfSigned(const std::string& dir,
                                                              const std::string& name);
  ~TlsServerContext();
  void* native() const { return ctx_; }  // SSL_CTX*

 private:
  TlsServerContext() = default;
  void* ctx_ = nullptr;
};

class Socket {
 public:
  explicit Socket(int fd, std::string peer);
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Reads up to n bytes; 0 at end of stream.
  Result<size_t> Read(char* buf, size_t n);
  Status ReadFull(char* buf, size_t n);
  Status WriteAll(std::string_view data);
  // Server side of a TLS handshake on this connection (bytes already read stay read).
  Status StartTls(const TlsServerContext& ctx);
  bool tls() const { return ssl_ != nullptr; }
  const std::string& peer() const { return peer_; }
  // Unblocks readers and writers (any thread).
  void Shutdown();

 private:
  int fd_;
  void* ssl_ = nullptr;  // SSL*
  std::string peer_;
};

struct SocketServerOptions {
  std::string name = "tcp";
  ListenAddress listen;
  size_t max_connections = 256;
};

class SocketServer {
 public:
  // `over_limit` is true when the connection exceeds max_connections: the handler should
  // send its protocol's "too many connections" error and return.
  using Handler = std::function<void(Socket& socket, bool over_limit)>;

  static Result<std::unique_ptr<SocketServer>> Start(const SocketServerOptions& options, Handler handler);
  ~SocketServer();
  // "host:port" actually bound.
  std::string address() const;
  // Stops accepting, shuts every connection down and waits for the handlers to return.
  void Stop();

 private:
  SocketServer() = default;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tarn::net
