#include "streams/convert.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <simdjson.h>

#include "core/clock.h"
#include "core/strings.h"
#include "sql/duckdb/engine.h"

namespace tarn::streams {

namespace {

// One converted value. Reused row after row, so text that has to be built (minified JSON) keeps
// its buffer; text straight from the record is a view into simdjson's document.
struct Cell {
  enum Kind { kNull, kBool, kInt, kDouble, kText, kMicros, kDays } kind = kNull;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string_view text;
  std::string owned;
};

Status Invalid(const std::string& msg) { return Error(ErrorCode::kFirehoseInvalidArgument, msg); }

std::string Trim(std::string_view s) {  // NOLINT: returns an owned, NUL-terminated copy
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool ParseDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

bool ValidDate(int y, int m, int d) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  int max = kDays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
  return d <= max;
}

// "YYYY-MM-DD", optionally followed by [T ]HH:MM[:SS[.f…]] and Z / ±HH[:]MM.
std::optional<int64_t> ParseTimestampText(std::string_view s, bool* date_only) {
  int y, mo, d, h = 0, mi = 0, se = 0;
  if (!ParseDigits(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !ParseDigits(s, 5, 2, &mo) ||
      s[7] != '-' || !ParseDigits(s, 8, 2, &d) || !ValidDate(y, mo, d)) {
    return std::nullopt;
  }
  *date_only = s.size() == 10;
  int64_t frac_micros = 0;
  int64_t offset_s = 0;
  size_t p = 10;
  if (p < s.size()) {
    if (s[p] != 'T' && s[p] != ' ') return std::nullopt;
    if (!ParseDigits(s, p + 1, 2, &h) || p + 3 >= s.size() || s[p + 3] != ':' ||
        !ParseDigits(s, p + 4, 2, &mi)) {
      return std::nullopt;
    }
    p += 6;
    if (p < s.size() && s[p] == ':') {
      if (!ParseDigits(s, p + 1, 2, &se)) return std::nullopt;
      p += 3;
      if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
        ++p;
        int64_t scale = 100000;
        size_t start = p;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
          frac_micros += (s[p] - '0') * scale;
          scale /= 10;
          ++p;
        }
        if (p == start) return std::nullopt;
      }
    }
    if (p < s.size()) {
      if (s[p] == 'Z' && p + 1 == s.size()) {
        ++p;
      } else if (s[p] == '+' || s[p] == '-') {
        int oh, om = 0;
        if (!ParseDigits(s, p + 1, 2, &oh)) return std::nullopt;
        size_t q = p + 3;
        if (q < s.size() && s[q] == ':') ++q;
        if (q < s.size() && !ParseDigits(s, q, 2, &om)) return std::nullopt;
        if (q < s.size()) q += 2;
        offset_s = (oh * 3600 + om * 60) * (s[p] == '-' ? -1 : 1);
        p = q;
      }
      if (p != s.size()) return std::nullopt;
    }
    if (h > 23 || mi > 59 || se > 60) return std::nullopt;
  }
  int64_t secs = DaysFromCivil(y, unsigned(mo), unsigned(d)) * 86400 + h * 3600 + mi * 60 + se -
                 offset_s;
  return secs * 1000000 + frac_micros;
}

bool ParseInt(const std::string& t, int64_t* out) {
  if (t.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(t.c_str(), &end, 10);
  if (errno == 0 && *end == '\0') {
    *out = v;
    return true;
  }
  // "12.0" or "1e3": accepted when the value is integral.
  double d = std::strtod(t.c_str(), &end);
  if (*end != '\0' || !std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9.2e18) return false;
  *out = int64_t(d);
  return true;
}

bool ParseDouble(const std::string& t, double* out) {
  if (t.empty()) return false;
  char* end = nullptr;
  double d = std::strtod(t.c_str(), &end);
  if (*end != '\0') return false;
  *out = d;
  return true;
}

struct IntRange {
  int64_t lo, hi;
};
IntRange RangeOf(ColumnKind k) {
  switch (k) {
    case ColumnKind::kTinyInt: return {-128, 127};
    case ColumnKind::kSmallInt: return {-32768, 32767};
    case ColumnKind::kInt: return {-2147483648LL, 2147483647LL};
    default: return {INT64_MIN, INT64_MAX};
  }
}

// Converts one JSON value to the column's type (OpenX JSON SerDe coercions) into `c`; on
// failure returns false with the reason in `why`.
bool Coerce(const ColumnSpec& col, simdjson::dom::element v, Cell* c, std::string* why) {
  using simdjson::dom::element_type;
  element_type t = v.type();
  c->kind = Cell::kNull;
  if (t == element_type::NULL_VALUE) return true;
  auto bad = [&](const std::string& msg) {
    *why = "column '" + col.name + "' (" + col.sql_type + "): " + msg;
    return false;
  };
  std::string_view sv;
  if (t == element_type::STRING) sv = v.get_string().value();
  switch (col.kind) {
    case ColumnKind::kString:
      c->kind = Cell::kText;
      if (t == element_type::STRING) {
        c->text = sv;
      } else {
        c->owned = simdjson::minify(v);
        c->text = c->owned;
      }
      return true;
    case ColumnKind::kTinyInt:
    case ColumnKind::kSmallInt:
    case ColumnKind::kInt:
    case ColumnKind::kBigInt: {
      int64_t i = 0;
      if (t == element_type::INT64) {
        i = v.get_int64().value();
      } else if (t == element_type::UINT64) {
        return bad("value out of range");
      } else if (t == element_type::DOUBLE) {
        double d = v.get_double().value();
        if (std::floor(d) != d || std::fabs(d) > 9.2e18) return bad("value is not an integer");
        i = int64_t(d);
      } else if (t == element_type::STRING) {
        if (!ParseInt(Trim(sv), &i)) return bad("'" + std::string(sv) + "' is not an integer");
      } else {
        return bad("value is not a number");
      }
      IntRange r = RangeOf(col.kind);
      if (i < r.lo || i > r.hi) return bad("value " + std::to_string(i) + " out of range");
      c->kind = Cell::kInt;
      c->i = i;
      return true;
    }
    case ColumnKind::kFloat:
    case ColumnKind::kDouble: {
      c->kind = Cell::kDouble;
      if (t == element_type::INT64) {
        c->d = double(v.get_int64().value());
      } else if (t == element_type::UINT64) {
        c->d = double(v.get_uint64().value());
      } else if (t == element_type::DOUBLE) {
        c->d = v.get_double().value();
      } else if (!(t == element_type::STRING && ParseDouble(Trim(sv), &c->d))) {
        c->kind = Cell::kNull;
        return bad("value is not a number");
      }
      // DuckDB's CAST to FLOAT fails the whole COPY on a finite value beyond FLOAT's range.
      if (col.kind == ColumnKind::kFloat && std::isfinite(c->d) &&
          std::fabs(c->d) > double(std::numeric_limits<float>::max())) {
        c->kind = Cell::kNull;
        return bad("value out of range");
      }
      return true;
    }
    case ColumnKind::kBoolean: {
      c->kind = Cell::kBool;
      if (t == element_type::BOOL) {
        c->b = v.get_bool().value();
        return true;
      }
      if (t == element_type::STRING) {
        std::string l = ToLower(Trim(sv));
        if (l == "true" || l == "false") {
          c->b = l == "true";
          return true;
        }
      }
      c->kind = Cell::kNull;
      return bad("value is not a boolean");
    }
    case ColumnKind::kTimestamp:
    case ColumnKind::kDate: {
      // Numbers are epoch seconds, or milliseconds when that reading would be past year 5138.
      std::optional<int64_t> micros;
      double num = 0;
      bool numeric = false;
      if (t == element_type::INT64) {
        num = double(v.get_int64().value());
        numeric = true;
      } else if (t == element_type::DOUBLE) {
        num = v.get_double().value();
        numeric = true;
      } else if (t == element_type::STRING) {
        std::string tt = Trim(sv);
        if (ParseDouble(tt, &num)) {
          numeric = true;
        } else {
          bool date_only = false;
          micros = ParseTimestampText(tt, &date_only);
        }
      }
      if (numeric) {
        // Beyond ±9.2e18 µs (year ±294 000, DuckDB's range) or not finite: not a timestamp (the
        // conversion to int64 would be undefined).
        double m = std::fabs(num) >= 1e11 ? num * 1000 : num * 1000000;
        if (std::isfinite(m) && std::fabs(m) < 9.2e18) micros = int64_t(m);
      }
      if (!micros) return bad("value is not a timestamp (ISO 8601 or epoch seconds/milliseconds)");
      if (col.kind == ColumnKind::kTimestamp) {
        c->kind = Cell::kMicros;
        c->i = *micros;
      } else {
        c->kind = Cell::kDays;
        c->i = *micros >= 0 ? *micros / 86400000000LL : -((-*micros + 86399999999LL) / 86400000000LL);
      }
      return true;
    }
    case ColumnKind::kDecimal: {
      std::string num;
      if (t == element_type::INT64 || t == element_type::UINT64 || t == element_type::DOUBLE) {
        num = simdjson::minify(v);
      } else if (t == element_type::STRING) {
        num = Trim(sv);
      } else {
        return bad("value is not a number");
      }
      double d = 0;
      if (!ParseDouble(num, &d) || !std::isfinite(d)) return bad("'" + num + "' is not a number");
      // DuckDB's CAST rounds to the scale, and fails the whole COPY when the rounded value has
      // more digits than the precision (9.9995 into DECIMAL(4,3)): refuse what could round up
      // to 10^precision (DuckDB nudges the scaled value by 1e-9 before rounding; a few ulps more
      // cover the double arithmetic).
      const double scaled = std::fabs(d) * std::pow(10.0, col.scale);
      if (scaled + 1e-9 + scaled * 1e-15 >= std::pow(10.0, col.precision) - 0.5) {
        return bad("value " + num + " does not fit");
      }
      c->kind = Cell::kDouble;
      c->d = d;
      return true;
    }
  }
  return bad("unsupported type");
}

// Whether `key` lower-cased (ASCII letters, as the C locale's tolower) equals `lowered`.
bool EqualsLowered(std::string_view key, std::string_view lowered) {
  if (key.size() != lowered.size()) return false;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if (c != lowered[i]) return false;
  }
  return true;
}

// Whether the columns' JSON keys are all lower-case, i.e. matched case-insensitively
// (SchemaFromGlueTable lower-cases them unless CaseInsensitive is false).
bool KeysLowered(const std::vector<ColumnSpec>& columns) {
  for (const auto& c : columns) {
    for (char ch : c.json_key) {
      if (ch >= 'A' && ch <= 'Z') return false;
    }
  }
  return true;
}

// One record's values into `row` (a cell per column), or false with the error code and reason:
// the conversion the Parquet writer's table function applies and CheckRecord repeats, so that a
// check and a flush agree. `ci`: KeysLowered(columns).
bool ConvertRecord(const std::vector<ColumnSpec>& columns, bool ci, simdjson::dom::parser& parser,
                   std::string_view data, std::vector<Cell>* row, const char** code,
                   std::string* why) {
  for (auto& c : *row) c.kind = Cell::kNull;
  simdjson::dom::element doc;
  auto err = parser.parse(data.data(), data.size()).get(doc);
  if (err) {
    *code = "DataFormatConversion.MalformedData";
    *why = std::string("the record is not valid JSON: ") + simdjson::error_message(err);
    return false;
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) {
    *code = "DataFormatConversion.MalformedData";
    *why = "the record is not a JSON object";
    return false;
  }
  size_t next = 0;  // records usually list their keys in the table's column order
  for (auto field : obj) {
    std::string_view key = field.key;
    // A handful of columns: a linear scan, starting after the previous match, beats hashing
    // and allocates nothing. json_key is lower-cased when matching is case-insensitive.
    size_t col = columns.size();
    for (size_t k = 0; k < columns.size(); ++k) {
      size_t i = next + k < columns.size() ? next + k : next + k - columns.size();
      if (ci ? EqualsLowered(key, columns[i].json_key) : key == columns[i].json_key) {
        col = i;
        break;
      }
    }
    if (col == columns.size()) continue;  // keys without a column are ignored (OpenX)
    next = col + 1;
    if (!Coerce(columns[col], field.value, &(*row)[col], why)) {
      *code = "DataFormatConversion.InvalidValue";
      return false;
    }
  }
  return true;
}

}  // namespace

