#include "sql/pgwire/server.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "core/crypto.h"
#include "core/log.h"
#include "net/socket_server.h"
#include "sql/pgwire/rewrite.h"
#include "sql/pgwire/session.h"

namespace tarn::sql::pgwire {

struct PgServer::Impl : public SessionHost {
  PgServerOptions options;
  Database* db = nullptr;
  VerifierLookup lookup;
  std::shared_ptr<net::TlsServerContext> tls;
  std::unique_ptr<net::SocketServer> server;

  std::mutex mu;
  std::map<int32_t, Session*> sessions;  // guarded by mu; by backend pid
  std::map<std::string, size_t> user_sessions;  // guarded by mu; live sessions per login
  std::map<std::string, size_t> user_queries;   // guarded by mu; running statements per login
  int32_t next_pid = 1000;               // guarded by mu
  bool stopping = false;                 // guarded by mu
  std::condition_variable cv;
  std::thread watchdog;
  // Warm DuckDB connections with the compatibility macros installed (10-20 ms of DuckDB work
  // each), made ahead by the refiller so that a new session does not wait for them.
  static constexpr size_t kWarmConnections = 2;
  std::vector<std::unique_ptr<Connection>> warm;  // guarded by mu
  std::condition_variable refill_cv;
  std::thread refiller;

  static Result<std::unique_ptr<Connection>> NewConnection(Database* db) {
    ASSIGN_OR_RETURN(std::unique_ptr<Connection> c, db->Connect());
    for (const std::string& m : CompatibilityMacros()) {
      Status st = c->Execute(m);
      if (!st.ok()) TLOG_WARN("sql", "compatibility macro failed: {}", st.message());
    }
    return c;
  }

  void Refill() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      if (warm.size() >= kWarmConnections) {
        refill_cv.wait(lock);
        continue;
      }
      lock.unlock();
      auto c = NewConnection(db);
      lock.lock();
      if (!c.ok()) {
        TLOG_WARN("sql", "cannot open a warehouse connection: {}", c.status().message());
        refill_cv.wait_for(lock, std::chrono::seconds(1));
        continue;
      }
      if (!stopping) warm.push_back(std::move(*c));
    }
  }

  // SessionHost
  Database* database() override { return db; }
  Result<std::unique_ptr<Connection>> TakeConnection() override {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!warm.empty()) {
        auto c = std::move(warm.back());
        warm.pop_back();
        refill_cv.notify_one();
        return c;
      }
    }
    refill_cv.notify_one();
    return NewConnection(db);
  }
  const std::string& database_name() override { return options.database_name; }
  const net::TlsServerContext* tls_context() override { return tls.get(); }
  Result<std::optional<std::string>> LookupVerifier(const std::string& user) override { return lookup(user); }
  std::unique_ptr<StatementHooks> NewHooks(const SessionInfo& info) override {
    return options.hooks ? options.hooks(info) : nullptr;
  }

  int32_t Register(Session* s) override {
    std::lock_guard<std::mutex> lock(mu);
    int32_t pid = next_pid++;
    sessions[pid] = s;
    return pid;
  }
  void Unregister(int32_t pid) override {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(pid);
  }
  void Cancel(int32_t pid, int32_t secret) override {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sessions.find(pid);
    // §55.2.7: a cancel with the wrong key is ignored silently.
    if (it != sessions.end() && it->second->secret() == secret) it->second->Cancel(false);
  }

  // A login's limit: its sql.users override when it has one, else the default.
  int64_t UserLimit(const std::string& user, int64_t SqlConfig::UserLimits::*field, int64_t fallback) const {
    auto it = options.users.find(user);
    if (it == options.users.end() || it->second.*field < 0) return fallback;
    return it->second.*field;
  }

  Status AdmitSession(const std::string& user) override {
    std::lock_guard<std::mutex> lock(mu);
    size_t& n = user_sessions[user];
    int64_t limit = UserLimit(user, &SqlConfig::UserLimits::max_connections,
                              static_cast<int64_t>(options.max_connections_per_user));
    if (limit > 0 && n >= static_cast<size_t>(limit)) {
      return Error(ErrorCode::kSqlTooManyConnections, "too many connections for role \"" + user + "\"");
    }
    ++n;
    return Status::OK();
  }
  void EndSession(const std::string& user) override {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = user_sessions.find(user); it != user_sessions.end() && --it->second == 0) user_sessions.erase(it);
  }
  Status AdmitQuery(const std::string& user) override {
    std::lock_guard<std::mutex> lock(mu);
    size_t& n = user_queries[user];
    int64_t limit = UserLimit(user, &SqlConfig::UserLimits::max_queries,
                              static_cast<int64_t>(options.max_queries_per_user));
    if (limit > 0 && n >= static_cast<size_t>(limit)) {
      bool own = options.users.count(user) && options.users.at(user).max_queries >= 0;
      return Error(ErrorCode::kSqlConfigurationLimitExceeded,
                   "too many concurrent queries for role \"" + user + "\" (" +
                       (own ? "sql.users." + user + ".max_queries" : std::string("sql.max_queries_per_user")) +
                       " = " + std::to_string(limit) + ")");
    }
    ++n;
    return Status::OK();
  }
  void EndQuery(const std::string& user) override {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = user_queries.find(user); it != user_queries.end() && --it->second == 0) user_queries.erase(it);
  }
  int64_t max_statement_timeout_ms(const std::string& user) override {
    return UserLimit(user, &SqlConfig::UserLimits::statement_timeout_ms, 0);
  }
  int64_t default_statement_timeout_ms(const std::string& user) override {
    return UserLimit(user, &SqlConfig::UserLimits::statement_timeout_ms, options.statement_timeout_ms);
  }

  // Enforces statement_timeout: a session's deadline passes → interrupt it (57014).
  void Watchdog() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      cv.wait_for(lock, std::chrono::milliseconds(20));
      int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
      for (auto& [pid, s] : sessions) {
        int64_t d = s->deadline_ms();
        if (d > 0 && now >= d) s->Cancel(true);
      }
    }
  }
};

