#include "catalog/store.h"

#include <re2/re2.h>

#include <algorithm>
#include <variant>

#include "core/strings.h"

namespace tarn::catalog {

namespace {

constexpr char kValueSep = '\x1f';

Status NotFound(const std::string& what) {
  return Error(ErrorCode::kEntityNotFound, what + " not found.");
}

std::string EncodeToken(const std::string& s) { return HexEncode(s); }

Result<std::string> DecodeToken(const std::string& token) {
  auto d = HexDecode(token);
  if (!d) return Error(ErrorCode::kInvalidInput, "Invalid NextToken");
  return *d;
}

int ClampMax(int max_results, int cap) {
  if (max_results <= 0 || max_results > cap) return cap;
  return max_results;
}

Result<json> ParseDoc(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Error(ErrorCode::kMetadataError, "corrupt catalog document");
  return j;
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// GetTables' Expression: a regular expression over names; a '*' not preceded by '.' means
// "any run", as users of Hive's SHOW TABLES 'sales*' and Glue's console expect.
std::string NamePatternToRegex(const std::string& pattern) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '*' && (i == 0 || pattern[i - 1] != '.')) {
      out += ".*";
    } else {
      out += pattern[i];
    }
  }
  return out;
}

Status ValidateValues(const json& table, const std::vector<std::string>& values) {
  size_t keys = table.contains("PartitionKeys") ? table["PartitionKeys"].size() : 0;
  if (values.size() != keys) {
    return Error(ErrorCode::kInvalidInput,
                 "The number of partition keys do not match the number of partition values");
  }
  return Status::OK();
}

}  // namespace

Status ValidateName(const std::string& what, const std::string& name) {
  if (name.empty() || name.size() > 255) {
    return Error(ErrorCode::kInvalidInput, what + " name must be 1 to 255 characters long");
  }
  for (char c : name) {
    if (c == '\n' || c == '\r' || c == '\t' || c == '\0') {
      return Error(ErrorCode::kInvalidInput, what + " name must be a single line");
    }
  }
  return Status::OK();
}

CatalogStore::CatalogStore(MetaStore* meta, Clock* clock, std::string account_id)
    : meta_(meta), clock_(clock), account_id_(std::move(account_id)) {}

Status CatalogStore::Migrate() {
  RETURN_IF_ERROR(meta_->Migrate("catalog", {
      {1,
       "CREATE TABLE catalog_databases (name TEXT PRIMARY KEY, doc TEXT NOT NULL);"
       "CREATE TABLE catalog_tables (db TEXT NOT NULL, name TEXT NOT NULL, version INTEGER "
       "NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (db, name));"
       "CREATE TABLE catalog_table_versions (db TEXT NOT NULL, name TEXT NOT NULL, version "
       "INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (db, name, version));"
       "CREATE TABLE catalog_partitions (db TEXT NOT NULL, tbl TEXT NOT NULL, vkey TEXT NOT "
       "NULL, doc TEXT NOT NULL, PRIMARY KEY (db, tbl, vkey));"},
      {2,
       "CREATE TABLE catalog_crawlers (name TEXT PRIMARY KEY, doc TEXT NOT NULL, state TEXT "
       "NOT NULL, next_run INTEGER NOT NULL DEFAULT 0);"
       "CREATE TABLE catalog_crawler_runs (crawler TEXT NOT NULL, run INTEGER NOT NULL, doc "
       "TEXT NOT NULL, PRIMARY KEY (crawler, run));"
       "CREATE TABLE catalog_crawled_objects (crawler TEXT NOT NULL, path TEXT NOT NULL, "
       "etag TEXT NOT NULL, PRIMARY KEY (crawler, path));"},
      {3, "ALTER TABLE catalog_crawled_objects ADD COLUMN schema TEXT NOT NULL DEFAULT '';"},
      // One row per partition and key: the index GetPartitions looks candidates up in
      // (val for text ranges, num — the value read as a number — for number ranges).
      {4,
       "CREATE TABLE catalog_partition_values (db TEXT NOT NULL, tbl TEXT NOT NULL, pos INTEGER "
       "NOT NULL, val TEXT NOT NULL, num REAL, vkey TEXT NOT NULL, PRIMARY KEY (db, tbl, pos, "
       "val, vkey)) WITHOUT ROWID;"
       "CREATE INDEX catalog_partition_values_num ON catalog_partition_values "
       "(db, tbl, pos, num);"},
      // What a crawler saw of each object besides its ETag (size, modification time).
      {5,
       "ALTER TABLE catalog_crawled_objects ADD COLUMN size INTEGER NOT NULL DEFAULT -1;"
       "ALTER TABLE catalog_crawled_objects ADD COLUMN mtime INTEGER NOT NULL DEFAULT 0;"},
  }));
  return IndexExistingPartitions();
}

// Partitions written before the value index existed (migration 4) are indexed once.
Status CatalogStore::IndexExistingPartitions() {
  constexpr const char* kDone = "catalog.partition_values_indexed";
  ASSIGN_OR_RETURN(auto done, meta_->GetSetting(kDone));
  if (done) return Status::OK();
  return meta_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(meta_->Exec("DELETE FROM catalog_partition_values"));
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT db, tbl, vkey FROM catalog_partitions"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      RETURN_IF_ERROR(IndexValues(q.ColumnText(0), q.ColumnText(1), SplitValuesKey(q.ColumnText(2)),
                                  true));
    }
    return meta_->SetSetting(kDone, "1");
  });
}

std::vector<std::string> CatalogStore::SplitValuesKey(const std::string& vkey) {
  std::vector<std::string> values;
  SplitValuesKeyInto(vkey, &values);
  return values;
}

