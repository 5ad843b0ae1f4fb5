// Statement hooks: how the lake layer (src/sql/lake/) takes part in a pgwire session without
// the protocol code knowing about catalogs, object stores, IAM or audit. One StatementHooks
// object per session, made by the server's HooksFactory after authentication.
//
// Call order for one statement:
//   Owns(sql)?         → Run(…) executes it instead of DuckDB (UNLOAD, COPY FROM 's3://…' …)
//   BeforePrepare(sql) → may rewrite the text DuckDB prepares and define what it reads; a
//                        returned binding marks a statement to refresh before each execution
//   BeforeExecute(b)   → (extended protocol, at Bind) refresh; true = prepare anew
//   Finished(…)        → once, when the statement completed or failed (audit)
//
// Thread-safety: a StatementHooks belongs to its session's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "sql/duckdb/engine.h"

namespace tarn::sql::pgwire {

struct SessionInfo {
  std::string user;
  std::string peer;  // client address, "ip:port"
  bool tls = false;
  int32_t pid = 0;   // backend pid
};

// Per-statement state kept by the hooks (opaque to the session).
class StatementBinding {
 public:
  virtual ~StatementBinding() = default;
};

class StatementHooks {
 public:
  virtual ~StatementHooks() = default;
  // True when the hooks execute `sql` themselves.
  virtual bool Owns(const std::string& sql) = 0;
  // Executes an owned statement on the session's connection; returns the command tag.
  virtual Result<std::string> Run(Connection& conn, const std::string& sql, bool read_only) = 0;
  // Called with the text DuckDB is about to prepare, which it may rewrite.
  virtual Result<std::shared_ptr<StatementBinding>> BeforePrepare(Connection& conn, std::string* sql) = 0;
  // Before a prepared statement with a binding runs again: true when it must be re-prepared.
  virtual Result<bool> BeforeExecute(Connection& conn, StatementBinding& binding) = 0;
  // A statement finished (rows sent or changed, wall time, outcome).
  virtual void Finished(const std::string& sql, int64_t rows, int64_t duration_us, const Status& result) = 0;
};

using HooksFactory = std::function<std::unique_ptr<StatementHooks>(const SessionInfo& info)>;

}  // namespace tarn::sql::pgwire
