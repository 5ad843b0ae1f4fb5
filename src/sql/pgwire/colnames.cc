#include "sql/pgwire/colnames.h"

#include <cctype>
#include <set>

#include "core/strings.h"

namespace tarn::sql::pgwire {

namespace {

enum class Tok { kIdent, kQuotedIdent, kString, kNumber, kParam, kOp, kOpen, kClose, kComma, kDot, kCast };

struct Token {
  Tok kind;
  std::string text;  // identifiers lower-cased (quoted ones as written); '(' '[' ')' ']' for groups
  size_t match = 0;  // kOpen: index of its kClose
};

bool IdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80); }
bool IdentChar(char c) { return IdentStart(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$'; }

// Tokens of the first statement of `s`; false when it cannot be tokenized (unbalanced, …).
bool Tokenize(std::string_view s, std::vector<Token>* out) {
  std::vector<size_t> open;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      size_t e = s.find("*/", i + 2);
      if (e == std::string_view::npos) return false;
      i = e + 2;
    } else if (c == '\'' || ((c == 'E' || c == 'e') && i + 1 < s.size() && s[i + 1] == '\'')) {
      bool escapes = c != '\'';
      size_t j = escapes ? i + 2 : i + 1;
      for (;; ++j) {
        if (j >= s.size()) return false;
        if (escapes && s[j] == '\\') {
          ++j;
          continue;
        }
        if (s[j] == '\'') {
          if (j + 1 < s.size() && s[j + 1] == '\'') {
            ++j;
            continue;
          }
          break;
        }
      }
      out->push_back({Tok::kString, "", 0});
      i = j + 1;
    } else if (c == '"') {
      std::string name;
      size_t j = i + 1;
      for (;; ++j) {
        if (j >= s.size()) return false;
        if (s[j] == '"') {
          if (j + 1 < s.size() && s[j + 1] == '"') {
            name.push_back('"');
            ++j;
            continue;
          }
          break;
        }
        name.push_back(s[j]);
      }
      out->push_back({Tok::kQuotedIdent, name, 0});
      i = j + 1;
    } else if (c == '$') {
      size_t j = i + 1;
      if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        out->push_back({Tok::kParam, "", 0});
        i = j;
        continue;
      }
      while (j < s.size() && IdentChar(s[j]) && s[j] != '$') ++j;
      if (j >= s.size() || s[j] != '$') return false;
      std::string_view tag = s.substr(i, j - i + 1);
      size_t e = s.find(tag, j + 1);
      if (e == std::string_view::npos) return false;
      out->push_back({Tok::kString, "", 0});
      i = e + tag.size();
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == '_')) {
        if ((s[j] == 'e' || s[j] == 'E') && j + 1 < s.size() && (s[j + 1] == '+' || s[j + 1] == '-')) ++j;
        ++j;
      }
      out->push_back({Tok::kNumber, "", 0});
      i = j;
    } else if (IdentStart(c)) {
      size_t j = i;
      while (j < s.size() && IdentChar(s[j])) ++j;
      out->push_back({Tok::kIdent, ToLower(s.substr(i, j - i)), 0});
      i = j;
    } else if (c == '(' || c == '[') {
      open.push_back(out->size());
      out->push_back({Tok::kOpen, std::string(1, c), 0});
      ++i;
    } else if (c == ')' || c == ']') {
      if (open.empty()) return false;
      (*out)[open.back()].match = out->size();
      open.pop_back();
      out->push_back({Tok::kClose, std::string(1, c), 0});
      ++i;
    } else if (c == ',') {
      out->push_back({Tok::kComma, ",", 0});
      ++i;
    } else if (c == ':' && i + 1 < s.size() && s[i + 1] == ':') {
      out->push_back({Tok::kCast, "::", 0});
      i += 2;
    } else if (c == '.') {
      out->push_back({Tok::kDot, ".", 0});
      ++i;
    } else if (c == ';') {
      break;
    } else {
      size_t j = i;
      while (j < s.size() && std::string_view("+-*/<>=~!@#%^&|`?:").find(s[j]) != std::string_view::npos) {
        if (j > i && s[j] == '-' && j + 1 < s.size() && s[j + 1] == '-') break;
        ++j;
      }
      if (j == i) return false;
      out->push_back({Tok::kOp, std::string(s.substr(i, j - i)), 0});
      i = j;
    }
  }
  return open.empty();
}

