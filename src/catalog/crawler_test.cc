#include "catalog/crawler.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "catalog/catalog.h"
#include "sql/duckdb/engine.h"

namespace tarn::catalog {
namespace {

namespace fs = std::filesystem;

class CrawlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("catalog-crawler-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "objects" / "landing");
    auto m = MetaStore::Open((dir_ / "t.db").string());
    ASSERT_TRUE(m.ok());
    meta_ = std::move(*m);
    store_ = std::make_unique<CatalogStore>(meta_.get(), &clock_, "123456789012");
    ASSERT_TRUE(store_->Migrate().ok());
    ASSERT_TRUE(store_->CreateDatabase({{"Name", "raw"}}).ok());
    objects_ = std::make_unique<DirectoryObjectSource>((dir_ / "objects").string());
    crawlers_ = std::make_unique<CrawlerService>(store_.get(), objects_.get(), &clock_);
    auto db = sql::Database::Open("");
    ASSERT_TRUE(db.ok());
    duck_ = std::move(*db);
    auto c = duck_->Connect();
    ASSERT_TRUE(c.ok());
    conn_ = std::move(*c);
  }
  void TearDown() override {
    crawlers_.reset();
    fs::remove_all(dir_);
  }

  std::string Obj(const std::string& key) {
    fs::path p = dir_ / "objects" / "landing" / key;
    fs::create_directories(p.parent_path());
    return p.string();
  }
  void Sql(const std::string& s) {
    Status st = conn_->Execute(s);
    ASSERT_TRUE(st.ok()) << s << ": " << st.ToString();
  }
  void Parquet(const std::string& key, const std::string& select) {
    Sql("COPY (" + select + ") TO " + sql::QuoteLiteral(Obj(key)) + " (FORMAT parquet)");
  }
  void Write(const std::string& key, const std::string& bytes) {
    std::ofstream(Obj(key), std::ios::binary) << bytes;
  }
  json Call(const std::string& action, const json& in) {
    json out;
    Status s = crawlers_->Call(action, in, &out);
    EXPECT_TRUE(s.ok()) << action << ": " << s.ToString();
    return out;
  }

  fs::path dir_;
  ManualClock clock_{1795608190LL * 1000000};
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<CatalogStore> store_;
  std::unique_ptr<DirectoryObjectSource> objects_;
  std::unique_ptr<CrawlerService> crawlers_;
  std::unique_ptr<sql::Database> duck_;
  std::unique_ptr<sql::Connection> conn_;
};

const char* kSensorRow =
    "SELECT 'dev-1' AS device, 21.5::DOUBLE AS temp, 3::BIGINT AS seq, "
    "{'raw': 7, 'unit': 'C'} AS reading, ['a', 'b'] AS tags";

TEST_F(CrawlerTest, HivePartitionedParquetIncrementalAndSchemaChange) {
  for (const char* h : {"00", "01"}) {
    Parquet(std::string("iot/sensors/year=2026/month=11/day=25/hour=") + h + "/part-0.parquet", kSensorRow);
  }
  Write("iot/sensors/year=2026/month=11/day=25/hour=01/_SUCCESS", "");
  Call("CreateCrawler", {{"Name", "iot"}, {"Role", "r"}, {"DatabaseName", "raw"},
                         {"Targets", {{"S3Targets", {{{"Path", "s3://landing/iot/sensors/"}}}}}}});
  auto s = crawlers_->RunNow("iot");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->status, "SUCCEEDED");
  EXPECT_EQ(s->tables_created, 1);
  EXPECT_EQ(s->partitions_added, 2);
  auto t = store_->GetTable("raw", "sensors");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const json& sd = (*t)["StorageDescriptor"];
  EXPECT_EQ(sd["Location"], "s3://landing/iot/sensors/");
  EXPECT_EQ(sd["SerdeInfo"]["SerializationLibrary"],
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe");
  ASSERT_EQ(sd["Columns"].size(), 5u);
  EXPECT_EQ(sd["Columns"][1]["Type"], "double");
  EXPECT_EQ(sd["Columns"][3]["Type"], "struct<raw:int,unit:string>");
  EXPECT_EQ(sd["Columns"][4]["Type"], "array<string>");
  std::vector<std::string> keys;
  for (const auto& k : (*t)["PartitionKeys"]) keys.push_back(k["Name"]);
  EXPECT_EQ(keys, (std::vector<std::string>{"year", "month", "day", "hour"}));
  EXPECT_EQ((*t)["Parameters"]["classification"], "parquet");

  // Nothing new: nothing read, nothing added.
  s = crawlers_->RunNow("iot");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->files_read, 0);
  EXPECT_EQ(s->partitions_added, 0);
  EXPECT_EQ(s->tables_updated, 0);

