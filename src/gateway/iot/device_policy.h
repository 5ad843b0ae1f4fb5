// AWS IoT device policies for the MQTT broker: an mqtt::Authenticator that admits a client
// certificate only when it is registered and ACTIVE, and an mqtt::AuthorizationHook that
// evaluates the IoT policies attached to that certificate on every connect, publish,
// subscribe and receive (developerguide/iot-policy-actions, iot-action-resources,
// iot-policy-variables). A certificate with no policy can do nothing; an explicit Deny wins.
// Clients that log in with an IAM user name and password keep the IAM behaviour, and so do
// certificates from a configured client CA that are not in the registry.
//
// Decisions are cached per (certificate, client id, action, topic) and dropped whenever the
// registry changes (Invalidate(), called by IotApi on any policy, attachment, thing or
// certificate change), so a change takes effect on the next packet.
//
// Thread-safety: thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/mqtt/auth.h"

namespace tarn {
class MetaStore;
}

namespace tarn::gateway::iot {

// What a policy is evaluated against, read from the registry.
struct DeviceContext {
  bool certificate_known = false;
  std::string certificate_id;
  std::string certificate_status;  // ACTIVE, INACTIVE, REVOKED
  std::string subject_cn;
  std::string thing_name;  // set when a thing named like the client id is attached to the cert
  std::map<std::string, std::string> thing_attributes;
  // (policy name, default-version document) of every policy attached to the certificate.
  std::vector<std::pair<std::string, std::string>> policies;
};

// The decision and why (for the audit record).
struct PolicyDecision {
  bool allowed = false;
  std::string reason;  // "policy device statement 1 (Allow iot:Publish …)" or "implicit deny"
};

// Evaluates `policies` for `action` ("iot:Publish") on `resource` with the context's variables.
PolicyDecision EvaluateIotPolicies(const DeviceContext& ctx, const std::string& client_id,
                                   const std::string& action, const std::string& resource);

class DevicePolicyHook final : public mqtt::Authenticator, public mqtt::AuthorizationHook {
 public:
  DevicePolicyHook(MetaStore* meta, mqtt::Authenticator* password_auth, std::string region,
                   std::string account_id);
  ~DevicePolicyHook() override;

  Result<std::string> Authenticate(const mqtt::ClientInfo& client,
                                   const std::optional<std::string>& username,
                                   const std::optional<std::string>& password) override;
  bool Allow(mqtt::AuthzAction action, const mqtt::ClientInfo& client, std::string_view topic) override;

  // Drops every cached decision and context.
  void Invalidate();

 private:
  Result<DeviceContext> Load(const std::string& cert_id, const std::string& client_id);

  MetaStore* meta_;
  mqtt::Authenticator* password_auth_;
  std::string region_, account_id_;
  std::mutex mu_;
  std::unordered_map<std::string, bool> decisions_;  // guarded by mu_
  std::unordered_map<std::string, std::shared_ptr<const DeviceContext>> contexts_;  // guarded by mu_
  uint64_t generation_ = 0;  // guarded by mu_; bumped by Invalidate()
};

}  // namespace tarn::gateway::iot
