// Crawlers (AWS Glue "Defining crawlers"): walk S3 targets in the object store, classify each
// file (classifier.h), group files with compatible schemas into tables, turn `k=v` folders
// into partition keys (other folders into partition_0, partition_1 …, as Glue does) and write
// tables and partitions into the catalog.
//
//  - SchemaChangePolicy: UpdateBehavior UPDATE_IN_DATABASE (a changed schema updates the
//    table, which keeps its previous version) or LOG; DeleteBehavior DEPRECATE_IN_DATABASE,
//    DELETE_FROM_DATABASE or LOG for tables this crawler made whose data is gone.
//  - RecrawlPolicy: CRAWL_EVERYTHING (unchanged files are not re-read: their schemas are
//    cached by ETag) or CRAWL_NEW_FOLDERS_ONLY (folders seen before are skipped).
//  - Configuration JSON: Grouping.TableGroupingPolicy "CombineCompatibleSchemas",
//    Grouping.TableLevelConfiguration N (tables at the Nth level of the path, bucket = 1).
//  - Schedule: cron(…) (cron.h), run by the scheduler thread; times from an injectable Clock.
//  - An unreadable file is logged and skipped; it never changes a table.
//
// Each run's log (what was created, updated, deleted, skipped) is kept with the crawler
// (catalog_crawler_runs) and written to the lake's log under component "crawler".
//
// Thread-safety: thread-safe. Crawls run on their own threads; Stop() joins them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/glue_api.h"
#include "catalog/object_source.h"
#include "catalog/store.h"
#include "core/clock.h"

namespace tarn::sql {
class Database;
}

namespace tarn::catalog {

// What one crawl did (GetCrawlerMetrics and the run log).
struct CrawlSummary {
  std::string status;  // SUCCEEDED, CANCELLED, FAILED
  std::string error_message;
  int tables_created = 0, tables_updated = 0, tables_deleted = 0;
  int partitions_added = 0, files_read = 0, files_skipped = 0;
  int partitions_deleted = 0;  // deleted or deprecated (DeleteBehavior)
  int partitions_updated = 0;  // schema grown, or no longer deprecated
  std::vector<std::string> log;
};

class CrawlerService final : public CrawlerApi {
 public:
  CrawlerService(CatalogStore* store, ObjectSource* objects, Clock* clock);
  ~CrawlerService() override;

  // Starts the scheduler thread (checks schedules every `tick_ms` of real time).
  Status Start(int tick_ms = 1000);
  // Stops the scheduler, asks running crawls to stop and joins them.
  void Stop();

  bool Owns(const std::string& action) const override;
  Status Call(const std::string& action, const json& input, json* output) override;

  // Starts every scheduled crawler whose next fire time is at or before `now_seconds`.
  void RunDue(int64_t now_seconds);
  // Runs one crawl on the calling thread (what StartCrawler runs on a worker thread).
  Result<CrawlSummary> RunNow(const std::string& name);
  // Waits until `name` is not running (tests).
  void WaitIdle(const std::string& name);

 private:
  struct Running {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> stop;
    bool done = false;
  };

  Result<json> Load(const std::string& name);
  // next_run < 0 keeps the stored next fire time.
  Status Save(const std::string& name, const json& doc, int64_t next_run);
  Status SetState(const std::string& name, const std::string& state);
  Status ValidateDefinition(json* doc, bool create);
  Status StartRun(const std::string& name);  // requires mu_
  Result<CrawlSummary> Crawl(const std::string& name, const json& doc, const std::atomic<bool>& stop);
  Status Record(const std::string& name, const CrawlSummary& summary, int64_t start_ms,
                int64_t end_ms);
  json Describe(const std::string& name, json doc);
  void Reap();  // joins finished run threads; requires mu_

  CatalogStore* store_;
  ObjectSource* objects_;
  Clock* clock_;
  std::mutex duck_mu_;
  std::unique_ptr<sql::Database> duck_;  // guarded by duck_mu_ (created on first crawl)

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Running> running_;  // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
  std::thread scheduler_;
};

}  // namespace tarn::catalog
