// AWS Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html)
// for every AWS API on the lake's port: the Authorization header, presigned URLs (query
// authentication), and the streaming aws-chunked payload forms S3 clients send for uploads.
//
//   SigV4Authenticator  net::Authenticator: verifies a request and fills call.identity; for
//                       aws-chunked bodies it replaces request.body with a de-chunking reader
//                       that verifies each chunk signature (and fills request.trailers).
//   CredentialProvider  where secrets come from (IAM access keys, STS sessions); the
//                       authenticator never stores secrets itself, only derived signing keys.
//
// The pure functions below (canonical request, string to sign, signing key) are exposed for
// tests and for clients inside Tarn (benchmarks, the audit digest tool).
//
// Thread-safety: SigV4Authenticator is thread-safe; the body readers it installs belong to
// one request.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/identity.h"
#include "core/status.h"
#include "net/aws_api.h"
#include "net/http.h"

namespace tarn::security::sigv4 {

inline constexpr char kAlgorithm[] = "AWS4-HMAC-SHA256";
inline constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";
inline constexpr char kStreamingSigned[] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
inline constexpr char kStreamingSignedTrailer[] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
inline constexpr char kStreamingUnsignedTrailer[] = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
// Maximum clock difference for header-signed requests (S3: RequestTimeTooSkewed, 15 min).
inline constexpr int64_t kMaxSkewSeconds = 15 * 60;
// Presigned URLs live at most 7 days (X-Amz-Expires ≤ 604800).
inline constexpr int64_t kMaxPresignSeconds = 7 * 24 * 3600;

// A secret the provider found for an access key id, and who it belongs to.
struct SigningCredential {
  std::string secret_access_key;  // never logged
  Identity identity;
  std::string session_token;  // temporary credentials: the token the request must carry
  int64_t expires = 0;        // unix seconds; 0 = does not expire
  bool active = true;         // IAM UpdateAccessKey --status Inactive
};

class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  // The credential for `access_key_id`, nullopt when no such key exists.
  virtual Result<std::optional<SigningCredential>> Lookup(const std::string& access_key_id) = 0;
};

// --- The algorithm, as pure functions ---------------------------------------------------

// Canonical URI. S3 signs the path exactly as sent; every other service normalises it and
// URI-encodes it once more ("double encoding"), per the SigV4 spec.
std::string CanonicalUri(std::string_view raw_path, bool s3);
// Canonical query string: decoded, re-encoded per RFC 3986, sorted by name then value;
// `skip_signature` drops X-Amz-Signature (presigned URLs).
std::string CanonicalQuery(std::string_view raw_query, bool skip_signature);
// Header value canonicalisation: trimmed, inner runs of spaces collapsed.
std::string CanonicalHeaderValue(std::string_view v);
// "METHOD\nURI\nQUERY\nHEADERS\n\nSIGNED\nPAYLOAD" — `signed_headers` lower-case, ';'-joined.
std::string CanonicalRequest(const net::HttpRequest& request, bool s3, bool presigned,
                             const std::string& signed_headers, const std::string& payload_hash,
                             bool reencode_s3_path = false);
std::string StringToSign(const std::string& amz_date, const std::string& scope,
                         const std::string& canonical_request);
// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")
std::string DeriveSigningKey(std::string_view secret, std::string_view date, std::string_view region,
                             std::string_view service);
// Hex HMAC-SHA256 of `string_to_sign` under `signing_key`.
std::string Sign(std::string_view signing_key, std::string_view string_to_sign);

// Signs `request` in place with an Authorization header (for tests, benchmarks and internal
// clients); sets X-Amz-Date and x-amz-content-sha256.
void SignRequest(net::HttpRequest& request, const std::string& access_key_id,
                 const std::string& secret, const std::string& region, const std::string& service,
                 int64_t unix_seconds, const std::string& payload_hash);

// --- The authenticator ------------------------------------------------------------------

class SigV4Authenticator final : public net::Authenticator {
 public:
  SigV4Authenticator(CredentialProvider* credentials, const Clock* clock);

  Status Authenticate(net::ApiCall& call, net::HttpRequest& request) override;

 private:
  struct Parsed;
  Status Verify(net::ApiCall& call, net::HttpRequest& request, Parsed& p);
  std::string SigningKey(const std::string& secret, const std::string& akid, const std::string& date,
                         const std::string& region, const std::string& service);

  CredentialProvider* credentials_;
  const Clock* clock_;
  // Derived signing keys per (access key, date, region, service) — valid for a day; a small
  // LRU so a busy lake does four HMACs per key per day instead of per request.
  std::mutex mu_;
  std::list<std::pair<std::string, std::string>> lru_;  // guarded by mu_: cache key → signing key
  std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator>
      cache_;  // guarded by mu_
};

// --- aws-chunked bodies (exposed for tests) ------------------------------------------------

// Decodes an aws-chunked body from `inner`. With `signing_key` set, every chunk signature is
// checked against the chain starting at `seed_signature` (and the trailer signature when
// `signed_trailer`), and a mismatch fails Read with SignatureDoesNotMatch before the chunk's
// bytes are returned, so a consumer that commits only at end of body stores nothing. Trailer
// fields land in `*trailers`.
std::unique_ptr<net::BodyReader> NewChunkedReader(net::BodyReader* inner, std::optional<uint64_t> decoded_length,
                                                  net::Headers* trailers, bool signed_chunks,
                                                  bool signed_trailer, std::string signing_key,
                                                  std::string amz_date, std::string scope,
                                                  std::string seed_signature);

// Wraps `inner` and fails the final Read with XAmzContentSHA256Mismatch when the body's
// SHA-256 differs from `expected_hex`.
std::unique_ptr<net::BodyReader> NewSha256VerifyingReader(net::BodyReader* inner, std::string expected_hex);

}  // namespace tarn::security::sigv4
