// Authentication and authorisation hooks of the MQTT broker. The broker calls them; what
// they check against (IAM users, device certificates, device policies) is decided by whoever
// constructs the broker (src/lake/lake.cc).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tarn::security {
class IamStore;
}

namespace tarn::gateway::mqtt {

// The client a hook is asked about.
struct ClientInfo {
  std::string client_id;
  std::string username;   // as sent in CONNECT; empty if none
  std::string identity;   // authenticated principal ("root", "cert:<CN>"); empty = anonymous
  std::string listener;   // "mqtt", "mqtts", "mqtt_ws"
  std::string remote_ip;
  bool has_client_cert = false;
  std::string cert_subject_cn;
  std::string cert_fingerprint_sha256;
  int protocol_version = 4;  // 4 = MQTT 3.1.1, 5 = MQTT 5.0
  // From CONNECT, for AWS IoT's iot:ConnectAttributes: the session outlives the connection
  // (3.1.1 clean session 0, 5.0 session expiry > 0), and a will message is set.
  bool persistent_session = false;
  bool has_will = false;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // Returns the identity of the client, "" for an anonymous client that is allowed, or an
  // error: kInvalidPassword (bad user name or password), kAccessDenied (not authorised).
  // May block (password hashing, metadata lookup); it runs on a network thread.
  virtual Result<std::string> Authenticate(const ClientInfo& client,
                                           const std::optional<std::string>& username,
                                           const std::optional<std::string>& password) = 0;
};

// kRetainPublish is asked in addition to kPublish for a PUBLISH (or will) with the RETAIN
// flag, as AWS IoT's iot:RetainPublish is.
enum class AuthzAction { kConnect, kPublish, kSubscribe, kReceive, kRetainPublish };
const char* AuthzActionName(AuthzAction a);

// Called for connect (topic empty), publish and retain-publish (topic name; also for the will
// message when it is published), subscribe (topic filter, without a "$share/<group>/" prefix)
// and receive (topic name, before a message is delivered to a client). Must be fast and must
// not call back into the broker (it may run with the broker's lock held).
class AuthorizationHook {
 public:
  virtual ~AuthorizationHook() = default;
  virtual bool Allow(AuthzAction action, const ClientInfo& client, std::string_view topic) = 0;
  // While this returns the same non-zero value for a client, the caller may remember that the
  // client was allowed kPublish on a topic instead of asking again for every PUBLISH (the broker
  // remembers each connection's last allowed topic); 0 = ask every time. A hook returns a new
  // value as soon as any decision may have changed (a policy edit), so the change applies to
  // the next packet. Denials are never remembered. Cheap; any thread.
  virtual uint64_t PublishDecisionEpoch(const ClientInfo& client) { return 0; }
};

// Username/password against Tarn's IAM users (the user's password, checked against its SCRAM
// verifier) and client certificates on mutual TLS (identity "cert:<subject CN>").
// Anonymous clients (no credentials, no certificate) are accepted only if allow_anonymous.
class IamAuthenticator final : public Authenticator {
 public:
  IamAuthenticator(security::IamStore* iam, bool allow_anonymous);
  ~IamAuthenticator() override;
  Result<std::string> Authenticate(const ClientInfo& client,
                                   const std::optional<std::string>& username,
                                   const std::optional<std::string>& password) override;

 private:
  struct Cache;
  security::IamStore* iam_;
  bool allow_anonymous_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace tarn::gateway::mqtt
