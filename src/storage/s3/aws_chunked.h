// Decoder of the aws-chunked content encoding (S3 "Signature Version 4 streaming" and
// "trailing checksums" payloads), WITHOUT signature checks:
//
//   <hex-size>[;chunk-signature=<sig>]\r\n<data>\r\n … 0[;chunk-signature=…]\r\n
//   [<trailer-name>:<value>\r\n …][x-amz-trailer-signature:<sig>\r\n]\r\n
//
// The SigV4 authenticator normally replaces the request body with its own verifying decoder
// before a service sees it. This one is for a router running without an authenticator
// (anonymous mode, tests), so that S3 clients that stream aws-chunked bodies still store the
// right bytes. Trailers go into the given Headers.
//
// Not thread-safe.
#pragma once

#include <string>

#include "net/http.h"

namespace tarn::storage::s3 {

class AwsChunkedReader final : public net::BodyReader {
 public:
  AwsChunkedReader(net::BodyReader* inner, net::Headers* trailers)
      : inner_(inner), trailers_(trailers) {}
  Result<size_t> Read(char* buf, size_t n) override;
  std::optional<uint64_t> content_length() const override { return std::nullopt; }

 private:
  // Reads one CRLF-terminated line (without CRLF) from the inner body.
  Result<std::string> ReadLine();
  Result<size_t> Fill();

  net::BodyReader* inner_;
  net::Headers* trailers_;
  std::string buf_;      // bytes read from inner_ not yet consumed
  size_t pos_ = 0;
  uint64_t chunk_left_ = 0;
  bool in_chunk_ = false;
  bool done_ = false;
};

// True when the request's body is aws-chunked (Content-Encoding or a STREAMING- payload hash).
bool IsAwsChunked(const net::HttpRequest& request);

}  // namespace tarn::storage::s3
