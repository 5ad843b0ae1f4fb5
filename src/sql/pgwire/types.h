// PostgreSQL types on the wire: DuckDB column types → PostgreSQL type OIDs, the text and
// binary encodings of result values (PostgreSQL's typoutput/typsend forms), and decoding of
// Bind parameters (typinput/typreceive) into DuckDB prepared-statement bindings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "sql/duckdb/engine.h"

namespace tarn::sql::pgwire {

// OIDs from PostgreSQL's pg_type.dat (stable across versions).
namespace oid {
constexpr int32_t kUnknownParam = 0;
constexpr int32_t kBool = 16, kBytea = 17, kChar = 18, kName = 19, kInt8 = 20, kInt2 = 21, kInt4 = 23,
                  kText = 25, kOid = 26, kJson = 114, kFloat4 = 700, kFloat8 = 701, kUnknown = 705,
                  kBpchar = 1042, kVarchar = 1043, kDate = 1082, kTime = 1083, kTimestamp = 1114,
                  kTimestampTz = 1184, kInterval = 1186, kTimeTz = 1266, kNumeric = 1700, kUuid = 2950,
                  kJsonb = 3802;
}  // namespace oid

struct PgType {
  int32_t oid = oid::kText;
  int16_t size = -1;     // typlen
  int32_t typmod = -1;   // numeric: ((precision << 16) | scale) + 4
};
PgType PgTypeFor(const TypeInfo& t);
// The array type whose elements are `elem`; 0 when PostgreSQL has none we map.
int32_t ArrayOidOf(int32_t elem);
int32_t ElementOidOf(int32_t array_oid);  // 0 when not an array type
// The PostgreSQL name of a type OID (for format_type and error messages).
const char* PgTypeName(int32_t oid);

// Appends the encoding of one value (not NULL) to `out`. The type is PgTypeFor(v.type()).
void EncodeText(const VectorView& v, size_t row, std::string* out);
void EncodeBinary(const VectorView& v, size_t row, std::string* out);

// Binds parameter `index` (1-based) of `stmt` from a Bind value in `format` (0 text, 1
// binary) declared as `type_oid` by the client (0 = let the statement decide).
Status BindParameter(PreparedStatement& stmt, size_t index, int32_t type_oid, int16_t format,
                     const std::optional<std::string>& value);
// The OID to report in ParameterDescription for a parameter DuckDB typed as `t`.
int32_t ParamOidFor(ColumnType t);

}  // namespace tarn::sql::pgwire
