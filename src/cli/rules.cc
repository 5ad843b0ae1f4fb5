// tarn rules test: a rule dry-run with no server. Compiles the SQL exactly as CreateTopicRule
// would, evaluates it against one message and prints the document the rule would emit (or
// "filtered" when WHERE drops it, or the error with its position).
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "core/clock.h"
#include "gateway/rules/sql.h"

namespace tarn::cli {

int RunRules(const std::vector<std::string>& args) {
  CLI::App app("Rules engine tools.", "tarn rules");
  app.require_subcommand(1);
  auto* test = app.add_subcommand("test", "dry-run a rule: SQL + topic + sample payload -> output document");
  std::string sql, topic, payload = "{}", client_id = "tarn-cli", principal;
  test->add_option("--sql", sql, "the rule's SQL (AWS IoT SQL 2016-03-23)")->required();
  test->add_option("--topic", topic, "the topic the sample message was published to")->required();
  test->add_option("--payload", payload, "the sample payload (JSON, or any bytes)");
  test->add_option("--client-id", client_id, "value of clientid()");
  test->add_option("--principal", principal, "value of principal()");
  std::vector<std::string> argv(args.rbegin(), args.rend());
  argv.pop_back();  // "tarn rules"
  try {
    app.parse(argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto q = gateway::rules::RuleQuery::Compile(sql);
  if (!q.ok()) {
    std::fprintf(stderr, "tarn rules test: %s\n", q.status().ToString().c_str());
    return 1;
  }
  if (!gateway::rules::TopicMatches((*q)->topic_filter(), topic)) {
    std::fprintf(stderr, "tarn rules test: topic '%s' does not match the rule's filter '%s'\n",
                 topic.c_str(), (*q)->topic_filter().c_str());
    return 1;
  }
  nlohmann::json doc;
  bool is_json = gateway::rules::ParsePayload(payload, &doc);
  gateway::rules::MessageContext msg;
  msg.topic = topic;
  msg.client_id = client_id;
  msg.principal = principal;
  msg.timestamp_ms = Clock::Real()->NowMillis();
  msg.payload = payload;
  msg.json = is_json ? &doc : nullptr;
  auto out = (*q)->Evaluate(msg);
  if (!out.ok()) {
    std::fprintf(stderr, "tarn rules test: %s\n", out.status().ToString().c_str());
    return 1;
  }
  if (!out->has_value()) {
    std::printf("filtered: the WHERE clause is not true for this message\n");
    return 0;
  }
  std::printf("%s\n", (*out)->dump().c_str());
  return 0;
}

}  // namespace tarn::cli
