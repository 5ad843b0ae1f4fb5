// PostgreSQL's names for result columns. DuckDB names an unaliased expression by its text
// (`count_star()`, `CAST('f' AS BOOLEAN)`, `1`); PostgreSQL names it by what it is
// (`count`, `bool`, `?column?`) and folds unquoted aliases to lower case. Clients see these
// names in RowDescription: psql prints them as headers, drivers key rows by them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tarn::sql::pgwire {

// One target of a SELECT list as PostgreSQL would name it.
struct PgColumnName {
  std::string name;
  bool aliased = false;  // `expr AS name` / `expr name`
};

// The names PostgreSQL gives the columns of `sql`'s top-level SELECT list (after WITH,
// DISTINCT [ON]), following its FigureColname rules (parse_target.c): column and field
// references by their last name, function calls by the function's name, casts by the
// operand's name or else the type's, CASE as "case", ARRAY[…] as "array", scalar subqueries
// by their first column, anything else "?column?". nullopt when the statement is not a plain
// SELECT or its list has a `*` (the count is then unknown).
std::optional<std::vector<PgColumnName>> PgColumnNames(std::string_view sql);

// The name to report for a result column DuckDB calls `duck`, given PostgreSQL's: an alias
// folded to lower case, PostgreSQL's name where DuckDB's is an expression's text, and DuckDB's
// own where the two agree but for case (a column keeps the case it was created with).
std::string ReportedColumnName(const std::string& duck, const PgColumnName& pg);

}  // namespace tarn::sql::pgwire
