// AWS IoT API operations (IoT API Reference, REST paths and member names as the service model
// gives them). Registry entities are JSON documents in iot_objects keyed by (kind, name);
// relations (thing ↔ principal, policy ↔ target, group ↔ thing) have their own tables.
#include "gateway/iot/iot_api.h"

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/meta_store.h"
#include "core/strings.h"
#include "gateway/iot/ca.h"
#include "gateway/rules/engine.h"
#include "security/authz.h"
#include "security/iam/policy.h"

namespace tarn::gateway::iot {

using json = nlohmann::json;

namespace {

constexpr size_t kMaxBody = 1 << 20;

Status Invalid(const std::string& m) { return Error(ErrorCode::kIotInvalidRequest, m); }
Status NotFound(const std::string& m) { return Error(ErrorCode::kIotResourceNotFound, m); }

// AWS IoT names: rules [a-zA-Z0-9_]+ (≤128); things, groups, types, policies [a-zA-Z0-9:_-]+.
bool ValidName(const std::string& s, bool rule) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
              (!rule && (c == '-' || c == ':' || c == '.'));
    if (!ok) return false;
  }
  return true;
}

}  // namespace

struct IotApi::Impl {
  MetaStore* meta;
  rules::RulesEngine* engine;
  DeviceCa* ca;
  const security::Authorizer* authz;
  Clock* clock;
  IotApiOptions opt;
  std::function<void()>* on_change;
  std::function<void(const std::string&)>* on_deactivated;

  std::string Arn(const std::string& type, const std::string& name) const {
    return "arn:aws:iot:" + opt.region + ":" + opt.account_id + ":" + type + "/" + name;
  }
  double Now() const { return static_cast<double>(clock->NowMillis()) / 1000.0; }
  void Changed() const {
    if (*on_change) (*on_change)();
  }
  void Deactivated(const std::string& cert_id) const {
    if (*on_deactivated) (*on_deactivated)(cert_id);
  }

  // --- generic document storage -------------------------------------------------------------
  Result<std::optional<json>> Get(const std::string& kind, const std::string& name) {
    ASSIGN_OR_RETURN(Statement q, meta->Prepare("SELECT doc FROM iot_objects WHERE kind = ?1 AND name = ?2"));
    q.BindAll(kind, name);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return std::optional<json>();
    return std::optional<json>(json::parse(q.ColumnText(0)));
  }
  Result<json> Must(const std::string& kind, const std::string& name, const std::string& what) {
    ASSIGN_OR_RETURN(auto d, Get(kind, name));
    if (!d) return NotFound(what + " " + name + " does not exist");
    return *d;
  }
  Status Put(const std::string& kind, const std::string& name, const json& doc) {
    ASSIGN_OR_RETURN(Statement q, meta->Prepare(
        "INSERT INTO iot_objects(kind, name, doc) VALUES(?1, ?2, ?3) "
        "ON CONFLICT(kind, name) DO UPDATE SET doc = excluded.doc"));
    q.BindAll(kind, name, doc.dump());
    return q.Run();
  }
  Status Insert(const std::string& kind, const std::string& name, const json& doc, const std::string& what) {
    ASSIGN_OR_RETURN(auto existing, Get(kind, name));
    if (existing) {
      return Error(ErrorCode::kIotResourceAlreadyExists, what + " " + name + " already exists");
    }
    return Put(kind, name, doc);
  }
  Status Delete(const std::string& kind, const std::string& name) {
    ASSIGN_OR_RETURN(Statement q, meta->Prepare("DELETE FROM iot_objects WHERE kind = ?1 AND name = ?2"));
    q.BindAll(kind, name);
    return q.Run();
  }
  // Documents of `kind` after `token` in name order, at most `limit`.
  Result<std::vector<std::pair<std::string, json>>> List(const std::string& kind, const std::string& token,
                                                          int64_t limit) {
    ASSIGN_OR_RETURN(Statement q, meta->Prepare(
        "SELECT name, doc FROM iot_objects WHERE kind = ?1 AND name > ?2 ORDER BY name LIMIT ?3"));
    q.Bind(1, kind).Bind(2, token).Bind(3, limit);
    std::vector<std::pair<std::string, json>> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      out.emplace_back(q.ColumnText(0), json::parse(q.ColumnText(1)));
    }
    return out;
  }
  Status Relate(const std::string& table, const std::string& a, const std::string& b, bool add) {
    std::string sql = add ? "INSERT OR IGNORE INTO " + table + " VALUES(?1, ?2)"
                          : "DELETE FROM " + table + " WHERE a = ?1 AND b = ?2";
    ASSIGN_OR_RETURN(Statement q, meta->Prepare(sql));
    q.BindAll(a, b);
    return q.Run();
  }
  Result<std::vector<std::string>> Related(const std::string& table, const std::string& col,
                                           const std::string& value) {
    std::string other = col == "a" ? "b" : "a";
    ASSIGN_OR_RETURN(Statement q, meta->Prepare("SELECT " + other + " FROM " + table + " WHERE " + col +
                                                " = ?1 ORDER BY " + other));
    q.Bind(1, value);
    std::vector<std::string> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      out.push_back(q.ColumnText(0));
    }
    return out;
  }

  // --- topic rules ----------------------------------------------------------------------------
  Result<rules::TopicRuleSpec> RuleSpec(const std::string& name, const json& payload) {
    if (!payload.is_object()) return Invalid("topicRulePayload must be an object");
    rules::TopicRuleSpec spec;
    spec.name = name;
    if (!payload.contains("sql") || !payload["sql"].is_string()) return Invalid("topicRulePayload.sql is required");
    spec.sql = payload["sql"].get<std::string>();
    spec.description = payload.value("description", "");
    spec.disabled = payload.value("ruleDisabled", false);
    spec.sql_version = payload.value("awsIotSqlVersion", "2016-03-23");
    if (!payload.contains("actions")) return Invalid("topicRulePayload.actions is required");
    spec.actions = payload["actions"];
    if (payload.contains("errorAction")) spec.error_action = payload["errorAction"];
    RETURN_IF_ERROR(rules::RulesEngine::Validate(spec));
    return spec;
  }
  json RuleDoc(const rules::TopicRuleSpec& s, double created) {
    json d = {{"ruleName", s.name},          {"sql", s.sql},
              {"description", s.description}, {"createdAt", created},
              {"actions", s.actions},        {"ruleDisabled", s.disabled},
              {"awsIotSqlVersion", s.sql_version}};
    if (!s.error_action.is_null()) d["errorAction"] = s.error_action;
    return d;
  }
  rules::TopicRuleSpec SpecOf(const json& d) {
    rules::TopicRuleSpec s;
    s.name = d["ruleName"];
    s.sql = d["sql"];
    s.description = d.value("description", "");
    s.disabled = d.value("ruleDisabled", false);
    s.sql_version = d.value("awsIotSqlVersion", "2016-03-23");
    s.actions = d["actions"];
    if (d.contains("errorAction")) s.error_action = d["errorAction"];
    return s;
  }

  // --- policies ---------------------------------------------------------------------------
  static Status ValidatePolicyDocument(const std::string& text) {
    json d = json::parse(text, nullptr, false);
    if (d.is_discarded() || !d.is_object()) return Error(ErrorCode::kMalformedPolicy, "policyDocument is not JSON");
    if (!d.contains("Statement")) return Error(ErrorCode::kMalformedPolicy, "policyDocument has no Statement");
    json st = d["Statement"].is_array() ? d["Statement"] : json::array({d["Statement"]});
    for (const auto& s : st) {
      if (!s.is_object() || !s.contains("Effect") || (s["Effect"] != "Allow" && s["Effect"] != "Deny")) {
        return Error(ErrorCode::kMalformedPolicy, "every statement needs Effect Allow or Deny");
      }
      if (!s.contains("Action") || !s.contains("Resource")) {
        return Error(ErrorCode::kMalformedPolicy, "every statement needs Action and Resource");
      }
    }
    // Devices are judged by the IAM policy engine: what it cannot compile is refused here.
    auto compiled = security::iam::Policy::Parse(text, "policy");
    if (!compiled.ok()) return Error(ErrorCode::kMalformedPolicy, compiled.status().message());
    return Status::OK();
  }
};

