#include "catalog/crawler.h"

#include <re2/re2.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "catalog/classifier.h"
#include "catalog/cron.h"
#include "core/log.h"
#include "core/strings.h"
#include "sql/duckdb/engine.h"

namespace tarn::catalog {

namespace {

const std::set<std::string> kActions = {
    "CreateCrawler", "GetCrawler",         "GetCrawlers",          "ListCrawlers",
    "UpdateCrawler", "DeleteCrawler",      "StartCrawler",         "StopCrawler",
    "GetCrawlerMetrics", "StartCrawlerSchedule", "StopCrawlerSchedule", "UpdateCrawlerSchedule"};

Status CrawlerNotFound(const std::string& name) {
  return Error(ErrorCode::kEntityNotFound, "Crawler entry with name " + name + " does not exist");
}

// s3://bucket/prefix → {bucket, prefix ending in '/' or empty}.
Result<std::pair<std::string, std::string>> ParseS3Path(const std::string& path) {
  if (!StartsWith(path, "s3://") && !StartsWith(path, "s3a://")) {
    return Error(ErrorCode::kInvalidInput, "S3 target path must start with s3://: " + path);
  }
  std::string rest = path.substr(path.find("://") + 3);
  size_t slash = rest.find('/');
  std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (bucket.empty()) return Error(ErrorCode::kInvalidInput, "S3 target path needs a bucket: " + path);
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  return std::make_pair(bucket, prefix);
}

// Glue exclude patterns are globs relative to the include path: * within a folder name,
// ** across folders, ? one character, {a,b} alternatives, [..] classes.
std::string GlobToRegex(const std::string& glob) {
  std::string out;
  int braces = 0;
  for (size_t i = 0; i < glob.size(); ++i) {
    char c = glob[i];
    if (c == '*') {
      if (i + 1 < glob.size() && glob[i + 1] == '*') {
        out += ".*";
        ++i;
      } else {
        out += "[^/]*";
      }
    } else if (c == '?') {
      out += "[^/]";
    } else if (c == '{') {
      out += "(?:";
      ++braces;
    } else if (c == '}' && braces > 0) {
      out += ")";
      --braces;
    } else if (c == ',' && braces > 0) {
      out += "|";
    } else if (c == '[' || c == ']') {
      out += c;
    } else {
      out += RE2::QuoteMeta(std::string(1, c));
    }
  }
  return out;
}

std::string SanitizeName(const std::string& s) {
  std::string out;
  for (char c : ToLower(s)) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_';
  return out.empty() ? "_" : out;
}

bool Hidden(std::string_view segment) {
  return segment.empty() || segment[0] == '_' || segment[0] == '.';
}

struct FileEntry {
  std::string bucket, key;
  std::vector<std::string> dirs;  // folder names from the bucket root down to the file
  uint64_t size = 0;
  // Files with the same schema share one object (the classifier's footer cache, the object
  // cache's JSON), so grouping and merging work once per distinct schema, not per file.
  std::shared_ptr<const FileSchema> schema;
};

// A table candidate: files under bucket/root_dirs with `depth` partition levels below.
struct Group {
  std::string bucket;
  std::vector<std::string> root;
  std::vector<const FileEntry*> files;
};

struct Options {
  bool combine = false;
  int table_level = 0;  // 0 = decide by schema
};

bool Similar(const FileSchema& merged, const FileSchema& f) {
  size_t common = 0;
  for (const Column& c : f.columns) {
    for (const Column& m : merged.columns) {
      if (m.name == c.name) {
        ++common;
        break;
      }
    }
  }
  // Glue groups folders into one table when their schemas are "similar"; Tarn's rule: at
  // least 70% of the columns seen so far are in this file as well (documented in catalog.md).
  return merged.columns.empty() || common * 10 >= merged.columns.size() * 7;
}

// The distinct schemas of `files`, in order of first appearance.
std::vector<const FileSchema*> DistinctSchemas(const std::vector<const FileEntry*>& files) {
  std::vector<const FileSchema*> out;
  std::unordered_set<const FileSchema*> seen;
  const FileSchema* last = nullptr;
  for (const FileEntry* f : files) {
    if (f->schema.get() == last) continue;  // neighbours mostly share one
    last = f->schema.get();
    if (seen.insert(last).second) out.push_back(last);
  }
  return out;
}

bool Combinable(const std::vector<const FileEntry*>& files, size_t depth, const Options& opts) {
  if (files.empty()) return false;
  size_t levels = files[0]->dirs.size() - depth;
  bool hive = true;
  for (const FileEntry* f : files) {
    if (f->dirs.size() - depth != levels) return false;
    if (levels > 0 && f->dirs[depth].find('=') == std::string::npos) hive = false;
  }
  std::vector<const FileSchema*> schemas = DistinctSchemas(files);
  FileSchema merged = *schemas[0];
  for (const FileSchema* s : schemas) {
    if (!merged.CompatibleWith(*s)) return false;
  }
  for (const FileSchema* s : schemas) {
    if (!opts.combine && !hive && !Similar(merged, *s)) return false;
    merged.Merge(*s);
  }
  return true;
}

void GroupFiles(const std::string& bucket, std::vector<const FileEntry*> files, size_t depth,
                std::vector<std::string> root, const Options& opts, std::vector<Group>* out,
                std::vector<std::string>* log) {
  if (files.empty()) return;
  if (Combinable(files, depth, opts)) {
    out->push_back({bucket, root, files});
    return;
  }
  std::vector<const FileEntry*> direct;
  std::map<std::string, std::vector<const FileEntry*>> children;
  for (const FileEntry* f : files) {
    if (f->dirs.size() == depth) {
      direct.push_back(f);
    } else {
      children[f->dirs[depth]].push_back(f);
    }
  }
  if (!direct.empty()) {
    if (Combinable(direct, depth, opts)) {
      out->push_back({bucket, root, direct});
    } else {
      log->push_back("Files directly under s3://" + bucket + "/" + Join(root, "/") +
                     " have incompatible schemas; they were not catalogued");
    }
  }
  for (auto& [name, list] : children) {
    std::vector<std::string> sub = root;
    sub.push_back(name);
    GroupFiles(bucket, std::move(list), depth + 1, std::move(sub), opts, out, log);
  }
}

json ColumnsJson(const std::vector<Column>& cols) {
  json a = json::array();
  for (const Column& c : cols) a.push_back({{"Name", c.name}, {"Type", c.type}});
  return a;
}

std::vector<Column> ColumnsOf(const json& table) {
  std::vector<Column> out;
  if (!table.contains("StorageDescriptor")) return out;
  const json& sd = table["StorageDescriptor"];
  if (!sd.contains("Columns")) return out;
  for (const auto& c : sd["Columns"]) out.push_back({c.value("Name", ""), c.value("Type", "string"), ""});
  return out;
}

json StorageDescriptorFor(const FileSchema& s, const std::string& location,
                          const json& parameters) {
  HiveFormat f = FormatFor(s);
  json serde_params = json::parse(f.serde_params_json);
  if (s.classification == "json") {
    std::vector<std::string> names;
    for (const Column& c : s.columns) names.push_back(c.name);
    serde_params["paths"] = Join(names, ",");
  }
  return {{"Columns", ColumnsJson(s.columns)},
          {"Location", location},
          {"InputFormat", f.input_format},
          {"OutputFormat", f.output_format},
          {"Compressed", !s.compression.empty()},
          {"NumberOfBuckets", -1},
          {"SerdeInfo", {{"SerializationLibrary", f.serde}, {"Parameters", serde_params}}},
          {"BucketColumns", json::array()},
          {"SortColumns", json::array()},
          {"Parameters", parameters},
          {"StoredAsSubDirectories", false}};
}

json TableParameters(const std::string& crawler, const FileSchema& s, size_t objects,
                     uint64_t bytes) {
  json p = {{"classification", s.classification},
            {"compressionType", s.compression.empty() ? "none" : s.compression},
            {"typeOfData", "file"},
            {"UPDATED_BY_CRAWLER", crawler},
            {"CrawlerSchemaSerializerVersion", "1.0"},
            {"CrawlerSchemaDeserializerVersion", "1.0"},
            {"objectCount", std::to_string(objects)},
            {"sizeKey", std::to_string(bytes)}};
  if (s.classification == "csv") {
    p["delimiter"] = s.delimiter;
    p["areColumnsQuoted"] = "false";
    if (s.has_header) p["skip.header.line.count"] = "1";
  }
  return p;
}

// Columns after a crawl: the table's, widened where the data widened, then new ones.
std::vector<Column> EvolveColumns(const std::vector<Column>& old, const std::vector<Column>& seen) {
  std::vector<Column> out = old;
  for (const Column& c : seen) {
    bool found = false;
    for (Column& o : out) {
      if (o.name == c.name) {
        found = true;
        std::string w = WidenHiveTypes(o.type, c.type);
        if (!w.empty()) o.type = w;
      }
    }
    if (!found) out.push_back(c);
  }
  return out;
}

bool SameColumns(const std::vector<Column>& a, const std::vector<Column>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].type != b[i].type) return false;
  }
  return true;
}

}  // namespace

