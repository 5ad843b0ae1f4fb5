#include "sql/lake/lake_sql.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "core/log.h"
#include "core/strings.h"
#include "sql/lake/redshift_statements.h"
#include "sql/lake/sql_text.h"
#include "sql/lake/table_refs.h"
#include "sql/lake/table_view.h"
#include "streams/compaction.h"

namespace tarn::sql::lake {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Schemas that always belong to DuckDB / the PostgreSQL compatibility layer.
bool InternalSchema(const std::string& s) {
  return s == "main" || s == "pg_catalog" || s == "information_schema" || s == "temp" || s == "system" ||
         s == "memory";
}

// Table functions and statements that reach the server's files. Only root may use them: for
// anyone else they would bypass the catalog's and S3's authorisation.
bool FileFunction(const std::string& name) {
  static const std::set<std::string> kNames = {
      "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
      "parquet_kv_metadata", "parquet_bloom_probe", "read_csv", "read_csv_auto", "sniff_csv", "read_json",
      "read_json_auto", "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
      "read_ndjson_objects", "read_text", "read_blob", "glob", "query", "query_table", "iceberg_scan",
      "delta_scan", "read_xlsx", "st_read", "json_execute_serialized_sql", "duckdb_secrets", "checkpoint",
      "force_checkpoint"};
  return kNames.count(name) > 0;
}

// Words after which a name is a table (fallback when DuckDB cannot parse the statement).
bool TableContext(const Token& t) {
  return t.Is("FROM") || t.Is("JOIN") || t.IsSymbol(',') || t.Is("ONLY") || t.Is("TABLE") || t.Is("DESCRIBE") ||
         t.Is("SUMMARIZE");
}

// Words after which a table name takes no alias (DESCRIBE iot.telemetry).
bool NoAliasContext(const Token& t) { return t.Is("TABLE") || t.Is("DESCRIBE") || t.Is("SUMMARIZE"); }

// Words that end a table reference (so the next word is not its alias).
bool ClauseWord(const Token& t) {
  static const std::set<std::string> kWords = {
      "WHERE", "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "NATURAL", "ON", "USING", "GROUP", "ORDER",
      "LIMIT", "OFFSET", "HAVING", "UNION", "EXCEPT", "INTERSECT", "WINDOW", "QUALIFY", "ASOF", "POSITIONAL",
      "ANTI", "SEMI", "LATERAL", "TABLESAMPLE", "RETURNING", "SET", "FETCH", "FOR", "SAMPLE", "PIVOT",
      "UNPIVOT", "OUTER", "VALUES", "SELECT", "FROM", "INTO", "WITH", "DO", "WHEN", "THEN", "ELSE", "END"};
  return t.kind == TokenKind::kWord && kWords.count(t.text) > 0;
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One lake table as a statement reads it: the partitions its predicate selects.
struct ViewPlan {
  std::string database, table, predicate;
  std::string name;     // the session view
  std::string create;   // CREATE OR REPLACE TEMP VIEW …
  size_t partitions = 0, objects = 0;
  bool partitioned = false;
  bool schema_only = false;
};

class LakeBinding final : public pgwire::StatementBinding {
 public:
  std::vector<ViewPlan> views;
};

// A reference in the statement text that names a lake table.
struct Reference {
  size_t begin = 0, end = 0;  // bytes of the qualified name
  std::string schema, database, table;
  bool external = false;
  bool has_alias = false;
  bool schema_only = false;  // DESCRIBE: columns, no files
  const TableRef* ast = nullptr;  // with a WHERE clause to prune by, when DuckDB parsed it
};

class LakeSession final : public pgwire::StatementHooks {
 public:
  LakeSession(LakeSql* lake, pgwire::SessionInfo info, Identity identity)
      : lake_(lake), d_(lake->deps()), info_(std::move(info)), identity_(std::move(identity)) {
    size_t colon = info_.peer.rfind(':');
    remote_ip_ = colon == std::string::npos ? info_.peer : info_.peer.substr(0, colon);
    if (remote_ip_.size() > 2 && remote_ip_.front() == '[') remote_ip_ = remote_ip_.substr(1, remote_ip_.size() - 2);
    session_id_ = std::to_string(info_.pid);
  }

  bool Owns(const std::string& sql) override {
    LakeStatement kind = ClassifyStatement(sql);
    if (kind == LakeStatement::kNone) return false;
    if (kind != LakeStatement::kDropSchema) return true;
    auto d = ParseDropSchema(sql);
    if (!d.ok()) return false;  // DuckDB reports the syntax error
    for (const auto& n : d->names) {
      if (lake_->FindExternalSchema(n)) return true;
    }
    return false;
  }

  Result<std::string> Run(Connection& conn, const std::string& sql, bool read_only) override {
    details_.clear();
    policies_.clear();
    switch (ClassifyStatement(sql)) {
      case LakeStatement::kCreateExternalSchema: {
        ASSIGN_OR_RETURN(CreateExternalSchema c, ParseCreateExternalSchema(sql));
        return CreateSchema(conn, c, read_only);
      }
      case LakeStatement::kDropSchema: {
        ASSIGN_OR_RETURN(DropSchema d, ParseDropSchema(sql));
        return DropSchemas(d, read_only);
      }
      case LakeStatement::kCreateExternalTable:
        return Error(ErrorCode::kNotImplemented,
                     "CREATE EXTERNAL TABLE is not supported: define the table in the catalog (aws glue "
                     "create-table, a crawler, or tarn apply); it is then queryable as <database>.<table>");
      case LakeStatement::kCopyFromS3: {
        ASSIGN_OR_RETURN(CopyFromS3 c, ParseCopyFromS3(sql));
        return CopyFrom(conn, c, read_only);
      }
      case LakeStatement::kUnload: {
        ASSIGN_OR_RETURN(Unload u, ParseUnload(sql));
        return DoUnload(conn, u);
      }
      default: return Error(ErrorCode::kInternal, "not a lake statement");
    }
  }

  Result<std::shared_ptr<pgwire::StatementBinding>> BeforePrepare(Connection& conn, std::string* sql) override {
    details_.clear();
    policies_.clear();
    auto binding = std::make_shared<LakeBinding>();
    ASSIGN_OR_RETURN(*sql, Rewrite(conn, *sql, binding.get()));
    if (binding->views.empty()) return std::shared_ptr<pgwire::StatementBinding>();
    return std::shared_ptr<pgwire::StatementBinding>(binding);
  }

  Result<bool> BeforeExecute(Connection& conn, pgwire::StatementBinding& b) override {
    details_.clear();
    policies_.clear();
    auto& binding = static_cast<LakeBinding&>(b);
    bool changed = false;
    for (ViewPlan& v : binding.views) {
      ASSIGN_OR_RETURN(ViewPlan fresh, PlanView(v.database, v.table, v.predicate, v.schema_only));
      // Always (re)define: a ROLLBACK may have dropped the view since.
      RETURN_IF_ERROR(conn.Execute(fresh.create));
      if (fresh.create != v.create) changed = true;
      v = std::move(fresh);
    }
    return changed;
  }

  void Finished(const std::string& sql, int64_t rows, int64_t duration_us, const Status& result) override {
    if (!d_.audit || !d_.options.audit_statements || Trim(sql).empty()) {
      details_.clear();
      return;
    }
    // Runs after every statement: only plain fields are captured here (no request id, no JSON);
    // the audit trail's writer thread formats the record.
    net::ApiCall call;
    call.family = net::ApiFamily::kInternal;
    call.service = "redshift-data";
    call.action = "ExecuteStatement";
    call.region = d_.options.region;
    call.identity = identity_;
    call.audit_params = std::move(details_);
    details_.clear();
    if (auto it = call.audit_params.find("tableArn"); it != call.audit_params.end()) {
      call.resource = std::move(it->second);
      call.audit_params.erase(it);
    }
    std::string& text = call.audit_params["sql"];
    if (sql.size() > d_.options.max_audited_sql) {
      size_t cut = d_.options.max_audited_sql;
      while (cut > 0 && (static_cast<unsigned char>(sql[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8
      text.assign(sql, 0, cut);
      text += "…";
    } else {
      text = sql;
    }
    call.audit_params["database"] = d_.options.database_name;
    call.audit_params["rows"] = std::to_string(rows);
    call.audit_params["durationMs"] = std::to_string((duration_us + 500) / 1000);
    call.audit_params["sessionId"] = session_id_;
    if (!result.ok()) call.audit_params["sqlState"] = std::string(GetErrorInfo(result.code()).sqlstate);
    d_.audit->Record(std::move(call),
                     net::AuditContext{remote_ip_, "tarn-sql (PostgreSQL wire protocol)", "SQL", info_.tls},
                     result.ok() ? 200 : 400, result);
  }

 private:
  bool root() const { return identity_.type == Identity::Type::kRoot; }

  std::string TableArn(const std::string& db, const std::string& table) const {
    return "arn:aws:glue:" + d_.options.region + ":" + d_.options.account_id + ":table/" + db + "/" + table;
  }

  Result<std::string> BucketPolicy(const std::string& bucket) {
    auto it = policies_.find(bucket);
    if (it != policies_.end()) return it->second;
    auto p = d_.store->GetBucketConfig(bucket, "policy");
    std::string text = p.ok() && *p ? **p : "";
    policies_[bucket] = text;
    return text;
  }

  // One IAM decision; a denial is 42501 naming what was being read or written.
  Status Authorize(const std::string& action, const std::string& resource, const std::string& what,
                   const std::string& bucket = "", std::map<std::string, std::vector<std::string>> extra = {}) {
    if (root()) return Status::OK();  // identity policies never restrict the root (IAM)
    security::AuthzRequest r;
    r.identity = &identity_;
    r.action = action;
    r.resource = resource;
    if (!remote_ip_.empty()) r.context["aws:SourceIp"] = {remote_ip_};
    r.context["aws:SecureTransport"] = {info_.tls ? "true" : "false"};
    for (auto& [k, v] : extra) r.context[k] = std::move(v);
    if (!bucket.empty()) {
      ASSIGN_OR_RETURN(r.resource_policy, BucketPolicy(bucket));
    }
    security::AuthzDecision dec = d_.authz->Authorize(r);
    if (dec.allowed) return Status::OK();
    std::string who = identity_.anonymous() ? std::string("anonymous") : identity_.arn;
    return Error(ErrorCode::kAccessDenied, "permission denied for " + what + ": User: " + who +
                                               " is not authorized to perform: " + action + " on resource: " +
                                               resource + (dec.explicit_deny ? " with an explicit deny" : ""));
  }

  // Direct file access is root's (see lake_sql.h).
  Status Guard(const std::vector<Token>& t) {
    if (root() || t.empty()) return Status::OK();
    auto deny = [&](const std::string& what) {
      return Error(ErrorCode::kAccessDenied, "permission denied: " + what +
                                                 " reads or writes server files directly, which only root may "
                                                 "do; query catalog tables (<database>.<table>) or use COPY/UNLOAD "
                                                 "with s3:// locations instead");
    };
    const Token& first = t[0];
    for (const char* kw : {"ATTACH", "DETACH", "INSTALL", "LOAD", "EXPORT", "IMPORT", "COPY", "FORCE"}) {
      if (first.Is(kw)) return deny(first.text);
    }
    if (first.Is("SET") || first.Is("RESET")) {
      return Error(ErrorCode::kAccessDenied, "permission denied: only root may change engine settings (" +
                                                 (t.size() > 1 ? t[1].name : std::string()) + ")");
    }
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i].Is("SECRET") && i > 0 && first.Is("CREATE")) return deny("CREATE SECRET");
      if (t[i].kind == TokenKind::kWord && i + 1 < t.size() && t[i + 1].IsSymbol('(') && FileFunction(t[i].name)) {
        return deny(t[i].name + "()");
      }
      if ((t[i].Is("FROM") || t[i].Is("JOIN") || t[i].Is("DESCRIBE") || t[i].Is("SUMMARIZE") || t[i].Is("SHOW") ||
           t[i].Is("PIVOT") || t[i].Is("UNPIVOT")) &&
          i + 1 < t.size() && t[i + 1].kind == TokenKind::kString) {
        return deny("FROM '" + t[i + 1].text + "'");
      }
    }
    return Status::OK();
  }

  // The part of a statement DuckDB can serialise (a SELECT), as [begin, end) in the text.
  static std::optional<std::pair<size_t, size_t>> SelectPart(const std::vector<Token>& t, size_t text_size) {
    if (t.empty()) return std::nullopt;
    auto starts_query = [](const Token& x) {
      return x.Is("SELECT") || x.Is("WITH") || x.Is("FROM") || x.Is("VALUES") || x.Is("TABLE") || x.IsSymbol('(');
    };
    size_t i = 0;
    if (t[0].Is("EXPLAIN")) {
      i = 1;
      while (i < t.size() && (t[i].Is("ANALYZE") || t[i].Is("ANALYSE") || t[i].Is("VERBOSE"))) ++i;
    } else if (t[0].Is("DESCRIBE") || t[0].Is("SUMMARIZE")) {
      i = 1;
    }
    if (i < t.size() && starts_query(t[i])) return std::make_pair(t[i].begin, text_size);
    if (i > 0) return std::nullopt;
    // INSERT … SELECT, CREATE TABLE … AS [(]SELECT, CREATE VIEW … AS SELECT: the first query
    // at the outer level.
    int depth = 0;
    for (size_t j = 1; j < t.size(); ++j) {
      if (t[j].IsSymbol('(')) {
        if (depth == 0 && j + 1 < t.size() && (t[j + 1].Is("SELECT") || t[j + 1].Is("WITH")) && j > 0 &&
            t[j - 1].Is("AS")) {
          return std::make_pair(t[j].begin, text_size);
        }
        ++depth;
      } else if (t[j].IsSymbol(')')) {
        --depth;
      } else if (depth == 0 && (t[j].Is("SELECT") || t[j].Is("WITH"))) {
        return std::make_pair(t[j].begin, text_size);
      }
    }
    return std::nullopt;
  }

  Result<json> Serialize(Connection& conn, std::string_view text) {
    if (!serialize_) {
      ASSIGN_OR_RETURN(serialize_, conn.Prepare("SELECT json_serialize_sql($1::VARCHAR)"));
    }
    RETURN_IF_ERROR(serialize_->ClearBindings());
    RETURN_IF_ERROR(serialize_->Bind(1, text));
    ASSIGN_OR_RETURN(QueryResult r, serialize_->Execute());
    ASSIGN_OR_RETURN(auto rows, r.ToRows());
    if (rows.empty() || rows[0].empty() || !rows[0][0]) return Error(ErrorCode::kInternal, "json_serialize_sql");
    json j = json::parse(*rows[0][0], nullptr, false);
    if (j.is_discarded()) return Error(ErrorCode::kInternal, "json_serialize_sql returned no JSON");
    return j;
  }

  Result<bool> WarehouseHasSchema(Connection& conn, const std::string& schema) {
    ASSIGN_OR_RETURN(QueryResult r, conn.Query(
        "SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() AND lower(schema_name) = " +
        SqlLiteral(schema)));
    ASSIGN_OR_RETURN(auto rows, r.ToRows());
    return !rows.empty() && rows[0][0] && *rows[0][0] != "0";
  }

  // Finds the statement's lake table references, defines their session views and returns the
  // text with each reference replaced by its view.
  Result<std::string> Rewrite(Connection& conn, const std::string& sql, LakeBinding* binding) {
    std::vector<Token> t = Tokenize(sql);
    RETURN_IF_ERROR(Guard(t));
    // Cheap pre-check: some qualified name whose schema could be a lake schema.
    std::set<std::string> schemas;
    for (size_t i = 0; i + 2 < t.size(); ++i) {
      if (!t[i].IsIdent() || !t[i + 1].IsSymbol('.') || !t[i + 2].IsIdent()) continue;
      if (i > 0 && t[i - 1].IsSymbol('.')) continue;
      std::string s = t[i].name;
      if (s == d_.options.database_name && i + 4 < t.size() && t[i + 3].IsSymbol('.') && t[i + 4].IsIdent()) {
        s = t[i + 2].name;
      }
      if (!InternalSchema(s)) schemas.insert(s);
    }
    if (schemas.empty()) return sql;
    // Which of them are external schemas or catalog databases.
    std::map<std::string, std::pair<std::string, bool>> lake_schemas;  // name → {database, external}
    std::optional<std::set<std::string>> databases;
    for (const std::string& s : schemas) {
      if (auto e = lake_->FindExternalSchema(s)) {
        lake_schemas[s] = {e->database, true};
        continue;
      }
      if (!databases) {
        ASSIGN_OR_RETURN(auto list, d_.catalog->ListDatabases());
        databases.emplace(list.begin(), list.end());
      }
      if (databases->count(s)) lake_schemas[s] = {s, false};
    }
    if (lake_schemas.empty()) return sql;

    // Table references: from DuckDB's parse tree when it can serialise the statement, else
    // by their position after FROM / JOIN.
    std::vector<Reference> refs;
    json ast;
    std::vector<TableRef> ast_refs;
    bool parsed = false;
    if (auto part = SelectPart(t, sql.size())) {
      auto j = Serialize(conn, std::string_view(sql).substr(part->first, part->second - part->first));
      if (j.ok()) {
        ast = std::move(*j);
        auto found = FindTableRefs(ast);
        if (found.ok()) {
          parsed = true;
          ast_refs = std::move(*found);
          for (auto& r : ast_refs) r.location += part->first;
        }
      }
    }
    auto add_ref = [&](size_t i, const TableRef* a) -> Status {
      size_t next;
      std::vector<std::string> parts = QualifiedName(t, i, &next);
      if (parts.size() == 3 && parts[0] == d_.options.database_name) parts.erase(parts.begin());
      if (parts.size() != 2) return Status::OK();
      if (next < t.size() && t[next].IsSymbol('(')) return Status::OK();  // schema.function(…)
      auto it = lake_schemas.find(parts[0]);
      if (it == lake_schemas.end()) return Status::OK();
      Reference r;
      r.begin = t[i].begin;
      r.end = t[next - 1].end;
      r.schema = parts[0];
      r.database = it->second.first;
      r.external = it->second.second;
      r.table = parts[1];
      r.ast = a;
      if (a) {
        r.has_alias = !a->alias.empty();
      } else if (i > 0 && NoAliasContext(t[i - 1])) {
        r.has_alias = true;  // nothing to add: the syntax has no alias there
        r.schema_only = t[i - 1].Is("DESCRIBE");
      } else if (next < t.size()) {
        r.has_alias = t[next].Is("AS") || (t[next].IsIdent() && !ClauseWord(t[next]));
      }
      refs.push_back(std::move(r));
      return Status::OK();
    };
    if (parsed) {
      for (const TableRef& a : ast_refs) {
        if (!a.catalog.empty() && a.catalog != d_.options.database_name) continue;
        if (!lake_schemas.count(a.schema)) continue;
        int i = TokenAt(t, a.location);
        if (i < 0) continue;
        RETURN_IF_ERROR(add_ref(static_cast<size_t>(i), &a));
      }
    } else {
      for (size_t i = 1; i < t.size(); ++i) {
        if (TableContext(t[i - 1]) && t[i].IsIdent()) RETURN_IF_ERROR(add_ref(i, nullptr));
      }
    }
    if (refs.empty()) return sql;

    // Resolve, authorise, prune and define; then rewrite back to front.
    std::string out = sql;
    std::set<std::string> defined;
    std::sort(refs.begin(), refs.end(), [](const Reference& a, const Reference& b) { return a.begin > b.begin; });
    std::vector<std::string> summaries;
    for (const Reference& r : refs) {
      auto info = d_.catalog->GetTable(r.database, r.table);
      if (!info.ok()) {
        if (info.status().code() != ErrorCode::kEntityNotFound) return info.status();
        bool missing = r.external;
        if (!missing) {
          ASSIGN_OR_RETURN(bool warehouse, WarehouseHasSchema(conn, r.schema));
          missing = !warehouse;
        }
        if (missing) {
          return Error(ErrorCode::kSqlUndefinedTable, "relation \"" + r.schema + "." + r.table + "\" does not exist");
        }
        continue;  // a warehouse table in a schema named like a catalog database
      }
      std::string predicate;
      if (r.ast && !info->partition_keys.empty()) {
        std::vector<catalog::PartitionKey> keys;
        for (const auto& k : info->partition_keys) keys.push_back({k.name, k.type});
        predicate = PartitionPredicate(*r.ast, keys);
      }
      ASSIGN_OR_RETURN(ViewPlan plan, PlanView(r.database, r.table, predicate, r.schema_only));
      if (defined.insert(plan.name).second) {
        RETURN_IF_ERROR(conn.Execute(plan.create));
        binding->views.push_back(plan);
      }
      std::string replacement = SqlIdent(plan.name);
      if (!r.has_alias) replacement += " AS " + SqlIdent(r.table);
      out.replace(r.begin, r.end - r.begin, replacement);
    }
    if (!binding->views.empty() && t[0].Is("CREATE")) {
      // A persistent view or macro would name this session's temporary view.
      bool temp = false;
      for (size_t i = 1; i < t.size() && i < 5; ++i) temp = temp || t[i].Is("TEMP") || t[i].Is("TEMPORARY");
      bool view = false;
      for (size_t i = 1; i < t.size() && i < 6; ++i) view = view || t[i].Is("VIEW") || t[i].Is("MACRO");
      if (view && !temp) {
        return Error(ErrorCode::kNotImplemented,
                     "views over lake tables are not supported yet: query the catalog table directly, or "
                     "CREATE TABLE … AS SELECT a copy into the warehouse");
      }
    }
    return out;
  }

  // Plans one lake table for one predicate: authorises, prunes, lists the objects, and makes
  // the view definition.
  Result<ViewPlan> PlanView(const std::string& db, const std::string& table, const std::string& predicate,
                            bool schema_only = false) {
    std::string arn = TableArn(db, table);
    std::string what = "table " + db + "." + table;
    RETURN_IF_ERROR(Authorize("glue:GetTable", arn, what));
    if (schema_only) {
      ViewPlan plan;
      plan.database = db;
      plan.table = table;
      plan.schema_only = true;
      plan.name = "lake:" + db + "." + table + ":schema";
      ASSIGN_OR_RETURN(catalog::TableInfo info, d_.catalog->GetTable(db, table));
      ASSIGN_OR_RETURN(std::string select, LakeTableSelect(info, {}));
      plan.create = "CREATE OR REPLACE TEMP VIEW " + SqlIdent(plan.name) + " AS " + select;
      return plan;
    }
    RETURN_IF_ERROR(Authorize("glue:GetPartitions", arn, what));
    auto scan = d_.catalog->PlanScan(db, table, predicate);
    std::string used = predicate;
    if (!scan.ok() && !predicate.empty() && scan.status().code() == ErrorCode::kInvalidInput) {
      TLOG_DEBUG("sql", "partition predicate [{}] not usable for {}.{}: {}", predicate, db, table,
                 scan.status().message());
      scan = d_.catalog->PlanScan(db, table, "");
      used.clear();
    }
    if (!scan.ok()) return scan.status();
    ViewPlan plan;
    plan.database = db;
    plan.table = table;
    plan.predicate = predicate;
    plan.partitioned = !scan->table.partition_keys.empty();
    plan.name = "lake:" + db + "." + table + ":" + Hex64(Fnv1a(used)).substr(0, 8);

    std::vector<PartitionFiles> parts;
    std::vector<std::string> locations;
    if (plan.partitioned) {
      for (const auto& p : scan->partitions) {
        parts.push_back({p.values, {}});
        locations.push_back(p.location);
      }
    } else {
      parts.push_back({{}, {}});
      locations.push_back(scan->table.location);
    }
    plan.partitions = plan.partitioned ? parts.size() : 0;
    // Group partition prefixes by bucket; list each prefix (or the table's prefix once when
    // many partitions live under it).
    std::string table_bucket, table_prefix;
    if (auto tl = catalog::SplitS3Location(scan->table.location); tl.ok()) {
      table_bucket = tl->first;
      table_prefix = tl->second;
      if (!table_prefix.empty() && table_prefix.back() != '/') table_prefix += '/';
    }
    std::vector<std::pair<std::string, std::string>> prefixes(parts.size());
    bool all_under_table = !table_bucket.empty();
    for (size_t i = 0; i < parts.size(); ++i) {
      ASSIGN_OR_RETURN(auto bp, catalog::SplitS3Location(locations[i]));
      if (!bp.second.empty() && bp.second.back() != '/') bp.second += '/';
      prefixes[i] = bp;
      all_under_table = all_under_table && bp.first == table_bucket && StartsWith(bp.second, table_prefix);
    }
    // Keys listed per partition, in listing order, before the covered ones are dropped.
    std::vector<std::vector<std::pair<std::string, std::string>>> listed(parts.size());
    auto add_object = [&](size_t part, const std::string& bucket, const storage::ObjectInfo& o,
                          const std::string& prefix) -> Status {
      if (o.size == 0 || EndsWith(o.key, "/")) return Status::OK();
      // Hadoop's rule: files and folders starting with _ or . are not data (_SUCCESS, .crc).
      for (const std::string& seg : Split(std::string_view(o.key).substr(prefix.size()), '/')) {
        if (!seg.empty() && (seg[0] == '_' || seg[0] == '.')) return Status::OK();
      }
      listed[part].emplace_back(bucket, o.key);
      return Status::OK();
    };
    if (plan.partitioned && parts.size() > 16 && all_under_table) {
      std::map<std::string, size_t> by_prefix;
      for (size_t i = 0; i < parts.size(); ++i) by_prefix[prefixes[i].second] = i;
      ASSIGN_OR_RETURN(auto objects, ListAll(table_bucket, table_prefix));
      for (const auto& o : objects) {
        // The deepest partition prefix holding the key.
        for (size_t slash = o.key.rfind('/'); slash != std::string::npos && slash > 0;
             slash = o.key.rfind('/', slash - 1)) {
          auto it = by_prefix.find(o.key.substr(0, slash + 1));
          if (it != by_prefix.end()) {
            RETURN_IF_ERROR(add_object(it->second, table_bucket, o, it->first));
            break;
          }
        }
      }
    } else {
      for (size_t i = 0; i < parts.size(); ++i) {
        ASSIGN_OR_RETURN(auto objects, ListAll(prefixes[i].first, prefixes[i].second));
        for (const auto& o : objects) RETURN_IF_ERROR(add_object(i, prefixes[i].first, o, prefixes[i].second));
      }
    }
    // A delivery stream's compaction PUTs a merged object before it deletes the objects it
    // merged: an object whose sequence range another object of the same stream and folder
    // covers holds rows that one holds too, so it is left out (streams/compaction.h).
    size_t covered = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      std::vector<std::string> keys;
      keys.reserve(listed[i].size());
      for (const auto& [bucket, key] : listed[i]) keys.push_back(key);
      std::vector<bool> skip = streams::CoveredObjects(keys);
      for (size_t k = 0; k < keys.size(); ++k) {
        if (skip[k]) {
          ++covered;
          continue;
        }
        const std::string& bucket = listed[i][k].first;
        RETURN_IF_ERROR(Authorize("s3:GetObject", "arn:aws:s3:::" + bucket + "/" + keys[k], what, bucket));
        ASSIGN_OR_RETURN(std::string path, d_.store->LocalPath(bucket, keys[k]));
        parts[i].paths.push_back(std::move(path));
        ++plan.objects;
      }
    }
    ASSIGN_OR_RETURN(std::string select, LakeTableSelect(scan->table, parts));
    plan.create = "CREATE OR REPLACE TEMP VIEW " + SqlIdent(plan.name) + " AS " + select;
    std::string summary = db + "." + table + " (" +
                          (plan.partitioned ? std::to_string(plan.partitions) + " partitions, " : std::string()) +
                          std::to_string(plan.objects) + " objects" +
                          (covered ? ", " + std::to_string(covered) + " merged away" : std::string()) +
                          (used.empty() ? std::string() : ", partition filter " + used) + ")";
    std::string& all = details_["lakeTables"];
    all += (all.empty() ? "" : "; ") + summary;
    if (!details_.count("tableArn")) details_["tableArn"] = arn;
    return plan;
  }

  Result<std::vector<storage::ObjectInfo>> ListAll(const std::string& bucket, const std::string& prefix) {
    std::vector<storage::ObjectInfo> out;
    storage::ListOptions lo;
    lo.prefix = prefix;
    lo.max_keys = 1000;
    for (;;) {
      ASSIGN_OR_RETURN(storage::ListResult page, d_.store->ListObjects(bucket, lo));
      for (auto& o : page.objects) out.push_back(std::move(o));
      if (!page.truncated) break;
      lo.start_after = page.next_start_after;
    }
    return out;
  }

  // --- CREATE EXTERNAL SCHEMA / DROP SCHEMA ------------------------------------------------

  Result<std::string> CreateSchema(Connection& conn, const CreateExternalSchema& c, bool read_only) {
    if (read_only) {
      return Error(ErrorCode::kSqlReadOnlyTransaction, "cannot execute CREATE EXTERNAL SCHEMA in a read-only transaction");
    }
    RETURN_IF_ERROR(Authorize("glue:GetDatabase",
                              "arn:aws:glue:" + d_.options.region + ":" + d_.options.account_id + ":database/" +
                                  c.database,
                              "catalog database " + c.database));
    if (lake_->FindExternalSchema(c.name)) {
      if (c.if_not_exists) return std::string("CREATE SCHEMA");
      return Error(ErrorCode::kSqlDuplicateSchema, "schema \"" + c.name + "\" already exists");
    }
    ASSIGN_OR_RETURN(bool warehouse, WarehouseHasSchema(conn, c.name));
    if (warehouse || InternalSchema(c.name)) {
      return Error(ErrorCode::kSqlDuplicateSchema, "schema \"" + c.name + "\" already exists in the warehouse");
    }
    ASSIGN_OR_RETURN(auto dbs, d_.catalog->ListDatabases());
    if (std::find(dbs.begin(), dbs.end(), c.database) == dbs.end()) {
      return Error(ErrorCode::kEntityNotFound, "catalog database \"" + c.database +
                                                   "\" does not exist (create it with aws glue create-database)");
    }
    if (!c.iam_role.empty() && c.iam_role != "default" &&
        (!StartsWith(c.iam_role, "arn:aws:iam::") || c.iam_role.find(":role/") == std::string::npos)) {
      return Error(ErrorCode::kInvalidArgument, "IAM_ROLE must be default or a role ARN (arn:aws:iam::<account>:role/<name>)");
    }
    ExternalSchema e;
    e.name = c.name;
    e.database = c.database;
    e.iam_role = c.iam_role;
    e.created_by = identity_.user_name.empty() ? info_.user : identity_.user_name;
    e.created = NowMs() / 1000;
    RETURN_IF_ERROR(lake_->AddExternalSchema(e));
    details_["externalSchema"] = c.name + " → catalog database " + c.database;
    return std::string("CREATE SCHEMA");
  }

  Result<std::string> DropSchemas(const DropSchema& d, bool read_only) {
    if (read_only) return Error(ErrorCode::kSqlReadOnlyTransaction, "cannot execute DROP SCHEMA in a read-only transaction");
    if (d.drop_external_database) {
      return Error(ErrorCode::kNotImplemented,
                   "DROP EXTERNAL DATABASE is not supported: delete the catalog database with aws glue delete-database");
    }
    for (const auto& n : d.names) {
      if (!lake_->FindExternalSchema(n)) {
        return Error(ErrorCode::kNotImplemented, "DROP SCHEMA cannot drop external schemas and warehouse schema \"" + n +
                                                     "\" in one statement");
      }
    }
    for (const auto& n : d.names) {
      auto e = lake_->FindExternalSchema(n);
      RETURN_IF_ERROR(Authorize("glue:GetDatabase",
                                "arn:aws:glue:" + d_.options.region + ":" + d_.options.account_id + ":database/" +
                                    e->database,
                                "catalog database " + e->database));
      RETURN_IF_ERROR(lake_->RemoveExternalSchema(n));
    }
    return std::string("DROP SCHEMA");
  }

  // --- COPY … FROM 's3://…' ------------------------------------------------------------------

  Result<std::string> CopyFrom(Connection& conn, const CopyFromS3& c, bool read_only) {
    if (read_only) return Error(ErrorCode::kSqlReadOnlyTransaction, "cannot execute COPY in a read-only transaction");
    std::string url = c.from.ToString();
    RETURN_IF_ERROR(Authorize("s3:ListBucket", "arn:aws:s3:::" + c.from.bucket, "COPY from " + url, c.from.bucket,
                              {{"s3:prefix", {c.from.key}}}));
    ASSIGN_OR_RETURN(auto objects, ListAll(c.from.bucket, c.from.key));
    std::vector<std::string> paths;
    for (const auto& o : objects) {
      if (o.size == 0 || EndsWith(o.key, "/")) continue;
      RETURN_IF_ERROR(Authorize("s3:GetObject", "arn:aws:s3:::" + c.from.bucket + "/" + o.key, "COPY from " + url,
                                c.from.bucket));
      ASSIGN_OR_RETURN(std::string path, d_.store->LocalPath(c.from.bucket, o.key));
      paths.push_back(std::move(path));
    }
    details_["s3Location"] = url;
    details_["objects"] = std::to_string(paths.size());
    if (paths.empty()) {
      return Error(ErrorCode::kNoSuchKey, "COPY: the specified S3 prefix '" + url + "' holds no objects");
    }
    std::string list = "[";
    for (size_t i = 0; i < paths.size(); ++i) list += (i ? ", " : "") + SqlLiteral(paths[i]);
    list += "]";
    std::string compression = c.compression.empty() ? "" : ", compression=" + SqlLiteral(c.compression);
    std::string cols;
    if (!c.columns.empty()) cols = " (" + Join(c.columns, ", ") + ")";
    std::string insert;
    if (c.format == "parquet") {
      insert = "INSERT INTO " + c.table + cols + " SELECT * FROM read_parquet(" + list + ", hive_partitioning=false)";
    } else if (c.format == "json") {
      // JSON 'auto': fields are matched to the table's columns by name, others ignored.
      ASSIGN_OR_RETURN(QueryResult r, conn.Query("DESCRIBE " + c.table));
      ASSIGN_OR_RETURN(auto rows, r.ToRows());
      std::vector<std::pair<std::string, std::string>> target;
      for (const auto& row : rows) {
        if (row.size() < 2 || !row[0] || !row[1]) continue;
        target.emplace_back(*row[0], *row[1]);
      }
      if (!c.columns.empty()) {
        std::vector<std::pair<std::string, std::string>> chosen;
        for (const std::string& col : c.columns) {
          std::string want = col.size() > 1 && col.front() == '"' ? col.substr(1, col.size() - 2) : col;
          bool found = false;
          for (const auto& tc : target) {
            if (EqualsIgnoreCase(tc.first, want)) {
              chosen.push_back(tc);
              found = true;
            }
          }
          if (!found) return Error(ErrorCode::kSqlUndefinedColumn, "column \"" + want + "\" of relation " + c.table + " does not exist");
        }
        target = chosen;
      }
      std::string map = "{", names;
      for (size_t i = 0; i < target.size(); ++i) {
        map += (i ? ", " : "") + SqlLiteral(target[i].first) + ": " + SqlLiteral(target[i].second);
        names += (i ? ", " : "") + SqlIdent(target[i].first);
      }
      map += "}";
      insert = "INSERT INTO " + c.table + " (" + names + ") SELECT * FROM read_json(" + list +
               ", format='auto', hive_partitioning=false, columns=" + map + compression + ")";
    } else {
      // CSV, or Redshift's default pipe-delimited text (backslash escapes, \N for NULL).
      bool csv = c.format == "csv";
      std::string delim = !c.delimiter.empty() ? c.delimiter : csv ? "," : "|";
      std::string opts = "header=false, all_varchar=true, hive_partitioning=false, delim=" + SqlLiteral(delim);
      if (c.ignore_header > 0) opts += ", skip=" + std::to_string(c.ignore_header);
      if (csv) {
        opts += ", quote=" + SqlLiteral(c.quote);
      } else {
        opts += ", quote='', escape=''";
      }
      std::string null_as = c.null_as ? *c.null_as : csv ? "" : "\\N";
      opts += ", nullstr=" + SqlLiteral(null_as);
      insert = "INSERT INTO " + c.table + cols + " SELECT * FROM read_csv(" + list + ", " + opts + compression + ")";
    }
    ASSIGN_OR_RETURN(QueryResult r, conn.Query(insert));
    return "COPY " + std::to_string(r.rows_changed());
  }

  // --- UNLOAD ('…') TO 's3://…' --------------------------------------------------------------

  Result<std::string> DoUnload(Connection& conn, const Unload& u) {
    std::string query(Trim(u.query));
    while (!query.empty() && (query.back() == ';' || std::isspace(static_cast<unsigned char>(query.back())))) {
      query.pop_back();
    }
    LakeBinding binding;
    ASSIGN_OR_RETURN(query, Rewrite(conn, query, &binding));
    std::string url = u.to.ToString();
    const std::string& bucket = u.to.bucket;
    RETURN_IF_ERROR(d_.store->HeadBucket(bucket));
    details_["s3Location"] = url;
    if (!u.allow_overwrite || u.cleanpath) {
      RETURN_IF_ERROR(Authorize("s3:ListBucket", "arn:aws:s3:::" + bucket, "UNLOAD to " + url, bucket,
                                {{"s3:prefix", {u.to.key}}}));
      ASSIGN_OR_RETURN(auto existing, ListAll(bucket, u.to.key));
      if (!existing.empty() && u.cleanpath) {
        for (const auto& o : existing) {
          RETURN_IF_ERROR(Authorize("s3:DeleteObject", "arn:aws:s3:::" + bucket + "/" + o.key, "UNLOAD to " + url, bucket));
        }
        for (const auto& o : existing) RETURN_IF_ERROR(d_.store->DeleteObject(bucket, o.key));
      } else if (!existing.empty() && !u.allow_overwrite) {
        return Error(ErrorCode::kFailedPrecondition,
                     "Specified unload destination on S3 is not empty (" + url +
                         "). Consider using a different bucket / prefix, manually removing the target files in "
                         "S3, or using the ALLOWOVERWRITE option.");
      }
    }
    // DuckDB writes into a private scratch folder; the files then become objects.
    std::string dir = d_.options.scratch_dir + "/unload-" + RandomString(16);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Error(ErrorCode::kIoError, "creating " + dir + ": " + ec.message());
    struct Cleanup {
      std::string dir;
      ~Cleanup() {
        std::error_code e;
        fs::remove_all(dir, e);
      }
    } cleanup{dir};

    std::string ext, duck_ext;
    std::vector<std::string> opts;
    if (u.format == "parquet") {
      opts.push_back("FORMAT parquet");
      ext = ".parquet";
      duck_ext = ".parquet";
    } else if (u.format == "json") {
      opts.push_back("FORMAT json");
      duck_ext = ".json";
    } else {
      bool csv = u.format == "csv";
      opts.push_back("FORMAT csv");
      opts.push_back(std::string("HEADER ") + (u.header ? "true" : "false"));
      opts.push_back("DELIMITER " + SqlLiteral(!u.delimiter.empty() ? u.delimiter : csv ? "," : "|"));
      if (!csv) opts.push_back("QUOTE ''");
      duck_ext = ".csv";
    }
    if (u.null_as && u.format != "parquet") opts.push_back("NULL " + SqlLiteral(*u.null_as));
    if (!u.compression.empty()) {
      if (u.format == "parquet") return Error(ErrorCode::kNotImplemented, "GZIP/ZSTD with FORMAT PARQUET (Parquet compresses its pages)");
      opts.push_back("COMPRESSION " + u.compression);
    }
    if (!u.extension.empty()) ext = "." + std::string(StartsWith(u.extension, ".") ? u.extension.substr(1) : u.extension);
    if (u.compression == "gzip") ext += ".gz";
    if (u.compression == "zstd") ext += ".zst";
    bool directory = !u.partition_by.empty() || u.max_file_bytes > 0;
    if (!u.partition_by.empty()) {
      std::vector<std::string> cols;
      for (const auto& c : u.partition_by) cols.push_back(SqlIdent(c));
      opts.push_back("PARTITION_BY (" + Join(cols, ", ") + ")");
      if (u.include) opts.push_back("WRITE_PARTITION_COLUMNS true");
    }
    if (u.max_file_bytes > 0) opts.push_back("FILE_SIZE_BYTES " + std::to_string(u.max_file_bytes));
    std::string target = directory ? dir + "/out" : dir + "/0000_part_00";
    ASSIGN_OR_RETURN(QueryResult r, conn.Query("COPY (" + query + ") TO " + SqlLiteral(target) + " (" +
                                               Join(opts, ", ") + ")"));
    int64_t rows = r.rows_changed();

    // Files → keys: <prefix>[<k=v>/…]0000_part_NN<ext>, as Redshift names them.
    std::string prefix = u.to.key;
    if (!u.partition_by.empty() && !prefix.empty() && prefix.back() != '/') prefix += '/';
    std::vector<std::pair<std::string, std::string>> files;  // local path, key
    if (!directory) {
      if (fs::exists(target)) files.emplace_back(target, prefix + "0000_part_00" + ext);
    } else if (fs::exists(dir + "/out")) {
      for (auto it = fs::recursive_directory_iterator(dir + "/out"); it != fs::recursive_directory_iterator(); ++it) {
        if (!it->is_regular_file()) continue;
        std::string rel = fs::relative(it->path(), dir + "/out").generic_string();
        std::string folder = rel.find('/') == std::string::npos ? "" : rel.substr(0, rel.rfind('/') + 1);
        std::string file = it->path().filename().string();  // data_<n>.<ext>
        int64_t n = 0;
        if (StartsWith(file, "data_")) n = ParseInt64(file.substr(5, file.find('.') - 5)).value_or(0);
        char part[32];
        std::snprintf(part, sizeof(part), "0000_part_%02lld", static_cast<long long>(n));
        files.emplace_back(it->path().string(), prefix + folder + part + ext);
      }
      std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    }
    std::string manifest_key = u.to.key + "manifest";
    for (const auto& [path, key] : files) {
      RETURN_IF_ERROR(Authorize("s3:PutObject", "arn:aws:s3:::" + bucket + "/" + key, "UNLOAD to " + url, bucket));
    }
    if (u.manifest) {
      RETURN_IF_ERROR(Authorize("s3:PutObject", "arn:aws:s3:::" + bucket + "/" + manifest_key, "UNLOAD to " + url, bucket));
    }
    json entries = json::array();
    for (const auto& [path, key] : files) {
      ASSIGN_OR_RETURN(auto src, storage::FileSource::Open(path));
      storage::PutOptions po;
      po.attrs.content_type = u.format == "parquet" ? "application/vnd.apache.parquet"
                              : u.format == "json"  ? "application/x-ndjson"
                                                    : "text/csv";
      ASSIGN_OR_RETURN(storage::ObjectInfo info, d_.store->PutObject(bucket, key, *src, po));
      json e = {{"url", "s3://" + bucket + "/" + key}};
      if (u.manifest_verbose) e["meta"] = {{"content_length", info.size}};
      entries.push_back(e);
    }
    if (u.manifest) {
      json m = {{"entries", entries}};
      storage::StringSource src(m.dump(2) + "\n");
      storage::PutOptions po;
      po.attrs.content_type = "application/json";
      RETURN_IF_ERROR(d_.store->PutObject(bucket, manifest_key, src, po));
    }
    details_["objects"] = std::to_string(files.size());
    return "UNLOAD " + std::to_string(rows);
  }

  LakeSql* lake_;
  const LakeSql::Deps& d_;
  pgwire::SessionInfo info_;
  Identity identity_;
  std::string remote_ip_;
  std::string session_id_;  // the audit records' sessionId (the backend pid clients see)
  std::unique_ptr<PreparedStatement> serialize_;
  std::map<std::string, std::string> details_;   // for the statement's audit record
  std::map<std::string, std::string> policies_;  // bucket policies, per statement
};

}  // namespace

LakeSql::LakeSql(catalog::Catalog* catalog, storage::ObjectStore* store, const security::Authorizer* authz,
                 IdentityLookup identities, net::AuditSink* audit, MetaStore* meta, LakeSqlOptions options)
    : deps_{catalog, store, authz, std::move(identities), audit, meta, std::move(options)} {}

LakeSql::~LakeSql() = default;

Status LakeSql::Open() {
  RETURN_IF_ERROR(deps_.meta->Migrate("sql_lake", {
      {1, R"sql(
        CREATE TABLE sql_external_schemas (
          name TEXT PRIMARY KEY, database TEXT NOT NULL, iam_role TEXT NOT NULL,
          created_by TEXT NOT NULL, created INTEGER NOT NULL);
      )sql"},
  }));
  ASSIGN_OR_RETURN(Statement q, deps_.meta->Prepare(
      "SELECT name, database, iam_role, created_by, created FROM sql_external_schemas"));
  std::lock_guard<std::mutex> lock(mu_);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ExternalSchema e{q.ColumnText(0), q.ColumnText(1), q.ColumnText(2), q.ColumnText(3), q.ColumnInt(4)};
    external_[e.name] = e;
  }
  if (!deps_.options.scratch_dir.empty()) {
    std::error_code ec;
    fs::remove_all(deps_.options.scratch_dir, ec);  // leftovers of a crash
  }
  return Status::OK();
}

