// AWS IoT device policies for the MQTT broker: an mqtt::Authenticator that admits a client
// certificate only when it is registered and ACTIVE, and an mqtt::AuthorizationHook that
// evaluates the IoT policies attached to that certificate (and to the thing groups of the thing
// it connects as) on every connect, publish, retain-publish, subscribe and receive
// (developerguide/iot-policy-actions, iot-action-resources, iot-policy-variables). A
// certificate with no policy can do nothing; an explicit Deny wins. Policies are compiled and
// evaluated by the IAM policy engine (security/iam/policy.h), so Condition blocks, `*`/`?`
// wildcards and the escaping of policy-variable values behave as in IAM.
// Clients that log in with an IAM user name and password are authorised by that user's IAM
// policies (SetUserAuthorizer): the same actions and resources, evaluated by the one IAM
// authorizer, so an IAM user needs iot:Connect / iot:Publish / … like any AWS principal (the
// account root may do everything). Anonymous clients (only when the operator allows them) and
// certificates from a configured client CA that are not in the registry are not restricted.
//
// Decisions are cached per (certificate, client id, action, resource) and dropped whenever the
// registry changes (Invalidate(), called by IotApi on any policy, attachment, thing or
// certificate change), so a change takes effect on the next packet.
//
// Every denial — the uncached and the cached ones — goes to the denial sink (the audit trail,
// which throttles per device, see docs/iot.md).
//
// Thread-safety: thread-safe. SetDenialSink() must be called before the hook is used.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/identity.h"
#include "gateway/mqtt/auth.h"

namespace tarn {
class MetaStore;
}
namespace tarn::security {
class Authorizer;
}
namespace tarn::security::iam {
class Policy;
}

namespace tarn::gateway::iot {

// What a policy is evaluated against, read from the registry.
struct DeviceContext {
  bool certificate_known = false;
  std::string certificate_id;
  std::string certificate_status;  // ACTIVE, INACTIVE, REVOKED
  std::string subject_cn;
  std::string thing_name;  // set when a thing named like the client id is attached to the cert
  std::string thing_type_name;
  std::map<std::string, std::string> thing_attributes;
  // The policies attached to the certificate and to the thing's groups (default versions),
  // compiled; AddPolicy() compiles a document.
  std::vector<std::shared_ptr<const security::iam::Policy>> policies;

  // Compiles `document` as policy `name`; false (and nothing added) if it does not parse.
  bool AddPolicy(const std::string& name, const std::string& document);
};

// The decision and why (for the audit record).
struct PolicyDecision {
  bool allowed = false;
  // "allowed by policy device statement 1", "explicit deny by policy device statement 3
  // (iot:Publish on arn:…)" or "implicit deny: …".
  std::string reason;
};

// Evaluates the context's policies for `action` ("iot:Publish") on `resource`. Policy variables
// and condition keys: iot:ClientId, iot:Connection.Thing.ThingName / .ThingTypeName /
// .IsAttached / .Attributes[name], iot:Certificate.Subject.CommonName, and iot:ConnectAttributes
// ("PersistentConnect", "LastWill") when `connect_attributes` is given.
PolicyDecision EvaluateIotPolicies(const DeviceContext& ctx, const std::string& client_id,
                                   const std::string& action, const std::string& resource,
                                   const std::vector<std::string>* connect_attributes = nullptr);

// A denied device operation, for the audit trail.
struct DeviceDenial {
  std::string action;    // "iot:Publish"
  std::string resource;  // arn:aws:iot:<region>:<account>:topic/…
  std::string topic;     // the topic name or filter ("" for connect)
  std::string certificate_id;
  std::string reason;    // PolicyDecision::reason, or why the certificate was refused
  // The values the policy variables resolved to ("" = did not resolve).
  std::string thing_name;
  std::string subject_cn;
  // Set when the client logged in as an IAM user (then certificate_id is empty): its ARN.
  std::string user_arn;
  mqtt::ClientInfo client;
};
using DenialSink = std::function<void(const DeviceDenial&)>;

class DevicePolicyHook final : public mqtt::Authenticator, public mqtt::AuthorizationHook {
 public:
  DevicePolicyHook(MetaStore* meta, mqtt::Authenticator* password_auth, std::string region,
                   std::string account_id);
  ~DevicePolicyHook() override;

  // Receives every denial; called on network threads and with the broker's lock held (for
  // receive), so it must only queue.
  void SetDenialSink(DenialSink sink) { sink_ = std::move(sink); }

  // How clients that logged in with an IAM user name are authorised: `identity_of` resolves
  // the user, `generation` changes whenever any IAM policy or membership changes (cached
  // decisions are dropped then). Without it, such clients are denied everything but connect by
  // root. Must be called before the hook is used.
  using IdentityResolver = std::function<Result<Identity>(const std::string& user_name)>;
  void SetUserAuthorizer(const security::Authorizer* authz, IdentityResolver identity_of,
                         std::function<uint64_t()> generation);

  Result<std::string> Authenticate(const mqtt::ClientInfo& client,
                                   const std::optional<std::string>& username,
                                   const std::optional<std::string>& password) override;
  bool Allow(mqtt::AuthzAction action, const mqtt::ClientInfo& client, std::string_view topic) override;
  // Certificate and anonymous clients: bumped by Invalidate(). IAM users: 0 (their decisions
  // also follow IAM's generation).
  uint64_t PublishDecisionEpoch(const mqtt::ClientInfo& client) override;

  // Drops every cached decision and context.
  void Invalidate();

 private:
  struct Cached {
    PolicyDecision decision;
    std::shared_ptr<const DeviceContext> ctx;
  };
  Result<DeviceContext> Load(const std::string& cert_id, const std::string& client_id);
  void Denied(const std::string& action, const std::string& resource, std::string_view topic,
              const std::string& cert_id, const std::string& reason, const DeviceContext* ctx,
              const mqtt::ClientInfo& client, const std::string& user_arn = "");
  bool AllowUser(const char* action, const std::string& resource, const mqtt::ClientInfo& client,
                 std::string_view topic);

  struct UserDecision {
    bool allowed = false;
    std::string reason;
    std::string user_arn;
  };

  MetaStore* meta_;
  mqtt::Authenticator* password_auth_;
  std::string region_, account_id_;
  DenialSink sink_;
  std::mutex mu_;
  std::unordered_map<std::string, Cached> decisions_;  // guarded by mu_
  std::unordered_map<std::string, std::shared_ptr<const DeviceContext>> contexts_;  // guarded by mu_
  uint64_t generation_ = 0;  // guarded by mu_; bumped by Invalidate()
  std::atomic<uint64_t> epoch_{1};  // bumped by Invalidate(); PublishDecisionEpoch

  const security::Authorizer* user_authz_ = nullptr;
  IdentityResolver identity_of_;
  std::function<uint64_t()> iam_generation_;
  std::unordered_map<std::string, UserDecision> user_decisions_;  // guarded by mu_
  uint64_t user_decisions_generation_ = 0;                        // guarded by mu_
};

}  // namespace tarn::gateway::iot
