#include "streams/service.h"

#include <gtest/gtest.h>

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "catalog/store.h"
#include "core/data_dir.h"
#include "core/hash.h"
#include "core/strings.h"
#include "sql/duckdb/engine.h"
#include "storage/local_store.h"
#include "security/authz.h"
#include "streams/firehose_api.h"
#include "streams/prefix.h"
#include "streams/stream.h"

namespace tarn::streams {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class StreamServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tarn-streams-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::create_directories(dir_ + "/meta");
    fs::create_directories(dir_ + "/objects");
    meta_ = std::move(MetaStore::Open(dir_ + "/meta/tarn.db")).value();
    store_ = std::move(storage::LocalObjectStore::Open(dir_ + "/objects", meta_.get(), "us-east-1",
                                                       {"landing"}))
                 .value();
    catalog_ = std::make_unique<catalog::CatalogStore>(meta_.get(), &clock_, "123456789012");
    ASSERT_TRUE(catalog_->Migrate().ok());
    OpenService();
  }
  void TearDown() override {
    svc_.reset();
    catalog_.reset();
    store_.reset();
    meta_.reset();
    fs::remove_all(dir_);
  }

  void OpenService() {
    svc_.reset();
    StreamServiceOptions o;
    o.wal_root = dir_ + "/wal";
    o.account_id = "123456789012";
    o.clock = &clock_;
    o.background_flush = false;
    o.wal = wal_options_;
    o.compaction_files = compaction_files_;
    o.compaction_grace_ms = 0;
    auto s = StreamService::Open(meta_.get(), store_.get(), catalog_.get(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    svc_ = std::move(s).value();
  }

  std::vector<PutResult> Put(const std::string& stream, std::vector<std::string> recs) {
    std::promise<std::vector<PutResult>> p;
    auto f = p.get_future();
    svc_->Put(stream, std::move(recs), [&](std::vector<PutResult> r) { p.set_value(std::move(r)); });
    return f.get();
  }

  // Every object in the landing bucket: key → bytes.
  std::map<std::string, std::string> Objects() {
    std::map<std::string, std::string> out;
    storage::ListOptions lo;
    auto l = store_->ListObjects("landing", lo);
    EXPECT_TRUE(l.ok());
    for (const auto& o : l->objects) {
      auto r = store_->GetObject("landing", o.key, {});
      EXPECT_TRUE(r.ok());
      std::string body;
      char buf[65536];
      for (;;) {
        auto n = (*r)->Read(buf, sizeof(buf));
        if (!n.ok() || *n == 0) break;
        body.append(buf, *n);
      }
      out[o.key] = body;
    }
    return out;
  }

  json Raw(int interval = 60, int size_mb = 5) {
    return {{"BucketARN", "arn:aws:s3:::landing"},
            {"RoleARN", "arn:aws:iam::123456789012:role/firehose"},
            {"BufferingHints", {{"IntervalInSeconds", interval}, {"SizeInMBs", size_mb}}},
            {"ProcessingConfiguration",
             {{"Enabled", true},
              {"Processors", json::array({{{"Type", "AppendDelimiterToRecord"}}})}}}};
  }

  // Raw(0) converting JSON to Parquet against catalog table `database`.`table`.
  json ToParquet(const std::string& database, const std::string& table,
                 const json& serde = json::object()) {
    json j = Raw(0);
    j.erase("ProcessingConfiguration");
    j["DataFormatConversionConfiguration"] = {
        {"SchemaConfiguration", {{"DatabaseName", database}, {"TableName", table}}},
        {"InputFormatConfiguration", {{"Deserializer", {{"OpenXJsonSerDe", json::object()}}}}},
        {"OutputFormatConfiguration", {{"Serializer", {{"ParquetSerDe", serde}}}}}};
    return j;
  }

  Status AppendFrom(const std::string& stream, std::string data, const RecordOrigin& origin) {
    std::promise<Status> p;
    auto f = p.get_future();
    svc_->Append(stream, std::move(data), [&](const Status& st) { p.set_value(st); }, &origin);
    return f.get();
  }

  // Every line of every object in the landing bucket.
  std::multiset<std::string> Lines() {
    std::multiset<std::string> out;
    for (const auto& [k, body] : Objects()) {
      size_t at = 0;
      while (at < body.size()) {
        size_t nl = body.find('\n', at);
        if (nl == std::string::npos) nl = body.size();
        out.insert(body.substr(at, nl - at));
        at = nl + 1;
      }
    }
    return out;
  }

  std::string dir_;
  WalOptions wal_options_;
  size_t compaction_files_ = 8;
  ManualClock clock_{1764072000LL * 1000000};  // 2025-11-25T12:00:00Z
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<storage::LocalObjectStore> store_;
  std::unique_ptr<catalog::CatalogStore> catalog_;
  std::unique_ptr<StreamService> svc_;
};

TEST_F(StreamServiceTest, RawRecordsWaitForTheIntervalThenLandUnderTheHivePrefix) {
  ASSERT_TRUE(svc_->Create("s1", "DirectPut", Raw(60), json()).ok());
  auto r = Put("s1", {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}"});
  for (const auto& x : r) ASSERT_TRUE(x.status.ok()) << x.status.ToString();
  EXPECT_EQ(r[0].seq + 2, r[2].seq);
  ASSERT_TRUE(svc_->FlushDue().ok());
  EXPECT_TRUE(Objects().empty()) << "flushed before the buffering interval";
  clock_.Advance(61LL * 1000000);
  ASSERT_TRUE(svc_->FlushDue().ok());
  auto objs = Objects();
  ASSERT_EQ(objs.size(), 1u);
  const auto& [key, body] = *objs.begin();
  EXPECT_EQ(key.rfind("iot/s1/year=2025/month=11/day=25/hour=12/s1-2025-11-25-12-00-00-", 0), 0u) << key;
  EXPECT_EQ(body, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
}

TEST_F(StreamServiceTest, RefusesWhatItCannotHonour) {
  json j = Raw();
  j["CompressionFormat"] = "Snappy";
  EXPECT_EQ(svc_->Create("bad", "DirectPut", j, json()).status().code(),
            ErrorCode::kFirehoseInvalidArgument);
  j = Raw();
  j["Prefix"] = "x/!{partitionKeyFromLambda:id}/";
  j["ErrorOutputPrefix"] = "err/";
  auto st = svc_->Create("bad", "DirectPut", j, json()).status();
  EXPECT_EQ(st.code(), ErrorCode::kFirehoseInvalidArgument);
  EXPECT_NE(st.message().find("Lambda"), std::string::npos);
  j = Raw();
  j["BucketARN"] = "arn:aws:s3:::no-such-bucket";
  EXPECT_EQ(svc_->Create("bad", "DirectPut", j, json()).status().code(),
            ErrorCode::kFirehoseInvalidArgument);
  EXPECT_EQ(svc_->Create("bad", "KinesisStreamAsSource", Raw(), json()).status().code(),
            ErrorCode::kFirehoseInvalidArgument);
  for (const char* name : {"..", ".tmp", "a/b", ""}) {
    EXPECT_EQ(svc_->Create(name, "DirectPut", Raw(), json()).status().code(),
              ErrorCode::kFirehoseInvalidArgument) << name;
  }
  ASSERT_TRUE(svc_->Create("ok", "DirectPut", Raw(), json()).ok());
  EXPECT_EQ(svc_->Create("ok", "DirectPut", Raw(), json()).status().code(),
            ErrorCode::kFirehoseResourceInUse);
}

TEST_F(StreamServiceTest, UnflushedRecordsSurviveARestartExactlyOnce) {
  ASSERT_TRUE(svc_->Create("s1", "DirectPut", Raw(900), json()).ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Put("s1", {"r" + std::to_string(i)})[0].status.ok());
  // Half delivered, then more records, then a restart without a flush.
  clock_.Advance(901LL * 1000000);
  ASSERT_TRUE(svc_->FlushDue().ok());
  for (int i = 50; i < 80; ++i) ASSERT_TRUE(Put("s1", {"r" + std::to_string(i)})[0].status.ok());
  OpenService();
  ASSERT_TRUE(svc_->FlushAll().ok());
  std::multiset<std::string> seen;
  for (const auto& [k, body] : Objects()) {
    size_t start = 0;
    while (start < body.size()) {
      size_t nl = body.find('\n', start);
      seen.insert(body.substr(start, nl - start));
      start = nl + 1;
    }
  }
  ASSERT_EQ(seen.size(), 80u);
  for (int i = 0; i < 80; ++i) EXPECT_EQ(seen.count("r" + std::to_string(i)), 1u) << i;
  // The sequence continues; the delivered WAL segments are not replayed again.
  OpenService();
  ASSERT_TRUE(svc_->FlushAll().ok());
  EXPECT_EQ(Objects().size(), 2u);
}

TEST_F(StreamServiceTest, DynamicPartitioningByJqKeysAndErrorsForRecordsWithoutThem) {
  json j = Raw(0);
  j["DynamicPartitioningConfiguration"] = {{"Enabled", true}};
  j["Prefix"] = "iot/by-device/device=!{partitionKeyFromQuery:device}/site=!{partitionKeyFromQuery:site}/";
  j["ErrorOutputPrefix"] = "errors/by-device/!{firehose:error-output-type}/";
  j["ProcessingConfiguration"]["Processors"].push_back(
      {{"Type", "MetadataExtraction"},
       {"Parameters", json::array({{{"ParameterName", "MetadataExtractionQuery"},
                                    {"ParameterValue", "{device: .device, site: .meta.site}"}},
                                   {{"ParameterName", "JsonParsingEngine"},
                                    {"ParameterValue", "JQ-1.6"}}})}});
  auto c = svc_->Create("dp", "DirectPut", j, json());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = Put("dp", {R"({"device":"a","meta":{"site":"x"},"v":1})",
                      R"({"device":"b","meta":{"site":"x"},"v":2})",
                      R"({"device":"a","meta":{"site":"x"},"v":3})", R"({"v":4})", "not json"});
  for (const auto& x : r) ASSERT_TRUE(x.status.ok());
  ASSERT_TRUE(svc_->FlushDue().ok());  // interval 0: due at once
  auto objs = Objects();
  ASSERT_EQ(objs.size(), 3u);
  int a = 0, b = 0, err = 0;
  for (const auto& [k, body] : objs) {
    if (k.rfind("iot/by-device/device=a/site=x/dp-", 0) == 0) {
      ++a;
      EXPECT_EQ(body, "{\"device\":\"a\",\"meta\":{\"site\":\"x\"},\"v\":1}\n{\"device\":\"a\",\"meta\":{\"site\":\"x\"},\"v\":3}\n");
    } else if (k.rfind("iot/by-device/device=b/site=x/dp-", 0) == 0) {
      ++b;
    } else if (k.rfind("errors/by-device/processing-failed/dp-", 0) == 0) {
      ++err;
      EXPECT_NE(body.find("\"rawData\":\"eyJ2Ijo0fQ==\""), std::string::npos) << body;
      EXPECT_NE(body.find("errorCode"), std::string::npos);
      EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 2);
    } else {
      ADD_FAILURE() << "unexpected object " << k;
    }
  }
  EXPECT_EQ(a + b + err, 3);
}

// Compaction (compact.cc): small Parquet objects of a partition merge into one named by the
// union of their ranges; the inputs go; a merge interrupted between its PUT and the deletes is
// cleaned up at the next start, and objects outside the stream's naming are never touched.
TEST_F(StreamServiceTest, CompactionMergesSmallObjectsAndRecoveryDeletesCoveredLeftovers) {
  compaction_files_ = 4;
  OpenService();
  ASSERT_TRUE(catalog_->CreateDatabase({{"Name", "iot"}}).ok());
  json table = {{"Name", "small"},
                {"StorageDescriptor",
                 {{"Columns", json::array({{{"Name", "device"}, {"Type", "string"}},
                                           {{"Name", "n"}, {"Type", "bigint"}}})},
                  {"Location", "s3://landing/small/"}}}};
  ASSERT_TRUE(catalog_->CreateTable("iot", table).ok());
  json j = ToParquet("iot", "small");
  j["Prefix"] = "small/";
  j["ErrorOutputPrefix"] = "errors/small/";
  auto c = svc_->Create("small", "DirectPut", j, json());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  int n = 0;
  for (int flush = 0; flush < 10; ++flush) {
    std::vector<std::string> recs;
    for (int i = 0; i < 3; ++i, ++n) recs.push_back("{\"device\":\"d\",\"n\":" + std::to_string(n) + "}");
    for (const auto& x : Put("small", recs)) ASSERT_TRUE(x.status.ok());
    ASSERT_TRUE(svc_->FlushDue().ok());
  }
  auto parquet_keys = [&] {
    std::vector<std::string> keys;
    for (const auto& [k, body] : Objects()) {
      if (k.rfind("small/", 0) == 0 && k.size() > 8 && k.substr(k.size() - 8) == ".parquet") keys.push_back(k);
    }
    return keys;
  };
  ASSERT_EQ(parquet_keys().size(), 10u);
  ASSERT_TRUE(svc_->Compact().ok());
  auto keys = parquet_keys();
  EXPECT_LT(keys.size(), 4u);
  ASSERT_GE(keys.size(), 1u);
  // The remaining objects' ranges are disjoint, in order, and hold every row exactly once.
  auto db = std::move(sql::Database::Open("")).value();
  auto conn = std::move(db->Connect()).value();
  auto count = [&](const std::vector<std::string>& ks) {
    std::string list;
    for (const auto& k : ks) list += (list.empty() ? "" : ", ") + sql::QuoteLiteral(*store_->LocalPath("landing", k));
    auto q = conn->Query("SELECT count(*), count(DISTINCT n), sum(n) FROM read_parquet([" + list + "])");
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    auto rows = std::move(q->ToRows()).value();
    return *rows[0][0] + "/" + *rows[0][1] + "/" + *rows[0][2];
  };
  EXPECT_EQ(count(keys), "30/30/435");
  EXPECT_EQ(ReadFile(dir_ + "/wal/small/compactions").value_or("?"), "[]");

  // A leftover as a kill -9 between the merged PUT and the deletes leaves it: an object whose
  // range the merged one covers, and the folder recorded in <wal dir>/compactions.
  const std::string merged = keys.front();
  auto name = merged.substr(merged.rfind('/') + 1);
  std::string stale = "small/small-" + name.substr(6, 19) + "-" + name.substr(26, 20) + "-" +
                      name.substr(26, 20) + ".parquet";
  ASSERT_NE(stale, merged);
  auto put = [&](const std::string& key, std::string body) {
    storage::StringSource src(std::move(body));
    ASSERT_TRUE(store_->PutObject("landing", key, src, {}).ok());
  };
  put(stale, Objects()[merged]);
  put("small/user-file.parquet", Objects()[merged]);
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/wal/small/compactions",
                              R"([{"bucket":"landing","prefix":"small/"}])").ok());
  OpenService();  // the restart
  auto after = Objects();
  EXPECT_EQ(after.count(stale), 0u) << "the covered leftover is deleted at start";
  EXPECT_EQ(after.count(merged), 1u);
  EXPECT_EQ(after.count("small/user-file.parquet"), 1u) << "not the stream's object: untouched";
  auto now = keys;
  now.push_back("small/user-file.parquet");
  std::sort(now.begin(), now.end());
  EXPECT_EQ(parquet_keys(), now);
  EXPECT_EQ(count(keys), "30/30/435");
  EXPECT_EQ(ReadFile(dir_ + "/wal/small/compactions").value_or("?"), "[]");
}