Result<std::unique_ptr<PgServer>> PgServer::Start(const PgServerOptions& options, Database* db, VerifierLookup lookup) {
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->db = db;
  impl->lookup = std::move(lookup);
  if (!options.tls.cert_file.empty()) {
    ASSIGN_OR_RETURN(impl->tls, net::TlsServerContext::FromFiles(options.tls.cert_file, options.tls.key_file));
  } else if (!options.keys_dir.empty()) {
    ASSIGN_OR_RETURN(impl->tls, net::TlsServerContext::SelfSigned(options.keys_dir, "sql-tls"));
  }
  net::SocketServerOptions so;
  so.name = "sql";
  so.listen = options.listen;
  so.max_connections = options.max_connections;
  std::weak_ptr<Impl> weak = impl;
  ASSIGN_OR_RETURN(impl->server, net::SocketServer::Start(so, [weak](net::Socket& socket, bool over_limit) {
                     auto self = weak.lock();
                     if (!self) return;
                     Session session(self.get(), &socket);
                     session.Run(over_limit);
                   }));
  impl->watchdog = std::thread([raw = impl.get()] { raw->Watchdog(); });
  impl->refiller = std::thread([raw = impl.get()] { raw->Refill(); });
  std::unique_ptr<PgServer> out(new PgServer());
  out->impl_ = impl;
  return out;
}

PgServer::~PgServer() { Stop(); }

std::string PgServer::address() const { return impl_->server->address(); }

void PgServer::Stop() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
    for (auto& [pid, s] : impl_->sessions) s->Cancel(false);
  }
  impl_->cv.notify_all();
  impl_->refill_cv.notify_all();
  if (impl_->watchdog.joinable()) impl_->watchdog.join();
  if (impl_->refiller.joinable()) impl_->refiller.join();
  impl_->server->Stop();
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->warm.clear();
}

}  // namespace tarn::sql::pgwire
