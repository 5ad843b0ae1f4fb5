#include "sql/lake/table_view.h"

#include <cstdio>

#include "catalog/snappy_text.h"
#include "core/strings.h"
#include "sql/lake/sql_text.h"

namespace tarn::sql::lake {

namespace {

struct Col {
  std::string name;
  std::string duck_type;
};

std::string Param(const catalog::TableInfo& t, const std::string& key) {
  if (auto it = t.serde_parameters.find(key); it != t.serde_parameters.end()) return it->second;
  if (auto it = t.parameters.find(key); it != t.parameters.end()) return it->second;
  return "";
}

// `k=v` folder segments of a file's directory, in order.
std::vector<std::pair<std::string, std::string>> HiveSegments(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t last = path.rfind('/');
  if (last == std::string::npos) return out;
  for (const std::string& seg : Split(path.substr(0, last), '/')) {
    size_t eq = seg.find('=');
    if (eq != std::string::npos && eq > 0) out.emplace_back(ToLower(seg.substr(0, eq)), seg.substr(eq + 1));
  }
  return out;
}

// True when DuckDB's hive_partitioning derives exactly the catalog's partition values.
bool HiveLayout(const std::vector<catalog::Column>& keys, const std::vector<PartitionFiles>& parts) {
  std::vector<std::string> names;
  bool first = true;
  for (const auto& p : parts) {
    for (const auto& path : p.paths) {
      auto segs = HiveSegments(path);
      std::vector<std::string> these;
      for (const auto& [k, v] : segs) these.push_back(k);
      if (first) {
        names = these;
        first = false;
      } else if (these != names) {
        return false;  // DuckDB wants the same keys in every path
      }
      for (size_t i = 0; i < keys.size(); ++i) {
        std::string key = ToLower(keys[i].name);
        int seen = 0;
        for (const auto& [k, v] : segs) {
          if (k != key) continue;
          if (i >= p.values.size() || v != p.values[i]) return false;
          ++seen;
        }
        if (seen != 1) return false;
      }
    }
  }
  return true;
}

std::string PathList(const std::vector<std::string>& paths) {
  std::string out = "[";
  for (size_t i = 0; i < paths.size(); ++i) {
    if (i) out += ", ";
    out += SqlLiteral(paths[i]);
  }
  return out + "]";
}

std::string TypeMap(const std::vector<Col>& cols) {
  std::string out = "{";
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i) out += ", ";
    out += SqlLiteral(cols[i].name) + ": " + SqlLiteral(cols[i].duck_type);
  }
  return out + "}";
}

// Snappy-compressed text: the table says so (Glue crawlers' compressionType), a file is named
// so, or the first file starts with the snappy framing format's stream identifier. DuckDB
// reads gzip and zstd text itself, but not snappy.
bool SnappyText(const catalog::TableInfo& t, const std::vector<PartitionFiles>& parts) {
  if (ToLower(Param(t, "compressionType")) == "snappy") return true;
  const std::string* first = nullptr;
  for (const auto& p : parts) {
    for (const auto& path : p.paths) {
      std::string low = ToLower(path);
      if (EndsWith(low, ".snappy") || EndsWith(low, ".sz")) return true;
      if (!first) first = &path;
    }
  }
  if (!first) return false;
  char head[10] = {};
  FILE* f = std::fopen(first->c_str(), "rb");
  if (!f) return false;
  size_t n = std::fread(head, 1, sizeof(head), f);
  std::fclose(f);
  return catalog::IsSnappyFramed(std::string_view(head, n));
}

}  // namespace

