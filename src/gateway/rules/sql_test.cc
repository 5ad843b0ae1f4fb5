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

// The engine's path — the payload parsed by simdjson (ParsedPayload) and the output written as
// text (EvaluateText, its splice of `SELECT *` off: see SpliceGivesTheSameDocument) — gives byte
// for byte what the document path gives: Evaluate() over
// nlohmann's parse, dumped. Every case of sql_cases.json, and payloads chosen for the writer's
// edges (key order, repeated keys, escapes, number forms, nesting, values simdjson refuses).
TEST(RuleSql, TextPathEqualsDocumentPath) {
  std::vector<std::pair<std::string, std::string>> runs;  // sql, payload
  for (const json& c : LoadCases()) {
    if (c.contains("compile_error")) continue;
    std::string payload = c.contains("payload_text") ? c["payload_text"].get<std::string>()
                                                     : c["payload"].dump();
    runs.emplace_back(c["sql"].get<std::string>(), payload);
  }
  const char* payloads[] = {
      R"({"zeta": 1, "alpha": {"b": 2, "a": [3, {"y": 1, "x": 0}]}, "dup": 1, "dup": 2.5, "m": "é\"\\\n\t\u0001\u007f/"})",
      R"({"d": 1.0, "e": 1e300, "f": -0.0, "g": 0.1, "h": 1e-7, "i": 123456789.125, "j": 18446744073709551615,
          "k": -9223372036854775808, "l": 1E2, "n": null, "t": true, "u": false, "s": "", "o": {}, "a": []})",
      R"({"huge": 123456789012345678901234567890, "x": 1})",  // simdjson refuses: nlohmann's document
      R"([{"b": 1, "a": 2}, 3])", R"("text")", "7", "not json", R"({"temperature": "ERR", "seq": 3})"};
  const char* sqls[] = {
      "SELECT * FROM 'a/+'",
      "SELECT *, topic(2) AS device, timestamp() AS ts FROM 'a/+'",
      "SELECT alpha, zeta, dup, m, alpha.a[1] AS x, alpha.a[1].x AS y, nope FROM 'a/+'",
      "SELECT *, zeta AS alpha, nope AS zeta FROM 'a/+'",
      "SELECT VALUE alpha FROM 'a/+'",
      "SELECT VALUE nope FROM 'a/+'",
      "SELECT d, e, f, g, h, i, j, k, l, n, t, u, s, o, a, d + 1 AS d1, j * 2 AS j2, i / 3 AS i3 FROM 'a/+'",
      "SELECT huge, x, huge + 1 AS h1 FROM 'a/+'",
      "SELECT get(*, 0) AS first, get(*, 'zeta') AS z, [1, zeta, 'x'] AS arr, {'k': alpha.b} AS obj FROM 'a/+'",
      "SELECT substring(m, 0, 1) AS cut, upper(m) AS up, concat(m, zeta) AS c FROM 'a/+'",
      "SELECT temperature, seq FROM 'a/+' WHERE temperature > 50",
      "SELECT seq FROM 'a/+' WHERE temperature = 'ERR' AND seq >= 3",
      "SELECT encode(*, 'base64') AS raw, clientid() AS c, principal() AS p FROM 'a/+'",
  };
  for (const char* q : sqls) {
    for (const char* p : payloads) runs.emplace_back(q, p);
  }
  ParsedPayload parsed;
  for (const auto& [sql, payload] : runs) {
    SCOPED_TRACE(sql + " / " + payload);
    auto q = RuleQuery::Compile(sql);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    json doc;
    bool is_json = ParsePayload(payload, &doc);
    ASSERT_EQ(parsed.Parse(payload), is_json);
    MessageContext base;
    base.topic = "a/b";
    base.client_id = "dev-1";
    base.principal = "abc123";
    base.timestamp_ms = 1700000000123;
    base.payload = payload;
    MessageContext by_doc = base, by_parse = base;
    by_doc.json = is_json ? &doc : nullptr;
    by_parse.parsed = &parsed;
    auto want = (*q)->Evaluate(by_doc);
    std::string text;
    auto got = (*q)->EvaluateText(by_parse, &text, /*splice=*/false);
    auto got_doc = (*q)->Evaluate(by_parse);
    ASSERT_EQ(got.ok(), want.ok()) << (want.ok() ? got.status().ToString() : want.status().ToString());
    ASSERT_EQ(got_doc.ok(), want.ok());
    if (!want.ok()) {
      EXPECT_EQ(got.status().message(), want.status().message());
      continue;
    }
    ASSERT_EQ(*got, want->has_value());
    ASSERT_EQ(got_doc->has_value(), want->has_value());
    if (!*got) continue;
    EXPECT_EQ(text, (**want).dump(-1, ' ', false, json::error_handler_t::replace));
    EXPECT_EQ(**got_doc, **want);
  }
}

