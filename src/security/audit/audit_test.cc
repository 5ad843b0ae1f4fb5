#include "security/audit/audit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "ops/metrics.h"
#include "storage/local_store.h"

namespace tarn::security::audit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Throttled service events: a device that is denied 1000 times in a window leaves one full
// record and one summary, not 1000 records.
class ServiceEventTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tarn-audit-" + RandomString(8));
    fs::create_directories(dir_ / "keys");
    auto m = MetaStore::Open((dir_ / "tarn.db").string());
    ASSERT_TRUE(m.ok());
    meta_ = std::move(*m);
    auto s = storage::LocalObjectStore::Open((dir_ / "objects").string(), meta_.get(), "us-east-1", {"audit"});
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    OpenTrail();
  }
  virtual void Tweak(AuditOptions&) {}
  void OpenTrail() {
    trail_.reset();
    AuditOptions o;
    o.account_id = "123456789012";
    o.region = "us-east-1";
    o.keys_dir = (dir_ / "keys").string();
    o.clock = &clock_;
    o.throttle_window_seconds = 60;
    o.throttle_max_keys = 2;
    Tweak(o);
    auto t = AuditTrail::Open(meta_.get(), store_.get(), o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    trail_ = std::move(*t);
  }
  void TearDown() override {
    trail_.reset();
    store_.reset();
    meta_.reset();
    fs::remove_all(dir_);
  }
  ServiceEvent Denial(const std::string& device, const std::string& topic) {
    ServiceEvent e;
    e.event_source = "iot.amazonaws.com";
    e.event_name = "Publish";
    e.principal_type = "IoTCertificate";
    e.principal_id = device;
    e.username = device;
    e.resource_type = "AWS::IoT::Topic";
    e.resource_arn = "arn:aws:iot:us-east-1:123456789012:topic/" + topic;
    e.error_code = "AccessDenied";
    e.error_message = "implicit deny";
    e.additional_event_data_json = R"({"decision": "implicit deny"})";
    e.throttle_key = device + "/Publish";
    return e;
  }
  std::vector<json> Events() {
    LookupQuery q;
    q.attribute_key = "EventSource";
    q.attribute_value = "iot.amazonaws.com";
    q.max_results = 1000;
    auto r = trail_->Lookup(q);
    EXPECT_TRUE(r.ok());
    std::vector<json> out;
    for (const auto& e : r->first) out.push_back(json::parse(e.record_json));
    std::reverse(out.begin(), out.end());  // oldest first
    return out;
  }

  fs::path dir_;
  ManualClock clock_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<storage::LocalObjectStore> store_;
  std::unique_ptr<AuditTrail> trail_;
};

TEST_F(ServiceEventTest, RepeatsInAWindowBecomeOneSummary) {
  trail_->RecordServiceEvent(Denial("dev", "a"));
  for (int i = 0; i < 999; ++i) {
    clock_.Advance(10'000);  // 10 ms
    trail_->RecordServiceEvent(Denial("dev", i % 2 ? "b" : "c"));
  }
  auto ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["eventName"], "Publish");
  EXPECT_EQ(ev[0]["errorCode"], "AccessDenied");
  EXPECT_EQ(ev[0]["userIdentity"]["type"], "IoTCertificate");
  EXPECT_EQ(ev[0]["resources"][0]["ARN"], "arn:aws:iot:us-east-1:123456789012:topic/a");
  EXPECT_EQ(ev[0]["additionalEventData"]["decision"], "implicit deny");
  EXPECT_FALSE(ev[0]["additionalEventData"].contains("aggregated"));

  // The window (60 s) ends: the next denial writes the summary of the 999 first, then itself.
  clock_.Advance(60'000'000);
  trail_->RecordServiceEvent(Denial("dev", "d"));
  ev = Events();
  ASSERT_EQ(ev.size(), 3u);
  const json& sum = ev[1]["additionalEventData"];
  EXPECT_EQ(sum["aggregated"], true);
  EXPECT_EQ(sum["deniedCount"], 999);
  EXPECT_EQ(sum["resources"].size(), 2u);
  EXPECT_EQ(sum["decision"], "implicit deny");
  EXPECT_EQ(ev[2]["resources"][0]["ARN"], "arn:aws:iot:us-east-1:123456789012:topic/d");
  EXPECT_FALSE(ev[2]["additionalEventData"].contains("aggregated"));
}

