#include "storage/s3/aws_chunked.h"

#include <cstring>

#include "core/strings.h"

namespace tarn::storage::s3 {

namespace {
constexpr size_t kMaxLine = 4096;
}

bool IsAwsChunked(const net::HttpRequest& request) {
  if (StartsWith(request.headers.Get("x-amz-content-sha256"), "STREAMING-")) return true;
  for (const auto& part : Split(request.headers.Get("Content-Encoding"), ',')) {
    if (EqualsIgnoreCase(Trim(part), "aws-chunked")) return true;
  }
  return false;
}

Result<size_t> AwsChunkedReader::Fill() {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  size_t old = buf_.size();
  buf_.resize(old + 64 * 1024);
  auto n = inner_->Read(buf_.data() + old, 64 * 1024);
  if (!n.ok()) {
    buf_.resize(old);
    return n.status();
  }
  buf_.resize(old + *n);
  return *n;
}

Result<std::string> AwsChunkedReader::ReadLine() {
  while (true) {
    size_t eol = buf_.find("\r\n", pos_);
    if (eol != std::string::npos) {
      std::string line = buf_.substr(pos_, eol - pos_);
      pos_ = eol + 2;
      return line;
    }
    if (buf_.size() - pos_ > kMaxLine) {
      return Error(ErrorCode::kIncompleteBody, "aws-chunked: line too long");
    }
    ASSIGN_OR_RETURN(size_t n, Fill());
    if (n == 0) return Error(ErrorCode::kIncompleteBody, "aws-chunked: body ended early");
  }
}

Result<size_t> AwsChunkedReader::Read(char* out, size_t n) {
  while (!done_) {
    if (in_chunk_ && chunk_left_ > 0) {
      if (pos_ == buf_.size()) {
        ASSIGN_OR_RETURN(size_t got, Fill());
        if (got == 0) return Error(ErrorCode::kIncompleteBody, "aws-chunked: body ended early");
      }
      size_t k = std::min<uint64_t>({n, chunk_left_, buf_.size() - pos_});
      std::memcpy(out, buf_.data() + pos_, k);
      pos_ += k;
      chunk_left_ -= k;
      return k;
    }
    if (in_chunk_) {
      ASSIGN_OR_RETURN(std::string crlf, ReadLine());
      if (!crlf.empty()) return Error(ErrorCode::kIncompleteBody, "aws-chunked: missing CRLF after chunk");
      in_chunk_ = false;
    }
    ASSIGN_OR_RETURN(std::string header, ReadLine());
    std::string size_hex = header.substr(0, header.find(';'));
    uint64_t size = 0;
    if (size_hex.empty() || size_hex.size() > 15) {
      return Error(ErrorCode::kIncompleteBody, "aws-chunked: bad chunk size");
    }
    for (char c : size_hex) {
      int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (v < 0) return Error(ErrorCode::kIncompleteBody, "aws-chunked: bad chunk size");
      size = size * 16 + static_cast<uint64_t>(v);
    }
    if (size > 0) {
      in_chunk_ = true;
      chunk_left_ = size;
      continue;
    }
    // Last chunk: trailers until an empty line (or the end of the body).
    while (true) {
      if (pos_ == buf_.size()) {
        ASSIGN_OR_RETURN(size_t got, Fill());
        if (got == 0) break;
      }
      ASSIGN_OR_RETURN(std::string line, ReadLine());
      if (line.empty()) break;
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      trailers_->Add(std::string(Trim(line.substr(0, colon))),
                     std::string(Trim(line.substr(colon + 1))));
    }
    done_ = true;
  }
  return size_t{0};
}

}  // namespace tarn::storage::s3