bool CheckRecord(const std::vector<ColumnSpec>& columns, std::string_view data,
                 std::string* error_code, std::string* error_message) {
  thread_local simdjson::dom::parser parser;
  thread_local std::vector<Cell> row;
  row.resize(columns.size());
  const char* code = nullptr;
  if (ConvertRecord(columns, KeysLowered(columns), parser, data, &row, &code, error_message)) {
    return true;
  }
  *error_code = code;
  return false;
}

nlohmann::json InferGlueColumns(const std::vector<const WalRecord*>& records,
                                const std::vector<std::string>& skip) {
  std::vector<std::pair<std::string, std::string>> cols;  // name → type ("" = only nulls so far)
  std::map<std::string, size_t> index;
  simdjson::dom::parser parser;
  for (const WalRecord* r : records) {
    simdjson::dom::element doc;
    if (parser.parse(r->data.data(), r->data.size()).get(doc)) continue;
    simdjson::dom::object obj;
    if (doc.get_object().get(obj)) continue;
    for (auto field : obj) {
      std::string name = ToLower(std::string(field.key));
      if (name.empty() || std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
      std::string type;
      switch (field.value.type()) {
        case simdjson::dom::element_type::BOOL: type = "boolean"; break;
        case simdjson::dom::element_type::INT64:
        case simdjson::dom::element_type::UINT64: type = "bigint"; break;
        case simdjson::dom::element_type::DOUBLE: type = "double"; break;
        case simdjson::dom::element_type::NULL_VALUE: type = ""; break;
        default: type = "string"; break;  // text, objects, arrays: written as text
      }
      auto it = index.find(name);
      if (it == index.end()) {
        index[name] = cols.size();
        cols.emplace_back(name, type);
        continue;
      }
      std::string& have = cols[it->second].second;
      if (type.empty() || have == type) continue;
      if (have.empty()) {
        have = type;
      } else if ((have == "bigint" && type == "double") || (have == "double" && type == "bigint")) {
        have = "double";
      } else {
        have = "string";
      }
    }
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, type] : cols) {
    out.push_back({{"Name", name}, {"Type", type.empty() ? "string" : type}});
  }
  return out;
}

