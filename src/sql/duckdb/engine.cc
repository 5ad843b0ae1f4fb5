#include "sql/duckdb/engine.h"

#include <duckdb.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/strings.h"

namespace tarn::sql {

namespace {

// DuckDB prefixes messages with the error class ("Parser Error: …"); the C API gives the type
// for results but not for every failure path, so both routes end here.
ErrorCode CodeForMessage(std::string_view msg) {
  if (StartsWith(msg, "Parser Error") || StartsWith(msg, "Syntax Error")) return ErrorCode::kSqlSyntaxError;
  if (StartsWith(msg, "Catalog Error")) {
    if (msg.find("does not exist") != std::string_view::npos) return ErrorCode::kSqlUndefinedTable;
    return ErrorCode::kSqlError;
  }
  if (StartsWith(msg, "INTERRUPT") || StartsWith(msg, "Interrupt")) return ErrorCode::kCancelled;
  if (StartsWith(msg, "Out of Memory")) return ErrorCode::kSqlOutOfMemory;
  if (StartsWith(msg, "Constraint Error")) return ErrorCode::kSqlConstraint;
  if (StartsWith(msg, "Conversion Error") || StartsWith(msg, "Invalid Input Error")) return ErrorCode::kSqlConversion;
  if (StartsWith(msg, "IO Error")) return ErrorCode::kIoError;
  return ErrorCode::kSqlError;
}

ErrorCode CodeForType(duckdb_error_type t, std::string_view msg) {
  switch (t) {
    case DUCKDB_ERROR_PARSER:
    case DUCKDB_ERROR_SYNTAX: return ErrorCode::kSqlSyntaxError;
    case DUCKDB_ERROR_INTERRUPT: return ErrorCode::kCancelled;
    case DUCKDB_ERROR_OUT_OF_MEMORY: return ErrorCode::kSqlOutOfMemory;
    case DUCKDB_ERROR_CONSTRAINT: return ErrorCode::kSqlConstraint;
    case DUCKDB_ERROR_CONVERSION: return ErrorCode::kSqlConversion;
    case DUCKDB_ERROR_CATALOG:
      return msg.find("does not exist") != std::string_view::npos ? ErrorCode::kSqlUndefinedTable
                                                                  : ErrorCode::kSqlError;
    default: return CodeForMessage(msg);
  }
}

Status ResultError(duckdb_result* r) {
  const char* msg = duckdb_result_error(r);
  std::string m = msg ? msg : "unknown DuckDB error";
  return Error(CodeForType(duckdb_result_error_type(r), m), m);
}

Status MessageError(const char* msg, const char* fallback) {
  std::string m = msg ? msg : fallback;
  return Error(CodeForMessage(m), m);
}

std::string FormatDate(int32_t days) {
  std::time_t t = static_cast<std::time_t>(days) * 86400;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

std::string FormatTimestamp(int64_t micros) {
  int64_t secs = micros >= 0 ? micros / 1000000 : (micros - 999999) / 1000000;
  int64_t frac = micros - secs * 1000000;
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  int n = std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (frac) {
    std::snprintf(buf + n, sizeof(buf) - static_cast<size_t>(n), ".%06lld", static_cast<long long>(frac));
    size_t len = std::strlen(buf);
    while (buf[len - 1] == '0') buf[--len] = '\0';
  }
  return buf;
}

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  // Prefer the shortest representation that round-trips.
  for (int prec = 1; prec <= 17; ++prec) {
    char b2[64];
    std::snprintf(b2, sizeof(b2), "%.*g", prec, v);
    if (std::strtod(b2, nullptr) == v) return b2;
  }
  return buf;
}

TypeInfo MakeTypeInfo(duckdb_logical_type lt) {
  TypeInfo t;
  t.type = static_cast<ColumnType>(duckdb_get_type_id(lt));
  if (char* alias = duckdb_logical_type_get_alias(lt)) {
    t.alias = alias;
    duckdb_free(alias);
  }
  auto child = [&](duckdb_logical_type c) {
    t.children.push_back(MakeTypeInfo(c));
    duckdb_destroy_logical_type(&c);
  };
  switch (t.type) {
    case ColumnType::kDecimal:
      t.width = duckdb_decimal_width(lt);
      t.scale = duckdb_decimal_scale(lt);
      t.storage = static_cast<ColumnType>(duckdb_decimal_internal_type(lt));
      break;
    case ColumnType::kEnum: {
      t.storage = static_cast<ColumnType>(duckdb_enum_internal_type(lt));
      uint32_t n = duckdb_enum_dictionary_size(lt);
      for (uint32_t i = 0; i < n; ++i) {
        char* v = duckdb_enum_dictionary_value(lt, i);
        t.enum_values.emplace_back(v ? v : "");
        if (v) duckdb_free(v);
      }
      break;
    }
    case ColumnType::kList: child(duckdb_list_type_child_type(lt)); break;
    case ColumnType::kArray:
      child(duckdb_array_type_child_type(lt));
      t.array_size = duckdb_array_type_array_size(lt);
      break;
    case ColumnType::kMap: {
      // Physically LIST<STRUCT<key, value>>; describe it that way.
      TypeInfo entry;
      entry.type = ColumnType::kStruct;
      duckdb_logical_type k = duckdb_map_type_key_type(lt);
      duckdb_logical_type v = duckdb_map_type_value_type(lt);
      entry.children.push_back(MakeTypeInfo(k));
      entry.children.push_back(MakeTypeInfo(v));
      entry.child_names = {"key", "value"};
      duckdb_destroy_logical_type(&k);
      duckdb_destroy_logical_type(&v);
      t.children.push_back(std::move(entry));
      break;
    }
    case ColumnType::kStruct: {
      idx_t n = duckdb_struct_type_child_count(lt);
      for (idx_t i = 0; i < n; ++i) {
        char* name = duckdb_struct_type_child_name(lt, i);
        t.child_names.emplace_back(name ? name : "");
        if (name) duckdb_free(name);
        child(duckdb_struct_type_child_type(lt, i));
      }
      break;
    }
    default: break;
  }
  return t;
}

}  // namespace

const char* ColumnTypeName(ColumnType t) {
  switch (t) {
    case ColumnType::kBoolean: return "BOOLEAN";
    case ColumnType::kTinyInt: return "TINYINT";
    case ColumnType::kSmallInt: return "SMALLINT";
    case ColumnType::kInteger: return "INTEGER";
    case ColumnType::kBigInt: return "BIGINT";
    case ColumnType::kUTinyInt: return "UTINYINT";
    case ColumnType::kUSmallInt: return "USMALLINT";
    case ColumnType::kUInteger: return "UINTEGER";
    case ColumnType::kUBigInt: return "UBIGINT";
    case ColumnType::kFloat: return "FLOAT";
    case ColumnType::kDouble: return "DOUBLE";
    case ColumnType::kTimestamp: return "TIMESTAMP";
    case ColumnType::kDate: return "DATE";
    case ColumnType::kTime: return "TIME";
    case ColumnType::kInterval: return "INTERVAL";
    case ColumnType::kHugeInt: return "HUGEINT";
    case ColumnType::kVarchar: return "VARCHAR";
    case ColumnType::kBlob: return "BLOB";
    case ColumnType::kDecimal: return "DECIMAL";
    case ColumnType::kTimestampTz: return "TIMESTAMP WITH TIME ZONE";
    case ColumnType::kUuid: return "UUID";
    case ColumnType::kList: return "LIST";
    case ColumnType::kStruct: return "STRUCT";
    case ColumnType::kMap: return "MAP";
    default: return "OTHER";
  }
}

// ---- Database ----

struct Database::Impl {
  duckdb_database db = nullptr;
  ~Impl() {
    if (db) duckdb_close(&db);
  }
};

Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, const DatabaseOptions& options) {
  duckdb_config config = nullptr;
  if (duckdb_create_config(&config) != DuckDBSuccess) {
    return Error(ErrorCode::kSqlOutOfMemory, "cannot allocate a DuckDB config");
  }
  // Tarn never downloads code at run time: only the built-in extensions exist.
  std::vector<std::pair<std::string, std::string>> settings = {
      {"autoinstall_known_extensions", "false"},
      {"autoload_known_extensions", "false"},
      {"allow_community_extensions", "false"},
  };
  if (options.threads > 0) settings.emplace_back("threads", std::to_string(options.threads));
  if (!options.memory_limit.empty()) settings.emplace_back("memory_limit", options.memory_limit);
  if (options.read_only) settings.emplace_back("access_mode", "READ_ONLY");
  if (!options.temp_directory.empty()) settings.emplace_back("temp_directory", options.temp_directory);
  for (const auto& [k, v] : settings) {
    if (duckdb_set_config(config, k.c_str(), v.c_str()) != DuckDBSuccess) {
      duckdb_destroy_config(&config);
      return Error(ErrorCode::kInvalidArgument, "DuckDB rejected setting " + k + "=" + v);
    }
  }
  std::unique_ptr<Database> out(new Database());
  out->impl_ = std::make_unique<Impl>();
  char* err = nullptr;
  const char* p = (path.empty() || path == ":memory:") ? nullptr : path.c_str();
  duckdb_state st = duckdb_open_ext(p, &out->impl_->db, config, &err);
  duckdb_destroy_config(&config);
  if (st != DuckDBSuccess) {
    Status s = MessageError(err, "cannot open DuckDB database");
    if (err) duckdb_free(err);
    out->impl_->db = nullptr;
    return Status(s.code() == ErrorCode::kSqlError ? ErrorCode::kIoError : s.code(),
                  "opening " + (p ? path : std::string(":memory:")) + ": " + s.message());
  }
  return out;
}

