// Tarn's wrapper over DuckDB's C API: the only place that includes duckdb.h (DESIGN.md §6).
// DuckDB errors become Status with SQL error codes (SqlSyntaxError, SqlUndefinedTable …).
//
// Thread-safety: a Database is thread-safe; a Connection and everything made from it
// (results, prepared statements, appenders) belong to one thread at a time, except
// Connection::Interrupt(), which may be called from any thread to cancel the running query.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tarn::sql {

// Column types as DuckDB reports them (values match DuckDB's duckdb_type).
enum class ColumnType : int {
  kInvalid = 0, kBoolean = 1, kTinyInt = 2, kSmallInt = 3, kInteger = 4, kBigInt = 5,
  kUTinyInt = 6, kUSmallInt = 7, kUInteger = 8, kUBigInt = 9, kFloat = 10, kDouble = 11,
  kTimestamp = 12, kDate = 13, kTime = 14, kInterval = 15, kHugeInt = 16, kVarchar = 17,
  kBlob = 18, kDecimal = 19, kTimestampS = 20, kTimestampMs = 21, kTimestampNs = 22,
  kEnum = 23, kList = 24, kStruct = 25, kMap = 26, kUuid = 27, kUnion = 28, kBit = 29,
  kTimeTz = 30, kTimestampTz = 31, kUHugeInt = 32, kArray = 33,
};
const char* ColumnTypeName(ColumnType t);

// Full type information of a column or parameter, as far as a wire protocol needs it.
struct TypeInfo {
  ColumnType type = ColumnType::kInvalid;
  uint8_t width = 0;                           // DECIMAL precision
  uint8_t scale = 0;                           // DECIMAL scale
  ColumnType storage = ColumnType::kInvalid;   // physical type of DECIMAL and ENUM values
  std::string alias;                           // e.g. "JSON" for DuckDB's JSON type
  uint64_t array_size = 0;                     // ARRAY: fixed length
  std::vector<TypeInfo> children;              // LIST/ARRAY: element; STRUCT/UNION: fields;
                                               // MAP: one STRUCT(key, value) child
  std::vector<std::string> child_names;        // STRUCT/UNION field names
  std::vector<std::string> enum_values;        // ENUM dictionary
};

// DuckDB's physical layouts, exposed so encoders need not include duckdb.h.
struct Int128 {
  uint64_t lower;
  int64_t upper;
};
struct Interval {
  int32_t months;
  int32_t days;
  int64_t micros;
};

// A read-only view over one DuckDB vector (a column of a chunk, or a nested child).
// Valid as long as the Chunk it came from.
class VectorView {
 public:
  const TypeInfo& type() const { return *type_; }
  // Inline: these two run once per cell on the pgwire encoding path. Layouts are those of
  // DuckDB's C API (duckdb_validity_row_is_valid, duckdb_string_t).
  bool IsNull(size_t row) const {
    return validity_ != nullptr && !((validity_[row >> 6] >> (row & 63)) & 1);
  }
  // Raw values: T must match the physical type (int8..int64, uint*, float, double,
  // Int128 for HUGEINT/UUID/DECIMAL(38), Interval, int32 DATE, int64 TIME/TIMESTAMP*).
  template <typename T>
  T Get(size_t row) const { return static_cast<const T*>(data_)[row]; }
  // VARCHAR, BLOB, BIT bytes.
  std::string_view GetString(size_t row) const {
    // duckdb_string_t: uint32 length, then ≤ 12 bytes inline, else a 4-byte prefix and a pointer.
    const char* s = static_cast<const char*>(data_) + row * 16;
    uint32_t len;
    std::memcpy(&len, s, 4);
    if (len <= 12) return std::string_view(s + 4, len);
    const char* ptr;
    std::memcpy(&ptr, s + 8, sizeof(ptr));
    return std::string_view(ptr, len);
  }
  const void* data() const { return data_; }
  const uint64_t* validity() const { return validity_; }  // nullptr: no NULLs
  // DECIMAL unscaled value, widened.
  __int128 GetDecimal(size_t row) const;
  // TIME WITH TIME ZONE: micros of the day and the offset in seconds east of UTC.
  void GetTimeTz(size_t row, int64_t* micros, int32_t* offset_seconds) const;
  // ENUM: the label.
  std::string_view GetEnum(size_t row) const;
  // LIST/MAP/ARRAY: the element range [offset, offset+length) in child(0).
  void GetList(size_t row, uint64_t* offset, uint64_t* length) const;
  const VectorView& child(size_t i) const { return children_[i]; }

 private:
  friend class Chunk;
  void Init(void* vector, const TypeInfo* type);
  const TypeInfo* type_ = nullptr;
  void* vector_ = nullptr;  // duckdb_vector
  const void* data_ = nullptr;
  uint64_t* validity_ = nullptr;
  std::vector<VectorView> children_;
};

