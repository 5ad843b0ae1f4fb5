#include "storage/object_store.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/strings.h"

namespace tarn::storage {

Result<size_t> StringSource::Read(char* buf, size_t n) {
  size_t k = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, k);
  pos_ += k;
  return k;
}

Result<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Error(ErrorCode::kIoError, "opening " + path + ": " + std::strerror(errno));
  return std::unique_ptr<FileSource>(new FileSource(f, path));
}

FileSource::~FileSource() { std::fclose(f_); }

Result<size_t> FileSource::Read(char* buf, size_t n) {
  size_t got = std::fread(buf, 1, n, f_);
  if (got == 0 && std::ferror(f_)) return Error(ErrorCode::kIoError, "reading " + path_);
  return got;
}

const char* ChecksumName(ChecksumAlgorithm a) {
  switch (a) {
    case ChecksumAlgorithm::kCrc32: return "CRC32";
    case ChecksumAlgorithm::kCrc32c: return "CRC32C";
    case ChecksumAlgorithm::kSha1: return "SHA1";
    case ChecksumAlgorithm::kSha256: return "SHA256";
    case ChecksumAlgorithm::kCrc64Nvme: return "CRC64NVME";
  }
  return "";
}

std::optional<ChecksumAlgorithm> ParseChecksumAlgorithm(std::string_view name) {
  for (auto a : {ChecksumAlgorithm::kCrc32, ChecksumAlgorithm::kCrc32c, ChecksumAlgorithm::kSha1,
                 ChecksumAlgorithm::kSha256, ChecksumAlgorithm::kCrc64Nvme}) {
    if (EqualsIgnoreCase(name, ChecksumName(a))) return a;
  }
  return std::nullopt;
}

bool IsValidBucketName(std::string_view name) {
  // https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
  if (name.size() < 3 || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  bool all_ip_chars = true;
  int dots = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!alnum(c) && c != '.' && c != '-') return false;
    if (c == '.' && i > 0 && (name[i - 1] == '.' || name[i - 1] == '-')) return false;
    if (c == '-' && i > 0 && name[i - 1] == '.') return false;
    if (c == '.') ++dots;
    if (!(c == '.' || (c >= '0' && c <= '9'))) all_ip_chars = false;
  }
  if (all_ip_chars && dots == 3) return false;  // formatted as an IP address
  if (StartsWith(name, "xn--") || EndsWith(name, "-s3alias")) return false;
  return true;
}

Status ValidateKey(std::string_view key) {
  if (key.empty()) return Error(ErrorCode::kInvalidObjectName, "object key must not be empty");
  if (key.size() > 1024) {
    return Error(ErrorCode::kKeyTooLong, "Your key is too long (" + std::to_string(key.size()) +
                                             " bytes, at most 1024)");
  }
  if (!IsValidUtf8(key)) return Error(ErrorCode::kInvalidObjectName, "object key is not valid UTF-8");
  return Status::OK();
}

}  // namespace tarn::storage
