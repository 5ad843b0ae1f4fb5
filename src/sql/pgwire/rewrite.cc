#include "sql/pgwire/rewrite.h"

#include <cctype>

#include "core/strings.h"

namespace tarn::sql::pgwire {

namespace {

bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }
bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }

// Length of a quoted/commented region starting at i (0 when none starts there).
size_t SkipOpaque(std::string_view s, size_t i) {
  char c = s[i];
  if (c == '\'' || c == '"') {
    size_t j = i + 1;
    while (j < s.size()) {
      if (s[j] == c) {
        if (j + 1 < s.size() && s[j + 1] == c) {
          j += 2;
          continue;
        }
        return j + 1 - i;
      }
      // E'…' strings use backslash escapes.
      if (c == '\'' && s[j] == '\\' && i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e')) ++j;
      ++j;
    }
    return s.size() - i;
  }
  if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
    size_t j = s.find('\n', i);
    return (j == std::string_view::npos ? s.size() : j) - i;
  }
  if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
    size_t j = s.find("*/", i + 2);
    return (j == std::string_view::npos ? s.size() : j + 2) - i;
  }
  if (c == '$' && (i == 0 || !IsIdentChar(s[i - 1]))) {
    // Dollar quoting: $tag$ … $tag$ (tag may be empty).
    size_t j = i + 1;
    while (j < s.size() && (IsIdentChar(s[j]) && s[j] != '$')) ++j;
    if (j < s.size() && s[j] == '$' && (j == i + 1 || !std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      std::string_view tag = s.substr(i, j - i + 1);
      size_t end = s.find(tag, j + 1);
      return (end == std::string_view::npos ? s.size() : end + tag.size()) - i;
    }
  }
  return 0;
}

bool MatchWord(std::string_view s, size_t i, std::string_view word) {
  if (i + word.size() > s.size()) return false;
  if (!EqualsIgnoreCase(s.substr(i, word.size()), word)) return false;
  if (i > 0 && IsIdentChar(s[i - 1])) return false;
  return i + word.size() == s.size() || !IsIdentChar(s[i + word.size()]);
}

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

}  // namespace

std::vector<std::string> SplitStatements(std::string_view sql) {
  std::vector<std::string> out;
  size_t start = 0;
  auto push = [&](size_t end) {
    std::string_view piece = Trim(sql.substr(start, end - start));
    // Keep statements that are only comments out of the list.
    bool has_code = false;
    for (size_t i = 0; i < piece.size();) {
      size_t n = SkipOpaque(piece, i);
      if (n && (piece[i] == '-' || piece[i] == '/')) {
        i += n;
        continue;
      }
      if (!std::isspace(static_cast<unsigned char>(piece[i]))) {
        has_code = true;
        break;
      }
      ++i;
    }
    if (has_code) out.emplace_back(piece);
  };
  for (size_t i = 0; i < sql.size();) {
    size_t n = SkipOpaque(sql, i);
    if (n) {
      i += n;
      continue;
    }
    if (sql[i] == ';') {
      push(i);
      start = i + 1;
    }
    ++i;
  }
  push(sql.size());
  return out;
}

std::vector<std::string> LeadingKeywords(std::string_view sql, size_t n) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < sql.size() && out.size() < n) {
    size_t skip = SkipOpaque(sql, i);
    if (skip && (sql[i] == '-' || sql[i] == '/')) {
      i += skip;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(sql[i])) || sql[i] == '(') {
      ++i;
      continue;
    }
    if (!IsIdentStart(sql[i])) break;
    size_t j = i;
    while (j < sql.size() && IsIdentChar(sql[j])) ++j;
    std::string w(sql.substr(i, j - i));
    for (char& c : w) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out.push_back(std::move(w));
    i = j;
  }
  return out;
}