TEST_F(StreamServiceTest, ParquetConversionWithCatalogSchemaCoercionAndErrorPrefix) {
  ASSERT_TRUE(catalog_->CreateDatabase({{"Name", "iot"}}).ok());
  json table = {{"Name", "readings"},
                {"StorageDescriptor",
                 {{"Columns", json::array({{{"Name", "device"}, {"Type", "string"}},
                                           {{"Name", "temp"}, {"Type", "double"}},
                                           {{"Name", "count"}, {"Type", "int"}},
                                           {{"Name", "ok"}, {"Type", "boolean"}},
                                           {{"Name", "ts"}, {"Type", "timestamp"}}})},
                  {"Location", "s3://landing/iot/conv/"}}},
                {"PartitionKeys", json::array({{{"Name", "year"}, {"Type", "string"}},
                                               {{"Name", "month"}, {"Type", "string"}},
                                               {{"Name", "day"}, {"Type", "string"}},
                                               {{"Name", "hour"}, {"Type", "string"}}})}};
  ASSERT_TRUE(catalog_->CreateTable("iot", table).ok());
  json j = ToParquet("iot", "readings", {{"Compression", "ZSTD"}});
  auto c = svc_->Create("conv", "DirectPut", j, json());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = Put("conv", {R"({"Device":"d1","TEMP":"21.5","count":3,"ok":true,"ts":"2025-11-25T12:00:01Z","extra":1})",
                        R"({"device":"d2","temp":19,"count":"4","ok":"false","ts":1764072002000})",
                        R"({"device":"d3","temp":"warm"})", R"({"device":"d4","count":1e20})",
                        R"({"device":"d5"})"});
  for (const auto& x : r) ASSERT_TRUE(x.status.ok());
  ASSERT_TRUE(svc_->FlushDue().ok());
  auto objs = Objects();
  ASSERT_EQ(objs.size(), 2u);
  std::string parquet_key, error_body;
  for (const auto& [k, body] : objs) {
    if (k.size() > 8 && k.substr(k.size() - 8) == ".parquet") parquet_key = k;
    if (k.rfind("errors/conv/format-conversion-failed/year=2025/", 0) == 0) error_body = body;
  }
  ASSERT_FALSE(parquet_key.empty());
  EXPECT_EQ(parquet_key.rfind("iot/conv/year=2025/month=11/day=25/hour=12/conv-", 0), 0u);
  EXPECT_EQ(std::count(error_body.begin(), error_body.end(), '\n'), 2) << error_body;
  EXPECT_NE(error_body.find("temp"), std::string::npos);
  auto path = store_->LocalPath("landing", parquet_key);
  ASSERT_TRUE(path.ok());
  auto db = std::move(sql::Database::Open("")).value();
  auto conn = std::move(db->Connect()).value();
  auto q = conn->Query("SELECT device, temp, count, ok, epoch_ms(ts) FROM read_parquet(" +
                       sql::QuoteLiteral(*path) + ") ORDER BY device");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto rows = std::move(q->ToRows()).value();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(*rows[0][0], "d1");
  EXPECT_EQ(*rows[0][1], "21.5");
  EXPECT_EQ(*rows[0][2], "3");
  EXPECT_EQ(*rows[0][3], "true");
  EXPECT_EQ(*rows[0][4], "1764072001000");
  EXPECT_EQ(*rows[1][2], "4");
  EXPECT_EQ(*rows[1][3], "false");
  EXPECT_EQ(*rows[1][4], "1764072002000");
  EXPECT_EQ(*rows[2][0], "d5");
  EXPECT_FALSE(rows[2][1].has_value());
  // The new Hive partition is in the catalog.
  auto has = catalog_->HasPartition("iot", "readings", {"2025", "11", "25", "12"});
  ASSERT_TRUE(has.ok());
  EXPECT_TRUE(*has);
}

