#include "security/iam/policy.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/strings.h"

namespace tarn::security::iam {

namespace {

using json = nlohmann::json;

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

Pattern MakePattern(std::string text, bool lower) {
  Pattern p;
  if (lower) text = ToLower(text);
  p.has_vars = text.find("${") != std::string::npos;
  p.any = text == "*";
  p.literal = !p.has_vars && text.find_first_of("*?") == std::string::npos;
  p.text = std::move(text);
  return p;
}

Status Malformed(const std::string& msg) { return Error(ErrorCode::kMalformedPolicyDocument, msg); }

// A JSON value that may be a string or an array of strings.
Result<std::vector<std::string>> StringList(const json& v, const char* what) {
  std::vector<std::string> out;
  auto scalar = [&](const json& e) -> Status {
    if (e.is_string()) out.push_back(e.get<std::string>());
    else if (e.is_boolean()) out.push_back(e.get<bool>() ? "true" : "false");
    else if (e.is_number()) out.push_back(e.dump());
    else return Malformed(std::string(what) + " must be a string or a list of strings");
    return Status::OK();
  };
  if (v.is_array()) {
    for (const json& e : v) RETURN_IF_ERROR(scalar(e));
  } else {
    RETURN_IF_ERROR(scalar(v));
  }
  return out;
}

struct OpName {
  const char* name;
  ConditionOp op;
};
constexpr OpName kOps[] = {
    {"StringEquals", ConditionOp::kStringEquals},
    {"StringNotEquals", ConditionOp::kStringNotEquals},
    {"StringEqualsIgnoreCase", ConditionOp::kStringEqualsIgnoreCase},
    {"StringNotEqualsIgnoreCase", ConditionOp::kStringNotEqualsIgnoreCase},
    {"StringLike", ConditionOp::kStringLike},
    {"StringNotLike", ConditionOp::kStringNotLike},
    {"NumericEquals", ConditionOp::kNumericEquals},
    {"NumericNotEquals", ConditionOp::kNumericNotEquals},
    {"NumericLessThan", ConditionOp::kNumericLessThan},
    {"NumericLessThanEquals", ConditionOp::kNumericLessThanEquals},
    {"NumericGreaterThan", ConditionOp::kNumericGreaterThan},
    {"NumericGreaterThanEquals", ConditionOp::kNumericGreaterThanEquals},
    {"DateEquals", ConditionOp::kDateEquals},
    {"DateNotEquals", ConditionOp::kDateNotEquals},
    {"DateLessThan", ConditionOp::kDateLessThan},
    {"DateLessThanEquals", ConditionOp::kDateLessThanEquals},
    {"DateGreaterThan", ConditionOp::kDateGreaterThan},
    {"DateGreaterThanEquals", ConditionOp::kDateGreaterThanEquals},
    {"Bool", ConditionOp::kBool},
    {"IpAddress", ConditionOp::kIpAddress},
    {"NotIpAddress", ConditionOp::kNotIpAddress},
    {"ArnEquals", ConditionOp::kArnEquals},
    {"ArnLike", ConditionOp::kArnLike},
    {"ArnNotEquals", ConditionOp::kArnNotEquals},
    {"ArnNotLike", ConditionOp::kArnNotLike},
    {"Null", ConditionOp::kNull},
};

bool Negated(ConditionOp op) {
  switch (op) {
    case ConditionOp::kStringNotEquals:
    case ConditionOp::kStringNotEqualsIgnoreCase:
    case ConditionOp::kStringNotLike:
    case ConditionOp::kNumericNotEquals:
    case ConditionOp::kDateNotEquals:
    case ConditionOp::kNotIpAddress:
    case ConditionOp::kArnNotEquals:
    case ConditionOp::kArnNotLike:
      return true;
    default:
      return false;
  }
}

Status ParseConditions(const json& c, PolicyStatement* st) {
  if (!c.is_object()) return Malformed("Condition must be an object");
  for (auto it = c.begin(); it != c.end(); ++it) {
    std::string name = it.key();
    Condition cond;
    if (StartsWith(name, "ForAnyValue:")) {
      cond.set = Condition::Set::kForAnyValue;
      name = name.substr(12);
    } else if (StartsWith(name, "ForAllValues:")) {
      cond.set = Condition::Set::kForAllValues;
      name = name.substr(13);
    }
    if (EndsWith(name, "IfExists")) {
      cond.if_exists = true;
      name = name.substr(0, name.size() - 8);
    }
    bool found = false;
    for (const OpName& o : kOps) {
      if (name == o.name) {
        cond.op = o.op;
        found = true;
      }
    }
    if (!found) return Malformed("Unsupported condition operator " + it.key());
    if (!it.value().is_object()) return Malformed("Condition " + it.key() + " must map keys to values");
    for (auto kv = it.value().begin(); kv != it.value().end(); ++kv) {
      Condition one = cond;
      one.key = kv.key();
      ASSIGN_OR_RETURN(std::vector<std::string> values, StringList(kv.value(), "Condition value"));
      bool lower = one.op == ConditionOp::kStringEqualsIgnoreCase ||
                   one.op == ConditionOp::kStringNotEqualsIgnoreCase;
      for (std::string& v : values) one.values.push_back(MakePattern(std::move(v), lower));
      st->conditions.push_back(std::move(one));
    }
  }
  return Status::OK();
}

Result<PolicyStatement> ParseStatement(const json& s, bool resource_policy) {
  if (!s.is_object()) return Malformed("Statement must be an object");
  PolicyStatement st;
  if (s.contains("Sid") && s["Sid"].is_string()) st.sid = s["Sid"].get<std::string>();
  if (!s.contains("Effect") || !s["Effect"].is_string()) return Malformed("Statement is missing Effect");
  std::string effect = s["Effect"].get<std::string>();
  if (effect == "Deny") st.deny = true;
  else if (effect != "Allow") return Malformed("Effect must be Allow or Deny");

  const char* action_key = s.contains("Action") ? "Action" : s.contains("NotAction") ? "NotAction" : nullptr;
  if (!action_key) return Malformed("Statement is missing Action or NotAction");
  st.not_action = std::strcmp(action_key, "NotAction") == 0;
  ASSIGN_OR_RETURN(std::vector<std::string> actions, StringList(s[action_key], action_key));
  for (std::string& a : actions) {
    if (a != "*" && a.find(':') == std::string::npos) {
      return Malformed("Action " + a + " must be of the form service:Action");
    }
    st.actions.push_back(MakePattern(std::move(a), true));
  }

  const char* res_key = s.contains("Resource") ? "Resource" : s.contains("NotResource") ? "NotResource" : nullptr;
  if (res_key) {
    st.has_resource = true;
    st.not_resource = std::strcmp(res_key, "NotResource") == 0;
    ASSIGN_OR_RETURN(std::vector<std::string> res, StringList(s[res_key], res_key));
    for (std::string& r : res) st.resources.push_back(MakePattern(std::move(r), false));
  } else if (!resource_policy) {
    return Malformed("Statement is missing Resource or NotResource");
  }

  const char* pr_key = s.contains("Principal") ? "Principal" : s.contains("NotPrincipal") ? "NotPrincipal" : nullptr;
  if (pr_key) {
    if (!resource_policy) return Malformed("Identity-based policies must not have a Principal");
    st.has_principal = true;
    st.not_principal = std::strcmp(pr_key, "NotPrincipal") == 0;
    const json& p = s[pr_key];
    if (p.is_string()) {
      if (p.get<std::string>() != "*") return Malformed("Principal must be \"*\" or an object");
      st.principals.push_back("*");
    } else if (p.is_object()) {
      for (auto it = p.begin(); it != p.end(); ++it) {
        if (it.key() == "AWS") {
          ASSIGN_OR_RETURN(std::vector<std::string> arns, StringList(it.value(), "Principal"));
          for (std::string& a : arns) st.principals.push_back(std::move(a));
        } else {
          st.principal_other = true;  // Service / Federated / CanonicalUser
        }
      }
    } else {
      return Malformed("Principal must be \"*\" or an object");
    }
  } else if (resource_policy) {
    return Malformed("Statement is missing Principal");
  }

  if (s.contains("Condition")) RETURN_IF_ERROR(ParseConditions(s["Condition"], &st));
  return st;
}

// --- evaluation ---------------------------------------------------------------------------

// Values of a condition key: the request context first, then keys derived from the caller.
// Returns false when the key is absent. `scratch` holds derived values.
bool LookupKey(const EvalRequest& r, std::string_view key, std::vector<std::string_view>* out,
               std::string* scratch) {
  out->clear();
  if (r.context) {
    for (const auto& [k, vs] : *r.context) {
      if (EqualsIgnoreCase(k, key)) {
        for (const std::string& v : vs) out->push_back(v);
        return true;
      }
    }
  }
  const Identity* id = r.identity;
  auto one = [&](std::string_view v) {
    out->push_back(v);
    return true;
  };
  if (EqualsIgnoreCase(key, "aws:CurrentTime")) {
    *scratch = FormatIso8601(r.now_seconds);
    return one(*scratch);
  }
  if (EqualsIgnoreCase(key, "aws:EpochTime")) {
    *scratch = std::to_string(r.now_seconds);
    return one(*scratch);
  }
  if (!id || id->anonymous()) return false;
  if (EqualsIgnoreCase(key, "aws:username")) {
    if (id->type != Identity::Type::kUser || id->user_name.empty()) return false;
    return one(id->user_name);
  }
  if (EqualsIgnoreCase(key, "aws:userid")) return !id->principal_id.empty() && one(id->principal_id);
  if (EqualsIgnoreCase(key, "aws:PrincipalArn")) return one(id->arn);
  if (EqualsIgnoreCase(key, "aws:PrincipalAccount")) return one(id->account_id);
  if (EqualsIgnoreCase(key, "aws:PrincipalType")) return one(id->TypeName());
  return false;
}

// Substitutes ${key} (and the escapes ${*} ${?} ${$}); false when a variable is unresolved.
// Substituted values are escaped so that a '*' in a user name cannot widen the pattern.
bool Substitute(const EvalRequest& r, const std::string& in, std::string* out) {
  out->clear();
  // Reused per thread: evaluation stays allocation-free once warm.
  thread_local std::vector<std::string_view> vals;
  thread_local std::string scratch;
  for (size_t i = 0; i < in.size();) {
    if (in[i] == '$' && i + 1 < in.size() && in[i + 1] == '{') {
      size_t end = in.find('}', i + 2);
      if (end == std::string::npos) {
        out->append(in, i, std::string::npos);
        break;
      }
      std::string_view var(in.data() + i + 2, end - i - 2);
      if (var == "*" || var == "?" || var == "$") {
        out->push_back('\x01');  // literal marker for the matcher
        out->push_back(var[0]);
      } else {
        if (!LookupKey(r, var, &vals, &scratch) || vals.size() != 1) return false;
        for (char c : vals[0]) {
          if (c == '*' || c == '?') out->push_back('\x01');
          out->push_back(c);
        }
      }
      i = end + 1;
      continue;
    }
    out->push_back(in[i++]);
  }
  return true;
}

bool MatchPattern(const EvalRequest& r, const Pattern& p, std::string_view text, bool ignore_case) {
  if (p.any) return true;
  if (p.literal) {
    return ignore_case ? EqualsIgnoreCase(p.text, text) : p.text == text;
  }
  if (!p.has_vars) return WildcardMatch(p.text, text, ignore_case);
  // The literal prefix before the first variable or wildcard must match as is: most
  // statements fail here without substituting anything.
  size_t lit = p.text.find_first_of("$*?");
  for (size_t i = 0; i < lit && i < p.text.size(); ++i) {
    if (i >= text.size()) return false;
    char a = p.text[i], b = text[i];
    if (a != b && !(ignore_case && Lower(a) == Lower(b))) return false;
  }
  thread_local std::string buf;
  if (!Substitute(r, p.text, &buf)) return false;
  return WildcardMatch(buf, text, ignore_case);
}

std::optional<double> ToNumber(std::string_view s) {
  std::string t(s);
  char* end = nullptr;
  double d = std::strtod(t.c_str(), &end);
  if (t.empty() || !end || *end) return std::nullopt;
  return d;
}

std::optional<double> ToDate(std::string_view s) {
  if (auto n = ToNumber(s)) return n;
  int64_t t = ParseIso8601(std::string(s));
  if (t < 0) return std::nullopt;
  return double(t);
}

bool IpInCidr(std::string_view ip_text, std::string_view cidr_text) {
  std::string cidr(cidr_text), ip(ip_text);
  int bits = -1;
  size_t slash = cidr.find('/');
  if (slash != std::string::npos) {
    auto b = ParseInt64(std::string_view(cidr).substr(slash + 1));
    if (!b) return false;
    bits = int(*b);
    cidr.resize(slash);
  }
  unsigned char a[16], n[16];
  int len = 0;
  if (inet_pton(AF_INET, cidr.c_str(), n) == 1) {
    len = 4;
    if (inet_pton(AF_INET, ip.c_str(), a) != 1) {
      // IPv4-mapped IPv6 ("::ffff:1.2.3.4")
      unsigned char a6[16];
      if (inet_pton(AF_INET6, ip.c_str(), a6) != 1) return false;
      static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (std::memcmp(a6, kMapped, 12) != 0) return false;
      std::memcpy(a, a6 + 12, 4);
    }
  } else if (inet_pton(AF_INET6, cidr.c_str(), n) == 1) {
    len = 16;
    if (inet_pton(AF_INET6, ip.c_str(), a) != 1) return false;
  } else {
    return false;
  }
  if (bits < 0 || bits > len * 8) bits = len * 8;
  for (int i = 0; i < bits; ++i) {
    int byte = i / 8, bit = 7 - i % 8;
    if (((a[byte] >> bit) & 1) != ((n[byte] >> bit) & 1)) return false;
  }
  return true;
}

// One context value against one policy value (positive form of the operator).
bool MatchValue(const EvalRequest& r, ConditionOp op, std::string_view v, const Pattern& p) {
  switch (op) {
    case ConditionOp::kStringEquals:
    case ConditionOp::kStringNotEquals:
    case ConditionOp::kArnEquals:
    case ConditionOp::kArnNotEquals: {
      if (!p.has_vars) return p.text == v;
      thread_local std::string buf;
      if (!Substitute(r, p.text, &buf)) return false;
      std::string plain;
      for (char c : buf) {
        if (c != '\x01') plain += c;
      }
      return plain == v;
    }
    case ConditionOp::kStringEqualsIgnoreCase:
    case ConditionOp::kStringNotEqualsIgnoreCase:
      return EqualsIgnoreCase(p.text, v);
    case ConditionOp::kStringLike:
    case ConditionOp::kStringNotLike:
    case ConditionOp::kArnLike:
    case ConditionOp::kArnNotLike:
      return MatchPattern(r, p, v, false);
    case ConditionOp::kNumericEquals:
    case ConditionOp::kNumericNotEquals:
    case ConditionOp::kNumericLessThan:
    case ConditionOp::kNumericLessThanEquals:
    case ConditionOp::kNumericGreaterThan:
    case ConditionOp::kNumericGreaterThanEquals:
    case ConditionOp::kDateEquals:
    case ConditionOp::kDateNotEquals:
    case ConditionOp::kDateLessThan:
    case ConditionOp::kDateLessThanEquals:
    case ConditionOp::kDateGreaterThan:
    case ConditionOp::kDateGreaterThanEquals: {
      bool date = op >= ConditionOp::kDateEquals;
      auto a = date ? ToDate(v) : ToNumber(v);
      auto b = date ? ToDate(p.text) : ToNumber(p.text);
      if (!a || !b) return false;
      switch (op) {
        case ConditionOp::kNumericEquals: case ConditionOp::kNumericNotEquals:
        case ConditionOp::kDateEquals: case ConditionOp::kDateNotEquals: return *a == *b;
        case ConditionOp::kNumericLessThan: case ConditionOp::kDateLessThan: return *a < *b;
        case ConditionOp::kNumericLessThanEquals: case ConditionOp::kDateLessThanEquals: return *a <= *b;
        case ConditionOp::kNumericGreaterThan: case ConditionOp::kDateGreaterThan: return *a > *b;
        default: return *a >= *b;
      }
    }
    case ConditionOp::kBool:
      return EqualsIgnoreCase(p.text, v);
    case ConditionOp::kIpAddress:
    case ConditionOp::kNotIpAddress:
      return IpInCidr(v, p.text);
    case ConditionOp::kNull:
      return false;  // handled by the caller
  }
  return false;
}

bool ConditionHolds(const EvalRequest& r, const Condition& c) {
  thread_local std::vector<std::string_view> vals;
  thread_local std::string scratch;
  bool present = LookupKey(r, c.key, &vals, &scratch) && !vals.empty();
  if (c.op == ConditionOp::kNull) {
    // "Null": "true" holds when the key is absent.
    bool want_absent = !c.values.empty() && EqualsIgnoreCase(c.values[0].text, "true");
    return want_absent == !present;
  }
  if (!present) {
    if (c.if_exists) return true;
    // ForAllValues over an empty set is vacuously true; negated operators hold too.
    if (c.set == Condition::Set::kForAllValues) return true;
    return Negated(c.op);
  }
  auto any_policy_value = [&](std::string_view v) {
    for (const Pattern& p : c.values) {
      if (MatchValue(r, c.op, v, p)) return true;
    }
    return false;
  };
  bool neg = Negated(c.op);
  if (c.set == Condition::Set::kForAllValues) {
    for (std::string_view v : vals) {
      if (any_policy_value(v) == neg) return false;
    }
    return true;
  }
  bool any = false;
  for (std::string_view v : vals) {
    if (any_policy_value(v)) {
      any = true;
      break;
    }
  }
  return neg ? !any : any;
}

// Does the statement's Principal name the caller? `*via_account` when only the account matched.
bool PrincipalMatches(const PolicyStatement& st, const Identity* id, bool* via_account) {
  *via_account = false;
  bool matched = false;
  for (const std::string& p : st.principals) {
    if (p == "*") {
      matched = true;
      break;
    }
    if (!id || id->anonymous()) continue;
    if (p == id->arn) {
      matched = true;
      break;
    }
    // An account: "123456789012" or "arn:aws:iam::123456789012:root".
    if (p == id->account_id || p == "arn:aws:iam::" + id->account_id + ":root") {
      matched = true;
      *via_account = id->type != Identity::Type::kRoot;
      break;
    }
    // A role names all of its sessions: arn:aws:iam::A:role/R ~ arn:aws:sts::A:assumed-role/R/s.
    if (id->type == Identity::Type::kAssumedRole) {
      std::string prefix = "arn:aws:sts::" + id->account_id + ":assumed-role/";
      size_t slash = p.rfind('/');
      if (StartsWith(p, "arn:aws:iam::" + id->account_id + ":role/") && slash != std::string::npos &&
          StartsWith(id->arn, prefix + p.substr(slash + 1) + "/")) {
        matched = true;
        break;
      }
    }
    if (p.find_first_of("*?") != std::string::npos && WildcardMatch(p, id->arn, false)) {
      matched = true;
      break;
    }
  }
  if (st.not_principal) {
    *via_account = false;
    return !matched;
  }
  return matched;
}

}  // namespace

bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case) {
  // Iterative glob with single-star backtracking: O(n·m) worst case, no allocation.
  // A '\x01' marks the next pattern character as literal (escaped policy-variable values).
  size_t p = 0, t = 0, star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      bool escaped = false;
      if (pc == '\x01' && p + 1 < pattern.size()) {
        escaped = true;
        pc = pattern[p + 1];
      }
      if (!escaped && pc == '*') {
        star_p = p++;
        star_t = t;
        continue;
      }
      char tc = text[t];
      if ((!escaped && pc == '?') || pc == tc || (ignore_case && Lower(pc) == Lower(tc))) {
        p += escaped ? 2 : 1;
        ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Result<Policy> Policy::Parse(std::string_view text, std::string name, bool resource_policy) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Malformed("Syntax errors in policy.");
  if (doc.contains("Version")) {
    if (!doc["Version"].is_string() ||
        (doc["Version"] != "2012-10-17" && doc["Version"] != "2008-10-17")) {
      return Malformed("The policy Version must be 2012-10-17 or 2008-10-17");
    }
  }
  if (!doc.contains("Statement")) return Malformed("Policy is missing Statement");
  Policy p;
  p.name_ = std::move(name);
  const json& st = doc["Statement"];
  if (st.is_array()) {
    for (const json& s : st) {
      ASSIGN_OR_RETURN(PolicyStatement one, ParseStatement(s, resource_policy));
      p.statements_.push_back(std::move(one));
    }
  } else {
    ASSIGN_OR_RETURN(PolicyStatement one, ParseStatement(st, resource_policy));
    p.statements_.push_back(std::move(one));
  }
  return p;
}

void Evaluate(const Policy& policy, const EvalRequest& r, bool check_principal, EvalResult* result) {
  const auto& sts = policy.statements();
  for (size_t i = 0; i < sts.size(); ++i) {
    const PolicyStatement& st = sts[i];
    // A Deny after a Deny changes nothing; an Allow after an Allow only matters for the
    // account-principal flag.
    if (result->deny) return;
    if (!st.deny && result->allow && !result->allow_via_account_principal) continue;

    bool action_match = false;
    for (const Pattern& p : st.actions) {
      if (MatchPattern(r, p, r.action, true)) {
        action_match = true;
        break;
      }
    }
    if (action_match == st.not_action) continue;

    if (st.has_resource) {
      bool res_match = false;
      for (const Pattern& p : st.resources) {
        if (MatchPattern(r, p, r.resource, false)) {
          res_match = true;
          break;
        }
      }
      if (res_match == st.not_resource) continue;
    }

    bool via_account = false;
    if (check_principal) {
      if (!st.has_principal || !PrincipalMatches(st, r.identity, &via_account)) continue;
    }

    bool conditions = true;
    for (const Condition& c : st.conditions) {
      if (!ConditionHolds(r, c)) {
        conditions = false;
        break;
      }
    }
    if (!conditions) continue;

    std::string reason = policy.name() + " statement " + (st.sid.empty() ? std::to_string(i) : st.sid);
    if (st.deny) {
      result->deny = true;
      result->allow = false;
      result->reason = std::move(reason);
      return;
    }
    if (!result->allow || (result->allow_via_account_principal && !via_account)) {
      result->allow = true;
      result->allow_via_account_principal = via_account;
      result->reason = std::move(reason);
    }
  }
}

}  // namespace tarn::security::iam