void CatalogStore::SplitValuesKeyInto(const std::string& vkey, std::vector<std::string>* values) {
  size_t n = 0, start = 0;
  while (true) {
    size_t end = vkey.find(kValueSep, start);
    if (n == values->size()) values->emplace_back();
    (*values)[n++].assign(vkey, start, end == std::string::npos ? std::string::npos : end - start);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  values->resize(n);
}

namespace {

constexpr const char* kIndexValueSql =
    "INSERT OR REPLACE INTO catalog_partition_values(db, tbl, pos, val, vkey, num) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
constexpr const char* kUnindexValueSql =
    "DELETE FROM catalog_partition_values WHERE db = ?1 AND tbl = ?2 AND pos = ?3 AND val = ?4 "
    "AND vkey = ?5";

}  // namespace

Status CatalogStore::IndexValues(const std::string& db, const std::string& tbl,
                                 const std::vector<std::string>& values, bool add,
                                 Statement* prepared) {
  if (values.empty()) return Status::OK();
  std::optional<Statement> own;
  if (!prepared) {
    ASSIGN_OR_RETURN(Statement st, meta_->Prepare(add ? kIndexValueSql : kUnindexValueSql));
    own.emplace(std::move(st));
    prepared = &*own;
  }
  Statement& st = *prepared;
  std::string vkey = ValuesKey(values);
  for (size_t i = 0; i < values.size(); ++i) {
    RETURN_IF_ERROR(st.Reset());
    st.Bind(1, db).Bind(2, tbl).Bind(3, int64_t(i)).Bind(4, values[i]).Bind(5, vkey);
    if (add) {
      auto num = PartitionFilter::NumericValue(values[i]);
      if (num) {
        st.Bind(6, *num);
      } else {
        st.BindNull(6);
      }
    }
    RETURN_IF_ERROR(st.Run());
  }
  return Status::OK();
}

double CatalogStore::Now() const { return double(clock_->NowMillis()) / 1000.0; }

std::string CatalogStore::ValuesKey(const std::vector<std::string>& values) {
  return Join(values, std::string(1, kValueSep));
}

std::vector<PartitionKey> CatalogStore::PartitionKeysOf(const json& table) {
  std::vector<PartitionKey> keys;
  if (!table.contains("PartitionKeys") || !table["PartitionKeys"].is_array()) return keys;
  for (const auto& k : table["PartitionKeys"]) {
    keys.push_back({k.value("Name", ""), k.value("Type", "string")});
  }
  return keys;
}

// ---- Databases ----------------------------------------------------------------------------

Status CatalogStore::CreateDatabase(const json& input) {
  if (!input.is_object() || !input.contains("Name") || !input["Name"].is_string()) {
    return Error(ErrorCode::kInvalidInput, "DatabaseInput.Name is required");
  }
  std::string name = ToLower(input["Name"].get<std::string>());
  RETURN_IF_ERROR(ValidateName("Database", name));
  json doc = input;
  doc["Name"] = name;
  doc["CreateTime"] = Now();
  doc["CatalogId"] = account_id_;
  if (!doc.contains("Parameters")) doc["Parameters"] = json::object();
  return meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT 1 FROM catalog_databases WHERE name = ?1"));
    q.Bind(1, name);
    ASSIGN_OR_RETURN(bool exists, q.Step());
    if (exists) return Error(ErrorCode::kGlueAlreadyExists, "Database already exists.");
    ASSIGN_OR_RETURN(Statement ins,
                     meta_->Prepare("INSERT INTO catalog_databases(name, doc) VALUES (?1, ?2)"));
    ins.Bind(1, name).Bind(2, doc.dump());
    return ins.Run();
  });
}

Result<json> CatalogStore::GetDatabase(const std::string& name) {
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT doc FROM catalog_databases WHERE name = ?1"));
  q.Bind(1, ToLower(name));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound("Database " + name);
  return ParseDoc(q.ColumnText(0));
}

Status CatalogStore::RequireDatabase(const std::string& name) {
  auto db = GetDatabase(name);
  return db.ok() ? Status::OK() : db.status();
}

Result<Page> CatalogStore::GetDatabases(const PageRequest& page) {
  std::string after;
  if (!page.next_token.empty()) {
    ASSIGN_OR_RETURN(after, DecodeToken(page.next_token));
  }
  int limit = ClampMax(page.max_results, 100);
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT name, doc FROM catalog_databases WHERE name > ?1 ORDER BY name LIMIT ?2"));
  q.Bind(1, after).Bind(2, int64_t(limit + 1));
  Page out;
  std::string last;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    if (int(out.items.size()) == limit) {
      out.next_token = EncodeToken(last);
      break;
    }
    last = q.ColumnText(0);
    ASSIGN_OR_RETURN(json doc, ParseDoc(q.ColumnText(1)));
    out.items.push_back(std::move(doc));
  }
  return out;
}

Status CatalogStore::UpdateDatabase(const std::string& name_in, const json& input) {
  std::string name = ToLower(name_in);
  if (!input.is_object()) return Error(ErrorCode::kInvalidInput, "DatabaseInput is required");
  if (input.contains("Name") && ToLower(input.value("Name", "")) != name) {
    return Error(ErrorCode::kInvalidInput, "Renaming a database is not supported");
  }
  return meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(json old, GetDatabase(name));
    json doc = input;
    doc["Name"] = name;
    doc["CreateTime"] = old["CreateTime"];
    doc["CatalogId"] = account_id_;
    if (!doc.contains("Parameters")) doc["Parameters"] = json::object();
    ASSIGN_OR_RETURN(Statement up,
                     meta_->Prepare("UPDATE catalog_databases SET doc = ?2 WHERE name = ?1"));
    up.Bind(1, name).Bind(2, doc.dump());
    return up.Run();
  });
}

