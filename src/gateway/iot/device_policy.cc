#include "gateway/iot/device_policy.h"

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/meta_store.h"
#include "core/strings.h"
#include "ops/metrics.h"

namespace tarn::gateway::iot {

using json = nlohmann::json;

namespace {

constexpr const char* kCertIdentityPrefix = "iotcert:";

// IAM-style wildcard match: '*' any run of characters, '?' one character (case-sensitive, as
// IoT resource ARNs are).
bool Glob(std::string_view pat, std::string_view s) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && (pat[p] == '?' || pat[p] == s[i])) {
      ++p;
      ++i;
    } else if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

// Substitutes ${iot:…} policy variables; nullopt when one cannot be resolved (the statement
// then does not apply, as AWS IoT ignores statements whose variables do not resolve).
std::optional<std::string> Substitute(const std::string& in, const DeviceContext& ctx,
                                      const std::string& client_id) {
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    size_t open = in.find("${", i);
    if (open == std::string::npos) {
      out += in.substr(i);
      break;
    }
    out += in.substr(i, open - i);
    size_t close = in.find('}', open);
    if (close == std::string::npos) return std::nullopt;
    std::string var = in.substr(open + 2, close - open - 2);
    static const std::string kAttr = "iot:Connection.Thing.Attributes[";
    if (var == "iot:ClientId") {
      out += client_id;
    } else if (var == "iot:Connection.Thing.ThingName") {
      if (ctx.thing_name.empty()) return std::nullopt;
      out += ctx.thing_name;
    } else if (var == "iot:Connection.Thing.IsAttached") {
      out += ctx.thing_name.empty() ? "false" : "true";
    } else if (var == "iot:Certificate.Subject.CommonName") {
      if (ctx.subject_cn.empty()) return std::nullopt;
      out += ctx.subject_cn;
    } else if (StartsWith(var, kAttr) && EndsWith(var, "]")) {
      std::string name = var.substr(kAttr.size(), var.size() - kAttr.size() - 1);
      auto it = ctx.thing_attributes.find(name);
      if (it == ctx.thing_attributes.end()) return std::nullopt;
      out += it->second;
    } else {
      return std::nullopt;
    }
    i = close + 1;
  }
  return out;
}

std::vector<std::string> AsList(const json& j) {
  std::vector<std::string> out;
  if (j.is_string()) out.push_back(j.get<std::string>());
  if (j.is_array()) {
    for (const auto& e : j) {
      if (e.is_string()) out.push_back(e.get<std::string>());
    }
  }
  return out;
}

}  // namespace

PolicyDecision EvaluateIotPolicies(const DeviceContext& ctx, const std::string& client_id,
                                   const std::string& action, const std::string& resource) {
  PolicyDecision d;
  std::string allow_reason;
  for (const auto& [name, text] : ctx.policies) {
    json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.contains("Statement")) continue;
    json st = doc["Statement"].is_array() ? doc["Statement"] : json::array({doc["Statement"]});
    for (size_t i = 0; i < st.size(); ++i) {
      const json& s = st[i];
      if (!s.is_object()) continue;
      bool action_hit = false;
      for (const auto& a : AsList(s.value("Action", json()))) {
        if (Glob(ToLower(a), ToLower(action))) action_hit = true;
      }
      if (!action_hit) continue;
      bool resource_hit = false;
      std::string matched;
      for (const auto& r : AsList(s.value("Resource", json()))) {
        auto sub = Substitute(r, ctx, client_id);
        if (sub && Glob(*sub, resource)) {
          resource_hit = true;
          matched = *sub;
        }
      }
      if (!resource_hit) continue;
      std::string why = "policy " + name + " statement " + std::to_string(i) + " (" +
                        s.value("Effect", "") + " " + action + " on " + matched + ")";
      if (s.value("Effect", "") == "Deny") {
        d.allowed = false;
        d.reason = "explicit deny by " + why;
        return d;
      }
      if (allow_reason.empty()) allow_reason = why;
    }
  }
  d.allowed = !allow_reason.empty();
  d.reason = d.allowed ? "allowed by " + allow_reason
                       : (ctx.policies.empty() ? "implicit deny: no policy is attached to the certificate"
                                               : "implicit deny: no statement allows it");
  return d;
}

DevicePolicyHook::DevicePolicyHook(MetaStore* meta, mqtt::Authenticator* password_auth,
                                   std::string region, std::string account_id)
    : meta_(meta), password_auth_(password_auth), region_(std::move(region)),
      account_id_(std::move(account_id)) {}

DevicePolicyHook::~DevicePolicyHook() = default;

void DevicePolicyHook::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  decisions_.clear();
  contexts_.clear();
}

