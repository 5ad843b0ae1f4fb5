#include "core/hash.h"

#include <cstring>

namespace tarn {

namespace {

constexpr uint64_t kOdd1 = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio
constexpr uint64_t kOdd2 = 0xD6E8FEB86659FD93ull;
constexpr uint64_t kOdd3 = 0xA0761D6478BD642Full;

inline uint64_t Rotl(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }

// Spreads every input bit over the whole word (xor-shift / multiply rounds).
inline uint64_t Avalanche(uint64_t h) {
  h ^= h >> 32;
  h *= kOdd2;
  h ^= h >> 29;
  h *= kOdd3;
  h ^= h >> 32;
  return h;
}

inline uint64_t Absorb(uint64_t h, uint64_t word) {
  return Rotl(h ^ (word * kOdd3), 27) * kOdd1 + kOdd2;
}

}  // namespace

uint64_t StableHash64(std::string_view data, uint64_t seed) {
  const char* p = data.data();
  size_t n = data.size();
  uint64_t h = seed ^ (uint64_t(n) * kOdd1);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = Absorb(h, w);
    p += 8;
    n -= 8;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  h = Absorb(h, tail ^ (uint64_t(n) << 56));
  return Avalanche(h);
}

uint64_t StableHashCombine(uint64_t h, uint64_t v) { return Avalanche(Absorb(h, v)); }

}  // namespace tarn
