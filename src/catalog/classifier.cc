#include "catalog/classifier.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "catalog/parquet_footer.h"
#include "catalog/snappy_text.h"
#include "core/strings.h"
#include "sql/duckdb/engine.h"

namespace tarn::catalog {

namespace {

using json = nlohmann::json;

std::string Head(const std::string& path, size_t n) {
  std::string out(n, '\0');
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  size_t got = std::fread(out.data(), 1, n, f);
  std::fclose(f);
  out.resize(got);
  return out;
}

std::string StripCompressionSuffix(const std::string& name) {
  for (const char* s : {".gz", ".gzip", ".zst", ".zstd", ".snappy", ".sz", ".bz2"}) {
    if (EndsWith(name, s)) return name.substr(0, name.size() - std::string(s).size());
  }
  return name;
}

}  // namespace

bool FileSchema::CompatibleWith(const FileSchema& other) const {
  if (classification != other.classification) return false;
  for (const Column& a : columns) {
    for (const Column& b : other.columns) {
      if (a.name == b.name && WidenHiveTypes(a.type, b.type).empty()) return false;
    }
  }
  return true;
}

bool FileSchema::SameAs(const FileSchema& other) const {
  if (classification != other.classification || columns.size() != other.columns.size()) {
    return false;
  }
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name != other.columns[i].name || columns[i].type != other.columns[i].type) {
      return false;
    }
  }
  return true;
}

void FileSchema::Merge(const FileSchema& other) {
  for (const Column& b : other.columns) {
    bool found = false;
    for (Column& a : columns) {
      if (a.name == b.name) {
        found = true;
        std::string w = WidenHiveTypes(a.type, b.type);
        a.type = w.empty() ? "string" : w;
      }
    }
    if (!found) columns.push_back(b);
  }
}

std::string FileSchemaToJson(const FileSchema& s) {
  json cols = json::array();
  for (const Column& c : s.columns) cols.push_back({c.name, c.type});
  return json{{"c", s.classification}, {"z", s.compression}, {"d", s.delimiter},
              {"h", s.has_header}, {"cols", cols}}
      .dump();
}

Result<FileSchema> FileSchemaFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error(ErrorCode::kMetadataError, "bad schema cache");
  FileSchema s;
  s.classification = j.value("c", "");
  s.compression = j.value("z", "");
  s.delimiter = j.value("d", "");
  s.has_header = j.value("h", false);
  for (const auto& c : j["cols"]) s.columns.push_back({c[0].get<std::string>(), c[1].get<std::string>(), ""});
  return s;
}

Result<std::vector<Column>> Classifier::Describe(const std::string& from) {
  ASSIGN_OR_RETURN(sql::QueryResult r, conn_->Query("DESCRIBE SELECT * FROM " + from));
  ASSIGN_OR_RETURN(auto rows, r.ToRows());
  std::vector<Column> cols;
  for (const auto& row : rows) {
    if (row.size() < 2 || !row[0] || !row[1]) continue;
    ASSIGN_OR_RETURN(std::string hive, DuckDbToHiveType(*row[1]));
    cols.push_back({ToLower(*row[0]), hive, ""});
  }
  if (cols.empty()) return Error(ErrorCode::kInvalidInput, "no columns found");
  return cols;
}

Result<FileSchema> Classifier::DescribeParquet(const std::string& path) {
  FileSchema s;
  s.classification = "parquet";
  ++described_;
  auto cols = Describe("read_parquet(" + sql::QuoteLiteral(path) + ", hive_partitioning = false)");
  if (!cols.ok()) return cols.status().WithContext("reading Parquet footer");
  s.columns = std::move(*cols);
  return s;
}

Result<std::shared_ptr<const FileSchema>> Classifier::ClassifyShared(const std::string& path,
                                                                     const std::string& key,
                                                                     uint64_t size) {
  constexpr size_t kMaxCachedSchemas = 4096;
  auto parquet = [&](const ParquetFooter& footer) -> Result<std::shared_ptr<const FileSchema>> {
    auto it = parquet_schemas_.find(footer.schema_key);
    if (it != parquet_schemas_.end()) return it->second;
    ASSIGN_OR_RETURN(FileSchema s, DescribeParquet(path));
    if (parquet_schemas_.size() >= kMaxCachedSchemas) parquet_schemas_.clear();
    auto shared = std::make_shared<const FileSchema>(std::move(s));
    parquet_schemas_.emplace(footer.schema_key, shared);
    return shared;
  };
  // Most Parquet files say so in their name: read the footer straight away.
  if (EndsWith(ToLower(key), ".parquet")) {
    auto footer = ReadParquetFooter(path, size);
    if (footer.ok()) return parquet(*footer);
  }
  std::string head = Head(path, 4096);
  if (head.empty()) return Error(ErrorCode::kInvalidInput, "empty or unreadable file");
  if (head.size() >= 4 && head.compare(0, 4, "PAR1") == 0) {
    auto footer = ReadParquetFooter(path, size);
    if (footer.ok()) return parquet(*footer);
    // DuckDB decides, and gives the error a user can act on.
    ASSIGN_OR_RETURN(FileSchema s, DescribeParquet(path));
    return std::make_shared<const FileSchema>(std::move(s));
  }
  std::string name = ToLower(key.substr(key.rfind('/') + 1));
  if (IsSnappyFramed(head) || EndsWith(name, ".snappy") || EndsWith(name, ".sz")) {
    ASSIGN_OR_RETURN(FileSchema s, ClassifySnappy(path, key));
    return std::make_shared<const FileSchema>(std::move(s));
  }
  ASSIGN_OR_RETURN(FileSchema s, ClassifyText(path, key, head));
  return std::make_shared<const FileSchema>(std::move(s));
}

