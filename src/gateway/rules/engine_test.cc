#include "gateway/rules/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "core/strings.h"
#include "ops/metrics.h"
#include "streams/record_sink.h"

namespace tarn::gateway::rules {
namespace {

using json = nlohmann::json;

struct Published {
  std::string topic, payload;
  int qos;
};

class FakeSink final : public streams::RecordSink {
 public:
  struct Origin {
    std::string client_id;
    uint16_t packet_id;
    bool dup;
    uint64_t payload_hash, slot;
  };
  void Append(const std::string& stream, std::string data,
              std::function<void(const Status&)> done,
              const streams::RecordOrigin* origin = nullptr) override {
    if (stream != "known") {
      done(Error(ErrorCode::kFirehoseResourceNotFound, "no such stream " + stream));
      return;
    }
    records.push_back(std::move(data));
    if (origin) {
      origins.push_back({std::string(origin->client_id), origin->packet_id, origin->dup,
                         origin->payload_hash, origin->slot});
    } else {
      origins.push_back({"", 0, false, 0, 0});
    }
    done(Status::OK());
  }
  // Records of stream "known" containing `unconvertible` (when set) fail the conversion check.
  Status CheckConversion(const std::string& stream, std::string_view data) override {
    ++checks;
    if (stream == "known" && !unconvertible.empty() && data.find(unconvertible) != std::string_view::npos) {
      return Error(ErrorCode::kFirehoseInvalidArgument,
                   "DataFormatConversion.InvalidValue: column 'temperature' (DOUBLE): value is not a number");
    }
    return Status::OK();
  }
  std::vector<std::string> records;
  std::vector<Origin> origins;
  std::string unconvertible;
  std::atomic<int> checks{0};
};

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : engine_(Targets(), &clock_, 1) {}
  ActionTargets Targets() {
    ActionTargets t;
    t.republish = [this](const std::string& topic, const std::string& payload, int qos,
                         std::function<void()> durable) {
      std::unique_lock<std::mutex> l(mu_);
      if (topic == "fail/me") return Error(ErrorCode::kUnavailable, "broker said no");
      published_.push_back({topic, payload, qos});
      if (hold_durable_) {
        held_.push_back(std::move(durable));  // the test makes it durable later
      } else {
        l.unlock();
        durable();
      }
      return Status::OK();
    };
    t.streams = &sink_;
    return t;
  }
  void Send(const std::string& topic, const std::string& payload) {
    InboundMessage m;
    m.topic = topic;
    m.payload = payload;
    m.client_id = "dev";
    engine_.Submit(std::move(m));
    engine_.Drain();
  }
  // The message's outcome (its `done`: the device's PUBACK), through Submit (the batch path) or
  // ProcessNow (actions run in place).
  Status Outcome(const std::string& topic, const std::string& payload = "{}", bool now = false) {
    std::promise<Status> p;
    auto f = p.get_future();
    InboundMessage m;
    m.topic = topic;
    m.payload = payload;
    m.client_id = "dev";
    m.packet_id = 1;
    m.done = [&](const Status& st) { p.set_value(st); };
    if (now) {
      engine_.ProcessNow(m);
    } else {
      engine_.Submit(std::move(m));
    }
    return f.get();
  }
  uint64_t Count(const std::string& metric, const std::string& rule) {
    std::string text = ops::Metrics().RenderPrometheus();
    std::string needle = metric + "{rule=\"" + rule + "\"} ";
    size_t p = text.find(needle);
    if (p == std::string::npos) return 0;
    return std::stoull(text.substr(p + needle.size()));
  }

  // Makes held republishes durable (as the broker's session log writer would, on its thread).
  void ReleaseDurable() {
    std::vector<std::function<void()>> h;
    {
      std::lock_guard<std::mutex> l(mu_);
      h.swap(held_);
    }
    std::thread([&h] {
      for (auto& f : h) f();
    }).join();
  }
  size_t Held() {
    std::lock_guard<std::mutex> l(mu_);
    return held_.size();
  }

