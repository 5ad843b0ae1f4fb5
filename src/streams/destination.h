// A delivery stream's ExtendedS3DestinationConfiguration, parsed and validated (AWS Firehose API
// reference, "ExtendedS3DestinationConfiguration"). What Tarn cannot honour is refused here
// with InvalidArgumentException, at CreateDeliveryStream and UpdateDestination — never accepted
// and ignored.
//
// Internal to src/streams/.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "streams/prefix.h"

namespace tarn::streams {

using json = nlohmann::json;

enum class RawCompression { kUncompressed, kGzip };

struct DestinationConfig {
  json input;  // the configuration as given (after UpdateDestination merges), for Describe

  std::string bucket;
  std::string bucket_arn;
  std::string role_arn;
  PrefixTemplate prefix;        // defaults applied
  PrefixTemplate error_prefix;  // defaults applied
  uint64_t size_bytes = 5ull << 20;
  int interval_seconds = 300;
  RawCompression compression = RawCompression::kUncompressed;
  bool append_newline = false;
  std::string file_extension;  // "" = by format

  bool dynamic_partitioning = false;
  std::string jq_query;  // MetadataExtractionQuery, "" when none

  bool convert = false;  // JSON → Parquet
  std::string schema_database, schema_table;
  std::string parquet_compression = "snappy";  // DuckDB's name
  bool case_insensitive = true;
  bool dots_to_underscores = false;
  std::map<std::string, std::string> column_to_json_key;  // column → JSON key

  // ExtendedS3DestinationDescription as DescribeDeliveryStream returns it.
  json Description() const;
};

// Parses `ext` (ExtendedS3DestinationConfiguration) for stream `name`.
Result<std::shared_ptr<const DestinationConfig>> ParseDestination(const json& ext,
                                                                  const std::string& name);
// Converts a (deprecated) S3DestinationConfiguration to the extended shape.
json FromS3Destination(const json& s3);

}  // namespace tarn::streams
