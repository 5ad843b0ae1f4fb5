#include "sql/lake/sql_text.h"

#include <cctype>

namespace tarn::sql::lake {

namespace {

bool IdentStart(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }
bool IdentChar(unsigned char c) { return std::isalnum(c) || c == '_' || c == '$' || c >= 0x80; }

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}
std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::vector<Token> Tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (std::isspace(c)) {
      ++i;
      continue;
    }
    if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      size_t e = s.find('\n', i);
      i = e == std::string_view::npos ? n : e + 1;
      continue;
    }
    if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      // PostgreSQL block comments nest.
      int depth = 0;
      size_t j = i;
      while (j < n) {
        if (s[j] == '/' && j + 1 < n && s[j + 1] == '*') {
          ++depth;
          j += 2;
        } else if (s[j] == '*' && j + 1 < n && s[j + 1] == '/') {
          j += 2;
          if (--depth == 0) break;
        } else {
          ++j;
        }
      }
      if (depth != 0) return out;
      i = j;
      continue;
    }
    Token t;
    t.begin = i;
    bool escape_string = (c == 'E' || c == 'e') && i + 1 < n && s[i + 1] == '\'';
    if (c == '\'' || escape_string) {
      size_t j = i + (escape_string ? 2 : 1);
      std::string v;
      bool closed = false;
      while (j < n) {
        char d = s[j];
        if (escape_string && d == '\\' && j + 1 < n) {
          char e = s[j + 1];
          v.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
          j += 2;
          continue;
        }
        if (d == '\'') {
          if (j + 1 < n && s[j + 1] == '\'') {
            v.push_back('\'');
            j += 2;
            continue;
          }
          closed = true;
          ++j;
          break;
        }
        v.push_back(d);
        ++j;
      }
      if (!closed) return out;
      t.kind = TokenKind::kString;
      t.text = std::move(v);
      t.end = j;
      out.push_back(std::move(t));
      i = j;
      continue;
    }
    if (c == '"') {
      size_t j = i + 1;
      std::string v;
      bool closed = false;
      while (j < n) {
        if (s[j] == '"') {
          if (j + 1 < n && s[j + 1] == '"') {
            v.push_back('"');
            j += 2;
            continue;
          }
          closed = true;
          ++j;
          break;
        }
        v.push_back(s[j++]);
      }
      if (!closed) return out;
      t.kind = TokenKind::kQuotedIdent;
      t.text = v;
      t.name = Lower(v);  // DuckDB compares identifiers case-insensitively, quoted or not
      t.end = j;
      out.push_back(std::move(t));
      i = j;
      continue;
    }
    if (c == '$') {
      size_t j = i + 1;
      if (j < n && std::isdigit(static_cast<unsigned char>(s[j]))) {
        while (j < n && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        t.kind = TokenKind::kParam;
        t.text = std::string(s.substr(i, j - i));
        t.end = j;
        out.push_back(std::move(t));
        i = j;
        continue;
      }
      // Dollar quoting: $tag$ … $tag$.
      while (j < n && IdentChar(static_cast<unsigned char>(s[j])) && s[j] != '$') ++j;
      if (j < n && s[j] == '$') {
        std::string_view tag = s.substr(i, j - i + 1);
        size_t close = s.find(tag, j + 1);
        if (close == std::string_view::npos) return out;
        t.kind = TokenKind::kString;
        t.text = std::string(s.substr(j + 1, close - j - 1));
        t.end = close + tag.size();
        i = t.end;
        out.push_back(std::move(t));
        continue;
      }
    }
    if (IdentStart(c)) {
      size_t j = i + 1;
      while (j < n && IdentChar(static_cast<unsigned char>(s[j]))) ++j;
      t.kind = TokenKind::kWord;
      t.text = Upper(s.substr(i, j - i));
      t.name = Lower(s.substr(i, j - i));
      t.end = j;
      out.push_back(std::move(t));
      i = j;
      continue;
    }
    if (std::isdigit(c) || (c == '.' && i + 1 < n && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i;
      while (j < n && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == '_')) {
        // 1.e5 / 1e-5: the sign after an exponent belongs to the number.
        if ((s[j] == 'e' || s[j] == 'E') && j + 1 < n && (s[j + 1] == '-' || s[j + 1] == '+')) ++j;
        ++j;
      }
      t.kind = TokenKind::kNumber;
      t.text = std::string(s.substr(i, j - i));
      t.end = j;
      out.push_back(std::move(t));
      i = j;
      continue;
    }
    if (c == '?') {
      t.kind = TokenKind::kParam;
      t.text = "?";
      t.end = i + 1;
      out.push_back(std::move(t));
      ++i;
      continue;
    }
    t.kind = TokenKind::kSymbol;
    if (c == ':' && i + 1 < n && s[i + 1] == ':') {
      t.text = "::";
      t.end = i + 2;
    } else {
      t.text = std::string(1, static_cast<char>(c));
      t.end = i + 1;
    }
    i = t.end;
    out.push_back(std::move(t));
  }
  return out;
}

int TokenAt(const std::vector<Token>& tokens, size_t offset) {
  size_t lo = 0, hi = tokens.size();
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (tokens[mid].begin < offset) lo = mid + 1;
    else hi = mid;
  }
  if (lo < tokens.size() && tokens[lo].begin == offset) return static_cast<int>(lo);
  return -1;
}

std::vector<std::string> QualifiedName(const std::vector<Token>& tokens, size_t i, size_t* next) {
  std::vector<std::string> parts;
  size_t j = i;
  while (j < tokens.size() && tokens[j].IsIdent()) {
    parts.push_back(tokens[j].name);
    ++j;
    if (j + 1 < tokens.size() && tokens[j].IsSymbol('.') && tokens[j + 1].IsIdent()) {
      ++j;
      continue;
    }
    break;
  }
  *next = j;
  return parts;
}

std::string SqlLiteral(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

std::string SqlIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace tarn::sql::lake