// The top-level keys of a JSON object text, in order, repeats included (nlohmann's parser keeps
// only the last of a repeated key, which would hide one).
std::vector<std::string> TopKeys(const std::string& text) {
  std::vector<std::string> keys;
  json::parser_callback_t cb = [&keys](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) keys.push_back(parsed.get<std::string>());
    return true;
  };
  json ignored = json::parse(text, cb);
  (void)ignored;
  return keys;
}

// `SELECT *, <expr> AS <name>, …` over an object payload copies the payload's members as its text
// has them (less the whitespace between tokens) and appends the query's: the same document the
// general path writes (parsed and compared), with no key twice, compact; where the splice does not
// apply (a repeated key, a payload simdjson refuses or that is not an object, `*` not first) the
// text is the general path's, byte for byte.
TEST(RuleSql, SpliceGivesTheSameDocument) {
  struct Run {
    const char* payload;
    bool spliced;  // false: the general path's bytes
  };
  const Run payloads[] = {
      {R"({"device":"sensor-0001","seq":12,"temperature":21.50,"humidity":40.00,"pressure":1000.25,"battery":3.90})", true},
      {R"({"seq":1,"temperature":21.5})", true},
      {R"( { "zeta" : 1 ,	"alpha": {"b": 2, "a": [3, {"y": 1, "x": "}]{[,\""}]}, "m": "é\"\\\u00e9\t\u0001/"	} )", true},
      {R"({"d": 1.0, "e": 1e300, "f": -0.0, "g": 0.1, "h": 1e-7, "j": 18446744073709551615, "k": -9223372036854775808, "l": 1E2, "n": null, "t": true, "u": false, "s": "", "o": {}, "a": []})", true},
      {R"({"device":"from-payload","ts":5,"keep":[1,2]})", true},
      {R"({"ts":5})", true},
      {R"({})", true},
      {"{ }", true},
      {R"({"dup": 1, "x": 2, "dup": 3})", false},
      {"{\"a\": 1,\r\n \"b\": [1,\n 2, {\"c\" :\t\"x y\\n\"}]\n}", true},
      {R"({"huge": 123456789012345678901234567890, "x": 1})", false},  // simdjson refuses
      {R"([{"b": 1, "a": 2}, 3])", false},
      {R"("text")", false},
      {"7", false},
  };
  const char* sqls[] = {
      "SELECT *, topic(2) AS device, timestamp() AS ts FROM 'a/+'",
      "SELECT * FROM 'a/+'",
      "SELECT *, nope AS device, seq + 1 AS next FROM 'a/+'",  // an Undefined item adds nothing
      "SELECT *, {'k': [1, 'é\n']} AS obj, 'x\"y' AS \"quoted-name\" FROM 'a/+'",
  };
  ParsedPayload parsed;
  for (const char* sql : sqls) {
    auto q = RuleQuery::Compile(sql);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    for (const Run& run : payloads) {
      std::string payload = run.payload;
      SCOPED_TRACE(std::string(sql) + " / " + payload);
      ASSERT_TRUE(parsed.Parse(payload));
      MessageContext msg;
      msg.topic = "a/dev-7";
      msg.client_id = "dev-1";
      msg.timestamp_ms = 1700000000123;
      msg.payload = payload;
      msg.parsed = &parsed;
      std::string general, spliced;
      auto g = (*q)->EvaluateText(msg, &general, /*splice=*/false);
      auto f = (*q)->EvaluateText(msg, &spliced);
      ASSERT_TRUE(g.ok()) << g.status().ToString();
      ASSERT_TRUE(f.ok()) << f.status().ToString();
      ASSERT_TRUE(*g && *f);
      json a = json::parse(general), b = json::parse(spliced);
      EXPECT_EQ(b, a) << spliced;
      // Compact: no whitespace outside strings (the payloads' strings hold none but "x y").
      std::string outside = spliced;
      for (size_t at; (at = outside.find("x y")) != std::string::npos;) outside.erase(at, 3);
      EXPECT_EQ(outside.find_first_of(" \t\n\r"), std::string::npos) << spliced;
      if (b.is_object()) {
        std::vector<std::string> keys = TopKeys(spliced);
        EXPECT_EQ(keys.size(), b.size()) << spliced;  // no key twice
      }
      if (!run.spliced) {
        EXPECT_EQ(spliced, general);
      }
    }
  }
  // The splice keeps the payload's own text: its member order and number forms.
  auto q = RuleQuery::Compile("SELECT *, topic(2) AS device, timestamp() AS ts FROM 'a/+'");
  ASSERT_TRUE(q.ok());
  std::string payload = R"({"device":"old","seq":12,"temperature":21.50, "n": 1E2, "s": " a "})";
  ASSERT_TRUE(parsed.Parse(payload));
  MessageContext msg;
  msg.topic = "a/dev-7";
  msg.timestamp_ms = 1700000000123;
  msg.payload = payload;
  msg.parsed = &parsed;
  std::string out;
  ASSERT_TRUE(*(*q)->EvaluateText(msg, &out));
  EXPECT_EQ(out, R"({"seq":12,"temperature":21.50,"n":1E2,"s":" a ","device":"dev-7","ts":1700000000123})");
  // The alias of a repeated name, or `*` after an item, is the general path's.
  for (const char* sql : {"SELECT *, seq AS x, temperature AS x FROM 'a/+'", "SELECT seq AS n, * FROM 'a/+'",
                          "SELECT *, * FROM 'a/+'"}) {
    SCOPED_TRACE(sql);
    auto q2 = RuleQuery::Compile(sql);
    ASSERT_TRUE(q2.ok()) << q2.status().ToString();
    std::string general, fast;
    ASSERT_TRUE(*(*q2)->EvaluateText(msg, &general, false));
    ASSERT_TRUE(*(*q2)->EvaluateText(msg, &fast));
    EXPECT_EQ(fast, general);
  }
  // A payload that is not JSON: the same error either way.
  std::string bad = "not json";
  EXPECT_FALSE(parsed.Parse(bad));
  msg.payload = bad;
  std::string t1, t2;
  auto e1 = (*q)->EvaluateText(msg, &t1, false), e2 = (*q)->EvaluateText(msg, &t2);
  ASSERT_FALSE(e1.ok());
  ASSERT_FALSE(e2.ok());
  EXPECT_EQ(e2.status().message(), e1.status().message());
}

// A payload with simdjson's padding readable after it is parsed in place: the same answers,
// whatever the size (ASan checks nothing is read beyond the allocation).
TEST(RulePayload, ParsedInPlaceWithPadding) {
  ParsedPayload parsed;
  auto q = RuleQuery::Compile("SELECT *, topic(2) AS device FROM 'a/+'");
  ASSERT_TRUE(q.ok());
  for (size_t n = 0; n < 300; n += 7) {
    std::string payload = "{\"s\":\"" + std::string(n, 'x') + "\",\"v\":" + std::to_string(n) + "}";
    std::string padded;
    padded.reserve(payload.size() + ParsedPayload::kPadding);
    padded.append(payload);
    ASSERT_TRUE(parsed.Parse(padded, padded.capacity() - padded.size()));
    MessageContext msg;
    msg.topic = "a/d";
    msg.payload = padded;
    msg.parsed = &parsed;
    std::string out;
    ASSERT_TRUE(*(*q)->EvaluateText(msg, &out));
    EXPECT_EQ(json::parse(out), json::parse(payload.substr(0, payload.size() - 1) + ",\"device\":\"d\"}"));
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