Status CatalogStore::DeleteDatabase(const std::string& name_in) {
  std::string name = ToLower(name_in);
  return meta_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(RequireDatabase(name));
    for (const char* sql : {"DELETE FROM catalog_partitions WHERE db = ?1",
                            "DELETE FROM catalog_partition_values WHERE db = ?1",
                            "DELETE FROM catalog_table_versions WHERE db = ?1",
                            "DELETE FROM catalog_tables WHERE db = ?1",
                            "DELETE FROM catalog_databases WHERE name = ?1"}) {
      ASSIGN_OR_RETURN(Statement st, meta_->Prepare(sql));
      st.Bind(1, name);
      RETURN_IF_ERROR(st.Run());
    }
    return Status::OK();
  });
}

// ---- Tables -------------------------------------------------------------------------------

namespace {

Status ValidateTableInput(const json& input) {
  if (!input.is_object() || !input.contains("Name") || !input["Name"].is_string()) {
    return Error(ErrorCode::kInvalidInput, "TableInput.Name is required");
  }
  RETURN_IF_ERROR(ValidateName("Table", input["Name"].get<std::string>()));
  if (input.contains("PartitionKeys")) {
    if (!input["PartitionKeys"].is_array()) {
      return Error(ErrorCode::kInvalidInput, "PartitionKeys must be a list of columns");
    }
    for (const auto& k : input["PartitionKeys"]) {
      if (!k.is_object() || !k.contains("Name") || !k["Name"].is_string()) {
        return Error(ErrorCode::kInvalidInput, "every partition key needs a Name");
      }
    }
  }
  if (input.contains("StorageDescriptor")) {
    const json& sd = input["StorageDescriptor"];
    if (!sd.is_object()) return Error(ErrorCode::kInvalidInput, "StorageDescriptor must be an object");
    if (sd.contains("Columns")) {
      if (!sd["Columns"].is_array()) return Error(ErrorCode::kInvalidInput, "Columns must be a list");
      for (const auto& c : sd["Columns"]) {
        if (!c.is_object() || !c.contains("Name") || !c["Name"].is_string()) {
          return Error(ErrorCode::kInvalidInput, "every column needs a Name");
        }
      }
    }
  }
  return Status::OK();
}

}  // namespace

Result<json> CatalogStore::LoadTable(const std::string& db, const std::string& name) {
  ASSIGN_OR_RETURN(Statement q,
                   meta_->Prepare("SELECT doc FROM catalog_tables WHERE db = ?1 AND name = ?2"));
  q.Bind(1, db).Bind(2, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound("Table " + name);
  return ParseDoc(q.ColumnText(0));
}

Status CatalogStore::WriteVersion(const std::string& db, const std::string& name,
                                  const json& table) {
  ASSIGN_OR_RETURN(Statement ins, meta_->Prepare(
      "INSERT OR REPLACE INTO catalog_table_versions(db, name, version, doc) "
      "VALUES (?1, ?2, ?3, ?4)"));
  int64_t version = *ParseInt64(table["VersionId"].get<std::string>());
  ins.Bind(1, db).Bind(2, name).Bind(3, version).Bind(4, table.dump());
  return ins.Run();
}

Status CatalogStore::CreateTable(const std::string& database, const json& input) {
  RETURN_IF_ERROR(ValidateTableInput(input));
  std::string db = ToLower(database);
  std::string name = ToLower(input["Name"].get<std::string>());
  json doc = input;
  double now = Now();
  doc["Name"] = name;
  doc["DatabaseName"] = db;
  doc["CreateTime"] = now;
  doc["UpdateTime"] = now;
  if (!doc.contains("Retention")) doc["Retention"] = 0;
  if (!doc.contains("PartitionKeys")) doc["PartitionKeys"] = json::array();
  if (!doc.contains("Parameters")) doc["Parameters"] = json::object();
  doc["IsRegisteredWithLakeFormation"] = false;
  doc["CatalogId"] = account_id_;
  doc["VersionId"] = "0";
  return meta_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(RequireDatabase(db));
    ASSIGN_OR_RETURN(Statement q,
                     meta_->Prepare("SELECT 1 FROM catalog_tables WHERE db = ?1 AND name = ?2"));
    q.Bind(1, db).Bind(2, name);
    ASSIGN_OR_RETURN(bool exists, q.Step());
    if (exists) return Error(ErrorCode::kGlueAlreadyExists, "Table already exists.");
    // A re-created table starts a fresh history.
    ASSIGN_OR_RETURN(Statement clean, meta_->Prepare(
        "DELETE FROM catalog_table_versions WHERE db = ?1 AND name = ?2"));
    clean.Bind(1, db).Bind(2, name);
    RETURN_IF_ERROR(clean.Run());
    ASSIGN_OR_RETURN(Statement ins, meta_->Prepare(
        "INSERT INTO catalog_tables(db, name, version, doc) VALUES (?1, ?2, 0, ?3)"));
    ins.Bind(1, db).Bind(2, name).Bind(3, doc.dump());
    RETURN_IF_ERROR(ins.Run());
    return WriteVersion(db, name, doc);
  });
}

Result<json> CatalogStore::GetTable(const std::string& database, const std::string& name) {
  std::string db = ToLower(database);
  RETURN_IF_ERROR(RequireDatabase(db));
  return LoadTable(db, ToLower(name));
}