Result<std::vector<ColumnSpec>> SchemaFromGlueTable(const nlohmann::json& table,
                                                    const DestinationConfig& config) {
  const auto& sd = table.value("StorageDescriptor", nlohmann::json::object());
  const auto& cols = sd.value("Columns", nlohmann::json::array());
  if (!cols.is_array() || cols.empty()) {
    return Invalid("catalog table " + config.schema_database + "." + config.schema_table +
                   " has no columns (StorageDescriptor.Columns) to convert records to");
  }
  std::vector<ColumnSpec> out;
  for (const auto& c : cols) {
    ColumnSpec s;
    s.name = c.value("Name", "");
    std::string type = ToLower(Trim(c.value("Type", "string")));
    std::string lname = ToLower(s.name);
    auto m = config.column_to_json_key.find(lname);
    if (m != config.column_to_json_key.end()) {
      s.json_key = config.case_insensitive ? ToLower(m->second) : m->second;
    } else {
      s.json_key = config.case_insensitive ? lname : s.name;
    }
    if (type == "string" || type.rfind("varchar", 0) == 0 || type.rfind("char", 0) == 0) {
      s.kind = ColumnKind::kString;
      s.sql_type = "VARCHAR";
    } else if (type == "tinyint") {
      s.kind = ColumnKind::kTinyInt;
      s.sql_type = "TINYINT";
    } else if (type == "smallint") {
      s.kind = ColumnKind::kSmallInt;
      s.sql_type = "SMALLINT";
    } else if (type == "int" || type == "integer") {
      s.kind = ColumnKind::kInt;
      s.sql_type = "INTEGER";
    } else if (type == "bigint") {
      s.kind = ColumnKind::kBigInt;
      s.sql_type = "BIGINT";
    } else if (type == "float") {
      s.kind = ColumnKind::kFloat;
      s.sql_type = "FLOAT";
    } else if (type == "double") {
      s.kind = ColumnKind::kDouble;
      s.sql_type = "DOUBLE";
    } else if (type == "boolean") {
      s.kind = ColumnKind::kBoolean;
      s.sql_type = "BOOLEAN";
    } else if (type == "timestamp") {
      s.kind = ColumnKind::kTimestamp;
      s.sql_type = "TIMESTAMP";
    } else if (type == "date") {
      s.kind = ColumnKind::kDate;
      s.sql_type = "DATE";
    } else if (type.rfind("decimal", 0) == 0) {
      s.kind = ColumnKind::kDecimal;
      s.precision = 10;
      s.scale = 0;
      if (std::sscanf(type.c_str(), "decimal(%d,%d)", &s.precision, &s.scale) < 1 &&
          type != "decimal") {
        return Invalid("column " + s.name + ": cannot read decimal type '" + type + "'");
      }
      if (s.precision < 1 || s.precision > 38 || s.scale < 0 || s.scale > s.precision) {
        return Invalid("column " + s.name + ": invalid " + type);
      }
      s.sql_type = "DECIMAL(" + std::to_string(s.precision) + "," + std::to_string(s.scale) + ")";
    } else {
      return Invalid("column " + s.name + " has type '" + type +
                     "', which Tarn's JSON to Parquet conversion does not support yet (string, "
                     "integer types, float, double, boolean, timestamp, date, decimal)");
    }
    out.push_back(std::move(s));
  }
  return out;
}

