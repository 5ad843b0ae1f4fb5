#include "gateway/iot/device_policy.h"

#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/meta_store.h"
#include "core/strings.h"
#include "ops/metrics.h"
#include "security/authz.h"
#include "security/iam/policy.h"

namespace tarn::gateway::iot {

using json = nlohmann::json;

namespace {

constexpr const char* kCertIdentityPrefix = "iotcert:";
constexpr const char* kDenials = "tarn_iot_policy_denials_total";
constexpr const char* kDenialsHelp = "MQTT operations denied by IoT policies";

}  // namespace

bool DeviceContext::AddPolicy(const std::string& name, const std::string& document) {
  auto p = security::iam::Policy::Parse(document, "policy " + name);
  if (!p.ok()) {
    TLOG_WARN("iot", "policy {} does not compile and is ignored: {}", name, p.status().message());
    return false;
  }
  policies.push_back(std::make_shared<const security::iam::Policy>(std::move(p).value()));
  return true;
}

PolicyDecision EvaluateIotPolicies(const DeviceContext& ctx, const std::string& client_id,
                                   const std::string& action, const std::string& resource,
                                   const std::vector<std::string>* connect_attributes) {
  // Policy variables and condition keys (developerguide/iot-policy-variables). A key that is
  // absent makes a statement using it as a variable not apply, as in AWS IoT.
  std::map<std::string, std::vector<std::string>> keys;
  keys["iot:ClientId"] = {client_id};
  keys["iot:Connection.Thing.IsAttached"] = {ctx.thing_name.empty() ? "false" : "true"};
  if (!ctx.thing_name.empty()) {
    keys["iot:Connection.Thing.ThingName"] = {ctx.thing_name};
    if (!ctx.thing_type_name.empty()) keys["iot:Connection.Thing.ThingTypeName"] = {ctx.thing_type_name};
    for (const auto& [k, v] : ctx.thing_attributes) keys["iot:Connection.Thing.Attributes[" + k + "]"] = {v};
  }
  if (!ctx.subject_cn.empty()) keys["iot:Certificate.Subject.CommonName"] = {ctx.subject_cn};
  if (connect_attributes) keys["iot:ConnectAttributes"] = *connect_attributes;
  security::iam::EvalRequest rq;
  rq.action = action;
  rq.resource = resource;
  rq.context = &keys;
  security::iam::EvalResult r;
  for (const auto& p : ctx.policies) security::iam::Evaluate(*p, rq, /*check_principal=*/false, &r);
  PolicyDecision d;
  d.allowed = r.allow && !r.deny;
  if (r.deny) {
    d.reason = "explicit deny by " + r.Reason() + " (" + action + " on " + resource + ")";
  } else if (r.allow) {
    d.reason = "allowed by " + r.Reason();
  } else {
    d.reason = ctx.policies.empty() ? "implicit deny: no policy is attached to the certificate"
                                    : "implicit deny: no statement allows " + action + " on " + resource;
  }
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
  // After the cache is cleared: a caller that sees the new epoch never gets an old decision.
  epoch_.fetch_add(1);
}

uint64_t DevicePolicyHook::PublishDecisionEpoch(const mqtt::ClientInfo& client) {
  // Registered certificates (device policies), anonymous clients and certificates outside the
  // registry (never restricted) — see Allow. IAM users' decisions also change with IAM.
  if (StartsWith(client.identity, kCertIdentityPrefix) || client.identity.empty() ||
      StartsWith(client.identity, "cert:")) {
    return epoch_.load();
  }
  return 0;
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
    ctx.thing_type_name = doc.value("thingTypeName", "");
    if (doc.contains("attributes") && doc["attributes"].is_object()) {
      for (auto it = doc["attributes"].begin(); it != doc["attributes"].end(); ++it) {
        if (it.value().is_string()) ctx.thing_attributes[it.key()] = it.value().get<std::string>();
      }
    }
  }
  // Policy targets: the certificate, and — when the connection is a thing — the thing groups
  // the thing belongs to and their parent groups (AWS applies thing-group policies to a thing
  // that connects with its name as client id).
  std::vector<std::string> targets = {arn};
  if (!ctx.thing_name.empty()) {
    std::vector<std::string> groups;
    ASSIGN_OR_RETURN(Statement g, meta_->Prepare("SELECT a FROM iot_group_things WHERE b = ?1"));
    g.Bind(1, ctx.thing_name);
    for (;;) {
      ASSIGN_OR_RETURN(bool more, g.Step());
      if (!more) break;
      groups.push_back(g.ColumnText(0));
    }
    ASSIGN_OR_RETURN(Statement parent, meta_->Prepare(
        "SELECT doc FROM iot_objects WHERE kind = 'thinggroup' AND name = ?1"));
    std::set<std::string> seen;
    for (size_t i = 0; i < groups.size() && seen.size() < 64; ++i) {
      if (!seen.insert(groups[i]).second) continue;
      targets.push_back("arn:aws:iot:" + region_ + ":" + account_id_ + ":thinggroup/" + groups[i]);
      parent.Bind(1, groups[i]);
      ASSIGN_OR_RETURN(bool found, parent.Step());
      if (found) {
        json gd = json::parse(parent.ColumnText(0), nullptr, false);
        if (gd.is_object() && gd.contains("parentGroupName") && gd["parentGroupName"].is_string()) {
          groups.push_back(gd["parentGroupName"].get<std::string>());
        }
      }
      RETURN_IF_ERROR(parent.Reset());
    }
  }
  ASSIGN_OR_RETURN(Statement p, meta_->Prepare(
      "SELECT o.name, o.doc FROM iot_policy_targets t JOIN iot_objects o ON o.kind = 'policy' AND o.name = t.a "
      "WHERE t.b = ?1 ORDER BY o.name"));
  std::set<std::string> added;
  for (const std::string& target : targets) {
    p.Bind(1, target);
    for (;;) {
      ASSIGN_OR_RETURN(bool more, p.Step());
      if (!more) break;
      std::string name = p.ColumnText(0);
      if (!added.insert(name).second) continue;
      json doc = json::parse(p.ColumnText(1));
      std::string v = doc.value("defaultVersionId", "1");
      ctx.AddPolicy(name, doc["versions"][v]["document"].get<std::string>());
    }
    RETURN_IF_ERROR(p.Reset());
  }
  return ctx;
}