Result<DeviceContext> DevicePolicyHook::Load(const std::string& cert_id, const std::string& client_id) {
  DeviceContext ctx;
  ctx.certificate_id = cert_id;
  ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT doc FROM iot_objects WHERE kind = 'cert' AND name = ?1"));
  q.Bind(1, cert_id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return ctx;
  json cert = json::parse(q.ColumnText(0));
  ctx.certificate_known = true;
  ctx.certificate_status = cert.value("status", "");
  ctx.subject_cn = cert.value("subjectCommonName", "");
  std::string arn = cert.value("certificateArn", "");
  // Connection.Thing.*: the thing whose name is the client id, if attached to this certificate.
  ASSIGN_OR_RETURN(Statement t, meta_->Prepare(
      "SELECT o.doc FROM iot_thing_principals p JOIN iot_objects o ON o.kind = 'thing' AND o.name = p.a "
      "WHERE p.a = ?1 AND p.b = ?2"));
  t.BindAll(client_id, arn);
  ASSIGN_OR_RETURN(bool thing, t.Step());
  if (thing) {
    json doc = json::parse(t.ColumnText(0));
    ctx.thing_name = client_id;
    for (auto it = doc["attributes"].begin(); it != doc["attributes"].end(); ++it) {
      ctx.thing_attributes[it.key()] = it.value().get<std::string>();
    }
  }
  ASSIGN_OR_RETURN(Statement p, meta_->Prepare(
      "SELECT o.name, o.doc FROM iot_policy_targets t JOIN iot_objects o ON o.kind = 'policy' AND o.name = t.a "
      "WHERE t.b = ?1 ORDER BY o.name"));
  p.Bind(1, arn);
  for (;;) {
    ASSIGN_OR_RETURN(bool more, p.Step());
    if (!more) break;
    json doc = json::parse(p.ColumnText(1));
    std::string v = doc.value("defaultVersionId", "1");
    ctx.policies.emplace_back(p.ColumnText(0), doc["versions"][v]["document"].get<std::string>());
  }
  return ctx;
}

Result<std::string> DevicePolicyHook::Authenticate(const mqtt::ClientInfo& client,
                                                   const std::optional<std::string>& username,
                                                   const std::optional<std::string>& password) {
  if (client.has_client_cert && !password) {
    std::string id = ToLower(client.cert_fingerprint_sha256);
    ASSIGN_OR_RETURN(DeviceContext ctx, Load(id, client.client_id));
    if (ctx.certificate_known) {
      if (ctx.certificate_status != "ACTIVE") {
        TLOG_INFO("audit", "mqtt connect denied: client {} certificate {} is {}", client.client_id, id,
                  ctx.certificate_status);
        return Error(ErrorCode::kAccessDenied, "the client certificate is " + ctx.certificate_status);
      }
      return std::string(kCertIdentityPrefix) + id;
    }
    // A certificate from a configured client CA that is not in the registry keeps the broker's
    // default treatment (docs/iot.md); RegisterCertificate puts it under IoT policies.
  }
  return password_auth_->Authenticate(client, username, password);
}

bool DevicePolicyHook::Allow(mqtt::AuthzAction action, const mqtt::ClientInfo& client, std::string_view topic) {
  // Only certificate identities are governed by IoT policies; IAM users keep IAM's rules.
  if (!StartsWith(client.identity, kCertIdentityPrefix)) return true;
  std::string cert_id = client.identity.substr(std::string_view(kCertIdentityPrefix).size());
  const char* name = "iot:Connect";
  std::string kind = "client/";
  switch (action) {
    case mqtt::AuthzAction::kConnect: break;
    case mqtt::AuthzAction::kPublish: name = "iot:Publish"; kind = "topic/"; break;
    case mqtt::AuthzAction::kSubscribe: name = "iot:Subscribe"; kind = "topicfilter/"; break;
    case mqtt::AuthzAction::kReceive: name = "iot:Receive"; kind = "topic/"; break;
  }
  std::string resource = "arn:aws:iot:" + region_ + ":" + account_id_ + ":" + kind +
                         (action == mqtt::AuthzAction::kConnect ? client.client_id : std::string(topic));
  std::string key = cert_id + '\0' + client.client_id + '\0' + name + '\0' + resource;
  std::shared_ptr<const DeviceContext> ctx;
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = decisions_.find(key);
    if (it != decisions_.end()) return it->second;
    auto c = contexts_.find(cert_id + '\0' + client.client_id);
    if (c != contexts_.end()) ctx = c->second;
    gen = generation_;
  }
  if (!ctx) {
    auto loaded = Load(cert_id, client.client_id);
    if (!loaded.ok()) {
      TLOG_WARN("iot", "device policy lookup failed: {}", loaded.status().ToString());
      return false;
    }
    ctx = std::make_shared<const DeviceContext>(std::move(loaded).value());
  }
  PolicyDecision d;
  if (!ctx->certificate_known || ctx->certificate_status != "ACTIVE") {
    d.reason = "certificate " + cert_id + " is " + (ctx->certificate_known ? ctx->certificate_status : "deleted");
  } else {
    d = EvaluateIotPolicies(*ctx, client.client_id, name, resource);
  }
  if (!d.allowed) {
    // The audit record names the deciding statement and the values the variables resolved to.
    TLOG_INFO("audit", "mqtt {} denied: client={} certificate={} resource={} thingName={} cn={}: {}", name,
              client.client_id, cert_id, resource, ctx->thing_name, ctx->subject_cn, d.reason);
    ops::Metrics().Counter("tarn_iot_policy_denials_total", "MQTT operations denied by IoT policies",
                           {{"action", name}}).Inc();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (gen == generation_) {
    if (decisions_.size() > 100000) decisions_.clear();
    decisions_[key] = d.allowed;
    contexts_[cert_id + '\0' + client.client_id] = ctx;
  }
  return d.allowed;
}

}  // namespace tarn::gateway::iot