Result<Page> CatalogStore::GetTables(const std::string& database, const std::string& pattern,
                                     const PageRequest& page) {
  std::string db = ToLower(database);
  RETURN_IF_ERROR(RequireDatabase(db));
  std::unique_ptr<RE2> re;
  if (!pattern.empty()) {
    RE2::Options opts;
    opts.set_case_sensitive(false);
    opts.set_log_errors(false);
    re = std::make_unique<RE2>(NamePatternToRegex(pattern), opts);
    if (!re->ok()) {
      return Error(ErrorCode::kInvalidInput, "Expression is not a valid regular expression: " +
                                                 re->error());
    }
  }
  std::string after;
  if (!page.next_token.empty()) {
    ASSIGN_OR_RETURN(after, DecodeToken(page.next_token));
  }
  int limit = ClampMax(page.max_results, 100);
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT name, doc FROM catalog_tables WHERE db = ?1 AND name > ?2 ORDER BY name"));
  q.Bind(1, db).Bind(2, after);
  Page out;
  std::string last;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    std::string name = q.ColumnText(0);
    if (re && !RE2::FullMatch(name, *re)) continue;
    if (int(out.items.size()) == limit) {
      out.next_token = EncodeToken(last);
      break;
    }
    last = name;
    ASSIGN_OR_RETURN(json doc, ParseDoc(q.ColumnText(1)));
    out.items.push_back(std::move(doc));
  }
  return out;
}

Status CatalogStore::UpdateTable(const std::string& database, const json& input,
                                 bool skip_archive, const std::string& expected_version) {
  RETURN_IF_ERROR(ValidateTableInput(input));
  std::string db = ToLower(database);
  std::string name = ToLower(input["Name"].get<std::string>());
  return meta_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(RequireDatabase(db));
    ASSIGN_OR_RETURN(json old, LoadTable(db, name));
    std::string old_version = old.value("VersionId", "0");
    if (!expected_version.empty() && expected_version != old_version) {
      return Error(ErrorCode::kConcurrentModification,
                   "Table " + name + " was modified: version " + old_version + " is current, not " +
                       expected_version);
    }
    int64_t next = ParseInt64(old_version).value_or(0) + 1;
    json doc = input;
    doc["Name"] = name;
    doc["DatabaseName"] = db;
    doc["CreateTime"] = old["CreateTime"];
    doc["UpdateTime"] = Now();
    if (!doc.contains("Retention")) doc["Retention"] = 0;
    if (!doc.contains("PartitionKeys")) doc["PartitionKeys"] = json::array();
    if (!doc.contains("Parameters")) doc["Parameters"] = json::object();
    doc["IsRegisteredWithLakeFormation"] = false;
    doc["CatalogId"] = account_id_;
    doc["VersionId"] = std::to_string(next);
    ASSIGN_OR_RETURN(Statement up, meta_->Prepare(
        "UPDATE catalog_tables SET version = ?3, doc = ?4 WHERE db = ?1 AND name = ?2"));
    up.Bind(1, db).Bind(2, name).Bind(3, next).Bind(4, doc.dump());
    RETURN_IF_ERROR(up.Run());
    if (skip_archive) {
      ASSIGN_OR_RETURN(Statement del, meta_->Prepare(
          "DELETE FROM catalog_table_versions WHERE db = ?1 AND name = ?2 AND version = ?3"));
      del.Bind(1, db).Bind(2, name).Bind(3, ParseInt64(old_version).value_or(0));
      RETURN_IF_ERROR(del.Run());
    }
    return WriteVersion(db, name, doc);
  });
}

Status CatalogStore::DeleteTable(const std::string& database, const std::string& name_in) {
  std::string db = ToLower(database);
  std::string name = ToLower(name_in);
  return meta_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(RequireDatabase(db));
    ASSIGN_OR_RETURN(json old, LoadTable(db, name));
    (void)old;
    for (const char* sql : {"DELETE FROM catalog_partitions WHERE db = ?1 AND tbl = ?2",
                            "DELETE FROM catalog_partition_values WHERE db = ?1 AND tbl = ?2",
                            "DELETE FROM catalog_table_versions WHERE db = ?1 AND name = ?2",
                            "DELETE FROM catalog_tables WHERE db = ?1 AND name = ?2"}) {
      ASSIGN_OR_RETURN(Statement st, meta_->Prepare(sql));
      st.Bind(1, db).Bind(2, name);
      RETURN_IF_ERROR(st.Run());
    }
    return Status::OK();
  });
}

Result<Page> CatalogStore::GetTableVersions(const std::string& database, const std::string& name_in,
                                            const PageRequest& page) {
  std::string db = ToLower(database);
  std::string name = ToLower(name_in);
  RETURN_IF_ERROR(RequireDatabase(db));
  ASSIGN_OR_RETURN(json current, LoadTable(db, name));
  (void)current;
  int64_t before = INT64_MAX;
  if (!page.next_token.empty()) {
    ASSIGN_OR_RETURN(std::string t, DecodeToken(page.next_token));
    auto v = ParseInt64(t);
    if (!v) return Error(ErrorCode::kInvalidInput, "Invalid NextToken");
    before = *v;
  }
  int limit = ClampMax(page.max_results, 100);
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT version, doc FROM catalog_table_versions WHERE db = ?1 AND name = ?2 AND "
      "version < ?3 ORDER BY version DESC"));
  q.Bind(1, db).Bind(2, name).Bind(3, before);
  Page out;
  int64_t last = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    if (int(out.items.size()) == limit) {
      out.next_token = EncodeToken(std::to_string(last));
      break;
    }
    last = q.ColumnInt(0);
    ASSIGN_OR_RETURN(json doc, ParseDoc(q.ColumnText(1)));
    out.items.push_back({{"Table", doc}, {"VersionId", std::to_string(last)}});
  }
  return out;
}

