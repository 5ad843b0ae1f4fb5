// IAM policy documents (JSON, Version 2012-10-17) compiled once into a form that evaluates
// without allocation in the common case, and the evaluation rules of
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html:
// an explicit Deny in any statement wins, otherwise any Allow, otherwise implicit deny.
//
// Supported: Effect, Action/NotAction (case-insensitive, `*`/`?`), Resource/NotResource
// (case-sensitive, `*`/`?`, policy variables such as ${aws:username}), Principal/NotPrincipal
// ("*", {"AWS": …}) for resource-based policies, and Condition operators String*, Numeric*,
// Date*, Bool, IpAddress/NotIpAddress, Arn*, Null, each with …IfExists and the
// ForAnyValue:/ForAllValues: set prefixes.
//
// Thread-safety: a compiled Policy is immutable and may be shared between threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/identity.h"
#include "core/status.h"

namespace tarn::security::iam {

// A `*`/`?` wildcard pattern, optionally containing policy variables, classified at compile
// time so that evaluation takes the cheapest test that decides it.
struct Pattern {
  enum class Kind : uint8_t {
    kAny,        // exactly "*"
    kLiteral,    // no wildcard, no variable: plain comparison
    kPrefix,     // a literal followed by one trailing "*" ("s3:get*", "arn:aws:s3:::b/*")
    kWildcard,   // other `*`/`?` patterns
    kVariables,  // contains ${…}: substituted per request
  };
  std::string text;
  Kind kind = Kind::kLiteral;
  uint32_t literal_prefix = 0;  // leading bytes with no wildcard and no variable

  bool has_vars() const { return kind == Kind::kVariables; }
};

// An IpAddress / NotIpAddress value, parsed once.
struct Cidr {
  bool valid = false;
  bool v6 = false;
  int bits = 0;
  unsigned char addr[16] = {};
};

enum class ConditionOp {
  kStringEquals, kStringNotEquals, kStringEqualsIgnoreCase, kStringNotEqualsIgnoreCase,
  kStringLike, kStringNotLike,
  kNumericEquals, kNumericNotEquals, kNumericLessThan, kNumericLessThanEquals,
  kNumericGreaterThan, kNumericGreaterThanEquals,
  kDateEquals, kDateNotEquals, kDateLessThan, kDateLessThanEquals, kDateGreaterThan,
  kDateGreaterThanEquals,
  kBool, kIpAddress, kNotIpAddress, kArnEquals, kArnLike, kArnNotEquals, kArnNotLike, kNull,
};

struct Condition {
  ConditionOp op;
  bool if_exists = false;
  enum class Set { kSingle, kForAnyValue, kForAllValues } set = Set::kSingle;
  std::string key;  // as written; matched case-insensitively
  std::vector<Pattern> values;
  // Pre-parsed forms of `values` (same order) for the operators that need them.
  std::vector<Cidr> cidrs;                      // IpAddress, NotIpAddress
  std::vector<std::optional<double>> numbers;   // Numeric*, Date* (values without variables)
};

// A Principal entry of a resource-based policy, classified once.
struct Principal {
  enum class Kind : uint8_t { kAnyone, kAccount, kArn, kWildcard };
  Kind kind = Kind::kArn;
  std::string text;     // as written
  std::string account;  // kAccount: the account id; kArn of a role: its account
  std::string role;     // an IAM role ARN: the role's name (its sessions match too)
};

struct PolicyStatement {
  std::string sid;
  bool deny = false;
  bool not_action = false;
  std::vector<Pattern> actions;  // lower-cased
  bool has_resource = false;
  bool not_resource = false;
  std::vector<Pattern> resources;
  bool has_principal = false;
  bool not_principal = false;
  std::vector<Principal> principals;  // {"AWS": …} entries and "*"
  bool principal_other = false;       // Service/Federated principals (never match)
  std::vector<Condition> conditions;
};

class Policy {
 public:
  // Parses a policy document. `name` identifies it in decisions ("user/alice inline:Read").
  // `resource_policy` requires a Principal in every statement (bucket/trust policies).
  static Result<Policy> Parse(std::string_view json, std::string name, bool resource_policy = false);

  const std::string& name() const { return name_; }
  const std::vector<PolicyStatement>& statements() const { return statements_; }

 private:
  std::string name_;
  std::vector<PolicyStatement> statements_;
};

// What a policy is asked.
struct EvalRequest {
  const Identity* identity = nullptr;
  std::string_view action;    // "s3:GetObject"
  std::string_view resource;  // ARN
  const std::map<std::string, std::vector<std::string>>* context = nullptr;
  int64_t now_seconds = 0;    // aws:CurrentTime / aws:EpochTime
};

struct EvalResult {
  bool allow = false;
  bool deny = false;
  // The deciding policy and statement (valid while the policy lives).
  const Policy* policy = nullptr;
  size_t statement = 0;
  // Set when an Allow matched only because the Principal named the caller's account (not
  // the caller itself): AWS then still requires an identity-policy Allow.
  bool allow_via_account_principal = false;

  // "<policy name> statement <Sid or index>", or empty when nothing matched.
  std::string Reason() const;
};

// Evaluates every statement of `policy` and merges into `*result` (a Deny sticks).
// `check_principal`: the policy is resource-based and its Principal must name the caller.
void Evaluate(const Policy& policy, const EvalRequest& request, bool check_principal, EvalResult* result);

// Wildcard match: `*` any run, `?` one character.
bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case);

}  // namespace tarn::security::iam