  // A new hour with a new column: one partition added, table updated, old version kept.
  Parquet("iot/sensors/year=2026/month=11/day=25/hour=02/part-0.parquet",
          std::string(kSensorRow) + ", 0.9::DOUBLE AS humidity");
  s = crawlers_->RunNow("iot");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->files_read, 1);
  EXPECT_EQ(s->partitions_added, 1);
  EXPECT_EQ(s->tables_updated, 1);
  t = store_->GetTable("raw", "sensors");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)["StorageDescriptor"]["Columns"].size(), 6u);
  EXPECT_EQ((*t)["VersionId"], "1");
  auto old = store_->GetTableVersion("raw", "sensors", "0");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->at("Table")["StorageDescriptor"]["Columns"].size(), 5u);

  // Partition pruning through the engine-facing catalog.
  auto cat = NewCatalog(store_.get());
  auto scan = cat->PlanScan("raw", "sensors", "hour >= '01'");
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_EQ(scan->locations, (std::vector<std::string>{
                                 "s3://landing/iot/sensors/year=2026/month=11/day=25/hour=01/",
                                 "s3://landing/iot/sensors/year=2026/month=11/day=25/hour=02/"}));
  EXPECT_EQ(scan->table.classification, "parquet");
  EXPECT_EQ(cat->PlanScan("raw", "sensors", "colour = 'x'").status().code(), ErrorCode::kInvalidInput);

  auto metrics = Call("GetCrawlerMetrics", {{"CrawlerNameList", {"iot"}}});
  EXPECT_EQ(metrics["CrawlerMetricsList"][0]["TablesUpdated"], 1);

  // A file with the new column lands in an existing hour: that partition's schema grows (the
  // table already has the column), the other partitions are left alone.
  Parquet("iot/sensors/year=2026/month=11/day=25/hour=00/part-1.parquet",
          std::string(kSensorRow) + ", 0.9::DOUBLE AS humidity");
  s = crawlers_->RunNow("iot");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->files_read, 1);
  EXPECT_EQ(s->partitions_added, 0);
  EXPECT_EQ(s->partitions_updated, 1);
  EXPECT_EQ(s->tables_updated, 0);
  auto p00 = store_->GetPartition("raw", "sensors", {"2026", "11", "25", "00"});
  ASSERT_TRUE(p00.ok());
  EXPECT_EQ((*p00)["StorageDescriptor"]["Columns"].size(), 6u);
  auto p01 = store_->GetPartition("raw", "sensors", {"2026", "11", "25", "01"});
  ASSERT_TRUE(p01.ok());
  EXPECT_EQ((*p01)["StorageDescriptor"]["Columns"].size(), 5u);
}

