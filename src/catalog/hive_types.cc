#include "catalog/hive_types.h"

#include <cctype>
#include <vector>

#include "core/strings.h"

namespace tarn::catalog {

namespace {

// A small cursor over a type string.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  void Skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool Eat(char c) {
    Skip();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool AtEnd() {
    Skip();
    return i_ >= s_.size();
  }
  char PeekChar() {
    Skip();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  // A word of letters, digits and '_' (type names, field names).
  std::string Word() {
    Skip();
    size_t b = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_')) ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  // A field name: "quoted" (DuckDB, "" escapes) or a bare word.
  std::string Name(bool allow_spaces_until_colon) {
    Skip();
    if (i_ < s_.size() && s_[i_] == '"') {
      std::string out;
      ++i_;
      while (i_ < s_.size()) {
        if (s_[i_] == '"') {
          if (i_ + 1 < s_.size() && s_[i_ + 1] == '"') {
            out += '"';
            i_ += 2;
            continue;
          }
          ++i_;
          break;
        }
        out += s_[i_++];
      }
      return out;
    }
    if (allow_spaces_until_colon) {
      size_t b = i_;
      while (i_ < s_.size() && s_[i_] != ':') ++i_;
      return std::string(Trim(s_.substr(b, i_ - b)));
    }
    return Word();
  }
  std::string Number() {
    Skip();
    size_t b = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  size_t pos() const { return i_; }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

Status Bad(std::string_view what, std::string_view type) {
  return Error(ErrorCode::kInvalidInput, std::string(what) + " in type '" + std::string(type) + "'");
}

Result<std::string> ParseDuck(Cursor& c, std::string_view all) {
  std::string word = ToLower(c.Word());
  if (word.empty()) return Bad("expected a type name", all);
  std::string out;
  if (word == "struct") {
    if (!c.Eat('(')) return Bad("expected '(' after STRUCT", all);
    std::vector<std::string> fields;
    if (!c.Eat(')')) {
      do {
        std::string name = c.Name(false);
        ASSIGN_OR_RETURN(std::string t, ParseDuck(c, all));
        fields.push_back(ToLower(name) + ":" + t);
      } while (c.Eat(','));
      if (!c.Eat(')')) return Bad("expected ')' closing STRUCT", all);
    }
    out = "struct<" + Join(fields, ",") + ">";
  } else if (word == "map") {
    if (!c.Eat('(')) return Bad("expected '(' after MAP", all);
    ASSIGN_OR_RETURN(std::string k, ParseDuck(c, all));
    if (!c.Eat(',')) return Bad("expected ',' in MAP", all);
    ASSIGN_OR_RETURN(std::string v, ParseDuck(c, all));
    if (!c.Eat(')')) return Bad("expected ')' closing MAP", all);
    out = "map<" + k + "," + v + ">";
  } else if (word == "decimal" || word == "numeric") {
    std::string p = "18", s = "3";
    if (c.Eat('(')) {
      p = c.Number();
      s = c.Eat(',') ? c.Number() : "0";
      if (!c.Eat(')') || p.empty() || s.empty()) return Bad("malformed DECIMAL", all);
    }
    out = "decimal(" + p + "," + s + ")";
  } else if (word == "union") {
    // Hive's uniontype has no reader in most engines; keep the values as text.
    int depth = 0;
    if (!c.Eat('(')) return Bad("expected '(' after UNION", all);
    depth = 1;
    while (depth > 0 && !c.AtEnd()) {
      char ch = c.PeekChar();
      c.Eat(ch);
      if (ch == '(') ++depth;
      if (ch == ')') --depth;
    }
    out = "string";
  } else {
    if (word == "timestamp" || word == "time") {
      // TIMESTAMP WITH TIME ZONE / TIME WITH TIME ZONE
      size_t save = c.pos();
      (void)save;
      Cursor probe = c;
      if (ToLower(probe.Word()) == "with") {
        c = probe;
        c.Word();  // TIME
        c.Word();  // ZONE
      }
    }
    static const std::pair<const char*, const char*> kMap[] = {
        {"boolean", "boolean"}, {"bool", "boolean"}, {"tinyint", "tinyint"},
        {"smallint", "smallint"}, {"integer", "int"}, {"int", "int"}, {"bigint", "bigint"},
        {"hugeint", "decimal(38,0)"}, {"uhugeint", "decimal(38,0)"}, {"utinyint", "smallint"},
        {"usmallint", "int"}, {"uinteger", "bigint"}, {"ubigint", "decimal(20,0)"},
        {"float", "float"}, {"real", "float"}, {"double", "double"}, {"varchar", "string"},
        {"blob", "binary"}, {"bit", "binary"}, {"date", "date"}, {"timestamp", "timestamp"},
        {"timestamp_s", "timestamp"}, {"timestamp_ms", "timestamp"}, {"timestamp_ns", "timestamp"},
        {"timestamptz", "timestamp"}, {"time", "string"}, {"timetz", "string"},
        {"interval", "string"}, {"uuid", "string"}, {"json", "string"}, {"null", "string"},
        {"enum", "string"}, {"varint", "decimal(38,0)"}};
    for (const auto& [d, h] : kMap) {
      if (word == d) out = h;
    }
    if (out.empty()) return Bad("unknown DuckDB type '" + word + "'", all);
    if (word == "enum" || word == "varchar") {
      // ENUM('a', 'b') / VARCHAR(n) arguments carry nothing Hive keeps.
      if (c.PeekChar() == '(') {
        int depth = 0;
        do {
          char ch = c.PeekChar();
          c.Eat(ch);
          if (ch == '(') ++depth;
          if (ch == ')') --depth;
        } while (depth > 0 && !c.AtEnd());
      }
    }
  }
  // LIST suffixes: T[] (list) or T[N] (fixed array).
  while (c.PeekChar() == '[') {
    c.Eat('[');
    c.Number();
    if (!c.Eat(']')) return Bad("expected ']'", all);
    out = "array<" + out + ">";
  }
  return out;
}

Result<std::string> ParseHive(Cursor& c, std::string_view all) {
  std::string word = ToLower(c.Word());
  if (word == "array") {
    if (!c.Eat('<')) return Bad("expected '<' after array", all);
    ASSIGN_OR_RETURN(std::string t, ParseHive(c, all));
    if (!c.Eat('>')) return Bad("expected '>' closing array", all);
    return t + "[]";
  }
  if (word == "map") {
    if (!c.Eat('<')) return Bad("expected '<' after map", all);
    ASSIGN_OR_RETURN(std::string k, ParseHive(c, all));
    if (!c.Eat(',')) return Bad("expected ',' in map", all);
    ASSIGN_OR_RETURN(std::string v, ParseHive(c, all));
    if (!c.Eat('>')) return Bad("expected '>' closing map", all);
    return "MAP(" + k + ", " + v + ")";
  }
  if (word == "struct") {
    if (!c.Eat('<')) return Bad("expected '<' after struct", all);
    std::vector<std::string> fields;
    if (!c.Eat('>')) {
      do {
        std::string name = c.Name(true);
        if (name.empty() || !c.Eat(':')) return Bad("expected 'name:type' in struct", all);
        ASSIGN_OR_RETURN(std::string t, ParseHive(c, all));
        std::string q = "\"";
        for (char ch : name) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        fields.push_back(q + "\" " + t);
      } while (c.Eat(','));
      if (!c.Eat('>')) return Bad("expected '>' closing struct", all);
    }
    return "STRUCT(" + Join(fields, ", ") + ")";
  }
  if (word == "decimal") {
    std::string p = "10", s = "0";  // Hive's default precision and scale
    if (c.Eat('(')) {
      p = c.Number();
      s = c.Eat(',') ? c.Number() : "0";
      if (!c.Eat(')') || p.empty() || s.empty()) return Bad("malformed decimal", all);
    }
    return "DECIMAL(" + p + "," + s + ")";
  }
  if (word == "char" || word == "varchar") {
    if (c.Eat('(')) {
      if (c.Number().empty() || !c.Eat(')')) return Bad("malformed length", all);
    }
    return std::string("VARCHAR");
  }
  static const std::pair<const char*, const char*> kMap[] = {
      {"boolean", "BOOLEAN"}, {"tinyint", "TINYINT"}, {"smallint", "SMALLINT"},
      {"int", "INTEGER"}, {"integer", "INTEGER"}, {"bigint", "BIGINT"}, {"float", "FLOAT"},
      {"double", "DOUBLE"}, {"string", "VARCHAR"}, {"binary", "BLOB"}, {"date", "DATE"},
      {"timestamp", "TIMESTAMP"}};
  for (const auto& [h, d] : kMap) {
    if (word == h) return std::string(d);
  }
  return Bad("unknown Hive type '" + word + "'", all);
}

}  // namespace

Result<std::string> DuckDbToHiveType(std::string_view duckdb_type) {
  Cursor c(duckdb_type);
  ASSIGN_OR_RETURN(std::string t, ParseDuck(c, duckdb_type));
  if (!c.AtEnd()) return Bad("trailing characters", duckdb_type);
  return t;
}

Result<std::string> HiveToDuckDbType(std::string_view hive_type) {
  Cursor c(hive_type);
  ASSIGN_OR_RETURN(std::string t, ParseHive(c, hive_type));
  if (!c.AtEnd()) return Bad("trailing characters", hive_type);
  return t;
}

std::string WidenHiveTypes(const std::string& a, const std::string& b) {
  if (a == b) return a;
  auto rank = [](const std::string& t) {
    if (t == "tinyint") return 1;
    if (t == "smallint") return 2;
    if (t == "int") return 3;
    if (t == "bigint") return 4;
    if (t == "float") return 5;
    if (t == "double") return 6;
    return 0;
  };
  int ra = rank(a), rb = rank(b);
  if (ra && rb) return ra > rb ? a : b;
  return "";
}

}  // namespace tarn::catalog
