#include "core/meta_store.h"

#include <sqlite3.h>

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>

namespace tarn {

namespace {
std::atomic<uint64_t> g_next_store_id{1};

// Prepared statements kept for reuse on one connection, by SQL text: preparing costs more than
// running most of Tarn's statements (parsing, planning), and the same few run on every request.
struct StatementCache {
  static constexpr size_t kMaxStatements = 256;
  std::unordered_multimap<std::string, sqlite3_stmt*> idle;
  ~StatementCache() {
    // At thread exit. A closed store's connection is a zombie until these are finalized.
    for (auto& [sql, stmt] : idle) sqlite3_finalize(stmt);
  }
};

struct ThreadConnections {
  std::unordered_map<uint64_t, sqlite3*> by_store;
  std::unordered_map<uint64_t, int> tx_depth;
  std::unordered_map<sqlite3*, std::unique_ptr<StatementCache>> caches;
};
thread_local ThreadConnections t_conns;

// Returns a statement to its connection's cache (reset, bindings cleared), or finalizes it.
void ReleaseStatement(sqlite3* db, sqlite3_stmt* stmt, bool cacheable) {
  auto it = cacheable ? t_conns.caches.find(db) : t_conns.caches.end();
  if (it == t_conns.caches.end() || it->second->idle.size() >= StatementCache::kMaxStatements) {
    sqlite3_finalize(stmt);
    return;
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  it->second->idle.emplace(sqlite3_sql(stmt), stmt);
}

Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Error(ErrorCode::kMetadataError, msg);
}
}  // namespace

Statement::~Statement() {
  if (stmt_) ReleaseStatement(db_, stmt_, cacheable_);
}
Statement::Statement(Statement&& o) noexcept
    : db_(o.db_), stmt_(o.stmt_), cacheable_(o.cacheable_), bind_error_(std::move(o.bind_error_)) {
  o.stmt_ = nullptr;
}
Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    if (stmt_) ReleaseStatement(db_, stmt_, cacheable_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    cacheable_ = o.cacheable_;
    bind_error_ = std::move(o.bind_error_);
    o.stmt_ = nullptr;
  }
  return *this;
}

#define TARN_BIND(call)                                                            \
  do {                                                                             \
    int rc = (call);                                                               \
    if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = SqliteError(db_, rc, "bind"); \
  } while (0)

Statement& Statement::Bind(int i, int64_t v) { TARN_BIND(sqlite3_bind_int64(stmt_, i, v)); return *this; }
Statement& Statement::Bind(int i, double v) { TARN_BIND(sqlite3_bind_double(stmt_, i, v)); return *this; }
Statement& Statement::Bind(int i, std::string_view v) {
  TARN_BIND(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}
Statement& Statement::BindBlob(int i, std::string_view v) {
  TARN_BIND(sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT));
  return *this;
}
Statement& Statement::BindNull(int i) { TARN_BIND(sqlite3_bind_null(stmt_, i)); return *this; }
#undef TARN_BIND

Result<bool> Statement::Step() {
  if (!bind_error_.ok()) return bind_error_;
  for (;;) {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_BUSY) continue;  // busy_timeout already waited; retry
    Status s = SqliteError(db_, rc, "step");
    sqlite3_reset(stmt_);
    if (rc == SQLITE_CONSTRAINT) return Status(ErrorCode::kAlreadyExists, s.message());
    return s;
  }
}

Status Statement::Run() {
  for (;;) {
    ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return Status::OK();
  }
}

Status Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = Status::OK();
  return Status::OK();
}

int64_t Statement::ColumnInt(int c) const { return sqlite3_column_int64(stmt_, c); }
double Statement::ColumnDouble(int c) const { return sqlite3_column_double(stmt_, c); }
std::string Statement::ColumnText(int c) const {
  const void* p = sqlite3_column_blob(stmt_, c);
  int n = sqlite3_column_bytes(stmt_, c);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}
bool Statement::ColumnIsNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
int Statement::ColumnCount() const { return sqlite3_column_count(stmt_); }