Result<std::unique_ptr<Connection>> Database::Connect() {
  std::unique_ptr<Connection> c(new Connection());
  duckdb_connection conn = nullptr;
  if (duckdb_connect(impl_->db, &conn) != DuckDBSuccess) {
    return Error(ErrorCode::kSqlError, "cannot connect to DuckDB database");
  }
  c->conn_ = conn;
  return c;
}

// ---- Chunk ----

void VectorView::Init(void* vector, const TypeInfo* type) {
  auto v = static_cast<duckdb_vector>(vector);
  vector_ = vector;
  type_ = type;
  data_ = duckdb_vector_get_data(v);
  validity_ = duckdb_vector_get_validity(v);
  children_.clear();
  switch (type->type) {
    case ColumnType::kList:
    case ColumnType::kMap:
      children_.resize(1);
      children_[0].Init(duckdb_list_vector_get_child(v), &type->children[0]);
      break;
    case ColumnType::kArray:
      children_.resize(1);
      children_[0].Init(duckdb_array_vector_get_child(v), &type->children[0]);
      break;
    case ColumnType::kStruct:
      children_.resize(type->children.size());
      for (size_t i = 0; i < children_.size(); ++i) {
        children_[i].Init(duckdb_struct_vector_get_child(v, i), &type->children[i]);
      }
      break;
    default: break;
  }
}

