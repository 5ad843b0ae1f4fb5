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
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tarn::catalog {

struct PartitionKey {
  std::string name;
  std::string type;  // Hive type: "string", "int", "bigint", "date" …
};

// An interval of one partition key's values. Text ranges compare bytes (as the filter compares
// string keys); number ranges compare NumericValue(value) and are inclusive at both ends.
struct KeyRange {
  bool numeric = false;
  // Text: a missing bound is open.
  std::optional<std::string> lo, hi;
  bool lo_inclusive = true, hi_inclusive = true;
  // Number: ±infinity when open.
  double lo_num = 0, hi_num = 0;
};

// A conjunct of an expression that involves one key only: every matching partition has a value
// for `key` inside one of `ranges`. Used to look candidates up in an index before the whole
// expression is evaluated; it may admit more partitions than the expression, never fewer.
struct KeyConstraint {
  size_t key = 0;
  std::vector<KeyRange> ranges;  // union; empty = no partition can match
  bool equality = false;         // every range is a single value (=, IN)
};

class PartitionFilter {
 public:
  // Compiles `expression` against the table's partition keys.
  static Result<std::shared_ptr<const PartitionFilter>> Compile(
      std::string_view expression, const std::vector<PartitionKey>& keys);
  ~PartitionFilter();

  // True when a partition with these values (one per key, in key order) matches.
  bool Matches(const std::vector<std::string>& values) const;

  // The conjuncts that constrain a single key (=, <, >, <=, >=, IN, BETWEEN, LIKE 'prefix%',
  // and ORs of those over the same key), equality constraints first. Negations, <> and terms
  // that mix keys are left to Matches().
  std::vector<KeyConstraint> Constraints() const;

  // A partition value as a number, exactly as the filter reads integer and number keys (for
  // number ranges); nullopt when it is not a number (such values never satisfy a comparison
  // with an integer or number key).
  static std::optional<double> NumericValue(std::string_view value);

  struct Node;

 private:
  PartitionFilter() = default;
  std::unique_ptr<Node> root_;
};

// SQL LIKE over bytes: '%' matches any run, '_' exactly one byte; no escape character.
bool LikeMatch(std::string_view value, std::string_view pattern);

}  // namespace tarn::catalog