ParquetWriter::~ParquetWriter() = default;

Result<std::unique_ptr<ParquetWriter>> ParquetWriter::Create() {
  std::unique_ptr<ParquetWriter> w(new ParquetWriter());
  sql::DatabaseOptions o;
  o.threads = 1;
  o.memory_limit = "512MB";
  ASSIGN_OR_RETURN(w->db_, sql::Database::Open(":memory:", o));
  ASSIGN_OR_RETURN(w->conn_, w->db_->Connect());
  ASSIGN_OR_RETURN(w->records_, w->conn_->RegisterRowSource(kRecordsFunction));
  return w;
}

namespace {

// The records of one Write as rows of the table function the COPY reads: each chunk DuckDB asks
// for is converted record by record (simdjson, OpenX coercion) straight into its vectors, and the
// records that cannot be converted go to `failed` on the way.
class RecordRows final : public sql::RowSource {
 public:
  RecordRows(const std::vector<ColumnSpec>& columns, const std::vector<const WalRecord*>& records,
             std::vector<FailedRecord>* failed)
      : columns_(columns), records_(records), failed_(failed), row_(columns.size()),
        ci_(KeysLowered(columns)) {
    for (const auto& c : columns) {
      sql::RowSourceColumn out{c.name, sql::ColumnType::kVarchar};
      switch (c.kind) {
        case ColumnKind::kString: out.type = sql::ColumnType::kVarchar; break;
        case ColumnKind::kTinyInt: out.type = sql::ColumnType::kTinyInt; break;
        case ColumnKind::kSmallInt: out.type = sql::ColumnType::kSmallInt; break;
        case ColumnKind::kInt: out.type = sql::ColumnType::kInteger; break;
        case ColumnKind::kBigInt: out.type = sql::ColumnType::kBigInt; break;
        // FLOAT and DECIMAL leave as DOUBLE and are cast by the query, with DuckDB's own cast
        // (rounding, range errors) as the appender applied it before.
        case ColumnKind::kFloat:
        case ColumnKind::kDouble:
        case ColumnKind::kDecimal: out.type = sql::ColumnType::kDouble; break;
        case ColumnKind::kBoolean: out.type = sql::ColumnType::kBoolean; break;
        case ColumnKind::kTimestamp: out.type = sql::ColumnType::kTimestamp; break;
        case ColumnKind::kDate: out.type = sql::ColumnType::kDate; break;
      }
      out_columns_.push_back(std::move(out));
    }
  }

