// The light query-rewrite layer between PostgreSQL clients and DuckDB: splitting a simple
// Query into statements, recognising the session statements the server answers itself, and
// rewriting PostgreSQL-only syntax that client drivers and psql send in their catalog
// queries. Every rewrite in rewrite.cc names the client that needs it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tarn::sql::pgwire {

// Splits on ';' outside quotes ('…', "…", $tag$…$tag$) and comments; drops empty pieces.
std::vector<std::string> SplitStatements(std::string_view sql);

// Upper-cased leading keywords (up to `n`), skipping comments and whitespace.
std::vector<std::string> LeadingKeywords(std::string_view sql, size_t n);

// Rewrites PostgreSQL catalog syntax into DuckDB's (OPERATOR(pg_catalog.~), ::regclass,
// COLLATE pg_catalog.default, …). Leaves everything inside string literals alone.
std::string RewriteQuery(std::string_view sql);

// SQL run once per database (CREATE OR REPLACE MACRO …) filling the pg_catalog gaps:
// version(), format_type, pg_get_userbyid …
const std::vector<std::string>& CompatibilityMacros();

}  // namespace tarn::sql::pgwire
