// Reads the part of a Parquet file's footer that determines its table schema, with two bounded
// reads and no query engine, so that a crawler can tell files with the same schema apart from
// the others at the cost of a few system calls (Apache Parquet format, "File Format": a file
// ends with the Thrift-compact FileMetaData, its 4-byte little-endian length and "PAR1").
//
// The result is the raw bytes of FileMetaData.schema (field 2: the SchemaElement list — names,
// physical, converted and logical types, repetition, nesting) and of key_value_metadata
// (field 5, which a reader may use for types: ARROW:schema, geo …). Two files whose schema keys
// are equal read as the same columns, so the classifier asks DuckDB only once per distinct key.
//
// The parser only walks the Thrift structure (skipping every value it does not keep), checks
// every length against the buffer, and limits nesting depth: a malformed or hostile footer is
// an InvalidInput error, never a crash. Encrypted footers ("PARE") are InvalidInput.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tarn::catalog {

struct ParquetFooter {
  std::string schema_key;  // field 2 and field 5 bytes, length-prefixed
  int64_t num_rows = -1;   // field 3 when present
};

// Parses a serialized FileMetaData.
Result<ParquetFooter> ParseParquetFileMetaData(std::string_view metadata);

// Opens `path`, checks the magic bytes at both ends and parses the footer. `size` is the file's
// size when the caller knows it (0 = ask the filesystem).
Result<ParquetFooter> ReadParquetFooter(const std::string& path, uint64_t size = 0);

}  // namespace tarn::catalog
