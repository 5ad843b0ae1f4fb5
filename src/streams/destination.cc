#include "streams/destination.h"

#include "core/strings.h"

namespace tarn::streams {

namespace {

Status Invalid(const std::string& msg) { return Error(ErrorCode::kFirehoseInvalidArgument, msg); }

bool Enabled(const json& obj, bool dflt) {
  if (!obj.is_object() || !obj.contains("Enabled")) return dflt;
  return obj["Enabled"].is_boolean() ? obj["Enabled"].get<bool>() : dflt;
}

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return "";
  return obj[key].get<std::string>();
}

bool ValidBucketName(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return b.front() != '-' && b.front() != '.' && b.back() != '-' && b.back() != '.';
}

Status ParseProcessing(const json& pc, DestinationConfig* c) {
  if (!Enabled(pc, false)) return Status::OK();
  if (!pc.contains("Processors") || !pc["Processors"].is_array()) return Status::OK();
  for (const json& p : pc["Processors"]) {
    std::string type = Str(p, "Type");
    std::map<std::string, std::string> params;
    if (p.contains("Parameters") && p["Parameters"].is_array()) {
      for (const json& kv : p["Parameters"]) params[Str(kv, "ParameterName")] = Str(kv, "ParameterValue");
    }
    if (type == "MetadataExtraction") {
      auto it = params.find("MetadataExtractionQuery");
      if (it == params.end() || it->second.empty()) {
        return Invalid("MetadataExtraction needs the MetadataExtractionQuery parameter");
      }
      auto eng = params.find("JsonParsingEngine");
      if (eng != params.end() && eng->second != "JQ-1.6") {
        return Invalid("JsonParsingEngine must be JQ-1.6");
      }
      c->jq_query = it->second;
    } else if (type == "AppendDelimiterToRecord") {
      auto d = params.find("Delimiter");
      if (d != params.end() && d->second != "\\n" && d->second != "\n") {
        return Invalid("AppendDelimiterToRecord supports only the newline delimiter");
      }
      c->append_newline = true;
    } else if (type == "Lambda") {
      return Invalid("Lambda processors are not supported: Tarn runs no Lambda functions");
    } else {
      return Invalid("processor type '" + type + "' is not supported (MetadataExtraction and "
                     "AppendDelimiterToRecord are)");
    }
  }
  return Status::OK();
}

Status ParseConversion(const json& dfc, DestinationConfig* c) {
  if (!dfc.is_object() || dfc.empty() || !Enabled(dfc, true)) return Status::OK();
  c->convert = true;
  const json& sc = dfc.value("SchemaConfiguration", json::object());
  c->schema_database = Str(sc, "DatabaseName");
  c->schema_table = Str(sc, "TableName");
  if (c->schema_database.empty() || c->schema_table.empty()) {
    return Invalid("DataFormatConversionConfiguration needs SchemaConfiguration DatabaseName and "
                   "TableName (a table in Tarn's Glue Data Catalog)");
  }
  std::string region = Str(sc, "Region");
  (void)region;
  const json& in = dfc.value("InputFormatConfiguration", json::object());
  const json& de = in.value("Deserializer", json::object());
  if (de.contains("OpenXJsonSerDe")) {
    const json& ox = de["OpenXJsonSerDe"];
    if (ox.contains("CaseInsensitive") && ox["CaseInsensitive"].is_boolean()) {
      c->case_insensitive = ox["CaseInsensitive"].get<bool>();
    }
    if (ox.contains("ConvertDotsInJsonKeysToUnderscores") &&
        ox["ConvertDotsInJsonKeysToUnderscores"].is_boolean()) {
      c->dots_to_underscores = ox["ConvertDotsInJsonKeysToUnderscores"].get<bool>();
    }
    if (ox.contains("ColumnToJsonKeyMappings") && ox["ColumnToJsonKeyMappings"].is_object()) {
      for (auto& [k, v] : ox["ColumnToJsonKeyMappings"].items()) {
        if (v.is_string()) c->column_to_json_key[ToLower(k)] = v.get<std::string>();
      }
    }
  } else if (de.contains("HiveJsonSerDe")) {
    const json& hj = de["HiveJsonSerDe"];
    if (hj.contains("TimestampFormats") && hj["TimestampFormats"].is_array() &&
        !hj["TimestampFormats"].empty()) {
      return Invalid("HiveJsonSerDe TimestampFormats are not supported; timestamps are read as "
                     "ISO 8601 or epoch seconds/milliseconds");
    }
  } else if (!de.empty()) {
    return Invalid("the Deserializer must be OpenXJsonSerDe or HiveJsonSerDe");
  }
  const json& out = dfc.value("OutputFormatConfiguration", json::object());
  const json& ser = out.value("Serializer", json::object());
  if (ser.contains("OrcSerDe")) {
    return Invalid("OrcSerDe is not supported: Tarn writes Parquet (use ParquetSerDe)");
  }
  if (ser.contains("ParquetSerDe")) {
    std::string comp = Str(ser["ParquetSerDe"], "Compression");
    if (comp.empty() || comp == "SNAPPY") {
      c->parquet_compression = "snappy";
    } else if (comp == "GZIP") {
      c->parquet_compression = "gzip";
    } else if (comp == "UNCOMPRESSED") {
      c->parquet_compression = "uncompressed";
    } else if (comp == "ZSTD") {
      c->parquet_compression = "zstd";
    } else {
      return Invalid("ParquetSerDe Compression must be SNAPPY, GZIP, ZSTD or UNCOMPRESSED");
    }
  }
  return Status::OK();
}

}  // namespace

