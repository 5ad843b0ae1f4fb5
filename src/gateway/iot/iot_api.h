// The AWS IoT control plane (REST-JSON, signing name "iot"): topic rules, things, thing types,
// thing groups, certificates, policies and DescribeEndpoint, stored in the MetaStore (module
// "iot"). Registered on the ApiRouter with RegisterRestJsonService("iot", …): the router
// dispatches on the service named in the SigV4 credential scope, so /things/… and /rules/…
// never collide with S3 paths (docs/iot.md).
//
// Thread-safety: Handle() is thread-safe (state lives in SQLite; the rules engine swaps
// immutable snapshots).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "net/aws_api.h"

namespace tarn {
class MetaStore;
class Clock;
}
namespace tarn::security {
class Authorizer;
}
namespace tarn::gateway::rules {
class RulesEngine;
}

namespace tarn::gateway::iot {

class DeviceCa;

struct IotApiOptions {
  std::string account_id;
  std::string region;
  // DescribeEndpoint's answer (host:port of the MQTT TLS listener, or of the API when none).
  std::function<std::string()> endpoint;
};

class IotApi final : public net::ApiService {
 public:
  IotApi(MetaStore* meta, rules::RulesEngine* engine, DeviceCa* ca,
         const security::Authorizer* authz, Clock* clock, IotApiOptions options);
  ~IotApi() override;

  // Creates the "iot" tables and installs the stored topic rules into the engine.
  Status Open();

  Status Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) override;

  // Called after any change to policies, attachments or certificate status (device-policy
  // caches invalidate on it).
  void SetChangeListener(std::function<void()> fn) { on_change_ = std::move(fn); }
  // Called (after the change listener) with the certificate id — the SHA-256 fingerprint of
  // its DER encoding — when a certificate stops being ACTIVE (UpdateCertificate to INACTIVE or
  // REVOKED, DeleteCertificate, RegisterCertificate as INACTIVE): the composition root closes
  // the MQTT connections that presented it, as AWS IoT does.
  void SetCertificateDeactivatedListener(std::function<void(const std::string&)> fn) {
    on_deactivated_ = std::move(fn);
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::function<void()> on_change_;
  std::function<void(const std::string&)> on_deactivated_;
};

}  // namespace tarn::gateway::iot

namespace tarn::gateway::iot {

// The IoT data plane over HTTPS (signing name "iotdata"): Publish, POST /topics/{topic}?qos=
// (`aws iot-data publish`). The message goes to the rules engine and, when a broker is wired,
// to MQTT subscribers.
class IotDataApi final : public net::ApiService {
 public:
  IotDataApi(rules::RulesEngine* engine, const security::Authorizer* authz, Clock* clock,
             std::string region, std::string account_id);
  // Delivers to the broker's subscribers (set by the composition root when MQTT runs).
  using BrokerPublish =
      std::function<Status(const std::string& topic, const std::string& payload, int qos, bool retain)>;
  void SetBrokerPublish(BrokerPublish fn) {
    broker_publish_ = std::move(fn);
  }
  Status Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) override;

 private:
  rules::RulesEngine* engine_;
  const security::Authorizer* authz_;
  Clock* clock_;
  std::string region_, account_id_;
  BrokerPublish broker_publish_;
};

}  // namespace tarn::gateway::iot
