// aws-chunked payloads (S3 "Signature Calculations for the Authorization Header: Transferring
// Payload in Multiple Chunks" and the trailer variants):
//
//   hex-size[;chunk-signature=<64 hex>]\r\n <bytes> \r\n   … repeated …
//   0[;chunk-signature=<sig>]\r\n
//   [trailer-name:value\r\n …] [x-amz-trailer-signature:<sig>\r\n] \r\n
//
// Each chunk signature signs
//   "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n" previous-signature "\n"
//   hex(sha256("")) "\n" hex(sha256(chunk))
// starting from the seed (header) signature; the trailer signature signs
//   "AWS4-HMAC-SHA256-TRAILER\n" date "\n" scope "\n" previous-signature "\n"
//   hex(sha256("name:value\n" …)).
#include <cstring>

#include "core/crypto.h"
#include "core/strings.h"
#include "security/sigv4/sigv4.h"

namespace tarn::security::sigv4 {

namespace {

constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr size_t kMaxLine = 4096;
// A signed chunk is held whole until its signature is checked; clients use 64 KiB – 8 MiB.
constexpr uint64_t kMaxSignedChunk = 16 * 1024 * 1024;

Status BadSignature() {
  return Error(ErrorCode::kSignatureDoesNotMatch,
               "The request signature we calculated does not match the signature you provided. "
               "Check your key and signing method.");
}

class ChunkedReader final : public net::BodyReader {
 public:
  ChunkedReader(net::BodyReader* inner, std::optional<uint64_t> decoded_length, net::Headers* trailers,
                bool signed_chunks, bool signed_trailer, std::string signing_key, std::string amz_date,
                std::string scope, std::string seed_signature)
      : inner_(inner),
        decoded_length_(decoded_length),
        trailers_(trailers),
        signed_chunks_(signed_chunks),
        signed_trailer_(signed_trailer),
        key_(std::move(signing_key)),
        amz_date_(std::move(amz_date)),
        scope_(std::move(scope)),
        previous_(std::move(seed_signature)) {}

  std::optional<uint64_t> content_length() const override { return decoded_length_; }

  Result<size_t> Read(char* buf, size_t n) override {
    if (!failed_.ok()) return failed_;
    auto r = ReadImpl(buf, n);
    if (!r.ok()) failed_ = r.status();
    return r;
  }

 private:
  Result<size_t> ReadImpl(char* buf, size_t n) {
    while (true) {
      if (signed_chunks_ && chunk_pos_ < chunk_.size()) {
        size_t k = std::min(n, chunk_.size() - chunk_pos_);
        std::memcpy(buf, chunk_.data() + chunk_pos_, k);
        chunk_pos_ += k;
        return k;
      }
      if (!signed_chunks_ && remaining_ > 0) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
        ASSIGN_OR_RETURN(size_t k, ReadRaw(buf, want));
        if (k == 0) return Truncated();
        remaining_ -= k;
        if (remaining_ == 0) RETURN_IF_ERROR(ExpectCrlf());
        return k;
      }
      if (done_) return size_t{0};
      RETURN_IF_ERROR(NextChunk());
    }
  }

  Status Truncated() {
    return Error(ErrorCode::kIncompleteBody, "The aws-chunked body ended before its final chunk");
  }

  Status Fill() {
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    char tmp[64 * 1024];
    ASSIGN_OR_RETURN(size_t k, inner_->Read(tmp, sizeof(tmp)));
    if (k == 0) eof_ = true;
    buf_.append(tmp, k);
    return Status::OK();
  }

  Result<size_t> ReadRaw(char* out, size_t n) {
    if (pos_ < buf_.size()) {
      size_t k = std::min(n, buf_.size() - pos_);
      std::memcpy(out, buf_.data() + pos_, k);
      pos_ += k;
      return k;
    }
    if (eof_) return size_t{0};
    return inner_->Read(out, n);
  }