bool IsWord(const Token& t, std::string_view w) { return t.kind == Tok::kIdent && t.text == w; }

// The name PostgreSQL's grammar gives a type as written (the last element of its name).
std::string TypeName(const std::vector<std::string>& words) {
  if (words.empty()) return "?column?";
  std::string all = Join(words, " ");
  const std::string& last = words.back();
  if (all == "double precision" || last == "float8" || last == "float") return "float8";
  if (all == "character varying" || last == "varchar") return "varchar";
  if (all == "bit varying" || last == "varbit") return "varbit";
  if (StartsWith(all, "timestamp with time zone") || last == "timestamptz") return "timestamptz";
  if (StartsWith(all, "time with time zone") || last == "timetz") return "timetz";
  if (StartsWith(all, "timestamp")) return "timestamp";
  if (StartsWith(all, "time")) return "time";
  if (last == "int" || last == "integer" || last == "int4") return "int4";
  if (last == "smallint" || last == "int2") return "int2";
  if (last == "bigint" || last == "int8") return "int8";
  if (last == "real" || last == "float4") return "float4";
  if (last == "boolean" || last == "bool") return "bool";
  if (last == "decimal" || last == "numeric") return "numeric";
  if (last == "char" || last == "character" || last == "bpchar") return "bpchar";
  return last;
}

struct Named {
  std::string name;
  int strength = 0;  // PostgreSQL's: 0 none ("?column?"), 1 weak (a type's or "case"), 2 strong
};

class Figure {
 public:
  explicit Figure(const std::vector<Token>& t) : t_(t) {}

  // The select list's items of the SELECT starting at `at`; nullopt on `*` or anything odd.
  std::optional<std::vector<PgColumnName>> SelectList(size_t at, size_t end) {
    size_t i = at;
    // WITH …: the main SELECT is the first one outside parentheses.
    if (i < end && IsWord(t_[i], "with")) {
      while (i < end && !IsWord(t_[i], "select")) i = Skip(i);
    }
    if (i >= end || !IsWord(t_[i], "select")) return std::nullopt;
    ++i;
    if (i < end && IsWord(t_[i], "all")) ++i;
    if (i < end && IsWord(t_[i], "distinct")) {
      ++i;
      if (i < end && IsWord(t_[i], "on") && i + 1 < end && t_[i + 1].kind == Tok::kOpen) i = t_[i + 1].match + 1;
    }
    static const std::set<std::string> kEnd = {"from", "where", "group", "having", "window", "order", "limit",
                                               "offset", "union", "intersect", "except", "fetch", "for", "into"};
    std::vector<PgColumnName> out;
    size_t item = i;
    for (;; i = Skip(i)) {
      bool last = i >= end || (t_[i].kind == Tok::kIdent && kEnd.count(t_[i].text));
      if (last || t_[i].kind == Tok::kComma) {
        auto named = Item(item, i);
        if (!named) return std::nullopt;
        out.push_back(*named);
        if (last) break;
        item = i + 1;
      }
    }
    return out;
  }

 private:
  // The index after the token or group at i.
  size_t Skip(size_t i) const { return t_[i].kind == Tok::kOpen ? t_[i].match + 1 : i + 1; }