// CheckConversion (the rules engine's question before a record is taken) gives the verdict the
// flush gives: the same records fail, with the same error code and reason; a stream that
// converts nothing, or none at all, has nothing to check; a schema change reaches the check
// within a second.
TEST_F(StreamServiceTest, CheckConversionAgreesWithTheFlush) {
  ASSERT_TRUE(catalog_->CreateDatabase({{"Name", "iot"}}).ok());
  json table = {{"Name", "checked"},
                {"StorageDescriptor",
                 {{"Columns", json::array({{{"Name", "device"}, {"Type", "string"}},
                                           {{"Name", "temp"}, {"Type", "double"}},
                                           {{"Name", "n"}, {"Type", "smallint"}},
                                           {{"Name", "f"}, {"Type", "float"}}})},
                  {"Location", "s3://landing/iot/checked/"}}}};
  ASSERT_TRUE(catalog_->CreateTable("iot", table).ok());
  json j = ToParquet("iot", "checked");
  ASSERT_TRUE(svc_->Create("chk", "DirectPut", j, json()).ok());
  ASSERT_TRUE(svc_->Create("raw", "DirectPut", Raw(0), json()).ok());
  std::vector<std::string> recs = {
      R"({"DEVICE":"d1","temp":"21.5","n":"7"})",  // converts (OpenX coercions)
      R"({"device":"d2","temp":"ERR_SENSOR"})",    // InvalidValue
      R"({"device":"d3","n":40000})",              // out of SMALLINT's range
      R"({"device":"d4","f":1e300})",              // out of FLOAT's range
      R"({"device":"d5","f":3.5})",                // converts
      "not json {",                                // MalformedData
      "[1, 2]",                                    // not an object
      R"({"device":"d6"})"};                       // converts (missing keys are NULL)
  std::map<std::string, std::string> predicted;   // record → "code: reason"
  for (const auto& r : recs) {
    Status st = svc_->CheckConversion("chk", r);
    if (!st.ok()) {
      EXPECT_EQ(st.code(), ErrorCode::kFirehoseInvalidArgument);
      predicted[r] = st.message();
    }
  }
  EXPECT_EQ(predicted.size(), 5u);
  EXPECT_EQ(predicted[recs[1]].rfind("DataFormatConversion.InvalidValue: column 'temp' (DOUBLE)", 0), 0u)
      << predicted[recs[1]];
  EXPECT_EQ(predicted[recs[5]].rfind("DataFormatConversion.MalformedData: ", 0), 0u) << predicted[recs[5]];
  EXPECT_TRUE(svc_->CheckConversion("raw", "not json {").ok());
  EXPECT_TRUE(svc_->CheckConversion("nosuch", "not json {").ok());

  for (const auto& x : Put("chk", recs)) ASSERT_TRUE(x.status.ok());
  ASSERT_TRUE(svc_->FlushDue().ok());
  std::map<std::string, std::string> flushed;  // what the error output says
  std::string parquet_key;
  for (const auto& [k, body] : Objects()) {
    if (k.rfind("iot/chk/", 0) == 0) parquet_key = k;
    if (k.rfind("errors/chk/", 0) != 0) continue;
    size_t at = 0;
    while (at < body.size()) {
      size_t nl = body.find('\n', at);
      json e = json::parse(body.substr(at, nl - at));
      flushed[Base64Decode(e["rawData"].get<std::string>()).value()] =
          e["errorCode"].get<std::string>() + ": " + e["errorMessage"].get<std::string>();
      at = nl + 1;
    }
  }
  EXPECT_EQ(flushed, predicted);
  ASSERT_FALSE(parquet_key.empty());
  auto path = store_->LocalPath("landing", parquet_key);
  ASSERT_TRUE(path.ok());
  auto db = std::move(sql::Database::Open("")).value();
  auto conn = std::move(db->Connect()).value();
  auto q = conn->Query("SELECT string_agg(device, ',' ORDER BY device) FROM read_parquet(" +
                       sql::QuoteLiteral(*path) + ")");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(*std::move(q->ToRows()).value()[0][0], "d1,d5,d6");

  // temp becomes a string column: the check follows once its second is over.
  table["StorageDescriptor"]["Columns"][1]["Type"] = "string";
  ASSERT_TRUE(catalog_->UpdateTable("iot", table, true, "").ok());
  EXPECT_FALSE(svc_->CheckConversion("chk", recs[1]).ok()) << "read less than a second ago";
  clock_.Advance(1000000);
  EXPECT_TRUE(svc_->CheckConversion("chk", recs[1]).ok());
}

