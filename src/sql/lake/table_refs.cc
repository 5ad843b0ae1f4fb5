#include "sql/lake/table_refs.h"

#include <cctype>
#include <optional>
#include <map>
#include <set>

#include "core/strings.h"

namespace tarn::sql::lake {

namespace {

using json = nlohmann::json;

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// BASE_TABLE references reachable from a FROM clause without entering subqueries, and whether
// some join there merges columns (USING, NATURAL).
void FromTables(const json& ref, std::vector<const json*>* out, bool* merges) {
  if (!ref.is_object()) return;
  std::string type = Str(ref, "type");
  if (type == "BASE_TABLE") {
    out->push_back(&ref);
  } else if (type == "JOIN") {
    if (Str(ref, "ref_type") == "NATURAL") *merges = true;
    auto u = ref.find("using_columns");
    if (u != ref.end() && u->is_array() && !u->empty()) *merges = true;
    if (ref.contains("left")) FromTables(ref["left"], out, merges);
    if (ref.contains("right")) FromTables(ref["right"], out, merges);
  }
}

void Walk(const json& j, std::vector<const json*>* tables,
          std::vector<std::pair<const json*, const json*>>* select_nodes) {
  if (j.is_object()) {
    if (Str(j, "type") == "BASE_TABLE" && j.contains("table_name")) tables->push_back(&j);
    if (Str(j, "type") == "SELECT_NODE") select_nodes->push_back({&j, nullptr});
    for (auto it = j.begin(); it != j.end(); ++it) Walk(it.value(), tables, select_nodes);
  } else if (j.is_array()) {
    for (const auto& e : j) Walk(e, tables, select_nodes);
  }
}

bool IsIntegerKey(const std::string& t) {
  return t == "tinyint" || t == "smallint" || t == "int" || t == "integer" || t == "bigint";
}
bool IsNumberKey(const std::string& t) {
  return IsIntegerKey(t) || t == "float" || t == "double" || StartsWith(t, "decimal");
}
bool IsStringKey(const std::string& t) {
  return t == "string" || StartsWith(t, "varchar") || StartsWith(t, "char");
}

bool IsIntegerType(const std::string& id) {
  return id == "TINYINT" || id == "SMALLINT" || id == "INTEGER" || id == "BIGINT" || id == "UTINYINT" ||
         id == "USMALLINT" || id == "UINTEGER" || id == "UBIGINT";
}

bool CanonicalDate(const std::string& v) {
  if (v.size() != 10 || v[4] != '-' || v[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(v[i]))) return false;
  }
  return true;
}

std::string GlueString(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

// A constant as a Glue literal for a key of Hive type `key_type`, when DuckDB and Glue
// compare it the same way.
std::optional<std::string> Literal(const json& e, const std::string& key_type) {
  std::string cls = Str(e, "class");
  if (cls == "CAST") {
    const json& child = e["child"];
    std::string to = e.contains("cast_type") ? Str(e["cast_type"], "id") : "";
    if (Str(child, "class") != "CONSTANT") return std::nullopt;
    const json& v = child["value"];
    if (v.value("is_null", true) || Str(v["type"], "id") != "VARCHAR") return std::nullopt;
    std::string s = v["value"].is_string() ? v["value"].get<std::string>() : "";
    if (to == "VARCHAR" && IsStringKey(key_type)) return GlueString(s);
    if (to == "DATE" && key_type == "date" && CanonicalDate(s)) return GlueString(s);
    return std::nullopt;
  }
  if (cls != "CONSTANT") return std::nullopt;
  const json& v = e["value"];
  if (!v.is_object() || v.value("is_null", true)) return std::nullopt;
  std::string id = v.contains("type") ? Str(v["type"], "id") : "";
  const json& raw = v["value"];
  if (id == "VARCHAR" && raw.is_string()) {
    std::string s = raw.get<std::string>();
    if (IsStringKey(key_type)) return GlueString(s);
    if (key_type == "date" && CanonicalDate(s)) return GlueString(s);
    // DuckDB casts the string to the integer key's type; Glue wants a number.
    if (IsIntegerKey(key_type) && ParseInt64(s)) return std::to_string(*ParseInt64(s));
    return std::nullopt;
  }
  if (IsIntegerType(id) && raw.is_number_integer() && IsNumberKey(key_type)) {
    return raw.is_number_unsigned() ? std::to_string(raw.get<uint64_t>()) : std::to_string(raw.get<int64_t>());
  }
  if ((id == "DOUBLE" || id == "FLOAT") && raw.is_number() && IsNumberKey(key_type) && !IsIntegerKey(key_type)) {
    return raw.dump();
  }
  if (id == "DECIMAL" && raw.is_number_integer() && IsNumberKey(key_type) && !IsIntegerKey(key_type)) {
    int scale = v["type"].contains("type_info") && v["type"]["type_info"].is_object()
                    ? v["type"]["type_info"].value("scale", 0)
                    : 0;
    int64_t unscaled = raw.get<int64_t>();
    std::string digits = std::to_string(unscaled < 0 ? -unscaled : unscaled);
    while (static_cast<int>(digits.size()) <= scale) digits.insert(0, "0");
    if (scale > 0) digits.insert(digits.size() - scale, ".");
    return (unscaled < 0 ? "-" : "") + digits;
  }
  return std::nullopt;
}

struct Converter {
  const TableRef& ref;
  const std::vector<catalog::PartitionKey>& keys;

  // The partition key a column reference names, or null.
  const catalog::PartitionKey* Key(const json& e) const {
    if (Str(e, "class") != "COLUMN_REF") return nullptr;
    const json& names = e["column_names"];
    if (!names.is_array() || names.empty()) return nullptr;
    std::vector<std::string> n;
    for (const auto& x : names) n.push_back(ToLower(x.get<std::string>()));
    std::string col = n.back();
    bool match = false;
    if (n.size() == 1) {
      match = ref.unqualified_ok;
    } else if (n.size() == 2) {
      match = ref.alias.empty() ? n[0] == ref.table : n[0] == ref.alias;
    } else if (n.size() == 3) {
      match = ref.alias.empty() && n[0] == ref.schema && n[1] == ref.table;
    }
    if (!match) return nullptr;
    for (const auto& k : keys) {
      if (ToLower(k.name) == col) return &k;
    }
    return nullptr;
  }

  static std::string Quote(const catalog::PartitionKey& k) { return "`" + k.name + "`"; }

  std::optional<std::string> Convert(const json& e) const {
    std::string cls = Str(e, "class"), type = Str(e, "type");
    if (cls == "CONJUNCTION") {
      std::vector<std::string> parts;
      for (const auto& c : e["children"]) {
        auto p = Convert(c);
        if (type == "CONJUNCTION_AND") {
          if (p) parts.push_back(*p);  // dropping a conjunct only widens
        } else {
          if (!p) return std::nullopt;  // an OR needs every branch
          parts.push_back(*p);
        }
      }
      if (parts.empty()) return std::nullopt;
      if (parts.size() == 1) return parts[0];
      return "(" + Join(parts, type == "CONJUNCTION_AND" ? " AND " : " OR ") + ")";
    }
    if (cls == "COMPARISON") {
      static const std::pair<const char*, const char*> kOps[] = {
          {"COMPARE_EQUAL", "="},        {"COMPARE_NOTEQUAL", "<>"},
          {"COMPARE_LESSTHAN", "<"},     {"COMPARE_GREATERTHAN", ">"},
          {"COMPARE_LESSTHANOREQUALTO", "<="}, {"COMPARE_GREATERTHANOREQUALTO", ">="}};
      std::string op;
      for (const auto& [name, sym] : kOps) {
        if (type == name) op = sym;
      }
      if (op.empty()) return std::nullopt;
      const json& l = e["left"];
      const json& r = e["right"];
      if (const auto* k = Key(l)) {
        auto lit = Literal(r, ToLower(k->type));
        if (lit) return Quote(*k) + " " + op + " " + *lit;
      } else if (const auto* k = Key(r)) {
        auto lit = Literal(l, ToLower(k->type));
        if (!lit) return std::nullopt;
        // 'x' < key  ⇔  key > 'x'
        std::string flipped = op == "<" ? ">" : op == ">" ? "<" : op == "<=" ? ">=" : op == ">=" ? "<=" : op;
        return Quote(*k) + " " + flipped + " " + *lit;
      }
      return std::nullopt;
    }
    if (type == "COMPARE_IN" || type == "COMPARE_NOT_IN") {
      const json& ch = e["children"];
      if (!ch.is_array() || ch.size() < 2) return std::nullopt;
      const auto* k = Key(ch[0]);
      if (!k) return std::nullopt;
      std::vector<std::string> lits;
      for (size_t i = 1; i < ch.size(); ++i) {
        auto lit = Literal(ch[i], ToLower(k->type));
        if (!lit) return std::nullopt;
        lits.push_back(*lit);
      }
      return Quote(*k) + (type == "COMPARE_IN" ? " IN (" : " NOT IN (") + Join(lits, ", ") + ")";
    }
    if (type == "COMPARE_BETWEEN") {
      const auto* k = Key(e["input"]);
      if (!k) return std::nullopt;
      auto lo = Literal(e["lower"], ToLower(k->type));
      auto hi = Literal(e["upper"], ToLower(k->type));
      if (!lo || !hi) return std::nullopt;
      return Quote(*k) + " BETWEEN " + *lo + " AND " + *hi;
    }
    if (cls == "FUNCTION" && Str(e, "function_name") == "~~") {
      const json& ch = e["children"];
      if (!ch.is_array() || ch.size() != 2) return std::nullopt;
      const auto* k = Key(ch[0]);
      if (!k || !IsStringKey(ToLower(k->type))) return std::nullopt;
      auto lit = Literal(ch[1], ToLower(k->type));
      // DuckDB's LIKE and Glue's agree on % and _; a backslash might be an escape to one of them.
      if (!lit || lit->find('\\') != std::string::npos) return std::nullopt;
      return Quote(*k) + " LIKE " + *lit;
    }
    return std::nullopt;
  }
};

}  // namespace

Result<std::vector<TableRef>> FindTableRefs(const json& ast) {
  if (!ast.is_object() || ast.value("error", true)) {
    std::string msg = ast.is_object() ? ast.value("error_message", std::string("parse error")) : "parse error";
    return Error(ErrorCode::kInvalidInput, msg);
  }
  std::vector<const json*> tables;
  std::vector<std::pair<const json*, const json*>> selects;
  Walk(ast, &tables, &selects);
  std::vector<TableRef> out;
  std::map<const json*, size_t> index;
  for (const json* t : tables) {
    TableRef r;
    const json& loc = (*t)["query_location"];
    r.location = loc.is_number_unsigned() || loc.is_number_integer() ? loc.get<uint64_t>() : 0;
    r.catalog = ToLower(Str(*t, "catalog_name"));
    r.schema = ToLower(Str(*t, "schema_name"));
    r.table = ToLower(Str(*t, "table_name"));
    r.alias = ToLower(Str(*t, "alias"));
    index[t] = out.size();
    out.push_back(std::move(r));
  }
  for (const auto& [node, unused] : selects) {
    (void)unused;
    auto from = node->find("from_table");
    if (from == node->end()) continue;
    std::vector<const json*> refs;
    bool merges = false;
    FromTables(*from, &refs, &merges);
    auto where = node->find("where_clause");
    const json* w = where != node->end() && where->is_object() ? &*where : nullptr;
    for (const json* t : refs) {
      auto it = index.find(t);
      if (it == index.end()) continue;
      out[it->second].where = w;
      out[it->second].unqualified_ok = !merges;
    }
  }
  return out;
}

std::string PartitionPredicate(const TableRef& ref, const std::vector<catalog::PartitionKey>& keys) {
  if (!ref.where || keys.empty()) return "";
  Converter c{ref, keys};
  auto p = c.Convert(*ref.where);
  return p ? *p : "";
}

}  // namespace tarn::sql::lake
