// A small SQL tokenizer for the lake layer: enough of PostgreSQL's and DuckDB's lexical rules
// (comments, '' / E'' / $tag$ strings, "quoted" identifiers, $n parameters) to find table
// references, Redshift statements (UNLOAD, COPY … FROM 's3://…', CREATE EXTERNAL SCHEMA) and
// file-reading functions without being fooled by text inside strings or comments. It does
// not parse SQL: DuckDB does (json_serialize_sql) where a statement's structure matters.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tarn::sql::lake {

enum class TokenKind {
  kWord,         // bare identifier or keyword; `text` upper-cased, `name` lower-cased
  kQuotedIdent,  // "Quoted" identifier; `text` and `name` are the unquoted name
  kString,       // string literal; `text` is its value (escapes undone)
  kNumber,
  kParam,        // $1, ?
  kSymbol,       // one character, or "::"
};

struct Token {
  TokenKind kind;
  size_t begin = 0;  // byte offsets into the text
  size_t end = 0;
  std::string text;
  std::string name;  // identifiers: the name as DuckDB compares it (lower case)

  bool Is(std::string_view keyword) const { return kind == TokenKind::kWord && text == keyword; }
  bool IsSymbol(char c) const { return kind == TokenKind::kSymbol && text.size() == 1 && text[0] == c; }
  bool IsIdent() const { return kind == TokenKind::kWord || kind == TokenKind::kQuotedIdent; }
};

// Tokens of `sql`; an unterminated string or comment ends the list at that point.
std::vector<Token> Tokenize(std::string_view sql);

// Index of the token starting at byte `offset`, or -1.
int TokenAt(const std::vector<Token>& tokens, size_t offset);

// A qualified name starting at token `i` (a, a.b or a.b.c); returns the parts (lower case)
// and sets *next to the token after it. Empty when token i is not an identifier.
std::vector<std::string> QualifiedName(const std::vector<Token>& tokens, size_t i, size_t* next);

// A SQL string literal ('it''s').
std::string SqlLiteral(std::string_view value);
// A double-quoted SQL identifier ("a""b").
std::string SqlIdent(std::string_view name);

}  // namespace tarn::sql::lake