std::unique_ptr<pgwire::StatementHooks> LakeSql::NewSession(const pgwire::SessionInfo& info) {
  Identity id;
  auto looked_up = deps_.identities ? deps_.identities(info.user) : Result<Identity>(Identity());
  if (looked_up.ok()) {
    id = *looked_up;
  } else {
    TLOG_WARN("sql", "no IAM identity for SQL user {}: {}", info.user, looked_up.status().message());
  }
  return std::make_unique<LakeSession>(this, info, std::move(id));
}

std::optional<ExternalSchema> LakeSql::FindExternalSchema(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = external_.find(name);
  if (it == external_.end()) return std::nullopt;
  return it->second;
}

Status LakeSql::AddExternalSchema(const ExternalSchema& e) {
  ASSIGN_OR_RETURN(Statement st, deps_.meta->Prepare(
      "INSERT INTO sql_external_schemas(name, database, iam_role, created_by, created) VALUES(?1, ?2, ?3, ?4, ?5)"));
  st.BindAll(e.name, e.database, e.iam_role, e.created_by, e.created);
  RETURN_IF_ERROR(st.Run());
  std::lock_guard<std::mutex> lock(mu_);
  external_[e.name] = e;
  return Status::OK();
}

Status LakeSql::RemoveExternalSchema(const std::string& name) {
  ASSIGN_OR_RETURN(Statement st, deps_.meta->Prepare("DELETE FROM sql_external_schemas WHERE name = ?1"));
  st.BindAll(name);
  RETURN_IF_ERROR(st.Run());
  std::lock_guard<std::mutex> lock(mu_);
  external_.erase(name);
  return Status::OK();
}

}  // namespace tarn::sql::lake