TEST_F(CrawlerTest, JsonCsvNonHiveFoldersAndBadFiles) {
  Write("events/2026/11/a.json", "{\"id\": 1, \"user\": {\"name\": \"x\", \"age\": 3}}\n"
                                 "{\"id\": 2, \"user\": {\"name\": \"y\", \"age\": 4}}\n");
  Write("events/2026/12/b.json", "{\"id\": 3, \"user\": {\"name\": \"z\", \"age\": 5}}\n");
  Sql("COPY (SELECT 1 AS id, 'alpha' AS name, 2.5 AS score UNION ALL SELECT 2, 'beta', 3.5) TO " +
      sql::QuoteLiteral(Obj("orders/ingest_date=2026-11-25/orders.csv.gz")) +
      " (FORMAT csv, HEADER, COMPRESSION gzip)");
  Write("orders/ingest_date=2026-11-26/broken.csv.gz", std::string("\x1f\x8b garbage", 10));
  Call("CreateCrawler", {{"Name", "mixed"}, {"Role", "r"}, {"DatabaseName", "raw"},
                         {"TablePrefix", "t_"},
                         {"Targets", {{"S3Targets", {{{"Path", "s3://landing/events/"}},
                                                     {{"Path", "s3://landing/orders/"}}}}}}});
  auto s = crawlers_->RunNow("mixed");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->tables_created, 2);
  EXPECT_EQ(s->files_skipped, 1);
  bool logged = false;
  for (const auto& l : s->log) logged |= l.find("broken.csv.gz") != std::string::npos;
  EXPECT_TRUE(logged);

  auto ev = store_->GetTable("raw", "t_events");
  ASSERT_TRUE(ev.ok()) << ev.status().ToString();
  EXPECT_EQ((*ev)["Parameters"]["classification"], "json");
  EXPECT_EQ((*ev)["StorageDescriptor"]["Columns"][1]["Type"], "struct<name:string,age:bigint>");
  EXPECT_EQ((*ev)["PartitionKeys"][0]["Name"], "partition_0");
  EXPECT_EQ((*ev)["PartitionKeys"][1]["Name"], "partition_1");
  auto parts = store_->GetPartitions("raw", "t_events", "partition_1 = '12'", {}, {});
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->items.size(), 1u);
  EXPECT_EQ(parts->items[0]["StorageDescriptor"]["Location"], "s3://landing/events/2026/12/");

  auto orders = store_->GetTable("raw", "t_orders");
  ASSERT_TRUE(orders.ok()) << orders.status().ToString();
  EXPECT_EQ((*orders)["Parameters"]["classification"], "csv");
  EXPECT_EQ((*orders)["Parameters"]["compressionType"], "gzip");
  EXPECT_EQ((*orders)["Parameters"]["skip.header.line.count"], "1");
  const json& cols = (*orders)["StorageDescriptor"]["Columns"];
  ASSERT_EQ(cols.size(), 3u);
  EXPECT_EQ(cols[0]["Type"], "bigint");
  EXPECT_EQ(cols[1]["Type"], "string");
  EXPECT_EQ(cols[2]["Type"], "double");
  auto count = store_->CountPartitions("raw", "t_orders");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);  // the broken file's folder holds nothing readable
}

TEST_F(CrawlerTest, NewFoldersOnlyAndDeleteBehaviorAndValidation) {
  json out;
  // Incremental crawls must log schema changes rather than apply them (Glue's rule).
  EXPECT_EQ(crawlers_->Call("CreateCrawler", {{"Name", "x"}, {"DatabaseName", "raw"},
                                              {"Targets", {{"S3Targets", {{{"Path", "s3://landing/a/"}}}}}},
                                              {"RecrawlPolicy", {{"RecrawlBehavior", "CRAWL_NEW_FOLDERS_ONLY"}}}},
                            &out).code(),
            ErrorCode::kInvalidInput);
  EXPECT_EQ(crawlers_->Call("CreateCrawler", {{"Name", "x"}, {"DatabaseName", "raw"},
                                              {"Schedule", "cron(0 0 * * *)"},
                                              {"Targets", {{"S3Targets", {{{"Path", "s3://landing/a/"}}}}}}},
                            &out).code(),
            ErrorCode::kInvalidInput);
  Parquet("logs/dt=1/p.parquet", "SELECT 1 AS a");
  Call("CreateCrawler", {{"Name", "inc"}, {"DatabaseName", "raw"},
                         {"Targets", {{"S3Targets", {{{"Path", "s3://landing/logs/"}}}}}},
                         {"RecrawlPolicy", {{"RecrawlBehavior", "CRAWL_NEW_FOLDERS_ONLY"}}},
                         {"SchemaChangePolicy", {{"UpdateBehavior", "LOG"}, {"DeleteBehavior", "LOG"}}}});
  ASSERT_TRUE(crawlers_->RunNow("inc").ok());
  Parquet("logs/dt=1/q.parquet", "SELECT 1 AS a");   // old folder: skipped
  Parquet("logs/dt=2/p.parquet", "SELECT 1 AS a, 2 AS b");  // new folder, new column: logged
  auto s = crawlers_->RunNow("inc");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->files_read, 1);
  EXPECT_EQ(s->partitions_added, 1);
  EXPECT_EQ(s->tables_updated, 0);
  auto t = store_->GetTable("raw", "logs");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)["StorageDescriptor"]["Columns"].size(), 1u);

  // DELETE_FROM_DATABASE removes tables whose data vanished.
  Parquet("gone/x.parquet", "SELECT 1 AS a");
  Call("CreateCrawler", {{"Name", "del"}, {"DatabaseName", "raw"},
                         {"Targets", {{"S3Targets", {{{"Path", "s3://landing/gone/"}}}}}},
                         {"SchemaChangePolicy", {{"DeleteBehavior", "DELETE_FROM_DATABASE"}}}});
  ASSERT_TRUE(crawlers_->RunNow("del").ok());
  ASSERT_TRUE(store_->GetTable("raw", "gone").ok());
  fs::remove_all(dir_ / "objects" / "landing" / "gone");
  s = crawlers_->RunNow("del");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->tables_deleted, 1);
  EXPECT_EQ(store_->GetTable("raw", "gone").status().code(), ErrorCode::kEntityNotFound);
}

