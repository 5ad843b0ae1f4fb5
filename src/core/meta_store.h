// The metadata store: one SQLite database at <data>/meta/tarn.db in WAL mode, holding the
// catalog, IAM, devices, streams, jobs and dashboards. Each module owns its tables and
// registers its schema as numbered migrations, applied in order at start-up inside a
// transaction (table schema_migrations records what ran).
//
// Thread-safety: MetaStore is thread-safe. Each thread gets its own SQLite connection
// (SQLite serialises writers; WAL lets readers run beside one writer). A Statement belongs to
// the thread that prepared it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tarn {

class MetaStore;

// A prepared statement with positional binds (?1, ?2 … or ?). Bind, then Step until done.
class Statement {
 public:
  ~Statement();
  Statement(Statement&&) noexcept;
  Statement& operator=(Statement&&) noexcept;
  Statement(const Statement&) = delete;

  Statement& Bind(int index, int64_t v);
  Statement& Bind(int index, double v);
  Statement& Bind(int index, std::string_view v);
  Statement& Bind(int index, const char* v) { return Bind(index, std::string_view(v)); }
  Statement& Bind(int index, const std::string& v) { return Bind(index, std::string_view(v)); }
  Statement& BindBlob(int index, std::string_view v);
  Statement& BindNull(int index);
  // Binds all args as ?1..?N.
  template <typename... Args>
  Statement& BindAll(const Args&... args) {
    int i = 1;
    (Bind(i++, args), ...);
    return *this;
  }

  // Returns true when a row is available, false when done.
  Result<bool> Step();
  // Runs to completion, ignoring rows.
  Status Run();
  Status Reset();

  int64_t ColumnInt(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  bool ColumnIsNull(int col) const;
  int ColumnCount() const;

 private:
  friend class MetaStore;
  Statement(sqlite3* db, sqlite3_stmt* stmt, bool cacheable)
      : db_(db), stmt_(stmt), cacheable_(cacheable) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  bool cacheable_ = false;  // returned to the connection's statement cache when done
  Status bind_error_;
};

struct Migration {
  int version;      // 1, 2, 3 … per module
  std::string sql;  // one or more statements
};

class MetaStore {
 public:
  // Opens (creating) the database file; ":memory:" is not supported (connections per thread).
  static Result<std::unique_ptr<MetaStore>> Open(const std::string& path);
  ~MetaStore();

  // Applies the module's migrations whose version is above the recorded one.
  Status Migrate(const std::string& module, const std::vector<Migration>& migrations);

  // Prepares `sql` on this thread's connection. Statements are cached per connection by their
  // text and reused once the Statement that used one is destroyed (reset, bindings cleared).
  Result<Statement> Prepare(std::string_view sql);
  // Runs one or more statements without results.
  Status Exec(std::string_view sql);

  // Runs `fn` inside BEGIN IMMEDIATE … COMMIT on this thread's connection; rolls back when
  // `fn` returns an error. Nested calls join the outer transaction.
  Status Transaction(const std::function<Status()>& fn);

  int64_t LastInsertRowId();
  int Changes();

  // Small key/value settings (lake account id, region, creation time…).
  Status SetSetting(const std::string& key, const std::string& value);
  Result<std::optional<std::string>> GetSetting(const std::string& key);

  const std::string& path() const { return path_; }

 private:
  explicit MetaStore(std::string path) : path_(std::move(path)) {}
  Result<sqlite3*> Connection();

  std::string path_;
  uint64_t id_ = 0;  // distinguishes stores in the per-thread connection cache
  std::mutex mu_;
  std::vector<sqlite3*> all_connections_;  // guarded by mu_; closed in the destructor
};

}  // namespace tarn
