// Snappy-compressed text files as Hadoop-world tools write them, decompressed for schema
// inference (DuckDB reads gzip and zstd itself, not snappy):
//  - the snappy framing format (google/snappy framing_format.txt; `.sz`, `snzip`, python-snappy
//    streams): the stream identifier chunk 0xff 06 00 00 "sNaPpY", then chunks of a type byte
//    and a 3-byte little-endian length (0x00 compressed, 0x01 uncompressed, both after a 4-byte
//    masked CRC-32C; 0x80–0xfe skippable);
//  - Hadoop's SnappyCodec (`.snappy`, Hive/Spark text output): blocks of a 4-byte big-endian
//    uncompressed length followed by chunks of a 4-byte big-endian compressed length and raw
//    snappy data.
// Only a prefix is decompressed (a crawler samples); the CRCs are not verified.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace tarn::catalog {

// True when `head` starts with the framing format's stream identifier.
bool IsSnappyFramed(std::string_view head);

// Up to `max_out` bytes of the text in `data` (either format; `framed` says which). When the
// text goes on beyond what is returned (or `data` is only the start of the stream:
// !complete), the result ends at its last complete line. InvalidInput when `data` is not a
// snappy stream of that format.
Result<std::string> DecompressSnappyText(std::string_view data, bool framed, size_t max_out,
                                         bool complete = true);

// Reads the start of the file at `path` (at most `max_in` bytes) and decompresses it.
Result<std::string> ReadSnappyText(const std::string& path, size_t max_in, size_t max_out);

}  // namespace tarn::catalog
