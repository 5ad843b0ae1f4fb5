// Record → output file: JSON records to Parquet through DuckDB (DataFormatConversion), and raw
// output (records concatenated, optionally newline-delimited, optionally gzip).
//
// Parquet conversion follows AWS's OpenX JSON SerDe: column names match JSON keys
// case-insensitively (unless CaseInsensitive=false), ColumnToJsonKeyMappings rename,
// numbers and booleans in strings are accepted for numeric / boolean columns, numbers and
// nested values become text in string columns, keys without a column are ignored, missing keys
// are NULL. A record that cannot be converted is returned with the reason, for the error prefix;
// it never fails the batch.
//
// Internal to src/streams/. Thread-safety: a ParquetWriter belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "streams/destination.h"
#include "streams/wal.h"

namespace tarn::sql {
class Database;
class Connection;
struct RowSourceSlot;
}  // namespace tarn::sql

namespace tarn::streams {

enum class ColumnKind { kString, kTinyInt, kSmallInt, kInt, kBigInt, kFloat, kDouble, kBoolean,
                        kTimestamp, kDate, kDecimal };

struct ColumnSpec {
  std::string name;       // as in the catalog
  std::string json_key;   // the key looked up (lower-cased when case-insensitive)
  ColumnKind kind = ColumnKind::kString;
  int precision = 0, scale = 0;  // decimal
  std::string sql_type;   // DuckDB type of the Parquet column
};

// The data columns of a Glue `Table` (StorageDescriptor.Columns; PartitionKeys are in the
// path, not the file). kFirehoseInvalidArgument for a Hive type Tarn cannot convert to.
Result<std::vector<ColumnSpec>> SchemaFromGlueTable(const nlohmann::json& table,
                                                    const DestinationConfig& config);

// Glue columns inferred from JSON records (the opt-in schema inference, docs/streams.md): every
// top-level key of the records that are JSON objects, in order of first appearance, lower-cased
// as Glue stores names; boolean, bigint (integers), double (any fractional number), string
// (text, nested objects and arrays, or a key whose values disagree in kind). Keys named in
// `skip` (the prefix's Hive partition keys) are left out. Empty when no record is an object.
nlohmann::json InferGlueColumns(const std::vector<const WalRecord*>& records,
                                const std::vector<std::string>& skip);

// Checks one record as the Parquet conversion would convert it — the same code, so that the
// verdict agrees with a flush under the same columns: true, or false with the error code
// ("DataFormatConversion.MalformedData" / ".InvalidValue") and the reason. For telling a rule's
// error action about a record before the stream takes it (docs/streams.md "Records that will
// not convert"). Thread-safe (a parser per thread).
bool CheckRecord(const std::vector<ColumnSpec>& columns, std::string_view data,
                 std::string* error_code, std::string* error_message);

struct FailedRecord {
  const WalRecord* record;
  std::string error_code;     // e.g. "DataFormatConversion.MalformedData"
  std::string error_message;
};

// Writes Parquet files with DuckDB: `COPY (SELECT … FROM <table function>) TO … (FORMAT parquet)`,
// the table function converting the records chunk by chunk straight into DuckDB's vectors.
class ParquetWriter {
 public:
  static Result<std::unique_ptr<ParquetWriter>> Create();
  ~ParquetWriter();

  // Converts `records` and writes the ones that convert to `path` (when there is at least one);
  // the others are appended to `failed` — including a record with a value DuckDB's cast
  // refuses, which never fails the whole file. Returns the number of rows written.
  Result<size_t> Write(const std::vector<ColumnSpec>& columns,
                       const std::vector<const WalRecord*>& records,
                       const std::string& compression, const std::string& path,
                       std::vector<FailedRecord>* failed);

  // Compaction: writes the rows of the Parquet files `inputs`, in order, into one file at `path`
  // (columns matched by name, so files written before and after a schema change merge; a
  // column missing from some inputs is NULL there). Returns the number of rows.
  Result<uint64_t> Merge(const std::vector<std::string>& inputs, const std::string& compression,
                         const std::string& path);

 private:
  ParquetWriter() = default;
  // One COPY of `records` (Write without the isolation of records DuckDB refuses).
  Result<size_t> WriteOnce(const std::vector<ColumnSpec>& columns,
                           const std::vector<const WalRecord*>& records,
                           const std::string& compression, const std::string& path,
                           std::vector<FailedRecord>* failed);
  // Splits `records` in halves until each part writes or is one record DuckDB refuses; the
  // records that write go to `good`, the others to `failed` (record order kept).
  Status Isolate(const std::vector<ColumnSpec>& columns,
                 const std::vector<const WalRecord*>& records, const std::string& compression,
                 const std::string& path, std::vector<const WalRecord*>* good,
                 std::vector<FailedRecord>* failed);
  static constexpr const char* kRecordsFunction = "tarn_firehose_records";
  std::unique_ptr<sql::Database> db_;
  std::unique_ptr<sql::Connection> conn_;
  sql::RowSourceSlot* records_ = nullptr;  // owned by db_: the records of the Write in progress
};

// The raw output of `records`: their bytes concatenated (with '\n' after each when
// `newline`), gzip-compressed when asked (RFC 1952, deterministic: no name, no time).
Result<std::string> RawOutput(const std::vector<const WalRecord*>& records, bool newline,
                              RawCompression compression);

// One line of the error output (AWS's error record: attemptsMade, arrivalTimestamp,
// errorCode, errorMessage, attemptEndingTimestamp, rawData (base64) …).
std::string ErrorRecordJson(const FailedRecord& f, const std::string& stream,
                            const std::string& table_arn);

}  // namespace tarn::streams