  // Reads a CRLF-terminated line (without the CRLF). `*eof` when the body ended first.
  Status ReadLine(std::string* line, bool* eof) {
    *eof = false;
    while (true) {
      size_t nl = buf_.find("\r\n", pos_);
      if (nl != std::string::npos) {
        line->assign(buf_, pos_, nl - pos_);
        pos_ = nl + 2;
        return Status::OK();
      }
      if (buf_.size() - pos_ > kMaxLine) {
        return Error(ErrorCode::kIncompleteBody, "aws-chunked line too long");
      }
      if (eof_) {
        *eof = true;
        line->assign(buf_, pos_, std::string::npos);
        pos_ = buf_.size();
        return Status::OK();
      }
      // Keep the unread tail and read more.
      if (pos_ > 0) {
        buf_.erase(0, pos_);
        pos_ = 0;
      }
      RETURN_IF_ERROR(Fill());
    }
  }

  Status ExpectCrlf() {
    std::string line;
    bool eof = false;
    RETURN_IF_ERROR(ReadLine(&line, &eof));
    if (eof || !line.empty()) {
      return Error(ErrorCode::kIncompleteBody, "aws-chunked chunk is not followed by CRLF");
    }
    return Status::OK();
  }

  std::string ChunkStringToSign(std::string_view data) const {
    return "AWS4-HMAC-SHA256-PAYLOAD\n" + amz_date_ + "\n" + scope_ + "\n" + previous_ + "\n" +
           kEmptySha256 + "\n" + HexEncode(Sha256(data));
  }

  Status NextChunk() {
    std::string line;
    bool eof = false;
    RETURN_IF_ERROR(ReadLine(&line, &eof));
    if (eof) return Truncated();
    std::string_view header(line);
    std::string signature;
    size_t semi = header.find(';');
    std::string_view size_hex = Trim(header.substr(0, semi));
    if (semi != std::string_view::npos) {
      std::string_view ext = header.substr(semi + 1);
      if (StartsWith(ext, "chunk-signature=")) signature = std::string(Trim(ext.substr(16)));
    }
    uint64_t size = 0;
    if (size_hex.empty() || size_hex.size() > 15) {
      return Error(ErrorCode::kIncompleteBody, "malformed aws-chunked chunk size");
    }
    for (char c : size_hex) {
      int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (v < 0) return Error(ErrorCode::kIncompleteBody, "malformed aws-chunked chunk size");
      size = size * 16 + static_cast<uint64_t>(v);
    }
    if (signed_chunks_ && signature.empty()) {
      return Error(ErrorCode::kSignatureDoesNotMatch, "aws-chunked chunk without a chunk-signature");
    }
    total_ += size;
    if (decoded_length_ && total_ > *decoded_length_) {
      return Error(ErrorCode::kIncompleteBody, "aws-chunked body longer than x-amz-decoded-content-length");
    }
    if (size == 0) return Finish(signature);
    if (!signed_chunks_) {
      remaining_ = size;
      return Status::OK();
    }
    if (size > kMaxSignedChunk) {
      return Error(ErrorCode::kEntityTooLarge, "aws-chunked chunk larger than 16 MiB");
    }
    chunk_.resize(static_cast<size_t>(size));
    size_t got = 0;
    while (got < size) {
      ASSIGN_OR_RETURN(size_t k, ReadRaw(chunk_.data() + got, chunk_.size() - got));
      if (k == 0) return Truncated();
      got += k;
    }
    RETURN_IF_ERROR(ExpectCrlf());
    std::string expected = Sign(key_, ChunkStringToSign(chunk_));
    if (!ConstantTimeEquals(expected, signature)) return BadSignature();
    previous_ = std::move(expected);
    chunk_pos_ = 0;
    return Status::OK();
  }

