// Classifies one file for a crawler and infers its schema with DuckDB (the built-in
// classifiers of AWS Glue, "Built-in classifiers"): Parquet (schema from the footer),
// JSON (a document, an array of documents, or newline-delimited; nested objects become
// struct<…>), CSV/TSV (delimiter, header and column types sniffed), each optionally gzip- or
// zstd-compressed (detected from the magic bytes, not only the name).
//
// Thread-safety: one Classifier per thread (it holds a DuckDB connection).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "catalog/hive_types.h"
#include "core/status.h"

namespace tarn::sql {
class Connection;
}

namespace tarn::catalog {

struct FileSchema {
  std::string classification;  // "parquet", "json", "csv"
  std::string compression;     // "", "gzip", "zstd"
  std::string delimiter;       // CSV only
  bool has_header = false;     // CSV only
  std::vector<Column> columns;

  // Same format and no column whose types conflict.
  bool CompatibleWith(const FileSchema& other) const;
  // Same format and exactly the same columns.
  bool SameAs(const FileSchema& other) const;
  // Adds `other`'s columns that are missing here and widens numeric types.
  void Merge(const FileSchema& other);
};

// Serialised form kept in the crawler's object cache, so unchanged files are not re-read.
std::string FileSchemaToJson(const FileSchema& schema);
Result<FileSchema> FileSchemaFromJson(const std::string& json);

class Classifier {
 public:
  explicit Classifier(sql::Connection* connection) : conn_(connection) {}
  // Unreadable or unrecognised files are errors (the crawler reports and skips them).
  Result<FileSchema> Classify(const std::string& local_path, const std::string& key);

 private:
  Result<std::vector<Column>> Describe(const std::string& from_clause);
  sql::Connection* conn_;
};

// Glue's InputFormat / OutputFormat / SerdeInfo for a classification, as its crawlers write
// them (JSON text of the StorageDescriptor members).
struct HiveFormat {
  std::string input_format, output_format, serde, serde_params_json;
};
HiveFormat FormatFor(const FileSchema& schema);

}  // namespace tarn::catalog