CrawlerService::CrawlerService(CatalogStore* store, ObjectSource* objects, Clock* clock)
    : store_(store), objects_(objects), clock_(clock) {}

CrawlerService::~CrawlerService() { Stop(); }

Status CrawlerService::Start(int tick_ms) {
  // Crawls that were running when the lake stopped did not finish: they are READY again.
  RETURN_IF_ERROR(store_->meta()->Exec("UPDATE catalog_crawlers SET state = 'READY'"));
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = false;
  scheduler_ = std::thread([this, tick_ms] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(tick_ms));
      if (stopping_) break;
      lock.unlock();
      RunDue(clock_->NowSeconds());
      lock.lock();
      Reap();
    }
  });
  return Status::OK();
}

void CrawlerService::Stop() {
  std::map<std::string, Running> runs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [name, r] : running_) r.stop->store(true);
  }
  cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    runs.swap(running_);
  }
  for (auto& [name, r] : runs) {
    if (r.thread.joinable()) r.thread.join();
  }
}

void CrawlerService::Reap() {
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->second.done) {
      if (it->second.thread.joinable()) it->second.thread.join();
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
}

bool CrawlerService::Owns(const std::string& action) const { return kActions.count(action) > 0; }

Result<json> CrawlerService::Load(const std::string& name) {
  ASSIGN_OR_RETURN(Statement q, store_->meta()->Prepare(
      "SELECT doc, state FROM catalog_crawlers WHERE name = ?1"));
  q.Bind(1, name);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return CrawlerNotFound(name);
  json doc = json::parse(q.ColumnText(0), nullptr, false);
  if (doc.is_discarded()) return Error(ErrorCode::kMetadataError, "corrupt crawler " + name);
  doc["_state"] = q.ColumnText(1);
  return doc;
}

Status CrawlerService::Save(const std::string& name, const json& doc_in, int64_t next_run) {
  json doc = doc_in;
  doc.erase("_state");
  ASSIGN_OR_RETURN(Statement up, store_->meta()->Prepare(
      next_run < 0 ? "UPDATE catalog_crawlers SET doc = ?2 WHERE name = ?1"
                   : "UPDATE catalog_crawlers SET doc = ?2, next_run = ?3 WHERE name = ?1"));
  up.Bind(1, name).Bind(2, doc.dump());
  if (next_run >= 0) up.Bind(3, next_run);
  return up.Run();
}

Status CrawlerService::SetState(const std::string& name, const std::string& state) {
  ASSIGN_OR_RETURN(Statement up, store_->meta()->Prepare(
      "UPDATE catalog_crawlers SET state = ?2 WHERE name = ?1"));
  up.Bind(1, name).Bind(2, state);
  return up.Run();
}

Status CrawlerService::ValidateDefinition(json* doc, bool create) {
  json& d = *doc;
  if (!d.contains("Targets") || !d["Targets"].is_object()) {
    return Error(ErrorCode::kInvalidInput, "Targets is required");
  }
  const json& t = d["Targets"];
  for (const char* kind : {"JdbcTargets", "MongoDBTargets", "DynamoDBTargets", "CatalogTargets",
                           "DeltaTargets", "IcebergTargets", "HudiTargets"}) {
    if (t.contains(kind) && t[kind].is_array() && !t[kind].empty()) {
      return Error(ErrorCode::kInvalidInput,
                   std::string(kind) + " are not supported by this lake; use S3Targets");
    }
  }
  if (!t.contains("S3Targets") || !t["S3Targets"].is_array() || t["S3Targets"].empty()) {
    return Error(ErrorCode::kInvalidInput, "Targets.S3Targets needs at least one path");
  }
  for (const auto& s3 : t["S3Targets"]) {
    if (!s3.is_object() || !s3.contains("Path") || !s3["Path"].is_string()) {
      return Error(ErrorCode::kInvalidInput, "every S3Target needs a Path");
    }
    RETURN_IF_ERROR(ParseS3Path(s3["Path"].get<std::string>()));
    if (s3.contains("Exclusions")) {
      for (const auto& e : s3["Exclusions"]) {
        RE2 re(GlobToRegex(e.is_string() ? e.get<std::string>() : ""));
        if (!e.is_string() || !re.ok()) return Error(ErrorCode::kInvalidInput, "bad Exclusions pattern");
      }
    }
  }
  if (!d.contains("DatabaseName") || !d["DatabaseName"].is_string() ||
      d["DatabaseName"].get<std::string>().empty()) {
    return Error(ErrorCode::kInvalidInput, "DatabaseName is required");
  }
  if (d.contains("Schedule") && d["Schedule"].is_string() && !d["Schedule"].get<std::string>().empty()) {
    RETURN_IF_ERROR(CronSchedule::Parse(d["Schedule"].get<std::string>()));
  }
  json scp = d.contains("SchemaChangePolicy") && d["SchemaChangePolicy"].is_object()
                 ? d["SchemaChangePolicy"]
                 : json::object();
  if (!scp.contains("UpdateBehavior")) scp["UpdateBehavior"] = "UPDATE_IN_DATABASE";
  if (!scp.contains("DeleteBehavior")) scp["DeleteBehavior"] = "DEPRECATE_IN_DATABASE";
  std::string ub = scp["UpdateBehavior"], db = scp["DeleteBehavior"];
  if (ub != "UPDATE_IN_DATABASE" && ub != "LOG") {
    return Error(ErrorCode::kInvalidInput, "UpdateBehavior must be UPDATE_IN_DATABASE or LOG");
  }
  if (db != "DEPRECATE_IN_DATABASE" && db != "DELETE_FROM_DATABASE" && db != "LOG") {
    return Error(ErrorCode::kInvalidInput,
                 "DeleteBehavior must be DEPRECATE_IN_DATABASE, DELETE_FROM_DATABASE or LOG");
  }
  d["SchemaChangePolicy"] = scp;
  json rp = d.contains("RecrawlPolicy") && d["RecrawlPolicy"].is_object() ? d["RecrawlPolicy"]
                                                                          : json::object();
  if (!rp.contains("RecrawlBehavior")) rp["RecrawlBehavior"] = "CRAWL_EVERYTHING";
  std::string rb = rp["RecrawlBehavior"];
  if (rb != "CRAWL_EVERYTHING" && rb != "CRAWL_NEW_FOLDERS_ONLY") {
    return Error(ErrorCode::kInvalidInput,
                 "RecrawlBehavior must be CRAWL_EVERYTHING or CRAWL_NEW_FOLDERS_ONLY (" + rb +
                     " is not supported)");
  }
  // Glue: incremental crawls may not change or delete existing schemas.
  if (rb == "CRAWL_NEW_FOLDERS_ONLY" && (ub != "LOG" || db != "LOG")) {
    return Error(ErrorCode::kInvalidInput,
                 "The SchemaChangePolicy for Crawl new folders only must be LOG for both "
                 "UpdateBehavior and DeleteBehavior");
  }
  d["RecrawlPolicy"] = rp;
  if (d.contains("Configuration") && d["Configuration"].is_string() &&
      !d["Configuration"].get<std::string>().empty()) {
    json c = json::parse(d["Configuration"].get<std::string>(), nullptr, false);
    if (c.is_discarded() || !c.is_object()) {
      return Error(ErrorCode::kInvalidInput, "Configuration is not a JSON object");
    }
    if (c.contains("Grouping")) {
      const json& g = c["Grouping"];
      if (g.contains("TableGroupingPolicy") && g["TableGroupingPolicy"] != "CombineCompatibleSchemas") {
        return Error(ErrorCode::kInvalidInput, "TableGroupingPolicy must be CombineCompatibleSchemas");
      }
      if (g.contains("TableLevelConfiguration") &&
          (!g["TableLevelConfiguration"].is_number_integer() || g["TableLevelConfiguration"].get<int>() < 1)) {
        return Error(ErrorCode::kInvalidInput, "TableLevelConfiguration must be a positive integer");
      }
    }
  }
  if (!d.contains("LineageConfiguration")) d["LineageConfiguration"] = {{"CrawlerLineageSettings", "DISABLE"}};
  (void)create;
  return Status::OK();
}

