#include "gateway/iot/device_policy.h"

#include <gtest/gtest.h>

namespace tarn::gateway::iot {
namespace {

constexpr const char* kArn = "arn:aws:iot:us-east-1:123456789012:";

DeviceContext Device(const std::string& thing, std::string policy) {
  DeviceContext c;
  c.certificate_known = true;
  c.certificate_status = "ACTIVE";
  c.subject_cn = "AWS IoT Certificate";
  c.thing_name = thing;
  c.thing_attributes["site"] = "north";
  if (!policy.empty()) c.policies.emplace_back("device", std::move(policy));
  return c;
}

TEST(IotPolicy, ThingNameVariableScopesTopics) {
  std::string policy = R"({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:us-east-1:123456789012:topic/sensors/${iot:Connection.Thing.ThingName}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/site/${iot:Connection.Thing.Attributes[site]}/#"},
    {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/sensors/*/secret"}]})";
  DeviceContext a = Device("A", policy);
  std::string k = kArn;
  EXPECT_TRUE(EvaluateIotPolicies(a, "A", "iot:Connect", k + "client/A").allowed);
  EXPECT_FALSE(EvaluateIotPolicies(a, "B", "iot:Connect", k + "client/B").allowed);
  EXPECT_TRUE(EvaluateIotPolicies(a, "A", "iot:Publish", k + "topic/sensors/A/telemetry").allowed);
  PolicyDecision no = EvaluateIotPolicies(a, "A", "iot:Publish", k + "topic/sensors/B/telemetry");
  EXPECT_FALSE(no.allowed);
  EXPECT_NE(no.reason.find("implicit deny"), std::string::npos);
  PolicyDecision deny = EvaluateIotPolicies(a, "A", "iot:Publish", k + "topic/sensors/A/secret");
  EXPECT_FALSE(deny.allowed);
  EXPECT_NE(deny.reason.find("explicit deny by policy device statement 3"), std::string::npos) << deny.reason;
  EXPECT_TRUE(EvaluateIotPolicies(a, "A", "iot:Subscribe", k + "topicfilter/site/north/#").allowed);
  EXPECT_FALSE(EvaluateIotPolicies(a, "A", "iot:Subscribe", k + "topicfilter/site/south/#").allowed);
  EXPECT_TRUE(EvaluateIotPolicies(a, "A", "iot:Receive", k + "topic/sensors/A/x").allowed);

  // No thing attached: the ThingName statements do not apply.
  DeviceContext lone = Device("", policy);
  EXPECT_FALSE(EvaluateIotPolicies(lone, "A", "iot:Connect", k + "client/A").allowed);
}

TEST(IotPolicy, NoPolicyMeansNothingIsAllowed) {
  DeviceContext c = Device("A", "");
  PolicyDecision d = EvaluateIotPolicies(c, "A", "iot:Connect", std::string(kArn) + "client/A");
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("no policy"), std::string::npos);
}

TEST(IotPolicy, ClientIdAndWildcards) {
  DeviceContext c = Device("", R"({"Statement": {"Effect": "Allow", "Action": "iot:*",
      "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}",
                   "arn:aws:iot:us-east-1:123456789012:topic/dev/${iot:ClientId}/?"]}})");
  std::string k = kArn;
  EXPECT_TRUE(EvaluateIotPolicies(c, "x1", "iot:Connect", k + "client/x1").allowed);
  EXPECT_TRUE(EvaluateIotPolicies(c, "x1", "iot:Publish", k + "topic/dev/x1/a").allowed);
  EXPECT_FALSE(EvaluateIotPolicies(c, "x1", "iot:Publish", k + "topic/dev/x1/ab").allowed);
}

}  // namespace
}  // namespace tarn::gateway::iot
