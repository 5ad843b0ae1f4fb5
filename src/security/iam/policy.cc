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
  size_t special = text.find_first_of("*?$");
  // "$" only starts a variable as "${"; a lone "$" is a literal character.
  while (special != std::string::npos && text[special] == '$' &&
         (special + 1 >= text.size() || text[special + 1] != '{')) {
    special = text.find_first_of("*?$", special + 1);
  }
  p.literal_prefix = static_cast<uint32_t>(special == std::string::npos ? text.size() : special);
  if (text.find("${") != std::string::npos) {
    p.kind = Pattern::Kind::kVariables;
  } else if (text == "*") {
    p.kind = Pattern::Kind::kAny;
  } else if (special == std::string::npos) {
    p.kind = Pattern::Kind::kLiteral;
  } else if (special == text.size() - 1 && text.back() == '*') {
    p.kind = Pattern::Kind::kPrefix;
  } else {
    p.kind = Pattern::Kind::kWildcard;
  }
  p.text = std::move(text);
  return p;
}

Cidr ParseCidr(std::string_view text) {
  Cidr c;
  std::string addr(text);
  int bits = -1;
  size_t slash = addr.find('/');
  if (slash != std::string::npos) {
    auto b = ParseInt64(std::string_view(addr).substr(slash + 1));
    if (!b) return c;
    bits = int(*b);
    addr.resize(slash);
  }
  if (inet_pton(AF_INET, addr.c_str(), c.addr) == 1) {
    c.v6 = false;
  } else if (inet_pton(AF_INET6, addr.c_str(), c.addr) == 1) {
    c.v6 = true;
  } else {
    return c;
  }
  int max = c.v6 ? 128 : 32;
  c.bits = bits < 0 || bits > max ? max : bits;
  c.valid = true;
  return c;
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

bool IsDateOp(ConditionOp op) { return op >= ConditionOp::kDateEquals && op <= ConditionOp::kDateGreaterThanEquals; }
bool IsNumericOp(ConditionOp op) {
  return op >= ConditionOp::kNumericEquals && op <= ConditionOp::kNumericGreaterThanEquals;
}

Principal MakePrincipal(std::string text) {
  Principal p;
  if (text == "*") {
    p.kind = Principal::Kind::kAnyone;
  } else if (text.size() == 12 && text.find_first_not_of("0123456789") == std::string::npos) {
    p.kind = Principal::Kind::kAccount;
    p.account = text;
  } else if (StartsWith(text, "arn:aws:iam::") && EndsWith(text, ":root") &&
             text.size() == std::strlen("arn:aws:iam::") + 12 + std::strlen(":root")) {
    p.kind = Principal::Kind::kAccount;
    p.account = text.substr(std::strlen("arn:aws:iam::"), 12);
  } else if (text.find_first_of("*?") != std::string::npos) {
    p.kind = Principal::Kind::kWildcard;
  } else {
    p.kind = Principal::Kind::kArn;
    // arn:aws:iam::<account>:role/[path/]<name> names every session of the role.
    constexpr std::string_view kIam = "arn:aws:iam::";
    if (StartsWith(text, kIam) && text.size() > kIam.size() + 12 &&
        text.compare(kIam.size() + 12, 6, ":role/") == 0) {
      p.account = text.substr(kIam.size(), 12);
      p.role = text.substr(text.rfind('/') + 1);
    }
  }
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
      for (const Pattern& v : one.values) {
        if (one.op == ConditionOp::kIpAddress || one.op == ConditionOp::kNotIpAddress) {
          one.cidrs.push_back(ParseCidr(v.text));
        } else if (IsNumericOp(one.op) || IsDateOp(one.op)) {
          one.numbers.push_back(v.has_vars() ? std::nullopt
                                             : IsDateOp(one.op) ? ToDate(v.text) : ToNumber(v.text));
        }
      }
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
      st.principals.push_back(MakePrincipal("*"));
    } else if (p.is_object()) {
      for (auto it = p.begin(); it != p.end(); ++it) {
        if (it.key() == "AWS") {
          ASSIGN_OR_RETURN(std::vector<std::string> arns, StringList(it.value(), "Principal"));
          for (std::string& a : arns) st.principals.push_back(MakePrincipal(std::move(a)));
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
  if (EqualsIgnoreCase(key, "aws:userid")) {
    // AWS: the account id for the root user, AIDA… for users, AROA…:session for role sessions.
    if (id->type == Identity::Type::kRoot) return one(id->account_id);
    return !id->principal_id.empty() && one(id->principal_id);
  }
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

// `text` is matched case-sensitively: actions arrive lower-cased, as action patterns are.
bool MatchPattern(const EvalRequest& r, const Pattern& p, std::string_view text) {
  switch (p.kind) {
    case Pattern::Kind::kAny:
      return true;
    case Pattern::Kind::kLiteral:
      return p.text == text;
    case Pattern::Kind::kPrefix:
      return text.size() >= p.literal_prefix &&
             std::memcmp(text.data(), p.text.data(), p.literal_prefix) == 0;
    case Pattern::Kind::kWildcard:
    case Pattern::Kind::kVariables:
      break;
  }
  // The literal prefix before the first variable or wildcard must match as is: most
  // statements fail here without substituting anything.
  if (text.size() < p.literal_prefix || std::memcmp(text.data(), p.text.data(), p.literal_prefix) != 0) {
    return false;
  }
  if (p.kind == Pattern::Kind::kWildcard) {
    return WildcardMatch(std::string_view(p.text).substr(p.literal_prefix), text.substr(p.literal_prefix),
                         false);
  }
  thread_local std::string buf;
  if (!Substitute(r, p.text, &buf)) return false;
  return WildcardMatch(buf, text, false);
}

// A context value as an address: 4 or 16 bytes; IPv4-mapped IPv6 ("::ffff:1.2.3.4") counts
// as IPv4.
struct ParsedIp {
  bool valid = false;
  bool v6 = false;
  unsigned char addr[16] = {};
};

ParsedIp ParseIp(std::string_view text) {
  ParsedIp ip;
  char buf[64];
  if (text.size() >= sizeof(buf)) return ip;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (inet_pton(AF_INET, buf, ip.addr) == 1) {
    ip.valid = true;
    return ip;
  }
  if (inet_pton(AF_INET6, buf, ip.addr) != 1) return ip;
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(ip.addr, kMapped, 12) == 0) {
    std::memmove(ip.addr, ip.addr + 12, 4);
  } else {
    ip.v6 = true;
  }
  ip.valid = true;
  return ip;
}

bool IpInCidr(const ParsedIp& ip, const Cidr& c) {
  if (!ip.valid || !c.valid || ip.v6 != c.v6) return false;
  int full = c.bits / 8, rest = c.bits % 8;
  if (std::memcmp(ip.addr, c.addr, full) != 0) return false;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (ip.addr[full] & mask) == (c.addr[full] & mask);
}

// One context value against the condition's i-th policy value (positive form of the operator).
bool MatchValue(const EvalRequest& r, const Condition& c, size_t i, std::string_view v,
                const ParsedIp* ip) {
  const Pattern& p = c.values[i];
  switch (c.op) {
    case ConditionOp::kStringEquals:
    case ConditionOp::kStringNotEquals:
    case ConditionOp::kArnEquals:
    case ConditionOp::kArnNotEquals: {
      if (!p.has_vars()) return p.text == v;
      thread_local std::string buf;
      if (!Substitute(r, p.text, &buf)) return false;
      // Compare ignoring the matcher's literal markers.
      size_t j = 0;
      for (char ch : buf) {
        if (ch == '\x01') continue;
        if (j >= v.size() || v[j] != ch) return false;
        ++j;
      }
      return j == v.size();
    }
    case ConditionOp::kStringEqualsIgnoreCase:
    case ConditionOp::kStringNotEqualsIgnoreCase:
      return EqualsIgnoreCase(p.text, v);
    case ConditionOp::kStringLike:
    case ConditionOp::kStringNotLike:
    case ConditionOp::kArnLike:
    case ConditionOp::kArnNotLike:
      return MatchPattern(r, p, v);
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
      bool date = IsDateOp(c.op);
      auto a = date ? ToDate(v) : ToNumber(v);
      std::optional<double> b = i < c.numbers.size() ? c.numbers[i] : std::nullopt;
      if (!a || !b) return false;
      switch (c.op) {
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
      return ip && i < c.cidrs.size() && IpInCidr(*ip, c.cidrs[i]);
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
  bool ip_op = c.op == ConditionOp::kIpAddress || c.op == ConditionOp::kNotIpAddress;
  auto any_policy_value = [&](std::string_view v) {
    ParsedIp ip;
    if (ip_op) ip = ParseIp(v);  // once per context value, not per CIDR
    for (size_t i = 0; i < c.values.size(); ++i) {
      if (MatchValue(r, c, i, v, ip_op ? &ip : nullptr)) return true;
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
// No string is built: principals were classified when the policy was compiled.
bool PrincipalMatches(const PolicyStatement& st, const Identity* id, bool* via_account) {
  *via_account = false;
  bool matched = false;
  bool known = id && !id->anonymous();
  for (const Principal& p : st.principals) {
    if (p.kind == Principal::Kind::kAnyone) {
      matched = true;
      break;
    }
    if (!known) continue;
    switch (p.kind) {
      case Principal::Kind::kAccount:
        if (p.account == id->account_id) {
          matched = true;
          *via_account = id->type != Identity::Type::kRoot;
        }
        break;
      case Principal::Kind::kArn:
        if (p.text == id->arn) {
          matched = true;
        } else if (!p.role.empty() && id->type == Identity::Type::kAssumedRole &&
                   p.account == id->account_id) {
          // A role names all of its sessions: arn:aws:iam::A:role/R ~ arn:aws:sts::A:assumed-role/R/s.
          constexpr std::string_view kSts = "arn:aws:sts::", kAssumed = ":assumed-role/";
          std::string_view arn = id->arn;
          size_t at = kSts.size() + p.account.size() + kAssumed.size();
          matched = StartsWith(arn, kSts) && arn.substr(kSts.size(), p.account.size()) == p.account &&
                    arn.substr(kSts.size() + p.account.size(), kAssumed.size()) == kAssumed &&
                    arn.substr(at, p.role.size()) == p.role && arn.size() > at + p.role.size() &&
                    arn[at + p.role.size()] == '/';
        }
        break;
      case Principal::Kind::kWildcard:
        matched = WildcardMatch(p.text, id->arn, false);
        break;
      case Principal::Kind::kAnyone:
        break;
    }
    if (matched) break;
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

std::string EvalResult::Reason() const {
  if (!policy || statement >= policy->statements().size()) return "";
  const PolicyStatement& st = policy->statements()[statement];
  return policy->name() + " statement " + (st.sid.empty() ? std::to_string(statement) : st.sid);
}

void Evaluate(const Policy& policy, const EvalRequest& request, bool check_principal, EvalResult* result) {
  // Actions match case-insensitively: lower-case the request's once (patterns already are).
  char lower_buf[128];
  thread_local std::string lower_long;
  std::string_view action;
  if (request.action.size() <= sizeof(lower_buf)) {
    for (size_t i = 0; i < request.action.size(); ++i) lower_buf[i] = Lower(request.action[i]);
    action = std::string_view(lower_buf, request.action.size());
  } else {
    lower_long = ToLower(request.action);
    action = lower_long;
  }
  const EvalRequest& r = request;
  const auto& sts = policy.statements();
  for (size_t i = 0; i < sts.size(); ++i) {
    const PolicyStatement& st = sts[i];
    // A Deny after a Deny changes nothing; an Allow after an Allow only matters for the
    // account-principal flag.
    if (result->deny) return;
    if (!st.deny && result->allow && !result->allow_via_account_principal) continue;

    bool action_match = false;
    for (const Pattern& p : st.actions) {
      if (MatchPattern(r, p, action)) {
        action_match = true;
        break;
      }
    }
    if (action_match == st.not_action) continue;

    if (st.has_resource) {
      bool res_match = false;
      for (const Pattern& p : st.resources) {
        if (MatchPattern(r, p, r.resource)) {
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

    if (st.deny) {
      result->deny = true;
      result->allow = false;
      result->policy = &policy;
      result->statement = i;
      return;
    }
    if (!result->allow || (result->allow_via_account_principal && !via_account)) {
      result->allow = true;
      result->allow_via_account_principal = via_account;
      result->policy = &policy;
      result->statement = i;
    }
  }
}

}  // namespace tarn::security::iam
