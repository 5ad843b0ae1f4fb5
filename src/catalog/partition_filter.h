// The partition predicate language of Glue's GetPartitions `Expression` (AWS Glue API,
// "GetPartitions": "an expression that filters the partitions to be returned"), also used by
// the engine-facing catalog for partition pruning.
//
//   expr    := or
//   or      := and { OR and }
//   and     := not { AND not }
//   not     := NOT not | primary
//   primary := '(' expr ')'
//            | key cmp literal            cmp: = <> != < > <= >=
//            | key [NOT] IN '(' literal { ',' literal } ')'
//            | key [NOT] BETWEEN literal AND literal
//            | key [NOT] LIKE 'pattern'   (% any run, _ one character)
//            | key IS [NOT] NULL
//   literal := 'single-quoted' ('' escapes a quote) | number
//   key     := identifier | `back-quoted`
//
// Keywords are case-insensitive. Comparisons are typed by the partition key's Hive type, as
// Glue documents: integer types (tinyint, smallint, int, bigint) compare as integers, float,
// double and decimal as numbers, everything else (string, varchar, char, date, timestamp) as
// strings. A key that is not a partition key, or a literal that does not fit the key's type,
// is an error (InvalidInputException at the API).
//
// Thread-safety: a compiled PartitionFilter is immutable and may be shared between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tarn::catalog {

struct PartitionKey {
  std::string name;
  std::string type;  // Hive type: "string", "int", "bigint", "date" …
};

class PartitionFilter {
 public:
  // Compiles `expression` against the table's partition keys.
  static Result<std::shared_ptr<const PartitionFilter>> Compile(
      std::string_view expression, const std::vector<PartitionKey>& keys);
  ~PartitionFilter();

  // True when a partition with these values (one per key, in key order) matches.
  bool Matches(const std::vector<std::string>& values) const;

  struct Node;

 private:
  PartitionFilter() = default;
  std::unique_ptr<Node> root_;
};

// SQL LIKE over bytes: '%' matches any run, '_' exactly one byte; no escape character.
bool LikeMatch(std::string_view value, std::string_view pattern);

}  // namespace tarn::catalog