// Opt-in schema inference (tag tarn:schema-inference=on): without it a missing table is refused
// at create; with it the table is created from the first records — columns by JSON kind, the
// prefix's Hive keys as partition keys — and the records convert against it.
TEST_F(StreamServiceTest, SchemaInferredFromTheFirstRecordsWhenTagged) {
  json j = ToParquet("auto", "inferred");
  auto refused = svc_->Create("inf", "DirectPut", j, json());
  EXPECT_EQ(refused.status().code(), ErrorCode::kFirehoseInvalidArgument);
  EXPECT_NE(refused.status().message().find("tarn:schema-inference"), std::string::npos);
  json tags = json::array({{{"Key", "tarn:schema-inference"}, {"Value", "on"}}});
  auto c = svc_->Create("inf", "DirectPut", j, tags);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = Put("inf", {R"({"Device":"d1","temp":21,"ok":true,"meta":{"a":1},"n":null})",
                       R"({"device":"d2","temp":19.5,"ok":false,"n":"x","year":"clash"})",
                       "not json"});
  for (const auto& x : r) ASSERT_TRUE(x.status.ok());
  ASSERT_TRUE(svc_->FlushDue().ok());
  auto t = catalog_->GetTable("auto", "inferred");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)["StorageDescriptor"]["Columns"],
            json::parse(R"([{"Name":"device","Type":"string"},{"Name":"temp","Type":"double"},
                            {"Name":"ok","Type":"boolean"},{"Name":"meta","Type":"string"},
                            {"Name":"n","Type":"string"}])"));
  EXPECT_EQ((*t)["PartitionKeys"].size(), 4u);
  EXPECT_EQ((*t)["PartitionKeys"][0]["Name"], "year");
  EXPECT_EQ((*t)["StorageDescriptor"]["Location"], "s3://landing/iot/inf/");
  std::string parquet_key;
  size_t errors = 0;
  for (const auto& [k, body] : Objects()) {
    if (k.size() > 8 && k.substr(k.size() - 8) == ".parquet") parquet_key = k;
    if (k.rfind("errors/inf/format-conversion-failed/", 0) == 0) errors += 1;
  }
  ASSERT_FALSE(parquet_key.empty());
  EXPECT_EQ(errors, 1u);  // "not json"
  auto path = store_->LocalPath("landing", parquet_key);
  ASSERT_TRUE(path.ok());
  auto db = std::move(sql::Database::Open("")).value();
  auto conn = std::move(db->Connect()).value();
  auto q = conn->Query("SELECT device, temp, ok, meta, n FROM read_parquet(" +
                       sql::QuoteLiteral(*path) + ") ORDER BY device");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto rows = std::move(q->ToRows()).value();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(*rows[0][0], "d1");
  EXPECT_EQ(*rows[0][1], "21");
  EXPECT_EQ(*rows[0][3], "{\"a\":1}");
  EXPECT_FALSE(rows[0][4].has_value());
  EXPECT_EQ(*rows[1][1], "19.5");
  EXPECT_EQ(*rows[1][4], "x");
  // The partition of the landed file is registered under the inferred keys.
  auto has = catalog_->HasPartition("auto", "inferred", {"2025", "11", "25", "12"});
  ASSERT_TRUE(has.ok());
  EXPECT_TRUE(*has);
}