json CrawlerService::Describe(const std::string& name, json doc) {
  json out = doc;
  for (const char* internal : {"_state", "_metrics", "_last_crawl", "_start_ms", "Schedule",
                               "ScheduleState", "Tags"}) {
    out.erase(internal);
  }
  out["State"] = doc.value("_state", "READY");
  if (doc.contains("Schedule") && doc["Schedule"].is_string() &&
      !doc["Schedule"].get<std::string>().empty()) {
    out["Schedule"] = {{"ScheduleExpression", doc["Schedule"]},
                       {"State", doc.value("ScheduleState", "SCHEDULED")}};
  }
  if (doc.contains("_last_crawl")) out["LastCrawl"] = doc["_last_crawl"];
  if (out["State"] != "READY" && doc.contains("_start_ms")) {
    out["CrawlElapsedTime"] = clock_->NowMillis() - doc["_start_ms"].get<int64_t>();
  } else {
    out["CrawlElapsedTime"] = 0;
  }
  if (!out.contains("Classifiers")) out["Classifiers"] = json::array();
  return out;
}

Status CrawlerService::StartRun(const std::string& name) {
  if (stopping_) return Error(ErrorCode::kUnavailable, "the lake is stopping");
  Reap();
  if (running_.count(name)) {
    return Error(ErrorCode::kCrawlerRunning, "Crawler with name " + name + " has already started");
  }
  RETURN_IF_ERROR(SetState(name, "RUNNING"));
  Running& r = running_[name];
  r.stop = std::make_shared<std::atomic<bool>>(false);
  auto stop = r.stop;
  r.thread = std::thread([this, name, stop] {
    auto doc = Load(name);
    int64_t start = clock_->NowMillis();
    if (doc.ok()) {
      (*doc)["_start_ms"] = start;
      Save(name, *doc, -1).IgnoreError();
    }
    Result<CrawlSummary> summary = doc.ok() ? Crawl(name, *doc, *stop) : Result<CrawlSummary>(doc.status());
    CrawlSummary s;
    if (summary.ok()) {
      s = std::move(*summary);
    } else {
      s.status = "FAILED";
      s.error_message = summary.status().message();
      s.log.push_back("Crawl failed: " + summary.status().message());
    }
    Status rec = Record(name, s, start, clock_->NowMillis());
    if (!rec.ok()) TLOG_WARN("crawler", "[{}] recording the run failed: {}", name, rec.ToString());
    std::lock_guard<std::mutex> lock(mu_);
    SetState(name, "READY").IgnoreError();
    running_[name].done = true;
    cv_.notify_all();
  });
  return Status::OK();
}

void CrawlerService::WaitIdle(const std::string& name) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    auto it = running_.find(name);
    return it == running_.end() || it->second.done;
  });
}

Result<CrawlSummary> CrawlerService::RunNow(const std::string& name) {
  ASSIGN_OR_RETURN(json doc, Load(name));
  std::atomic<bool> stop{false};
  int64_t start = clock_->NowMillis();
  ASSIGN_OR_RETURN(CrawlSummary s, Crawl(name, doc, stop));
  RETURN_IF_ERROR(Record(name, s, start, clock_->NowMillis()));
  return s;
}

void CrawlerService::RunDue(int64_t now) {
  auto q = store_->meta()->Prepare(
      "SELECT name, doc FROM catalog_crawlers WHERE next_run > 0 AND next_run <= ?1");
  if (!q.ok()) return;
  q->Bind(1, now);
  std::vector<std::pair<std::string, json>> due;
  while (true) {
    auto row = q->Step();
    if (!row.ok() || !*row) break;
    json doc = json::parse(q->ColumnText(1), nullptr, false);
    if (!doc.is_discarded()) due.emplace_back(q->ColumnText(0), std::move(doc));
  }
  for (auto& [name, doc] : due) {
    auto cron = CronSchedule::Parse(doc.value("Schedule", ""));
    int64_t next = cron.ok() ? cron->Next(now) : 0;
    if (Save(name, doc, next < 0 ? 0 : next).ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      Status s = StartRun(name);
      if (s.ok()) {
        TLOG_INFO("crawler", "[{}] started by its schedule", name);
      } else {
        TLOG_INFO("crawler", "[{}] scheduled run skipped: {}", name, s.message());
      }
    }
  }
}