namespace {

std::string SegmentAt(const std::vector<std::string>& s, size_t i) { return i < s.size() ? s[i] : ""; }

std::string QueryParam(const net::HttpRequest& rq, const std::string& name) {
  for (const auto& [k, v] : rq.QueryParams()) {
    if (k == name) return v;
  }
  return "";
}

int64_t MaxResults(const net::HttpRequest& rq, int64_t def = 100) {
  std::string m = QueryParam(rq, "maxResults");
  auto v = ParseInt64(m);
  if (!v || *v < 1) return def;
  return std::min<int64_t>(*v, 250);
}

json ThingSummary(const json& t) {
  json s = {{"thingName", t["thingName"]}, {"thingArn", t["thingArn"]},
            {"attributes", t.value("attributes", json::object())}, {"version", t["version"]}};
  if (t.contains("thingTypeName")) s["thingTypeName"] = t["thingTypeName"];
  return s;
}

Status ApplyAttributes(json& thing, const json& payload) {
  if (!payload.is_object()) return Status::OK();
  const json& attrs = payload.value("attributes", json::object());
  if (!attrs.is_object()) return Invalid("attributePayload.attributes must be a map");
  bool merge = payload.value("merge", false);
  json cur = merge ? thing.value("attributes", json::object()) : json::object();
  for (auto it = attrs.begin(); it != attrs.end(); ++it) {
    if (!it.value().is_string()) return Invalid("attribute values must be strings");
    // merge=true with an empty value removes the attribute (UpdateThing semantics).
    if (merge && it.value().get<std::string>().empty()) {
      cur.erase(it.key());
    } else {
      cur[it.key()] = it.value();
    }
  }
  if (cur.size() > 50) return Invalid("a thing has at most 50 attributes");
  thing["attributes"] = cur;
  return Status::OK();
}

}  // namespace

IotApi::IotApi(MetaStore* meta, rules::RulesEngine* engine, DeviceCa* ca,
               const security::Authorizer* authz, Clock* clock, IotApiOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->meta = meta;
  impl_->engine = engine;
  impl_->ca = ca;
  impl_->authz = authz;
  impl_->clock = clock;
  impl_->opt = std::move(options);
  impl_->on_change = &on_change_;
  impl_->on_deactivated = &on_deactivated_;
}

IotApi::~IotApi() = default;

Status IotApi::Open() {
  RETURN_IF_ERROR(impl_->meta->Migrate("iot", {
      {1, "CREATE TABLE iot_objects (kind TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, "
          "PRIMARY KEY (kind, name));"
          "CREATE TABLE iot_thing_principals (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));"
          "CREATE TABLE iot_policy_targets (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));"
          "CREATE TABLE iot_group_things (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));"},
  }));
  ASSIGN_OR_RETURN(auto all, impl_->List("rule", "", 1 << 30));
  for (const auto& [name, doc] : all) {
    Status st = impl_->engine->Put(impl_->SpecOf(doc));
    if (!st.ok()) TLOG_WARN("iot", "stored rule {} does not compile: {}", name, st.ToString());
  }
  return Status::OK();
}