Result<json> CatalogStore::GetTableVersion(const std::string& database, const std::string& name_in,
                                           const std::string& version_id) {
  std::string db = ToLower(database);
  std::string name = ToLower(name_in);
  RETURN_IF_ERROR(RequireDatabase(db));
  ASSIGN_OR_RETURN(json current, LoadTable(db, name));
  if (version_id.empty()) return json{{"Table", current}, {"VersionId", current["VersionId"]}};
  auto v = ParseInt64(version_id);
  if (!v) return Error(ErrorCode::kInvalidInput, "VersionId must be a number");
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT doc FROM catalog_table_versions WHERE db = ?1 AND name = ?2 AND version = ?3"));
  q.Bind(1, db).Bind(2, name).Bind(3, *v);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound("Version " + version_id + " of table " + name);
  ASSIGN_OR_RETURN(json doc, ParseDoc(q.ColumnText(0)));
  return json{{"Table", doc}, {"VersionId", std::to_string(*v)}};
}

Status CatalogStore::DeleteTableVersion(const std::string& database, const std::string& name_in,
                                        const std::string& version_id) {
  std::string db = ToLower(database);
  std::string name = ToLower(name_in);
  auto v = ParseInt64(version_id);
  if (!v) return Error(ErrorCode::kInvalidInput, "VersionId must be a number");
  return meta_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(RequireDatabase(db));
    ASSIGN_OR_RETURN(json current, LoadTable(db, name));
    if (current.value("VersionId", "") == version_id) {
      return Error(ErrorCode::kInvalidInput,
                   "Version " + version_id + " is the current version of table " + name +
                       " and cannot be deleted");
    }
    ASSIGN_OR_RETURN(Statement del, meta_->Prepare(
        "DELETE FROM catalog_table_versions WHERE db = ?1 AND name = ?2 AND version = ?3"));
    del.Bind(1, db).Bind(2, name).Bind(3, *v);
    RETURN_IF_ERROR(del.Run());
    if (meta_->Changes() == 0) return NotFound("Version " + version_id + " of table " + name);
    return Status::OK();
  });
}

// ---- Partitions ---------------------------------------------------------------------------

namespace {

Result<std::vector<std::string>> ValuesOf(const json& input) {
  if (!input.is_object() || !input.contains("Values") || !input["Values"].is_array()) {
    return Error(ErrorCode::kInvalidInput, "PartitionInput.Values is required");
  }
  std::vector<std::string> values;
  for (const auto& v : input["Values"]) {
    if (!v.is_string()) return Error(ErrorCode::kInvalidInput, "partition values are strings");
    std::string s = v.get<std::string>();
    if (s.find(kValueSep) != std::string::npos) {
      return Error(ErrorCode::kInvalidInput, "partition values may not contain U+001F");
    }
    values.push_back(std::move(s));
  }
  return values;
}

}  // namespace

Status CatalogStore::CreatePartition(const std::string& database, const std::string& table,
                                     const json& input) {
  ASSIGN_OR_RETURN(std::vector<Status> results,
                   CreatePartitions(database, table, json::array({input})));
  return results[0];
}

Result<std::vector<Status>> CatalogStore::CreatePartitions(const std::string& database,
                                                           const std::string& table,
                                                           const json& inputs) {
  std::string db = ToLower(database);
  std::string tbl = ToLower(table);
  std::vector<Status> results;
  Status s = meta_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(RequireDatabase(db));
    ASSIGN_OR_RETURN(json t, LoadTable(db, tbl));
    ASSIGN_OR_RETURN(Statement exists, meta_->Prepare(
        "SELECT 1 FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 AND vkey = ?3"));
    ASSIGN_OR_RETURN(Statement ins, meta_->Prepare(
        "INSERT INTO catalog_partitions(db, tbl, vkey, doc) VALUES (?1, ?2, ?3, ?4)"));
    ASSIGN_OR_RETURN(Statement index, meta_->Prepare(kIndexValueSql));
    double now = Now();
    // Each input is checked before anything of it is written, so a failed one leaves nothing.
    auto create = [&](const json& input) -> Status {
      ASSIGN_OR_RETURN(std::vector<std::string> values, ValuesOf(input));
      RETURN_IF_ERROR(ValidateValues(t, values));
      std::string vkey = ValuesKey(values);
      RETURN_IF_ERROR(exists.Reset());
      exists.Bind(1, db).Bind(2, tbl).Bind(3, vkey);
      ASSIGN_OR_RETURN(bool found, exists.Step());
      if (found) return Error(ErrorCode::kGlueAlreadyExists, "Partition already exists.");
      json doc = input;
      doc["DatabaseName"] = db;
      doc["TableName"] = tbl;
      doc["CreationTime"] = now;
      doc["CatalogId"] = account_id_;
      if (!doc.contains("Parameters")) doc["Parameters"] = json::object();
      RETURN_IF_ERROR(ins.Reset());
      std::string text = doc.dump(-1, ' ', false, json::error_handler_t::replace);
      ins.Bind(1, db).Bind(2, tbl).Bind(3, vkey).Bind(4, text);
      RETURN_IF_ERROR(ins.Run());
      return IndexValues(db, tbl, values, true, &index);
    };
    for (const json& input : inputs) results.push_back(create(input));
    return Status::OK();
  });
  if (!s.ok()) return s;
  return results;
}

