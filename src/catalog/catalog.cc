#include "catalog/catalog.h"

#include "catalog/store.h"
#include "core/strings.h"

namespace tarn::catalog {

namespace {

std::map<std::string, std::string> StringMap(const json& j) {
  std::map<std::string, std::string> out;
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

std::vector<Column> Columns(const json& arr) {
  std::vector<Column> out;
  if (!arr.is_array()) return out;
  for (const auto& c : arr) {
    out.push_back({c.value("Name", ""), c.value("Type", "string"), c.value("Comment", "")});
  }
  return out;
}

TableInfo ToInfo(const json& t) {
  TableInfo info;
  info.database = t.value("DatabaseName", "");
  info.name = t.value("Name", "");
  info.table_type = t.value("TableType", "");
  info.version_id = t.value("VersionId", "");
  info.parameters = StringMap(t.value("Parameters", json::object()));
  if (auto it = info.parameters.find("classification"); it != info.parameters.end()) {
    info.classification = it->second;
  }
  info.partition_keys = Columns(t.value("PartitionKeys", json::array()));
  if (t.contains("StorageDescriptor") && t["StorageDescriptor"].is_object()) {
    const json& sd = t["StorageDescriptor"];
    info.location = sd.value("Location", "");
    info.columns = Columns(sd.value("Columns", json::array()));
    info.input_format = sd.value("InputFormat", "");
    info.output_format = sd.value("OutputFormat", "");
    if (sd.contains("SerdeInfo") && sd["SerdeInfo"].is_object()) {
      info.serialization_library = sd["SerdeInfo"].value("SerializationLibrary", "");
      info.serde_parameters = StringMap(sd["SerdeInfo"].value("Parameters", json::object()));
    }
  }
  if (info.classification.empty()) {
    // Tables made by hand often carry only the formats: infer what they hold.
    if (info.input_format.find("Parquet") != std::string::npos) info.classification = "parquet";
    else if (info.serialization_library.find("Json") != std::string::npos) info.classification = "json";
    else if (info.serialization_library.find("LazySimpleSerDe") != std::string::npos ||
             info.serialization_library.find("OpenCSVSerde") != std::string::npos) info.classification = "csv";
  }
  return info;
}

class StoreCatalog final : public Catalog {
 public:
  explicit StoreCatalog(CatalogStore* store) : store_(store) {}

  Result<std::vector<std::string>> ListDatabases() override {
    std::vector<std::string> out;
    PageRequest pr;
    do {
      ASSIGN_OR_RETURN(Page page, store_->GetDatabases(pr));
      for (const json& d : page.items) out.push_back(d.value("Name", ""));
      pr.next_token = page.next_token;
    } while (!pr.next_token.empty());
    return out;
  }

  Result<std::vector<TableInfo>> ListTables(const std::string& database) override {
    std::vector<TableInfo> out;
    PageRequest pr;
    do {
      ASSIGN_OR_RETURN(Page page, store_->GetTables(database, "", pr));
      for (const json& t : page.items) out.push_back(ToInfo(t));
      pr.next_token = page.next_token;
    } while (!pr.next_token.empty());
    return out;
  }

  Result<TableInfo> GetTable(const std::string& database, const std::string& table) override {
    ASSIGN_OR_RETURN(json t, store_->GetTable(database, table));
    return ToInfo(t);
  }

  Result<TableScan> PlanScan(const std::string& database, const std::string& table,
                             const std::string& predicate) override {
    TableScan scan;
    ASSIGN_OR_RETURN(json t, store_->GetTable(database, table));
    scan.table = ToInfo(t);
    if (scan.table.partition_keys.empty()) {
      if (!Trim(predicate).empty()) {
        return Error(ErrorCode::kInvalidInput, "table " + table + " has no partition keys");
      }
      scan.locations.push_back(scan.table.location);
      return scan;
    }
    PageRequest pr;
    pr.max_results = 1000;
    do {
      ASSIGN_OR_RETURN(Page page, store_->GetPartitions(database, table, predicate, {}, pr));
      for (const json& p : page.items) {
        PartitionInfo info;
        for (const auto& v : p["Values"]) info.values.push_back(v.get<std::string>());
        if (p.contains("StorageDescriptor") && p["StorageDescriptor"].is_object()) {
          info.location = p["StorageDescriptor"].value("Location", "");
        }
        if (info.location.empty()) {
          // Hive layout under the table's location.
          info.location = scan.table.location;
          if (!info.location.empty() && info.location.back() != '/') info.location += '/';
          for (size_t i = 0; i < info.values.size() && i < scan.table.partition_keys.size(); ++i) {
            info.location += scan.table.partition_keys[i].name + "=" + info.values[i] + "/";
          }
        }
        scan.locations.push_back(info.location);
        scan.partitions.push_back(std::move(info));
      }
      pr.next_token = page.next_token;
    } while (!pr.next_token.empty());
    return scan;
  }

 private:
  CatalogStore* store_;
};

}  // namespace

std::unique_ptr<Catalog> NewCatalog(CatalogStore* store) {
  return std::make_unique<StoreCatalog>(store);
}

Result<std::pair<std::string, std::string>> SplitS3Location(const std::string& location) {
  size_t scheme = location.find("://");
  if (scheme == std::string::npos) {
    return Error(ErrorCode::kInvalidInput, "not an s3:// location: " + location);
  }
  std::string s = location.substr(0, scheme);
  if (s != "s3" && s != "s3a" && s != "s3n") {
    return Error(ErrorCode::kInvalidInput, "not an s3:// location: " + location);
  }
  std::string rest = location.substr(scheme + 3);
  size_t slash = rest.find('/');
  if (slash == std::string::npos) return std::make_pair(rest, std::string());
  return std::make_pair(rest.substr(0, slash), rest.substr(slash + 1));
}

}  // namespace tarn::catalog
