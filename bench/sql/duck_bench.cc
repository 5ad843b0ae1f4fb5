// The in-process peer of bench/sql's analytic queries: DuckDB alone (the same libduckdb.so
// Tarn embeds), no server, no wire protocol.
//   duck_bench gen FILE ROWS        writes ROWS generated sensor readings to a Parquet FILE
//   duck_bench queries FILE RUNS [CONNINFO]
//       runs the statements of FILE: lines starting with CREATE are set-up (run once,
//       untimed), "--" lines are comments, every other line is a query timed RUNS times.
//       With CONNINFO each query also runs through libpq (binary results, read in full),
//       alternating with the in-process runs so that both see the same machine load.
//       Prints "index duckdb-best-seconds rows [pgwire-best-seconds rows]" per query.
#include <duckdb.h>
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs `sql`, reading every chunk of the result; returns the row count.
long Run(duckdb_connection c, const std::string& sql) {
  duckdb_result r;
  if (duckdb_query(c, sql.c_str(), &r) != DuckDBSuccess) {
    std::fprintf(stderr, "%s: %s\n", sql.c_str(), duckdb_result_error(&r));
    std::exit(1);
  }
  long rows = 0;
  while (duckdb_data_chunk chunk = duckdb_fetch_chunk(r)) {
    rows += static_cast<long>(duckdb_data_chunk_get_size(chunk));
    duckdb_destroy_data_chunk(&chunk);
  }
  duckdb_destroy_result(&r);
  return rows;
}

long RunPg(PGconn* c, const std::string& sql, bool want_rows) {
  PGresult* r = PQexecParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 1);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && (want_rows || st != PGRES_COMMAND_OK)) {
    std::fprintf(stderr, "%s: %s\n", sql.c_str(), PQerrorMessage(c));
    std::exit(1);
  }
  long rows = PQntuples(r);
  PQclear(r);
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: duck_bench gen FILE ROWS | queries FILE [RUNS]\n");
    return 2;
  }
  duckdb_database db;
  duckdb_connection c;
  if (duckdb_open(nullptr, &db) != DuckDBSuccess || duckdb_connect(db, &c) != DuckDBSuccess) return 1;
  std::string mode = argv[1];
  if (mode == "gen") {
    // 10 million rows ≈ 30 days of readings from 1000 devices on 20 sites.
    std::string rows = argv[3];
    Run(c, "COPY (SELECT TIMESTAMP '2024-01-01' + to_milliseconds(range * 259) AS ts, "
           "(hash(range) % 1000)::INTEGER AS device_id, "
           "'site-' || lpad(((hash(range) % 1000) % 20)::VARCHAR, 2, '0') AS site, "
           "'v1.' || ((hash(range) % 1000) % 7)::VARCHAR AS firmware, "
           "round(20 + 10 * sin(range / 50000.0) + (hash(range * 3) % 1000) / 100.0, 2) AS temperature, "
           "round(40 + (hash(range * 5) % 4000) / 100.0, 2) AS humidity, "
           "round(1000 + (hash(range * 7) % 500) / 10.0, 1) AS pressure, "
           "round(100 - (range % 100000) / 1000.0, 3) AS battery, "
           "CASE WHEN hash(range * 11) % 100 < 95 THEN 'ok' WHEN hash(range * 11) % 100 < 99 THEN 'warn' "
           "ELSE 'error' END AS status "
           "FROM range(" + rows + ")) TO '" + argv[2] + "' (FORMAT PARQUET, ROW_GROUP_SIZE 122880)");
    return 0;
  }
  if (mode == "queries") {
    std::ifstream f(argv[2]);
    int runs = std::atoi(argv[3]);
    PGconn* pg = nullptr;
    if (argc > 4) {
      pg = PQconnectdb(argv[4]);
      if (PQstatus(pg) != CONNECTION_OK) {
        std::fprintf(stderr, "connect: %s\n", PQerrorMessage(pg));
        return 1;
      }
    }
    size_t index = 0;
    for (std::string line; std::getline(f, line);) {
      if (line.empty() || line.rfind("--", 0) == 0) continue;
      if (line.rfind("CREATE", 0) == 0) {
        Run(c, line);
        if (pg) RunPg(pg, line, false);
        continue;
      }
      double best = 1e30, pg_best = 1e30;
      long rows = 0, pg_rows = 0;
      for (int run = 0; run < runs; ++run) {
        double start = Now();
        rows = Run(c, line);
        double el = Now() - start;
        if (el < best) best = el;
        if (!pg) continue;
        start = Now();
        pg_rows = RunPg(pg, line, true);
        el = Now() - start;
        if (el < pg_best) pg_best = el;
      }
      if (pg) {
        std::printf("%zu %.4f %ld %.4f %ld\n", ++index, best, rows, pg_best, pg_rows);
      } else {
        std::printf("%zu %.4f %ld\n", ++index, best, rows);
      }
      std::fflush(stdout);
    }
    if (pg) PQfinish(pg);
  }
  duckdb_disconnect(&c);
  duckdb_close(&db);
  return 0;
}
