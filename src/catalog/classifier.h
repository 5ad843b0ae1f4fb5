// Classifies one file for a crawler and infers its schema with DuckDB (the built-in
// classifiers of AWS Glue, "Built-in classifiers"): Parquet (schema from the footer),
// JSON (a document, an array of documents, or newline-delimited; nested objects become
// struct<…>), CSV/TSV (delimiter, header and column types sniffed), each optionally gzip- or
// zstd-compressed (detected from the magic bytes, not only the name) or snappy-compressed
// (framing format by its magic bytes, Hadoop's SnappyCodec by the `.snappy` name;
// snappy_text.h).
//
// Thread-safety: one Classifier per thread (it holds a DuckDB connection).
#pragma once

#include <map>
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
  // The same; Parquet files whose footers hold the same schema (parquet_footer.h) share one
  // FileSchema, read with DuckDB once. `size` is the file's size when known (0 = unknown).
  Result<std::shared_ptr<const FileSchema>> ClassifyShared(const std::string& local_path,
                                                           const std::string& key,
                                                           uint64_t size = 0);
  // How many files were described by DuckDB (the rest came from the footer cache).
  int described() const { return described_; }

 private:
  Result<std::vector<Column>> Describe(const std::string& from_clause);
  Result<FileSchema> ClassifyText(const std::string& path, const std::string& key,
                                  const std::string& head);
  Result<FileSchema> DescribeParquet(const std::string& path);
  Result<FileSchema> ClassifySnappy(const std::string& path, const std::string& key);
  sql::Connection* conn_;
  std::map<std::string, std::shared_ptr<const FileSchema>> parquet_schemas_;  // by schema key
  int described_ = 0;
};

// Glue's InputFormat / OutputFormat / SerdeInfo for a classification, as its crawlers write
// them (JSON text of the StorageDescriptor members).
struct HiveFormat {
  std::string input_format, output_format, serde, serde_params_json;
};
HiveFormat FormatFor(const FileSchema& schema);

}  // namespace tarn::catalog