TEST_F(StreamServiceTest, SizeHintFlushesBeforeTheInterval) {
  ASSERT_TRUE(svc_->Create("big", "DirectPut", Raw(900, 1), json()).ok());
  ASSERT_TRUE(Put("big", {std::string(600 * 1024, 'x')})[0].status.ok());
  ASSERT_TRUE(svc_->FlushDue().ok());
  EXPECT_TRUE(Objects().empty());
  ASSERT_TRUE(Put("big", {std::string(600 * 1024, 'y')})[0].status.ok());
  ASSERT_TRUE(svc_->FlushDue().ok());
  EXPECT_EQ(Objects().size(), 1u);
}

TEST_F(StreamServiceTest, OversizedRecordFailsAloneInABatch) {
  ASSERT_TRUE(svc_->Create("s", "DirectPut", Raw(), json()).ok());
  auto r = Put("s", {"a", std::string(1000 * 1024 + 1, 'x'), "c"});
  EXPECT_TRUE(r[0].status.ok());
  EXPECT_EQ(r[1].status.code(), ErrorCode::kFirehoseInvalidArgument);
  EXPECT_TRUE(r[2].status.ok());
  EXPECT_EQ(Put("nope", {"a"})[0].status.code(), ErrorCode::kFirehoseResourceNotFound);
}

TEST(PrefixTest, TimestampsRandomStringAndValidation) {
  auto t = PrefixTemplate::Parse("a/!{timestamp:yyyy/MM/dd/HH}/!{firehose:random-string}/", false, false);
  ASSERT_TRUE(t.ok());
  auto p = t->Evaluate(1764072000LL * 1000000, {});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, "a/2025/11/25/12/!{firehose:random-string}/");
  std::string f1 = FillRandomString(*p, 7), f2 = FillRandomString(*p, 7), f3 = FillRandomString(*p, 8);
  EXPECT_EQ(f1, f2);
  EXPECT_NE(f1, f3);
  EXPECT_EQ(f1.size(), std::string("a/2025/11/25/12//").size() + 11);
  EXPECT_FALSE(PrefixTemplate::Parse("!{timestamp:yyyy}/!{partitionKeyFromQuery:x}/", false, false).ok());
  EXPECT_FALSE(PrefixTemplate::Parse("!{firehose:error-output-type}/", false, false).ok());
  EXPECT_TRUE(PrefixTemplate::Parse("!{firehose:error-output-type}/", false, true).ok());
  EXPECT_FALSE(PrefixTemplate::Parse("!{timestamp:QQQ}", false, false).ok());
}

}  // namespace
}  // namespace tarn::streams