TEST_F(ServiceEventTest, KeysAreBoundedAndNothingCountedIsLostAtStop) {
  // throttle_max_keys = 2: a third and fourth device share the overflow key.
  for (const char* d : {"d1", "d2", "d3", "d4"}) {
    trail_->RecordServiceEvent(Denial(d, "x"));
    trail_->RecordServiceEvent(Denial(d, "x"));
  }
  auto ev = Events();
  ASSERT_EQ(ev.size(), 3u);  // d1, d2, and d3 (opening the overflow window); d4 counted there
  EXPECT_EQ(ev[2]["userIdentity"]["principalId"], "d3");
  trail_->Stop();  // flushes every open window's summary
  ev = Events();
  ASSERT_EQ(ev.size(), 6u);
  uint64_t counted = 0;
  for (const auto& e : ev) {
    if (e["additionalEventData"].contains("deniedCount")) counted += e["additionalEventData"]["deniedCount"].get<uint64_t>();
  }
  EXPECT_EQ(counted, 5u);  // 8 denials = 3 full records + 5 summarised
  // The overflow window's summary names no device (it mixes d3's and d4's denials).
  int overflow = 0;
  for (const auto& e : ev) {
    if (e["additionalEventData"].value("overflow", false)) {
      ++overflow;
      EXPECT_EQ(e["userIdentity"]["principalId"], "*");
      EXPECT_EQ(e["additionalEventData"]["deniedCount"], 3);
    }
  }
  EXPECT_EQ(overflow, 1);
  // A service event without a throttle key is always recorded.
  ServiceEvent e = Denial("d9", "y");
  e.throttle_key.clear();
  trail_->RecordServiceEvent(e);
  trail_->RecordServiceEvent(e);
  EXPECT_EQ(Events().size(), 8u);
}

// --- API calls: captured on the caller's thread, formatted and indexed by the writer ------

