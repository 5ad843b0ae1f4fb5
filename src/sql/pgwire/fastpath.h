// Per-session shortcuts that keep DuckDB's fixed per-statement costs (Prepare 100-400 µs,
// an execution ≥ 40 µs even for `SELECT 1`) off the paths clients repeat most:
//  - a cache of prepared statements by query text, so drivers that re-send Parse for the
//    unnamed statement before every execution (psycopg, node-postgres, pgJDBC's first
//    runs) and repeated simple Queries skip Prepare;
//  - literal-only SELECTs (`SELECT 1`, the liveness probe of connection pools and
//    pgbench-style loops) are answered from a row computed once per statement.
//
// Thread-safety: none; each session owns its cache.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <string>
#include <string_view>

namespace tarn::sql::pgwire {

// True when `sql` is `SELECT literal [[AS] alias], …` with nothing else: integer, decimal and
// string literals, TRUE, FALSE and NULL; no casts (`'now'::timestamp` is not constant), no
// functions, no FROM. Conservative: false whenever in doubt.
bool IsConstantSelect(std::string_view sql);

// An LRU map from query text to a prepared statement, holding at most `capacity` entries.
template <typename V>
class QueryCache {
 public:
  explicit QueryCache(size_t capacity) : capacity_(capacity) {}

  // The cached value for `key`, or a default V when absent.
  V Find(const std::string& key) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return V();
    it->second.last_use = ++clock_;
    return it->second.value;
  }
  void Put(const std::string& key, V value) {
    if (entries_.size() >= capacity_ && !entries_.count(key)) {
      // Evict the least recently used entry (a scan: small capacity, inserts are rare
      // next to hits).
      auto victim = entries_.begin();
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->second.last_use < victim->second.last_use) victim = it;
      }
      entries_.erase(victim);
    }
    entries_[key] = Entry{std::move(value), ++clock_};
  }
  void Clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    V value;
    uint64_t last_use = 0;
  };
  size_t capacity_;
  uint64_t clock_ = 0;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace tarn::sql::pgwire
