// The declarative file `tarn apply` reads (docs/cli.md, "tarn apply"): buckets, catalog
// databases/tables/crawlers, delivery streams, IoT policies/things/rules. Resource bodies use
// the AWS APIs' own field names (TableInput, ExtendedS3DestinationConfiguration,
// topicRulePayload …) so the AWS documentation is their reference; this file only adds names,
// ordering and the thing-name ranges ("sensor-{001..050}").
//
// Included by the apply command and its tests only (it exposes nlohmann::json).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tarn::cli {

enum class ResourceKind { kBucket, kDatabase, kTable, kCrawler, kStream, kPolicy, kThing, kRule };

// Apply order; pruning goes backwards.
const char* KindName(ResourceKind kind);  // "bucket", "database", … (also the state file's)

struct Resource {
  ResourceKind kind = ResourceKind::kBucket;
  std::string name;      // tables: "database.table"
  std::string database;  // tables only
  std::string policy;    // things: the IoT policy attached to the thing's certificate
  nlohmann::json body = nlohmann::json::object();  // the AWS-shaped part, as written
  int line = 0;          // 1-based line in the file, for messages
  std::string Key() const { return std::string(KindName(kind)) + "/" + name; }
};

struct ApplySpec {
  std::string file;              // as given
  std::string certificates_dir;  // absolute or relative to the current directory
  std::vector<Resource> resources;  // in apply order
};

// Parses and validates `text` (the contents of `file`). Errors read
// "FILE:LINE:COLUMN: FIELD: what is wrong".
Result<ApplySpec> ParseApplySpec(const std::string& file, const std::string& text);

// Expands one "{001..050}" range in a name ("sensor-{1..3}" → sensor-1, sensor-2, sensor-3;
// zero-padded to the width of the first bound when it has a leading zero).
Result<std::vector<std::string>> ExpandNameRange(const std::string& pattern);

// Empty when every field of `desired` is present and equal in `actual` (objects: keys of
// desired only; arrays: same length, element-wise; scalars: equal, numbers and their text
// compare equal); otherwise the dotted path of the first difference.
std::string SubsetDifference(const nlohmann::json& desired, const nlohmann::json& actual,
                             const std::string& path = "");

}  // namespace tarn::cli