Result<std::string> LakeTableSelect(const catalog::TableInfo& t, const std::vector<PartitionFiles>& parts) {
  if (t.table_type == "VIRTUAL_VIEW") {
    return Error(ErrorCode::kNotImplemented, "catalog views (" + t.database + "." + t.name + ") cannot be queried yet");
  }
  std::string cls = ToLower(t.classification);
  if (cls.empty()) cls = "parquet";
  if (cls != "parquet" && cls != "json" && cls != "csv") {
    return Error(ErrorCode::kNotImplemented, "table " + t.database + "." + t.name + " holds " + cls +
                                                 " files, which the SQL endpoint cannot read yet (Parquet, JSON, CSV)");
  }
  std::vector<Col> cols, keys;
  for (const auto& c : t.columns) {
    ASSIGN_OR_RETURN(std::string d, catalog::HiveToDuckDbType(c.type));
    cols.push_back({c.name, d});
  }
  for (const auto& k : t.partition_keys) {
    bool dup = false;
    for (const auto& c : cols) dup = dup || EqualsIgnoreCase(c.name, k.name);
    if (dup) continue;
    ASSIGN_OR_RETURN(std::string d, catalog::HiveToDuckDbType(k.type));
    keys.push_back({k.name, d});
  }
  if (cols.empty() && keys.empty()) {
    return Error(ErrorCode::kInvalidInput, "table " + t.database + "." + t.name + " has no columns in the catalog");
  }
  size_t nfiles = 0;
  for (const auto& p : parts) nfiles += p.paths.size();
  if ((cls == "json" || cls == "csv") && SnappyText(t, parts)) {
    return Error(ErrorCode::kNotImplemented,
                 "table " + t.database + "." + t.name + " holds snappy-compressed " + cls +
                     " files, which the SQL endpoint cannot read (DuckDB reads gzip and zstd text, not "
                     "snappy): convert them to Parquet (an ETL job) or store them gzip/zstd-compressed");
  }
  if (nfiles == 0) {
    std::vector<std::string> sel;
    for (const auto& c : cols) sel.push_back("CAST(NULL AS " + c.duck_type + ") AS " + SqlIdent(c.name));
    for (const auto& k : keys) sel.push_back("CAST(NULL AS " + k.duck_type + ") AS " + SqlIdent(k.name));
    return "SELECT " + Join(sel, ", ") + " LIMIT 0";
  }
  bool hive = !keys.empty() && HiveLayout(t.partition_keys, parts);

  auto reader = [&](const std::vector<std::string>& paths, bool with_hive) {
    std::string hive_opts = with_hive ? ", hive_partitioning=true, hive_types=" + TypeMap(keys)
                                      : std::string(", hive_partitioning=false");
    if (cls == "parquet") {
      bool strings = false;
      for (const auto& c : t.columns) strings = strings || ToLower(c.type) == "string";
      return "read_parquet(" + PathList(paths) + ", union_by_name=true" +
             (strings ? ", binary_as_string=true" : "") + hive_opts + ")";
    }
    if (cls == "json") {
      return "read_json(" + PathList(paths) + ", format='auto', columns=" + TypeMap(cols) + hive_opts + ")";
    }
    // CSV: the SerDe's separator/quote/escape (LazySimpleSerDe field.delim, OpenCSVSerde
    // separatorChar/quoteChar/escapeChar) and the table's skip.header.line.count.
    std::string delim = Param(t, "field.delim");
    if (delim.empty()) delim = Param(t, "separatorChar");
    if (delim.empty()) delim = Param(t, "delimiter");
    if (delim.empty()) delim = ",";
    std::string opts = ", header=false, delim=" + SqlLiteral(delim) + ", null_padding=true";
    int64_t skip = ParseInt64(Param(t, "skip.header.line.count")).value_or(0);
    if (skip > 0) opts += ", skip=" + std::to_string(skip);
    if (std::string q = Param(t, "quoteChar"); !q.empty()) opts += ", quote=" + SqlLiteral(q);
    if (std::string e = Param(t, "escapeChar"); !e.empty()) opts += ", escape=" + SqlLiteral(e);
    if (std::string n = Param(t, "serialization.null.format"); !n.empty()) opts += ", nullstr=" + SqlLiteral(n);
    return "read_csv(" + PathList(paths) + opts + ", columns=" + TypeMap(cols) + hive_opts + ")";
  };
  auto projection = [&](const std::vector<std::string>* constants) {
    std::vector<std::string> sel;
    for (const auto& c : cols) sel.push_back("CAST(" + SqlIdent(c.name) + " AS " + c.duck_type + ") AS " + SqlIdent(c.name));
    for (size_t i = 0; i < keys.size(); ++i) {
      std::string src;
      if (constants) {
        // Partition values in key order; keys duplicated by a column were dropped above.
        size_t at = 0;
        for (size_t k = 0; k < t.partition_keys.size(); ++k) {
          if (EqualsIgnoreCase(t.partition_keys[k].name, keys[i].name)) at = k;
        }
        src = at < constants->size() ? SqlLiteral((*constants)[at]) : "NULL";
      } else {
        src = SqlIdent(keys[i].name);
      }
      sel.push_back("CAST(" + src + " AS " + keys[i].duck_type + ") AS " + SqlIdent(keys[i].name));
    }
    return Join(sel, ", ");
  };
  if (keys.empty() || hive) {
    std::vector<std::string> all;
    for (const auto& p : parts) all.insert(all.end(), p.paths.begin(), p.paths.end());
    return "SELECT " + projection(nullptr) + " FROM " + reader(all, hive);
  }
  std::vector<std::string> branches;
  for (const auto& p : parts) {
    if (p.paths.empty()) continue;
    branches.push_back("SELECT " + projection(&p.values) + " FROM " + reader(p.paths, false));
  }
  return Join(branches, " UNION ALL ");
}

}  // namespace tarn::sql::lake