  const std::vector<sql::RowSourceColumn>& columns() const override { return out_columns_; }
  size_t rows() const { return rows_; }

  Result<size_t> Fill(sql::ChunkWriter& out, size_t capacity) override {
    size_t n = 0;
    while (n < capacity && next_ < records_.size()) {
      const WalRecord* r = records_[next_++];
      if (!Convert(*r)) continue;
      for (size_t i = 0; i < columns_.size(); ++i) Put(out, i, n, row_[i]);
      ++n;
    }
    rows_ += n;
    return n;
  }

 private:
  bool Convert(const WalRecord& r) {
    const char* code = nullptr;
    if (ConvertRecord(columns_, ci_, parser_, r.data, &row_, &code, &why_)) return true;
    failed_->push_back({&r, code, why_});
    return false;
  }

  void Put(sql::ChunkWriter& out, size_t col, size_t row, const Cell& c) {
    switch (c.kind) {
      case Cell::kNull: out.SetNull(col, row); return;
      case Cell::kBool: out.Set<bool>(col, row, c.b); return;
      case Cell::kDouble: out.Set<double>(col, row, c.d); return;
      case Cell::kText: out.SetString(col, row, c.text); return;
      case Cell::kMicros: out.Set<int64_t>(col, row, c.i); return;
      case Cell::kDays: out.Set<int32_t>(col, row, int32_t(c.i)); return;
      case Cell::kInt:
        // In range for the column's type: Coerce checked it.
        switch (columns_[col].kind) {
          case ColumnKind::kTinyInt: out.Set<int8_t>(col, row, int8_t(c.i)); return;
          case ColumnKind::kSmallInt: out.Set<int16_t>(col, row, int16_t(c.i)); return;
          case ColumnKind::kInt: out.Set<int32_t>(col, row, int32_t(c.i)); return;
          default: out.Set<int64_t>(col, row, c.i); return;
        }
    }
  }