std::string RewriteQuery(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  size_t last_literal = std::string::npos;  // where the last string literal starts in `out`
  for (size_t i = 0; i < s.size();) {
    if (size_t n = SkipOpaque(s, i)) {
      if (s[i] == '\'') last_literal = out.size();
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    // psql \d, \dt …: `relname OPERATOR(pg_catalog.~) '^(t)$'` → `relname ~ '^(t)$'`.
    if (MatchWord(s, i, "OPERATOR")) {
      size_t j = SkipSpace(s, i + 8);
      if (j < s.size() && s[j] == '(') {
        size_t close = s.find(')', j);
        if (close != std::string_view::npos) {
          std::string_view op = Trim(s.substr(j + 1, close - j - 1));
          if (StartsWith(op, "pg_catalog.")) op.remove_prefix(11);
          out.append(" ");
          out.append(op);
          out.append(" ");
          i = close + 1;
          continue;
        }
      }
    }
    // psql: `COLLATE pg_catalog.default` (DuckDB collations apply to VARCHAR only).
    if (MatchWord(s, i, "COLLATE")) {
      size_t j = SkipSpace(s, i + 7);
      for (std::string_view c : {"pg_catalog.default", "\"default\"", "pg_catalog.\"default\"", "\"C\""}) {
        if (j + c.size() <= s.size() && EqualsIgnoreCase(s.substr(j, c.size()), c)) {
          i = j + c.size();
          goto next;
        }
      }
    }
    // psql, pgJDBC: `pg_catalog.fn(` → `fn(` so Tarn's compatibility macros (temporary, which
    // DuckDB resolves before its own pg_catalog functions) answer.
    if (MatchWord(s, i, "pg_catalog") && i + 10 < s.size() && s[i + 10] == '.') {
      size_t j = i + 11;
      size_t k = j;
      while (k < s.size() && IsIdentChar(s[k])) ++k;
      if (SkipSpace(s, k) < s.size() && s[SkipSpace(s, k)] == '(' && k > j) {
        i = j;
        continue;
      }
      // pg_database and pg_settings have richer temporary views (see CompatibilityMacros).
      std::string_view rel = s.substr(j, k - j);
      if (EqualsIgnoreCase(rel, "pg_database") || EqualsIgnoreCase(rel, "pg_collation") ||
          EqualsIgnoreCase(rel, "pg_inherits") || EqualsIgnoreCase(rel, "pg_policy") ||
          EqualsIgnoreCase(rel, "pg_publication") || EqualsIgnoreCase(rel, "pg_statistic_ext") ||
          EqualsIgnoreCase(rel, "pg_trigger") || EqualsIgnoreCase(rel, "pg_publication_rel") ||
          EqualsIgnoreCase(rel, "pg_am") || EqualsIgnoreCase(rel, "pg_roles") ||
          EqualsIgnoreCase(rel, "pg_partitioned_table") || EqualsIgnoreCase(rel, "pg_attribute") ||
          EqualsIgnoreCase(rel, "pg_publication_namespace") || EqualsIgnoreCase(rel, "pg_auth_members") ||
          EqualsIgnoreCase(rel, "pg_extension") || EqualsIgnoreCase(rel, "pg_class") ||
          EqualsIgnoreCase(rel, "pg_index") || EqualsIgnoreCase(rel, "pg_constraint") ||
          EqualsIgnoreCase(rel, "pg_type") || EqualsIgnoreCase(rel, "pg_namespace") ||
          EqualsIgnoreCase(rel, "pg_range") || EqualsIgnoreCase(rel, "pg_sequence")) {
        i = j;
        continue;
      }
    }
    // pgJDBC getPrimaryKeys/getIndexInfo: information_schema._pg_expandarray(a) is a set-returning
    // function of (x, n) records; DuckDB's unnest of a list of structs expands the same way,
    // several in one select list in lockstep.
    if (MatchWord(s, i, "information_schema") && EqualsIgnoreCase(s.substr(i + 18, 17), "._pg_expandarray(")) {
      size_t open = i + 34;
      int depth = 0;
      size_t close = open;
      for (; close < s.size(); ++close) {
        if (size_t n = SkipOpaque(s, close)) {
          close += n - 1;
          continue;
        }
        if (s[close] == '(') ++depth;
        if (s[close] == ')' && --depth == 0) break;
      }
      if (close < s.size()) {
        out += "unnest(_pg_expandarray(" + RewriteQuery(s.substr(open + 1, close - open - 1)) + "))";
        i = close + 1;
        continue;
      }
    }
    // psql \d, pgJDBC: 'name'::regclass → the relation's oid; x::regclass/regtype/oid → x.
    if (s[i] == ':' && i + 1 < s.size() && s[i + 1] == ':') {
      size_t j = SkipSpace(s, i + 2);
      // psql \d: `x::pg_catalog.regtype::pg_catalog.text` → DuckDB has no qualified types.
      bool qualified = MatchWord(s, j, "pg_catalog") && j + 10 < s.size() && s[j + 10] == '.';
      if (qualified) j += 11;
      // psql, node-postgres: '\x01ff'::bytea is PostgreSQL's hex input; DuckDB would read
      // "\x01" as one escaped byte and "ff" as text, so every byte is spelled as an escape.
      if (MatchWord(s, j, "bytea") && last_literal != std::string::npos && last_literal < out.size()) {
        std::string_view lit = Trim(std::string_view(out).substr(last_literal));
        bool escape_string = last_literal > 0 && (out[last_literal - 1] == 'E' || out[last_literal - 1] == 'e');
        bool hex = !escape_string && lit.size() >= 4 && lit.size() % 2 == 0 && StartsWith(lit, "'\\x") && lit.back() == '\'';
        for (size_t k = 3; hex && k + 1 < lit.size(); ++k) hex = std::isxdigit(static_cast<unsigned char>(lit[k]));
        if (hex) {
          std::string bytes = "'";
          for (size_t k = 3; k + 1 < lit.size(); k += 2) {
            bytes += "\\x";
            bytes += lit.substr(k, 2);
          }
          bytes += "'::BLOB";
          out.resize(last_literal);
          out += bytes;
          i = j + 5;
          goto next;
        }
      }
      for (std::string_view t : {"regclass", "regtype", "regproc", "regprocedure", "regnamespace", "oid"}) {
        if (MatchWord(s, j, t)) {
          if (last_literal != std::string::npos && last_literal < out.size() &&
              Trim(std::string_view(out).substr(last_literal)).back() == '\'' &&
              out.find_first_not_of(" ", last_literal) == last_literal) {
            std::string lit = out.substr(last_literal);
            out.resize(last_literal);
            if (t == "regclass") {
              out += "(SELECT oid FROM pg_catalog.pg_class WHERE relname = parse_ident_last(" + lit + ") LIMIT 1)";
            } else if (t == "regtype") {
              out += "(SELECT oid FROM pg_catalog.pg_type WHERE typname = " + lit + " LIMIT 1)";
            } else if (t == "regnamespace") {
              out += "(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = " + lit + " LIMIT 1)";
            } else if (t == "oid") {
              out += "CAST(" + lit + " AS BIGINT)";
            } else {
              out += "(SELECT oid FROM pg_catalog.pg_proc WHERE proname = " + lit + " LIMIT 1)";
            }
          } else if (t == "oid") {
            out += "::BIGINT";
          }
          i = j + t.size();
          goto next;
        }
      }
      if (qualified) {
        out += "::";
        i = j;
        continue;
      }
    }
    // SQLAlchemy get_indexes / get_unique_constraints: `a.attnum = ANY(ix.indkey)` over an
    // array column; DuckDB plans ANY(…) as a subquery, which it cannot put in an outer join.
    // `x = ANY(column)` (both plain names) becomes list_contains(column, x).
    if (MatchWord(s, i, "ANY")) {
      size_t open = SkipSpace(s, i + 3);
      size_t close = open < s.size() && s[open] == '(' ? s.find(')', open) : std::string_view::npos;
      std::string_view inner = close == std::string_view::npos ? std::string_view() : Trim(s.substr(open + 1, close - open - 1));
      bool plain = !inner.empty() && !MatchWord(inner, 0, "SELECT") && !MatchWord(inner, 0, "VALUES");
      for (char c : inner) plain = plain && (IsIdentChar(c) || c == '.' || c == '"');
      size_t e = out.size();
      while (e > 0 && std::isspace(static_cast<unsigned char>(out[e - 1]))) --e;
      bool eq = plain && e > 1 && out[e - 1] == '=' && std::string_view("<>!=").find(out[e - 2]) == std::string_view::npos;
      if (eq) {
        size_t l = e - 1;
        while (l > 0 && std::isspace(static_cast<unsigned char>(out[l - 1]))) --l;
        size_t b = l;
        while (b > 0 && (IsIdentChar(out[b - 1]) || out[b - 1] == '.' || out[b - 1] == '"')) --b;
        if (b < l) {
          std::string lhs = out.substr(b, l - b);
          out.resize(b);
          out += "list_contains(" + std::string(inner) + ", " + lhs + ")";
          i = close + 1;
          continue;
        }
      }
    }
    // SQLAlchemy get_indexes: `ix.indkey::varchar` is int2vector's text, numbers separated by
    // spaces (DuckDB would print the list as [1, 2]).
    if ((MatchWord(s, i, "indkey") || MatchWord(s, i, "indoption")) && s.compare(SkipSpace(s, i + (s[i + 3] == 'k' ? 6 : 9)), 2, "::") == 0) {
      size_t w = i + (s[i + 3] == 'k' ? 6 : 9);
      size_t t = SkipSpace(s, SkipSpace(s, w) + 2);
      size_t tl = MatchWord(s, t, "varchar") ? 7 : MatchWord(s, t, "text") ? 4 : 0;
      if (tl) {
        size_t b = out.size();
        while (b > 0 && (IsIdentChar(out[b - 1]) || out[b - 1] == '.')) --b;
        std::string qualifier = out.substr(b);
        out.resize(b);
        out += "array_to_string(" + qualifier + std::string(s.substr(i, w - i)) + ", ' ')";
        i = t + tl;
        continue;
      }
    }
    // SQLAlchemy (identity columns in get_columns): json_build_object is DuckDB's json_object.
    if (MatchWord(s, i, "json_build_object") || MatchWord(s, i, "jsonb_build_object")) {
      out += "json_object";
      i += s[i] == 'j' && (s[i + 4] == 'b') ? 18 : 17;
      continue;
    }
    // psql \d publications footer: `prattrs[s]` indexes by the generate_series alias, which
    // DuckDB binds as a row.
    if (MatchWord(s, i, "prattrs") && s.compare(i, 10, "prattrs[s]") == 0) {
      out += "prattrs[s.generate_series]";
      i += 10;
      continue;
    }
    // psql \d: pg_class columns DuckDB does not have.
    if (MatchWord(s, i, "c") && s.compare(i, 21, "c.relforcerowsecurity") == 0) {
      out += "false";
      i += 21;
      continue;
    }
    if (!IsIdentChar(s[i]) && !std::isspace(static_cast<unsigned char>(s[i]))) last_literal = std::string::npos;
    if (IsIdentChar(s[i])) {
      // Copy a whole word so keyword matches never start mid-identifier.
      size_t j = i;
      while (j < s.size() && IsIdentChar(s[j])) ++j;
      out.append(s.substr(i, j - i));
      last_literal = std::string::npos;
      i = j;
      continue;
    }
    out.push_back(s[i]);
    ++i;
  next:;
  }
  return out;
}

namespace {

// The CREATE INDEX text of index `i` (see pg_get_indexdef below).
std::string IndexDefinition() {
  return "coalesce((SELECT any_value(sql) FROM duckdb_indexes() WHERE index_oid = i), "
         "(SELECT any_value('CREATE UNIQUE INDEX ' || CASE WHEN d.constraint_type = 'PRIMARY KEY' THEN "
         "d.table_name || '_pkey' ELSE d.constraint_name END || ' ON ' || d.schema_name || '.' || d.table_name || "
         "' USING btree (' || array_to_string(d.constraint_column_names, ', ') || ')') FROM duckdb_constraints() d "
         "WHERE d.table_oid * 1000000 + 500000 + d.constraint_index = i))";
}

// PostgreSQL's text of constraint `o` (`PRIMARY KEY (a, b)`; DuckDB's reads `PRIMARY KEY(a, b)`).
std::string ConstraintDefinition() {
  return "(SELECT any_value(CASE WHEN d.constraint_type IN ('PRIMARY KEY', 'UNIQUE') THEN d.constraint_type || "
         "' (' || array_to_string(d.constraint_column_names, ', ') || ')' WHEN d.constraint_type = 'CHECK' THEN "
         "'CHECK (' || d.expression || ')' ELSE d.constraint_text END) FROM duckdb_constraints() d "
         "WHERE d.table_oid * 1000000 + d.constraint_index = o)";
}

}  // namespace

const std::vector<std::string>& CompatibilityMacros() {
  // Temporary macros: per connection, never written into the warehouse file, and resolved
  // before DuckDB's own pg_catalog functions of the same name.
  static const std::vector<std::string> kMacros = {
      // 'a.b' → 'b' for ::regclass lookups (psql passes schema-qualified names).
      "CREATE OR REPLACE TEMP MACRO parse_ident_last(s) AS "
      "regexp_replace(replace(s, '\"', ''), '^.*\\.', '')",
      // psql \l, \dt (Owner column), pgJDBC getTables.
      "CREATE OR REPLACE TEMP MACRO pg_get_userbyid(id) AS getvariable('tarn_pg_user')",
      // psql \l.
      "CREATE OR REPLACE TEMP MACRO pg_encoding_to_char(e) AS 'UTF8'",
      // psql \d (DuckDB's own maps OIDs to DuckDB names).
      "CREATE OR REPLACE TEMP MACRO format_type(t, m) AS CASE t "
      "WHEN 16 THEN 'boolean' WHEN 17 THEN 'bytea' WHEN 20 THEN 'bigint' WHEN 21 THEN 'smallint' "
      "WHEN 23 THEN 'integer' WHEN 25 THEN 'text' WHEN 700 THEN 'real' WHEN 701 THEN 'double precision' "
      "WHEN 1043 THEN 'character varying' WHEN 1082 THEN 'date' WHEN 1083 THEN 'time without time zone' "
      "WHEN 1114 THEN 'timestamp without time zone' WHEN 1184 THEN 'timestamp with time zone' "
      "WHEN 1186 THEN 'interval' WHEN 2950 THEN 'uuid' WHEN 114 THEN 'json' WHEN 3802 THEN 'jsonb' "
      "WHEN 1700 THEN CASE WHEN m IS NULL OR m < 4 THEN 'numeric' ELSE "
      "'numeric(' || ((m - 4) >> 16) || ',' || ((m - 4) & 65535) || ')' END "
      "ELSE coalesce((SELECT any_value(typname) FROM pg_catalog.pg_type WHERE oid = t), 'unknown') END",
      // psycopg, SQLAlchemy, pgJDBC: the PostgreSQL-style banner some clients parse.
      "CREATE OR REPLACE TEMP MACRO version() AS "
      "'PostgreSQL 15.0 (Tarn warehouse on DuckDB ' || (SELECT library_version FROM pragma_version()) || "
      "') on x86_64-pc-linux-gnu, 64-bit'",
      // SQLAlchemy, Metabase: set_config returns the value (session settings go through SET).
      "CREATE OR REPLACE TEMP MACRO set_config(name, value, is_local) AS value",
      "CREATE OR REPLACE TEMP MACRO pg_backend_pid() AS CAST(getvariable('tarn_pg_pid') AS INTEGER)",
      "CREATE OR REPLACE TEMP MACRO current_schemas(implicit) AS "
      "CASE WHEN implicit THEN ['pg_catalog', current_schema()] ELSE [current_schema()] END",
      // psql \d "Indexes:" (the text after USING), pgJDBC getIndexInfo (column c's name):
      // PostgreSQL's CREATE INDEX text, or the name of the index's c-th key column. Indexes of
      // constraints are those of the pg_index view below; CREATE INDEX ones keep DuckDB's text.
      "CREATE OR REPLACE TEMP MACRO pg_get_indexdef(i) AS " + IndexDefinition() + ", (i, c, p) AS "
      "CASE WHEN c = 0 THEN " + IndexDefinition() + " "
      "ELSE (SELECT any_value(d.constraint_column_names[c]) FROM duckdb_constraints() d "
      "WHERE d.table_oid * 1000000 + 500000 + d.constraint_index = i) END",
      // psql \d footers, pgJDBC: PostgreSQL's spelling (`PRIMARY KEY (a, b)`), not DuckDB's text.
      "CREATE OR REPLACE TEMP MACRO pg_get_constraintdef(o) AS " + ConstraintDefinition() + ", (o, p) AS " +
          ConstraintDefinition(),
      // psql \d passes the pretty flag; DuckDB's own takes two arguments.
      "CREATE OR REPLACE TEMP MACRO pg_get_expr(e, r) AS CAST(e AS VARCHAR), (e, r, p) AS CAST(e AS VARCHAR)",
      // pgJDBC TypeInfoCache, psycopg's type fetch: array bounds of 1-based lists.
      "CREATE OR REPLACE TEMP MACRO array_upper(a, d) AS CASE WHEN d = 1 AND len(a) > 0 THEN len(a) END",
      "CREATE OR REPLACE TEMP MACRO array_lower(a, d) AS CASE WHEN d = 1 AND len(a) > 0 THEN 1 END",
      "CREATE OR REPLACE TEMP MACRO pg_get_function_result(f) AS ''",
      "CREATE OR REPLACE TEMP MACRO pg_get_statisticsobjdef_columns(o) AS ''",
      "CREATE OR REPLACE TEMP MACRO pg_get_triggerdef(o) AS '', (o, p) AS ''",
      "CREATE OR REPLACE TEMP MACRO pg_get_partkeydef(o) AS NULL",
      "CREATE OR REPLACE TEMP MACRO pg_relation_is_publishable(o) AS false",
      "CREATE OR REPLACE TEMP MACRO pg_get_ruledef(o) AS '', (o, p) AS ''",
      "CREATE OR REPLACE TEMP MACRO pg_get_function_arguments(f) AS ''",
      "CREATE OR REPLACE TEMP MACRO pg_get_keywords() AS TABLE "
      "SELECT keyword_name AS word, CASE keyword_category WHEN 'reserved' THEN 'R' WHEN 'unreserved' "
      "THEN 'U' WHEN 'type_function' THEN 'T' ELSE 'C' END AS catcode, keyword_category AS catdesc "
      "FROM duckdb_keywords()",
      // psql \l reads columns DuckDB's pg_database lacks.
      "CREATE OR REPLACE TEMP VIEW pg_database AS SELECT database_oid AS oid, database_name AS datname, "
      "CAST(10 AS BIGINT) AS datdba, 6 AS encoding, 'c' AS datlocprovider, 'C.UTF-8' AS datcollate, "
      "'C.UTF-8' AS datctype, NULL AS daticulocale, NULL AS daticurules, false AS datistemplate, "
      "true AS datallowconn, -1 AS datconnlimit, NULL::VARCHAR[] AS datacl, 0 AS dattablespace "
      "FROM duckdb_databases() WHERE NOT internal",
      // psql \d footers (collations, inheritance, policies, publications, statistics,
      // triggers, access methods): empty, as DuckDB has none of them.
      "CREATE OR REPLACE TEMP VIEW pg_collation AS SELECT 0::BIGINT AS oid, ''::VARCHAR AS collname, "
      "0::BIGINT AS collnamespace WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_inherits AS SELECT 0::BIGINT AS inhrelid, 0::BIGINT AS inhparent, "
      "0 AS inhseqno, false AS inhdetachpending WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_policy AS SELECT 0::BIGINT AS oid, ''::VARCHAR AS polname, "
      "0::BIGINT AS polrelid, '' AS polcmd, true AS polpermissive, []::BIGINT[] AS polroles, NULL AS polqual, "
      "NULL AS polwithcheck WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_publication AS SELECT 0::BIGINT AS oid, ''::VARCHAR AS pubname, "
      "false AS puballtables, false AS pubinsert, false AS pubupdate, false AS pubdelete, "
      "false AS pubtruncate, false AS pubviaroot WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_publication_rel AS SELECT 0::BIGINT AS oid, 0::BIGINT AS prpubid, "
      "0::BIGINT AS prrelid, NULL::VARCHAR AS prqual, NULL::SMALLINT[] AS prattrs WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_statistic_ext AS SELECT 0::BIGINT AS oid, 0::BIGINT AS stxrelid, "
      "''::VARCHAR AS stxname, 0::BIGINT AS stxnamespace, []::VARCHAR[] AS stxkind, 0 AS stxstattarget, "
      "[]::INTEGER[] AS stxkeys, NULL AS stxexprs WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_trigger AS SELECT 0::BIGINT AS oid, 0::BIGINT AS tgrelid, "
      "''::VARCHAR AS tgname, false AS tgisinternal, 0::BIGINT AS tgparentid, '' AS tgenabled WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_roles AS SELECT 10::BIGINT AS oid, CAST(getvariable('tarn_pg_user') AS VARCHAR) AS rolname, "
      "true AS rolsuper, true AS rolinherit, true AS rolcreaterole, true AS rolcreatedb, true AS rolcanlogin, "
      "false AS rolreplication, false AS rolbypassrls, -1 AS rolconnlimit, NULL::TIMESTAMP AS rolvaliduntil",
      // pgJDBC, psycopg (range types), SQLAlchemy (identity columns): none in DuckDB.
      "CREATE OR REPLACE TEMP VIEW pg_range AS SELECT 0::BIGINT AS rngtypid, 0::BIGINT AS rngsubtype, "
      "0::BIGINT AS rngmultitypid, 0::BIGINT AS rngcollation, 0::BIGINT AS rngsubopc, ''::VARCHAR AS rngcanonical, "
      "''::VARCHAR AS rngsubdiff WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_sequence AS SELECT 0::BIGINT AS seqrelid, 0::BIGINT AS seqtypid, "
      "0::BIGINT AS seqstart, 0::BIGINT AS seqincrement, 0::BIGINT AS seqmax, 0::BIGINT AS seqmin, "
      "0::BIGINT AS seqcache, false AS seqcycle WHERE false",
      "CREATE OR REPLACE TEMP MACRO pg_get_serial_sequence(t, c) AS CAST(NULL AS VARCHAR)",
      "CREATE OR REPLACE TEMP VIEW pg_partitioned_table AS SELECT 0::BIGINT AS partrelid, '' AS partstrat, "
      "0 AS partnatts WHERE false",
      "CREATE OR REPLACE TEMP VIEW pg_publication_namespace AS SELECT 0::BIGINT AS oid, 0::BIGINT AS pnpubid, "
      "0::BIGINT AS pnnspid WHERE false",
      // psql \d, pgJDBC getColumns: DuckDB's pg_attribute carries DuckDB type ids in atttypid
      // (INTEGER = 13 …) and width*1000+scale typmods; map them to PostgreSQL's OIDs/typmods.
      "CREATE OR REPLACE TEMP VIEW pg_attribute AS SELECT a.* REPLACE ("
      // JSON and lists are one DuckDB type id each (25, 101): their declared type tells the
      // OID RowDescription uses (types.cc PgTypeFor).
      "CAST(CASE WHEN c.data_type = 'JSON' THEN 114 WHEN c.data_type LIKE '%[]' THEN "
      "CASE regexp_replace(c.data_type, '\\[\\]$', '') WHEN 'BOOLEAN' THEN 1000 WHEN 'BLOB' THEN 1001 "
      "WHEN 'TINYINT' THEN 1005 WHEN 'SMALLINT' THEN 1005 WHEN 'INTEGER' THEN 1007 WHEN 'BIGINT' THEN 1016 "
      "WHEN 'VARCHAR' THEN 1009 WHEN 'FLOAT' THEN 1021 WHEN 'DOUBLE' THEN 1022 WHEN 'DATE' THEN 1182 "
      "WHEN 'TIME' THEN 1183 WHEN 'TIMESTAMP' THEN 1115 WHEN 'TIMESTAMP WITH TIME ZONE' THEN 1185 "
      "WHEN 'INTERVAL' THEN 1187 WHEN 'UUID' THEN 2951 WHEN 'JSON' THEN 199 "
      "ELSE CASE WHEN c.data_type LIKE 'DECIMAL%' THEN 1231 ELSE 25 END END "
      "ELSE CASE atttypid WHEN 10 THEN 16 WHEN 11 THEN 21 WHEN 12 THEN 21 WHEN 13 THEN 23 WHEN 14 THEN 20 "
      "WHEN 15 THEN 1082 WHEN 16 THEN 1083 WHEN 17 THEN 1114 WHEN 18 THEN 1114 WHEN 19 THEN 1114 "
      "WHEN 20 THEN 1114 WHEN 21 THEN 1700 WHEN 22 THEN 700 WHEN 23 THEN 701 WHEN 25 THEN 25 WHEN 26 THEN 17 "
      "WHEN 27 THEN 1186 WHEN 28 THEN 21 WHEN 29 THEN 23 WHEN 30 THEN 20 WHEN 31 THEN 1700 WHEN 32 THEN 1184 "
      "WHEN 34 THEN 1266 WHEN 49 THEN 1700 WHEN 50 THEN 1700 WHEN 54 THEN 2950 WHEN 101 THEN 1009 "
      "ELSE 25 END END AS BIGINT) AS atttypid, "
      "CASE WHEN atttypid = 21 AND atttypmod > 0 THEN "
      "(((atttypmod // 1000) << 16) | (atttypmod % 1000)) + 4 ELSE atttypmod END AS atttypmod) "
      "FROM pg_catalog.pg_attribute a LEFT JOIN duckdb_columns() c "
      "ON c.table_oid = a.attrelid AND c.column_index = a.attnum",
      // pgJDBC TypeInfoCache (getObject of an interval, arrays), psycopg TypeInfo, SQLAlchemy:
      // PostgreSQL's built-in types and their arrays in pg_catalog (DuckDB's pg_type has some of
      // them, in no namespace, without arrays or text/json), then the types of DuckDB's own.
      "CREATE OR REPLACE TEMP VIEW pg_namespace AS SELECT * FROM pg_catalog.pg_namespace UNION ALL BY NAME "
      "SELECT 11::BIGINT AS oid, 'pg_catalog' AS nspname, 10 AS nspowner UNION ALL BY NAME "
      "SELECT 13000::BIGINT AS oid, 'information_schema' AS nspname, 10 AS nspowner",
      "CREATE OR REPLACE TEMP VIEW pg_type AS SELECT CAST(oid AS BIGINT) AS oid, typname, 11::BIGINT AS typnamespace, "
      "10 AS typowner, CAST(typlen AS BIGINT) AS typlen, typlen > 0 AND typlen <= 8 AS typbyval, 'b' AS typtype, "
      "typcategory, false AS typispreferred, true AS typisdefined, ',' AS typdelim, 0 AS typrelid, "
      "typelem, typarray, 0 AS typbasetype, -1 AS typtypmod, 0 AS typndims, false AS typnotnull, "
      "CASE WHEN typcategory = 'S' THEN 100 ELSE 0 END AS typcollation, "
      "CASE WHEN typlen = 8 OR typcategory = 'A' THEN 'd' ELSE 'i' END AS typalign, "
      "CASE WHEN typlen = -1 THEN 'x' ELSE 'p' END AS typstorage FROM (VALUES "
      "(16,'bool',1,'B',0,1000), (1000,'_bool',-1,'A',16,0), (17,'bytea',-1,'U',0,1001), "
      "(1001,'_bytea',-1,'A',17,0), (18,'char',1,'Z',0,1002), (1002,'_char',-1,'A',18,0), "
      "(19,'name',64,'S',0,1003), (1003,'_name',-1,'A',19,0), (20,'int8',8,'N',0,1016), "
      "(1016,'_int8',-1,'A',20,0), (21,'int2',2,'N',0,1005), (1005,'_int2',-1,'A',21,0), "
      "(23,'int4',4,'N',0,1007), (1007,'_int4',-1,'A',23,0), (24,'regproc',4,'N',0,1008), "
      "(1008,'_regproc',-1,'A',24,0), (25,'text',-1,'S',0,1009), (1009,'_text',-1,'A',25,0), "
      "(26,'oid',4,'N',0,1028), (1028,'_oid',-1,'A',26,0), (114,'json',-1,'U',0,199), "
      "(199,'_json',-1,'A',114,0), (700,'float4',4,'N',0,1021), (1021,'_float4',-1,'A',700,0), "
      "(701,'float8',8,'N',0,1022), (1022,'_float8',-1,'A',701,0), "
      "(1042,'bpchar',-1,'S',0,1014), (1014,'_bpchar',-1,'A',1042,0), "
      "(1043,'varchar',-1,'S',0,1015), (1015,'_varchar',-1,'A',1043,0), "
      "(1082,'date',4,'D',0,1182), (1182,'_date',-1,'A',1082,0), (1083,'time',8,'D',0,1183), "
      "(1183,'_time',-1,'A',1083,0), (1114,'timestamp',8,'D',0,1115), "
      "(1115,'_timestamp',-1,'A',1114,0), (1184,'timestamptz',8,'D',0,1185), "
      "(1185,'_timestamptz',-1,'A',1184,0), (1186,'interval',16,'T',0,1187), "
      "(1187,'_interval',-1,'A',1186,0), (1266,'timetz',12,'D',0,1270), "
      "(1270,'_timetz',-1,'A',1266,0), (1560,'bit',-1,'V',0,1561), "
      "(1561,'_bit',-1,'A',1560,0), (1700,'numeric',-1,'N',0,1231), "
      "(1231,'_numeric',-1,'A',1700,0), (2205,'regclass',4,'N',0,2210), "
      "(2210,'_regclass',-1,'A',2205,0), (2206,'regtype',4,'N',0,2211), "
      "(2211,'_regtype',-1,'A',2206,0), (2249,'record',-1,'P',0,2287), "
      "(2287,'_record',-1,'A',2249,0), (2950,'uuid',16,'U',0,2951), "
      "(2951,'_uuid',-1,'A',2950,0), (3802,'jsonb',-1,'U',0,3807), "
      "(3807,'_jsonb',-1,'A',3802,0)) t(oid, typname, typlen, typcategory, typelem, typarray) "
      "UNION ALL BY NAME SELECT * REPLACE (CAST(typdelim AS VARCHAR) AS typdelim) FROM pg_catalog.pg_type d "
      "WHERE d.oid IS NULL OR d.oid NOT IN (16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 114, 700, 701, 1042, 1043, 1082, "
      "1083, 1114, 1184, 1186, 1266, 1560, 1700, 2205, 2206, 2249, 2950, 3802)",
      "CREATE OR REPLACE TEMP VIEW pg_am AS SELECT 2::BIGINT AS oid, 'heap' AS amname, 't' AS amtype "
      "UNION ALL SELECT 403::BIGINT, 'btree', 'i'",
      // psql \d+: reloptions is an array it concatenates and unnests (DuckDB's is untyped NULL).
      // pgJDBC getPrimaryKeys/getIndexInfo, psql \d "Indexes:": PostgreSQL backs every PRIMARY
      // KEY and UNIQUE constraint with an index (a pg_class row of relkind 'i' named
      // <table>_pkey / <constraint name>); DuckDB lists only CREATE INDEX ones, so those of the
      // constraints are added here with oid table_oid * 1000000 + 500000 + constraint_index
      // (DuckDB's own constraint oids are table_oid * 1000000 + constraint_index).
      "CREATE OR REPLACE TEMP VIEW pg_class AS SELECT * REPLACE (CAST(NULL AS VARCHAR[]) AS reloptions) "
      "FROM pg_catalog.pg_class UNION ALL BY NAME "
      "SELECT CAST(table_oid * 1000000 + 500000 + constraint_index AS BIGINT) AS oid, "
      "CASE WHEN constraint_type = 'PRIMARY KEY' THEN table_name || '_pkey' ELSE constraint_name END AS relname, "
      "schema_oid AS relnamespace, 0 AS reltype, 0 AS reloftype, 0 AS relowner, 403 AS relam, 0 AS relfilenode, "
      "0 AS reltablespace, 0 AS relpages, 0 AS reltuples, 0 AS relallvisible, 0 AS reltoastrelid, "
      "false AS relhasindex, false AS relisshared, 'p' AS relpersistence, 'i' AS relkind, "
      "CAST(len(constraint_column_indexes) AS INTEGER) AS relnatts, 0 AS relchecks, false AS relhasrules, "
      "false AS relhastriggers, false AS relhassubclass, false AS relrowsecurity, true AS relispopulated, "
      "false AS relispartition, CAST(NULL AS VARCHAR[]) AS reloptions "
      "FROM duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
      "CREATE OR REPLACE TEMP VIEW pg_index AS SELECT * FROM pg_catalog.pg_index UNION ALL BY NAME "
      "SELECT CAST(table_oid * 1000000 + 500000 + constraint_index AS BIGINT) AS indexrelid, "
      "table_oid AS indrelid, CAST(len(constraint_column_indexes) AS INTEGER) AS indnatts, "
      "CAST(len(constraint_column_indexes) AS INTEGER) AS indnkeyatts, true AS indisunique, "
      "constraint_type = 'PRIMARY KEY' AS indisprimary, false AS indisexclusion, true AS indimmediate, "
      "false AS indisclustered, true AS indisvalid, false AS indcheckxmin, true AS indisready, "
      "true AS indislive, false AS indisreplident, "
      "list_transform(constraint_column_indexes, i -> CAST(i + 1 AS INTEGER)) AS indkey "
      "FROM duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
      // PostgreSQL's constraint names, 1-based conkey and the backing index (DuckDB names a
      // constraint by its text and counts columns from 0).
      "CREATE OR REPLACE TEMP VIEW pg_constraint AS SELECT c.* REPLACE ("
      "CASE WHEN d.constraint_type = 'PRIMARY KEY' THEN d.table_name || '_pkey' ELSE d.constraint_name END AS conname, "
      "list_transform(d.constraint_column_indexes, i -> CAST(i + 1 AS SMALLINT)) AS conkey, "
      "CASE WHEN d.constraint_type IN ('PRIMARY KEY', 'UNIQUE') THEN "
      "CAST(d.table_oid * 1000000 + 500000 + d.constraint_index AS BIGINT) ELSE c.conindid END AS conindid) "
      "FROM pg_catalog.pg_constraint c JOIN duckdb_constraints() d "
      "ON c.oid = d.table_oid * 1000000 + d.constraint_index WHERE d.constraint_type <> 'NOT NULL'",
      // psql \du: role memberships (one role per login, none granted to another).
      "CREATE OR REPLACE TEMP VIEW pg_auth_members AS SELECT 0::BIGINT AS oid, 0::BIGINT AS roleid, "
      "0::BIGINT AS member, 0::BIGINT AS grantor, false AS admin_option WHERE false",
      // psql \dx: DuckDB's loaded built-in extensions.
      "CREATE OR REPLACE TEMP VIEW pg_extension AS SELECT CAST(16000 + row_number() OVER () AS BIGINT) AS oid, "
      "extension_name AS extname, 10::BIGINT AS extowner, "
      "(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'main' LIMIT 1) AS extnamespace, "
      "false AS extrelocatable, extension_version AS extversion, NULL::BIGINT[] AS extconfig, "
      "NULL::VARCHAR[] AS extcondition FROM duckdb_extensions() WHERE loaded",
      // pgJDBC (see RewriteQuery): the (x, n) records of information_schema._pg_expandarray.
      "CREATE OR REPLACE TEMP MACRO _pg_expandarray(a) AS "
      "list_transform(range(1, len(a) + 1), i -> {'x': a[i], 'n': i})",
  };
  return kMacros;
}

}  // namespace tarn::sql::pgwire
