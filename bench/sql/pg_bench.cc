// libpq client for bench/sql: the same loops against Tarn and PostgreSQL.
//   pg_bench CONNINFO select1 SECONDS [SQL]  prepared "SELECT 1" (or SQL) round trips, extended protocol
//   pg_bench CONNINFO stream QUERY           rows/s of a binary-format result in single-row mode
//   pg_bench CONNINFO fetch QUERY [BATCH]    rows/s through a binary cursor, FETCH BATCH rows at a time
//   pg_bench CONNINFO copy QUERY             rows/s of COPY (QUERY) TO STDOUT (FORMAT binary), every
//                                            tuple walked field by field (PQgetCopyData)
//   pg_bench CONNINFO queries FILE [RUNS]    each query of FILE (one a line; CREATE lines are
//                                            untimed set-up) RUNS times; best time per query,
//                                            binary results read in full
// With BENCH_SERVER_PID set (a process id, or "backend" for pg_backend_pid()), every mode
// also prints the server's CPU seconds spent during the loop (from /proc/PID/stat): on a
// shared machine the CPU cost per query or row is steadier than wall-clock rates.
#include <libpq-fe.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void Die(PGconn* c, const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, PQerrorMessage(c));
  std::exit(1);
}

int server_pid = 0;

// utime + stime of a process (all its threads), in seconds.
double ServerCpu() {
  if (!server_pid) return 0;
  std::ifstream f("/proc/" + std::to_string(server_pid) + "/stat");
  std::string line;
  std::getline(f, line);
  size_t p = line.rfind(')');
  if (p == std::string::npos) return 0;
  std::istringstream in(line.substr(p + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::atol(field.c_str());
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// This process's CPU seconds (user + system).
double ClientCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void Exec(PGconn* c, const char* sql) {
  PGresult* r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) Die(c, sql);
  PQclear(r);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: pg_bench CONNINFO select1 SECONDS [SQL] | stream QUERY | fetch QUERY [BATCH] | copy QUERY | "
                         "queries FILE [RUNS]\n");
    return 2;
  }
  PGconn* c = PQconnectdb(argv[1]);
  if (PQstatus(c) != CONNECTION_OK) Die(c, "connect");
  if (const char* sp = std::getenv("BENCH_SERVER_PID")) {
    if (std::strcmp(sp, "backend") == 0) {
      PGresult* r = PQexec(c, "select pg_backend_pid()");
      server_pid = std::atoi(PQgetvalue(r, 0, 0));
      PQclear(r);
    } else {
      server_pid = std::atoi(sp);
    }
  }
  std::string mode = argv[2];
  if (mode == "select1") {
    double seconds = std::atof(argv[3]);
    const char* sql = argc > 4 ? argv[4] : "SELECT 1";
    PGresult* p = PQprepare(c, "s1", sql, 0, nullptr);
    if (PQresultStatus(p) != PGRES_COMMAND_OK) Die(c, "prepare");
    PQclear(p);
    long n = 0;
    double cpu0 = ServerCpu();
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
    double cpu = ServerCpu() - cpu0;
    // queries/s, µs per query, server CPU µs per query
    std::printf("%.0f %.2f %.2f\n", n / el, el / n * 1e6, cpu / n * 1e6);
  } else if (mode == "stream") {
    double cpu0 = ServerCpu(), client0 = ClientCpu();
    double start = Now();
    if (!PQsendQueryParams(c, argv[3], 0, nullptr, nullptr, nullptr, nullptr, 1)) Die(c, "send");
    if (!PQsetSingleRowMode(c)) Die(c, "single-row mode");
    long rows = 0;
    while (PGresult* r = PQgetResult(c)) {
      ExecStatusType st = PQresultStatus(r);
      if (st == PGRES_SINGLE_TUPLE) {
        ++rows;
      } else if (st != PGRES_TUPLES_OK) {
        Die(c, "stream");
      }
      PQclear(r);
    }
    double el = Now() - start;
    double cpu = ServerCpu() - cpu0, client = ClientCpu() - client0;
    // rows, rows/s, seconds, server CPU ns per row, client CPU ns per row
    std::printf("%ld %.0f %.2f %.1f %.1f\n", rows, rows / el, el, rows ? cpu / rows * 1e9 : 0.0,
                rows ? client / rows * 1e9 : 0.0);
  } else if (mode == "fetch") {
    long batch = argc > 4 ? std::atol(argv[4]) : 10000;
    std::string fetch = "FETCH FORWARD " + std::to_string(batch) + " FROM bench_cursor";
    double cpu0 = ServerCpu(), client0 = ClientCpu();
    double start = Now();
    Exec(c, "BEGIN");
    Exec(c, (std::string("DECLARE bench_cursor BINARY CURSOR FOR ") + argv[3]).c_str());
    long rows = 0;
    for (;;) {
      PGresult* r = PQexec(c, fetch.c_str());
      if (PQresultStatus(r) != PGRES_TUPLES_OK) Die(c, "fetch");
      long n = PQntuples(r);
      PQclear(r);
      rows += n;
      if (n < batch) break;
    }
    Exec(c, "CLOSE bench_cursor");
    Exec(c, "COMMIT");
    double el = Now() - start;
    double cpu = ServerCpu() - cpu0, client = ClientCpu() - client0;
    std::printf("%ld %.0f %.2f %.1f %.1f\n", rows, rows / el, el, rows ? cpu / rows * 1e9 : 0.0,
                rows ? client / rows * 1e9 : 0.0);
  } else if (mode == "copy") {
    double cpu0 = ServerCpu(), client0 = ClientCpu();
    double start = Now();
    std::string sql = std::string("COPY (") + argv[3] + ") TO STDOUT (FORMAT binary)";
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_COPY_OUT) Die(c, "copy");
    PQclear(r);
    // Binary COPY: an 11-byte signature, flags and header extension, then tuples (int16 field
    // count, each field an int32 length and its bytes), ended by a count of -1. Messages may
    // hold several tuples or part of one, so bytes are parsed from a carry buffer.
    std::string buf;
    size_t pos = 19;
    long rows = 0;
    bool ended = false;
    auto be16 = [](const char* p) { return int16_t((uint8_t(p[0]) << 8) | uint8_t(p[1])); };
    auto be32 = [](const char* p) {
      return int32_t((uint32_t(uint8_t(p[0])) << 24) | (uint32_t(uint8_t(p[1])) << 16) |
                     (uint32_t(uint8_t(p[2])) << 8) | uint32_t(uint8_t(p[3])));
    };
    for (;;) {
      char* data = nullptr;
      int n = PQgetCopyData(c, &data, 0);
      if (n == -1) break;
      if (n < 0) Die(c, "copy data");
      buf.append(data, size_t(n));
      PQfreemem(data);
      while (!ended) {
        if (buf.size() < pos + 2) break;
        int16_t fields = be16(buf.data() + pos);
        if (fields < 0) {
          ended = true;
          break;
        }
        size_t p = pos + 2;
        bool whole = true;
        for (int f = 0; f < fields; ++f) {
          if (buf.size() < p + 4) { whole = false; break; }
          int32_t len = be32(buf.data() + p);
          p += 4 + (len > 0 ? size_t(len) : 0);
          if (buf.size() < p) { whole = false; break; }
        }
        if (!whole) break;
        ++rows;
        pos = p;
      }
      if (pos > (1 << 20)) {
        buf.erase(0, pos);
        pos = 0;
      }
    }
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) Die(c, "copy end");
    PQclear(r);
    double el = Now() - start;
    double cpu = ServerCpu() - cpu0, client = ClientCpu() - client0;
    std::printf("%ld %.0f %.2f %.1f %.1f\n", rows, rows / el, el, rows ? cpu / rows * 1e9 : 0.0,
                rows ? client / rows * 1e9 : 0.0);
  } else if (mode == "queries") {
    std::ifstream f(argv[3]);
    int runs = argc > 4 ? std::atoi(argv[4]) : 3;
    std::vector<std::string> queries;
    for (std::string line; std::getline(f, line);) {
      if (line.empty() || line.rfind("--", 0) == 0) continue;
      if (line.rfind("CREATE", 0) == 0) {
        Exec(c, line.c_str());  // set-up, untimed
        continue;
      }
      queries.push_back(line);
    }
    // One line per query: index, best seconds, rows.
    for (size_t q = 0; q < queries.size(); ++q) {
      double best = 1e30;
      long rows = 0;
      for (int run = 0; run < runs; ++run) {
        double start = Now();
        PGresult* r = PQexecParams(c, queries[q].c_str(), 0, nullptr, nullptr, nullptr, nullptr, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) Die(c, queries[q].c_str());
        rows = PQntuples(r);
        PQclear(r);
        double el = Now() - start;
        if (el < best) best = el;
      }
      std::printf("%zu %.4f %ld\n", q + 1, best, rows);
      std::fflush(stdout);
    }
  }
  PQfinish(c);
  return 0;
}