Result<json> CatalogStore::GetPartition(const std::string& database, const std::string& table,
                                        const std::vector<std::string>& values) {
  std::string db = ToLower(database);
  std::string tbl = ToLower(table);
  RETURN_IF_ERROR(RequireDatabase(db));
  ASSIGN_OR_RETURN(json t, LoadTable(db, tbl));
  RETURN_IF_ERROR(ValidateValues(t, values));
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT doc FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 AND vkey = ?3"));
  q.Bind(1, db).Bind(2, tbl).Bind(3, ValuesKey(values));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound("Partition");
  return ParseDoc(q.ColumnText(0));
}

Result<bool> CatalogStore::HasPartition(const std::string& database, const std::string& table,
                                        const std::vector<std::string>& values) {
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT 1 FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 AND vkey = ?3"));
  q.Bind(1, ToLower(database)).Bind(2, ToLower(table)).Bind(3, ValuesKey(values));
  return q.Step();
}

Result<int64_t> CatalogStore::CountPartitions(const std::string& database,
                                              const std::string& table) {
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT count(*) FROM catalog_partitions WHERE db = ?1 AND tbl = ?2"));
  q.Bind(1, ToLower(database)).Bind(2, ToLower(table));
  ASSIGN_OR_RETURN(bool row, q.Step());
  return row ? q.ColumnInt(0) : 0;
}

Result<std::vector<std::vector<std::string>>> CatalogStore::ListPartitionValues(
    const std::string& database, const std::string& table) {
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT vkey FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 ORDER BY vkey"));
  q.Bind(1, ToLower(database)).Bind(2, ToLower(table));
  std::vector<std::vector<std::string>> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(SplitValuesKey(q.ColumnText(0)));
  }
  return out;
}

namespace {

// SQL condition and binds (from ?4 on) for one range of the value index.
struct RangeSql {
  std::string where;
  std::vector<std::variant<std::string, double>> binds;
};

RangeSql RangeCondition(const KeyRange& r) {
  RangeSql out;
  auto bind = [&](std::variant<std::string, double> v) {
    out.binds.push_back(std::move(v));
    return "?" + std::to_string(3 + out.binds.size());
  };
  if (r.numeric) {
    // NULL num (not a number) fails both comparisons, as it fails the filter's.
    out.where = " AND num >= " + bind(r.lo_num) + " AND num <= " + bind(r.hi_num);
    return out;
  }
  if (r.lo && r.hi && *r.lo == *r.hi && r.lo_inclusive && r.hi_inclusive) {
    out.where = " AND val = " + bind(*r.lo);
    return out;
  }
  if (r.lo) out.where += std::string(" AND val ") + (r.lo_inclusive ? ">= " : "> ") + bind(*r.lo);
  if (r.hi) out.where += std::string(" AND val ") + (r.hi_inclusive ? "<= " : "< ") + bind(*r.hi);
  return out;
}

void BindRange(Statement* st, const RangeSql& r) {
  int i = 4;
  for (const auto& b : r.binds) {
    if (const auto* s = std::get_if<std::string>(&b)) {
      st->Bind(i++, *s);
    } else {
      st->Bind(i++, std::get<double>(b));
    }
  }
}

}  // namespace