static_assert(sizeof(duckdb_string_t) == 16, "VectorView::GetString assumes DuckDB's 16-byte strings");

__int128 VectorView::GetDecimal(size_t row) const {
  switch (type_->storage) {
    case ColumnType::kSmallInt: return Get<int16_t>(row);
    case ColumnType::kInteger: return Get<int32_t>(row);
    case ColumnType::kBigInt: return Get<int64_t>(row);
    default: {
      Int128 h = Get<Int128>(row);
      return static_cast<__int128>(static_cast<unsigned __int128>(h.upper) << 64 | h.lower);
    }
  }
}

void VectorView::GetTimeTz(size_t row, int64_t* micros, int32_t* offset_seconds) const {
  duckdb_time_tz v{Get<uint64_t>(row)};
  duckdb_time_tz_struct s = duckdb_from_time_tz(v);
  *micros = ((static_cast<int64_t>(s.time.hour) * 60 + s.time.min) * 60 + s.time.sec) * 1000000 +
            s.time.micros;
  *offset_seconds = s.offset;
}

std::string_view VectorView::GetEnum(size_t row) const {
  uint64_t idx = 0;
  switch (type_->storage) {
    case ColumnType::kUTinyInt: idx = Get<uint8_t>(row); break;
    case ColumnType::kUSmallInt: idx = Get<uint16_t>(row); break;
    default: idx = Get<uint32_t>(row); break;
  }
  return idx < type_->enum_values.size() ? std::string_view(type_->enum_values[idx]) : "";
}

void VectorView::GetList(size_t row, uint64_t* offset, uint64_t* length) const {
  if (type_->type == ColumnType::kArray) {
    *offset = row * type_->array_size;
    *length = type_->array_size;
    return;
  }
  const auto& e = static_cast<const duckdb_list_entry*>(data_)[row];
  *offset = e.offset;
  *length = e.length;
}

const VectorView& Chunk::column(size_t col) const {
  if (views_.empty()) views_.resize(types_->size());
  if (!views_[col]) {
    views_[col] = std::make_unique<VectorView>();
    views_[col]->Init(duckdb_data_chunk_get_vector(static_cast<duckdb_data_chunk>(chunk_), col),
                      &(*info_)[col]);
  }
  return *views_[col];
}

Chunk::Chunk(void* chunk, const std::vector<ColumnType>* types, const std::vector<TypeInfo>* info)
    : chunk_(chunk), types_(types), info_(info) {
  auto c = static_cast<duckdb_data_chunk>(chunk_);
  size_t n = types_->size();
  data_.resize(n);
  validity_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    duckdb_vector v = duckdb_data_chunk_get_vector(c, i);
    data_[i] = duckdb_vector_get_data(v);
    validity_[i] = duckdb_vector_get_validity(v);
  }
}

Chunk::~Chunk() {
  if (chunk_) {
    auto c = static_cast<duckdb_data_chunk>(chunk_);
    duckdb_destroy_data_chunk(&c);
  }
}

Chunk::Chunk(Chunk&& o) noexcept
    : chunk_(o.chunk_), types_(o.types_), info_(o.info_), views_(std::move(o.views_)),
      data_(std::move(o.data_)), validity_(std::move(o.validity_)) {
  o.chunk_ = nullptr;
}

Chunk& Chunk::operator=(Chunk&& o) noexcept {
  if (this != &o) {
    if (chunk_) {
      auto c = static_cast<duckdb_data_chunk>(chunk_);
      duckdb_destroy_data_chunk(&c);
    }
    chunk_ = o.chunk_;
    types_ = o.types_;
    info_ = o.info_;
    views_ = std::move(o.views_);
    data_ = std::move(o.data_);
    validity_ = std::move(o.validity_);
    o.chunk_ = nullptr;
  }
  return *this;
}

size_t Chunk::size() const { return duckdb_data_chunk_get_size(static_cast<duckdb_data_chunk>(chunk_)); }

bool Chunk::IsNull(size_t col, size_t row) const {
  return validity_[col] != nullptr && !duckdb_validity_row_is_valid(validity_[col], row);
}