Status IotApi::Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) {
  Impl& m = *impl_;
  std::vector<std::string> seg;
  for (const std::string& raw : Split(request.path, '/')) {
    if (raw.empty()) continue;
    auto d = UriDecode(raw);
    if (!d) return Invalid("malformed path");
    seg.push_back(*d);
  }
  const std::string& method = request.method;
  std::string s0 = SegmentAt(seg, 0), s1 = SegmentAt(seg, 1), s2 = SegmentAt(seg, 2), s3 = SegmentAt(seg, 3);
  size_t n = seg.size();
  ASSIGN_OR_RETURN(std::string body, request.body->ReadAll(kMaxBody));
  json in = json::object();
  if (!body.empty()) {
    in = json::parse(body, nullptr, false);
    if (in.is_discarded()) return Error(ErrorCode::kSerializationError, "the request body is not JSON");
  }

  // Which operation: method + path (IoT API Reference "Request Syntax").
  std::string& a = call.action;
  std::string resource;
  if (s0 == "rules" && n == 1 && method == "GET") { a = "ListTopicRules"; }
  else if (s0 == "rules" && n == 2 && method == "POST") { a = "CreateTopicRule"; resource = m.Arn("rule", s1); }
  else if (s0 == "rules" && n == 2 && method == "GET") { a = "GetTopicRule"; resource = m.Arn("rule", s1); }
  else if (s0 == "rules" && n == 2 && method == "PATCH") { a = "ReplaceTopicRule"; resource = m.Arn("rule", s1); }
  else if (s0 == "rules" && n == 2 && method == "DELETE") { a = "DeleteTopicRule"; resource = m.Arn("rule", s1); }
  else if (s0 == "rules" && n == 3 && s2 == "enable" && method == "POST") { a = "EnableTopicRule"; resource = m.Arn("rule", s1); }
  else if (s0 == "rules" && n == 3 && s2 == "disable" && method == "POST") { a = "DisableTopicRule"; resource = m.Arn("rule", s1); }
  else if (s0 == "tarn-rules-test" && n == 1 && method == "POST") { a = "TestTopicRule"; }
  else if (s0 == "things" && n == 1 && method == "GET") { a = "ListThings"; }
  else if (s0 == "things" && n == 2 && method == "POST") { a = "CreateThing"; resource = m.Arn("thing", s1); }
  else if (s0 == "things" && n == 2 && method == "GET") { a = "DescribeThing"; resource = m.Arn("thing", s1); }
  else if (s0 == "things" && n == 2 && method == "PATCH") { a = "UpdateThing"; resource = m.Arn("thing", s1); }
  else if (s0 == "things" && n == 2 && method == "DELETE") { a = "DeleteThing"; resource = m.Arn("thing", s1); }
  else if (s0 == "things" && n == 3 && s2 == "principals" && method == "PUT") { a = "AttachThingPrincipal"; resource = m.Arn("thing", s1); }
  else if (s0 == "things" && n == 3 && s2 == "principals" && method == "DELETE") { a = "DetachThingPrincipal"; resource = m.Arn("thing", s1); }
  else if (s0 == "things" && n == 3 && s2 == "principals" && method == "GET") { a = "ListThingPrincipals"; resource = m.Arn("thing", s1); }
  else if (s0 == "principals" && n == 2 && s1 == "things" && method == "GET") { a = "ListPrincipalThings"; }
  else if (s0 == "thing-types" && n == 1 && method == "GET") { a = "ListThingTypes"; }
  else if (s0 == "thing-types" && n == 2 && method == "POST") { a = "CreateThingType"; resource = m.Arn("thingtype", s1); }
  else if (s0 == "thing-types" && n == 2 && method == "GET") { a = "DescribeThingType"; resource = m.Arn("thingtype", s1); }
  else if (s0 == "thing-types" && n == 2 && method == "DELETE") { a = "DeleteThingType"; resource = m.Arn("thingtype", s1); }
  else if (s0 == "thing-types" && n == 3 && s2 == "deprecate" && method == "POST") { a = "DeprecateThingType"; resource = m.Arn("thingtype", s1); }
  else if (s0 == "thing-groups" && n == 1 && method == "GET") { a = "ListThingGroups"; }
  else if (s0 == "thing-groups" && n == 2 && s1 == "addThingToThingGroup" && method == "PUT") { a = "AddThingToThingGroup"; }
  else if (s0 == "thing-groups" && n == 2 && s1 == "removeThingFromThingGroup" && method == "PUT") { a = "RemoveThingFromThingGroup"; }
  else if (s0 == "thing-groups" && n == 2 && method == "POST") { a = "CreateThingGroup"; resource = m.Arn("thinggroup", s1); }
  else if (s0 == "thing-groups" && n == 2 && method == "GET") { a = "DescribeThingGroup"; resource = m.Arn("thinggroup", s1); }
  else if (s0 == "thing-groups" && n == 2 && method == "DELETE") { a = "DeleteThingGroup"; resource = m.Arn("thinggroup", s1); }
  else if (s0 == "thing-groups" && n == 3 && s2 == "things" && method == "GET") { a = "ListThingsInThingGroup"; resource = m.Arn("thinggroup", s1); }
  else if (s0 == "keys-and-certificate" && n == 1 && method == "POST") { a = "CreateKeysAndCertificate"; }
  else if (s0 == "certificate" && s1 == "register" && n == 2 && method == "POST") { a = "RegisterCertificate"; }
  else if (s0 == "certificates" && n == 1 && method == "GET") { a = "ListCertificates"; }
  else if (s0 == "certificates" && n == 1 && method == "POST") { a = "CreateCertificateFromCsr"; }
  else if (s0 == "certificates" && n == 2 && method == "GET") { a = "DescribeCertificate"; resource = m.Arn("cert", s1); }
  else if (s0 == "certificates" && n == 2 && method == "PUT") { a = "UpdateCertificate"; resource = m.Arn("cert", s1); }
  else if (s0 == "certificates" && n == 2 && method == "DELETE") { a = "DeleteCertificate"; resource = m.Arn("cert", s1); }
  else if (s0 == "policies" && n == 1 && method == "GET") { a = "ListPolicies"; }
  else if (s0 == "policies" && n == 2 && method == "POST") { a = "CreatePolicy"; resource = m.Arn("policy", s1); }
  else if (s0 == "policies" && n == 2 && method == "GET") { a = "GetPolicy"; resource = m.Arn("policy", s1); }
  else if (s0 == "policies" && n == 2 && method == "DELETE") { a = "DeletePolicy"; resource = m.Arn("policy", s1); }
  else if (s0 == "policies" && n == 3 && s2 == "version" && method == "POST") { a = "CreatePolicyVersion"; resource = m.Arn("policy", s1); }
  else if (s0 == "policies" && n == 3 && s2 == "version" && method == "GET") { a = "ListPolicyVersions"; resource = m.Arn("policy", s1); }
  else if (s0 == "policies" && n == 4 && s2 == "version" && method == "GET") { a = "GetPolicyVersion"; resource = m.Arn("policy", s1); }
  else if (s0 == "policies" && n == 4 && s2 == "version" && method == "PATCH") { a = "SetDefaultPolicyVersion"; resource = m.Arn("policy", s1); }
  else if (s0 == "policies" && n == 4 && s2 == "version" && method == "DELETE") { a = "DeletePolicyVersion"; resource = m.Arn("policy", s1); }
  else if (s0 == "target-policies" && n == 2 && method == "PUT") { a = "AttachPolicy"; resource = m.Arn("policy", s1); }
  else if (s0 == "target-policies" && n == 2 && method == "POST") { a = "DetachPolicy"; resource = m.Arn("policy", s1); }
  else if (s0 == "attached-policies" && n == 2 && method == "POST") { a = "ListAttachedPolicies"; }
  else if (s0 == "policy-targets" && n == 2 && method == "POST") { a = "ListTargetsForPolicy"; resource = m.Arn("policy", s1); }
  else if (s0 == "endpoint" && n == 1 && method == "GET") { a = "DescribeEndpoint"; }
  else {
    return Error(ErrorCode::kUnknownOperation, "no IoT operation for " + method + " " + request.path);
  }
  call.resource = resource.empty() ? "*" : resource;
  if (m.authz) {
    security::AuthzRequest rq;
    rq.identity = &call.identity;
    rq.action = "iot:" + a;
    rq.resource = call.resource;
    security::AuthzDecision d = m.authz->Authorize(rq);
    if (!d.allowed) {
      std::string who = call.identity.anonymous() ? "anonymous" : call.identity.arn;
      return Error(ErrorCode::kIotUnauthorized,
                   "User: " + who + " is not authorized to perform: " + rq.action + " on resource: " + rq.resource);
    }
  }

  json out = json::object();
  // ---- topic rules ----
  if (a == "CreateTopicRule" || a == "ReplaceTopicRule") {
    if (!ValidName(s1, true)) return Invalid("ruleName must match [a-zA-Z0-9_]+ (1-128 characters)");
    call.audit_params["ruleName"] = s1;
    ASSIGN_OR_RETURN(rules::TopicRuleSpec spec, m.RuleSpec(s1, in));
    ASSIGN_OR_RETURN(auto existing, m.Get("rule", s1));
    double created = m.Now();
    if (a == "CreateTopicRule") {
      if (existing) return Error(ErrorCode::kIotResourceAlreadyExists, "rule " + s1 + " already exists");
    } else {
      if (!existing) return NotFound("rule " + s1 + " does not exist");
      created = (*existing)["createdAt"].get<double>();
    }
    RETURN_IF_ERROR(m.Put("rule", s1, m.RuleDoc(spec, created)));
    RETURN_IF_ERROR(m.engine->Put(spec));
  } else if (a == "GetTopicRule") {
    ASSIGN_OR_RETURN(json d, m.Must("rule", s1, "rule"));
    out = {{"ruleArn", m.Arn("rule", s1)}, {"rule", d}};
  } else if (a == "DeleteTopicRule") {
    ASSIGN_OR_RETURN(json d, m.Must("rule", s1, "rule"));
    (void)d;
    RETURN_IF_ERROR(m.Delete("rule", s1));
    m.engine->Remove(s1);
  } else if (a == "EnableTopicRule" || a == "DisableTopicRule") {
    ASSIGN_OR_RETURN(json d, m.Must("rule", s1, "rule"));
    d["ruleDisabled"] = a == "DisableTopicRule";
    RETURN_IF_ERROR(m.Put("rule", s1, d));
    RETURN_IF_ERROR(m.engine->Put(m.SpecOf(d)));
  } else if (a == "ListTopicRules") {
    std::string topic = QueryParam(request, "topic");
    std::string disabled = QueryParam(request, "ruleDisabled");
    ASSIGN_OR_RETURN(auto all, m.List("rule", QueryParam(request, "nextToken"), 1 << 30));
    int64_t limit = MaxResults(request);
    json list = json::array();
    std::string last;
    for (const auto& [name, d] : all) {
      auto q = rules::RuleQuery::Compile(d["sql"].get<std::string>());
      std::string pattern = q.ok() ? (*q)->topic_filter() : "";
      if (!topic.empty() && pattern != topic) continue;
      if (!disabled.empty() && d.value("ruleDisabled", false) != (disabled == "true")) continue;
      if (static_cast<int64_t>(list.size()) == limit) {
        out["nextToken"] = last;
        break;
      }
      list.push_back({{"ruleArn", m.Arn("rule", name)}, {"ruleName", name}, {"topicPattern", pattern},
                      {"createdAt", d["createdAt"]}, {"ruleDisabled", d.value("ruleDisabled", false)}});
      last = name;
    }
    out["rules"] = list;
  } else if (a == "TestTopicRule") {
    // Tarn's rule dry-run (not an AWS operation): {"sql", "topic", "payload"} → {"output"}
    // or {"filtered": true}; a bad statement is InvalidRequestException with its position.
    if (!in.contains("sql") || !in.contains("topic")) return Invalid("sql and topic are required");
    std::string payload = in.contains("payload")
                              ? (in["payload"].is_string() ? in["payload"].get<std::string>() : in["payload"].dump())
                              : "{}";
    ASSIGN_OR_RETURN(auto r, rules::RulesEngine::Test(in["sql"].get<std::string>(), in["topic"].get<std::string>(),
                                                      payload, in.value("clientId", "tarn-dry-run"),
                                                      m.clock->NowMillis()));
    if (r) out["output"] = *r;
    else out["filtered"] = true;
  }
  // ---- things ----
  else if (a == "CreateThing") {
    if (!ValidName(s1, false)) return Invalid("thingName must match [a-zA-Z0-9:_-]+ (1-128 characters)");
    json t = {{"thingName", s1}, {"thingArn", m.Arn("thing", s1)}, {"thingId", NewUuid()},
              {"version", 1}, {"attributes", json::object()}};
    if (in.contains("thingTypeName")) {
      std::string type = in["thingTypeName"];
      ASSIGN_OR_RETURN(json tt, m.Must("thingtype", type, "thing type"));
      if (tt.value("deprecated", false)) return Invalid("thing type " + type + " is deprecated");
      t["thingTypeName"] = type;
    }
    if (in.contains("attributePayload")) RETURN_IF_ERROR(ApplyAttributes(t, in["attributePayload"]));
    RETURN_IF_ERROR(m.Insert("thing", s1, t, "thing"));
    out = {{"thingName", s1}, {"thingArn", t["thingArn"]}, {"thingId", t["thingId"]}};
  } else if (a == "DescribeThing") {
    ASSIGN_OR_RETURN(json t, m.Must("thing", s1, "thing"));
    out = t;
    out["defaultClientId"] = s1;
  } else if (a == "UpdateThing") {
    ASSIGN_OR_RETURN(json t, m.Must("thing", s1, "thing"));
    if (in.contains("expectedVersion") && in["expectedVersion"] != t["version"]) {
      return Error(ErrorCode::kIotVersionConflict, "expectedVersion does not match the thing's version");
    }
    if (in.value("removeThingType", false)) t.erase("thingTypeName");
    if (in.contains("thingTypeName")) {
      std::string type = in["thingTypeName"];
      ASSIGN_OR_RETURN(json tt, m.Must("thingtype", type, "thing type"));
      (void)tt;
      t["thingTypeName"] = type;
    }
    if (in.contains("attributePayload")) RETURN_IF_ERROR(ApplyAttributes(t, in["attributePayload"]));
    t["version"] = t["version"].get<int64_t>() + 1;
    RETURN_IF_ERROR(m.Put("thing", s1, t));
    m.Changed();  // ${iot:Connection.Thing.Attributes[…]} may have changed
  } else if (a == "DeleteThing") {
    ASSIGN_OR_RETURN(auto t, m.Get("thing", s1));
    if (t) {
      std::string ev = QueryParam(request, "expectedVersion");
      if (!ev.empty() && ev != (*t)["version"].dump()) {
        return Error(ErrorCode::kIotVersionConflict, "expectedVersion does not match the thing's version");
      }
      ASSIGN_OR_RETURN(auto principals, m.Related("iot_thing_principals", "a", s1));
      if (!principals.empty()) {
        return Error(ErrorCode::kIotInvalidRequest, "thing " + s1 + " still has principals attached");
      }
      RETURN_IF_ERROR(m.Delete("thing", s1));
      ASSIGN_OR_RETURN(Statement q, m.meta->Prepare("DELETE FROM iot_group_things WHERE b = ?1"));
      q.Bind(1, s1);
      RETURN_IF_ERROR(q.Run());
    }
  } else if (a == "ListThings") {
    std::string attr = QueryParam(request, "attributeName"), value = QueryParam(request, "attributeValue");
    std::string type = QueryParam(request, "thingTypeName");
    ASSIGN_OR_RETURN(auto all, m.List("thing", QueryParam(request, "nextToken"), 1 << 30));
    int64_t limit = MaxResults(request);
    json list = json::array();
    std::string last;
    for (const auto& [name, t] : all) {
      if (!type.empty() && t.value("thingTypeName", "") != type) continue;
      if (!attr.empty()) {
        const json& at = t["attributes"];
        if (!at.contains(attr) || (!value.empty() && at[attr] != value)) continue;
      }
      if (static_cast<int64_t>(list.size()) == limit) {
        out["nextToken"] = last;
        break;
      }
      list.push_back(ThingSummary(t));
      last = name;
    }
    out["things"] = list;
  } else if (a == "AttachThingPrincipal" || a == "DetachThingPrincipal") {
    std::string principal = request.headers.Get("x-amzn-principal");
    if (principal.empty()) return Invalid("the x-amzn-principal header is required");
    ASSIGN_OR_RETURN(json t, m.Must("thing", s1, "thing"));
    (void)t;
    RETURN_IF_ERROR(m.Relate("iot_thing_principals", s1, principal, a == "AttachThingPrincipal"));
    m.Changed();
  } else if (a == "ListThingPrincipals") {
    ASSIGN_OR_RETURN(json t, m.Must("thing", s1, "thing"));
    (void)t;
    ASSIGN_OR_RETURN(auto p, m.Related("iot_thing_principals", "a", s1));
    out["principals"] = p;
  } else if (a == "ListPrincipalThings") {
    std::string principal = request.headers.Get("x-amzn-principal");
    ASSIGN_OR_RETURN(auto t, m.Related("iot_thing_principals", "b", principal));
    out["things"] = t;
  }
  // ---- thing types ----
  else if (a == "CreateThingType") {
    if (!ValidName(s1, false)) return Invalid("thingTypeName must match [a-zA-Z0-9:_-]+");
    json t = {{"thingTypeName", s1}, {"thingTypeArn", m.Arn("thingtype", s1)}, {"thingTypeId", NewUuid()},
              {"thingTypeProperties", in.value("thingTypeProperties", json::object())},
              {"deprecated", false}, {"creationDate", m.Now()}};
    RETURN_IF_ERROR(m.Insert("thingtype", s1, t, "thing type"));
    out = {{"thingTypeName", s1}, {"thingTypeArn", t["thingTypeArn"]}, {"thingTypeId", t["thingTypeId"]}};
  } else if (a == "DescribeThingType") {
    ASSIGN_OR_RETURN(json t, m.Must("thingtype", s1, "thing type"));
    out = {{"thingTypeName", s1}, {"thingTypeArn", t["thingTypeArn"]}, {"thingTypeId", t["thingTypeId"]},
           {"thingTypeProperties", t["thingTypeProperties"]},
           {"thingTypeMetadata", {{"deprecated", t["deprecated"]}, {"creationDate", t["creationDate"]}}}};
  } else if (a == "DeprecateThingType") {
    ASSIGN_OR_RETURN(json t, m.Must("thingtype", s1, "thing type"));
    t["deprecated"] = !in.value("undoDeprecate", false);
    RETURN_IF_ERROR(m.Put("thingtype", s1, t));
  } else if (a == "DeleteThingType") {
    ASSIGN_OR_RETURN(json t, m.Must("thingtype", s1, "thing type"));
    (void)t;
    RETURN_IF_ERROR(m.Delete("thingtype", s1));
  } else if (a == "ListThingTypes") {
    ASSIGN_OR_RETURN(auto all, m.List("thingtype", QueryParam(request, "nextToken"), MaxResults(request)));
    json list = json::array();
    for (const auto& [name, t] : all) {
      list.push_back({{"thingTypeName", name}, {"thingTypeArn", t["thingTypeArn"]},
                      {"thingTypeProperties", t["thingTypeProperties"]},
                      {"thingTypeMetadata", {{"deprecated", t["deprecated"]}, {"creationDate", t["creationDate"]}}}});
    }
    out["thingTypes"] = list;
  }
  // ---- thing groups ----
  else if (a == "CreateThingGroup") {
    if (!ValidName(s1, false)) return Invalid("thingGroupName must match [a-zA-Z0-9:_-]+");
    json g = {{"thingGroupName", s1}, {"thingGroupArn", m.Arn("thinggroup", s1)}, {"thingGroupId", NewUuid()},
              {"thingGroupProperties", in.value("thingGroupProperties", json::object())}, {"version", 1},
              {"creationDate", m.Now()}};
    if (in.contains("parentGroupName")) {
      ASSIGN_OR_RETURN(json p, m.Must("thinggroup", in["parentGroupName"].get<std::string>(), "thing group"));
      (void)p;
      g["parentGroupName"] = in["parentGroupName"];
    }
    RETURN_IF_ERROR(m.Insert("thinggroup", s1, g, "thing group"));
    out = {{"thingGroupName", s1}, {"thingGroupArn", g["thingGroupArn"]}, {"thingGroupId", g["thingGroupId"]}};
  } else if (a == "DescribeThingGroup") {
    ASSIGN_OR_RETURN(json g, m.Must("thinggroup", s1, "thing group"));
    out = {{"thingGroupName", s1}, {"thingGroupArn", g["thingGroupArn"]}, {"thingGroupId", g["thingGroupId"]},
           {"thingGroupProperties", g["thingGroupProperties"]}, {"version", g["version"]},
           {"thingGroupMetadata", {{"creationDate", g["creationDate"]}}}};
    if (g.contains("parentGroupName")) out["thingGroupMetadata"]["parentGroupName"] = g["parentGroupName"];
  } else if (a == "DeleteThingGroup") {
    RETURN_IF_ERROR(m.Delete("thinggroup", s1));
    ASSIGN_OR_RETURN(Statement q, m.meta->Prepare("DELETE FROM iot_group_things WHERE a = ?1"));
    q.Bind(1, s1);
    RETURN_IF_ERROR(q.Run());
    // Policies attached to the group go with it (a new group of the same name starts bare).
    ASSIGN_OR_RETURN(Statement p, m.meta->Prepare("DELETE FROM iot_policy_targets WHERE b = ?1"));
    p.Bind(1, m.Arn("thinggroup", s1));
    RETURN_IF_ERROR(p.Run());
    m.Changed();
  } else if (a == "ListThingGroups") {
    ASSIGN_OR_RETURN(auto all, m.List("thinggroup", QueryParam(request, "nextToken"), MaxResults(request)));
    json list = json::array();
    for (const auto& [name, g] : all) list.push_back({{"groupName", name}, {"groupArn", g["thingGroupArn"]}});
    out["thingGroups"] = list;
  } else if (a == "AddThingToThingGroup" || a == "RemoveThingFromThingGroup") {
    std::string group = in.value("thingGroupName", ""), thing = in.value("thingName", "");
    if (group.empty() || thing.empty()) return Invalid("thingGroupName and thingName are required");
    ASSIGN_OR_RETURN(json g, m.Must("thinggroup", group, "thing group"));
    ASSIGN_OR_RETURN(json t, m.Must("thing", thing, "thing"));
    (void)g;
    (void)t;
    RETURN_IF_ERROR(m.Relate("iot_group_things", group, thing, a == "AddThingToThingGroup"));
    m.Changed();
  } else if (a == "ListThingsInThingGroup") {
    ASSIGN_OR_RETURN(json g, m.Must("thinggroup", s1, "thing group"));
    (void)g;
    ASSIGN_OR_RETURN(auto things, m.Related("iot_group_things", "a", s1));
    out["things"] = things;
  }
  // ---- certificates ----
  else if (a == "CreateKeysAndCertificate") {
    if (!m.ca) return Error(ErrorCode::kUnavailable, "the lake's device CA is not available");
    ASSIGN_OR_RETURN(IssuedCertificate ic, m.ca->Issue());
    bool active = QueryParam(request, "setAsActive") == "true";
    double now = m.Now();
    json c = {{"certificateId", ic.cert.id}, {"certificateArn", m.Arn("cert", ic.cert.id)},
              {"certificatePem", ic.cert.pem}, {"status", active ? "ACTIVE" : "INACTIVE"},
              {"ownedBy", m.opt.account_id}, {"creationDate", now}, {"lastModifiedDate", now},
              {"subjectCommonName", ic.cert.subject_cn}, {"caCertificateId", "tarn-device-ca"},
              {"validity", {{"notBefore", static_cast<double>(ic.cert.not_before)},
                            {"notAfter", static_cast<double>(ic.cert.not_after)}}}};
    RETURN_IF_ERROR(m.Insert("cert", ic.cert.id, c, "certificate"));
    out = {{"certificateArn", c["certificateArn"]}, {"certificateId", ic.cert.id},
           {"certificatePem", ic.cert.pem},
           {"keyPair", {{"PublicKey", ic.public_key_pem}, {"PrivateKey", ic.private_key_pem}}}};
  } else if (a == "CreateCertificateFromCsr") {
    if (!m.ca) return Error(ErrorCode::kUnavailable, "the lake's device CA is not available");
    if (!in.contains("certificateSigningRequest") || !in["certificateSigningRequest"].is_string()) {
      return Invalid("certificateSigningRequest is required");
    }
    ASSIGN_OR_RETURN(CertificateInfo info, m.ca->IssueFromCsr(in["certificateSigningRequest"].get<std::string>()));
    bool active = QueryParam(request, "setAsActive") == "true";
    double now = m.Now();
    json c = {{"certificateId", info.id}, {"certificateArn", m.Arn("cert", info.id)},
              {"certificatePem", info.pem}, {"status", active ? "ACTIVE" : "INACTIVE"},
              {"ownedBy", m.opt.account_id}, {"creationDate", now}, {"lastModifiedDate", now},
              {"subjectCommonName", info.subject_cn}, {"caCertificateId", "tarn-device-ca"},
              {"validity", {{"notBefore", static_cast<double>(info.not_before)},
                            {"notAfter", static_cast<double>(info.not_after)}}}};
    RETURN_IF_ERROR(m.Insert("cert", info.id, c, "certificate"));
    out = {{"certificateArn", c["certificateArn"]}, {"certificateId", info.id}, {"certificatePem", info.pem}};
  } else if (a == "RegisterCertificate") {
    if (!in.contains("certificatePem")) return Invalid("certificatePem is required");
    ASSIGN_OR_RETURN(CertificateInfo info, ParseCertificate(in["certificatePem"].get<std::string>()));
    std::string ca_pem = in.value("caCertificatePem", "");
    if (!ca_pem.empty() && !VerifySignedBy(info.pem, ca_pem)) {
      return Invalid("certificatePem is not signed by caCertificatePem");
    }
    std::string status = in.value("status", in.value("setAsActive", false) ? "ACTIVE" : "INACTIVE");
    if (status != "ACTIVE" && status != "INACTIVE") return Invalid("status must be ACTIVE or INACTIVE");
    double now = m.Now();
    json c = {{"certificateId", info.id}, {"certificateArn", m.Arn("cert", info.id)},
              {"certificatePem", info.pem}, {"status", status}, {"ownedBy", m.opt.account_id},
              {"creationDate", now}, {"lastModifiedDate", now}, {"subjectCommonName", info.subject_cn},
              {"validity", {{"notBefore", static_cast<double>(info.not_before)},
                            {"notAfter", static_cast<double>(info.not_after)}}}};
    if (!ca_pem.empty()) c["caCertificatePem"] = ca_pem;
    RETURN_IF_ERROR(m.Insert("cert", info.id, c, "certificate"));
    m.Changed();
    // A certificate from the configured client CA may be connected already, outside policies;
    // registered INACTIVE it may no longer be.
    if (status != "ACTIVE") m.Deactivated(info.id);
    out = {{"certificateArn", c["certificateArn"]}, {"certificateId", info.id}};
  } else if (a == "DescribeCertificate") {
    ASSIGN_OR_RETURN(json c, m.Must("cert", s1, "certificate"));
    c.erase("subjectCommonName");
    c.erase("caCertificatePem");
    out["certificateDescription"] = c;
  } else if (a == "UpdateCertificate") {
    ASSIGN_OR_RETURN(json c, m.Must("cert", s1, "certificate"));
    std::string status = QueryParam(request, "newStatus");
    if (status != "ACTIVE" && status != "INACTIVE" && status != "REVOKED") {
      return Invalid("newStatus must be ACTIVE, INACTIVE or REVOKED");
    }
    if (c["status"] == "REVOKED" && status == "ACTIVE") {
      return Error(ErrorCode::kIotCertificateState, "a revoked certificate cannot be activated");
    }
    c["status"] = status;
    c["lastModifiedDate"] = m.Now();
    RETURN_IF_ERROR(m.Put("cert", s1, c));
    m.Changed();
    // UpdateCertificate: "AWS IoT Core disconnects all devices that used that certificate".
    if (status != "ACTIVE") m.Deactivated(s1);
  } else if (a == "DeleteCertificate") {
    ASSIGN_OR_RETURN(json c, m.Must("cert", s1, "certificate"));
    if (c["status"] == "ACTIVE") {
      return Error(ErrorCode::kIotCertificateState, "deactivate the certificate before deleting it");
    }
    std::string arn = c["certificateArn"];
    ASSIGN_OR_RETURN(auto things, m.Related("iot_thing_principals", "b", arn));
    ASSIGN_OR_RETURN(auto policies, m.Related("iot_policy_targets", "b", arn));
    if ((!things.empty() || !policies.empty()) && QueryParam(request, "forceDelete") != "true") {
      return Error(ErrorCode::kIotDeleteConflict, "the certificate still has things or policies attached");
    }
    RETURN_IF_ERROR(m.Delete("cert", s1));
    m.Changed();
    m.Deactivated(s1);
  } else if (a == "ListCertificates") {
    ASSIGN_OR_RETURN(auto all, m.List("cert", QueryParam(request, "marker"), MaxResults(request)));
    json list = json::array();
    for (const auto& [id, c] : all) {
      list.push_back({{"certificateArn", c["certificateArn"]}, {"certificateId", id},
                      {"status", c["status"]}, {"creationDate", c["creationDate"]}});
    }
    out["certificates"] = list;
  }
  // ---- policies ----
  else if (a == "CreatePolicy") {
    if (!ValidName(s1, false)) return Invalid("policyName must match [a-zA-Z0-9:_-]+");
    std::string doc = in.value("policyDocument", "");
    RETURN_IF_ERROR(Impl::ValidatePolicyDocument(doc));
    double now = m.Now();
    json p = {{"policyName", s1}, {"policyArn", m.Arn("policy", s1)}, {"defaultVersionId", "1"},
              {"nextVersion", 2}, {"creationDate", now}, {"lastModifiedDate", now},
              {"versions", {{"1", {{"document", doc}, {"createDate", now}}}}}};
    RETURN_IF_ERROR(m.Insert("policy", s1, p, "policy"));
    out = {{"policyName", s1}, {"policyArn", p["policyArn"]}, {"policyDocument", doc}, {"policyVersionId", "1"}};
  } else if (a == "GetPolicy") {
    ASSIGN_OR_RETURN(json p, m.Must("policy", s1, "policy"));
    std::string v = p["defaultVersionId"];
    out = {{"policyName", s1}, {"policyArn", p["policyArn"]}, {"defaultVersionId", v},
           {"policyDocument", p["versions"][v]["document"]}, {"creationDate", p["creationDate"]},
           {"lastModifiedDate", p["lastModifiedDate"]}, {"generationId", v}};
  } else if (a == "DeletePolicy") {
    ASSIGN_OR_RETURN(json p, m.Must("policy", s1, "policy"));
    ASSIGN_OR_RETURN(auto targets, m.Related("iot_policy_targets", "a", s1));
    if (!targets.empty()) return Error(ErrorCode::kIotDeleteConflict, "policy " + s1 + " is still attached");
    if (p["versions"].size() > 1) return Error(ErrorCode::kIotDeleteConflict, "delete the policy's non-default versions first");
    RETURN_IF_ERROR(m.Delete("policy", s1));
  } else if (a == "ListPolicies") {
    ASSIGN_OR_RETURN(auto all, m.List("policy", QueryParam(request, "marker"), MaxResults(request)));
    json list = json::array();
    for (const auto& [name, p] : all) list.push_back({{"policyName", name}, {"policyArn", p["policyArn"]}});
    out["policies"] = list;
  } else if (a == "CreatePolicyVersion") {
    ASSIGN_OR_RETURN(json p, m.Must("policy", s1, "policy"));
    std::string doc = in.value("policyDocument", "");
    RETURN_IF_ERROR(Impl::ValidatePolicyDocument(doc));
    if (p["versions"].size() >= 5) {
      return Error(ErrorCode::kIotVersionsLimitExceeded, "policy " + s1 + " already has 5 versions");
    }
    std::string v = std::to_string(p["nextVersion"].get<int64_t>());
    p["nextVersion"] = p["nextVersion"].get<int64_t>() + 1;
    p["versions"][v] = {{"document", doc}, {"createDate", m.Now()}};
    bool as_default = QueryParam(request, "setAsDefault") == "true";
    if (as_default) p["defaultVersionId"] = v;
    p["lastModifiedDate"] = m.Now();
    RETURN_IF_ERROR(m.Put("policy", s1, p));
    if (as_default) m.Changed();
    out = {{"policyArn", p["policyArn"]}, {"policyDocument", doc}, {"policyVersionId", v},
           {"isDefaultVersion", as_default}};
  } else if (a == "ListPolicyVersions") {
    ASSIGN_OR_RETURN(json p, m.Must("policy", s1, "policy"));
    json list = json::array();
    for (auto it = p["versions"].begin(); it != p["versions"].end(); ++it) {
      list.push_back({{"versionId", it.key()}, {"isDefaultVersion", it.key() == p["defaultVersionId"]},
                      {"createDate", it.value()["createDate"]}});
    }
    out["policyVersions"] = list;
  } else if (a == "GetPolicyVersion" || a == "SetDefaultPolicyVersion" || a == "DeletePolicyVersion") {
    ASSIGN_OR_RETURN(json p, m.Must("policy", s1, "policy"));
    if (!p["versions"].contains(s3)) return NotFound("policy " + s1 + " has no version " + s3);
    if (a == "GetPolicyVersion") {
      out = {{"policyArn", p["policyArn"]}, {"policyName", s1}, {"policyVersionId", s3},
             {"policyDocument", p["versions"][s3]["document"]}, {"isDefaultVersion", s3 == p["defaultVersionId"]},
             {"creationDate", p["versions"][s3]["createDate"]}, {"generationId", s3}};
    } else if (a == "SetDefaultPolicyVersion") {
      p["defaultVersionId"] = s3;
      RETURN_IF_ERROR(m.Put("policy", s1, p));
      m.Changed();
    } else {
      if (s3 == p["defaultVersionId"]) {
        return Error(ErrorCode::kIotDeleteConflict, "the default version of a policy cannot be deleted");
      }
      p["versions"].erase(s3);
      RETURN_IF_ERROR(m.Put("policy", s1, p));
    }
  } else if (a == "AttachPolicy" || a == "DetachPolicy") {
    std::string target = in.value("target", "");
    if (target.empty()) return Invalid("target is required");
    ASSIGN_OR_RETURN(json p, m.Must("policy", s1, "policy"));
    (void)p;
    RETURN_IF_ERROR(m.Relate("iot_policy_targets", s1, target, a == "AttachPolicy"));
    m.Changed();
  } else if (a == "ListAttachedPolicies") {
    ASSIGN_OR_RETURN(auto names, m.Related("iot_policy_targets", "b", s1));
    json list = json::array();
    for (const auto& name : names) list.push_back({{"policyName", name}, {"policyArn", m.Arn("policy", name)}});
    out["policies"] = list;
  } else if (a == "ListTargetsForPolicy") {
    ASSIGN_OR_RETURN(json p, m.Must("policy", s1, "policy"));
    (void)p;
    ASSIGN_OR_RETURN(auto targets, m.Related("iot_policy_targets", "a", s1));
    out["targets"] = targets;
  } else if (a == "DescribeEndpoint") {
    out["endpointAddress"] = m.opt.endpoint ? m.opt.endpoint() : "";
  }
  if (!resource.empty()) call.audit_params["resource"] = resource;
  net::WriteJson(response, out.dump(), "application/json");
  return Status::OK();
}

}  // namespace tarn::gateway::iot

