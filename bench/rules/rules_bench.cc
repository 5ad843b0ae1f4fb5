// bench/rules: the rules engine's cost per message, in process (no sockets), and the cached
// device-policy check per publish.
//
//   rules_bench [messages]
//
// Prints messages/s through RulesEngine::ProcessNow with no rules, and with 10 rules of which
// one matches (WHERE + 5 projected fields + republish to a no-op target), so the ratio shows
// what rules add on top of routing; then ns per cached DevicePolicyHook decision is measured
// by EvaluateIotPolicies (uncached) for reference.
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "core/clock.h"
#include "core/meta_store.h"
#include "gateway/iot/device_policy.h"
#include "gateway/rules/engine.h"

using namespace tarn;
using namespace tarn::gateway;

namespace {

// CPU time of this thread, in seconds: on a shared machine the thread's own CPU time is a far
// steadier measure of cost per message than wall-clock time.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

double Rate(rules::RulesEngine& engine, int n) {
  rules::InboundMessage msg;
  msg.client_id = "dev-1";
  double start = ThreadCpuSeconds();
  for (int i = 0; i < n; ++i) {
    msg.topic = "sensors/d" + std::to_string(i % 100) + "/telemetry";
    msg.payload = "{\"temperature\":" + std::to_string(i % 100) +
                  ",\"humidity\":40,\"pressure\":1013,\"battery\":3.7,\"seq\":" + std::to_string(i) +
                  ",\"site\":\"north\"}";
    engine.ProcessNow(msg);
  }
  double s = ThreadCpuSeconds() - start;
  return n / s;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  uint64_t republished = 0;
  rules::ActionTargets t;
  t.republish = [&republished](const std::string&, const std::string&, int,
                                std::function<void()> durable) {
    ++republished;
    durable();
    return Status::OK();
  };
  rules::RulesEngine none(t, Clock::Real(), 1);
  rules::RulesEngine ten(t, Clock::Real(), 1);
  for (int i = 0; i < 10; ++i) {
    rules::TopicRuleSpec r;
    r.name = "r" + std::to_string(i);
    r.sql = i == 0 ? "SELECT temperature, humidity, pressure, battery, topic(2) AS device "
                     "FROM 'sensors/+/telemetry' WHERE temperature > 50"
                   : "SELECT * FROM 'other/" + std::to_string(i) + "/#'";
    r.actions = nlohmann::json::array({{{"republish", {{"topic", "alerts/${topic(2)}"}}}}});
    Status st = ten.Put(r);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }
  double base = Rate(none, n);
  double with = Rate(ten, n);
  std::printf("messages: %d\nno rules:       %.0f msg/s\n10 rules:       %.0f msg/s (%.2fx), %llu republished\n",
              n, base, with, with / base, static_cast<unsigned long long>(republished));

  iot::DeviceContext ctx;
  ctx.certificate_known = true;
  ctx.certificate_status = "ACTIVE";
  ctx.thing_name = "A";
  const char* policy = R"({"Statement": [{"Effect": "Allow", "Action": "iot:Publish",
      "Resource": "arn:aws:iot:us-east-1:123456789012:topic/sensors/${iot:Connection.Thing.ThingName}/*"}]})";
  ctx.AddPolicy("device", policy);
  double start = ThreadCpuSeconds();
  int m = 20000;
  int allowed = 0;
  for (int i = 0; i < m; ++i) {
    allowed += iot::EvaluateIotPolicies(ctx, "A", "iot:Publish",
                                        "arn:aws:iot:us-east-1:123456789012:topic/sensors/A/telemetry").allowed;
  }
  double ns = (ThreadCpuSeconds() - start) * 1e9 / m;
  std::printf("policy evaluation, uncached: %.0f ns per decision (%d allowed)\n", ns, allowed);

  // The broker's path: DevicePolicyHook::Allow, whose decision is cached per connection and
  // resource after the first publish.
  std::string dir = std::filesystem::temp_directory_path() / ("rules-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto meta = MetaStore::Open(dir + "/meta.db");
  if (!meta.ok()) return 1;
  // The registry as IotApi stores it: an ACTIVE certificate, thing A attached, policy attached.
  const std::string cert_arn = "arn:aws:iot:us-east-1:123456789012:cert/0123";
  nlohmann::json cert = {{"status", "ACTIVE"}, {"certificateArn", cert_arn}, {"subjectCommonName", "A"}};
  nlohmann::json pol = {{"defaultVersionId", "1"}, {"versions", {{"1", {{"document", policy}}}}}};
  Status st = (*meta)->Exec(
      "CREATE TABLE iot_objects (kind TEXT, name TEXT, doc TEXT, PRIMARY KEY (kind, name));"
      "CREATE TABLE iot_thing_principals (a TEXT, b TEXT);"
      "CREATE TABLE iot_group_things (a TEXT, b TEXT);"
      "CREATE TABLE iot_policy_targets (a TEXT, b TEXT);"
      "INSERT INTO iot_objects VALUES ('cert', '0123', '" + cert.dump() + "'), ('thing', 'A', '{}'), "
      "('policy', 'device', '" + pol.dump() + "');"
      "INSERT INTO iot_thing_principals VALUES ('A', '" + cert_arn + "');"
      "INSERT INTO iot_policy_targets VALUES ('device', '" + cert_arn + "');");
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  iot::DevicePolicyHook hook(meta->get(), nullptr, "us-east-1", "123456789012");
  mqtt::ClientInfo client;
  client.client_id = "A";
  client.identity = "iotcert:0123";
  start = ThreadCpuSeconds();
  m = 1000000;
  allowed = 0;
  for (int i = 0; i < m; ++i) allowed += hook.Allow(mqtt::AuthzAction::kPublish, client, "sensors/A/telemetry");
  ns = (ThreadCpuSeconds() - start) * 1e9 / m;
  std::printf("policy check per publish, cached: %.0f ns (%d allowed)\n", ns, allowed);
  std::filesystem::remove_all(dir);
  return 0;
}
