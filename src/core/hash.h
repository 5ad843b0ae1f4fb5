// A 64-bit hash whose value is fixed forever: it is stored on disk (delivery-stream logs keep
// the hash of each device message's payload, docs/streams.md), so it must give the same value
// in every process and every version. Not for security: use Sha256 for that.
#pragma once

#include <cstdint>
#include <string_view>

namespace tarn {

// Hash of `data` under `seed`. Reads 8-byte little-endian words (Tarn runs on little-endian
// hosts; a big-endian port must byte-swap to keep stored values meaningful).
uint64_t StableHash64(std::string_view data, uint64_t seed = 0);

// Mixes `v` into `h` (for hashing a few integers after a string).
uint64_t StableHashCombine(uint64_t h, uint64_t v);

}  // namespace tarn
