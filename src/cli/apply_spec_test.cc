#include "cli/apply_spec.h"

#include <gtest/gtest.h>

namespace tarn::cli {
namespace {

TEST(ApplySpec, ExpandsThingRangesAndOrdersByDependency) {
  auto spec = ParseApplySpec("t.yaml", R"(
iot:
  certificates_dir: devices
  rules:
    - name: r1
      sql: "SELECT * FROM 'a/b'"
      actions: [{republish: {topic: x}}]
  policies:
    - name: p
      document: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "iot:Connect", Resource: "*"}]}
  things:
    - name: "sensor-{008..011}"
      policy: p
buckets:
  - name: landing
)");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->certificates_dir, "devices");
  std::vector<std::string> keys;
  for (const auto& r : spec->resources) keys.push_back(r.Key());
  EXPECT_EQ(keys, (std::vector<std::string>{"bucket/landing", "policy/p", "thing/sensor-008",
                                            "thing/sensor-009", "thing/sensor-010",
                                            "thing/sensor-011", "rule/r1"}));
  EXPECT_EQ(spec->resources[2].policy, "p");
  EXPECT_EQ(spec->resources.back().body["ruleDisabled"], false);
  EXPECT_EQ(spec->resources[1].body["Version"], "2012-10-17");
}

TEST(ApplySpec, ErrorsNameFileLineAndField) {
  auto spec = ParseApplySpec("lake.yaml", "streams:\n  - name: s\n    Tags: []\n");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message(),
            "lake.yaml:2:5: streams[0].ExtendedS3DestinationConfiguration: required");
  spec = ParseApplySpec("lake.yaml", "buckets:\n  - name: a\n    colour: red\n");
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("lake.yaml:3:5: buckets[0].colour: unknown field"),
            std::string::npos)
      << spec.status().message();
  spec = ParseApplySpec("lake.yaml", "iot:\n  things:\n    - name: a\n      policy: nope\n");
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("lake.yaml:4:15: iot.things[0].policy: no policy"),
            std::string::npos)
      << spec.status().message();
  spec = ParseApplySpec("lake.yaml", "buckets:\n  - name: a\n  - name: a\n");
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("lake.yaml:3:"), std::string::npos);
}

TEST(ApplySpec, ScalarTypes) {
  auto spec = ParseApplySpec("f", R"(
streams:
  - name: s
    ExtendedS3DestinationConfiguration:
      BufferingHints: {IntervalInSeconds: 0, SizeInMBs: 64}
      Enabled: true
      Quoted: "007"
      Prefix: iot/x/
)");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const auto& c = spec->resources[0].body["ExtendedS3DestinationConfiguration"];
  EXPECT_TRUE(c["BufferingHints"]["IntervalInSeconds"].is_number_integer());
  EXPECT_EQ(c["Enabled"], true);
  EXPECT_EQ(c["Quoted"], "007");
  EXPECT_EQ(c["Prefix"], "iot/x/");
}

TEST(SubsetDifference, IgnoresExtraServerFieldsAndFindsChanges) {
  auto actual = nlohmann::json::parse(R"({"a": {"b": 1, "c": "x", "extra": 3}, "l": [1, 2]})");
  EXPECT_EQ(SubsetDifference(nlohmann::json::parse(R"({"a": {"b": 1}})"), actual), "");
  EXPECT_EQ(SubsetDifference(nlohmann::json::parse(R"({"a": {"b": "1"}})"), actual), "");
  EXPECT_EQ(SubsetDifference(nlohmann::json::parse(R"({"a": {"c": "y"}})"), actual), "a.c");
  EXPECT_EQ(SubsetDifference(nlohmann::json::parse(R"({"l": [1]})"), actual), "l");
  EXPECT_EQ(SubsetDifference(nlohmann::json::parse(R"({"z": 1})"), actual), "z");
}

TEST(ExpandNameRange, Widths) {
  EXPECT_EQ(*ExpandNameRange("d{1..3}"), (std::vector<std::string>{"d1", "d2", "d3"}));
  EXPECT_EQ(*ExpandNameRange("plain"), (std::vector<std::string>{"plain"}));
  EXPECT_FALSE(ExpandNameRange("d{3..1}").ok());
}

}  // namespace
}  // namespace tarn::cli