json FromS3Destination(const json& s3) { return s3; }

Result<std::shared_ptr<const DestinationConfig>> ParseDestination(const json& ext,
                                                                  const std::string& name) {
  if (!ext.is_object()) return Invalid("ExtendedS3DestinationConfiguration must be an object");
  auto c = std::make_shared<DestinationConfig>();
  c->input = ext;
  c->bucket_arn = Str(ext, "BucketARN");
  const std::string kS3Arn = "arn:aws:s3:::";
  if (c->bucket_arn.compare(0, kS3Arn.size(), kS3Arn) != 0) {
    return Invalid("BucketARN must be arn:aws:s3:::<bucket>");
  }
  c->bucket = c->bucket_arn.substr(kS3Arn.size());
  if (!ValidBucketName(c->bucket)) return Invalid("BucketARN names an invalid bucket");
  c->role_arn = Str(ext, "RoleARN");

  if (ext.contains("BufferingHints") && ext["BufferingHints"].is_object()) {
    const json& bh = ext["BufferingHints"];
    if (bh.contains("SizeInMBs")) {
      if (!bh["SizeInMBs"].is_number_integer()) return Invalid("SizeInMBs must be an integer");
      int64_t mb = bh["SizeInMBs"].get<int64_t>();
      if (mb < 1 || mb > 128) return Invalid("BufferingHints SizeInMBs must be between 1 and 128");
      c->size_bytes = uint64_t(mb) << 20;
    }
    if (bh.contains("IntervalInSeconds")) {
      if (!bh["IntervalInSeconds"].is_number_integer()) {
        return Invalid("IntervalInSeconds must be an integer");
      }
      int64_t s = bh["IntervalInSeconds"].get<int64_t>();
      if (s < 0 || s > 900) return Invalid("BufferingHints IntervalInSeconds must be between 0 and 900");
      c->interval_seconds = int(s);
    }
  }
  std::string comp = Str(ext, "CompressionFormat");
  if (comp.empty() || comp == "UNCOMPRESSED") {
    c->compression = RawCompression::kUncompressed;
  } else if (comp == "GZIP") {
    c->compression = RawCompression::kGzip;
  } else {
    return Invalid("CompressionFormat " + comp + " is not supported (UNCOMPRESSED or GZIP)");
  }
  if (ext.contains("EncryptionConfiguration") && ext["EncryptionConfiguration"].is_object() &&
      ext["EncryptionConfiguration"].contains("KMSEncryptionConfig")) {
    return Invalid("KMSEncryptionConfig is not supported yet: Tarn has no KMS; use "
                   "NoEncryptionConfig");
  }
  if (Enabled(ext.value("CloudWatchLoggingOptions", json::object()), false)) {
    return Invalid("CloudWatchLoggingOptions Enabled=true is not supported: delivery errors go to "
                   "Tarn's log, /metrics and the ErrorOutputPrefix");
  }
  std::string backup = Str(ext, "S3BackupMode");
  if (!backup.empty() && backup != "Disabled") {
    return Invalid("S3BackupMode " + backup + " is not supported (Disabled)");
  }
  std::string tz = Str(ext, "CustomTimeZone");
  if (!tz.empty() && tz != "UTC" && tz != "Etc/UTC") {
    return Invalid("CustomTimeZone " + tz + " is not supported: prefixes are evaluated in UTC");
  }
  c->file_extension = Str(ext, "FileExtension");
  if (!c->file_extension.empty() &&
      (c->file_extension[0] != '.' || c->file_extension.size() > 128 ||
       c->file_extension.find('/') != std::string::npos)) {
    return Invalid("FileExtension must start with '.' and hold no '/'");
  }
  c->dynamic_partitioning =
      Enabled(ext.value("DynamicPartitioningConfiguration", json::object()), false);
  RETURN_IF_ERROR(ParseProcessing(ext.value("ProcessingConfiguration", json::object()), c.get()));
  RETURN_IF_ERROR(ParseConversion(ext.value("DataFormatConversionConfiguration", json::object()),
                                  c.get()));
  if (c->convert && c->compression != RawCompression::kUncompressed) {
    // AWS: with format conversion the Parquet codec compresses; CompressionFormat must be
    // UNCOMPRESSED.
    return Invalid("CompressionFormat must be UNCOMPRESSED when DataFormatConversionConfiguration "
                   "is enabled (set ParquetSerDe Compression instead)");
  }

  std::string prefix = Str(ext, "Prefix");
  std::string error_prefix = Str(ext, "ErrorOutputPrefix");
  // Tarn's defaults: Hive-style partitions (DESIGN.md §3) so every engine reads them as is.
  const std::string hive =
      "year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/";
  ASSIGN_OR_RETURN(c->prefix, PrefixTemplate::Parse(prefix.empty() ? "iot/" + name + "/" + hive : prefix,
                                                    c->dynamic_partitioning, false));
  ASSIGN_OR_RETURN(c->error_prefix,
                   PrefixTemplate::Parse(error_prefix.empty()
                                             ? "errors/" + name + "/!{firehose:error-output-type}/" + hive
                                             : error_prefix,
                                         false, true));
  if (!prefix.empty() && c->prefix.has_expressions() && error_prefix.empty()) {
    // AWS: "If you specify an expression for the prefix, you must also specify one for
    // ErrorOutputPrefix".
    return Invalid("ErrorOutputPrefix is required when Prefix contains expressions");
  }
  if (c->dynamic_partitioning) {
    if (c->prefix.query_keys().empty()) {
      return Invalid("with dynamic partitioning enabled, Prefix must use at least one "
                     "!{partitionKeyFromQuery:<key>} expression");
    }
    if (c->jq_query.empty()) {
      return Invalid("partitionKeyFromQuery needs a MetadataExtraction processor with a "
                     "MetadataExtractionQuery");
    }
  } else if (!c->jq_query.empty()) {
    return Invalid("MetadataExtraction requires DynamicPartitioningConfiguration Enabled=true");
  }
  return std::shared_ptr<const DestinationConfig>(std::move(c));
}

json DestinationConfig::Description() const {
  json d = input;
  d["BucketARN"] = bucket_arn;
  if (!role_arn.empty()) d["RoleARN"] = role_arn;
  d["Prefix"] = prefix.text();
  d["ErrorOutputPrefix"] = error_prefix.text();
  d["BufferingHints"] = {{"SizeInMBs", int64_t(size_bytes >> 20)},
                         {"IntervalInSeconds", interval_seconds}};
  d["CompressionFormat"] = compression == RawCompression::kGzip ? "GZIP" : "UNCOMPRESSED";
  if (!d.contains("EncryptionConfiguration")) {
    d["EncryptionConfiguration"] = {{"NoEncryptionConfig", "NoEncryption"}};
  }
  if (!d.contains("CloudWatchLoggingOptions")) d["CloudWatchLoggingOptions"] = {{"Enabled", false}};
  d["S3BackupMode"] = "Disabled";
  return d;
}

}  // namespace tarn::streams