  ManualClock clock_{1700000000000000};
  std::mutex mu_;
  std::vector<Published> published_;
  bool hold_durable_ = false;                // guarded by mu_
  std::vector<std::function<void()>> held_;  // guarded by mu_
  FakeSink sink_;
  RulesEngine engine_;
};

TEST_F(EngineTest, FirehoseRecordsCarryTheDevicesOriginWithASlotPerRuleAndAction) {
  TopicRuleSpec a;
  a.name = "a";
  a.sql = "SELECT *, timestamp() AS ts FROM 'd/#'";
  a.actions = json::array({{{"firehose", {{"deliveryStreamName", "known"}}}},
                           {{"firehose", {{"deliveryStreamName", "known"}}}}});
  ASSERT_TRUE(engine_.Put(a).ok());
  TopicRuleSpec b = a;
  b.name = "b";
  b.actions = json::array({{{"firehose", {{"deliveryStreamName", "known"}, {"batchMode", true}}}}});
  b.sql = "SELECT VALUE [1, 2] FROM 'd/#'";
  ASSERT_TRUE(engine_.Put(b).ok());
  InboundMessage m;
  m.topic = "d/1";
  m.payload = R"({"v": 1})";
  m.client_id = "dev-9";
  m.packet_id = 42;
  m.dup = true;
  m.payload_hash = 0xabcdef;
  engine_.Submit(std::move(m));
  engine_.Drain();
  ASSERT_EQ(sink_.origins.size(), 4u);  // a: two actions; b: a batch of two
  std::set<uint64_t> slots;
  for (const auto& o : sink_.origins) {
    EXPECT_EQ(o.client_id, "dev-9");
    EXPECT_EQ(o.packet_id, 42);
    EXPECT_TRUE(o.dup);
    EXPECT_EQ(o.payload_hash, 0xabcdefu);
    slots.insert(o.slot);
  }
  EXPECT_EQ(slots.size(), 4u) << "two records of one message share a slot";
  // The same message again gives the same slots (a resend must find its records).
  std::vector<uint64_t> first;
  for (const auto& o : sink_.origins) first.push_back(o.slot);
  sink_.origins.clear();
  InboundMessage again;
  again.topic = "d/1";
  again.payload = R"({"v": 1})";
  again.client_id = "dev-9";
  again.packet_id = 42;
  engine_.ProcessNow(again);
  ASSERT_EQ(sink_.origins.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(sink_.origins[i].slot, first[i]);
  // QoS 0 / in-process messages have no packet id: no origin.
  sink_.origins.clear();
  Send("d/2", R"({"v": 2})");
  ASSERT_EQ(sink_.origins.size(), 4u);
  EXPECT_EQ(sink_.origins[0].packet_id, 0);
  EXPECT_EQ(sink_.origins[0].client_id, "");
}

TEST_F(EngineTest, DoneReportsAFailedActionThatNoErrorActionTookOver) {
  auto rule = [&](const std::string& name, const std::string& filter, const json& error_action) {
    TopicRuleSpec r;
    r.name = name;
    r.sql = "SELECT * FROM '" + filter + "'";
    r.actions = json::array({{{"firehose", {{"deliveryStreamName", "missing"}}}}});
    r.error_action = error_action;
    ASSERT_TRUE(engine_.Put(r).ok());
  };
  rule("no_error_action", "x/none", json());
  rule("error_action_ok", "x/ok", {{"republish", {{"topic", "errors/x"}}}});
  rule("error_action_fails", "x/fails", {{"republish", {{"topic", "fail/me"}}}});
  TopicRuleSpec sql;
  sql.name = "bad_sql";
  sql.sql = "SELECT * FROM 'x/sql'";
  sql.actions = json::array({{{"firehose", {{"deliveryStreamName", "known"}}}}});
  ASSERT_TRUE(engine_.Put(sql).ok());
  auto outcome = [&](const std::string& topic, const std::string& payload = "{}") {
    return Outcome(topic, payload);
  };
  Status st = outcome("x/none");
  EXPECT_EQ(st.code(), ErrorCode::kFirehoseResourceNotFound) << st.ToString();
  EXPECT_TRUE(RetryMaySucceed(st));
  EXPECT_TRUE(outcome("x/ok").ok()) << "the error action handled it (AWS's model)";
  EXPECT_EQ(outcome("x/fails").code(), ErrorCode::kFirehoseResourceNotFound);
  // Not JSON for a SELECT *: the SQL fails, no action failed; handled as before.
  EXPECT_TRUE(outcome("x/sql", "not json {").ok());
  EXPECT_TRUE(outcome("x/unmatched").ok());
  EXPECT_FALSE(RetryMaySucceed(Error(ErrorCode::kFirehoseInvalidArgument, "record too large")));
}

// A record its stream will not be able to convert is appended all the same (the stream keeps it
// under its error output prefix) and reported to the rule's error action with the reason; the
// message counts as handled even when the error action fails, since the record is taken. Rules
// without an error action do not check at all.
TEST_F(EngineTest, UnconvertibleRecordsAreTakenAndReportedToTheErrorAction) {
  sink_.unconvertible = "ERR_SENSOR";
  auto rule = [&](const std::string& name, const std::string& filter, const json& error_action) {
    TopicRuleSpec r;
    r.name = name;
    r.sql = "SELECT *, topic(2) AS device FROM '" + filter + "'";
    r.actions = json::array({{{"firehose", {{"deliveryStreamName", "known"}, {"separator", "\n"}}}}});
    r.error_action = error_action;
    ASSERT_TRUE(engine_.Put(r).ok());
  };
  rule("telemetry", "sensors/+/telemetry", {{"republish", {{"topic", "errors/rules/${topic(2)}"}}}});
  rule("quiet", "quiet/+/telemetry", json());
  rule("error_action_fails", "fails/+/telemetry", {{"republish", {{"topic", "fail/me"}}}});
  auto outcome = [&](const std::string& topic, const std::string& payload, bool now) {
    return Outcome(topic, payload, now);
  };
  for (bool now : {false, true}) {
    SCOPED_TRACE(now ? "ProcessNow" : "Submit");
    size_t records = sink_.records.size(), published = published_.size();
    EXPECT_TRUE(outcome("sensors/s1/telemetry", R"({"temperature": 21.5})", now).ok());
    EXPECT_EQ(published_.size(), published) << "a record that converts is not reported";
    EXPECT_TRUE(outcome("sensors/s2/telemetry", R"({"temperature": "ERR_SENSOR"})", now).ok());
    ASSERT_EQ(sink_.records.size(), records + 2);
    EXPECT_EQ(json::parse(sink_.records.back()), json::parse(R"({"temperature":"ERR_SENSOR","device":"s2"})"));
    ASSERT_EQ(published_.size(), published + 1);
    EXPECT_EQ(published_.back().topic, "errors/rules/s2");
    json doc = json::parse(published_.back().payload);
    EXPECT_EQ(doc["ruleName"], "telemetry");
    EXPECT_EQ(doc["topic"], "sensors/s2/telemetry");
    EXPECT_EQ(doc["base64OriginalPayload"], Base64Encode(R"({"temperature": "ERR_SENSOR"})"));
    ASSERT_EQ(doc["failures"].size(), 1u) << doc.dump();
    EXPECT_EQ(doc["failures"][0]["failedAction"], "FirehoseAction");
    EXPECT_EQ(doc["failures"][0]["failedResource"], "known");
    std::string why = doc["failures"][0]["errorMessage"];
    EXPECT_NE(why.find("DataFormatConversion.InvalidValue: column 'temperature' (DOUBLE)"), std::string::npos) << why;
    EXPECT_NE(why.find("error output prefix"), std::string::npos) << why;
    // The error action failing too does not refuse the message: its record is taken.
    EXPECT_TRUE(outcome("fails/s3/telemetry", R"({"temperature": "ERR_SENSOR"})", now).ok());
    EXPECT_EQ(sink_.records.size(), records + 3);
  }
  EXPECT_EQ(Count("tarn_iot_rule_messages_failed_total", "telemetry"), 2u);
  EXPECT_EQ(Count("tarn_iot_rule_actions_succeeded_total", "telemetry"), 4u);
  EXPECT_EQ(Count("tarn_iot_rule_actions_failed_total", "telemetry"), 0u);
  int checks = sink_.checks.load();
  Send("quiet/s4/telemetry", R"({"temperature": "ERR_SENSOR"})");
  EXPECT_EQ(sink_.checks.load(), checks) << "no error action, nothing to tell: no check";
  EXPECT_EQ(Count("tarn_iot_rule_messages_delivered_total", "quiet"), 1u);
}

// A message's `done` (the device's PUBACK) waits until its republishes are durable in the
// broker — an action's, and an error action's — as it waits for its firehose records; on the
// batch path (Submit) and in place (ProcessNow).
TEST_F(EngineTest, DoneWaitsForRepublishesToBeDurable) {
  TopicRuleSpec r;
  r.name = "republish_durable";
  r.sql = "SELECT * FROM 'rp/#'";
  r.actions = json::array({{{"republish", {{"topic", "out/${topic()}"}, {"qos", 1}}}}});
  ASSERT_TRUE(engine_.Put(r).ok());
  TopicRuleSpec e;
  e.name = "error_republish_durable";
  e.sql = "SELECT * FROM 'rpe/#'";
  e.actions = json::array({{{"firehose", {{"deliveryStreamName", "missing"}}}}});
  e.error_action = {{"republish", {{"topic", "errors/x"}, {"qos", 1}}}};
  ASSERT_TRUE(engine_.Put(e).ok());
  {
    std::lock_guard<std::mutex> l(mu_);
    hold_durable_ = true;
  }
  auto wait_held = [&] {
    for (int i = 0; i < 500 && Held() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return Held();
  };
  for (bool now : {false, true}) {
    for (std::string topic : {"rp/1", "rpe/1"}) {
      SCOPED_TRACE(topic + (now ? " ProcessNow" : " Submit"));
      std::promise<Status> p;
      auto f = p.get_future();
      InboundMessage m;
      m.topic = topic;
      m.payload = "{}";
      m.client_id = "dev";
      m.packet_id = 3;
      m.done = [&](const Status& st) { p.set_value(st); };
      std::thread in_place;
      if (now) {
        in_place = std::thread([&] { engine_.ProcessNow(m); });
      } else {
        engine_.Submit(std::move(m));
      }
      ASSERT_EQ(wait_held(), 1u);
      EXPECT_EQ(f.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
          << "acknowledged before the republish was durable";
      ReleaseDurable();
      ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
      EXPECT_TRUE(f.get().ok());
      if (in_place.joinable()) in_place.join();
    }
  }
  EXPECT_EQ(published_.size(), 4u);
}

TEST_F(EngineTest, RepublishesOnlyHotReadings) {
  TopicRuleSpec r;
  r.name = "hot";
  r.sql = "SELECT temperature, topic(2) AS device FROM 'sensors/+/telemetry' WHERE temperature > 50";
  r.actions = json::array({{{"republish", {{"topic", "alerts/${topic(2)}"}, {"qos", 1}}}}});
  ASSERT_TRUE(engine_.Put(r).ok());
  Send("sensors/A/telemetry", R"({"temperature": 72})");
  Send("sensors/B/telemetry", R"({"temperature": 20})");
  Send("other/A/telemetry", R"({"temperature": 99})");
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_[0].topic, "alerts/A");
  EXPECT_EQ(published_[0].qos, 1);
  EXPECT_EQ(json::parse(published_[0].payload), json::parse(R"({"temperature":72,"device":"A"})"));
  EXPECT_EQ(Count("tarn_iot_rule_messages_matched_total", "hot"), 2u);
  EXPECT_EQ(Count("tarn_iot_rule_messages_filtered_total", "hot"), 1u);
  EXPECT_EQ(Count("tarn_iot_rule_messages_delivered_total", "hot"), 1u);
}

TEST_F(EngineTest, FailedActionGoesToTheErrorActionWithAFailureDocument) {
  TopicRuleSpec r;
  r.name = "failing";
  r.sql = "SELECT * FROM 'in/#'";
  r.actions = json::array({{{"firehose", {{"deliveryStreamName", "missing"}}}},
                           {{"firehose", {{"deliveryStreamName", "known"}, {"separator", "\n"}}}}});
  r.error_action = {{"republish", {{"topic", "errors/${topic()}"}}}};
  ASSERT_TRUE(engine_.Put(r).ok());
  Send("in/x", R"({"v": 1})");
  ASSERT_EQ(sink_.records.size(), 1u);
  EXPECT_EQ(sink_.records[0], "{\"v\":1}\n");
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_[0].topic, "errors/in/x");
  json doc = json::parse(published_[0].payload);
  EXPECT_EQ(doc["ruleName"], "failing");
  EXPECT_EQ(doc["topic"], "in/x");
  EXPECT_EQ(doc["clientId"], "dev");
  EXPECT_EQ(doc["base64OriginalPayload"], "eyJ2IjogMX0=");
  ASSERT_EQ(doc["failures"].size(), 1u);
  EXPECT_EQ(doc["failures"][0]["failedAction"], "FirehoseAction");
  EXPECT_EQ(doc["failures"][0]["failedResource"], "missing");
  EXPECT_EQ(Count("tarn_iot_rule_messages_failed_total", "failing"), 1u);
  EXPECT_EQ(Count("tarn_iot_rule_actions_succeeded_total", "failing"), 1u);
  EXPECT_EQ(Count("tarn_iot_rule_actions_failed_total", "failing"), 1u);

  // A non-JSON payload for a JSON rule is the error action's too, not a crash.
  Send("in/bin", "\x01\x02");
  ASSERT_EQ(published_.size(), 2u);
  EXPECT_EQ(json::parse(published_[1].payload)["failures"][0]["failedAction"], "SqlEvaluation");
  EXPECT_EQ(Count("tarn_iot_rule_messages_matched_total", "failing"),
            Count("tarn_iot_rule_messages_filtered_total", "failing") +
                Count("tarn_iot_rule_messages_delivered_total", "failing") +
                Count("tarn_iot_rule_messages_failed_total", "failing"));
}

TEST_F(EngineTest, BasicIngestRunsOnlyTheNamedRule) {
  TopicRuleSpec a;
  a.name = "ingest";
  a.sql = "SELECT v, topic() AS t FROM 'never/matches'";
  a.actions = json::array({{{"republish", {{"topic", "out/ingest"}}}}});
  ASSERT_TRUE(engine_.Put(a).ok());
  TopicRuleSpec b = a;
  b.name = "other";
  ASSERT_TRUE(engine_.Put(b).ok());
  Send("$aws/rules/ingest/dev/1", R"({"v": 5})");
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(json::parse(published_[0].payload), json::parse(R"({"v":5,"t":"dev/1"})"));
}

TEST_F(EngineTest, DisabledRulesAndRemovalStopMatching) {
  TopicRuleSpec r;
  r.name = "r";
  r.sql = "SELECT * FROM 't'";
  r.actions = json::array({{{"republish", {{"topic", "o"}}}}});
  r.disabled = true;
  ASSERT_TRUE(engine_.Put(r).ok());
  Send("t", "{}");
  EXPECT_TRUE(published_.empty());
  r.disabled = false;
  ASSERT_TRUE(engine_.Put(r).ok());
  Send("t", "{}");
  EXPECT_EQ(published_.size(), 1u);
  engine_.Remove("r");
  Send("t", "{}");
  EXPECT_EQ(published_.size(), 1u);
}

// The literal-prefix pre-check never changes what a filter matches.
TEST_F(EngineTest, FromFiltersMatchAsMqttSays) {
  int i = 0;
  for (const char* f : {"a/#", "x/+/z", "#", "+/b", "lit/eral"}) {
    TopicRuleSpec r;
    r.name = "f" + std::to_string(i++);
    r.sql = std::string("SELECT topic() AS t FROM '") + f + "'";
    r.actions = json::array({{{"republish", {{"topic", std::string("out/") + r.name}}}}});
    ASSERT_TRUE(engine_.Put(r).ok());
  }
  auto hits = [&](const std::string& topic) {
    published_.clear();
    Send(topic, "{}");
    std::vector<std::string> out;
    for (const auto& p : published_) out.push_back(p.topic.substr(4));
    std::sort(out.begin(), out.end());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(hits("a"), (V{"f0", "f2"}));  // "a/#" matches its parent
  EXPECT_EQ(hits("a/b/c"), (V{"f0", "f2"}));
  EXPECT_EQ(hits("ab"), (V{"f2"}));
  EXPECT_EQ(hits("x/1/z"), (V{"f1", "f2"}));
  EXPECT_EQ(hits("x/1/y"), (V{"f2"}));
  EXPECT_EQ(hits("q/b"), (V{"f2", "f3"}));
  EXPECT_EQ(hits("lit/eral"), (V{"f2", "f4"}));
  EXPECT_EQ(hits("lit/eral/x"), (V{"f2"}));
  EXPECT_EQ(hits("$sys/x"), V{});  // wildcards do not match $-topics
}

TEST_F(EngineTest, InvalidRulesAreRejectedWithTheReason) {
  TopicRuleSpec r;
  r.name = "bad";
  r.sql = "SELECT * FROM 't'";
  r.actions = json::array({{{"lambda", {{"functionArn", "x"}}}}});
  Status st = RulesEngine::Validate(r);
  EXPECT_EQ(st.code(), ErrorCode::kIotInvalidRequest);
  EXPECT_NE(st.message().find("not implemented"), std::string::npos);
  r.actions = json::array({{{"republish", {{"topic", "x/${topic(}"}}}}});
  EXPECT_EQ(RulesEngine::Validate(r).code(), ErrorCode::kIotInvalidRequest);
  r.actions = json::array();
  r.sql = "SELECT FROM 't'";
  st = RulesEngine::Validate(r);
  EXPECT_NE(st.message().find("column 8"), std::string::npos) << st.message();
}

// A sink that acknowledges only when the test says so, from another thread (like the WAL's
// committers).
class AsyncSink final : public streams::RecordSink {
 public:
  void Append(const std::string& stream, std::string data,
              std::function<void(const Status&)> done,
              const streams::RecordOrigin* = nullptr) override {
    std::lock_guard<std::mutex> l(mu);
    pending.push_back({std::move(data), std::move(done)});
    cv.notify_all();
  }
  Status CheckConversion(const std::string&, std::string_view) override { return Status::OK(); }
  bool WaitPending(size_t n) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::seconds(10), [&] { return pending.size() >= n; });
  }
  // Completes the pending appends on another thread; the one whose record contains `fail` fails.
  void CompleteAll(const std::string& fail = "") {
    std::vector<std::pair<std::string, std::function<void(const Status&)>>> p;
    {
      std::lock_guard<std::mutex> l(mu);
      p.swap(pending);
    }
    std::thread([p = std::move(p), fail]() mutable {
      for (auto& [data, done] : p) {
        done(!fail.empty() && data.find(fail) != std::string::npos
                 ? Error(ErrorCode::kFirehoseServiceUnavailable, "log full")
                 : Status::OK());
      }
    }).join();
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::function<void(const Status&)>>> pending;
};

// Firehose appends of a batch are issued together and waited for once: a message's `done` (the
// device's PUBACK) runs only after its record is durable, and an append that fails later still
// reaches the error action with AWS's failure document.
TEST(EngineBatch, FirehoseAppendsOfABatchAreWaitedForTogether) {
  AsyncSink sink;
  std::mutex mu;
  std::vector<Published> published;
  ActionTargets t;
  t.streams = &sink;
  t.republish = [&](const std::string& topic, const std::string& payload, int qos,
                    std::function<void()> durable) {
    {
      std::lock_guard<std::mutex> l(mu);
      published.push_back({topic, payload, qos});
    }
    durable();
    return Status::OK();
  };
  ManualClock clock(1700000000000000);
  RulesEngine engine(std::move(t), &clock, 1);
  TopicRuleSpec r;
  r.name = "to_stream_batch";
  r.sql = "SELECT * FROM 'dev/#'";
  r.actions = json::array({{{"firehose", {{"deliveryStreamName", "s"}, {"separator", "\n"}}}}});
  r.error_action = {{"republish", {{"topic", "errors/${topic()}"}}}};
  ASSERT_TRUE(engine.Put(r).ok());
  std::atomic<int> done{0};
  auto submit = [&](int i) {
    InboundMessage m;
    m.topic = "dev/" + std::to_string(i);
    m.payload = "{\"i\":" + std::to_string(i) + "}";
    m.client_id = "dev";
    m.done = [&](const Status&) { ++done; };
    engine.Submit(std::move(m));
  };
  submit(0);
  ASSERT_TRUE(sink.WaitPending(1));
  // The worker waits for message 0's record; meanwhile three more queue up…
  for (int i = 1; i <= 3; ++i) submit(i);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(done.load(), 0) << "acknowledged before the record was durable";
  sink.CompleteAll();
  // …and are taken as one batch: all three appends are in flight at once.
  ASSERT_TRUE(sink.WaitPending(3));
  EXPECT_EQ(done.load(), 1);
  sink.CompleteAll("\"i\":2");
  engine.Drain();
  EXPECT_EQ(done.load(), 4);
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].topic, "errors/dev/2");
  json doc = json::parse(published[0].payload);
  EXPECT_EQ(doc["failures"][0]["failedAction"], "FirehoseAction");
  EXPECT_EQ(doc["failures"][0]["failedResource"], "s");
  EXPECT_NE(doc["failures"][0]["errorMessage"].get<std::string>().find("log full"), std::string::npos);
}