void DevicePolicyHook::Denied(const std::string& action, const std::string& resource,
                              std::string_view topic, const std::string& cert_id,
                              const std::string& reason, const DeviceContext* ctx,
                              const mqtt::ClientInfo& client, const std::string& user_arn) {
  // Denied receives can come at the message rate: the counters are looked up once.
  static ops::CounterMetric* counters[] = {
      &ops::Metrics().Counter(kDenials, kDenialsHelp, {{"action", "iot:Connect"}}),
      &ops::Metrics().Counter(kDenials, kDenialsHelp, {{"action", "iot:Publish"}}),
      &ops::Metrics().Counter(kDenials, kDenialsHelp, {{"action", "iot:RetainPublish"}}),
      &ops::Metrics().Counter(kDenials, kDenialsHelp, {{"action", "iot:Subscribe"}}),
      &ops::Metrics().Counter(kDenials, kDenialsHelp, {{"action", "iot:Receive"}})};
  static const char* names[] = {"iot:Connect", "iot:Publish", "iot:RetainPublish", "iot:Subscribe", "iot:Receive"};
  for (size_t i = 0; i < 5; ++i) {
    if (action == names[i]) counters[i]->Inc();
  }
  if (!sink_) return;
  DeviceDenial d;
  d.action = action;
  d.resource = resource;
  d.topic = std::string(topic);
  d.certificate_id = cert_id;
  d.reason = reason;
  if (ctx) {
    d.thing_name = ctx->thing_name;
    d.subject_cn = ctx->subject_cn;
  }
  d.user_arn = user_arn;
  d.client = client;
  sink_(d);
}

void DevicePolicyHook::SetUserAuthorizer(const security::Authorizer* authz, IdentityResolver identity_of,
                                         std::function<uint64_t()> generation) {
  user_authz_ = authz;
  identity_of_ = std::move(identity_of);
  iam_generation_ = std::move(generation);
}