class RecordTest : public ServiceEventTest {
 protected:
  void Tweak(AuditOptions& o) override {
    o.index_interval_ms = 20;
    o.max_queued_events = max_queued_;
  }
  // A SQL statement's record, as the lake's SQL layer builds it: moved into the trail.
  void Statement(const std::string& sql, const std::string& thread = "0", int n = 0) {
    net::ApiCall call;
    call.family = net::ApiFamily::kInternal;
    call.service = "redshift-data";
    call.action = "ExecuteStatement";
    call.identity.type = Identity::Type::kUser;
    call.identity.arn = "arn:aws:iam::123456789012:user/alice";
    call.identity.account_id = "123456789012";
    call.identity.user_name = "alice";
    call.identity.principal_id = "AIDAALICE";
    call.audit_params = {{"sql", sql}, {"thread", thread}, {"n", std::to_string(n)}};
    trail_->Record(std::move(call), net::AuditContext{"10.0.0.7", "psql", "SQL", true}, 200, Status::OK());
  }
  // Events in the index, read straight from SQLite (no Lookup: it would drain the queue).
  int64_t IndexedRows() {
    auto st = meta_->Prepare("SELECT count(*) FROM audit_events");
    EXPECT_TRUE(st.ok());
    auto row = st->Step();
    EXPECT_TRUE(row.ok() && *row);
    return st->ColumnInt(0);
  }
  std::vector<json> All() {
    LookupQuery q;
    q.max_results = 100000;
    auto r = trail_->Lookup(q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<json> out;
    for (const auto& e : r->first) out.push_back(json::parse(e.record_json));
    std::reverse(out.begin(), out.end());  // oldest first
    return out;
  }
  uint64_t BackpressureWaits() {
    return ops::Metrics().Counter("tarn_audit_backpressure_waits_total", "").value();
  }

  size_t max_queued_ = 65536;
};

TEST_F(RecordTest, RecordsAreCloudTrailJsonWhateverTheInput) {
  net::ApiCall call;
  call.service = "s3";
  call.action = "GetObject";
  call.resource = "arn:aws:s3:::landing/a.csv";
  call.request_id = "REQ1";
  call.identity.type = Identity::Type::kAssumedRole;
  call.identity.arn = "arn:aws:sts::123456789012:assumed-role/reader/s1";
  call.identity.account_id = "123456789012";
  call.identity.principal_id = "AROAREADER:s1";
  call.identity.access_key_id = "ASIAKEY";
  call.audit_params = {{"key", "a.csv"}};
  trail_->Record(call, net::AuditContext{"10.0.0.8", "aws-cli/2", "GET", false}, 403,
                 Error(ErrorCode::kAccessDenied, "denied by \"policy\"\n"));
  // A statement with bytes that are not UTF-8 and control characters: still valid JSON.
  Statement("select '\xff\xfe' || chr(1) \x01 \"q\" \\");
  net::ApiCall anon;  // an unsigned request the router could not classify
  trail_->Record(anon, net::AuditContext{"10.0.0.9", "", "PUT", false}, 501, Status::OK());

  auto ev = All();  // Lookup indexes what is queued: no writer thread was started
  ASSERT_EQ(ev.size(), 3u);
  const json& get = ev[0];
  EXPECT_EQ(get["eventVersion"], "1.08");
  EXPECT_EQ(get["eventSource"], "s3.amazonaws.com");
  EXPECT_EQ(get["eventName"], "GetObject");
  EXPECT_EQ(get["eventCategory"], "Data");
  EXPECT_EQ(get["managementEvent"], false);
  EXPECT_EQ(get["readOnly"], true);
  EXPECT_EQ(get["errorCode"], "AccessDenied");
  EXPECT_EQ(get["errorMessage"], "denied by \"policy\"\n");
  EXPECT_EQ(get["requestID"], "REQ1");
  EXPECT_EQ(get["sourceIPAddress"], "10.0.0.8");
  EXPECT_EQ(get["userAgent"], "aws-cli/2");
  EXPECT_EQ(get["requestParameters"], json({{"key", "a.csv"}}));
  EXPECT_EQ(get["resources"][0]["ARN"], "arn:aws:s3:::landing/a.csv");
  EXPECT_EQ(get["userIdentity"]["type"], "AssumedRole");
  EXPECT_EQ(get["userIdentity"]["accessKeyId"], "ASIAKEY");
  EXPECT_EQ(get["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"], "arn:aws:iam::123456789012:role/reader");
  EXPECT_EQ(get["eventTime"], "2023-11-14T22:13:20Z");  // the ManualClock's time
  EXPECT_FALSE(get.contains("tlsDetails"));

  const json& sql = ev[1];
  EXPECT_EQ(sql["eventSource"], "redshift-data.amazonaws.com");
  EXPECT_EQ(sql["requestParameters"]["sql"], "select '\xef\xbf\xbd\xef\xbf\xbd' || chr(1) \x01 \"q\" \\");
  EXPECT_EQ(sql["userIdentity"]["userName"], "alice");
  EXPECT_EQ(sql["tlsDetails"]["tlsVersion"], "TLSv1.3");
  EXPECT_FALSE(sql.contains("errorCode"));
  // A call without a request id gets one; every event gets its own id.
  EXPECT_EQ(sql["requestID"].get<std::string>().size(), 36u);
  EXPECT_NE(sql["requestID"], sql["eventID"]);
  EXPECT_NE(ev[0]["eventID"], sql["eventID"]);

  const json& put = ev[2];
  EXPECT_EQ(put["eventName"], "PUT");
  EXPECT_EQ(put["errorCode"], "501");
  EXPECT_EQ(put["userIdentity"]["accountId"], "anonymous");
  EXPECT_TRUE(put["requestParameters"].is_null());
}

TEST_F(RecordTest, TheWriterIndexesWithinItsIntervalWithoutALookup) {
  trail_->Start();
  for (int i = 0; i < 10; ++i) Statement("select " + std::to_string(i));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (IndexedRows() < 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(IndexedRows(), 10);
}

TEST_F(RecordTest, ConcurrentCallersKeepTheirOrder) {
  trail_->Start();
  constexpr int kThreads = 4, kEach = 1500;  // more than one wake-up batch in all
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kEach; ++i) Statement("select 1", std::to_string(t), i);
    });
  }
  for (auto& th : threads) th.join();
  auto ev = All();
  ASSERT_EQ(ev.size(), size_t{kThreads * kEach});
  std::vector<int> next(kThreads, 0);
  for (const json& e : ev) {
    int t = std::stoi(e["requestParameters"]["thread"].get<std::string>());
    ASSERT_EQ(std::stoi(e["requestParameters"]["n"].get<std::string>()), next[t]++) << "thread " << t;
  }
}

