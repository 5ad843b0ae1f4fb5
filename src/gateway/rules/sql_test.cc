// The rule SQL as data: testdata/sql_cases.json holds SQL + topic + payload → the document the
// rule emits ("filtered" when WHERE drops the message), or the compile / evaluation error.
#include "gateway/rules/sql.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace tarn::gateway::rules {
namespace {

using json = nlohmann::json;

json LoadCases() {
  std::ifstream in(TARN_RULES_TESTDATA "/sql_cases.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

TEST(RuleSql, Cases) {
  json cases = LoadCases();
  ASSERT_GT(cases.size(), 20u);
  for (const json& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>() + ": " + c["sql"].get<std::string>());
    auto q = RuleQuery::Compile(c["sql"].get<std::string>());
    if (c.contains("compile_error")) {
      ASSERT_FALSE(q.ok());
      EXPECT_EQ(q.status().code(), ErrorCode::kIotInvalidRequest);
      EXPECT_NE(q.status().message().find(c["compile_error"].get<std::string>()), std::string::npos)
          << q.status().message();
      continue;
    }
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    std::string payload = c.contains("payload_text") ? c["payload_text"].get<std::string>()
                                                     : c["payload"].dump();
    json parsed;
    bool is_json = ParsePayload(payload, &parsed);
    MessageContext msg;
    msg.topic = c["topic"].get_ref<const std::string&>();
    msg.client_id = "dev-1";
    msg.principal = "abc123";
    msg.timestamp_ms = 1700000000123;
    msg.payload = payload;
    msg.json = is_json ? &parsed : nullptr;
    auto out = (*q)->Evaluate(msg);
    if (c.contains("eval_error")) {
      ASSERT_FALSE(out.ok());
      EXPECT_NE(out.status().message().find(c["eval_error"].get<std::string>()), std::string::npos);
      continue;
    }
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    if (c["expect"] == "filtered") {
      EXPECT_FALSE(out->has_value()) << (*out)->dump();
    } else {
      ASSERT_TRUE(out->has_value());
      EXPECT_EQ(**out, c["expect"]) << (*out)->dump();
    }
  }
}

TEST(RuleSql, TopicFilters) {
  EXPECT_TRUE(TopicMatches("sensors/+/telemetry", "sensors/A/telemetry"));
  EXPECT_FALSE(TopicMatches("sensors/+/telemetry", "sensors/A/B/telemetry"));
  EXPECT_FALSE(TopicMatches("sensors/+/telemetry", "sensors/A"));
  EXPECT_TRUE(TopicMatches("sensors/#", "sensors"));
  EXPECT_TRUE(TopicMatches("sensors/#", "sensors/a/b"));
  EXPECT_TRUE(TopicMatches("#", "a/b"));
  EXPECT_FALSE(TopicMatches("#", "$aws/rules/x"));
  EXPECT_TRUE(TopicMatches("a/+", "a/"));
  EXPECT_FALSE(TopicMatches("a/b", "a/b/c"));
  EXPECT_FALSE(TopicMatches("a/b/c", "a/b"));
  EXPECT_TRUE(ValidateTopicFilter("a/+/#").ok());
  EXPECT_FALSE(ValidateTopicFilter("a/b#").ok());
  EXPECT_FALSE(ValidateTopicFilter("a/#/c").ok());
  EXPECT_FALSE(ValidateTopicFilter("").ok());
}

TEST(RuleSql, Templates) {
  auto t = Template::Compile("landing/iot/raw/${topic(2)}/${timestamp()}.json");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  json payload = {{"device", {{"id", "d7"}}}};
  std::string raw = payload.dump();
  MessageContext msg;
  msg.topic = "sensors/A/telemetry";
  msg.timestamp_ms = 42;
  msg.payload = raw;
  msg.json = &payload;
  EXPECT_EQ(t->Expand(msg), "landing/iot/raw/A/42.json");
  auto t2 = Template::Compile("out/${device.id}/${nope}/${concat('a', '}')}");
  ASSERT_TRUE(t2.ok()) << t2.status().ToString();
  EXPECT_EQ(t2->Expand(msg), "out/d7//a}");
  auto plain = Template::Compile("plain/topic");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->has_expressions());
  EXPECT_EQ(plain->Expand(msg), "plain/topic");
  EXPECT_FALSE(Template::Compile("x/${topic(2)").ok());
  EXPECT_FALSE(Template::Compile("x/${topic(}").ok());
}

TEST(RuleSql, DeepNestingIsAnErrorNotACrash) {
  std::string sql = "SELECT " + std::string(5000, '(') + "1" + std::string(5000, ')') + " FROM 'a'";
  auto q = RuleQuery::Compile(sql);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("nested too deeply"), std::string::npos);
  std::string nots = "SELECT a FROM 'a' WHERE ";
  for (int i = 0; i < 5000; ++i) nots += "NOT ";
  EXPECT_FALSE(RuleQuery::Compile(nots + "true").ok());
}

// The fast path (simdjson) gives exactly the document nlohmann's parser gives, and falls back
// to it for what simdjson refuses.
TEST(RulePayload, SameDocumentAsNlohmann) {
  const char* cases[] = {
      R"({"temperature": 72.5, "humidity": 41, "neg": -3, "big": 18446744073709551615, "s": "a\u00e9\n",
          "arr": [1, 2.5, "x", null, true, {"k": []}], "dup": 1, "dup": 2})",
      R"([1, 2, 3])", R"("just a string")", "42", "-0", "1e400", "123456789012345678901234567890",
      "not json", "{\"a\": }", "", "{\"bad utf8\": \"\xff\"}"};
  for (const char* c : cases) {
    json fast;
    bool ok = ParsePayload(c, &fast);
    json slow = json::parse(c, nullptr, false);
    EXPECT_EQ(ok, !slow.is_discarded()) << c;
    if (ok && !slow.is_discarded()) {
      EXPECT_EQ(fast, slow) << c;
      EXPECT_EQ(fast.dump(), slow.dump()) << c;
    }
  }
  std::string deep(2000, '[');
  deep += std::string(2000, ']');
  json d;
  EXPECT_TRUE(ParsePayload(deep, &d));  // beyond simdjson's depth: nlohmann decides
}

}  // namespace
}  // namespace tarn::gateway::rules
