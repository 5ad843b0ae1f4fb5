#include "net/http.h"

#include <cstring>

#include "core/strings.h"

namespace tarn::net {

const std::string* Headers::Find(std::string_view name) const {
  for (const auto& f : fields_) {
    if (EqualsIgnoreCase(f.first, name)) return &f.second;
  }
  return nullptr;
}

std::string Headers::Get(std::string_view name, std::string_view fallback) const {
  const std::string* v = Find(name);
  return v ? *v : std::string(fallback);
}

void Headers::Set(std::string_view name, std::string value) {
  Remove(name);
  fields_.emplace_back(std::string(name), std::move(value));
}

void Headers::Remove(std::string_view name) {
  std::erase_if(fields_, [&](const auto& f) { return EqualsIgnoreCase(f.first, name); });
}

Result<std::string> BodyReader::ReadAll(size_t max_bytes) {
  std::string out;
  if (auto len = content_length()) {
    if (*len > max_bytes) {
      return Error(ErrorCode::kEntityTooLarge, "request body of " + std::to_string(*len) +
                                                   " bytes exceeds the limit of " +
                                                   std::to_string(max_bytes));
    }
    out.reserve(static_cast<size_t>(*len));
  }
  char buf[64 * 1024];
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, Read(buf, sizeof(buf)));
    if (n == 0) return out;
    if (out.size() + n > max_bytes) {
      return Error(ErrorCode::kEntityTooLarge,
                   "request body exceeds the limit of " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, n);
  }
}

Status BodyReader::Discard() {
  char buf[64 * 1024];
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, Read(buf, sizeof(buf)));
    if (n == 0) return Status::OK();
  }
}

std::vector<std::pair<std::string, std::string>> HttpRequest::QueryParams() const {
  // S3 and SigV4 use RFC 3986 encoding where '+' is a literal plus, except in form bodies.
  return ParseQueryString(query, /*plus_as_space=*/false);
}

Result<size_t> StringBodySource::Read(char* buf, size_t n) {
  size_t k = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, k);
  pos_ += k;
  return k;
}

}  // namespace tarn::net

namespace tarn::net {

Result<size_t> MemoryBodyReader::Read(char* buf, size_t n) {
  size_t k = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, k);
  pos_ += k;
  return k;
}

}  // namespace tarn::net
