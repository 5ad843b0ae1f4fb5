#include "sql/pgwire/fastpath.h"

#include <cctype>

#include "core/strings.h"

namespace tarn::sql::pgwire {

namespace {

bool IsWordStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

}  // namespace

bool IsConstantSelect(std::string_view s) {
  size_t i = 0;
  auto space = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  auto word = [&]() -> std::string_view {
    size_t b = i;
    if (i < s.size() && IsWordStart(s[i])) {
      while (i < s.size() && IsWordChar(s[i])) ++i;
    }
    return s.substr(b, i - b);
  };
  space();
  if (!EqualsIgnoreCase(word(), "select")) return false;
  for (bool first = true;; first = false) {
    space();
    if (!first) {
      if (i >= s.size() || s[i] != ',') break;
      ++i;
      space();
    }
    if (i >= s.size()) return false;
    // The literal.
    char c = s[i];
    if (c == '\'') {
      for (++i;; ++i) {
        if (i >= s.size()) return false;
        if (s[i] == '\'') {
          if (i + 1 < s.size() && s[i + 1] == '\'') {
            ++i;
            continue;
          }
          ++i;
          break;
        }
      }
    } else if (c == '-' || c == '+' || c == '.' || std::isdigit(static_cast<unsigned char>(c))) {
      if (c == '-' || c == '+') ++i;
      size_t digits = 0;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
      if (i < s.size() && s[i] == '.') {
        ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
      }
      if (digits == 0) return false;
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
        size_t exp = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp;
        if (exp == 0) return false;
      }
      if (i < s.size() && IsWordChar(s[i])) return false;  // 1abc
    } else {
      std::string_view w = word();
      if (!EqualsIgnoreCase(w, "true") && !EqualsIgnoreCase(w, "false") && !EqualsIgnoreCase(w, "null")) return false;
    }
    // An optional alias: [AS] name | [AS] "name".
    space();
    if (i < s.size() && (IsWordStart(s[i]) || s[i] == '"')) {
      size_t save = i;
      std::string_view w = word();
      if (EqualsIgnoreCase(w, "as")) {
        space();
      } else {
        i = save;
      }
      if (i < s.size() && s[i] == '"') {
        size_t e = s.find('"', i + 1);
        if (e == std::string_view::npos || e == i + 1) return false;
        i = e + 1;
      } else {
        std::string_view alias = word();
        if (alias.empty()) return false;
        // Clause keywords are never aliases here: anything after the list is not constant.
        for (const char* k : {"from", "where", "group", "having", "order", "limit", "offset", "union",
                              "except", "intersect", "window", "qualify", "fetch", "into", "as"}) {
          if (EqualsIgnoreCase(alias, k)) return false;
        }
      }
    }
  }
  space();
  while (i < s.size() && s[i] == ';') {
    ++i;
    space();
  }
  return i == s.size();
}

}  // namespace tarn::sql::pgwire