namespace tarn::streams {
namespace {

// A crash after the objects were written but before the partition was marked delivered: the
// checkpoint still holds only the intent. Recovery repeats the flush with the same records and
// the same key — one object, same bytes.
TEST_F(StreamServiceTest, InterruptedFlushIsRepeatedOntoTheSameKey) {
  ASSERT_TRUE(svc_->Create("s1", "DirectPut", Raw(0), json()).ok());
  for (const auto& r : Put("s1", {"a", "b", "c"})) ASSERT_TRUE(r.status.ok());
  ASSERT_TRUE(svc_->FlushAll().ok());
  auto before = Objects();
  ASSERT_EQ(before.size(), 1u);
  std::string key = before.begin()->first;
  std::string partition = key.substr(0, key.rfind('/') + 1);
  svc_.reset();
  // Roll the checkpoint back to "intent recorded, nothing delivered".
  json marks = {{"D:" + partition, {0, 1, 3}}};
  {
    std::ofstream f(dir_ + "/wal/s1/checkpoint", std::ios::trunc);
    f << "0\n" << marks.dump();
  }
  OpenService();
  ASSERT_TRUE(svc_->FlushAll().ok());
  auto after = Objects();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after.begin()->first, key);
  EXPECT_EQ(after.begin()->second, "a\nb\nc\n");
  // And the repeat was recorded: another restart delivers nothing new.
  OpenService();
  ASSERT_TRUE(svc_->FlushAll().ok());
  EXPECT_EQ(Objects().size(), 1u);
}

// The landing store is unavailable (bucket gone): records stay in the log, the flush is retried
// with exactly the same records and everything lands once the store is back.
TEST_F(StreamServiceTest, StoreOutageKeepsRecordsUntilItReturns) {
  ASSERT_TRUE(store_->CreateBucket("outage").ok());
  json j = Raw(0);
  j["BucketARN"] = "arn:aws:s3:::outage";
  ASSERT_TRUE(svc_->Create("s2", "DirectPut", j, json()).ok());
  ASSERT_TRUE(store_->DeleteBucket("outage").ok());
  for (const auto& r : Put("s2", {"x", "y"})) ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(svc_->FlushDue().ok());
  for (const auto& r : Put("s2", {"z"})) ASSERT_TRUE(r.status.ok());
  // The failed partition backs off (100 ms, doubling up to 5 s) before its repeat.
  EXPECT_TRUE(svc_->FlushDue().ok());
  clock_.Advance(100000);
  EXPECT_FALSE(svc_->FlushDue().ok());
  // A restart in the middle of the outage loses nothing either.
  OpenService();
  ASSERT_TRUE(store_->CreateBucket("outage").ok());
  clock_.Advance(200000);  // past the recovery flush's failure backoff
  ASSERT_TRUE(svc_->FlushDue().ok());
  ASSERT_TRUE(svc_->FlushDue().ok());
  storage::ListOptions lo;
  auto l = store_->ListObjects("outage", lo);
  ASSERT_TRUE(l.ok());
  std::string all;
  for (const auto& o : l->objects) {
    auto r = store_->GetObject("outage", o.key, {});
    ASSERT_TRUE(r.ok());
    char buf[256];
    auto n = (*r)->Read(buf, sizeof(buf));
    ASSERT_TRUE(n.ok());
    all.append(buf, *n);
  }
  EXPECT_EQ(all, "x\ny\nz\n");
}

TEST_F(StreamServiceTest, GzipOutputIsDeterministicGzip) {
  json j = Raw(0);
  j["CompressionFormat"] = "GZIP";
  ASSERT_TRUE(svc_->Create("gz", "DirectPut", j, json()).ok());
  for (const auto& r : Put("gz", {"hello", "world"})) ASSERT_TRUE(r.status.ok());
  ASSERT_TRUE(svc_->FlushAll().ok());
  auto objs = Objects();
  ASSERT_EQ(objs.size(), 1u);
  const auto& [key, body] = *objs.begin();
  EXPECT_EQ(key.substr(key.size() - 3), ".gz");
  ASSERT_GE(body.size(), 2u);
  EXPECT_EQ(uint8_t(body[0]), 0x1f);
  EXPECT_EQ(uint8_t(body[1]), 0x8b);
  std::string out(64, '\0');
  z_stream zs{};
  ASSERT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  zs.avail_in = uInt(body.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(out.size() - zs.avail_out);
  inflateEnd(&zs);
  EXPECT_EQ(out, "hello\nworld\n");
}

// Flushes of different partitions run in parallel on the pool while producers keep appending
// and flush passes overlap; a restart in the middle repeats interrupted intents. Every record
// lands exactly once, and each partition's objects cover disjoint, increasing sequence ranges.
TEST_F(StreamServiceTest, ParallelFlushesKeepPartitionOrderAndExactlyOnce) {
  json j = Raw(0);
  j["DynamicPartitioningConfiguration"] = {{"Enabled", true}};
  j["Prefix"] = "par/d=!{partitionKeyFromQuery:d}/";
  j["ErrorOutputPrefix"] = "errors/par/";
  j["ProcessingConfiguration"]["Processors"].push_back(
      {{"Type", "MetadataExtraction"},
       {"Parameters", json::array({{{"ParameterName", "MetadataExtractionQuery"},
                                    {"ParameterValue", "{d: .d}"}},
                                   {{"ParameterName", "JsonParsingEngine"},
                                    {"ParameterValue", "JQ-1.6"}}})}});
  ASSERT_TRUE(svc_->Create("par", "DirectPut", j, json()).ok());
  for (int round = 0; round < 2; ++round) {
    std::atomic<bool> done{false};
    std::thread flusher([&] {
      while (!done) svc_->FlushDue().IgnoreError();
    });
    std::vector<std::thread> producers;
    for (int t = 0; t < 4; ++t) {
      producers.emplace_back([&, t] {
        for (int b = 0; b < 25; ++b) {
          std::vector<std::string> recs;
          for (int i = 0; i < 8; ++i) {
            int n = round * 1000 + t * 200 + b * 8 + i;
            recs.push_back("{\"d\":" + std::to_string(n % 6) + ",\"n\":" + std::to_string(n) + "}");
          }
          for (const auto& r : Put("par", std::move(recs))) ASSERT_TRUE(r.status.ok());
        }
      });
    }
    for (auto& t : producers) t.join();
    done = true;
    flusher.join();
    if (round == 0) OpenService();  // restart with whatever is buffered or mid-flush
  }
  ASSERT_TRUE(svc_->FlushAll().ok());
  std::map<int, int> seen;
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> ranges;
  for (const auto& [k, body] : Objects()) {
    ASSERT_EQ(k.rfind("par/d=", 0), 0u) << k;
    std::string part = k.substr(0, k.find('/', 6));
    // <stream>-<yyyy-MM-dd-HH-mm-ss>-<first>-<last>
    std::string name = k.substr(k.rfind('/') + 1);
    uint64_t last = std::stoull(name.substr(name.rfind('-') + 1));
    std::string rest = name.substr(0, name.rfind('-'));
    uint64_t first = std::stoull(rest.substr(rest.rfind('-') + 1));
    ranges[part].push_back({first, last});
    size_t pos = 0;
    while (pos < body.size()) {
      size_t nl = body.find('\n', pos);
      json r = json::parse(body.substr(pos, nl - pos));
      EXPECT_EQ("par/d=" + std::to_string(r["d"].get<int>()), part);
      ++seen[r["n"].get<int>()];
      pos = nl + 1;
    }
  }
  ASSERT_EQ(seen.size(), 1600u);
  for (const auto& [n, c] : seen) ASSERT_EQ(c, 1) << "record " << n;
  EXPECT_EQ(ranges.size(), 6u);
  for (auto& [part, rs] : ranges) {
    std::sort(rs.begin(), rs.end());
    for (size_t i = 1; i < rs.size(); ++i) EXPECT_GT(rs[i].first, rs[i - 1].second) << part;
  }
}

TEST_F(StreamServiceTest, UpdateDestinationFlushesUnderTheOldPrefixFirst) {
  ASSERT_TRUE(svc_->Create("u", "DirectPut", Raw(900), json()).ok());
  ASSERT_TRUE(Put("u", {"old"})[0].status.ok());
  EXPECT_EQ(svc_->UpdateDestination("u", "2", "", {{"Prefix", "new/"}}).code(),
            ErrorCode::kConcurrentModification);
  ASSERT_TRUE(svc_->UpdateDestination("u", "1", "", {{"Prefix", "new/"}}).ok());
  ASSERT_TRUE(Put("u", {"fresh"})[0].status.ok());
  ASSERT_TRUE(svc_->FlushAll().ok());
  auto objs = Objects();
  ASSERT_EQ(objs.size(), 2u);
  for (const auto& [k, body] : objs) {
    if (k.rfind("new/u-", 0) == 0) {
      EXPECT_EQ(body, "fresh\n");
    } else {
      EXPECT_EQ(k.rfind("iot/u/year=", 0), 0u) << k;
      EXPECT_EQ(body, "old\n");
    }
  }
  auto d = svc_->Describe("u");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["VersionId"], "2");
}

}  // namespace
}  // namespace tarn::streams

