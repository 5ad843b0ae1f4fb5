#include "storage/checksum.h"

#include <zlib.h>

#include <array>

#include "core/crypto.h"

namespace tarn::storage {

namespace {

// CRC-32C, reflected polynomial 0x82F63B78 (RFC 3720 §B.4), slicing-by-8 tables.
struct Crc32cTables {
  std::array<std::array<uint32_t, 256>, 8> t;
  Crc32cTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
  }
};

const Crc32cTables& Tables() {
  static const Crc32cTables tables;
  return tables;
}

std::string BigEndian32(uint32_t v) {
  std::string out(4, '\0');
  out[0] = char(v >> 24);
  out[1] = char(v >> 16);
  out[2] = char(v >> 8);
  out[3] = char(v);
  return out;
}

}  // namespace

uint32_t Crc32(uint32_t crc, std::string_view data) {
  // zlib takes uInt lengths; feed large buffers in slices.
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), 1u << 30);
    crc = static_cast<uint32_t>(
        crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(n)));
    data.remove_prefix(n);
  }
  return crc;
}

uint32_t Crc32c(uint32_t crc, std::string_view data) {
  const auto& t = Tables().t;
  uint32_t c = ~crc;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  while (n >= 8) {
    uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                       uint32_t(p[3]) << 24);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

namespace {
uint32_t Gf2Times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec; vec >>= 1, ++mat) {
    if (vec & 1) sum ^= *mat;
  }
  return sum;
}
void Gf2Square(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = Gf2Times(mat, mat[n]);
}
}  // namespace

uint32_t CrcCombine(ChecksumAlgorithm algorithm, uint32_t crc1, uint32_t crc2, uint64_t len2) {
  if (len2 == 0) return crc1;
  uint32_t even[32], odd[32];
  // The operator for one zero bit, for the reflected polynomial.
  odd[0] = algorithm == ChecksumAlgorithm::kCrc32c ? 0x82F63B78u : 0xEDB88320u;
  uint32_t row = 1;
  for (int n = 1; n < 32; ++n) {
    odd[n] = row;
    row <<= 1;
  }
  Gf2Square(even, odd);  // two zero bits
  Gf2Square(odd, even);  // four zero bits
  // Apply len2 zero bytes to crc1 (the first squaring gives one zero byte).
  do {
    Gf2Square(even, odd);
    if (len2 & 1) crc1 = Gf2Times(even, crc1);
    len2 >>= 1;
    if (len2 == 0) break;
    Gf2Square(odd, even);
    if (len2 & 1) crc1 = Gf2Times(odd, crc1);
    len2 >>= 1;
  } while (len2 != 0);
  return crc1 ^ crc2;
}

struct Checksummer::HashImpl {
  Hasher hasher;
  explicit HashImpl(Hasher::Algorithm a) : hasher(a) {}
};

Checksummer::Checksummer(ChecksumAlgorithm algorithm) : algorithm_(algorithm) {
  if (algorithm == ChecksumAlgorithm::kSha1) {
    hash_ = std::make_unique<HashImpl>(Hasher::Algorithm::kSha1);
  } else if (algorithm == ChecksumAlgorithm::kSha256) {
    hash_ = std::make_unique<HashImpl>(Hasher::Algorithm::kSha256);
  }
}
Checksummer::~Checksummer() = default;
Checksummer::Checksummer(Checksummer&&) noexcept = default;

void Checksummer::Update(std::string_view data) {
  switch (algorithm_) {
    case ChecksumAlgorithm::kCrc32: crc_ = Crc32(crc_, data); break;
    case ChecksumAlgorithm::kCrc32c: crc_ = Crc32c(crc_, data); break;
    default: hash_->hasher.Update(data);
  }
}

std::string Checksummer::Final() {
  if (hash_) return hash_->hasher.Final();
  return BigEndian32(crc_);
}

std::string ComputeChecksum(ChecksumAlgorithm algorithm, std::string_view data) {
  Checksummer c(algorithm);
  c.Update(data);
  return c.Final();
}

}  // namespace tarn::storage
