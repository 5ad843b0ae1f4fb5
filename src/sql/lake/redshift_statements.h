// Amazon Redshift's lake statements, parsed (Redshift Database Developer Guide, "SQL
// commands"): CREATE EXTERNAL SCHEMA … FROM DATA CATALOG (Spectrum), DROP SCHEMA,
// COPY … FROM 's3://…' and UNLOAD ('…') TO 's3://…'. Options that change nothing in Tarn
// (REGION, COMPUPDATE, STATUPDATE, credentials — Tarn authorises with the session user's IAM
// policies) are accepted; options it cannot honour are NotImplemented (0A000) naming the
// option, never silently ignored when they would change the result.
//
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tarn::sql::lake {

enum class LakeStatement { kNone, kCreateExternalSchema, kCreateExternalTable, kDropSchema, kCopyFromS3, kUnload };

// What kind of lake statement `sql` is (by its leading words; COPY only with an s3:// source).
LakeStatement ClassifyStatement(std::string_view sql);

struct S3Url {
  std::string bucket;
  std::string key;  // prefix; may be empty
  std::string ToString() const { return "s3://" + bucket + "/" + key; }
};
// "s3://bucket/key…" → {bucket, key}; InvalidInput for anything else.
Result<S3Url> ParseS3Url(std::string_view url);

struct CreateExternalSchema {
  std::string name;      // local schema name (lower case unless quoted)
  std::string database;  // catalog database
  std::string iam_role;  // "default", an ARN, or ""
  bool if_not_exists = false;
};
Result<CreateExternalSchema> ParseCreateExternalSchema(std::string_view sql);

struct DropSchema {
  std::vector<std::string> names;
  bool if_exists = false;
  bool cascade = false;
  bool drop_external_database = false;
};
Result<DropSchema> ParseDropSchema(std::string_view sql);

struct CopyFromS3 {
  std::string table;                 // as written (SQL text, possibly qualified)
  std::vector<std::string> columns;  // as written
  S3Url from;
  std::string format = "text";       // text (pipe-delimited), csv, parquet, json
  std::string delimiter;             // empty = the format's default
  std::string quote = "\"";
  int64_t ignore_header = 0;
  std::string compression;           // "", gzip, zstd
  std::optional<std::string> null_as;
};
Result<CopyFromS3> ParseCopyFromS3(std::string_view sql);

struct Unload {
  std::string query;
  S3Url to;
  std::string format = "text";  // text (pipe-delimited), csv, parquet, json
  std::vector<std::string> partition_by;
  bool include = false;  // PARTITION BY … INCLUDE: keep partition columns in the files
  bool header = false;
  std::string delimiter;
  std::optional<std::string> null_as;
  bool allow_overwrite = false;
  bool cleanpath = false;
  bool manifest = false;
  bool manifest_verbose = false;
  std::string compression;  // "", gzip, zstd
  std::string extension;    // EXTENSION 'x'
  uint64_t max_file_bytes = 0;
};
Result<Unload> ParseUnload(std::string_view sql);

}  // namespace tarn::sql::lake
