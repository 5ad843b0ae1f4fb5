// One PostgreSQL client session: startup and TLS negotiation, SCRAM authentication, then
// the simple and extended query protocols and COPY over one DuckDB connection
// (PostgreSQL docs chapter 55 "Frontend/Backend Protocol").
//
// Thread-safety: a Session runs on its connection's thread; Cancel() and deadline_ms() may
// be called from others (cancel requests, the statement_timeout watchdog).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "net/socket_server.h"
#include "sql/duckdb/engine.h"
#include "sql/pgwire/fastpath.h"
#include "sql/pgwire/hooks.h"
#include "sql/pgwire/messages.h"

namespace tarn::sql::pgwire {

class Session;

// What a session needs from its server.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual Database* database() = 0;
  // A warehouse connection with the compatibility macros (rewrite.h) installed.
  virtual Result<std::unique_ptr<Connection>> TakeConnection() = 0;
  virtual const std::string& database_name() = 0;
  virtual const net::TlsServerContext* tls_context() = 0;
  virtual Result<std::optional<std::string>> LookupVerifier(const std::string& user) = 0;
  virtual int32_t Register(Session* s) = 0;  // returns the backend pid
  virtual void Unregister(int32_t pid) = 0;
  virtual void Cancel(int32_t pid, int32_t secret) = 0;
  // Per-login limits: a session of `user` starts (53300 when the login has too many) and
  // ends; a statement starts running (53400 when the login runs too many) and ends.
  virtual Status AdmitSession(const std::string& user) = 0;
  virtual void EndSession(const std::string& user) = 0;
  virtual Status AdmitQuery(const std::string& user) = 0;
  virtual void EndQuery(const std::string& user) = 0;
  // The login's default statement_timeout (its sql.users override, else sql.statement_timeout_ms).
  virtual int64_t default_statement_timeout_ms(const std::string& user) = 0;
  // The most statement_timeout a session of `user` may set (its sql.users override); 0 = any.
  virtual int64_t max_statement_timeout_ms(const std::string& user) = 0;
  // The lake layer's hooks for an authenticated session (none by default).
  virtual std::unique_ptr<StatementHooks> NewHooks(const SessionInfo& info) {
    (void)info;
    return nullptr;
  }
};

class Session {
 public:
  Session(SessionHost* host, net::Socket* socket);
  ~Session();
  void Run(bool over_limit);

  int32_t secret() const { return secret_; }
  // Interrupts the running statement, if any (timeout: it ran past statement_timeout).
  void Cancel(bool timeout);
  int64_t deadline_ms() const { return deadline_ms_.load(); }

  struct Statement;
  struct Portal;

 private:
  // Startup phase; false = close the connection.
  bool Startup(bool over_limit);
  bool Authenticate();
  Status ReadMessage(char* type, std::string* body);
  Status Flush();
  void SendError(const Status& s, const std::string& query = {}, const char* severity = "ERROR");
  void SendNotice(const std::string& message, const char* sqlstate, const char* severity = "WARNING");
  void SendParameterStatus();

  // Protocol handlers.
  void SimpleQuery(const std::string& body);
  Status HandleParse(const std::string& body);
  Status HandleBind(const std::string& body);
  Status BindPortal(const std::string& body, std::string* audit_sql);
  Status HandleDescribe(const std::string& body);
  Status HandleExecute(const std::string& body);
  Status HandleClose(const std::string& body);

  Result<std::shared_ptr<Statement>> Prepare(const std::string& sql, std::vector<int32_t> param_types);
  // Runs (part of) a portal: max_rows 0 = all. `suspended` tells whether rows remain.
  Status Execute(Portal& portal, int64_t max_rows, bool describe_in_simple, bool* suspended);
  Status Start(Portal& portal);
  void SendRowDescription(const Portal& portal);
  Status SendRows(Portal& portal, int64_t max_rows, bool* suspended);
  void UseConstantRows(Portal& portal);
  void NameColumns(Statement& st, std::vector<std::string>* names);
  Status RunSessionStatement(Portal& portal);
  Status RunCursorStatement(Portal& portal, bool describe);
  Status CopyOut(Portal& portal);
  Status CopyIn(Portal& portal);
  Status DuckExec(const std::string& sql);
  // A statement's run in DuckDB: holds one of the login's query slots and arms
  // statement_timeout until EndStatement (or until no result is left open).
  Status BeginStatement(bool needs_slot = true);
  void EndStatement();
  Status MapCancel(Status s);
  // Statement hooks (src/sql/lake): owned statements and the audit of finished ones.
  Status RunHookStatement(Portal& portal);
  void Audit(const std::string& sql, int64_t rows, int64_t started_us, const Status& s);

  SessionHost* host_;
  net::Socket* socket_;
  MessageWriter out_;
  std::string in_buf_;
  size_t in_pos_ = 0;

  std::string user_;
  bool admitted_ = false;    // counted by AdmitSession
  bool query_slot_ = false;  // holds an AdmitQuery slot
  int32_t pid_ = 0;
  int32_t secret_ = 0;
  std::unique_ptr<Connection> conn_;
  std::unique_ptr<StatementHooks> hooks_;  // null when the server has none
  std::map<std::string, std::string> settings_;  // PostgreSQL session settings (lower-case names)
  std::map<std::string, std::shared_ptr<Statement>> statements_;
  QueryCache<std::shared_ptr<Statement>> statement_cache_{256};  // by query text (fastpath.h)
  std::map<std::string, std::unique_ptr<Portal>> portals_;
  std::map<std::string, std::unique_ptr<Portal>> cursors_;  // DECLARE … CURSOR (SQL-level)
  bool suppress_rows_ = false;  // MOVE: count rows without sending them
  Portal* streaming_ = nullptr;  // the portal whose DuckDB result is open
  char tx_ = 'I';                // ReadyForQuery status: I idle, T in block, E failed block
  bool tx_read_only_ = false;
  bool skip_until_sync_ = false;
  int64_t statement_timeout_ms_ = 0;
  int64_t max_statement_timeout_ms_ = 0;  // the login's cap (0 = none)

  std::atomic<bool> running_{false};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> timed_out_{false};
  std::atomic<int64_t> deadline_ms_{0};
};

}  // namespace tarn::sql::pgwire
