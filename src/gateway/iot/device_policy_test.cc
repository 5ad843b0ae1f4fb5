#include "gateway/iot/device_policy.h"

#include <gtest/gtest.h>

namespace tarn::gateway::iot {
namespace {

constexpr const char* kArn = "arn:aws:iot:us-east-1:123456789012:";

DeviceContext Device(const std::string& thing, const std::string& policy) {
  DeviceContext c;
  c.certificate_known = true;
  c.certificate_status = "ACTIVE";
  c.subject_cn = "AWS IoT Certificate";
  c.thing_name = thing;
  c.thing_attributes["site"] = "north";
  if (!policy.empty()) {
    EXPECT_TRUE(c.AddPolicy("device", policy));
  }
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
  // iot:Publish does not grant iot:RetainPublish.
  EXPECT_FALSE(EvaluateIotPolicies(a, "A", "iot:RetainPublish", k + "topic/sensors/A/telemetry").allowed);

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
  EXPECT_TRUE(EvaluateIotPolicies(c, "x1", "iot:RetainPublish", k + "topic/dev/x1/a").allowed);
  // A client id with wildcard characters matches only itself: "*" substituted into the
  // pattern is a literal, not a wildcard that would open every device's topics.
  EXPECT_TRUE(EvaluateIotPolicies(c, "*", "iot:Publish", k + "topic/dev/*/a").allowed);
  EXPECT_FALSE(EvaluateIotPolicies(c, "*", "iot:Publish", k + "topic/dev/other/a").allowed);
}

TEST(IotPolicy, ConditionsAndConnectAttributes) {
  // developerguide/connect-policy: Connect only when the thing is attached; persistent sessions
  // and wills only when the statement's iot:ConnectAttributes allow them.
  DeviceContext a = Device("A", R"({"Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/*",
     "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"},
                   "ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}}]})");
  std::string res = std::string(kArn) + "client/A";
  std::vector<std::string> none, persistent = {"PersistentConnect"}, will = {"LastWill"};
  EXPECT_TRUE(EvaluateIotPolicies(a, "A", "iot:Connect", res, &none).allowed);
  EXPECT_TRUE(EvaluateIotPolicies(a, "A", "iot:Connect", res, &persistent).allowed);
  EXPECT_FALSE(EvaluateIotPolicies(a, "A", "iot:Connect", res, &will).allowed);
  DeviceContext lone = Device("", R"({"Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
     "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}}]})");
  EXPECT_FALSE(EvaluateIotPolicies(lone, "A", "iot:Connect", res, &none).allowed);
  // A Deny with a condition that does not hold does not apply.
  DeviceContext d = Device("A", R"({"Statement": [
    {"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"},
    {"Effect": "Deny", "Action": "iot:Publish", "Resource": "*",
     "Condition": {"StringEquals": {"iot:Connection.Thing.Attributes[site]": "south"}}}]})");
  EXPECT_TRUE(EvaluateIotPolicies(d, "A", "iot:Publish", std::string(kArn) + "topic/x").allowed);
}

TEST(IotPolicy, SeveralPoliciesExplicitDenyWins) {
  DeviceContext c = Device("A", R"({"Statement": {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}})");
  ASSERT_TRUE(c.AddPolicy("group-deny", R"({"Statement": {"Effect": "Deny", "Action": "iot:Publish",
      "Resource": "arn:aws:iot:us-east-1:123456789012:topic/admin/*"}})"));
  PolicyDecision d = EvaluateIotPolicies(c, "A", "iot:Publish", std::string(kArn) + "topic/admin/x");
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("policy group-deny statement 0"), std::string::npos) << d.reason;
  EXPECT_TRUE(EvaluateIotPolicies(c, "A", "iot:Publish", std::string(kArn) + "topic/a").allowed);
  EXPECT_FALSE(c.AddPolicy("broken", "{not json"));
}

}  // namespace
}  // namespace tarn::gateway::iot