// Ranges of value keys (the values joined by \x1f, in key order) that hold every partition
// satisfying the constraints on the leading keys: text equalities on keys 0..i-1 (each
// combination a prefix), then optionally a text range on key i. nullopt when key 0 has no
// such constraint. The ranges may admit more than the constraints, never fewer.
std::optional<std::vector<VkeyRange>> CatalogStore::LeadingKeyRanges(
    const std::vector<KeyConstraint>& constraints, size_t num_keys) {
  auto text_points = [](const KeyConstraint& c) {
    if (!c.equality) return false;
    for (const KeyRange& r : c.ranges) {
      if (r.numeric || !r.lo || !r.hi || *r.lo != *r.hi) return false;
    }
    return true;
  };
  auto find = [&](size_t key, bool points) -> const KeyConstraint* {
    const KeyConstraint* best = nullptr;
    for (const KeyConstraint& c : constraints) {
      if (c.key != key) continue;
      if (points ? !text_points(c) : (c.ranges.size() != 1 || c.ranges[0].numeric)) continue;
      if (!best || c.ranges.size() < best->ranges.size()) best = &c;
    }
    return best;
  };
  constexpr size_t kMaxPrefixes = 1000;
  std::vector<std::string> prefixes = {""};
  size_t key = 0;
  for (; key < num_keys; ++key) {
    const KeyConstraint* c = find(key, true);
    if (!c || prefixes.size() * c->ranges.size() > kMaxPrefixes) break;
    std::vector<std::string> next;
    for (const std::string& p : prefixes) {
      for (const KeyRange& r : c->ranges) next.push_back(p + *r.lo + kValueSep);
    }
    prefixes = std::move(next);
  }
  const KeyConstraint* range = key < num_keys ? find(key, false) : nullptr;
  if (key == 0 && !range) return std::nullopt;
  std::vector<VkeyRange> out;
  for (const std::string& p : prefixes) {
    // Every key that is p without its trailing separator (0x1f) or starts with p: below the
    // same with the separator raised to 0x20.
    VkeyRange v;
    if (!p.empty()) {
      v.lo = p.substr(0, p.size() - 1);
      v.hi = v.lo + '\x20';
    }
    if (range) {
      const KeyRange& r = range->ranges[0];
      // A value v >= lo gives a key p+v… >= p+lo. A value v <= hi gives a key below
      // p+hi+0x20 when hi holds no byte below 0x20 (so no shorter v can sort after it).
      if (r.lo) v.lo = p + *r.lo;
      if (r.hi && std::none_of(r.hi->begin(), r.hi->end(),
                               [](char ch) { return static_cast<unsigned char>(ch) < 0x20; })) {
        v.hi = p + *r.hi + '\x20';
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

Result<int64_t> CatalogStore::CountVkeyRanges(const std::string& db, const std::string& tbl,
                                              const std::vector<VkeyRange>& ranges,
                                              const std::string& after, int64_t cap) {
  int64_t total = 0;
  for (const VkeyRange& r : ranges) {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        std::string("SELECT count(*) FROM (SELECT 1 FROM catalog_partitions WHERE db = ?1 AND "
                    "tbl = ?2 AND vkey >= ?3 AND vkey > ?4") +
        (r.hi ? " AND vkey < ?6" : "") + " LIMIT ?5)"));
    q.Bind(1, db).Bind(2, tbl).Bind(3, r.lo).Bind(4, after).Bind(5, cap - total);
    if (r.hi) q.Bind(6, *r.hi);
    ASSIGN_OR_RETURN(bool row, q.Step());
    total += row ? q.ColumnInt(0) : 0;
    if (total >= cap) break;
  }
  return total;
}

Result<std::vector<std::string>> CatalogStore::VkeyRangeCandidates(
    const std::string& db, const std::string& tbl, const std::vector<VkeyRange>& ranges,
    const std::string& after) {
  std::vector<std::string> out;
  for (const VkeyRange& r : ranges) {
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        std::string("SELECT vkey FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 AND "
                    "vkey >= ?3 AND vkey > ?4") +
        (r.hi ? " AND vkey < ?5" : "")));
    q.Bind(1, db).Bind(2, tbl).Bind(3, r.lo).Bind(4, after);
    if (r.hi) q.Bind(5, *r.hi);
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      out.push_back(q.ColumnText(0));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// How many index rows match `constraint` after `after`, counting no further than `cap`.
Result<int64_t> CatalogStore::CountCandidates(const std::string& db, const std::string& tbl,
                                              const KeyConstraint& constraint,
                                              const std::string& after, int64_t cap) {
  int64_t total = 0;
  for (const KeyRange& r : constraint.ranges) {
    RangeSql cond = RangeCondition(r);
    int after_param = int(4 + cond.binds.size());
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        "SELECT count(*) FROM (SELECT 1 FROM catalog_partition_values WHERE db = ?1 AND tbl = ?2 "
        "AND pos = ?3" + cond.where + " AND vkey > ?" + std::to_string(after_param) + " LIMIT ?" +
        std::to_string(after_param + 1) + ")"));
    q.Bind(1, db).Bind(2, tbl).Bind(3, int64_t(constraint.key));
    BindRange(&q, cond);
    q.Bind(after_param, after).Bind(after_param + 1, cap - total);
    ASSIGN_OR_RETURN(bool row, q.Step());
    total += row ? q.ColumnInt(0) : 0;
    if (total >= cap) break;
  }
  return total;
}

