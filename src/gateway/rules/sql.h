// AWS IoT SQL (version 2016-03-23): a rule's query compiled once into an evaluable tree.
//
//   SELECT <expr [AS alias] | *>, … | SELECT VALUE <expr>
//   FROM '<topic filter>'
//   [WHERE <expr>]
//
// Values follow the AWS IoT data types (Int, Decimal, Boolean, String, Array, Object, Null and
// Undefined): an attribute the payload does not have is Undefined, and an Undefined projection
// is omitted from the output document rather than written as null, as AWS IoT does
// (developerguide/iot-sql-data-types). Whole numbers are Ints (the SQL V2 rule).
//
// Thread-safety: a compiled RuleQuery / Template is immutable; Evaluate() may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tarn::gateway::rules {

// A message's payload parsed once (simdjson) and shared by every rule the message matches. The
// evaluator reads attributes straight from simdjson's document: a value becomes an nlohmann json
// only where an operator or function needs one (a scalar: no allocation), and a rule's output is
// written as JSON text directly, so a rule that projects attributes builds no document. What
// simdjson refuses (numbers beyond 64 bits, depth beyond 1024) is parsed by nlohmann instead,
// whose answer stands. Reusable (its buffers are kept); not thread-safe.
class ParsedPayload {
 public:
  ParsedPayload();
  ~ParsedPayload();
  ParsedPayload(const ParsedPayload&) = delete;
  ParsedPayload& operator=(const ParsedPayload&) = delete;
  // False when `payload` is not a JSON document. `payload` must outlive the use of this parse.
  // `readable_after`: bytes that may be read past the payload's end (a std::string's capacity -
  // size); with at least kPadding, simdjson parses the payload where it is, without a copy.
  bool Parse(std::string_view payload, size_t readable_after = 0);
  // simdjson's SIMDJSON_PADDING.
  static constexpr size_t kPadding = 64;
  bool is_json() const;

  struct Impl;  // sql.cc
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// The message a rule is evaluated against. The payload is `parsed` (preferred: the engine's path)
// or `json` (an nlohmann document); neither set, or `parsed` not JSON, when it is not JSON.
struct MessageContext {
  std::string_view topic;
  std::string_view client_id;
  std::string_view principal;
  int64_t timestamp_ms = 0;
  std::string_view payload;
  const nlohmann::json* json = nullptr;
  const ParsedPayload* parsed = nullptr;
};

// Parses `payload` into `out`; false when it is not a JSON document.
bool ParsePayload(std::string_view payload, nlohmann::json* out);

// MQTT topic filter matching (MQTT 3.1.1 §4.7): `+` one level, `#` the rest (and the parent).
bool TopicMatches(std::string_view filter, std::string_view topic);
// Checks a topic filter's syntax; the error says what is wrong.
Status ValidateTopicFilter(std::string_view filter);

class Expr;  // sql.cc

class RuleQuery {
 public:
  // Compiles `sql`. A syntax error is kIotInvalidRequest whose message gives the 1-based
  // line:column of the offending token.
  static Result<std::shared_ptr<const RuleQuery>> Compile(std::string_view sql);
  ~RuleQuery();

  const std::string& sql() const { return sql_; }
  const std::string& topic_filter() const { return topic_filter_; }

  // The document the rule emits for `msg`, or nullopt when the WHERE clause is not true.
  // An error (payload not JSON while the query reads attributes, …) goes to the error action.
  Result<std::optional<nlohmann::json>> Evaluate(const MessageContext& msg) const;
  // The same, written as JSON text into `*out` (replacing it): true when the rule emits, false
  // when WHERE drops the message. The text is what Evaluate()'s document dumps to (keys in
  // nlohmann's order, numbers and escapes as nlohmann writes them), without building it —
  // except, with `splice`, for `SELECT *, <expr> AS <name>, …` over a JSON object payload
  // (`parsed`, one line, no repeated key): then the payload's members are copied as its text
  // has them, in its order, less those the query's members replace, and the query's members
  // follow. Both texts are the same document.
  Result<bool> EvaluateText(const MessageContext& msg, std::string* out, bool splice = true) const;

  struct Item {
    std::shared_ptr<Expr> expr;  // null for `*`
    std::string name;            // output key
  };

 private:
  RuleQuery() = default;
  friend class Parser;
  std::string sql_;
  std::string topic_filter_;
  std::vector<Item> items_;
  bool select_value_ = false;
  bool splice_star_ = false;  // `SELECT *, <expr> AS <name>, …` with distinct names (EvaluateText)
  std::shared_ptr<Expr> where_;
};

// An action parameter with substitution templates, "iot/${topic(2)}/${timestamp()}.json"
// (developerguide/iot-substitution-templates): each ${…} is an expression evaluated against the
// incoming message; Undefined expands to the empty string.
class Template {
 public:
  static Result<Template> Compile(std::string_view text);
  std::string Expand(const MessageContext& msg) const;
  bool has_expressions() const { return parts_.size() > 1 || (parts_.size() == 1 && parts_[0].expr); }

 private:
  struct Part {
    std::string literal;
    std::shared_ptr<Expr> expr;
  };
  std::vector<Part> parts_;
};

}  // namespace tarn::gateway::rules