// DuckDB reads no snappy: the start of the text is decompressed into a temporary file and
// classified from there.
Result<FileSchema> Classifier::ClassifySnappy(const std::string& path, const std::string& key) {
  constexpr size_t kMaxCompressed = 16u << 20, kMaxText = 8u << 20;
  auto text = ReadSnappyText(path, kMaxCompressed, kMaxText);
  if (!text.ok()) return text.status();
  if (text->empty()) return Error(ErrorCode::kInvalidInput, "no complete line in the snappy text");
  std::string tmp = (std::filesystem::temp_directory_path() / "tarn-snappy-XXXXXX").string();
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Error(ErrorCode::kIoError, "cannot create a temporary file");
  size_t done = 0;
  while (done < text->size()) {
    ssize_t w = ::write(fd, text->data() + done, text->size() - done);
    if (w <= 0) break;
    done += size_t(w);
  }
  ::close(fd);
  Result<FileSchema> s = Error(ErrorCode::kIoError, "cannot write " + tmp);
  if (done == text->size()) s = ClassifyText(tmp, key, text->substr(0, 4096));
  ::unlink(tmp.c_str());
  if (!s.ok()) {
    std::string msg = s.status().message();
    for (size_t at; (at = msg.find(tmp)) != std::string::npos;) msg.replace(at, tmp.size(), path);
    return Error(s.status().code(), msg);
  }
  s->compression = "snappy";
  return s;
}

Result<FileSchema> Classifier::Classify(const std::string& path, const std::string& key) {
  ASSIGN_OR_RETURN(std::shared_ptr<const FileSchema> s, ClassifyShared(path, key));
  return *s;
}

Result<FileSchema> Classifier::ClassifyText(const std::string& path, const std::string& key,
                                            const std::string& head) {
  FileSchema s;
  std::string lit = sql::QuoteLiteral(path);
  std::string name = ToLower(key.substr(key.rfind('/') + 1));
  if (head.size() >= 2 && uint8_t(head[0]) == 0x1f && uint8_t(head[1]) == 0x8b) {
    s.compression = "gzip";
  } else if (head.size() >= 4 && uint8_t(head[0]) == 0x28 && uint8_t(head[1]) == 0xb5 &&
             uint8_t(head[2]) == 0x2f && uint8_t(head[3]) == 0xfd) {
    s.compression = "zstd";
  } else if (EndsWith(name, ".bz2")) {
    return Error(ErrorCode::kInvalidInput, "compression of " + name + " is not supported");
  } else if (head.find('\0') != std::string::npos) {
    return Error(ErrorCode::kInvalidInput, "binary file of unknown format");
  }
  std::string base = StripCompressionSuffix(name);
  bool json_name = EndsWith(base, ".json") || EndsWith(base, ".jsonl") || EndsWith(base, ".ndjson");
  bool csv_name = EndsWith(base, ".csv") || EndsWith(base, ".tsv") || EndsWith(base, ".txt");
  bool json_content = false;
  if (s.compression.empty()) {
    std::string_view t = Trim(head);
    json_content = !t.empty() && (t[0] == '{' || t[0] == '[');
  }
  // Partition columns come from the catalog's partition keys, not from DuckDB's reading of
  // k=v folder names.
  std::string comp = ", hive_partitioning = false";
  if (!s.compression.empty()) comp += ", compression = " + sql::QuoteLiteral(s.compression);
  Status json_error;
  if (json_name || (!csv_name && (json_content || !s.compression.empty()))) {
    auto cols = Describe("read_json_auto(" + lit + comp + ")");
    if (cols.ok()) {
      s.classification = "json";
      s.columns = std::move(*cols);
      return s;
    }
    json_error = cols.status();
    if (json_name) return json_error.WithContext("reading JSON");
  }
  // CSV / TSV: let DuckDB's sniffer find the dialect and header, then the types.
  ASSIGN_OR_RETURN(sql::QueryResult r, conn_->Query("SELECT Delimiter, HasHeader FROM sniff_csv(" +
                                                    lit + comp + ")"));
  ASSIGN_OR_RETURN(auto rows, r.ToRows());
  if (rows.empty() || !rows[0][0]) return Error(ErrorCode::kInvalidInput, "not a delimited text file");
  s.classification = "csv";
  s.delimiter = *rows[0][0];
  s.has_header = rows[0][1] && (*rows[0][1] == "true" || *rows[0][1] == "1");
  auto cols = Describe("read_csv(" + lit + comp + ")");
  if (!cols.ok()) return cols.status().WithContext("reading CSV");
  s.columns = std::move(*cols);
  return s;
}

HiveFormat FormatFor(const FileSchema& s) {
  HiveFormat f;
  if (s.classification == "parquet") {
    f.input_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
    f.output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
    f.serde = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
    f.serde_params_json = R"({"serialization.format":"1"})";
  } else if (s.classification == "json") {
    f.input_format = "org.apache.hadoop.mapred.TextInputFormat";
    f.output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
    f.serde = "org.openx.data.jsonserde.JsonSerDe";
    f.serde_params_json = R"({"paths":""})";
  } else {
    f.input_format = "org.apache.hadoop.mapred.TextInputFormat";
    f.output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
    f.serde = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
    f.serde_params_json = json{{"field.delim", s.delimiter.empty() ? "," : s.delimiter}}.dump();
  }
  return f;
}

}  // namespace tarn::catalog
