// S3 additional checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) computed while bytes stream, and the
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

// CRC-32 (ISO-HDLC, zlib's) and CRC-32C (Castagnoli, iSCSI; the SSE4.2 instruction where the
// CPU has it) of `data`, continuing from `crc`.
uint32_t Crc32(uint32_t crc, std::string_view data);
uint32_t Crc32c(uint32_t crc, std::string_view data);
// CRC-64/NVME (NVM Express NVM Command Set §5.2.1.3.4; polynomial 0xAD93D23594C93659,
// reflected, init and xorout all ones), continuing from `crc`: S3's CRC64NVME.
uint64_t Crc64Nvme(uint64_t crc, std::string_view data);

// True for the CRCs (CRC32, CRC32C, CRC64NVME): S3 allows them the FULL_OBJECT checksum type.
bool IsCrc(ChecksumAlgorithm algorithm);

// The CRC of A+B from crc(A), crc(B) and len(B), for any CRC algorithm (zlib's crc32_combine
// method over GF(2)): S3's FULL_OBJECT checksum of a multipart object from its parts' CRCs.
uint64_t CrcCombine(ChecksumAlgorithm algorithm, uint64_t crc1, uint64_t crc2, uint64_t len2);
// A CRC's raw big-endian digest as a number, and back (4 or 8 bytes by algorithm).
uint64_t CrcFromRaw(std::string_view raw);
std::string CrcToRaw(ChecksumAlgorithm algorithm, uint64_t crc);

class Checksummer {
 public:
  explicit Checksummer(ChecksumAlgorithm algorithm);
  ~Checksummer();
  Checksummer(Checksummer&&) noexcept;
  void Update(std::string_view data);
  // Raw digest (4 bytes for CRC32/CRC32C, 8 for CRC64NVME, 20 / 32 for SHA1 / SHA256). Call
  // once.
  std::string Final();
  ChecksumAlgorithm algorithm() const { return algorithm_; }

 private:
  ChecksumAlgorithm algorithm_;
  uint64_t crc_ = 0;
  struct HashImpl;
  std::unique_ptr<HashImpl> hash_;
};

// The raw digest of `data` in one call.
std::string ComputeChecksum(ChecksumAlgorithm algorithm, std::string_view data);

}  // namespace tarn::storage
