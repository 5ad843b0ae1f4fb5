// DataRow encoding of result chunks (§55.7 DataRow), the hot path of every query that
// returns rows. The per-column work — which encoder, text or binary — is decided once per
// chunk; rows are then written straight into the output buffer with one capacity check per
// cell. Common types (integers, floats, booleans, dates, timestamps, strings) have inline
// encoders; everything else goes through EncodeText / EncodeBinary (types.h), which define
// the wire forms.
//
// Thread-safety: none; one per session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sql/duckdb/engine.h"

namespace tarn::sql::pgwire {

// COPY … TO STDOUT in text or CSV format (§55.2.6, PostgreSQL's COPY "File Formats").
struct CopyTextFormat {
  char delimiter = '\t';
  std::string null = "\\N";
  bool csv = false;  // CSV quoting ('"' doubled) instead of backslash escapes
};

class RowEncoder {
 public:
  // Prepares for the rows of `chunk`; binary[c] selects the binary format for column c.
  // `message_type` 'd' makes Encode write binary COPY rows (CopyData whose tuple has the
  // DataRow layout) instead of DataRows. `chunk` must outlive the Encode calls.
  void Reset(const Chunk& chunk, size_t columns, const std::vector<bool>& binary, char message_type = 'D');
  // Appends DataRow messages for rows [begin, end) to *out, stopping early once *out has
  // grown past `limit` bytes. Returns the number of rows written.
  size_t Encode(size_t begin, size_t end, std::string* out, size_t limit);
  // Appends one CopyData message per row in COPY's text or CSV format (Reset with text
  // columns), with the same early stop. Returns the number of rows written.
  size_t EncodeCopyText(size_t begin, size_t end, const CopyTextFormat& format, std::string* out, size_t limit);

  enum class Kind : uint8_t;

 private:
  struct Column {
    Kind kind;
    const VectorView* view;
    const void* data;
    const uint64_t* validity;
  };
  std::vector<Column> columns_;
  char message_type_ = 'D';
  std::string scratch_;
};

}  // namespace tarn::sql::pgwire
