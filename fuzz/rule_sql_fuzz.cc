// libFuzzer target for the rule-SQL parser and the JSON path evaluator: any input either
// compiles or fails with a positioned error; a compiled query is evaluated against a payload
// taken from the same input, and neither step may crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/strings.h"
#include "gateway/rules/sql.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tarn::gateway::rules::MessageContext;
  using tarn::gateway::rules::RuleQuery;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Input layout: "<sql>\0<payload>"; without a NUL the payload is "{}".
  size_t nul = in.find('\0');
  std::string_view sql = in.substr(0, nul);
  std::string_view payload = nul == std::string_view::npos ? "{}" : in.substr(nul + 1);
  auto q = RuleQuery::Compile(sql);
  (void)tarn::gateway::rules::Template::Compile(sql);
  if (!q.ok()) return 0;
  nlohmann::json doc;
  bool is_json = tarn::gateway::rules::ParsePayload(payload, &doc);
  MessageContext msg;
  msg.topic = "fuzz/a/b";
  msg.client_id = "c";
  msg.payload = payload;
  msg.json = is_json ? &doc : nullptr;
  auto out = (*q)->Evaluate(msg);
  // Valid UTF-8 in (the SQL always is, once compiled) must give valid UTF-8 out: the strict
  // dump throws otherwise. A binary payload may carry any bytes into the output.
  std::string dumped;
  if (out.ok() && out->has_value()) {
    dumped = (*out)->dump(-1, ' ', false,
                          tarn::IsValidUtf8(payload) ? nlohmann::json::error_handler_t::strict
                                                     : nlohmann::json::error_handler_t::replace);
  }
  // The engine's path (simdjson document, JSON text written directly) must agree with the
  // document path wherever the document path succeeds on valid UTF-8.
  tarn::gateway::rules::ParsedPayload parsed;
  parsed.Parse(payload);
  msg.parsed = &parsed;
  msg.json = nullptr;
  std::string text;
  auto emitted = (*q)->EvaluateText(msg, &text);
  if (out.ok() && emitted.ok() && tarn::IsValidUtf8(payload)) {
    if (out->has_value() != *emitted) std::abort();
    if (*emitted && text != dumped) std::abort();
  }
  return 0;
}
