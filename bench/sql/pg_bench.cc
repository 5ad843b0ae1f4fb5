// libpq client for bench/sql: the same loops against Tarn and PostgreSQL.
//   pg_bench CONNINFO select1 SECONDS   prepared "SELECT 1" round trips (extended protocol)
//   pg_bench CONNINFO stream QUERY      rows/s of a binary-format result in single-row mode
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void Die(PGconn* c, const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, PQerrorMessage(c));
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: pg_bench CONNINFO select1 SECONDS | stream QUERY\n");
    return 2;
  }
  PGconn* c = PQconnectdb(argv[1]);
  if (PQstatus(c) != CONNECTION_OK) Die(c, "connect");
  std::string mode = argv[2];
  if (mode == "select1") {
    double seconds = std::atof(argv[3]);
    PGresult* p = PQprepare(c, "s1", "SELECT 1", 0, nullptr);
    if (PQresultStatus(p) != PGRES_COMMAND_OK) Die(c, "prepare");
    PQclear(p);
    long n = 0;
    double start = Now(), end = start + seconds;
    while (Now() < end) {
      for (int i = 0; i < 100; ++i) {
        PGresult* r = PQexecPrepared(c, "s1", 0, nullptr, nullptr, nullptr, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) Die(c, "execute");
        PQclear(r);
      }
      n += 100;
    }
    double el = Now() - start;
    std::printf("%.0f %.2f\n", n / el, el / n * 1e6);  // queries/s, µs per query
  } else if (mode == "stream") {
    double start = Now();
    if (!PQsendQueryParams(c, argv[3], 0, nullptr, nullptr, nullptr, nullptr, 1)) Die(c, "send");
    if (!PQsetSingleRowMode(c)) Die(c, "single-row mode");
    long rows = 0;
    long bytes = 0;
    while (PGresult* r = PQgetResult(c)) {
      ExecStatusType st = PQresultStatus(r);
      if (st == PGRES_SINGLE_TUPLE) {
        ++rows;
        for (int i = 0; i < PQnfields(r); ++i) bytes += PQgetlength(r, 0, i);
      } else if (st != PGRES_TUPLES_OK) {
        Die(c, "stream");
      }
      PQclear(r);
    }
    double el = Now() - start;
    std::printf("%ld %.0f %.2f\n", rows, rows / el, el);  // rows, rows/s, seconds
    (void)bytes;
  }
  PQfinish(c);
  return 0;
}