Result<std::unique_ptr<MetaStore>> MetaStore::Open(const std::string& path) {
  std::unique_ptr<MetaStore> store(new MetaStore(path));
  store->id_ = g_next_store_id++;
  ASSIGN_OR_RETURN(sqlite3 * db, store->Connection());
  (void)db;
  RETURN_IF_ERROR(store->Exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (module TEXT PRIMARY KEY, version INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"));
  return store;
}

MetaStore::~MetaStore() {
  std::lock_guard<std::mutex> lock(mu_);
  // This thread's cached statements go first; other threads' keep their connection a zombie
  // (sqlite3_close_v2) until those threads exit.
  auto own = t_conns.by_store.find(id_);
  if (own != t_conns.by_store.end()) t_conns.caches.erase(own->second);
  for (sqlite3* db : all_connections_) sqlite3_close_v2(db);
  // Connections cached by other threads for this store id are now dangling; forget ours.
  t_conns.by_store.erase(id_);
}

Result<sqlite3*> MetaStore::Connection() {
  auto it = t_conns.by_store.find(id_);
  if (it != t_conns.by_store.end()) return it->second;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path_.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteError(db, rc, "opening " + path_);
    sqlite3_close_v2(db);
    return s;
  }
  sqlite3_busy_timeout(db, 10000);
  char* err = nullptr;
  rc = sqlite3_exec(db,
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                    nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : "pragma failed";
    sqlite3_free(err);
    sqlite3_close_v2(db);
    return Error(ErrorCode::kMetadataError, "configuring " + path_ + ": " + msg);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    all_connections_.push_back(db);
  }
  t_conns.by_store[id_] = db;
  t_conns.caches[db] = std::make_unique<StatementCache>();
  return db;
}

Result<Statement> MetaStore::Prepare(std::string_view sql) {
  ASSIGN_OR_RETURN(sqlite3 * db, Connection());
  auto cache = t_conns.caches.find(db);
  if (cache != t_conns.caches.end()) {
    auto it = cache->second->idle.find(std::string(sql));
    if (it != cache->second->idle.end()) {
      sqlite3_stmt* stmt = it->second;
      cache->second->idle.erase(it);
      return Statement(db, stmt, true);
    }
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, &tail);
  if (rc != SQLITE_OK) return SqliteError(db, rc, "prepare");
  // Kept for reuse only when its text is the whole of `sql` (the cache's key).
  bool cacheable = stmt && std::string_view(sqlite3_sql(stmt)) == sql;
  return Statement(db, stmt, cacheable);
}

Status MetaStore::Exec(std::string_view sql) {
  ASSIGN_OR_RETURN(sqlite3 * db, Connection());
  std::string s(sql);
  char* err = nullptr;
  int rc = SQLITE_BUSY;
  while (rc == SQLITE_BUSY) rc = sqlite3_exec(db, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Error(rc == SQLITE_CONSTRAINT ? ErrorCode::kAlreadyExists : ErrorCode::kMetadataError, msg);
  }
  return Status::OK();
}

Status MetaStore::Transaction(const std::function<Status()>& fn) {
  int& depth = t_conns.tx_depth[id_];
  if (depth > 0) {
    ++depth;
    Status s = fn();
    --depth;
    return s;
  }
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  depth = 1;
  Status s = fn();
  depth = 0;
  if (!s.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return s;
  }
  Status c = Exec("COMMIT");
  if (!c.ok()) Exec("ROLLBACK").IgnoreError();
  return c;
}

int64_t MetaStore::LastInsertRowId() {
  auto db = Connection();
  return db.ok() ? sqlite3_last_insert_rowid(*db) : 0;
}

int MetaStore::Changes() {
  auto db = Connection();
  return db.ok() ? sqlite3_changes(*db) : 0;
}

Status MetaStore::Migrate(const std::string& module, const std::vector<Migration>& migrations) {
  return Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement q, Prepare("SELECT version FROM schema_migrations WHERE module = ?1"));
    q.Bind(1, module);
    int64_t current = 0;
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) current = q.ColumnInt(0);
    // Done with the read: a statement still active on the connection would make a migration's
    // DROP TABLE / DROP INDEX fail with "database table is locked".
    RETURN_IF_ERROR(q.Reset());
    int64_t latest = current;
    for (const Migration& m : migrations) {
      if (m.version <= current) continue;
      Status s = Exec(m.sql);
      if (!s.ok()) return s.WithContext("migration " + module + "/" + std::to_string(m.version));
      latest = std::max<int64_t>(latest, m.version);
    }
    if (latest != current) {
      ASSIGN_OR_RETURN(Statement up, Prepare(
          "INSERT INTO schema_migrations(module, version) VALUES(?1, ?2) "
          "ON CONFLICT(module) DO UPDATE SET version = excluded.version"));
      up.Bind(1, module).Bind(2, latest);
      RETURN_IF_ERROR(up.Run());
    }
    return Status::OK();
  });
}

Status MetaStore::SetSetting(const std::string& key, const std::string& value) {
  ASSIGN_OR_RETURN(Statement st, Prepare(
      "INSERT INTO settings(key, value) VALUES(?1, ?2) "
      "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
  st.Bind(1, key).Bind(2, value);
  return st.Run();
}

Result<std::optional<std::string>> MetaStore::GetSetting(const std::string& key) {
  ASSIGN_OR_RETURN(Statement st, Prepare("SELECT value FROM settings WHERE key = ?1"));
  st.Bind(1, key);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnText(0));
}

}  // namespace tarn
