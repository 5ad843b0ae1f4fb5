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

// The CRC of A+B from crc(A), crc(B) and len(B), for CRC32 or CRC32C (zlib's crc32_combine
// method over GF(2)): S3's FULL_OBJECT checksum of a multipart object from its parts' CRCs.
uint32_t CrcCombine(ChecksumAlgorithm algorithm, uint32_t crc1, uint32_t crc2, uint64_t len2);

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
