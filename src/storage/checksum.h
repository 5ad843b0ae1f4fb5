// S3 additional checksums (CRC32, CRC32C, SHA1, SHA256) computed while bytes stream, and the
// multipart "checksum of checksums". Values are the raw big-endian digest; S3 headers carry
// them base64-encoded (x-amz-checksum-crc32: "AAAAAA==").
//
// Not thread-safe: one Checksummer per stream.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/object_store.h"

namespace tarn::storage {

// CRC-32 (ISO-HDLC, zlib's) and CRC-32C (Castagnoli, iSCSI) of `data`, continuing from `crc`.
uint32_t Crc32(uint32_t crc, std::string_view data);
uint32_t Crc32c(uint32_t crc, std::string_view data);

class Checksummer {
 public:
  explicit Checksummer(ChecksumAlgorithm algorithm);
  ~Checksummer();
  Checksummer(Checksummer&&) noexcept;
  void Update(std::string_view data);
  // Raw digest (4 bytes for the CRCs, 20 / 32 for SHA1 / SHA256). Call once.
  std::string Final();
  ChecksumAlgorithm algorithm() const { return algorithm_; }

 private:
  ChecksumAlgorithm algorithm_;
  uint32_t crc_ = 0;
  struct HashImpl;
  std::unique_ptr<HashImpl> hash_;
};

// The raw digest of `data` in one call.
std::string ComputeChecksum(ChecksumAlgorithm algorithm, std::string_view data);

}  // namespace tarn::storage