namespace tarn::streams {
namespace {

// Only "firehose:PutRecordBatch" on stream "open" is allowed.
class OneActionAuthorizer final : public security::Authorizer {
 public:
  security::AuthzDecision Authorize(const security::AuthzRequest& r) const override {
    security::AuthzDecision d;
    seen.push_back(r.action + " " + r.resource);
    d.allowed = r.action == "firehose:PutRecordBatch" &&
                r.resource == "arn:aws:firehose:us-east-1:123456789012:deliverystream/open";
    return d;
  }
  mutable std::vector<std::string> seen;
};

TEST_F(StreamServiceTest, ApiAuthorisesEachCallOnTheStreamArn) {
  ASSERT_TRUE(svc_->Create("open", "DirectPut", Raw(), json()).ok());
  OneActionAuthorizer authz;
  FirehoseApi api(svc_.get(), &authz);
  auto call = [&](const std::string& action, const std::string& body, std::string* out) {
    net::ApiCall c;
    c.family = net::ApiFamily::kJson;
    c.service = "firehose";
    c.action = action;
    c.identity.type = Identity::Type::kUser;
    c.identity.arn = "arn:aws:iam::123456789012:user/alice";
    net::MemoryBodyReader body_reader(body);
    net::HttpRequest rq;
    rq.method = "POST";
    rq.body = &body_reader;
    net::HttpResponse rs;
    Status st = api.Handle(c, rq, rs);
    if (out) *out = rs.body;
    return st;
  };
  std::string out;
  // "aGk=" is "hi".
  ASSERT_TRUE(call("PutRecordBatch",
                   R"({"DeliveryStreamName":"open","Records":[{"Data":"aGk="},{"Data":"aGk="}]})",
                   &out).ok());
  json j = json::parse(out);
  EXPECT_EQ(j["FailedPutCount"], 0);
  EXPECT_EQ(j["RequestResponses"].size(), 2u);
  EXPECT_EQ(authz.seen.back(),
            "firehose:PutRecordBatch arn:aws:firehose:us-east-1:123456789012:deliverystream/open");
  Status denied = call("PutRecord", R"({"DeliveryStreamName":"open","Record":{"Data":"aGk="}})", nullptr);
  EXPECT_EQ(denied.code(), ErrorCode::kAccessDeniedException);
  EXPECT_NE(denied.message().find("user/alice"), std::string::npos);
  EXPECT_EQ(call("DeleteDeliveryStream", R"({"DeliveryStreamName":"open"})", nullptr).code(),
            ErrorCode::kAccessDeniedException);
  EXPECT_TRUE(svc_->Exists("open"));
  EXPECT_EQ(call("PutRecordBatch", R"({"DeliveryStreamName":"open","Records":[{"Data":"@@"}]})",
                 nullptr).code(),
            ErrorCode::kSerializationError);
}

}  // namespace
}  // namespace tarn::streams