class SmallQueueTest : public RecordTest {
 protected:
  void SetUp() override {
    max_queued_ = 8;
    RecordTest::SetUp();
  }
};

TEST_F(SmallQueueTest, AFullQueueMakesCallersWaitAndDropsNothing) {
  // No writer thread: nothing empties the queue but Flush/Lookup.
  for (int i = 0; i < 8; ++i) Statement("select", "0", i);
  uint64_t waits = BackpressureWaits();
  std::atomic<bool> done{false};
  std::thread caller([&] {
    for (int i = 8; i < 12; ++i) Statement("select", "0", i);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(done) << "the ninth event must wait for room, not be dropped or exceed the bound";
  EXPECT_EQ(BackpressureWaits(), waits + 1);
  ASSERT_TRUE(trail_->Flush(false).ok());  // indexes the eight: room for the caller
  caller.join();
  EXPECT_TRUE(done);
  auto ev = All();
  ASSERT_EQ(ev.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(ev[i]["requestParameters"]["n"], std::to_string(i));
}

TEST_F(SmallQueueTest, EventsWhoseIndexWriteFailedAreRetriedInOrder) {
  for (int i = 0; i < 3; ++i) Statement("select", "0", i);
  ASSERT_TRUE(meta_->Exec("ALTER TABLE audit_events RENAME TO audit_events_away").ok());
  EXPECT_FALSE(trail_->Flush(false).ok());
  // The three still count against the bound while they wait: five more fit, not eight.
  for (int i = 3; i < 8; ++i) Statement("select", "0", i);
  std::atomic<bool> done{false};
  std::thread caller([&] {
    Statement("select", "0", 8);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done);
  ASSERT_TRUE(meta_->Exec("ALTER TABLE audit_events_away RENAME TO audit_events").ok());
  ASSERT_TRUE(trail_->Flush(false).ok());
  caller.join();
  auto ev = All();
  ASSERT_EQ(ev.size(), 9u);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(ev[i]["requestParameters"]["n"], std::to_string(i));
}

TEST_F(RecordTest, StopWritesEveryQueuedEventToASignedLogFile) {
  trail_->Start();
  for (int i = 0; i < 5; ++i) Statement("select", "0", i);
  trail_->Stop();
  storage::ListOptions lo;
  lo.prefix = "AWSLogs/123456789012/CloudTrail/";
  auto logs = store_->ListObjects("audit", lo);
  ASSERT_TRUE(logs.ok());
  size_t records = 0;
  for (const auto& o : logs->objects) {
    auto reader = store_->GetObject("audit", o.key, {});
    ASSERT_TRUE(reader.ok());
    std::string gz(o.size, '\0');
    auto n = (*reader)->Read(gz.data(), gz.size());
    ASSERT_TRUE(n.ok());
    auto plain = Gunzip(gz.substr(0, *n));
    ASSERT_TRUE(plain.ok());
    records += json::parse(*plain)["Records"].size();
  }
  EXPECT_EQ(records, 5u);
  auto report = VerifyAuditTrail(store_.get(), "audit", "123456789012", (dir_ / "keys").string());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->log_files, 1);
}

TEST_F(RecordTest, EventsIndexedButNotInALogFileAreWrittenAfterARestart) {
  for (int i = 0; i < 4; ++i) Statement("select", "0", i);
  ASSERT_EQ(All().size(), 4u);  // indexed, no log file yet (flush interval 60 s)
  ASSERT_TRUE(trail_->Flush(false).ok());  // these four go into a log file
  for (int i = 4; i < 7; ++i) Statement("select", "0", i);
  ASSERT_EQ(All().size(), 7u);
  // A crash now loses no indexed event: a new trail on the same index writes the last three.
  OpenTrail();
  ASSERT_TRUE(trail_->Flush(true).ok());
  auto report = VerifyAuditTrail(store_.get(), "audit", "123456789012", (dir_ / "keys").string());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->log_files, 2);
  auto st = meta_->Prepare("SELECT seq FROM audit_written");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(*st->Step());
  auto max = meta_->Prepare("SELECT max(seq) FROM audit_events");
  ASSERT_TRUE(max.ok());
  ASSERT_TRUE(*max->Step());
  EXPECT_EQ(st->ColumnInt(0), max->ColumnInt(0));
}

// A lake indexed before the audit_written mark (schema version 2, log_key per event): the
// events that had no log file yet still get one, and only they.
TEST(AuditMigrationTest, UnwrittenEventsOfAVersion2IndexReachALogFile) {
  fs::path dir = fs::temp_directory_path() / ("tarn-audit-" + RandomString(8));
  fs::create_directories(dir / "keys");
  {
    auto meta = MetaStore::Open((dir / "tarn.db").string());
    ASSERT_TRUE(meta.ok());
    ASSERT_TRUE((*meta)->Migrate("audit", {
        {1, R"sql(
          CREATE TABLE audit_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, event_time_ms INTEGER NOT NULL,
            event_name TEXT NOT NULL, event_source TEXT NOT NULL, username TEXT NOT NULL,
            access_key_id TEXT NOT NULL, read_only INTEGER NOT NULL, resource_type TEXT NOT NULL,
            resource_name TEXT NOT NULL, record TEXT NOT NULL);
          CREATE INDEX audit_events_time ON audit_events(event_time_ms);
          CREATE INDEX audit_events_name ON audit_events(event_name);
          CREATE INDEX audit_events_user ON audit_events(username);
          CREATE TABLE audit_log_files (
            key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, oldest_ms INTEGER NOT NULL,
            newest_ms INTEGER NOT NULL, written INTEGER NOT NULL, digest_key TEXT);
          CREATE TABLE audit_digests (
            key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, signature TEXT NOT NULL, end_time TEXT NOT NULL,
            written INTEGER NOT NULL);
        )sql"},
        {2, R"sql(
          ALTER TABLE audit_events ADD COLUMN log_key TEXT;
          UPDATE audit_events SET log_key = '';
          CREATE INDEX audit_events_unwritten ON audit_events(seq) WHERE log_key IS NULL;
        )sql"}}).ok());
    for (const char* key : {"'old.json.gz'", "'old.json.gz'", "NULL", "NULL"}) {
      ASSERT_TRUE((*meta)->Exec(std::string(
          "INSERT INTO audit_events(event_id, event_time_ms, event_name, event_source, username, "
          "access_key_id, read_only, resource_type, resource_name, record, log_key) VALUES('id', 1, "
          "'CreateUser', 'iam.amazonaws.com', 'root', '', 0, '', '', '{\"written\":") +
          (std::string(key) == "NULL" ? "false" : "true") + "}', " + key + ")").ok());
    }
  }
  auto meta = MetaStore::Open((dir / "tarn.db").string());
  ASSERT_TRUE(meta.ok());
  auto store = storage::LocalObjectStore::Open((dir / "objects").string(), meta->get(), "us-east-1", {"audit"});
  ASSERT_TRUE(store.ok());
  AuditOptions o;
  o.account_id = "123456789012";
  o.region = "us-east-1";
  o.keys_dir = (dir / "keys").string();
  auto trail = AuditTrail::Open(meta->get(), store->get(), o);
  ASSERT_TRUE(trail.ok()) << trail.status().ToString();
  Status flushed = (*trail)->Flush(false);
  ASSERT_TRUE(flushed.ok()) << flushed.ToString();
  storage::ListOptions lo;
  lo.prefix = "AWSLogs/";
  auto logs = (*store)->ListObjects("audit", lo);
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->objects.size(), 1u);
  auto reader = (*store)->GetObject("audit", logs->objects[0].key, {});
  ASSERT_TRUE(reader.ok());
  std::string gz(logs->objects[0].size, '\0');
  ASSERT_TRUE((*reader)->Read(gz.data(), gz.size()).ok());
  auto plain = Gunzip(gz);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(json::parse(*plain)["Records"], json::parse(R"([{"written":false},{"written":false}])"));
  trail->reset();
  store->reset();
  meta->reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tarn::security::audit