Status CrawlerService::Record(const std::string& name, const CrawlSummary& s, int64_t start_ms,
                              int64_t end_ms) {
  for (const std::string& line : s.log) TLOG_INFO("crawler", "[{}] {}", name, line);
  return store_->meta()->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(json doc, Load(name));
    ASSIGN_OR_RETURN(Statement q, store_->meta()->Prepare(
        "SELECT coalesce(max(run), 0) FROM catalog_crawler_runs WHERE crawler = ?1"));
    q.Bind(1, name);
    ASSIGN_OR_RETURN(bool row, q.Step());
    int64_t run = (row ? q.ColumnInt(0) : 0) + 1;
    double runtime = double(end_ms - start_ms) / 1000.0;
    json rdoc = {{"StartTime", double(start_ms) / 1000.0}, {"EndTime", double(end_ms) / 1000.0},
                 {"Status", s.status}, {"ErrorMessage", s.error_message},
                 {"TablesCreated", s.tables_created}, {"TablesUpdated", s.tables_updated},
                 {"TablesDeleted", s.tables_deleted}, {"PartitionsAdded", s.partitions_added},
                 {"PartitionsDeleted", s.partitions_deleted},
                 {"PartitionsUpdated", s.partitions_updated},
                 {"FilesRead", s.files_read}, {"FilesSkipped", s.files_skipped},
                 {"RuntimeSeconds", runtime}, {"Log", s.log}};
    ASSIGN_OR_RETURN(Statement ins, store_->meta()->Prepare(
        "INSERT INTO catalog_crawler_runs(crawler, run, doc) VALUES (?1, ?2, ?3)"));
    ins.Bind(1, name).Bind(2, run).Bind(3, rdoc.dump());
    RETURN_IF_ERROR(ins.Run());
    ASSIGN_OR_RETURN(Statement rq, store_->meta()->Prepare(
        "SELECT doc FROM catalog_crawler_runs WHERE crawler = ?1 ORDER BY run DESC LIMIT 20"));
    rq.Bind(1, name);
    std::vector<double> runtimes;
    while (true) {
      ASSIGN_OR_RETURN(bool r, rq.Step());
      if (!r) break;
      json d = json::parse(rq.ColumnText(0), nullptr, false);
      if (!d.is_discarded()) runtimes.push_back(d.value("RuntimeSeconds", 0.0));
    }
    std::sort(runtimes.begin(), runtimes.end());
    double median = runtimes.empty() ? 0 : runtimes[runtimes.size() / 2];
    doc["_metrics"] = {{"LastRuntimeSeconds", runtime}, {"MedianRuntimeSeconds", median},
                       {"TablesCreated", s.tables_created}, {"TablesUpdated", s.tables_updated},
                       {"TablesDeleted", s.tables_deleted}, {"PartitionsAdded", s.partitions_added},
                       {"PartitionsDeleted", s.partitions_deleted},
                       {"FilesSkipped", s.files_skipped}};
    json last = {{"Status", s.status},
                 {"LogGroup", "/aws-glue/crawlers"},
                 {"LogStream", name},
                 {"MessagePrefix", "run-" + std::to_string(run)},
                 {"StartTime", double(start_ms) / 1000.0}};
    if (!s.error_message.empty()) last["ErrorMessage"] = s.error_message;
    doc["_last_crawl"] = last;
    doc.erase("_start_ms");
    return Save(name, doc, -1);
  });
}

