// S3 prefix templates of a delivery stream's destination (AWS Firehose "Custom Prefixes for
// Amazon S3 Objects" and "Dynamic Partitioning"):
//
//   !{timestamp:<Java DateTimeFormatter pattern>}   the record's arrival time, UTC
//   !{firehose:random-string}                       11 characters, fixed per delivered object
//   !{firehose:error-output-type}                   ErrorOutputPrefix only
//   !{partitionKeyFromQuery:<key>}                  a MetadataExtraction JQ query's output
//   !{partitionKeyFromLambda:<key>}                 refused: Tarn runs no Lambda functions
//
// A record's partition is its prefix with everything but the random string evaluated; the
// random string is drawn per object from the object's first sequence number, so a replayed
// flush names the same object.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace tarn::streams {

class PrefixTemplate {
 public:
  // Parses and validates. `dynamic_partitioning` allows partitionKeyFromQuery; `error_prefix`
  // allows firehose:error-output-type.
  static Result<PrefixTemplate> Parse(const std::string& text, bool dynamic_partitioning,
                                      bool error_prefix);

  // The partition string for a record. `keys` are the JQ query's outputs; a key the template
  // names but `keys` lacks is an error (the record goes to the error prefix).
  Result<std::string> Evaluate(int64_t arrival_micros, const std::map<std::string, std::string>& keys,
                               const std::string& error_output_type = "") const;

  bool has_expressions() const { return has_expressions_; }
  bool uses_timestamp() const { return uses_timestamp_; }
  const std::vector<std::string>& query_keys() const { return query_keys_; }
  const std::string& text() const { return text_; }

 private:
  enum class Kind { kLiteral, kTimestamp, kRandom, kErrorType, kQueryKey };
  struct Part {
    Kind kind;
    std::string text;  // literal text, timestamp pattern or key name
  };
  std::string text_;
  std::vector<Part> parts_;
  std::vector<std::string> query_keys_;
  bool has_expressions_ = false;
  bool uses_timestamp_ = false;
};

// The token left in a partition string where the random string goes.
inline constexpr const char* kRandomStringToken = "!{firehose:random-string}";
// Replaces the random-string token with 11 characters derived from `seed`.
std::string FillRandomString(const std::string& partition, uint64_t seed);

// Formats UTC `unix_micros` with a Java DateTimeFormatter pattern subset (yyyy yy MM M dd d HH
// H mm m ss s, 'quoted literals', other non-letters as is); an unsupported letter is an error.
Result<std::string> FormatTimestamp(const std::string& pattern, int64_t unix_micros);

}  // namespace tarn::streams