bool Chunk::GetBool(size_t col, size_t row) const { return static_cast<const bool*>(data_[col])[row]; }

int64_t Chunk::GetInt64(size_t col, size_t row) const {
  const void* d = data_[col];
  switch ((*types_)[col]) {
    case ColumnType::kBoolean: return static_cast<const bool*>(d)[row];
    case ColumnType::kTinyInt: return static_cast<const int8_t*>(d)[row];
    case ColumnType::kSmallInt: return static_cast<const int16_t*>(d)[row];
    case ColumnType::kInteger:
    case ColumnType::kDate: return static_cast<const int32_t*>(d)[row];
    case ColumnType::kUTinyInt: return static_cast<const uint8_t*>(d)[row];
    case ColumnType::kUSmallInt: return static_cast<const uint16_t*>(d)[row];
    case ColumnType::kUInteger: return static_cast<const uint32_t*>(d)[row];
    case ColumnType::kUBigInt: return static_cast<int64_t>(static_cast<const uint64_t*>(d)[row]);
    case ColumnType::kHugeInt: return static_cast<int64_t>(static_cast<const duckdb_hugeint*>(d)[row].lower);
    case ColumnType::kFloat: return static_cast<int64_t>(static_cast<const float*>(d)[row]);
    case ColumnType::kDouble: return static_cast<int64_t>(static_cast<const double*>(d)[row]);
    default: return static_cast<const int64_t*>(d)[row];  // BIGINT, TIME, TIMESTAMP*
  }
}

double Chunk::GetDouble(size_t col, size_t row) const {
  const void* d = data_[col];
  switch ((*types_)[col]) {
    case ColumnType::kFloat: return static_cast<const float*>(d)[row];
    case ColumnType::kDouble: return static_cast<const double*>(d)[row];
    default: return static_cast<double>(GetInt64(col, row));
  }
}

std::string_view Chunk::GetString(size_t col, size_t row) const {
  const auto* s = &static_cast<const duckdb_string_t*>(data_[col])[row];
  uint32_t len = s->value.inlined.length;
  if (len <= 12) return std::string_view(s->value.inlined.inlined, len);
  return std::string_view(s->value.pointer.ptr, len);
}

// ---- QueryResult ----

struct QueryResult::Impl {
  duckdb_result result{};
  bool valid = false;
  ~Impl() {
    if (valid) duckdb_destroy_result(&result);
  }
};

QueryResult::QueryResult() : impl_(std::make_unique<Impl>()) {}
QueryResult::~QueryResult() = default;
QueryResult::QueryResult(QueryResult&&) noexcept = default;
QueryResult& QueryResult::operator=(QueryResult&&) noexcept = default;

Result<std::optional<Chunk>> QueryResult::Next() {
  if (!impl_->valid) return std::optional<Chunk>();
  duckdb_data_chunk c = duckdb_fetch_chunk(impl_->result);
  if (!c) {
    const char* err = duckdb_result_error(&impl_->result);
    if (err && *err) return ResultError(&impl_->result);
    return std::optional<Chunk>();
  }
  if (duckdb_data_chunk_get_size(c) == 0) {
    duckdb_destroy_data_chunk(&c);
    return std::optional<Chunk>();
  }
  return std::optional<Chunk>(Chunk(c, &types_, &info_));
}

Result<std::vector<std::vector<std::optional<std::string>>>> QueryResult::ToRows() {
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<Chunk> chunk, Next());
    if (!chunk) return rows;
    for (size_t r = 0; r < chunk->size(); ++r) {
      std::vector<std::optional<std::string>> row(types_.size());
      for (size_t c = 0; c < types_.size(); ++c) {
        if (chunk->IsNull(c, r)) continue;
        switch (types_[c]) {
          case ColumnType::kBoolean: row[c] = chunk->GetBool(c, r) ? "true" : "false"; break;
          case ColumnType::kVarchar:
          case ColumnType::kBlob: row[c] = std::string(chunk->GetString(c, r)); break;
          case ColumnType::kFloat:
          case ColumnType::kDouble: row[c] = FormatDouble(chunk->GetDouble(c, r)); break;
          case ColumnType::kDate: row[c] = FormatDate(static_cast<int32_t>(chunk->GetInt64(c, r))); break;
          case ColumnType::kTimestamp:
          case ColumnType::kTimestampTz: row[c] = FormatTimestamp(chunk->GetInt64(c, r)); break;
          case ColumnType::kTinyInt: case ColumnType::kSmallInt: case ColumnType::kInteger:
          case ColumnType::kBigInt: case ColumnType::kUTinyInt: case ColumnType::kUSmallInt:
          case ColumnType::kUInteger: case ColumnType::kUBigInt: case ColumnType::kHugeInt:
            row[c] = std::to_string(chunk->GetInt64(c, r));
            break;
          default:
            return Error(ErrorCode::kNotImplemented,
                         std::string("text conversion of ") + ColumnTypeName(types_[c]) +
                             " columns is not implemented in QueryResult::ToRows; cast in SQL");
        }
      }
      rows.push_back(std::move(row));
    }
  }
}

// ---- PreparedStatement ----