namespace tarn::streams {
namespace {

RecordOrigin DeviceOrigin(const std::string& client, uint16_t pid, const std::string& payload,
                          bool dup) {
  RecordOrigin o;
  o.client_id = client;
  o.packet_id = pid;
  o.dup = dup;
  o.payload_hash = StableHash64("sensors/x/t\n" + payload);
  o.slot = 1;
  return o;
}

TEST_F(StreamServiceTest, DeviceResendIsAppendedOnceAcrossRestartAndSegmentDeletion) {
  wal_options_.segment_bytes = 1;  // every append starts a segment: delivered ones are deleted
  OpenService();
  ASSERT_TRUE(svc_->Create("s1", "DirectPut", Raw(60), json()).ok());
  const std::string client = "sensor-7";
  // The rule's output differs on a resend (timestamp()), the device's payload does not.
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":1,\"ts\":1}", DeviceOrigin(client, 1, "p1", false)).ok());
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":2,\"ts\":1}", DeviceOrigin(client, 2, "p2", false)).ok());
  // A resend (DUP) of message 1 whose PUBACK was lost: acknowledged, not appended.
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":1,\"ts\":2}", DeviceOrigin(client, 1, "p1", true)).ok());
  // Not DUP: a new message, even with the same id and payload — it is appended.
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":3,\"ts\":2}", DeviceOrigin(client, 2, "p2", false)).ok());
  // DUP with another payload under a known id, or from another client: new messages too.
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":4,\"ts\":2}", DeviceOrigin(client, 1, "p4", true)).ok());
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":5,\"ts\":2}", DeviceOrigin("other", 1, "p1", true)).ok());

  // kill -9 and restart: the index is rebuilt from the log.
  OpenService();
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":3,\"ts\":3}", DeviceOrigin(client, 2, "p2", true)).ok());
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":5,\"ts\":3}", DeviceOrigin("other", 1, "p1", true)).ok());
  // Delivered and checkpointed: the records' segments are deleted; their origins go on in
  // the snapshot (IntervalInSeconds 0 delivers before a lost PUBACK could be resent).
  ASSERT_TRUE(svc_->FlushAll().ok());
  size_t segments = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/wal/s1")) segments += e.path().extension() == ".wal";
  EXPECT_EQ(segments, 1u) << "delivered segments were not deleted";
  ASSERT_TRUE(fs::exists(dir_ + "/wal/s1/origins"));
  OpenService();
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":3,\"ts\":4}", DeviceOrigin(client, 2, "p2", true)).ok());
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":4,\"ts\":4}", DeviceOrigin(client, 1, "p4", true)).ok());
  ASSERT_TRUE(svc_->FlushAll().ok());
  std::multiset<std::string> want = {"{\"m\":1,\"ts\":1}", "{\"m\":2,\"ts\":1}", "{\"m\":3,\"ts\":2}",
                                     "{\"m\":4,\"ts\":2}", "{\"m\":5,\"ts\":2}"};
  EXPECT_EQ(Lines(), want);

  // Past the window (10 minutes by default) a resend is no longer recognised: it lands.
  clock_.Advance(601LL * 1000000);
  ASSERT_TRUE(AppendFrom("s1", "{\"m\":3,\"ts\":5}", DeviceOrigin(client, 2, "p2", true)).ok());
  ASSERT_TRUE(svc_->FlushAll().ok());
  EXPECT_EQ(Lines().count("{\"m\":3,\"ts\":5}"), 1u);
}

TEST_F(StreamServiceTest, AppendWithOriginReportsTheStreamsErrors) {
  ASSERT_TRUE(svc_->Create("s1", "DirectPut", Raw(60), json()).ok());
  EXPECT_EQ(AppendFrom("nope", "x", DeviceOrigin("c", 1, "x", false)).code(),
            ErrorCode::kFirehoseResourceNotFound);
  EXPECT_EQ(AppendFrom("s1", std::string(1001 * 1024, 'x'), DeviceOrigin("c", 1, "x", false)).code(),
            ErrorCode::kFirehoseInvalidArgument);
}

// A partition's record vector goes back to the stream after its flush and takes the next fill
// — also at the sizes a busy partition reaches (fills of 300 k records need vectors of 2^20,
// which were freed after every flush before) — while two partitions' records stay apart and
// every record is intact after the vector was reused. A vector far larger than its last fill is
// not kept.
TEST(PartitionBufferTest, RecycledVectorsKeepPartitionsApartAndRecordsIntact) {
  DeliveryStream s;
  PartitionBuffer a, b;
  uint64_t seq = 0;
  auto fill = [&](size_t n_a, size_t n_b) {
    for (size_t i = 0; i < std::max(n_a, n_b); ++i) {
      for (auto [p, n, tag] : {std::tuple{&a, n_a, 'a'}, std::tuple{&b, n_b, 'b'}}) {
        if (i >= n) continue;
        BufferedRecord r;
        r.rec.seq = ++seq;
        r.rec.arrival_micros = int64_t(seq);
        r.rec.data = std::string(1, tag) + std::to_string(seq);
        s.Buffer(*p, std::move(r), 0);
      }
    }
  };
  // What CollectJobs does at a flush: the job takes the vector, the partition starts empty.
  auto take = [](PartitionBuffer& p) {
    std::vector<BufferedRecord> v = std::move(p.records);
    p.records.clear();
    p.bytes = 0;
    return v;
  };
  auto intact = [](const std::vector<BufferedRecord>& v, char tag, size_t n) {
    EXPECT_EQ(v.size(), n);
    for (size_t i = 0; i < v.size(); ++i) {
      const WalRecord& r = v[i].rec;
      ASSERT_EQ(r.data, std::string(1, tag) + std::to_string(r.seq)) << i;
      ASSERT_EQ(r.arrival_micros, int64_t(r.seq));
      if (i) {
        ASSERT_GT(r.seq, v[i - 1].rec.seq);
      }
    }
  };
  const size_t kBig = 300000, kSmall = 1000;
  fill(kBig, kSmall);
  auto a1 = take(a), b1 = take(b);
  intact(a1, 'a', kBig);
  intact(b1, 'b', kSmall);
  s.RecycleRecords(std::move(a1));
  s.RecycleRecords(std::move(b1));
  // Second fill: 2 × 300 k rounds up to 2^20, more than the first vector held: a new one.
  fill(kBig, kSmall);
  ASSERT_GE(a.records.capacity(), size_t(1) << 20);
  const BufferedRecord* second = a.records.data();
  auto a2 = take(a), b2 = take(b);
  // Third fill while nothing is handed back yet, then the second fill's vectors come back.
  fill(kBig, kSmall);
  auto a3 = take(a), b3 = take(b);
  s.RecycleRecords(std::move(a2));
  s.RecycleRecords(std::move(b2));
  EXPECT_TRUE(std::any_of(s.spare_records.begin(), s.spare_records.end(),
                          [](const auto& v) { return v.capacity() >= size_t(1) << 20; }));
  intact(a3, 'a', kBig);
  intact(b3, 'b', kSmall);
  // Fourth fill: the busy partition writes into the second fill's memory again, the quiet one
  // does not take that large vector.
  fill(kBig, kSmall);
  EXPECT_EQ(a.records.data(), second);
  EXPECT_LT(b.records.capacity(), size_t(1) << 20);
  intact(a.records, 'a', kBig);
  intact(b.records, 'b', kSmall);
  // A vector whose fill used a sliver of it is freed, not kept.
  auto a4 = take(a);
  a4.resize(10);
  const size_t spares = s.spare_records.size();
  s.RecycleRecords(std::move(a4));
  EXPECT_EQ(s.spare_records.size(), spares);
}


}  // namespace
}  // namespace tarn::streams