Result<CrawlSummary> CrawlerService::Crawl(const std::string& name, const json& doc,
                                           const std::atomic<bool>& stop) {
  CrawlSummary sum;
  sum.status = "SUCCEEDED";
  std::string database = ToLower(doc.value("DatabaseName", ""));
  RETURN_IF_ERROR(store_->GetDatabase(database));
  std::string update_behavior = doc["SchemaChangePolicy"].value("UpdateBehavior", "UPDATE_IN_DATABASE");
  std::string delete_behavior = doc["SchemaChangePolicy"].value("DeleteBehavior", "DEPRECATE_IN_DATABASE");
  bool new_folders_only = doc["RecrawlPolicy"].value("RecrawlBehavior", "") == "CRAWL_NEW_FOLDERS_ONLY";
  std::string table_prefix = doc.value("TablePrefix", "");
  Options opts;
  if (doc.contains("Configuration") && doc["Configuration"].is_string()) {
    json c = json::parse(doc["Configuration"].get<std::string>(), nullptr, false);
    if (c.is_object() && c.contains("Grouping")) {
      opts.combine = c["Grouping"].value("TableGroupingPolicy", "") == "CombineCompatibleSchemas";
      opts.table_level = c["Grouping"].value("TableLevelConfiguration", 0);
    }
  }

  using SteadyClock = std::chrono::steady_clock;
  auto seconds_since = [](SteadyClock::time_point t) {
    return std::chrono::duration<double>(SteadyClock::now() - t).count();
  };
  const auto started = SteadyClock::now();

  // The object cache: what the previous crawl saw of each object. An object whose ETag and
  // size are unchanged is not read again; its schema (or "!error") comes from here.
  struct Cached {
    std::string etag;
    int64_t size = -1;
    std::shared_ptr<const FileSchema> schema;  // null: `error`
    std::string error;
    bool seen = false;
  };
  std::unordered_map<std::string, Cached> cache;
  std::unordered_set<std::string> seen_folders;  // "bucket/dir/…" with an object last time
  // Each distinct schema is parsed (from the cache) or serialised (for the cache) once, and
  // equal schemas share one object whichever file (or format) they came from. `interned`
  // holds every schema object seen (so its address stays its own) with its canonical object
  // and JSON.
  struct Interned {
    std::shared_ptr<const FileSchema> self, canonical;
    std::string json;
  };
  std::unordered_map<std::string, std::shared_ptr<const FileSchema>> schema_of_json;
  std::unordered_map<const FileSchema*, Interned> interned;
  {
    ASSIGN_OR_RETURN(Statement n, store_->meta()->Prepare(
        "SELECT count(*) FROM catalog_crawled_objects WHERE crawler = ?1"));
    n.Bind(1, name);
    ASSIGN_OR_RETURN(bool counted, n.Step());
    cache.reserve(size_t(counted ? n.ColumnInt(0) : 0));
    // In path order (the primary key): a folder's objects are consecutive.
    ASSIGN_OR_RETURN(Statement q, store_->meta()->Prepare(
        "SELECT path, etag, size, schema FROM catalog_crawled_objects WHERE crawler = ?1 "
        "ORDER BY path"));
    q.Bind(1, name);
    std::string_view last_folder;
    std::string last_json;
    std::shared_ptr<const FileSchema> last_schema;
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      std::string sj = q.ColumnText(3);
      Cached c{q.ColumnText(1), q.ColumnInt(2), nullptr, "", false};
      if (!sj.empty() && sj[0] == '!') {
        c.error = sj.substr(1);
      } else if (sj == last_json && last_schema) {  // neighbours mostly share a schema
        c.schema = last_schema;
      } else {
        auto known = schema_of_json.find(sj);
        if (known == schema_of_json.end()) {
          auto parsed = FileSchemaFromJson(sj);
          if (!parsed.ok()) continue;  // not cached: the object is read again
          auto shared = std::make_shared<const FileSchema>(std::move(*parsed));
          known = schema_of_json.emplace(sj, shared).first;
          interned.emplace(shared.get(), Interned{shared, shared, sj});
        }
        c.schema = known->second;
        last_schema = c.schema;
        last_json = std::move(sj);
      }
      auto it = cache.try_emplace(q.ColumnText(0), std::move(c)).first;
      std::string_view path = it->first;  // stable: map nodes do not move
      std::string_view folder = path.substr(0, path.rfind('/'));
      if (folder != last_folder) {
        seen_folders.emplace(folder);
        last_folder = folder;
      }
    }
  }

  std::unique_ptr<sql::Connection> conn;
  {
    std::lock_guard<std::mutex> lock(duck_mu_);
    if (!duck_) {
      sql::DatabaseOptions dopts;
      dopts.threads = 1;
      ASSIGN_OR_RETURN(duck_, sql::Database::Open("", dopts));
    }
    ASSIGN_OR_RETURN(conn, duck_->Connect());
  }
  Classifier classifier(conn.get());

  struct Changed {
    std::string path, etag;
    int64_t size = 0, mtime = 0;
    std::string schema_json;
  };
  std::vector<FileEntry> files;
  std::vector<FileEntry> unreadable;  // listed, but could not be read: their folders still exist
  std::vector<Changed> changed;      // cache rows to write
  std::unordered_set<std::string> changed_folders;  // "bucket/dir/…" with a new or changed file
  std::vector<std::pair<std::string, std::string>> targets;  // bucket, prefix
  size_t listed = 0;
  bool listing_ok = true;
  for (const auto& t : doc["Targets"]["S3Targets"]) {
    ASSIGN_OR_RETURN(auto bp, ParseS3Path(t["Path"].get<std::string>()));
    targets.push_back(bp);
    std::vector<std::unique_ptr<RE2>> excludes;
    if (t.contains("Exclusions")) {
      for (const auto& e : t["Exclusions"]) excludes.push_back(std::make_unique<RE2>(GlobToRegex(e.get<std::string>())));
    }
    const std::string& bucket = bp.first;
    const std::string& prefix = bp.second;
    Status listed_ok = objects_->List(bucket, prefix, [&](const ListedObject& o) -> Status {
      if (stop.load()) return Error(ErrorCode::kCancelled, "stopped");
      if (o.key.empty() || o.key.back() == '/') return Status::OK();
      std::string_view rel = std::string_view(o.key).substr(prefix.size());
      for (size_t b = 0; b <= rel.size();) {
        size_t e = rel.find('/', b);
        if (e == std::string_view::npos) e = rel.size();
        if (Hidden(rel.substr(b, e - b))) return Status::OK();
        b = e + 1;
      }
      for (const auto& re : excludes) {
        if (RE2::FullMatch(rel, *re)) return Status::OK();
      }
      ++listed;
      std::string path = bucket + "/" + o.key;
      auto cached = cache.find(path);
      if (cached != cache.end()) cached->second.seen = true;
      if (new_folders_only && seen_folders.count(path.substr(0, path.rfind('/')))) {
        return Status::OK();
      }
      FileEntry f;
      f.bucket = bucket;
      f.key = o.key;
      f.size = o.size;
      // Consecutive objects mostly share their folder.
      if (!files.empty() && files.back().bucket == bucket &&
          o.key.compare(0, o.key.rfind('/') + 1, files.back().key, 0,
                        files.back().key.rfind('/') + 1) == 0) {
        f.dirs = files.back().dirs;
      } else {
        f.dirs = Split(o.key, '/');
        f.dirs.pop_back();
      }
      std::string error;
      if (cached != cache.end() && cached->second.etag == o.etag &&
          (cached->second.size < 0 || cached->second.size == int64_t(o.size))) {
        f.schema = cached->second.schema;
        error = cached->second.error;
      } else {
        auto local = objects_->LocalPath(bucket, o.key);
        Result<std::shared_ptr<const FileSchema>> s =
            local.ok() ? classifier.ClassifyShared(*local, o.key, o.size)
                       : Result<std::shared_ptr<const FileSchema>>(local.status());
        ++sum.files_read;
        Changed c{path, o.etag, int64_t(o.size), o.last_modified_ms, ""};
        if (s.ok()) {
          auto in = interned.find(s->get());
          if (in == interned.end()) {
            std::string text = FileSchemaToJson(**s);
            auto known = schema_of_json.emplace(text, *s).first;
            in = interned.emplace(s->get(), Interned{*s, known->second, std::move(text)}).first;
          }
          f.schema = in->second.canonical;
          c.schema_json = in->second.json;
        } else {
          // Users know the object by its S3 path, not by where the lake keeps its bytes.
          error = s.status().message();
          if (local.ok()) {
            for (size_t at; (at = error.find(*local)) != std::string::npos;) {
              error.replace(at, local->size(), "s3://" + path);
            }
          }
          c.schema_json = "!" + error;
        }
        changed_folders.insert(path.substr(0, path.rfind('/')));
        changed.push_back(std::move(c));
      }
      if (!f.schema) {
        ++sum.files_skipped;
        sum.log.push_back("Skipped unreadable file s3://" + path + ": " + error);
        unreadable.push_back(std::move(f));
        return Status::OK();
      }
      files.push_back(std::move(f));
      return Status::OK();
    });
    if (!listed_ok.ok()) {
      if (stop.load()) break;
      listing_ok = false;
      sum.log.push_back("Could not list s3://" + bucket + "/" + prefix + ": " +
                        listed_ok.message());
    }
  }
  if (stop.load()) {
    sum.status = "CANCELLED";
    sum.log.push_back("Crawl stopped before changing the catalog");
    return sum;
  }
  const double read_s = seconds_since(started);
  const auto catalog_started = SteadyClock::now();

  // Group files into tables.
  std::vector<Group> groups;
  for (const auto& [bucket, prefix] : targets) {
    std::vector<const FileEntry*> mine;
    for (const FileEntry& f : files) {
      if (f.bucket == bucket && StartsWith(f.key, prefix)) mine.push_back(&f);
    }
    if (mine.empty()) continue;
    std::vector<std::string> root = prefix.empty() ? std::vector<std::string>{}
                                                   : Split(prefix.substr(0, prefix.size() - 1), '/');
    if (opts.table_level > 0) {
      // Tables at level N of the path (the bucket is level 1).
      size_t depth = size_t(opts.table_level - 1);
      std::map<std::vector<std::string>, std::vector<const FileEntry*>> by_root;
      for (const FileEntry* f : mine) {
        if (f->dirs.size() < depth) {
          sum.log.push_back("s3://" + f->bucket + "/" + f->key + " is above TableLevelConfiguration " +
                            std::to_string(opts.table_level) + "; not catalogued");
          continue;
        }
        by_root[std::vector<std::string>(f->dirs.begin(), f->dirs.begin() + long(depth))].push_back(f);
      }
      for (auto& [r, list] : by_root) groups.push_back({bucket, r, list});
    } else {
      GroupFiles(bucket, mine, root.size(), root, opts, &groups, &sum.log);
    }
  }

  const std::string now_ms = std::to_string(clock_->NowMillis());
  // Glue marks what a crawler found gone with DEPRECATED_BY_CRAWLER = <epoch ms>, in the
  // Parameters of the object and of its StorageDescriptor; it is removed when data is back.
  auto set_deprecated = [&](json* obj, bool on) {
    std::vector<json*> where = {obj};
    if (obj->contains("StorageDescriptor") && (*obj)["StorageDescriptor"].is_object()) {
      where.push_back(&(*obj)["StorageDescriptor"]);
    }
    for (json* o : where) {
      if (!o->contains("Parameters") || !(*o)["Parameters"].is_object()) {
        if (!on) continue;
        (*o)["Parameters"] = json::object();
      }
      if (on) {
        (*o)["Parameters"]["DEPRECATED_BY_CRAWLER"] = now_ms;
      } else {
        (*o)["Parameters"].erase("DEPRECATED_BY_CRAWLER");
      }
    }
  };
  auto deprecated = [](const json& obj) {
    return obj.contains("Parameters") && obj["Parameters"].is_object() &&
           obj["Parameters"].contains("DEPRECATED_BY_CRAWLER");
  };
  constexpr int kMaxLoggedPartitions = 50;
  int partitions_logged = 0;
  auto log_partition = [&](const std::string& line) {
    if (++partitions_logged <= kMaxLoggedPartitions) sum.log.push_back(line);
  };
  auto values_text = [](const std::vector<std::string>& v) { return "[" + Join(v, ", ") + "]"; };

  // Write each table and its partitions.
  std::set<std::string> tables_seen;
  std::set<std::string> names_used;
  for (const Group& g : groups) {
    size_t depth = g.root.size();
    std::vector<const FileEntry*> files_sorted = g.files;
    auto by_key = [](const FileEntry* a, const FileEntry* b) { return a->key < b->key; };
    if (!std::is_sorted(files_sorted.begin(), files_sorted.end(), by_key)) {  // listed in order
      std::sort(files_sorted.begin(), files_sorted.end(), by_key);
    }
    uint64_t bytes = 0;
    for (const FileEntry* f : files_sorted) bytes += f->size;
    std::vector<const FileSchema*> schemas = DistinctSchemas(files_sorted);
    FileSchema merged = *schemas[0];
    for (const FileSchema* sc : schemas) {
      if (!merged.CompatibleWith(*sc)) {
        for (const FileEntry* f : files_sorted) {
          if (f->schema.get() != sc) continue;
          sum.log.push_back("s3://" + f->bucket + "/" + f->key +
                            " conflicts with the schema of its table; conflicting columns become "
                            "string");
          break;
        }
      }
      merged.Merge(*sc);
    }
    std::string base = g.root.empty() ? g.bucket : g.root.back();
    std::string table = table_prefix + SanitizeName(base);
    if (names_used.count(table)) {
      table += "_" + HexEncode(std::string(1, char(names_used.size()))).substr(0, 2);
    }
    names_used.insert(table);
    tables_seen.insert(table);
    std::string location = "s3://" + g.bucket + "/" + (g.root.empty() ? "" : Join(g.root, "/") + "/");

    // Partition keys: k=v folder names give k, others partition_<i>.
    size_t levels = files_sorted[0]->dirs.size() - depth;
    std::vector<std::string> keys(levels);
    for (size_t i = 0; i < levels; ++i) {
      std::string key;
      bool hive = true;
      for (const FileEntry* f : files_sorted) {
        const std::string& seg = f->dirs[depth + i];
        size_t eq = seg.find('=');
        std::string k = eq == std::string::npos ? "" : SanitizeName(seg.substr(0, eq));
        if (k.empty() || (!key.empty() && k != key)) hive = false;
        if (key.empty()) key = k;
      }
      keys[i] = hive ? key : "partition_" + std::to_string(i);
    }
    auto values_of = [&](const FileEntry& f) {
      std::vector<std::string> values;
      for (size_t i = 0; i < levels; ++i) {
        const std::string& seg = f.dirs[depth + i];
        size_t eq = seg.find('=');
        values.push_back(keys[i] != "partition_" + std::to_string(i) && eq != std::string::npos
                             ? seg.substr(eq + 1)
                             : seg);
      }
      return values;
    };
    struct PartitionSeen {
      FileSchema schema;
      std::vector<const FileSchema*> merged;  // distinct schemas merged into `schema`
      const FileEntry* first = nullptr;       // its folder is the partition's location
    };
    std::map<std::vector<std::string>, PartitionSeen> partitions;
    const FileEntry* prev = nullptr;
    std::map<std::vector<std::string>, PartitionSeen>::iterator it;
    for (const FileEntry* f : files_sorted) {
      bool inserted = false;
      if (!prev || f->dirs != prev->dirs) {  // a folder's files are consecutive
        std::tie(it, inserted) = partitions.try_emplace(values_of(*f));
      }
      prev = f;
      PartitionSeen& p = it->second;
      if (inserted) {
        p.schema = *f->schema;
        p.merged.push_back(f->schema.get());
        p.first = f;
      } else if (std::find(p.merged.begin(), p.merged.end(), f->schema.get()) == p.merged.end()) {
        p.schema.Merge(*f->schema);
        p.merged.push_back(f->schema.get());
      }
    }
    // Folders whose files could not be read are still there: their partitions are not gone.
    std::set<std::vector<std::string>> present;
    for (const FileEntry& f : unreadable) {
      if (f.bucket != g.bucket || f.dirs.size() != depth + levels ||
          !std::equal(g.root.begin(), g.root.end(), f.dirs.begin())) {
        continue;
      }
      present.insert(values_of(f));
    }
    auto folder_of = [&](const FileEntry* f) {
      auto end = f->dirs.begin() + long(depth + levels);
      return g.bucket + "/" + Join(std::vector<std::string>(f->dirs.begin(), end), "/");
    };
    json params = TableParameters(name, merged, files_sorted.size(), bytes);
    json keys_json = json::array();
    for (const std::string& k : keys) keys_json.push_back({{"Name", k}, {"Type", "string"}});

    Status applied = store_->meta()->Transaction([&]() -> Status {
      auto existing = store_->GetTable(database, table);
      if (!existing.ok() && existing.status().code() != ErrorCode::kEntityNotFound) {
        return existing.status();
      }
      bool owned = true;  // made (or last updated) by this crawler
      if (!existing.ok()) {
        json input = {{"Name", table},
                      {"StorageDescriptor", StorageDescriptorFor(merged, location, params)},
                      {"PartitionKeys", keys_json},
                      {"TableType", "EXTERNAL_TABLE"},
                      {"Parameters", params}};
        RETURN_IF_ERROR(store_->CreateTable(database, input));
        ++sum.tables_created;
        sum.log.push_back("Created table " + database + "." + table + " (" + merged.classification +
                          ", " + std::to_string(merged.columns.size()) + " columns, " +
                          std::to_string(keys.size()) + " partition keys) at " + location);
      } else {
        json t = *existing;
        owned = t.contains("Parameters") && t["Parameters"].is_object() &&
                t["Parameters"].value("UPDATED_BY_CRAWLER", "") == name;
        if (CatalogStore::PartitionKeysOf(t).size() != keys.size()) {
          sum.log.push_back("Table " + database + "." + table + " has different partition keys than "
                            "the data at " + location + "; left unchanged");
          return Status::OK();
        }
        std::vector<Column> old_cols = ColumnsOf(t);
        std::vector<Column> cols = new_folders_only ? old_cols : EvolveColumns(old_cols, merged.columns);
        bool schema_changed = !SameColumns(cols, old_cols);
        bool back = deprecated(t);
        if (schema_changed || back) {
          if (update_behavior == "LOG") {
            sum.log.push_back(
                std::string(schema_changed ? "Schema of " : "Data of deprecated table ") +
                database + "." + table + (schema_changed ? " changed" : " is back") +
                "; not updated (UpdateBehavior LOG)");
          } else {
            json input = t;
            if (schema_changed) {
              FileSchema s = merged;
              s.columns = cols;
              input["StorageDescriptor"] = StorageDescriptorFor(s, location, params);
              input["Parameters"] = params;
            }
            set_deprecated(&input, false);
            RETURN_IF_ERROR(store_->UpdateTable(database, input, false));
            ++sum.tables_updated;
            if (schema_changed) {
              sum.log.push_back("Updated table " + database + "." + table + ": schema now has " +
                                std::to_string(cols.size()) + " columns (previous version kept)");
            }
            if (back) {
              sum.log.push_back("Table " + database + "." + table +
                                " has data again: no longer deprecated");
            }
          }
        }
      }

      ASSIGN_OR_RETURN(auto existing_values, store_->ListPartitionValues(database, table));
      std::set<std::vector<std::string>> in_catalog(existing_values.begin(), existing_values.end());
      json inputs = json::array();
      for (const auto& [values, ps] : partitions) {
        if (in_catalog.count(values)) {
          // Existing partitions are only looked at when their folder has new or changed
          // files (its schema may have grown) or is new since the last crawl (it may have
          // been deprecated when it vanished: its data is back).
          std::string folder = folder_of(ps.first);
          if (seen_folders.count(folder) && !changed_folders.count(folder)) continue;
          ASSIGN_OR_RETURN(json part, store_->GetPartition(database, table, values));
          bool back = deprecated(part);
          std::vector<Column> old_cols = ColumnsOf(part);
          std::vector<Column> cols = EvolveColumns(old_cols, ps.schema.columns);
          bool grown = !new_folders_only && !SameColumns(cols, old_cols);
          if (!back && !grown) continue;
          std::string what = "partition " + values_text(values) + " of " + database + "." + table;
          if (update_behavior == "LOG") {
            log_partition("Not updated (UpdateBehavior LOG): " + what +
                          (grown ? " has new columns" : " has data again"));
            continue;
          }
          if (back) set_deprecated(&part, false);
          if (grown && part.contains("StorageDescriptor") && part["StorageDescriptor"].is_object()) {
            part["StorageDescriptor"]["Columns"] = ColumnsJson(cols);
          }
          RETURN_IF_ERROR(store_->UpdatePartition(database, table, values, part));
          ++sum.partitions_updated;
          log_partition("Updated " + what +
                        (grown ? ": schema now has " + std::to_string(cols.size()) + " columns"
                               : ": has data again, no longer deprecated"));
          continue;
        }
        std::string ploc = "s3://" + folder_of(ps.first) + "/";
        inputs.push_back({{"Values", values},
                          {"StorageDescriptor", StorageDescriptorFor(ps.schema, ploc, params)},
                          {"Parameters", params}});
      }
      if (!inputs.empty()) {
        ASSIGN_OR_RETURN(std::vector<Status> created,
                         store_->CreatePartitions(database, table, inputs));
        for (size_t i = 0; i < created.size(); ++i) {
          if (!created[i].ok()) return created[i];
          ++sum.partitions_added;
        }
      }

      // Partitions whose folders are gone (full crawls of tables this crawler owns only).
      if (new_folders_only || !listing_ok || !owned) return Status::OK();
      for (const std::vector<std::string>& values : existing_values) {
        if (partitions.count(values) || present.count(values) || values.size() != levels) continue;
        std::string where = location;
        for (size_t i = 0; i < levels; ++i) {
          bool hive = keys[i] != "partition_" + std::to_string(i);
          where += (hive ? keys[i] + "=" : "") + values[i] + "/";
        }
        bool under_target = false;
        for (const auto& [bucket, prefix] : targets) {
          under_target |= StartsWith(where, "s3://" + bucket + "/" + prefix);
        }
        if (!under_target) continue;  // outside what this crawl listed
        std::string what = "partition " + values_text(values) + " of " + database + "." + table +
                           ": its data is gone from " + where;
        if (delete_behavior == "LOG") {
          log_partition("Kept " + what + " (DeleteBehavior LOG)");
        } else if (delete_behavior == "DELETE_FROM_DATABASE") {
          RETURN_IF_ERROR(store_->DeletePartition(database, table, values));
          ++sum.partitions_deleted;
          log_partition("Deleted " + what);
        } else {
          ASSIGN_OR_RETURN(json part, store_->GetPartition(database, table, values));
          if (deprecated(part)) continue;
          set_deprecated(&part, true);
          RETURN_IF_ERROR(store_->UpdatePartition(database, table, values, part));
          ++sum.partitions_deleted;
          log_partition("Deprecated " + what);
        }
      }
      return Status::OK();
    });
    if (!applied.ok()) {
      sum.log.push_back("Could not write table " + database + "." + table + ": " + applied.message());
      sum.status = "FAILED";
      sum.error_message = applied.message();
    }
  }
  if (partitions_logged > kMaxLoggedPartitions) {
    sum.log.push_back("… and " + std::to_string(partitions_logged - kMaxLoggedPartitions) +
                      " more partition changes");
  }
  if (sum.partitions_added > 0) {
    sum.log.push_back("Added " + std::to_string(sum.partitions_added) + " partitions");
  }

  // Tables this crawler made whose data is gone (full crawls only).
  if (!new_folders_only && listing_ok) {
    PageRequest pr;
    std::vector<json> gone;
    do {
      ASSIGN_OR_RETURN(Page page, store_->GetTables(database, "", pr));
      for (const json& t : page.items) {
        if (t.contains("Parameters") && t["Parameters"].value("UPDATED_BY_CRAWLER", "") == name &&
            !tables_seen.count(t.value("Name", ""))) {
          gone.push_back(t);
        }
      }
      pr.next_token = page.next_token;
    } while (!pr.next_token.empty());
    for (json& t : gone) {
      std::string tname = t.value("Name", "");
      if (delete_behavior == "LOG") {
        sum.log.push_back("Table " + database + "." + tname +
                          ": its data is gone; kept (DeleteBehavior LOG)");
      } else if (delete_behavior == "DELETE_FROM_DATABASE") {
        RETURN_IF_ERROR(store_->DeleteTable(database, tname));
        sum.log.push_back("Deleted table " + database + "." + tname + ": its data is gone");
        ++sum.tables_deleted;
      } else if (!deprecated(t)) {
        set_deprecated(&t, true);
        RETURN_IF_ERROR(store_->UpdateTable(database, t, false));
        sum.log.push_back("Deprecated table " + database + "." + tname + ": its data is gone");
        ++sum.tables_deleted;
      }
    }
  }

  // Remember what was read, so the next crawl reads only what changed; forget what is gone.
  RETURN_IF_ERROR(store_->meta()->Transaction([&]() -> Status {
    if (!new_folders_only && listing_ok) {
      ASSIGN_OR_RETURN(Statement del, store_->meta()->Prepare(
          "DELETE FROM catalog_crawled_objects WHERE crawler = ?1 AND path = ?2"));
      for (const auto& [path, c] : cache) {
        if (c.seen) continue;
        RETURN_IF_ERROR(del.Reset());
        del.Bind(1, name).Bind(2, path);
        RETURN_IF_ERROR(del.Run());
      }
    }
    ASSIGN_OR_RETURN(Statement ins, store_->meta()->Prepare(
        "INSERT OR REPLACE INTO catalog_crawled_objects(crawler, path, etag, schema, size, mtime) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    for (const Changed& c : changed) {
      RETURN_IF_ERROR(ins.Reset());
      ins.Bind(1, name).Bind(2, c.path).Bind(3, c.etag).Bind(4, c.schema_json).Bind(5, c.size)
          .Bind(6, c.mtime);
      RETURN_IF_ERROR(ins.Run());
    }
    return Status::OK();
  }));
  char timing[200];
  std::snprintf(timing, sizeof(timing),
                "Crawled %zu objects: listed and read in %.2f s (%d files read, %d of them "
                "described by DuckDB), catalog written in %.2f s",
                listed, read_s, sum.files_read, classifier.described(),
                seconds_since(catalog_started));
  sum.log.push_back(timing);
  return sum;
}