PreparedStatement::~PreparedStatement() {
  if (stmt_) {
    auto s = static_cast<duckdb_prepared_statement>(stmt_);
    duckdb_destroy_prepare(&s);
  }
}

size_t PreparedStatement::parameter_count() const {
  return duckdb_nparams(static_cast<duckdb_prepared_statement>(stmt_));
}

#define TARN_BIND_CHECK(call)                                                        \
  do {                                                                               \
    if ((call) != DuckDBSuccess)                                                     \
      return Error(ErrorCode::kInvalidArgument,                                      \
                   "cannot bind parameter $" + std::to_string(i) + " of " +          \
                       std::to_string(parameter_count()));                           \
    return Status::OK();                                                             \
  } while (0)

Status PreparedStatement::BindNull(size_t i) {
  TARN_BIND_CHECK(duckdb_bind_null(static_cast<duckdb_prepared_statement>(stmt_), i));
}
// DuckDB re-plans a prepared statement whenever a bound value's type differs from the type it
// inferred for the parameter, and after one such rebind it re-plans on every execution
// (PreparedStatementData::RequireRebind: bound_all_parameters becomes false). A re-plan costs
// as much as Prepare (100-400 µs), so values are bound in the inferred type whenever they fit.
Status PreparedStatement::Bind(size_t i, bool v) {
  TARN_BIND_CHECK(duckdb_bind_boolean(static_cast<duckdb_prepared_statement>(stmt_), i, v));
}
Status PreparedStatement::Bind(size_t i, int64_t v) {
  auto s = static_cast<duckdb_prepared_statement>(stmt_);
  duckdb_state st;
  switch (param_type(i)) {
    case ColumnType::kTinyInt:
      st = v >= INT8_MIN && v <= INT8_MAX ? duckdb_bind_int8(s, i, static_cast<int8_t>(v)) : duckdb_bind_int64(s, i, v);
      break;
    case ColumnType::kSmallInt:
      st = v >= INT16_MIN && v <= INT16_MAX ? duckdb_bind_int16(s, i, static_cast<int16_t>(v))
                                            : duckdb_bind_int64(s, i, v);
      break;
    case ColumnType::kInteger:
      st = v >= INT32_MIN && v <= INT32_MAX ? duckdb_bind_int32(s, i, static_cast<int32_t>(v))
                                            : duckdb_bind_int64(s, i, v);
      break;
    case ColumnType::kUTinyInt:
      st = v >= 0 && v <= UINT8_MAX ? duckdb_bind_uint8(s, i, static_cast<uint8_t>(v)) : duckdb_bind_int64(s, i, v);
      break;
    case ColumnType::kUSmallInt:
      st = v >= 0 && v <= UINT16_MAX ? duckdb_bind_uint16(s, i, static_cast<uint16_t>(v))
                                     : duckdb_bind_int64(s, i, v);
      break;
    case ColumnType::kUInteger:
      st = v >= 0 && v <= UINT32_MAX ? duckdb_bind_uint32(s, i, static_cast<uint32_t>(v))
                                     : duckdb_bind_int64(s, i, v);
      break;
    case ColumnType::kUBigInt:
      st = v >= 0 ? duckdb_bind_uint64(s, i, static_cast<uint64_t>(v)) : duckdb_bind_int64(s, i, v);
      break;
    case ColumnType::kHugeInt:
      st = duckdb_bind_hugeint(s, i, duckdb_hugeint{static_cast<uint64_t>(v), v < 0 ? -1 : 0});
      break;
    case ColumnType::kDouble: st = duckdb_bind_double(s, i, static_cast<double>(v)); break;
    default: st = duckdb_bind_int64(s, i, v); break;
  }
  TARN_BIND_CHECK(st);
}
Status PreparedStatement::Bind(size_t i, double v) {
  auto s = static_cast<duckdb_prepared_statement>(stmt_);
  if (param_type(i) == ColumnType::kFloat) TARN_BIND_CHECK(duckdb_bind_float(s, i, static_cast<float>(v)));
  TARN_BIND_CHECK(duckdb_bind_double(s, i, v));
}
Status PreparedStatement::Bind(size_t i, std::string_view v) {
  // Text for a numeric or boolean parameter is converted here when it parses cleanly (see
  // above); anything else goes in as VARCHAR and DuckDB casts it (and reports bad input).
  ColumnType t = param_type(i);
  switch (t) {
    case ColumnType::kTinyInt: case ColumnType::kSmallInt: case ColumnType::kInteger:
    case ColumnType::kBigInt: case ColumnType::kUTinyInt: case ColumnType::kUSmallInt:
    case ColumnType::kUInteger: case ColumnType::kUBigInt: case ColumnType::kHugeInt:
      if (auto n = ParseInt64(Trim(v))) return Bind(i, *n);
      break;
    case ColumnType::kFloat: case ColumnType::kDouble: {
      std::string text(Trim(v));
      char* end = nullptr;
      double d = std::strtod(text.c_str(), &end);
      if (!text.empty() && end && *end == '\0' && std::isfinite(d)) return Bind(i, d);
      break;
    }
    case ColumnType::kBoolean: {
      std::string b = ToLower(Trim(v));
      if (b == "t" || b == "true") return Bind(i, true);
      if (b == "f" || b == "false") return Bind(i, false);
      break;
    }
    default: break;
  }
  TARN_BIND_CHECK(duckdb_bind_varchar_length(static_cast<duckdb_prepared_statement>(stmt_), i, v.data(), v.size()));
}
Status PreparedStatement::BindBlob(size_t i, std::string_view v) {
  TARN_BIND_CHECK(duckdb_bind_blob(static_cast<duckdb_prepared_statement>(stmt_), i, v.data(), v.size()));
}