  const std::vector<ColumnSpec>& columns_;
  const std::vector<const WalRecord*>& records_;
  std::vector<FailedRecord>* failed_;
  std::vector<sql::RowSourceColumn> out_columns_;
  std::vector<Cell> row_;
  simdjson::dom::parser parser_;
  std::string why_;
  const bool ci_;
  size_t next_ = 0;
  size_t rows_ = 0;
};

}  // namespace

Result<size_t> ParquetWriter::Write(const std::vector<ColumnSpec>& columns,
                                    const std::vector<const WalRecord*>& records,
                                    const std::string& compression, const std::string& path,
                                    std::vector<FailedRecord>* failed) {
  const size_t failed_before = failed->size();
  auto w = WriteOnce(columns, records, compression, path, failed);
  if (w.ok() || w.status().code() != ErrorCode::kSqlConversion) return w;
  // A value that the conversion took and DuckDB's cast refuses (the conversion checks every
  // case known, ConvertTest.ExtremeValuesFailAloneNeverTheFile): such a record would fail the
  // file at every retry and stall the stream. Halve the records until the refused ones are
  // alone — they fail with DuckDB's reason — then write the others. Deterministic, so a replay
  // after a crash writes the same object.
  failed->resize(failed_before);
  std::vector<const WalRecord*> good;
  RETURN_IF_ERROR(Isolate(columns, records, compression, path, &good, failed));
  std::vector<FailedRecord> none;
  return WriteOnce(columns, good, compression, path, &none);
}

Status ParquetWriter::Isolate(const std::vector<ColumnSpec>& columns,
                              const std::vector<const WalRecord*>& records,
                              const std::string& compression, const std::string& path,
                              std::vector<const WalRecord*>* good,
                              std::vector<FailedRecord>* failed) {
  std::vector<FailedRecord> own;
  auto w = WriteOnce(columns, records, compression, path, &own);
  if (w.ok()) {
    size_t f = 0;  // `own` is in record order
    for (const WalRecord* r : records) {
      if (f < own.size() && own[f].record == r) {
        failed->push_back(std::move(own[f++]));
      } else {
        good->push_back(r);
      }
    }
    return Status::OK();
  }
  if (w.status().code() != ErrorCode::kSqlConversion) return w.status();
  if (records.size() == 1) {
    failed->push_back({records[0], "DataFormatConversion.InvalidValue", w.status().message()});
    return Status::OK();
  }
  const size_t half = records.size() / 2;
  std::vector<const WalRecord*> left(records.begin(), records.begin() + half);
  std::vector<const WalRecord*> right(records.begin() + half, records.end());
  RETURN_IF_ERROR(Isolate(columns, left, compression, path, good, failed));
  return Isolate(columns, right, compression, path, good, failed);
}