struct DatabaseOptions {
  int threads = 0;               // 0 = DuckDB's default (all cores)
  std::string memory_limit;      // e.g. "4GB"; empty = DuckDB's default
  bool read_only = false;
  std::string temp_directory;    // spill directory; empty = DuckDB's default
};

// What a statement is, for protocol command tags (values match duckdb_statement_type).
enum class StatementKind : int {
  kOther = 0, kSelect = 1, kInsert = 2, kUpdate = 3, kExplain = 4, kDelete = 5, kPrepare = 6,
  kCreate = 7, kExecute = 8, kAlter = 9, kTransaction = 10, kCopy = 11, kAnalyze = 12,
  kVariableSet = 13, kCreateFunc = 14, kDrop = 15, kExport = 16, kPragma = 17, kVacuum = 18,
  kCall = 19, kSet = 20, kLoad = 21, kRelation = 22, kExtension = 23, kLogicalPlan = 24,
  kAttach = 25, kDetach = 26, kMulti = 27,
};

class Connection;

class Database {
 public:
  // Opens (creating) a database file, or an in-memory one for path "" or ":memory:".
  // Extension auto-install and auto-load from the network are switched off.
  static Result<std::unique_ptr<Database>> Open(const std::string& path,
                                                const DatabaseOptions& options = {});
  ~Database();
  Result<std::unique_ptr<Connection>> Connect();

 private:
  Database() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend class Connection;
};

// A chunk of result rows (up to 2048) with typed, column-wise access. Valid until the next
// fetch from its result.
class Chunk {
 public:
  ~Chunk();
  Chunk(Chunk&&) noexcept;
  Chunk& operator=(Chunk&&) noexcept;

  size_t size() const;
  bool IsNull(size_t col, size_t row) const;
  bool GetBool(size_t col, size_t row) const;
  // Integer and date/time types widen to int64 (dates: days since epoch; timestamps: µs).
  int64_t GetInt64(size_t col, size_t row) const;
  double GetDouble(size_t col, size_t row) const;
  // VARCHAR and BLOB bytes (a view into the chunk).
  std::string_view GetString(size_t col, size_t row) const;
  // Typed view of a column (built on first use).
  const VectorView& column(size_t col) const;

 private:
  friend class QueryResult;
  Chunk(void* chunk, const std::vector<ColumnType>* types, const std::vector<TypeInfo>* info);
  void* chunk_ = nullptr;  // duckdb_data_chunk
  const std::vector<ColumnType>* types_;
  const std::vector<TypeInfo>* info_ = nullptr;
  mutable std::vector<std::unique_ptr<VectorView>> views_;
  std::vector<void*> data_;          // per column
  std::vector<uint64_t*> validity_;  // per column
};

// A query result, streamed chunk by chunk (never materialised unless asked).
class QueryResult {
 public:
  ~QueryResult();
  QueryResult(QueryResult&&) noexcept;
  QueryResult& operator=(QueryResult&&) noexcept;

  size_t column_count() const { return names_.size(); }
  const std::string& column_name(size_t i) const { return names_[i]; }
  ColumnType column_type(size_t i) const { return types_[i]; }
  const std::vector<ColumnType>& column_types() const { return types_; }
  const TypeInfo& column_info(size_t i) const { return info_[i]; }
  StatementKind statement_kind() const { return kind_; }
  // Rows changed by INSERT/UPDATE/DELETE.
  int64_t rows_changed() const { return rows_changed_; }
  // True when the statement returns rows (SELECT, SHOW …) rather than a count.
  bool returns_rows() const { return returns_rows_; }

  // Next chunk, or nullopt at the end. An error mid-stream (interrupt, I/O) is returned.
  Result<std::optional<Chunk>> Next();

  // Reads everything into text cells ("NULL" values are nullopt). For tests and small results.
  Result<std::vector<std::vector<std::optional<std::string>>>> ToRows();

 private:
  friend class Connection;
  friend class PreparedStatement;
  QueryResult();

 public:
  struct Impl;  // opaque; defined in engine.cc

 private:
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> names_;
  std::vector<ColumnType> types_;
  std::vector<TypeInfo> info_;
  StatementKind kind_ = StatementKind::kOther;
  int64_t rows_changed_ = 0;
  bool returns_rows_ = true;
};