  std::optional<PgColumnName> Item(size_t b, size_t e) {
    if (b >= e) return std::nullopt;
    const Token& last = t_[e - 1];
    if (last.kind == Tok::kOp && last.text == "*" && (e - b == 1 || t_[e - 2].kind == Tok::kDot)) {
      return std::nullopt;  // * or t.*
    }
    static const std::set<std::string> kNotAlias = {
        "and", "or", "not", "is", "in", "like", "ilike", "similar", "between", "when", "then", "else", "case",
        "as", "distinct", "from", "to", "at", "escape", "collate", "any", "some", "all", "array", "interval",
        "null", "true", "false", "end", "unknown", "zone", "precision", "varying", "over", "filter", "within"};
    if (e - b >= 3 && IsWord(t_[e - 2], "as") && (last.kind == Tok::kIdent || last.kind == Tok::kQuotedIdent)) {
      return PgColumnName{last.text, true};
    }
    if (e - b >= 2 && (last.kind == Tok::kQuotedIdent || (last.kind == Tok::kIdent && !kNotAlias.count(last.text)))) {
      const Token& prev = t_[e - 2];
      bool ends_expr = prev.kind == Tok::kClose || prev.kind == Tok::kString || prev.kind == Tok::kNumber ||
                       prev.kind == Tok::kParam || prev.kind == Tok::kQuotedIdent ||
                       (prev.kind == Tok::kIdent && !kNotAlias.count(prev.text));
      // `x::double precision`, `… time zone`: such last words are in kNotAlias.
      if (ends_expr) return PgColumnName{last.text, true};
    }
    Named n = Expr(b, e);
    return PgColumnName{n.strength > 0 ? n.name : "?column?", false};
  }

  // Reads a type name starting at i (words, dots, typmods, [] suffixes); returns its end.
  size_t Type(size_t i, size_t e, std::vector<std::string>* words) {
    while (i < e) {
      if (t_[i].kind == Tok::kIdent || t_[i].kind == Tok::kQuotedIdent) {
        words->push_back(t_[i].text);
        ++i;
        // Multi-word names: double precision, character varying, timestamp with time zone …
        while (i < e && t_[i].kind == Tok::kIdent &&
               (t_[i].text == "precision" || t_[i].text == "varying" || t_[i].text == "with" ||
                t_[i].text == "without" || t_[i].text == "time" || t_[i].text == "zone")) {
          words->push_back(t_[i].text);
          ++i;
        }
        if (i < e && t_[i].kind == Tok::kDot) {
          words->clear();
          ++i;
          continue;
        }
      } else {
        break;
      }
      while (i < e && t_[i].kind == Tok::kOpen) i = t_[i].match + 1;  // (p,s) and []
      break;
    }
    return i;
  }

  Named Expr(size_t b, size_t e) {
    size_t i = b;
    Named n = Primary(&i, e);
    // Postfix: ::type, [subscript], (row).field, COLLATE x.
    while (i < e) {
      const Token& t = t_[i];
      if (t.kind == Tok::kCast) {
        std::vector<std::string> words;
        i = Type(i + 1, e, &words);
        if (n.strength <= 1) n = {TypeName(words), 1};
      } else if (t.kind == Tok::kOpen && t.text == "[") {
        i = t.match + 1;
      } else if (t.kind == Tok::kDot && i + 1 < e && (t_[i + 1].kind == Tok::kIdent || t_[i + 1].kind == Tok::kQuotedIdent)) {
        n = {t_[i + 1].text, 2};
        i += 2;
      } else if (IsWord(t, "collate") && i + 1 < e) {
        i += 2;
        while (i + 1 < e && t_[i].kind == Tok::kDot) i += 2;
      } else {
        return {"?column?", 0};  // an operator: PostgreSQL names such columns "?column?"
      }
    }
    return n;
  }

