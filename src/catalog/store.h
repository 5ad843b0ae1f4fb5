// CatalogStore: the Glue Data Catalog's databases, tables, table versions and partitions in
// the metadata store (SQLite, migrations under module "catalog").
//
// Objects are kept as the JSON documents Glue returns (the `Database`, `Table` and `Partition`
// shapes of the AWS Glue API), so every field a client sets round-trips; the columns beside
// each document hold what look-ups, ordering and pruning need. Names are folded to lower case,
// as Glue does. Every write runs in one MetaStore transaction: a table, its versions and its
// partitions change together or not at all.
//
// Used by the Glue API (glue_api.cc), the crawlers (crawler.cc) and the engine-facing
// Catalog (catalog.h). Internal to src/catalog/ (the header carries nlohmann::json).
//
// Thread-safety: thread-safe (MetaStore gives each thread its own connection).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/partition_filter.h"
#include "core/clock.h"
#include "core/meta_store.h"
#include "core/status.h"

namespace tarn::catalog {

using json = nlohmann::json;

struct PageRequest {
  std::string next_token;  // as returned by a previous page; empty = first page
  int max_results = 100;
};

struct Page {
  std::vector<json> items;
  std::string next_token;  // empty = no more pages
};

// GetPartitions' Segment: partitions are split into `total` disjoint, stable sets.
// A range [lo, hi) of partition value keys; no hi = unbounded.
struct VkeyRange {
  std::string lo;
  std::optional<std::string> hi;
};

struct Segment {
  int number = 0;
  int total = 1;
};

class CatalogStore {
 public:
  CatalogStore(MetaStore* meta, Clock* clock, std::string account_id);

  Status Migrate();
  const std::string& account_id() const { return account_id_; }

  // --- Databases (Glue `DatabaseInput` in, `Database` out) ---
  Status CreateDatabase(const json& database_input);
  Result<json> GetDatabase(const std::string& name);
  Result<Page> GetDatabases(const PageRequest& page);
  Status UpdateDatabase(const std::string& name, const json& database_input);
  // Deletes the database with all its tables, versions and partitions (as Glue does).
  Status DeleteDatabase(const std::string& name);

  // --- Tables (`TableInput` in, `Table` out) ---
  Status CreateTable(const std::string& database, const json& table_input);
  Result<json> GetTable(const std::string& database, const std::string& name);
  // `name_regex` is GetTables' Expression (a regular expression over table names).
  Result<Page> GetTables(const std::string& database, const std::string& name_regex,
                         const PageRequest& page);
  // Replaces the table definition and gives it the next VersionId. The previous version stays
  // readable through GetTableVersion(s) unless `skip_archive`. When `expected_version` is set
  // and is not the current VersionId, fails with ConcurrentModificationException.
  Status UpdateTable(const std::string& database, const json& table_input, bool skip_archive,
                     const std::string& expected_version = "");
  Status DeleteTable(const std::string& database, const std::string& name);
  // Newest first; each item is {"Table": …, "VersionId": "…"}.
  Result<Page> GetTableVersions(const std::string& database, const std::string& name,
                                const PageRequest& page);
  Result<json> GetTableVersion(const std::string& database, const std::string& name,
                               const std::string& version_id);  // "" = current
  Status DeleteTableVersion(const std::string& database, const std::string& name,
                            const std::string& version_id);

  // --- Partitions (`PartitionInput` in, `Partition` out) ---
  Status CreatePartition(const std::string& database, const std::string& table,
                         const json& partition_input);
  // Creates several partitions of one table in one transaction: one status per input (a failed
  // input writes nothing, the others are kept). Fails as a whole when the table does not exist.
  Result<std::vector<Status>> CreatePartitions(const std::string& database,
                                               const std::string& table, const json& inputs);
  Result<json> GetPartition(const std::string& database, const std::string& table,
                            const std::vector<std::string>& values);
  // `expression` may be empty (all partitions).
  Result<Page> GetPartitions(const std::string& database, const std::string& table,
                             const std::string& expression, const Segment& segment,
                             const PageRequest& page);
  Status UpdatePartition(const std::string& database, const std::string& table,
                         const std::vector<std::string>& values, const json& partition_input);
  Status DeletePartition(const std::string& database, const std::string& table,
                         const std::vector<std::string>& values);
  // Number of partitions of a table, and whether one with `values` exists.
  Result<int64_t> CountPartitions(const std::string& database, const std::string& table);
  Result<bool> HasPartition(const std::string& database, const std::string& table,
                            const std::vector<std::string>& values);
  // The values of every partition of a table, in value-key order (no documents are read).
  Result<std::vector<std::vector<std::string>>> ListPartitionValues(const std::string& database,
                                                                    const std::string& table);

  // The table's partition keys (name, type) in order.
  static std::vector<PartitionKey> PartitionKeysOf(const json& table);
  // The key a partition's values are stored under (values joined by \x1f).
  static std::string ValuesKey(const std::vector<std::string>& values);
  static std::vector<std::string> SplitValuesKey(const std::string& vkey);
  static void SplitValuesKeyInto(const std::string& vkey, std::vector<std::string>* values);

  MetaStore* meta() { return meta_; }

 private:
  double Now() const;
  Status RequireDatabase(const std::string& name);
  Result<json> LoadTable(const std::string& db, const std::string& name);
  Status WriteVersion(const std::string& db, const std::string& name, const json& table);
  // Adds or removes a partition's rows in catalog_partition_values.
  // `prepared` (optional) is the statement for `add`, reused across calls.
  Status IndexValues(const std::string& db, const std::string& tbl,
                     const std::vector<std::string>& values, bool add,
                     Statement* prepared = nullptr);
  Status IndexExistingPartitions();
  static std::optional<std::vector<VkeyRange>> LeadingKeyRanges(
      const std::vector<KeyConstraint>& constraints, size_t num_keys);
  Result<int64_t> CountVkeyRanges(const std::string& db, const std::string& tbl,
                                  const std::vector<VkeyRange>& ranges, const std::string& after,
                                  int64_t cap);
  Result<std::vector<std::string>> VkeyRangeCandidates(const std::string& db,
                                                       const std::string& tbl,
                                                       const std::vector<VkeyRange>& ranges,
                                                       const std::string& after);
  Result<int64_t> CountCandidates(const std::string& db, const std::string& tbl,
                                  const KeyConstraint& constraint, const std::string& after,
                                  int64_t cap);
  Result<std::vector<std::string>> Candidates(const std::string& db, const std::string& tbl,
                                              const KeyConstraint& constraint,
                                              const std::string& after);

  MetaStore* meta_;
  Clock* clock_;
  std::string account_id_;
};

// Validates a Glue entity name (database, table, crawler): 1–255 characters, one line.
Status ValidateName(const std::string& what, const std::string& name);

}  // namespace tarn::catalog
