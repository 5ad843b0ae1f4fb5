// The lake in the warehouse (docs/sql.md, "Lake tables"): what makes the Glue Data Catalog,
// the object store and IAM part of every pgwire session.
//
//  - Catalog tables are queryable as <database>.<table> (and <external schema>.<table> after
//    CREATE EXTERNAL SCHEMA … FROM DATA CATALOG). Before DuckDB prepares a statement, each
//    such reference is resolved in the catalog, authorised for the session user
//    (glue:GetTable, glue:GetPartitions, s3:GetObject on every object read), pruned to the
//    partitions the statement's WHERE clause allows (Catalog::PlanScan), and replaced by a
//    session-private temporary view over exactly those objects' files (ObjectStore::LocalPath).
//    Prepared statements re-plan before each execution, so new partitions and files are seen.
//  - Redshift's COPY … FROM 's3://…' and UNLOAD ('…') TO 's3://…' read and write objects
//    through the ObjectStore, authorised by s3:ListBucket / s3:GetObject / s3:PutObject.
//  - Every statement is recorded in the audit trail (eventSource redshift-data.amazonaws.com,
//    eventName ExecuteStatement): user, statement text (truncated), rows, duration, outcome.
//  - Users other than root may not read or write server files directly (read_parquet(…),
//    FROM 'file.csv', COPY … TO '/path', ATTACH, INSTALL, engine settings): that would
//    bypass the checks above.
//
// Thread-safety: LakeSql is thread-safe; each session's hooks belong to its thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "catalog/catalog.h"
#include "core/identity.h"
#include "core/meta_store.h"
#include "core/status.h"
#include "net/aws_api.h"
#include "security/authz.h"
#include "sql/pgwire/hooks.h"
#include "storage/object_store.h"

namespace tarn::sql::lake {

struct LakeSqlOptions {
  std::string account_id;
  std::string region = "us-east-1";
  std::string database_name = "tarn";  // the warehouse database clients connect to
  std::string scratch_dir;             // UNLOAD writes its files here before storing them
  size_t max_audited_sql = 4096;       // statement text in audit records is cut here
  bool audit_statements = true;        // TARN_SQL_AUDIT=off: no audit record per statement
};

// The IAM identity of a SQL login (root → the account root).
using IdentityLookup = std::function<Result<Identity>(const std::string& user)>;

struct ExternalSchema {
  std::string name;      // local schema name
  std::string database;  // catalog database
  std::string iam_role;
  std::string created_by;
  int64_t created = 0;
};

class LakeSql {
 public:
  LakeSql(catalog::Catalog* catalog, storage::ObjectStore* store, const security::Authorizer* authz,
          IdentityLookup identities, net::AuditSink* audit, MetaStore* meta, LakeSqlOptions options);
  ~LakeSql();

  // Creates the external-schema table (module "sql_lake") and loads the mappings.
  Status Open();

  // The hooks for one authenticated session (pgwire::HooksFactory).
  std::unique_ptr<pgwire::StatementHooks> NewSession(const pgwire::SessionInfo& info);

  std::optional<ExternalSchema> FindExternalSchema(const std::string& name) const;
  Status AddExternalSchema(const ExternalSchema& schema);
  Status RemoveExternalSchema(const std::string& name);

  struct Deps {
    catalog::Catalog* catalog;
    storage::ObjectStore* store;
    const security::Authorizer* authz;
    IdentityLookup identities;
    net::AuditSink* audit;
    MetaStore* meta;
    LakeSqlOptions options;
  };
  const Deps& deps() const { return deps_; }

 private:
  Deps deps_;
  mutable std::mutex mu_;
  std::map<std::string, ExternalSchema> external_;  // guarded by mu_
};

}  // namespace tarn::sql::lake