Result<std::string> DevicePolicyHook::Authenticate(const mqtt::ClientInfo& client,
                                                   const std::optional<std::string>& username,
                                                   const std::optional<std::string>& password) {
  if (client.has_client_cert && !password) {
    std::string id = ToLower(client.cert_fingerprint_sha256);
    ASSIGN_OR_RETURN(DeviceContext ctx, Load(id, client.client_id));
    if (ctx.certificate_known) {
      if (ctx.certificate_status != "ACTIVE") {
        std::string why = "the client certificate is " + ctx.certificate_status;
        TLOG_INFO("audit", "mqtt connect denied: client {} certificate {} is {}", client.client_id, id,
                  ctx.certificate_status);
        Denied("iot:Connect", "arn:aws:iot:" + region_ + ":" + account_id_ + ":client/" + client.client_id,
               "", id, why, &ctx, client);
        return Error(ErrorCode::kAccessDenied, why);
      }
      return std::string(kCertIdentityPrefix) + id;
    }
    // A certificate from a configured client CA that is not in the registry keeps the broker's
    // default treatment (docs/iot.md); RegisterCertificate puts it under IoT policies.
  }
  auto identity = password_auth_->Authenticate(client, username, password);
  if (!identity.ok() && identity.status().code() == ErrorCode::kInvalidPassword) {
    // A failed login is in the audit trail (throttled per client id like every denial), with
    // the user name that was tried and never the password.
    Denied("iot:Connect", "arn:aws:iot:" + region_ + ":" + account_id_ + ":client/" + client.client_id, "", "",
           "authentication failed: " + identity.status().message(), nullptr, client,
           username ? "arn:aws:iam::" + account_id_ + ":user/" + *username : "");
  }
  return identity;
}

bool DevicePolicyHook::AllowUser(const char* action, const std::string& resource, const mqtt::ClientInfo& client,
                                 std::string_view topic) {
  uint64_t gen = iam_generation_ ? iam_generation_() : 0;
  std::string key = client.identity + '\0' + client.client_id + '\0' + action + '\0' + resource;
  std::optional<UserDecision> cached;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (user_decisions_generation_ != gen) {
      user_decisions_.clear();
      user_decisions_generation_ = gen;
    }
    auto it = user_decisions_.find(key);
    if (it != user_decisions_.end()) {
      if (it->second.allowed) return true;
      cached = it->second;
    }
  }
  if (cached) {
    Denied(action, resource, topic, "", cached->reason, nullptr, client, cached->user_arn);
    return false;
  }
  UserDecision d;
  if (!user_authz_ || !identity_of_) {
    d.reason = "no IAM authorizer is installed for MQTT user logins";
  } else if (auto id = identity_of_(client.identity); !id.ok()) {
    d.reason = "user " + client.identity + ": " + id.status().message();
  } else {
    security::AuthzRequest rq;
    rq.identity = &*id;
    rq.action = action;
    rq.resource = resource;
    rq.context["iot:ClientId"] = {client.client_id};
    if (!client.remote_ip.empty()) rq.context["aws:SourceIp"] = {client.remote_ip};
    rq.context["aws:SecureTransport"] = {client.listener == "mqtt" ? "false" : "true"};
    security::AuthzDecision decision = user_authz_->Authorize(rq);
    d.allowed = decision.allowed;
    d.reason = decision.reason;
    d.user_arn = id->arn;
  }
  if (!d.allowed) {
    TLOG_INFO("audit", "mqtt {} denied: client={} user={} resource={}: {}", action, client.client_id,
              client.identity, resource, d.reason);
    Denied(action, resource, topic, "", d.reason, nullptr, client, d.user_arn);
  }
  bool allowed = d.allowed;
  std::lock_guard<std::mutex> lock(mu_);
  if (gen == user_decisions_generation_) {
    if (user_decisions_.size() > 100000) user_decisions_.clear();
    user_decisions_[key] = std::move(d);
  }
  return allowed;
}