// Value keys of the partitions within `constraint` (a superset of those matching the whole
// expression) after `after`, sorted and without duplicates.
Result<std::vector<std::string>> CatalogStore::Candidates(const std::string& db,
                                                          const std::string& tbl,
                                                          const KeyConstraint& constraint,
                                                          const std::string& after) {
  std::vector<std::string> out;
  for (const KeyRange& r : constraint.ranges) {
    RangeSql cond = RangeCondition(r);
    int after_param = int(4 + cond.binds.size());
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        "SELECT vkey FROM catalog_partition_values WHERE db = ?1 AND tbl = ?2 AND pos = ?3" +
        cond.where + " AND vkey > ?" + std::to_string(after_param)));
    q.Bind(1, db).Bind(2, tbl).Bind(3, int64_t(constraint.key));
    BindRange(&q, cond);
    q.Bind(after_param, after);
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      out.push_back(q.ColumnText(0));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<Page> CatalogStore::GetPartitions(const std::string& database, const std::string& table,
                                         const std::string& expression, const Segment& segment,
                                         const PageRequest& page) {
  std::string db = ToLower(database);
  std::string tbl = ToLower(table);
  RETURN_IF_ERROR(RequireDatabase(db));
  ASSIGN_OR_RETURN(json t, LoadTable(db, tbl));
  std::shared_ptr<const PartitionFilter> filter;
  if (!Trim(expression).empty()) {
    ASSIGN_OR_RETURN(filter, PartitionFilter::Compile(expression, PartitionKeysOf(t)));
  }
  if (segment.total < 1 || segment.total > 10 || segment.number < 0 ||
      segment.number >= segment.total) {
    return Error(ErrorCode::kInvalidInput,
                 "Segment: TotalSegments must be 1 to 10 and SegmentNumber below it");
  }
  std::string after;
  if (!page.next_token.empty()) {
    ASSIGN_OR_RETURN(after, DecodeToken(page.next_token));
  }
  int limit = ClampMax(page.max_results, 1000);
  Page out;

  if (!filter && segment.total == 1) {
    // Every partition: one ordered pass.
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
        "SELECT vkey, doc FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 AND vkey > ?3 "
        "ORDER BY vkey LIMIT ?4"));
    q.Bind(1, db).Bind(2, tbl).Bind(3, after).Bind(4, int64_t(limit + 1));
    std::string last;
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      if (int(out.items.size()) == limit) {
        out.next_token = EncodeToken(last);
        break;
      }
      last = q.ColumnText(0);
      ASSIGN_OR_RETURN(json doc, ParseDoc(q.ColumnText(1)));
      out.items.push_back(std::move(doc));
    }
    return out;
  }

  // Candidates: from the value index when the expression constrains a key by range (the most
  // selective such constraint), else every partition's value key. Either way only value keys
  // are read until a partition matches; its document is then fetched by key.
  std::vector<std::string> candidates;
  bool indexed = false;
  if (filter) {
    // The most selective source of candidates, by counting index rows; each count stops at
    // the best so far, so a broad constraint costs no more than the narrowest one before it.
    // First the value-key ranges of the leading keys (year = '2026' AND month = '11' …, the
    // usual shape), then each single-key constraint in the value index.
    std::vector<KeyConstraint> constraints = filter->Constraints();
    std::optional<std::vector<VkeyRange>> leading =
        LeadingKeyRanges(constraints, PartitionKeysOf(t).size());
    int best = -1;  // index into constraints; -1 = the leading ranges
    int64_t best_count = INT64_MAX;
    if (leading) {
      ASSIGN_OR_RETURN(best_count, CountVkeyRanges(db, tbl, *leading, after, best_count));
    }
    for (size_t i = 0; i < constraints.size() && best_count > 64; ++i) {
      ASSIGN_OR_RETURN(int64_t n, CountCandidates(db, tbl, constraints[i], after, best_count));
      if (n < best_count) {
        best = int(i);
        best_count = n;
      }
    }
    if (best >= 0) {
      ASSIGN_OR_RETURN(candidates, Candidates(db, tbl, constraints[size_t(best)], after));
      indexed = true;
    } else if (leading) {
      ASSIGN_OR_RETURN(candidates, VkeyRangeCandidates(db, tbl, *leading, after));
      indexed = true;
    }
  }
  ASSIGN_OR_RETURN(Statement get, meta_->Prepare(
      "SELECT doc FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 AND vkey = ?3"));
  std::string last;
  std::vector<std::string> values;  // reused across candidates: this loop is the hot path
  // Adds the partition when it matches; false once the page is full.
  auto consider = [&](const std::string& vkey) -> Result<bool> {
    if (segment.total > 1 && int(Fnv1a(vkey) % uint64_t(segment.total)) != segment.number) {
      return true;
    }
    if (filter) {
      SplitValuesKeyInto(vkey, &values);
      if (!filter->Matches(values)) return true;
    }
    if (int(out.items.size()) == limit) {
      out.next_token = EncodeToken(last);
      return false;
    }
    RETURN_IF_ERROR(get.Reset());
    get.Bind(1, db).Bind(2, tbl).Bind(3, vkey);
    ASSIGN_OR_RETURN(bool row, get.Step());
    if (!row) return true;  // deleted since the candidates were read
    last = vkey;
    ASSIGN_OR_RETURN(json doc, ParseDoc(get.ColumnText(0)));
    out.items.push_back(std::move(doc));
    return true;
  };
  if (indexed) {
    for (const std::string& vkey : candidates) {
      ASSIGN_OR_RETURN(bool more, consider(vkey));
      if (!more) break;
    }
    return out;
  }
  // No range to look up: every value key in order, until the page is full.
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare(
      "SELECT vkey FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 AND vkey > ?3 "
      "ORDER BY vkey"));
  q.Bind(1, db).Bind(2, tbl).Bind(3, after);
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(bool more, consider(q.ColumnText(0)));
    if (!more) break;
  }
  return out;
}

Status CatalogStore::UpdatePartition(const std::string& database, const std::string& table,
                                     const std::vector<std::string>& values, const json& input) {
  std::string db = ToLower(database);
  std::string tbl = ToLower(table);
  ASSIGN_OR_RETURN(std::vector<std::string> new_values, ValuesOf(input));
  return meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(json old, GetPartition(db, tbl, values));
    ASSIGN_OR_RETURN(json t, LoadTable(db, tbl));
    RETURN_IF_ERROR(ValidateValues(t, new_values));
    json doc = input;
    doc["DatabaseName"] = db;
    doc["TableName"] = tbl;
    doc["CreationTime"] = old["CreationTime"];
    doc["CatalogId"] = account_id_;
    if (!doc.contains("Parameters")) doc["Parameters"] = json::object();
    std::string old_key = ValuesKey(values), new_key = ValuesKey(new_values);
    if (old_key != new_key) {
      ASSIGN_OR_RETURN(bool clash, HasPartition(db, tbl, new_values));
      if (clash) return Error(ErrorCode::kGlueAlreadyExists, "Partition already exists.");
    }
    ASSIGN_OR_RETURN(Statement up, meta_->Prepare(
        "UPDATE catalog_partitions SET vkey = ?4, doc = ?5 WHERE db = ?1 AND tbl = ?2 AND "
        "vkey = ?3"));
    up.Bind(1, db).Bind(2, tbl).Bind(3, old_key).Bind(4, new_key).Bind(5, doc.dump());
    RETURN_IF_ERROR(up.Run());
    if (old_key == new_key) return Status::OK();
    RETURN_IF_ERROR(IndexValues(db, tbl, values, false));
    return IndexValues(db, tbl, new_values, true);
  });
}

Status CatalogStore::DeletePartition(const std::string& database, const std::string& table,
                                     const std::vector<std::string>& values) {
  std::string db = ToLower(database);
  std::string tbl = ToLower(table);
  return meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(json old, GetPartition(db, tbl, values));
    (void)old;
    ASSIGN_OR_RETURN(Statement del, meta_->Prepare(
        "DELETE FROM catalog_partitions WHERE db = ?1 AND tbl = ?2 AND vkey = ?3"));
    del.Bind(1, db).Bind(2, tbl).Bind(3, ValuesKey(values));
    RETURN_IF_ERROR(del.Run());
    return IndexValues(db, tbl, values, false);
  });
}

}  // namespace tarn::catalog
