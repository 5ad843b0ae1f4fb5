#include "storage/checksum.h"

#include <gtest/gtest.h>

#include "core/strings.h"

namespace tarn::storage {
namespace {

TEST(Checksum, KnownVectors) {
  // Check values of the CRC catalogue ("123456789").
  EXPECT_EQ(Crc32(0, "123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32c(0, "123456789"), 0xE3069283u);
  // Incremental equals one-shot, across the slicing-by-8 boundary.
  std::string data(1000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  EXPECT_EQ(Crc32c(Crc32c(0, data.substr(0, 13)), data.substr(13)), Crc32c(0, data));
  EXPECT_EQ(Base64Encode(ComputeChecksum(ChecksumAlgorithm::kCrc32, "")), "AAAAAA==");
  EXPECT_EQ(HexEncode(ComputeChecksum(ChecksumAlgorithm::kSha256, "abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(ComputeChecksum(ChecksumAlgorithm::kSha1, "abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d");
}

// Bit-at-a-time reflected CRCs straight from the definitions, to check the fast paths against.
uint64_t ReferenceCrc(uint64_t poly_reflected, int width, std::string_view data) {
  uint64_t mask = width == 64 ? ~0ull : (1ull << width) - 1;
  uint64_t c = mask;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ poly_reflected : c >> 1;
  }
  return ~c & mask;
}

TEST(Checksum, Crc64NvmeAndCrc32cAgainstTheDefinition) {
  // CRC-64/NVME check value of the CRC catalogue.
  EXPECT_EQ(Crc64Nvme(0, "123456789"), 0xAE8B14860A799888ull);
  EXPECT_EQ(Crc64Nvme(0, ""), 0u);
  std::string data(4099, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 17);
  for (size_t len : {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099}) {
    std::string_view d(data.data(), len);
    EXPECT_EQ(Crc64Nvme(0, d), ReferenceCrc(0x9A6C9329AC4BC9B5ull, 64, d)) << len;
    EXPECT_EQ(Crc32c(0, d), ReferenceCrc(0x82F63B78u, 32, d)) << len;  // SSE4.2 path here
    EXPECT_EQ(Crc32(0, d), ReferenceCrc(0xEDB88320u, 32, d)) << len;
  }
  // Incremental equals one-shot.
  EXPECT_EQ(Crc64Nvme(Crc64Nvme(0, data.substr(0, 13)), data.substr(13)), Crc64Nvme(0, data));
  EXPECT_EQ(Crc32c(Crc32c(0, data.substr(0, 5)), data.substr(5)), Crc32c(0, data));
  // Digest: 8 big-endian bytes.
  EXPECT_EQ(HexEncode(ComputeChecksum(ChecksumAlgorithm::kCrc64Nvme, "123456789")),
            "ae8b14860a799888");
}

TEST(Checksum, Names) {
  EXPECT_EQ(ParseChecksumAlgorithm("crc64nvme"), ChecksumAlgorithm::kCrc64Nvme);
  EXPECT_STREQ(ChecksumName(ChecksumAlgorithm::kCrc64Nvme), "CRC64NVME");
  EXPECT_EQ(ParseChecksumAlgorithm("crc32c"), ChecksumAlgorithm::kCrc32c);
  EXPECT_EQ(ParseChecksumAlgorithm("SHA256"), ChecksumAlgorithm::kSha256);
  EXPECT_FALSE(ParseChecksumAlgorithm("md5").has_value());
}

TEST(Checksum, CrcCombineMatchesTheWholeObject) {
  std::string a(70000, 'a'), b = "the second part, shorter";
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<char>(i * 31 + 7);
  EXPECT_EQ(CrcCombine(ChecksumAlgorithm::kCrc32, Crc32(0, a), Crc32(0, b), b.size()), Crc32(0, a + b));
  EXPECT_EQ(CrcCombine(ChecksumAlgorithm::kCrc32c, Crc32c(0, a), Crc32c(0, b), b.size()), Crc32c(0, a + b));
  EXPECT_EQ(CrcCombine(ChecksumAlgorithm::kCrc32, 0, Crc32(0, b), b.size()), Crc32(0, b));
  EXPECT_EQ(CrcCombine(ChecksumAlgorithm::kCrc32, Crc32(0, a), 0, 0), Crc32(0, a));
  EXPECT_EQ(CrcCombine(ChecksumAlgorithm::kCrc64Nvme, Crc64Nvme(0, a), Crc64Nvme(0, b), b.size()),
            Crc64Nvme(0, a + b));
  EXPECT_EQ(CrcFromRaw(CrcToRaw(ChecksumAlgorithm::kCrc64Nvme, 0x0102030405060708ull)),
            0x0102030405060708ull);
}

}  // namespace
}  // namespace tarn::storage
