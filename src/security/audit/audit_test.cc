#include "security/audit/audit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/crypto.h"
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
    AuditOptions o;
    o.account_id = "123456789012";
    o.region = "us-east-1";
    o.keys_dir = (dir_ / "keys").string();
    o.clock = &clock_;
    o.throttle_window_seconds = 60;
    o.throttle_max_keys = 2;
    auto t = AuditTrail::Open(meta_.get(), store_.get(), o);
    ASSERT_TRUE(t.ok());
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

}  // namespace
}  // namespace tarn::security::audit