Status PreparedStatement::BindDate(size_t i, int32_t days) {
  TARN_BIND_CHECK(duckdb_bind_date(static_cast<duckdb_prepared_statement>(stmt_), i, duckdb_date{days}));
}
Status PreparedStatement::BindTime(size_t i, int64_t micros) {
  TARN_BIND_CHECK(duckdb_bind_time(static_cast<duckdb_prepared_statement>(stmt_), i, duckdb_time{micros}));
}
Status PreparedStatement::BindTimestamp(size_t i, int64_t micros) {
  TARN_BIND_CHECK(duckdb_bind_timestamp(static_cast<duckdb_prepared_statement>(stmt_), i, duckdb_timestamp{micros}));
}
Status PreparedStatement::BindTimestampTz(size_t i, int64_t micros) {
  TARN_BIND_CHECK(
      duckdb_bind_timestamp_tz(static_cast<duckdb_prepared_statement>(stmt_), i, duckdb_timestamp{micros}));
}
Status PreparedStatement::BindInterval(size_t i, const Interval& v) {
  TARN_BIND_CHECK(duckdb_bind_interval(static_cast<duckdb_prepared_statement>(stmt_), i,
                                       duckdb_interval{v.months, v.days, v.micros}));
}
Status PreparedStatement::BindUuid(size_t i, uint64_t upper, uint64_t lower) {
  duckdb_value v = duckdb_create_uuid(duckdb_uhugeint{lower, upper});
  duckdb_state st = duckdb_bind_value(static_cast<duckdb_prepared_statement>(stmt_), i, v);
  duckdb_destroy_value(&v);
  TARN_BIND_CHECK(st);
}
#undef TARN_BIND_CHECK

ColumnType PreparedStatement::param_type(size_t i) const {
  // The types DuckDB inferred at Prepare (not those of the last rebind), fetched once.
  if (param_types_.empty()) {
    auto s = static_cast<duckdb_prepared_statement>(stmt_);
    size_t n = duckdb_nparams(s);
    param_types_.resize(n + 1, ColumnType::kInvalid);
    for (size_t k = 1; k <= n; ++k) param_types_[k] = static_cast<ColumnType>(duckdb_param_type(s, k));
  }
  return i < param_types_.size() ? param_types_[i] : ColumnType::kInvalid;
}

StatementKind PreparedStatement::statement_kind() const {
  return static_cast<StatementKind>(
      duckdb_prepared_statement_type(static_cast<duckdb_prepared_statement>(stmt_)));
}

std::vector<std::string> PreparedStatement::ColumnNames() const {
  auto s = static_cast<duckdb_prepared_statement>(stmt_);
  std::vector<std::string> out;
  idx_t n = duckdb_prepared_statement_column_count(s);
  for (idx_t i = 0; i < n; ++i) {
    const char* name = duckdb_prepared_statement_column_name(s, i);
    out.emplace_back(name ? name : "?column?");
  }
  return out;
}

std::vector<TypeInfo> PreparedStatement::ColumnInfo() const {
  auto s = static_cast<duckdb_prepared_statement>(stmt_);
  std::vector<TypeInfo> out;
  idx_t n = duckdb_prepared_statement_column_count(s);
  for (idx_t i = 0; i < n; ++i) {
    duckdb_logical_type lt = duckdb_prepared_statement_column_logical_type(s, i);
    out.push_back(MakeTypeInfo(lt));
    duckdb_destroy_logical_type(&lt);
  }
  return out;
}

Status PreparedStatement::ClearBindings() {
  if (duckdb_clear_bindings(static_cast<duckdb_prepared_statement>(stmt_)) != DuckDBSuccess) {
    return Error(ErrorCode::kSqlError, "cannot clear bindings");
  }
  return Status::OK();
}

namespace {
// Runs a prepared statement as a streaming result and fills `out`.
Status ExecuteStreaming(duckdb_prepared_statement stmt, QueryResult::Impl* impl) {
  duckdb_pending_result pending = nullptr;
  if (duckdb_pending_prepared_streaming(stmt, &pending) != DuckDBSuccess) {
    Status s = MessageError(duckdb_pending_error(pending), "cannot start query");
    duckdb_destroy_pending(&pending);
    return s;
  }
  duckdb_state st = duckdb_execute_pending(pending, &impl->result);
  impl->valid = true;
  duckdb_destroy_pending(&pending);
  if (st != DuckDBSuccess) return ResultError(&impl->result);
  return Status::OK();
}
}  // namespace