// Partitions and tables whose folders vanished, per SchemaChangePolicy.DeleteBehavior (Glue:
// LOG keeps them, DELETE_FROM_DATABASE removes them, DEPRECATE_IN_DATABASE marks them with
// DEPRECATED_BY_CRAWLER = <epoch ms>); a folder that only holds unreadable files is not gone,
// and a deprecated partition whose data returns is no longer deprecated.
TEST_F(CrawlerTest, VanishedPartitionsFollowDeleteBehavior) {
  auto hours = [&](const std::string& dir, std::vector<std::string> hs) {
    for (const auto& h : hs) {
      Parquet(dir + "/dt=2026-11-25/hour=" + h + "/p.parquet", "SELECT 1 AS a");
    }
  };
  auto values = [&](const std::string& table) {
    std::vector<std::string> out;
    auto p = store_->GetPartitions("raw", table, "", {}, {});
    EXPECT_TRUE(p.ok());
    for (const json& it : p->items) out.push_back(it["Values"][1]);
    return out;
  };
  auto remove = [&](const std::string& dir, const std::string& h) {
    fs::remove_all(dir_ / "objects" / "landing" / dir / "dt=2026-11-25" / ("hour=" + h));
  };
  for (const char* behavior : {"LOG", "DELETE_FROM_DATABASE", "DEPRECATE_IN_DATABASE"}) {
    std::string dir = std::string("v_") + behavior;
    for (char& c : dir) c = char(std::tolower(c));
    hours(dir, {"00", "01", "02", "03"});
    Call("CreateCrawler", {{"Name", dir}, {"DatabaseName", "raw"},
                           {"Targets", {{"S3Targets", {{{"Path", "s3://landing/" + dir + "/"}}}}}},
                           {"SchemaChangePolicy", {{"DeleteBehavior", behavior}}}});
    ASSERT_TRUE(crawlers_->RunNow(dir).ok());
    ASSERT_EQ(values(dir), (std::vector<std::string>{"00", "01", "02", "03"}));
    remove(dir, "01");
    remove(dir, "02");
    Write(dir + "/dt=2026-11-25/hour=02/p.parquet", "PAR1 torn");  // unreadable, but there
    clock_.Advance(1000000);
    auto s = crawlers_->RunNow(dir);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->partitions_added, 0);
    std::string log;
    for (const auto& l : s->log) log += l + "\n";
    if (std::string(behavior) == "LOG") {
      EXPECT_EQ(s->partitions_deleted, 0);
      EXPECT_EQ(values(dir), (std::vector<std::string>{"00", "01", "02", "03"}));
      EXPECT_NE(log.find("Kept partition [2026-11-25, 01] of raw." + dir +
                         ": its data is gone from s3://landing/" + dir +
                         "/dt=2026-11-25/hour=01/ (DeleteBehavior LOG)"),
                std::string::npos)
          << log;
    } else if (std::string(behavior) == "DELETE_FROM_DATABASE") {
      EXPECT_EQ(s->partitions_deleted, 1);
      EXPECT_EQ(values(dir), (std::vector<std::string>{"00", "02", "03"}));
      EXPECT_NE(log.find("Deleted partition [2026-11-25, 01]"), std::string::npos) << log;
    } else {
      EXPECT_EQ(s->partitions_deleted, 1);
      EXPECT_EQ(values(dir), (std::vector<std::string>{"00", "01", "02", "03"}));
      auto p = store_->GetPartition("raw", dir, {"2026-11-25", "01"});
      ASSERT_TRUE(p.ok());
      std::string stamp = std::to_string(clock_.NowMillis());
      EXPECT_EQ((*p)["Parameters"]["DEPRECATED_BY_CRAWLER"], stamp);
      EXPECT_EQ((*p)["StorageDescriptor"]["Parameters"]["DEPRECATED_BY_CRAWLER"], stamp);
      auto kept = store_->GetPartition("raw", dir, {"2026-11-25", "02"});
      ASSERT_TRUE(kept.ok());
      EXPECT_FALSE((*kept)["Parameters"].contains("DEPRECATED_BY_CRAWLER"));
      // A second crawl does not deprecate it again (the stamp stays the first one).
      clock_.Advance(1000000);
      s = crawlers_->RunNow(dir);
      ASSERT_TRUE(s.ok());
      EXPECT_EQ(s->partitions_deleted, 0);
      // The data comes back: the mark goes.
      hours(dir, {"01"});
      s = crawlers_->RunNow(dir);
      ASSERT_TRUE(s.ok());
      p = store_->GetPartition("raw", dir, {"2026-11-25", "01"});
      ASSERT_TRUE(p.ok());
      EXPECT_FALSE((*p)["Parameters"].contains("DEPRECATED_BY_CRAWLER")) << p->dump();
      EXPECT_FALSE((*p)["StorageDescriptor"]["Parameters"].contains("DEPRECATED_BY_CRAWLER"));
    }
  }

  // Whole tables: DEPRECATE marks the table the same way; LOG keeps it untouched.
  auto t = store_->GetTable("raw", "v_deprecate_in_database");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)["Parameters"].contains("DEPRECATED_BY_CRAWLER"));
  fs::remove_all(dir_ / "objects" / "landing" / "v_deprecate_in_database");
  fs::remove_all(dir_ / "objects" / "landing" / "v_log");
  auto s = crawlers_->RunNow("v_deprecate_in_database");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->tables_deleted, 1);
  t = store_->GetTable("raw", "v_deprecate_in_database");
  ASSERT_TRUE(t.ok());
  std::string stamp = std::to_string(clock_.NowMillis());
  EXPECT_EQ((*t)["Parameters"]["DEPRECATED_BY_CRAWLER"], stamp);
  EXPECT_EQ((*t)["StorageDescriptor"]["Parameters"]["DEPRECATED_BY_CRAWLER"], stamp);
  s = crawlers_->RunNow("v_log");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->tables_deleted, 0);
  t = store_->GetTable("raw", "v_log");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)["Parameters"].contains("DEPRECATED_BY_CRAWLER"));
  // Its data returns: the table is no longer deprecated (and the old definition is a version).
  hours("v_deprecate_in_database", {"05"});
  s = crawlers_->RunNow("v_deprecate_in_database");
  ASSERT_TRUE(s.ok());
  t = store_->GetTable("raw", "v_deprecate_in_database");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)["Parameters"].contains("DEPRECATED_BY_CRAWLER"));
}

