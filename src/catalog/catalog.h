// One catalog, every engine: the interface the rest of Tarn (the SQL endpoint, delivery
// streams, ETL, dashboards) uses to read the Glue Data Catalog, without knowing the Glue API
// or how the catalog is stored. The SQL endpoint exposes each table as `database.table`.
//
// The central question is PlanScan: "which prefixes hold table T for the partitions matching
// predicate P" — partition pruning with the same expression language as Glue's GetPartitions
// (partition_filter.h), so a query's `WHERE year = '2026' AND month > '10'` only reads those
// folders.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "catalog/hive_types.h"
#include "core/status.h"

namespace tarn::catalog {

class CatalogStore;

struct TableInfo {
  std::string database;
  std::string name;
  std::string location;        // s3://bucket/prefix/
  std::string classification;  // Parameters["classification"]: parquet, json, csv, … or ""
  std::string table_type;      // EXTERNAL_TABLE, VIRTUAL_VIEW, …
  std::string version_id;
  std::vector<Column> columns;
  std::vector<Column> partition_keys;
  std::map<std::string, std::string> parameters;
  std::string input_format, output_format, serialization_library;
  std::map<std::string, std::string> serde_parameters;  // field.delim, …
};

struct PartitionInfo {
  std::vector<std::string> values;  // one per partition key
  std::string location;             // s3://bucket/prefix/…/
};

struct TableScan {
  TableInfo table;
  // Matching partitions (empty for an unpartitioned table).
  std::vector<PartitionInfo> partitions;
  // The prefixes to read: the matching partitions' locations, or the table's location when
  // it has no partition keys.
  std::vector<std::string> locations;
};

class Catalog {
 public:
  virtual ~Catalog() = default;
  virtual Result<std::vector<std::string>> ListDatabases() = 0;
  virtual Result<std::vector<TableInfo>> ListTables(const std::string& database) = 0;
  // EntityNotFound when the database or table does not exist.
  virtual Result<TableInfo> GetTable(const std::string& database, const std::string& table) = 0;
  // `partition_predicate` uses GetPartitions' Expression language; empty = every partition.
  // InvalidInput for a predicate that does not parse or names a non-partition column.
  virtual Result<TableScan> PlanScan(const std::string& database, const std::string& table,
                                     const std::string& partition_predicate) = 0;
};

// The catalog over the metadata store.
std::unique_ptr<Catalog> NewCatalog(CatalogStore* store);

// Splits s3://bucket/prefix/ into {bucket, prefix}; InvalidInput for other schemes.
Result<std::pair<std::string, std::string>> SplitS3Location(const std::string& location);

}  // namespace tarn::catalog