Result<QueryResult> PreparedStatement::Execute() {
  QueryResult out;
  RETURN_IF_ERROR(ExecuteStreaming(static_cast<duckdb_prepared_statement>(stmt_), out.impl_.get()));
  duckdb_result* r = &out.impl_->result;
  idx_t n = duckdb_column_count(r);
  for (idx_t i = 0; i < n; ++i) {
    out.names_.emplace_back(duckdb_column_name(r, i));
    out.types_.push_back(static_cast<ColumnType>(duckdb_column_type(r, i)));
    duckdb_logical_type lt = duckdb_column_logical_type(r, i);
    out.info_.push_back(MakeTypeInfo(lt));
    duckdb_destroy_logical_type(&lt);
  }
  out.kind_ = static_cast<StatementKind>(duckdb_result_statement_type(*r));
  duckdb_result_type rt = duckdb_result_return_type(*r);
  out.returns_rows_ = rt == DUCKDB_RESULT_TYPE_QUERY_RESULT;
  if (rt == DUCKDB_RESULT_TYPE_CHANGED_ROWS) {
    // The count arrives as the single BIGINT row of a streaming result.
    auto chunk = out.Next();
    if (!chunk.ok()) return chunk.status();
    if (*chunk && (*chunk)->size() > 0) out.rows_changed_ = (*chunk)->GetInt64(0, 0);
  }
  return out;
}

// ---- Appender ----

Appender::~Appender() {
  if (appender_) {
    auto a = static_cast<duckdb_appender>(appender_);
    duckdb_appender_destroy(&a);
  }
}

Status Appender::Check(int state, const char* what) {
  if (state == DuckDBSuccess) return Status::OK();
  const char* err = duckdb_appender_error(static_cast<duckdb_appender>(appender_));
  return MessageError(err, what);
}

Status Appender::AppendNull() { return Check(duckdb_append_null(static_cast<duckdb_appender>(appender_)), "append"); }
Status Appender::Append(bool v) { return Check(duckdb_append_bool(static_cast<duckdb_appender>(appender_), v), "append"); }
Status Appender::Append(int64_t v) { return Check(duckdb_append_int64(static_cast<duckdb_appender>(appender_), v), "append"); }
Status Appender::Append(double v) { return Check(duckdb_append_double(static_cast<duckdb_appender>(appender_), v), "append"); }
Status Appender::Append(std::string_view v) {
  return Check(duckdb_append_varchar_length(static_cast<duckdb_appender>(appender_), v.data(), v.size()), "append");
}
Status Appender::AppendTimestampMicros(int64_t micros) {
  duckdb_timestamp ts{micros};
  return Check(duckdb_append_timestamp(static_cast<duckdb_appender>(appender_), ts), "append");
}
Status Appender::EndRow() { return Check(duckdb_appender_end_row(static_cast<duckdb_appender>(appender_)), "end row"); }
Status Appender::Flush() { return Check(duckdb_appender_flush(static_cast<duckdb_appender>(appender_)), "flush"); }
Status Appender::Close() { return Check(duckdb_appender_close(static_cast<duckdb_appender>(appender_)), "close"); }

// ---- Connection ----

Connection::~Connection() {
  if (conn_) {
    auto c = static_cast<duckdb_connection>(conn_);
    duckdb_disconnect(&c);
  }
}

void Connection::Interrupt() { duckdb_interrupt(static_cast<duckdb_connection>(conn_)); }

Result<QueryResult> Connection::Query(std::string_view sql) {
  auto conn = static_cast<duckdb_connection>(conn_);
  std::string text(sql);
  duckdb_extracted_statements extracted = nullptr;
  idx_t count = duckdb_extract_statements(conn, text.c_str(), &extracted);
  if (count == 0) {
    const char* err = duckdb_extract_statements_error(extracted);
    Status s = err ? MessageError(err, "cannot parse") : Error(ErrorCode::kSqlSyntaxError, "empty query");
    duckdb_destroy_extracted(&extracted);
    return s;
  }
  std::optional<QueryResult> last;
  Status status;
  for (idx_t i = 0; i < count && status.ok(); ++i) {
    duckdb_prepared_statement stmt = nullptr;
    if (duckdb_prepare_extracted_statement(conn, extracted, i, &stmt) != DuckDBSuccess) {
      status = MessageError(duckdb_prepare_error(stmt), "cannot prepare statement");
      duckdb_destroy_prepare(&stmt);
      break;
    }
    PreparedStatement ps;
    ps.stmt_ = stmt;
    if (i + 1 < count) {
      auto r = ps.Execute();
      if (!r.ok()) {
        status = r.status();
        break;
      }
      // Drain so the connection is free for the next statement.
      for (;;) {
        auto c = r->Next();
        if (!c.ok()) {
          status = c.status();
          break;
        }
        if (!*c) break;
      }
    } else {
      auto r = ps.Execute();
      if (!r.ok()) {
        status = r.status();
      } else {
        last.emplace(std::move(*r));
      }
    }
  }
  duckdb_destroy_extracted(&extracted);
  if (!status.ok()) return status;
  return std::move(*last);
}