TEST_F(CrawlerTest, ScheduleRunsWithInjectedClock) {
  Parquet("sched/p.parquet", "SELECT 1 AS a");
  Call("CreateCrawler", {{"Name", "s"}, {"DatabaseName", "raw"}, {"Schedule", "cron(0/5 * * * ? *)"},
                         {"Targets", {{"S3Targets", {{{"Path", "s3://landing/sched/"}}}}}}});
  auto c = Call("GetCrawler", {{"Name", "s"}});
  EXPECT_EQ(c["Crawler"]["Schedule"]["ScheduleExpression"], "cron(0/5 * * * ? *)");
  EXPECT_EQ(c["Crawler"]["Schedule"]["State"], "SCHEDULED");
  int64_t now = clock_.NowSeconds();  // 12:03:10
  crawlers_->RunDue(now + 60);        // 12:04:10: not due
  crawlers_->WaitIdle("s");
  EXPECT_EQ(store_->GetTable("raw", "sched").status().code(), ErrorCode::kEntityNotFound);
  crawlers_->RunDue(now + 120);  // 12:05:10: due
  crawlers_->WaitIdle("s");
  EXPECT_TRUE(store_->GetTable("raw", "sched").ok());
  c = Call("GetCrawler", {{"Name", "s"}});
  EXPECT_EQ(c["Crawler"]["LastCrawl"]["Status"], "SUCCEEDED");
  EXPECT_EQ(c["Crawler"]["State"], "READY");
  Call("StopCrawlerSchedule", {{"CrawlerName", "s"}});
  c = Call("GetCrawler", {{"Name", "s"}});
  EXPECT_EQ(c["Crawler"]["Schedule"]["State"], "NOT_SCHEDULED");
}

}  // namespace
}  // namespace tarn::catalog