Result<size_t> ParquetWriter::WriteOnce(const std::vector<ColumnSpec>& columns,
                                        const std::vector<const WalRecord*>& records,
                                        const std::string& compression, const std::string& path,
                                        std::vector<FailedRecord>* failed) {
  // COPY (SELECT …) reads the records through the table function, so no table holds them in
  // between; the Parquet file has the catalog's names and types, in its column order.
  std::string select;
  for (const auto& c : columns) {
    std::string name = sql::QuoteIdentifier(c.name);
    if (!select.empty()) select += ", ";
    if (c.kind == ColumnKind::kFloat || c.kind == ColumnKind::kDecimal) {
      select += "CAST(" + name + " AS " + c.sql_type + ") AS " + name;
    } else {
      select += name;
    }
  }
  RecordRows rows(columns, records, failed);
  records_->source = &rows;
  records_->error = Status::OK();
  Status st = conn_->Execute("COPY (SELECT " + select + " FROM " + kRecordsFunction + "()) TO " +
                             sql::QuoteLiteral(path) + " (FORMAT parquet, COMPRESSION " +
                             compression + ", ROW_GROUP_SIZE 122880)");
  records_->source = nullptr;
  if (!st.ok()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    return records_->error.ok() ? st : records_->error;
  }
  if (rows.rows() == 0) {  // every record failed: no object, only the error output
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  return rows.rows();
}

Result<uint64_t> ParquetWriter::Merge(const std::vector<std::string>& inputs,
                                      const std::string& compression, const std::string& path) {
  std::string list;
  for (const auto& in : inputs) list += (list.empty() ? "" : ", ") + sql::QuoteLiteral(in);
  // One thread (the writer's), insertion order preserved: the merged file holds the inputs'
  // rows in sequence order, as a single flush of the same records would.
  ASSIGN_OR_RETURN(auto result,
                   conn_->Query("COPY (SELECT * FROM read_parquet([" + list +
                                "], union_by_name=true)) TO " + sql::QuoteLiteral(path) +
                                " (FORMAT parquet, COMPRESSION " + compression +
                                ", ROW_GROUP_SIZE 122880)"));
  if (!result.returns_rows()) return uint64_t(std::max<int64_t>(0, result.rows_changed()));
  ASSIGN_OR_RETURN(auto rows, result.ToRows());  // COPY … TO answers with its row count
  if (rows.empty() || rows[0].empty() || !rows[0][0]) return uint64_t{0};
  return uint64_t(std::strtoull(rows[0][0]->c_str(), nullptr, 10));
}

Result<std::string> RawOutput(const std::vector<const WalRecord*>& records, bool newline,
                              RawCompression compression) {
  std::string raw;
  size_t total = 0;
  for (const WalRecord* r : records) total += r->data.size() + (newline ? 1 : 0);
  raw.reserve(total);
  for (const WalRecord* r : records) {
    raw += r->data;
    if (newline) raw += '\n';
  }
  if (compression == RawCompression::kUncompressed) return raw;
  z_stream zs{};
  // windowBits 15 + 16: a gzip wrapper with a zero mtime and no name, so output is repeatable.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Error(ErrorCode::kInternal, "deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, uLong(raw.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = uInt(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t n = out.size() - zs.avail_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return Error(ErrorCode::kInternal, "gzip compression failed");
  out.resize(n);
  return out;
}

std::string ErrorRecordJson(const FailedRecord& f, const std::string& stream,
                            const std::string& table_arn) {
  nlohmann::json j = {
      {"attemptsMade", 1},
      {"arrivalTimestamp", f.record->arrival_micros / 1000},
      {"errorCode", f.error_code},
      {"errorMessage", f.error_message},
      {"attemptEndingTimestamp", f.record->arrival_micros / 1000},
      {"rawData", Base64Encode(f.record->data)},
      {"sequenceNumber", std::to_string(f.record->seq)},
      {"deliveryStreamName", stream},
  };
  if (!table_arn.empty()) j["dataCatalogTable"] = {{"tableArn", table_arn}};
  return j.dump() + "\n";
}

}  // namespace tarn::streams
