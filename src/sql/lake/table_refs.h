// The table references of a SELECT as DuckDB parses it (json_serialize_sql's AST), and for
// each one the partition predicate the catalog can prune with (catalog.h PlanScan, Glue's
// GetPartitions expression language).
//
// Pruning is conservative: only top-level AND conjuncts of the WHERE clause of the SELECT
// whose FROM holds the reference are used, and only comparisons of a partition column with
// constants that mean the same in DuckDB and in the Glue expression language (=, <>, <, <=,
// >, >=, IN, NOT IN, BETWEEN, LIKE, OR of such). These reject NULLs, so dropping partitions
// they exclude never changes a result, whatever the joins around the table. Anything else
// (parameters, functions, casts that change meaning, string keys compared with numbers …) is
// left to DuckDB, which still filters the rows.
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/partition_filter.h"
#include "core/status.h"

namespace tarn::sql::lake {

struct TableRef {
  size_t location = 0;  // byte offset of the reference in the parsed text
  std::string catalog, schema, table, alias;  // as written (lower-cased)
  // WHERE clause of the SELECT whose FROM holds the reference (null when none).
  const nlohmann::json* where = nullptr;
  // Unqualified column names in `where` can only mean this table's columns (no USING or
  // NATURAL join merges them with another table's).
  bool unqualified_ok = true;
};

// Every BASE_TABLE reference of the parsed statements (json_serialize_sql output), which
// must outlive the result. InvalidInput when DuckDB reported a parse error.
Result<std::vector<TableRef>> FindTableRefs(const nlohmann::json& ast);

// The Glue partition expression for `ref` over `keys`, "" when nothing prunes.
std::string PartitionPredicate(const TableRef& ref, const std::vector<catalog::PartitionKey>& keys);

}  // namespace tarn::sql::lake