  Named Primary(size_t* pi, size_t e) {
    size_t i = *pi;
    if (i >= e) return {};
    const Token& t = t_[i];
    auto group_after = [&](size_t k) { return k < e && t_[k].kind == Tok::kOpen; };
    if (t.kind == Tok::kOpen && t.text == "(") {
      *pi = t.match + 1;
      size_t b = i + 1, end = t.match;
      if (b < end && (IsWord(t_[b], "select") || IsWord(t_[b], "with"))) {
        auto inner = SelectList(b, end);  // a scalar subquery: named by its column
        if (inner && !inner->empty() && (*inner)[0].name != "?column?") return {(*inner)[0].name, 2};
        return {};
      }
      for (size_t k = b; k < end; k = Skip(k)) {
        if (t_[k].kind == Tok::kComma) return {"row", 2};
      }
      return Expr(b, end);
    }
    if (t.kind == Tok::kString || t.kind == Tok::kNumber || t.kind == Tok::kParam) {
      *pi = i + 1;  // constants and parameters have no name (a cast after them may give one)
      return {};
    }
    if (t.kind != Tok::kIdent && t.kind != Tok::kQuotedIdent) {
      *pi = e;  // a leading operator: "?column?"
      return {};
    }
    if (t.kind == Tok::kIdent) {
      if (t.text == "case") {
        // Named by its ELSE result when that has a name of its own, else "case".
        int depth = 0;
        size_t else_at = 0;
        for (size_t k = i; k < e; k = Skip(k)) {
          if (IsWord(t_[k], "case")) ++depth;
          if (IsWord(t_[k], "else") && depth == 1) else_at = k;
          if (IsWord(t_[k], "end") && --depth == 0) {
            *pi = k + 1;
            if (else_at) {
              Named d = Expr(else_at + 1, k);
              if (d.strength > 1) return d;
            }
            return {"case", 1};
          }
        }
        *pi = e;
        return {};
      }
      if ((t.text == "array" || t.text == "exists" || t.text == "row") && group_after(i + 1)) {
        *pi = t_[i + 1].match + 1;
        return {t.text, 2};
      }
      if (t.text == "cast" && group_after(i + 1)) {
        size_t close = t_[i + 1].match;
        size_t as = close;
        for (size_t k = i + 2; k < close; k = Skip(k)) {
          if (IsWord(t_[k], "as")) as = k;
        }
        *pi = close + 1;
        if (as == close) return {};
        Named inner = Expr(i + 2, as);
        std::vector<std::string> words;
        Type(as + 1, close, &words);
        return inner.strength > 1 ? inner : Named{TypeName(words), 1};
      }
      if (t.text == "true" || t.text == "false") {
        *pi = i + 1;
        return {"bool", 1};
      }
      if (t.text == "null") {
        *pi = i + 1;
        return {};
      }
      // A typed literal: interval '1 day', date '2024-01-01', timestamp with time zone '…'.
      std::vector<std::string> words;
      size_t after = Type(i, e, &words);
      if (after < e && t_[after].kind == Tok::kString && !words.empty()) {
        *pi = after + 1;
        return {TypeName(words), 1};
      }
    }
    // A (qualified) column or function name.
    size_t k = i;
    std::string name = t_[k].text;
    ++k;
    while (k + 1 < e && t_[k].kind == Tok::kDot &&
           (t_[k + 1].kind == Tok::kIdent || t_[k + 1].kind == Tok::kQuotedIdent)) {
      name = t_[k + 1].text;
      k += 2;
    }
    if (group_after(k)) {
      size_t close = t_[k].match;
      if (name == "trim") {
        name = k + 1 < close && IsWord(t_[k + 1], "leading")    ? "ltrim"
               : k + 1 < close && IsWord(t_[k + 1], "trailing") ? "rtrim"
                                                                : "btrim";
      }
      k = close + 1;
      // Aggregate and window decorations.
      while (k < e) {
        if ((IsWord(t_[k], "filter") || IsWord(t_[k], "over")) && group_after(k + 1)) {
          k = t_[k + 1].match + 1;
        } else if (IsWord(t_[k], "over") && k + 1 < e && t_[k + 1].kind == Tok::kIdent) {
          k += 2;
        } else if (IsWord(t_[k], "within") && k + 1 < e && IsWord(t_[k + 1], "group") && group_after(k + 2)) {
          k = t_[k + 2].match + 1;
        } else {
          break;
        }
      }
    }
    *pi = k;
    return {name, 2};
  }

  const std::vector<Token>& t_;
};

}  // namespace

std::optional<std::vector<PgColumnName>> PgColumnNames(std::string_view sql) {
  std::vector<Token> tokens;
  if (!Tokenize(sql, &tokens) || tokens.empty()) return std::nullopt;
  return Figure(tokens).SelectList(0, tokens.size());
}

std::string ReportedColumnName(const std::string& duck, const PgColumnName& pg) {
  if (EqualsIgnoreCase(duck, pg.name)) return pg.aliased ? pg.name : duck;
  // An alias DuckDB reports differently means the list was misread: trust DuckDB.
  return pg.aliased ? duck : pg.name;
}

}  // namespace tarn::sql::pgwire
