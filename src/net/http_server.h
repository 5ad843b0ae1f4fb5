// An HTTP/1.1 server (Boost.Beast underneath, hidden in http_server.cc): keep-alive,
// pipelining, Expect: 100-continue, chunked request bodies, streaming bodies both ways,
// limits on header size and idle time, optional TLS.
//
// Threading (src/net/README.md): a few event-loop threads (io_threads, one per core by default)
// read requests and write in-memory responses asynchronously, and run the handler themselves
// for requests it marks HttpHandler::RunsInline (/health, /metrics). Every other request —
// and every streaming body, either way — runs on a worker thread where the handler may block
// on the body stream, disk or locks; a connection is handed to a worker for one request at a
// time and returns to its loop afterwards. Connections are bounded by
// HttpLimits::max_connections. A watchdog closes connections that miss their deadlines
// (slow-loris clients, clients that stop reading). Start/Stop are not thread-safe with each
// other; everything else is.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/status.h"
#include "net/http.h"

namespace tarn::net {

struct HttpServerOptions {
  std::string name = "http";  // for logs and metrics
  ListenAddress listen;
  HttpLimits limits;
  TlsConfig tls;  // cert_file set = serve HTTPS
  int io_threads = 0;  // event-loop threads; 0 = one per hardware core
};

class HttpServer {
 public:
  // Binds and starts serving `handler`, which must outlive the server.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   HttpHandler* handler);
  virtual ~HttpServer() = default;

  // The bound port (useful with port 0).
  virtual uint16_t port() const = 0;
  // "host:port" as bound.
  virtual std::string address() const = 0;
  // Stops accepting, lets in-flight requests finish (up to `grace_ms`), closes idle
  // connections, then returns. Idempotent.
  virtual void Stop(int grace_ms = 10000) = 0;
  // Currently open connections.
  virtual size_t connections() const = 0;
};

}  // namespace tarn::net