namespace tarn::gateway::iot {

IotDataApi::IotDataApi(rules::RulesEngine* engine, const security::Authorizer* authz, Clock* clock,
                       std::string region, std::string account_id)
    : engine_(engine), authz_(authz), clock_(clock), region_(std::move(region)),
      account_id_(std::move(account_id)) {}

Status IotDataApi::Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) {
  constexpr std::string_view kPrefix = "/topics/";
  if (request.method != "POST" || !StartsWith(request.path, kPrefix)) {
    return Error(ErrorCode::kUnknownOperation, "no IoT data-plane operation for " + request.method + " " + request.path);
  }
  call.action = "Publish";
  auto topic = UriDecode(request.path.substr(kPrefix.size()));
  if (!topic || topic->empty() || topic->find_first_of("+#") != std::string::npos || !IsValidUtf8(*topic)) {
    return Invalid("the topic is not a valid MQTT topic name");
  }
  call.resource = "arn:aws:iot:" + region_ + ":" + account_id_ + ":topic/" + *topic;
  int qos = 0;
  bool retain = false;
  for (const auto& [k, v] : request.QueryParams()) {
    if (k == "qos") qos = v == "1" ? 1 : 0;
    if (k == "retain") retain = v == "true";
  }
  if (authz_) {
    // A retained message needs iot:RetainPublish as well, as over MQTT.
    for (const char* action : {"iot:Publish", "iot:RetainPublish"}) {
      if (!retain && std::string_view(action) == "iot:RetainPublish") continue;
      security::AuthzRequest rq;
      rq.identity = &call.identity;
      rq.action = action;
      rq.resource = call.resource;
      if (!authz_->Authorize(rq).allowed) {
        return Error(ErrorCode::kIotUnauthorized,
                     std::string("not authorized to perform ") + action + " on " + call.resource);
      }
    }
  }
  ASSIGN_OR_RETURN(std::string payload, request.body->ReadAll(128 * 1024));
  call.audit_params["topic"] = *topic;
  // With a broker, the message is routed like any MQTT publish (the engine sees it through its
  // broker subscription); Basic Ingest and broker-less lakes go straight to the engine.
  if (broker_publish_ && !StartsWith(*topic, "$aws/rules/")) {
    RETURN_IF_ERROR(broker_publish_(*topic, payload, qos, retain));
    net::WriteJson(response, "{}", "application/json");
    return Status::OK();
  }
  rules::InboundMessage msg;
  msg.topic = *topic;
  msg.payload = std::move(payload);
  msg.client_id = "";
  msg.principal = call.identity.anonymous() ? "" : call.identity.arn;
  msg.timestamp_ms = clock_->NowMillis();
  if (engine_->AnyRuleFor(msg.topic)) engine_->Submit(std::move(msg));
  net::WriteJson(response, "{}", "application/json");
  return Status::OK();
}

}  // namespace tarn::gateway::iot