  Status Finish(const std::string& signature) {
    if (signed_chunks_) {
      std::string expected = Sign(key_, ChunkStringToSign(""));
      if (!ConstantTimeEquals(expected, signature)) return BadSignature();
      previous_ = std::move(expected);
    }
    // Trailer fields up to the empty line (some clients end the body without it).
    std::string canonical, trailer_signature;
    while (true) {
      std::string line;
      bool eof = false;
      RETURN_IF_ERROR(ReadLine(&line, &eof));
      if (line.empty()) break;
      size_t colon = line.find(':');
      if (colon == std::string::npos) return Error(ErrorCode::kIncompleteBody, "malformed aws-chunked trailer");
      std::string name = ToLower(Trim(std::string_view(line).substr(0, colon)));
      std::string value(Trim(std::string_view(line).substr(colon + 1)));
      if (name == "x-amz-trailer-signature") {
        trailer_signature = value;
      } else {
        canonical += name + ":" + value + "\n";
        if (trailers_) trailers_->Add(name, value);
      }
      if (eof) break;
    }
    if (signed_trailer_) {
      std::string sts = "AWS4-HMAC-SHA256-TRAILER\n" + amz_date_ + "\n" + scope_ + "\n" + previous_ +
                        "\n" + HexEncode(Sha256(canonical));
      if (!ConstantTimeEquals(Sign(key_, sts), trailer_signature)) return BadSignature();
    }
    if (decoded_length_ && total_ != *decoded_length_) {
      return Error(ErrorCode::kIncompleteBody, "aws-chunked body shorter than x-amz-decoded-content-length");
    }
    done_ = true;
    chunk_.clear();
    chunk_pos_ = 0;
    return Status::OK();
  }

  net::BodyReader* inner_;
  std::optional<uint64_t> decoded_length_;
  net::Headers* trailers_;
  bool signed_chunks_, signed_trailer_;
  std::string key_, amz_date_, scope_, previous_;
  std::string buf_;  // raw bytes read ahead from inner_
  size_t pos_ = 0;
  bool eof_ = false;
  std::string chunk_;  // signed mode: the verified chunk being handed out
  size_t chunk_pos_ = 0;
  uint64_t remaining_ = 0;  // unsigned mode: bytes left in the current chunk
  uint64_t total_ = 0;
  bool done_ = false;
  Status failed_;
};

class Sha256VerifyingReader final : public net::BodyReader {
 public:
  Sha256VerifyingReader(net::BodyReader* inner, std::string expected_hex)
      : inner_(inner), expected_(ToLower(expected_hex)), hasher_(Hasher::Algorithm::kSha256) {}

  std::optional<uint64_t> content_length() const override { return inner_->content_length(); }

  std::optional<std::string> TakePayloadSha256Check() override {
    if (started_) return std::nullopt;
    handed_over_ = true;
    return expected_;
  }

  Result<size_t> Read(char* buf, size_t n) override {
    started_ = true;
    if (handed_over_) return inner_->Read(buf, n);
    if (!failed_.ok()) return failed_;
    if (done_) return size_t{0};
    auto r = inner_->Read(buf, n);
    if (!r.ok()) return r;
    if (*r > 0) {
      hasher_.Update(std::string_view(buf, *r));
      return r;
    }
    done_ = true;
    if (HexEncode(hasher_.Final()) != expected_) {
      failed_ = Error(ErrorCode::kXAmzContentSHA256Mismatch,
                      "The provided 'x-amz-content-sha256' header does not match what was computed.");
      return failed_;
    }
    return size_t{0};
  }

 private:
  net::BodyReader* inner_;
  std::string expected_;
  Hasher hasher_;
  bool done_ = false;
  bool started_ = false;
  bool handed_over_ = false;  // the reader's caller checks the hash (TakePayloadSha256Check)
  Status failed_;
};

}  // namespace

std::unique_ptr<net::BodyReader> NewChunkedReader(net::BodyReader* inner, std::optional<uint64_t> decoded_length,
                                                  net::Headers* trailers, bool signed_chunks,
                                                  bool signed_trailer, std::string signing_key,
                                                  std::string amz_date, std::string scope,
                                                  std::string seed_signature) {
  return std::make_unique<ChunkedReader>(inner, decoded_length, trailers, signed_chunks, signed_trailer,
                                         std::move(signing_key), std::move(amz_date), std::move(scope),
                                         std::move(seed_signature));
}

std::unique_ptr<net::BodyReader> NewSha256VerifyingReader(net::BodyReader* inner, std::string expected_hex) {
  return std::make_unique<Sha256VerifyingReader>(inner, std::move(expected_hex));
}

}  // namespace tarn::security::sigv4