class PreparedStatement {
 public:
  ~PreparedStatement();
  size_t parameter_count() const;
  // Parameters are 1-based, like SQL's $1.
  Status BindNull(size_t i);
  Status Bind(size_t i, bool v);
  Status Bind(size_t i, int64_t v);
  Status Bind(size_t i, double v);
  Status Bind(size_t i, std::string_view v);
  Status BindBlob(size_t i, std::string_view v);
  Status BindDate(size_t i, int32_t days_since_epoch);
  Status BindTime(size_t i, int64_t micros_of_day);
  Status BindTimestamp(size_t i, int64_t micros_since_epoch);
  Status BindTimestampTz(size_t i, int64_t micros_since_epoch);
  Status BindInterval(size_t i, const Interval& v);
  Status BindUuid(size_t i, uint64_t upper, uint64_t lower);  // big-endian halves of the UUID
  Status ClearBindings();
  // The type DuckDB inferred for parameter i (1-based); kInvalid when it could not.
  ColumnType param_type(size_t i) const;
  StatementKind statement_kind() const;
  // Result columns known before execution (may be empty for statements without rows).
  std::vector<std::string> ColumnNames() const;
  std::vector<TypeInfo> ColumnInfo() const;
  // Runs with the current bindings; the result streams.
  Result<QueryResult> Execute();

 private:
  friend class Connection;
  PreparedStatement() = default;
  void* stmt_ = nullptr;  // duckdb_prepared_statement
  mutable std::vector<ColumnType> param_types_;  // [0] unused; filled on first param_type()
};

// Appends rows to a table quickly (bulk loads). Call the Append* for each column in order,
// then EndRow(); Close() (or the destructor) flushes.
class Appender {
 public:
  ~Appender();
  Status AppendNull();
  Status Append(bool v);
  Status Append(int64_t v);
  Status Append(double v);
  Status Append(std::string_view v);
  Status AppendTimestampMicros(int64_t micros);
  Status EndRow();
  Status Flush();
  Status Close();

 private:
  friend class Connection;
  Appender() = default;
  Status Check(int state, const char* what);
  void* appender_ = nullptr;  // duckdb_appender
};

// Rows a caller produces, read by a query through a table function (Connection::
// RegisterRowSource) straight into DuckDB's vectors: no table in between (the streams' JSON →
// Parquet conversion, `COPY (SELECT … FROM fn()) TO … (FORMAT parquet)`).
struct RowSourceColumn {
  std::string name;
  // kBoolean, kTinyInt, kSmallInt, kInteger, kBigInt, kDouble, kDate, kTimestamp or kVarchar.
  ColumnType type = ColumnType::kVarchar;
};

// One output chunk while a RowSource fills it. Valid during one RowSource::Fill call.
class ChunkWriter {
 public:
  // Raw values; T is the column's physical type: bool, int8_t, int16_t, int32_t, int64_t,
  // double, int32_t days for DATE, int64_t microseconds for TIMESTAMP.
  template <typename T>
  void Set(size_t col, size_t row, T v) { static_cast<T*>(data_[col])[row] = v; }
  // VARCHAR: the bytes are copied into the chunk.
  void SetString(size_t col, size_t row, std::string_view v);
  void SetNull(size_t col, size_t row);

 private:
  friend struct RowSourceCallbacks;
  std::vector<void*> vectors_;        // duckdb_vector per column
  std::vector<void*> data_;           // per column
  std::vector<uint64_t*> validity_;   // per column, made writable on the first NULL
};

// Thread-safety: called on the thread running the query (the connection's), one chunk at a time.
class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual const std::vector<RowSourceColumn>& columns() const = 0;
  // Writes up to `capacity` rows (rows 0..n-1 of `out`) and returns n; 0 ends the scan. An error
  // fails the query (and is what the query returns).
  virtual Result<size_t> Fill(ChunkWriter& out, size_t capacity) = 0;
};

// The source a registered row-source function reads (set it before the query, clear it after).
// Owned by the database the function was registered in.
struct RowSourceSlot {
  RowSource* source = nullptr;
  Status error;  // the error a Fill returned during the last query
};

class Connection {
 public:
  ~Connection();

  // Runs one or more statements separated by ';'. Returns the last statement's result.
  Result<QueryResult> Query(std::string_view sql);
  // Runs one or more statements, discarding results.
  Status Execute(std::string_view sql);
  // Prepares exactly one statement.
  Result<std::unique_ptr<PreparedStatement>> Prepare(std::string_view sql);

  Result<std::unique_ptr<Appender>> CreateAppender(const std::string& schema, const std::string& table);
  // Registers table function `name`() on this connection: it has the columns of, and yields the
  // rows of, the RowSource in the returned slot when a query binds it (one thread, in order).
  Result<RowSourceSlot*> RegisterRowSource(const std::string& name);
  // Cancels the running query (thread-safe); it then fails with kCancelled.
  void Interrupt();

 private:
  friend class Database;
  Connection() = default;
  void* conn_ = nullptr;  // duckdb_connection
};

// Quotes an identifier for SQL ("a""b").
std::string QuoteIdentifier(std::string_view name);
// Quotes a string literal for SQL ('it''s').
std::string QuoteLiteral(std::string_view value);

}  // namespace tarn::sql