Status CrawlerService::Call(const std::string& a, const json& in, json* out) {
  *out = json::object();
  auto name_of = [&](const char* field) -> Result<std::string> {
    if (!in.contains(field) || !in[field].is_string() || in[field].get<std::string>().empty()) {
      return Error(ErrorCode::kInvalidInput, std::string(field) + " is required");
    }
    std::string n = in[field].get<std::string>();
    RETURN_IF_ERROR(ValidateName("Crawler", n));
    return n;
  };
  int64_t now = clock_->NowSeconds();
  auto next_run = [&](const json& doc) -> int64_t {
    if (doc.value("ScheduleState", "SCHEDULED") != "SCHEDULED") return 0;
    auto cron = CronSchedule::Parse(doc.value("Schedule", ""));
    if (!cron.ok()) return 0;
    int64_t n = cron->Next(now);
    return n < 0 ? 0 : n;
  };

  if (a == "CreateCrawler") {
    ASSIGN_OR_RETURN(std::string name, name_of("Name"));
    json doc = in;
    RETURN_IF_ERROR(ValidateDefinition(&doc, true));
    double t = double(clock_->NowMillis()) / 1000.0;
    doc["CreationTime"] = t;
    doc["LastUpdated"] = t;
    doc["Version"] = 1;
    doc["ScheduleState"] = "SCHEDULED";
    return store_->meta()->Transaction([&]() -> Status {
      ASSIGN_OR_RETURN(Statement q, store_->meta()->Prepare("SELECT 1 FROM catalog_crawlers WHERE name = ?1"));
      q.Bind(1, name);
      ASSIGN_OR_RETURN(bool exists, q.Step());
      if (exists) return Error(ErrorCode::kGlueAlreadyExists, "Crawler with name " + name + " already exists");
      ASSIGN_OR_RETURN(Statement ins, store_->meta()->Prepare(
          "INSERT INTO catalog_crawlers(name, doc, state, next_run) VALUES (?1, ?2, 'READY', ?3)"));
      ins.Bind(1, name).Bind(2, doc.dump()).Bind(3, next_run(doc));
      return ins.Run();
    });
  }
  if (a == "GetCrawler") {
    ASSIGN_OR_RETURN(std::string name, name_of("Name"));
    ASSIGN_OR_RETURN(json doc, Load(name));
    (*out)["Crawler"] = Describe(name, doc);
    return Status::OK();
  }
  if (a == "GetCrawlers" || a == "ListCrawlers") {
    std::string after;
    if (in.contains("NextToken") && in["NextToken"].is_string()) {
      auto d = HexDecode(in["NextToken"].get<std::string>());
      if (!d) return Error(ErrorCode::kInvalidInput, "Invalid NextToken");
      after = *d;
    }
    int limit = in.contains("MaxResults") && in["MaxResults"].is_number_integer()
                    ? std::clamp(in["MaxResults"].get<int>(), 1, 1000)
                    : 100;
    ASSIGN_OR_RETURN(Statement q, store_->meta()->Prepare(
        "SELECT name FROM catalog_crawlers WHERE name > ?1 ORDER BY name LIMIT ?2"));
    q.Bind(1, after).Bind(2, int64_t(limit + 1));
    json list = json::array();
    std::string last;
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      if (int(list.size()) == limit) {
        (*out)["NextToken"] = HexEncode(last);
        break;
      }
      last = q.ColumnText(0);
      if (a == "ListCrawlers") {
        list.push_back(last);
      } else {
        ASSIGN_OR_RETURN(json doc, Load(last));
        list.push_back(Describe(last, doc));
      }
    }
    (*out)[a == "ListCrawlers" ? "CrawlerNames" : "Crawlers"] = list;
    return Status::OK();
  }
  if (a == "UpdateCrawler") {
    ASSIGN_OR_RETURN(std::string name, name_of("Name"));
    return store_->meta()->Transaction([&]() -> Status {
      ASSIGN_OR_RETURN(json doc, Load(name));
      if (doc["_state"] != "READY") {
        return Error(ErrorCode::kCrawlerRunning, "Crawler " + name + " is running; stop it first");
      }
      for (auto it = in.begin(); it != in.end(); ++it) {
        if (it.key() != "Name") doc[it.key()] = it.value();
      }
      RETURN_IF_ERROR(ValidateDefinition(&doc, false));
      doc["LastUpdated"] = double(clock_->NowMillis()) / 1000.0;
      doc["Version"] = doc.value("Version", 1) + 1;
      return Save(name, doc, next_run(doc));
    });
  }
  if (a == "DeleteCrawler") {
    ASSIGN_OR_RETURN(std::string name, name_of("Name"));
    std::lock_guard<std::mutex> lock(mu_);
    Reap();
    if (running_.count(name)) {
      return Error(ErrorCode::kCrawlerRunning, "Crawler " + name + " is running");
    }
    return store_->meta()->Transaction([&]() -> Status {
      ASSIGN_OR_RETURN(json doc, Load(name));
      (void)doc;
      for (const char* sql : {"DELETE FROM catalog_crawlers WHERE name = ?1",
                              "DELETE FROM catalog_crawler_runs WHERE crawler = ?1",
                              "DELETE FROM catalog_crawled_objects WHERE crawler = ?1"}) {
        ASSIGN_OR_RETURN(Statement st, store_->meta()->Prepare(sql));
        st.Bind(1, name);
        RETURN_IF_ERROR(st.Run());
      }
      return Status::OK();
    });
  }
  if (a == "StartCrawler") {
    ASSIGN_OR_RETURN(std::string name, name_of("Name"));
    ASSIGN_OR_RETURN(json doc, Load(name));
    (void)doc;
    std::lock_guard<std::mutex> lock(mu_);
    return StartRun(name);
  }
  if (a == "StopCrawler") {
    ASSIGN_OR_RETURN(std::string name, name_of("Name"));
    ASSIGN_OR_RETURN(json doc, Load(name));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = running_.find(name);
    if (it == running_.end() || it->second.done) {
      return Error(ErrorCode::kCrawlerNotRunning, "Crawler " + name + " isn't running");
    }
    if (it->second.stop->load()) {
      return Error(ErrorCode::kCrawlerStopping, "Crawler " + name + " is already stopping");
    }
    it->second.stop->store(true);
    return SetState(name, "STOPPING");
  }
  if (a == "GetCrawlerMetrics") {
    std::vector<std::string> names;
    if (in.contains("CrawlerNameList") && in["CrawlerNameList"].is_array()) {
      for (const auto& n : in["CrawlerNameList"]) {
        if (n.is_string()) names.push_back(n.get<std::string>());
      }
    } else {
      ASSIGN_OR_RETURN(Statement q, store_->meta()->Prepare("SELECT name FROM catalog_crawlers ORDER BY name"));
      while (true) {
        ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        names.push_back(q.ColumnText(0));
      }
    }
    json list = json::array();
    for (const std::string& n : names) {
      auto doc = Load(n);
      if (!doc.ok()) continue;  // Glue omits unknown names
      json m = doc->contains("_metrics") ? (*doc)["_metrics"] : json::object();
      list.push_back({{"CrawlerName", n},
                      {"TimeLeftSeconds", 0},
                      {"StillEstimating", (*doc)["_state"] != "READY"},
                      {"LastRuntimeSeconds", m.value("LastRuntimeSeconds", 0.0)},
                      {"MedianRuntimeSeconds", m.value("MedianRuntimeSeconds", 0.0)},
                      {"TablesCreated", m.value("TablesCreated", 0)},
                      {"TablesUpdated", m.value("TablesUpdated", 0)},
                      {"TablesDeleted", m.value("TablesDeleted", 0)}});
    }
    (*out)["CrawlerMetricsList"] = list;
    return Status::OK();
  }
  if (a == "StartCrawlerSchedule" || a == "StopCrawlerSchedule" || a == "UpdateCrawlerSchedule") {
    ASSIGN_OR_RETURN(std::string name, name_of("CrawlerName"));
    return store_->meta()->Transaction([&]() -> Status {
      ASSIGN_OR_RETURN(json doc, Load(name));
      if (a == "UpdateCrawlerSchedule") {
        std::string expr = in.value("Schedule", "");
        if (!expr.empty()) RETURN_IF_ERROR(CronSchedule::Parse(expr));
        doc["Schedule"] = expr;
      } else {
        if (doc.value("Schedule", "").empty()) {
          return Error(ErrorCode::kNoSchedule, "Crawler " + name + " has no schedule");
        }
        bool scheduled = doc.value("ScheduleState", "SCHEDULED") == "SCHEDULED";
        if (a == "StartCrawlerSchedule" && scheduled) {
          return Error(ErrorCode::kSchedulerRunning, "The schedule of " + name + " is already running");
        }
        if (a == "StopCrawlerSchedule" && !scheduled) {
          return Error(ErrorCode::kSchedulerNotRunning, "The schedule of " + name + " is not running");
        }
        doc["ScheduleState"] = a == "StartCrawlerSchedule" ? "SCHEDULED" : "NOT_SCHEDULED";
      }
      return Save(name, doc, next_run(doc));
    });
  }
  return Error(ErrorCode::kUnknownOperation, "Operation AWSGlue." + a + " is not supported");
}

}  // namespace tarn::catalog