// A full queue holds the publisher back (bounded memory, nothing lost while the engine catches
// up); only a queue that stays full past the limit drops, counted; done() always runs.
TEST(EngineQueue, FullQueueBlocksThenDrops) {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  int republished = 0;
  ActionTargets t;
  t.republish = [&](const std::string&, const std::string&, int, std::function<void()> durable) {
    std::unique_lock<std::mutex> l(mu);
    entered = true;
    cv.notify_all();
    cv.wait(l, [&] { return release; });
    ++republished;
    l.unlock();
    durable();
    return Status::OK();
  };
  ManualClock clock;
  RulesEngine engine(t, &clock, 1, /*max_queued=*/2, /*max_block_ms=*/50);
  TopicRuleSpec r;
  r.name = "q";
  r.sql = "SELECT * FROM 'q/#'";
  r.actions = json::array({{{"republish", {{"topic", "out"}}}}});
  ASSERT_TRUE(engine.Put(r).ok());
  std::atomic<int> done{0};
  auto submit = [&] {
    InboundMessage m;
    m.topic = "q/1";
    m.payload = "{}";
    m.done = [&](const Status&) { ++done; };
    engine.Submit(std::move(m));
  };
  submit();
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return entered; });  // the worker holds message 1 inside its action
  }
  submit();
  submit();  // the queue (2) is full now
  auto start = std::chrono::steady_clock::now();
  submit();  // waits up to 50 ms for room, then is dropped
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(45));
  EXPECT_EQ(done.load(), 1);  // the dropped one
  {
    std::lock_guard<std::mutex> l(mu);
    release = true;
  }
  cv.notify_all();
  engine.Drain();
  EXPECT_EQ(republished, 3);
  EXPECT_EQ(done.load(), 4);
  std::string text = ops::Metrics().RenderPrometheus();
  EXPECT_NE(text.find("tarn_iot_rule_messages_dropped_total 1"), std::string::npos);
  engine.Shutdown();
  submit();  // after shutdown: not evaluated, but done() still runs
  EXPECT_EQ(done.load(), 5);
}

TEST(RulesDryRun, EmitsTheDocumentOrTheError) {
  auto out = RulesEngine::Test("SELECT a * 2 AS b FROM 'x/+'", "x/y", R"({"a": 21})", "c", 0);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(**out, json::parse(R"({"b":42})"));
  EXPECT_FALSE(RulesEngine::Test("SELECT a FROM 'x/+'", "z", "{}", "c", 0).ok());
}

}  // namespace
}  // namespace tarn::gateway::rules
