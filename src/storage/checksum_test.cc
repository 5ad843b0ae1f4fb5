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

TEST(Checksum, Names) {
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
}

}  // namespace
}  // namespace tarn::storage
