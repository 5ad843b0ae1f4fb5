// The SELECT behind a lake table's session view: the catalog table's columns (Hive types
// translated to DuckDB's) and then its partition keys, over the files of the partitions a
// statement reads — Parquet, JSON or CSV by the table's classification.
//
// Partition columns come from the catalog, not from guessing paths: when every file sits
// below `key=value/` folders that spell its partition's values (the Hive layout delivery
// streams and crawlers write), one reader with DuckDB's hive_partitioning reads them all (and
// DuckDB can skip files further for filters on parameters); otherwise each partition is read
// on its own with its values as constants, UNION ALL.
//
// Thread-safe; reads nothing but the first bytes of one file (to recognise snappy text).
#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "core/status.h"

namespace tarn::sql::lake {

struct PartitionFiles {
  std::vector<std::string> values;  // one per partition key (empty for unpartitioned tables)
  std::vector<std::string> paths;   // local files holding the partition's objects
};

// NotImplemented for classifications DuckDB cannot read here (avro, orc, xml …), views, and
// snappy-compressed JSON/CSV (DuckDB has no snappy text reader), naming the table and why.
Result<std::string> LakeTableSelect(const catalog::TableInfo& table, const std::vector<PartitionFiles>& parts);

}  // namespace tarn::sql::lake