Status Connection::Execute(std::string_view sql) {
  ASSIGN_OR_RETURN(QueryResult r, Query(sql));
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<Chunk> c, r.Next());
    if (!c) return Status::OK();
  }
}

Result<std::unique_ptr<PreparedStatement>> Connection::Prepare(std::string_view sql) {
  std::string text(sql);
  duckdb_prepared_statement stmt = nullptr;
  if (duckdb_prepare(static_cast<duckdb_connection>(conn_), text.c_str(), &stmt) != DuckDBSuccess) {
    Status s = MessageError(duckdb_prepare_error(stmt), "cannot prepare statement");
    duckdb_destroy_prepare(&stmt);
    return s;
  }
  std::unique_ptr<PreparedStatement> ps(new PreparedStatement());
  ps->stmt_ = stmt;
  return ps;
}

Result<std::unique_ptr<Appender>> Connection::CreateAppender(const std::string& schema,
                                                             const std::string& table) {
  duckdb_appender a = nullptr;
  if (duckdb_appender_create(static_cast<duckdb_connection>(conn_), schema.empty() ? nullptr : schema.c_str(),
                             table.c_str(), &a) != DuckDBSuccess) {
    Status s = MessageError(duckdb_appender_error(a), "cannot create appender");
    duckdb_appender_destroy(&a);
    return s;
  }
  std::unique_ptr<Appender> out(new Appender());
  out->appender_ = a;
  return out;
}

// ---- Row sources (table functions fed by the caller) ----

void ChunkWriter::SetString(size_t col, size_t row, std::string_view v) {
  duckdb_vector_assign_string_element_len(static_cast<duckdb_vector>(vectors_[col]), row, v.data(),
                                          v.size());
}

void ChunkWriter::SetNull(size_t col, size_t row) {
  if (!validity_[col]) {
    auto vec = static_cast<duckdb_vector>(vectors_[col]);
    duckdb_vector_ensure_validity_writable(vec);
    validity_[col] = duckdb_vector_get_validity(vec);
  }
  duckdb_validity_set_row_invalid(validity_[col], row);
}

struct RowSourceCallbacks {
  static void Bind(duckdb_bind_info info) {
    auto* slot = static_cast<RowSourceSlot*>(duckdb_bind_get_extra_info(info));
    if (!slot->source) {
      duckdb_bind_set_error(info, "no rows are attached to this row source");
      return;
    }
    for (const RowSourceColumn& c : slot->source->columns()) {
      duckdb_logical_type t = duckdb_create_logical_type(static_cast<duckdb_type>(c.type));
      duckdb_bind_add_result_column(info, c.name.c_str(), t);
      duckdb_destroy_logical_type(&t);
    }
  }
  static void Init(duckdb_init_info info) { duckdb_init_set_max_threads(info, 1); }
  static void Scan(duckdb_function_info info, duckdb_data_chunk output) {
    auto* slot = static_cast<RowSourceSlot*>(duckdb_function_get_extra_info(info));
    // Exceptions never cross into DuckDB's C boundary (STYLE.md: they stay inside their walls).
    try {
      ChunkWriter w;
      size_t n = duckdb_data_chunk_get_column_count(output);
      w.vectors_.resize(n);
      w.data_.resize(n);
      w.validity_.assign(n, nullptr);
      for (size_t i = 0; i < n; ++i) {
        duckdb_vector v = duckdb_data_chunk_get_vector(output, i);
        w.vectors_[i] = v;
        w.data_[i] = duckdb_vector_get_data(v);
      }
      Result<size_t> rows = slot->source ? slot->source->Fill(w, duckdb_vector_size())
                                         : Result<size_t>(size_t{0});
      if (!rows.ok()) {
        slot->error = rows.status();
        duckdb_function_set_error(info, rows.status().message().c_str());
        return;
      }
      duckdb_data_chunk_set_size(output, *rows);
    } catch (const std::exception& e) {
      slot->error = Error(ErrorCode::kInternal, e.what());
      duckdb_function_set_error(info, e.what());
    }
  }
};

Result<RowSourceSlot*> Connection::RegisterRowSource(const std::string& name) {
  duckdb_table_function f = duckdb_create_table_function();
  auto* slot = new RowSourceSlot();
  duckdb_table_function_set_name(f, name.c_str());
  duckdb_table_function_set_extra_info(f, slot, [](void* p) { delete static_cast<RowSourceSlot*>(p); });
  duckdb_table_function_set_bind(f, &RowSourceCallbacks::Bind);
  duckdb_table_function_set_init(f, &RowSourceCallbacks::Init);
  duckdb_table_function_set_function(f, &RowSourceCallbacks::Scan);
  duckdb_state st = duckdb_register_table_function(static_cast<duckdb_connection>(conn_), f);
  duckdb_destroy_table_function(&f);  // the catalog keeps its own copy (and owns `slot`)
  if (st != DuckDBSuccess) return Error(ErrorCode::kSqlError, "cannot register table function " + name);
  return slot;
}

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string QuoteLiteral(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace tarn::sql