bool DevicePolicyHook::Allow(mqtt::AuthzAction action, const mqtt::ClientInfo& client, std::string_view topic) {
  const char* name = "iot:Connect";
  std::string_view kind = "client/";
  switch (action) {
    case mqtt::AuthzAction::kConnect: break;
    case mqtt::AuthzAction::kPublish: name = "iot:Publish"; kind = "topic/"; break;
    case mqtt::AuthzAction::kRetainPublish: name = "iot:RetainPublish"; kind = "topic/"; break;
    case mqtt::AuthzAction::kSubscribe: name = "iot:Subscribe"; kind = "topicfilter/"; break;
    case mqtt::AuthzAction::kReceive: name = "iot:Receive"; kind = "topic/"; break;
  }
  bool connect = action == mqtt::AuthzAction::kConnect;
  std::string_view target = connect ? std::string_view(client.client_id) : topic;
  auto make_resource = [&] {
    std::string r = "arn:aws:iot:" + region_ + ":" + account_id_ + ":";
    r.append(kind).append(target);
    return r;
  };
  if (!StartsWith(client.identity, kCertIdentityPrefix)) {
    // Anonymous clients (only when the operator allows them) and certificates from a configured
    // client CA outside the registry are not restricted (docs/iot.md); IAM users are
    // authorised by their IAM policies.
    if (client.identity.empty() || StartsWith(client.identity, "cert:")) return true;
    return AllowUser(name, make_resource(), client, topic);
  }
  std::string_view cert_view = std::string_view(client.identity).substr(std::string_view(kCertIdentityPrefix).size());
  // iot:ConnectAttributes (developerguide/connect-policy): what this CONNECT asks for.
  std::vector<std::string> attrs;
  if (connect) {
    if (client.persistent_session) attrs.push_back("PersistentConnect");
    if (client.has_will) attrs.push_back("LastWill");
  }
  // The cache key: certificate, client id, action and the resource's kind and name (region and
  // account are this hook's own). Every PUBLISH asks, so it is built in a buffer this thread
  // reuses, and the resource ARN only when the cache does not answer: a cached allow costs no
  // allocation.
  thread_local std::string key;
  key.clear();
  key.append(cert_view).append(1, '\0').append(client.client_id).append(1, '\0').append(name);
  key.append(1, '\0').append(kind).append(target);
  for (const auto& a : attrs) key.append(1, '\0').append(a);
  std::shared_ptr<const DeviceContext> ctx;
  uint64_t gen = 0;
  std::optional<Cached> denied;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = decisions_.find(key);
    if (it != decisions_.end()) {
      if (it->second.decision.allowed) return true;
      denied = it->second;
    } else {
      auto c = contexts_.find(std::string(cert_view) + '\0' + client.client_id);
      if (c != contexts_.end()) ctx = c->second;
      gen = generation_;
    }
  }
  std::string cert_id(cert_view);
  std::string resource = make_resource();
  if (denied) {
    // A repeated denial is served from the cache but still reaches the audit trail (which
    // throttles per device).
    Denied(name, resource, topic, cert_id, denied->decision.reason, denied->ctx.get(), client);
    return false;
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
    d = EvaluateIotPolicies(*ctx, client.client_id, name, resource, connect ? &attrs : nullptr);
  }
  if (!d.allowed) {
    // The audit record names the deciding statement and the values the variables resolved to.
    TLOG_INFO("audit", "mqtt {} denied: client={} certificate={} resource={} thingName={} cn={}: {}", name,
              client.client_id, cert_id, resource, ctx->thing_name, ctx->subject_cn, d.reason);
    Denied(name, resource, topic, cert_id, d.reason, ctx.get(), client);
  }
  bool allowed = d.allowed;
  std::lock_guard<std::mutex> lock(mu_);
  if (gen == generation_) {
    if (decisions_.size() > 100000) decisions_.clear();
    decisions_[key] = Cached{std::move(d), ctx};
    contexts_[cert_id + '\0' + client.client_id] = ctx;
  }
  return allowed;
}

}  // namespace tarn::gateway::iot
