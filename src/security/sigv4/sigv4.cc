#include "security/sigv4/sigv4.h"

#include <algorithm>

#include "core/crypto.h"
#include "core/strings.h"

namespace tarn::security::sigv4 {

namespace {

constexpr size_t kMaxCachedKeys = 1024;
constexpr size_t kMaxInMemoryBody = 16 * 1024 * 1024;
// hex(SHA-256("")), the hash of an empty payload.
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

bool IsS3(const net::ApiCall& call) { return call.family == net::ApiFamily::kRestXml; }

// RFC 3986 §5.2.4 dot-segment removal, as the SigV4 spec asks for non-S3 services; empty
// segments collapse too.
std::string NormalizePath(std::string_view path) {
  std::vector<std::string> out;
  for (const std::string& seg : Split(path, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(seg);
  }
  std::string r = "/" + Join(out, "/");
  if (r.size() > 1 && !path.empty() && path.back() == '/') r += '/';
  return r;
}

}  // namespace

std::string CanonicalUri(std::string_view raw_path, bool s3) {
  if (raw_path.empty()) return "/";
  if (s3) return std::string(raw_path);
  return UriEncode(NormalizePath(raw_path), /*encode_slash=*/false);
}

std::string CanonicalQuery(std::string_view raw_query, bool skip_signature) {
  std::vector<std::pair<std::string, std::string>> params;
  for (const std::string& piece : Split(raw_query, '&')) {
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string k = piece.substr(0, eq);
    std::string v = eq == std::string::npos ? "" : piece.substr(eq + 1);
    auto dk = UriDecode(k);
    auto dv = UriDecode(v);
    std::string ek = UriEncode(dk ? *dk : k);
    if (skip_signature && ek == "X-Amz-Signature") continue;
    params.emplace_back(std::move(ek), UriEncode(dv ? *dv : v));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

std::string CanonicalHeaderValue(std::string_view v) {
  std::string_view t = Trim(v);
  std::string out;
  out.reserve(t.size());
  bool space = false;
  for (char c : t) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string CanonicalRequest(const net::HttpRequest& request, bool s3, bool presigned,
                             const std::string& signed_headers, const std::string& payload_hash,
                             bool reencode_s3_path) {
  std::string cr = request.method;
  cr += '\n';
  if (s3 && reencode_s3_path) {
    // Some clients send reserved characters unencoded; they sign the encoded form.
    auto decoded = UriDecode(request.path);
    cr += UriEncode(decoded ? *decoded : request.path, /*encode_slash=*/false);
  } else {
    cr += CanonicalUri(request.path, s3);
  }
  cr += '\n';
  cr += CanonicalQuery(request.query, presigned);
  cr += '\n';
  for (const std::string& name : Split(signed_headers, ';')) {
    std::string value;
    bool first = true;
    for (const auto& [k, v] : request.headers.fields()) {
      if (!EqualsIgnoreCase(k, name)) continue;
      if (!first) value += ',';
      value += CanonicalHeaderValue(v);
      first = false;
    }
    cr += name;
    cr += ':';
    cr += value;
    cr += '\n';
  }
  cr += '\n';
  cr += signed_headers;
  cr += '\n';
  cr += payload_hash;
  return cr;
}

std::string StringToSign(const std::string& amz_date, const std::string& scope,
                         const std::string& canonical_request) {
  return std::string(kAlgorithm) + "\n" + amz_date + "\n" + scope + "\n" +
         HexEncode(Sha256(canonical_request));
}

std::string DeriveSigningKey(std::string_view secret, std::string_view date, std::string_view region,
                             std::string_view service) {
  std::string k = HmacSha256("AWS4" + std::string(secret), date);
  k = HmacSha256(k, region);
  k = HmacSha256(k, service);
  return HmacSha256(k, "aws4_request");
}

std::string Sign(std::string_view signing_key, std::string_view string_to_sign) {
  return HexEncode(HmacSha256(signing_key, string_to_sign));
}

void SignRequest(net::HttpRequest& request, const std::string& access_key_id,
                 const std::string& secret, const std::string& region, const std::string& service,
                 int64_t unix_seconds, const std::string& payload_hash) {
  std::string iso = FormatIso8601(unix_seconds);  // 2026-11-25T12:00:00Z
  std::string amz_date;
  for (char c : iso) {
    if (c != '-' && c != ':') amz_date += c;
  }
  request.headers.Set("X-Amz-Date", amz_date);
  request.headers.Set("x-amz-content-sha256", payload_hash);
  std::vector<std::string> names;
  for (const auto& [k, v] : request.headers.fields()) {
    std::string l = ToLower(k);
    if (l == "authorization") continue;
    if (std::find(names.begin(), names.end(), l) == names.end()) names.push_back(l);
  }
  std::sort(names.begin(), names.end());
  std::string signed_headers = Join(names, ";");
  std::string date = amz_date.substr(0, 8);
  std::string scope = date + "/" + region + "/" + service + "/aws4_request";
  std::string cr = CanonicalRequest(request, service == "s3", false, signed_headers, payload_hash);
  std::string sig = Sign(DeriveSigningKey(secret, date, region, service), StringToSign(amz_date, scope, cr));
  request.headers.Set("Authorization", std::string(kAlgorithm) + " Credential=" + access_key_id + "/" +
                                           scope + ", SignedHeaders=" + signed_headers +
                                           ", Signature=" + sig);
}

// --- Authenticator ----------------------------------------------------------------------

struct SigV4Authenticator::Parsed {
  bool presigned = false;
  std::string access_key_id, date, region, service;
  std::string signed_headers, signature, amz_date, security_token;
  int64_t expires = 0;
  std::string scope() const { return date + "/" + region + "/" + service + "/aws4_request"; }
};

SigV4Authenticator::SigV4Authenticator(CredentialProvider* credentials, const Clock* clock)
    : credentials_(credentials), clock_(clock) {}

std::string SigV4Authenticator::SigningKey(const std::string& secret, const std::string& akid,
                                           const std::string& date, const std::string& region,
                                           const std::string& service) {
  // The secret is part of the cache key (hashed), so a rotated secret never reuses a key.
  std::string cache_key = akid + '\0' + date + '\0' + region + '\0' + service + '\0' + Sha256(secret);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(cache_key);
    if (it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  std::string key = DeriveSigningKey(secret, date, region, service);
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.find(cache_key) == cache_.end()) {
    lru_.emplace_front(cache_key, key);
    cache_[cache_key] = lru_.begin();
    if (lru_.size() > kMaxCachedKeys) {
      cache_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  return key;
}

namespace {

Status Malformed(const net::ApiCall& call, bool presigned, std::string msg) {
  if (IsS3(call)) {
    return Error(presigned ? ErrorCode::kAuthorizationQueryParametersError
                           : ErrorCode::kAuthorizationHeaderMalformed,
                 std::move(msg));
  }
  return Error(ErrorCode::kIncompleteSignature, std::move(msg));
}

// "Credential=AKID/20130524/us-east-1/s3/aws4_request"
bool SplitCredential(const std::string& credential, std::string* akid, std::string* date,
                     std::string* region, std::string* service, std::string* terminator) {
  std::vector<std::string> parts = Split(credential, '/');
  if (parts.size() != 5) return false;
  *akid = parts[0];
  *date = parts[1];
  *region = parts[2];
  *service = parts[3];
  *terminator = parts[4];
  return true;
}

}  // namespace

Status SigV4Authenticator::Authenticate(net::ApiCall& call, net::HttpRequest& request) {
  Parsed p;
  std::string credential, terminator;
  const std::string* auth = request.headers.Find("Authorization");
  std::vector<std::pair<std::string, std::string>> query;
  if (!auth && request.query.find("X-Amz-") != std::string::npos) query = request.QueryParams();
  auto qparam = [&](const char* name) -> const std::string* {
    for (const auto& [k, v] : query) {
      if (k == name) return &v;
    }
    return nullptr;
  };
  if (auth) {
    std::string_view a = Trim(*auth);
    if (!StartsWith(a, kAlgorithm) || (a.size() > sizeof(kAlgorithm) - 1 && a[sizeof(kAlgorithm) - 1] != ' ')) {
      if (IsS3(call)) {
        return Error(ErrorCode::kInvalidRequest,
                     "The authorization mechanism you have provided is not supported. Please use "
                     "AWS4-HMAC-SHA256.");
      }
      return Error(ErrorCode::kIncompleteSignature, "Unsupported authorization scheme; use AWS4-HMAC-SHA256");
    }
    std::string_view rest = a.substr(sizeof(kAlgorithm) - 1);
    for (std::string part : Split(rest, ',')) {
      std::string_view t = Trim(part);
      size_t eq = t.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view k = Trim(t.substr(0, eq));
      std::string v(Trim(t.substr(eq + 1)));
      if (k == "Credential") credential = v;
      else if (k == "SignedHeaders") p.signed_headers = v;
      else if (k == "Signature") p.signature = v;
    }
    if (credential.empty() || p.signed_headers.empty() || p.signature.empty()) {
      return Malformed(call, false,
                       "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters");
    }
    p.amz_date = request.headers.Get("X-Amz-Date");
    if (p.amz_date.empty()) {
      // The Date header may carry the time instead (RFC 7231 format).
      int64_t t = ParseHttpDate(request.headers.Get("Date"));
      if (t < 0) return Malformed(call, false, "Request must contain an X-Amz-Date or Date header");
      std::string iso = FormatIso8601(t);
      for (char c : iso) {
        if (c != '-' && c != ':') p.amz_date += c;
      }
    }
    p.security_token = request.headers.Get("X-Amz-Security-Token");
  } else if (const std::string* alg = qparam("X-Amz-Algorithm")) {
    p.presigned = true;
    if (*alg != kAlgorithm) {
      return Malformed(call, true, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
    }
    const std::string* c = qparam("X-Amz-Credential");
    const std::string* sh = qparam("X-Amz-SignedHeaders");
    const std::string* sig = qparam("X-Amz-Signature");
    const std::string* d = qparam("X-Amz-Date");
    if (!c || !sh || !sig || !d) {
      return Malformed(call, true,
                       "Query-string authentication requires the X-Amz-Algorithm, X-Amz-Credential, "
                       "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Expires parameters");
    }
    credential = *c;
    p.signed_headers = *sh;
    p.signature = *sig;
    p.amz_date = *d;
    const std::string* e = qparam("X-Amz-Expires");
    auto ex = e ? ParseInt64(*e) : std::optional<int64_t>();
    if (!ex || *ex < 0) return Malformed(call, true, "X-Amz-Expires must be a non-negative integer");
    if (*ex > kMaxPresignSeconds) {
      return Malformed(call, true, "X-Amz-Expires must be less than a week (in seconds) that is 604800");
    }
    p.expires = *ex;
    if (const std::string* tok = qparam("X-Amz-Security-Token")) p.security_token = *tok;
  } else if (request.query.find("AWSAccessKeyId=") != std::string::npos &&
             request.query.find("Signature=") != std::string::npos) {
    // Signature Version 2 query auth (aws-cli 1.x `s3 presign` without s3v4 configured).
    return Error(ErrorCode::kInvalidRequest,
                 "Signature Version 2 is not supported by this lake; presign with AWS4-HMAC-SHA256 "
                 "(e.g. aws configure set default.s3.signature_version s3v4)");
  } else {
    return Status::OK();  // anonymous: authorisation decides
  }
  if (!SplitCredential(credential, &p.access_key_id, &p.date, &p.region, &p.service, &terminator) ||
      terminator != "aws4_request" || p.access_key_id.empty()) {
    return Malformed(call, p.presigned, "The credential is malformed; expected \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"");
  }
  return Verify(call, request, p);
}

Status SigV4Authenticator::Verify(net::ApiCall& call, net::HttpRequest& request, Parsed& p) {
  const bool s3 = IsS3(call);
  int64_t t = ParseIso8601(p.amz_date);
  if (t < 0 || p.amz_date.size() != 16) {
    return Malformed(call, p.presigned, "X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z'");
  }
  if (p.amz_date.compare(0, 8, p.date) != 0) {
    return Malformed(call, p.presigned,
                     "The credential date " + p.date + " does not match the request date " + p.amz_date.substr(0, 8));
  }
  int64_t now = clock_->NowSeconds();
  if (p.presigned) {
    if (t - now > kMaxSkewSeconds) return Error(ErrorCode::kAccessDenied, "Request is not valid yet");
    if (now > t + p.expires) return Error(ErrorCode::kAccessDenied, "Request has expired");
  } else if (t - now > kMaxSkewSeconds || now - t > kMaxSkewSeconds) {
    return Error(ErrorCode::kRequestTimeTooSkewed,
                 "The difference between the request time and the server's time is too large.");
  }

  ASSIGN_OR_RETURN(std::optional<SigningCredential> cred, credentials_->Lookup(p.access_key_id));
  if (!cred || !cred->active) {
    if (s3) {
      return Error(ErrorCode::kInvalidAccessKeyId,
                   "The AWS Access Key Id you provided does not exist in our records.");
    }
    return Error(ErrorCode::kInvalidClientTokenId,
                 "The security token included in the request is invalid.");
  }
  if (!cred->session_token.empty()) {
    if (p.security_token.empty() || !ConstantTimeEquals(p.security_token, cred->session_token)) {
      if (s3) return Error(ErrorCode::kInvalidSecurityToken, "The provided token is malformed or otherwise invalid.");
      return Error(ErrorCode::kInvalidClientTokenId, "The security token included in the request is invalid.");
    }
    if (cred->expires != 0 && now >= cred->expires) {
      return Error(ErrorCode::kExpiredToken, "The provided token has expired.");
    }
  } else if (!p.security_token.empty()) {
    // A session token belongs only with the temporary key it was issued with; long-term keys
    // with a token are refused as AWS does, never silently accepted.
    if (s3) return Error(ErrorCode::kInvalidSecurityToken, "The provided token is malformed or otherwise invalid.");
    return Error(ErrorCode::kInvalidClientTokenId, "The security token included in the request is invalid.");
  }

  // The payload hash the client signed.
  std::string payload_hash = request.headers.Get("x-amz-content-sha256");
  auto* memory = dynamic_cast<net::MemoryBodyReader*>(request.body);
  // Set when the hash above was computed here from the body itself: nothing left to verify.
  bool computed_hash = false;
  if (payload_hash.empty()) {
    if (p.presigned && s3) {
      payload_hash = kUnsignedPayload;
    } else if (s3 && !memory) {
      auto len = request.body->content_length();
      if (len && *len == 0) {
        payload_hash = kEmptySha256;
      } else {
        return Error(ErrorCode::kInvalidRequest, "Missing required header for this request: x-amz-content-sha256");
      }
    } else {
      if (!memory) {
        // REST-JSON and other bodies the router left as a stream: small by protocol.
        ASSIGN_OR_RETURN(std::string body, request.body->ReadAll(kMaxInMemoryBody));
        auto owned = std::make_shared<net::MemoryBodyReader>(std::move(body));
        memory = owned.get();
        call.owned_body = owned;
        request.body = memory;
      }
      payload_hash = HexEncode(Sha256(memory->data()));
      computed_hash = true;
    }
  }

  std::string key = SigningKey(cred->secret_access_key, p.access_key_id, p.date, p.region, p.service);
  std::string scope = p.scope();
  std::string cr = CanonicalRequest(request, s3, p.presigned, p.signed_headers, payload_hash);
  std::string expected = Sign(key, StringToSign(p.amz_date, scope, cr));
  bool match = ConstantTimeEquals(expected, p.signature);
  if (!match && s3) {
    std::string cr2 = CanonicalRequest(request, s3, p.presigned, p.signed_headers, payload_hash, true);
    if (cr2 != cr) match = ConstantTimeEquals(Sign(key, StringToSign(p.amz_date, scope, cr2)), p.signature);
  }
  if (!match) {
    return Error(ErrorCode::kSignatureDoesNotMatch,
                 "The request signature we calculated does not match the signature you provided. "
                 "Check your key and signing method.");
  }

  // Streaming bodies: replace request.body with a verifying de-chunker.
  bool signed_chunks = payload_hash == kStreamingSigned || payload_hash == kStreamingSignedTrailer;
  bool unsigned_trailer = payload_hash == kStreamingUnsignedTrailer;
  if (signed_chunks || unsigned_trailer) {
    std::optional<uint64_t> decoded;
    if (auto v = ParseUint64(request.headers.Get("x-amz-decoded-content-length"))) decoded = *v;
    call.owned_body = std::shared_ptr<net::BodyReader>(
        NewChunkedReader(request.body, decoded, &request.trailers, signed_chunks,
                         payload_hash == kStreamingSignedTrailer, key, p.amz_date, scope, p.signature));
    request.body = call.owned_body.get();
    // The body the service sees is the decoded one: drop the aws-chunked coding so it is not
    // stored as the object's Content-Encoding, and state the decoded length.
    std::string ce = request.headers.Get("Content-Encoding");
    std::vector<std::string> keep;
    for (const std::string& c : Split(ce, ',')) {
      std::string_view tc = Trim(c);
      if (!tc.empty() && !EqualsIgnoreCase(tc, "aws-chunked")) keep.emplace_back(tc);
    }
    if (keep.empty()) request.headers.Remove("Content-Encoding");
    else request.headers.Set("Content-Encoding", Join(keep, ","));
    if (decoded) request.headers.Set("Content-Length", std::to_string(*decoded));
  } else if (payload_hash != kUnsignedPayload) {
    if (payload_hash.size() != 64 || !HexDecode(payload_hash)) {
      return Error(s3 ? ErrorCode::kS3InvalidArgument : ErrorCode::kInvalidRequest,
                   "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a valid sha256 value.");
    }
    if (computed_hash) {
      // The signature covers the hash of the body as received (JSON 1.1 bodies, ~140 KB for a
      // full PutRecordBatch): hashing it a second time here proved nothing more.
    } else if (memory) {
      if (HexEncode(Sha256(memory->data())) != ToLower(payload_hash)) {
        return Error(ErrorCode::kXAmzContentSHA256Mismatch,
                     "The provided 'x-amz-content-sha256' header does not match what was computed.");
      }
    } else if (payload_hash != kEmptySha256 || request.body->content_length().value_or(1) != 0) {
      call.owned_body = std::shared_ptr<net::BodyReader>(NewSha256VerifyingReader(request.body, payload_hash));
      request.body = call.owned_body.get();
    }
  }

  call.identity = cred->identity;
  call.identity.access_key_id = p.access_key_id;
  if (!p.region.empty()) call.region = p.region;
  return Status::OK();
}

}  // namespace tarn::security::sigv4
