// The SQL endpoint: PostgreSQL wire protocol v3 over the DuckDB warehouse (DESIGN.md §4,
// port 5439 like Redshift). One thread and one DuckDB connection per client session.
//
// Thread-safety: PgServer is thread-safe; Stop() interrupts running queries, closes every
// connection and waits for the session threads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/status.h"
#include "sql/duckdb/engine.h"
#include "sql/pgwire/hooks.h"

namespace tarn::sql::pgwire {

struct PgServerOptions {
  ListenAddress listen;
  size_t max_connections = 256;
  std::string database_name = "tarn";
  // TLS for SSLRequest: the configured certificate, else a self-signed one kept under
  // `keys_dir` (sql-tls.crt/.key). Empty keys_dir and no certificate: TLS refused ('N').
  TlsConfig tls;
  std::string keys_dir;
  // Per-login limits (0 = none) and the default statement_timeout (docs/sql.md "Limits").
  size_t max_connections_per_user = 0;  // 53300
  size_t max_queries_per_user = 0;      // 53400
  int64_t statement_timeout_ms = 0;
  // Per-login overrides of the three above (tarn.yaml sql.users; -1 = the default, 0 = none).
  std::map<std::string, SqlConfig::UserLimits> users;
  // Per-session statement hooks (the lake layer: catalog tables, COPY/UNLOAD, audit); none
  // when empty.
  HooksFactory hooks;
};

// Returns the SCRAM verifier ("SCRAM-SHA-256$…") of a SQL login, or nullopt when the user
// does not exist or has no SQL password.
using VerifierLookup = std::function<Result<std::optional<std::string>>(const std::string& user)>;

class PgServer {
 public:
  static Result<std::unique_ptr<PgServer>> Start(const PgServerOptions& options, Database* db,
                                                 VerifierLookup lookup);
  ~PgServer();
  std::string address() const;
  void Stop();

  struct Impl;

 private:
  PgServer() = default;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tarn::sql::pgwire
