// The plain HTTP interface every handler in Tarn sees. Boost.Beast stays behind
// http_server.cc; changing a handler never recompiles it.
//
// A handler is called once per request (see HttpHandler for which thread). It reads the body as
// a stream (BodyReader) and may answer with a string body or a streaming BodySource, so that
// a 5 GiB upload or download never sits in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace tarn::net {

// Header fields in arrival order; look-ups are case-insensitive.
class Headers {
 public:
  // First value of `name`, or nullptr.
  const std::string* Find(std::string_view name) const;
  std::string Get(std::string_view name, std::string_view fallback = "") const;
  bool Has(std::string_view name) const { return Find(name) != nullptr; }
  void Add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }
  // Replaces every field called `name` with one.
  void Set(std::string_view name, std::string value);
  void Remove(std::string_view name);
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// The request body as a stream. Read returns 0 at the end of the body. A failure (client
// gone, idle too long, malformed chunk) is an error Status; the connection is then closed.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
  // Content-Length when the client sent one (not for chunked bodies).
  virtual std::optional<uint64_t> content_length() const = 0;

  // A body whose SigV4 payload hash (x-amz-content-sha256) the authenticator checks while it
  // is read can hand that check to the handler, so the handler hashes each piece once together
  // with its own digests (S3 PUT: MD5, checksums) while the bytes are hot in the cache. Returns
  // the expected SHA-256 (hex) — the caller must then hash every byte it reads and reject the
  // request with kXAmzContentSHA256Mismatch, storing nothing, when they differ — or nullopt
  // when there is no such check or reading has begun. Wrappers pass the call on.
  virtual std::optional<std::string> TakePayloadSha256Check() { return std::nullopt; }

  // Reads the whole body; kEntityTooLarge when it exceeds `max_bytes`.
  Result<std::string> ReadAll(size_t max_bytes);
  // Reads and discards the rest of the body.
  Status Discard();
};

// A response body produced piece by piece. Read returns 0 at the end.
class BodySource {
 public:
  virtual ~BodySource() = default;
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
};

struct HttpRequest {
  std::string method;  // "GET", "PUT" …
  std::string target;  // raw request target: path and query, undecoded
  std::string path;    // raw path part of target (undecoded)
  std::string query;   // raw query part (after '?'), undecoded
  Headers headers;
  std::string remote_ip;
  uint16_t remote_port = 0;
  bool secure = false;  // arrived over TLS
  BodyReader* body = nullptr;  // never null while the handler runs
  // Trailing header fields, filled by a decoding body reader when it reaches the end of an
  // aws-chunked body (x-amz-checksum-crc32 … sent as trailers). Read after the body.
  Headers trailers;

  // Decoded query parameters in order (for S3 sub-resources, presigned URLs…).
  std::vector<std::pair<std::string, std::string>> QueryParams() const;
};

struct HttpResponse {
  int status = 200;
  Headers headers;
  std::string body;                          // used when body_source is null
  std::unique_ptr<BodySource> body_source;   // streaming body
  std::optional<uint64_t> content_length;    // for body_source; absent = chunked
  bool close_connection = false;             // close after this response

  void SetBody(std::string content_type, std::string b) {
    headers.Set("Content-Type", std::move(content_type));
    body = std::move(b);
  }
};

// Handles one request. Must not throw. Called concurrently from many threads.
//
// Where Handle runs (src/net/README.md): by default on a worker thread that may block — on the
// request body stream, on disk, on locks. A handler may instead claim a request for the
// server's event loop by returning true from RunsInline; the server then calls Handle on an
// event-loop thread, with the body (if any) already in memory. Such a Handle must be short and
// must never block (no file or network I/O, no lock held across I/O, no waiting), or it
// stalls every connection on that loop. A response with a body_source is still written by a
// worker thread, so its Read may block.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void Handle(HttpRequest& request, HttpResponse& response) = 0;
  // Called on an event-loop thread with the request line and headers (request.body is null):
  // true = this request is cheap and non-blocking, run Handle on the event loop.
  virtual bool RunsInline(const HttpRequest& /*request*/) const { return false; }
};

// Adapts a lambda.
class FunctionHandler final : public HttpHandler {
 public:
  explicit FunctionHandler(std::function<void(HttpRequest&, HttpResponse&)> fn) : fn_(std::move(fn)) {}
  void Handle(HttpRequest& rq, HttpResponse& rs) override { fn_(rq, rs); }

 private:
  std::function<void(HttpRequest&, HttpResponse&)> fn_;
};

// A BodySource over a string (tests, small generated bodies).
class StringBodySource final : public BodySource {
 public:
  explicit StringBodySource(std::string s) : data_(std::move(s)) {}
  Result<size_t> Read(char* buf, size_t n) override;

 private:
  std::string data_;
  size_t pos_ = 0;
};

}  // namespace tarn::net

namespace tarn::net {

// A BodyReader over bytes already in memory (bodies the router had to read to classify a
// request; tests).
class MemoryBodyReader final : public BodyReader {
 public:
  explicit MemoryBodyReader(std::string data) : data_(std::move(data)) {}
  Result<size_t> Read(char* buf, size_t n) override;
  std::optional<uint64_t> content_length() const override { return data_.size(); }
  const std::string& data() const { return data_; }

 private:
  std::string data_;
  size_t pos_ = 0;
};

}  // namespace tarn::net
