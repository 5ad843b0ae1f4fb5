// tarn sql-local: runs SQL on a fresh in-memory embedded DuckDB and prints the result as CSV
// (header row, then rows; NULL as an empty field). A debugging aid — read the Parquet files a
// delivery stream wrote, `read_parquet('<data>/objects/landing/iot/**/*.parquet')` — that needs
// no running server; it is not the SQL endpoint (no catalog, no grants).
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "sql/duckdb/engine.h"

namespace tarn::cli {

namespace {

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

int RunSqlLocal(const std::vector<std::string>& args) {
  if (args.size() != 2 || args[1] == "--help" || args[1] == "-h") {
    std::fprintf(args.size() == 2 ? stdout : stderr,
                 "Usage: tarn sql-local '<SQL>'\n\nRuns the SQL on an in-memory embedded DuckDB "
                 "(parquet and json built in) and prints CSV.\n");
    return args.size() == 2 ? 0 : 2;
  }
  auto db = sql::Database::Open("");
  if (!db.ok()) {
    std::fprintf(stderr, "tarn sql-local: %s\n", db.status().ToString().c_str());
    return 1;
  }
  auto conn = (*db)->Connect();
  if (!conn.ok()) {
    std::fprintf(stderr, "tarn sql-local: %s\n", conn.status().ToString().c_str());
    return 1;
  }
  auto result = (*conn)->Query(args[1]);
  if (!result.ok()) {
    std::fprintf(stderr, "tarn sql-local: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::string header;
  for (size_t i = 0; i < result->column_count(); ++i) {
    if (i) header += ',';
    header += CsvField(result->column_name(i));
  }
  std::printf("%s\n", header.c_str());
  auto rows = result->ToRows();
  if (!rows.ok()) {
    std::fprintf(stderr, "tarn sql-local: %s\n", rows.status().ToString().c_str());
    return 1;
  }
  for (const auto& row : *rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) line += ',';
      if (row[i]) line += CsvField(*row[i]);
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace tarn::cli
