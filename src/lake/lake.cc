#include "lake/lake.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "catalog/crawler.h"
#include "catalog/glue_api.h"
#include "catalog/object_source.h"
#include "catalog/store.h"
#include "gateway/iot/ca.h"
#include "gateway/iot/device_policy.h"
#include "gateway/iot/iot_api.h"
#include "gateway/rules/engine.h"
#include "streams/firehose_api.h"
#include "streams/service.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/data_dir.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/meta_store.h"
#include "core/strings.h"
#include "gateway/mqtt/auth.h"
#include "gateway/mqtt/broker.h"
#include "net/aws_api.h"
#include "net/http_server.h"
#include "net/stream_server.h"
#include "security/audit/audit.h"
#include "security/iam/authorizer.h"
#include "security/iam/directory.h"
#include "security/iam/iam_service.h"
#include "security/iam/iam_store.h"
#include "security/sigv4/sigv4.h"
#include "security/keyring.h"
#include "security/authz.h"
#include "storage/local_store.h"
#include "storage/s3/s3_service.h"
#include "catalog/catalog.h"
#include "sql/duckdb/engine.h"
#include "sql/lake/lake_sql.h"
#include "sql/pgwire/server.h"

namespace tarn {

namespace {

Status MigrateCore(MetaStore* meta) {
  return meta->Migrate("lake", {
      {1, "CREATE TABLE IF NOT EXISTS lake_info (id INTEGER PRIMARY KEY CHECK (id = 1), "
          "account_id TEXT NOT NULL, region TEXT NOT NULL, created INTEGER NOT NULL);"},
  });
}

// Reads or records the lake's account id and region. The account id is fixed at init; a
// config that names another one is an error rather than a silent re-labelling of ARNs.
Result<bool> EnsureLakeInfo(MetaStore* meta, Config* config) {
  ASSIGN_OR_RETURN(Statement q, meta->Prepare("SELECT account_id, region FROM lake_info WHERE id = 1"));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (row) {
    std::string account = q.ColumnText(0);
    if (!config->account_id.empty() && config->account_id != account) {
      return Error(ErrorCode::kFailedPrecondition,
                   "this data directory belongs to account " + account + ", not " + config->account_id);
    }
    config->account_id = account;
    return false;
  }
  if (config->account_id.empty()) config->account_id = NewAccountId();
  ASSIGN_OR_RETURN(Statement ins, meta->Prepare(
      "INSERT INTO lake_info(id, account_id, region, created) VALUES(1, ?1, ?2, ?3)"));
  ins.Bind(1, config->account_id).Bind(2, config->region).Bind(3, Clock::Real()->NowSeconds());
  RETURN_IF_ERROR(ins.Run());
  return true;
}

// Audit cadences from the environment (seconds), for tests and small deployments.
int64_t EnvSeconds(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  auto n = ParseInt64(v);
  return n && *n > 0 ? *n : fallback;
}

// A device operation denied by its IoT policy, as an audit record (docs/iot.md "Audit"): the
// certificate is the principal, the deciding statement and the values the policy variables
// resolved to go to additionalEventData; throttled per (certificate, client id, action).
// Resolves an IAM user name (SQL and MQTT logins) to the identity the authorizer evaluates.
std::function<Result<Identity>(const std::string&)> UserIdentityResolver(security::iam::IamDirectory* directory) {
  return [directory](const std::string& user) -> Result<Identity> {
    ASSIGN_OR_RETURN(security::IamUser u, directory->GetUser(user));
    return directory->UserIdentity(u);
  };
}

security::audit::ServiceEvent DeviceDenialEvent(const gateway::iot::DeviceDenial& d,
                                                const std::string& region, const std::string& account) {
  security::audit::ServiceEvent e;
  e.event_source = "iot.amazonaws.com";
  e.event_name = d.action.substr(d.action.find(':') + 1);  // iot:Publish -> Publish
  if (!d.user_arn.empty()) {
    // A client that logged in (or tried to) with an IAM user name.
    e.principal_type = "IAMUser";
    e.principal_arn = d.user_arn;
    e.principal_id = d.client.username;
    e.username = d.client.username;
  } else {
    e.principal_type = "IoTCertificate";
    e.principal_id = d.certificate_id;
    e.principal_arn = "arn:aws:iot:" + region + ":" + account + ":cert/" + d.certificate_id;
    e.username = d.certificate_id;
  }
  e.source_ip = d.client.remote_ip;
  e.user_agent = std::string(d.client.protocol_version == 5 ? "MQTT 5.0" : "MQTT 3.1.1") + " (" +
                 d.client.listener + ")";
  e.resource_arn = d.resource;
  e.resource_type = d.action == "iot:Connect"     ? "AWS::IoT::Client"
                    : d.action == "iot:Subscribe" ? "AWS::IoT::TopicFilter"
                                                  : "AWS::IoT::Topic";
  e.error_code = "AccessDenied";
  e.error_message = d.reason;
  e.request_parameters["clientId"] = d.client.client_id;
  if (d.action != "iot:Connect") {
    e.request_parameters[d.action == "iot:Subscribe" ? "topicFilter" : "topicName"] = d.topic;
  }
  nlohmann::json vars = {{"iot:ClientId", d.client.client_id},
                         {"iot:Connection.Thing.ThingName", d.thing_name},
                         {"iot:Certificate.Subject.CommonName", d.subject_cn}};
  e.additional_event_data_json = nlohmann::json({{"decision", d.reason}, {"policyVariables", vars}}).dump();
  return e;
}

}  // namespace

Result<InitResult> InitializeDataDir(Config* config) {
  RETURN_IF_ERROR(ValidateConfig(*config));
  DataDir dir(config->data_dir);
  RETURN_IF_ERROR(dir.Create());
  RETURN_IF_ERROR(dir.Lock());
  ASSIGN_OR_RETURN(auto meta, MetaStore::Open(dir.meta_db()));
  RETURN_IF_ERROR(MigrateCore(meta.get()));
  ASSIGN_OR_RETURN(auto keyring, security::Keyring::Open(dir.keys()));
  InitResult result;
  RETURN_IF_ERROR(meta->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(bool created, EnsureLakeInfo(meta.get(), config));
    (void)created;
    return Status::OK();
  }));
  security::IamStore iam(meta.get(), keyring.get(), config->account_id);
  RETURN_IF_ERROR(iam.Migrate());
  ASSIGN_OR_RETURN(bool has_root, iam.HasRootUser());
  result.account_id = config->account_id;
  result.region = config->region;
  if (!has_root) {
    security::RootCredentials creds = security::IamStore::NewRootCredentials();
    RETURN_IF_ERROR(iam.CreateRootUser(creds));
    result.created = true;
    result.access_key_id = creds.access_key_id;
    result.secret_access_key = creds.secret_access_key;
    result.password = creds.password;
  }
  return result;
}

struct Lake::Impl {
  Config config;
  std::unique_ptr<DataDir> dir;
  std::unique_ptr<MetaStore> meta;
  std::unique_ptr<security::Keyring> keyring;
  std::unique_ptr<security::IamStore> iam;
  // IAM: the directory (users, keys, policies, sessions), the one Authorizer every service
  // is handed, SigV4 authentication on the router, and the IAM/STS query APIs.
  std::unique_ptr<security::iam::IamDirectory> iam_directory;
  std::unique_ptr<security::iam::IamAuthorizer> authz;
  std::unique_ptr<security::sigv4::SigV4Authenticator> sigv4;
  std::unique_ptr<security::iam::IamService> iam_api;
  std::unique_ptr<security::iam::StsService> sts_api;
  // The audit trail: every finished call, CloudTrail records into the `audit` bucket.
  std::unique_ptr<security::audit::AuditTrail> audit;
  std::unique_ptr<security::audit::CloudTrailApi> cloudtrail;
  // The object store every module writes through (landing, curated, audit zones).
  std::unique_ptr<storage::LocalObjectStore> store;
  std::unique_ptr<storage::s3::S3Service> s3;
  std::unique_ptr<net::ApiRouter> router;
  std::unique_ptr<catalog::CatalogStore> catalog;
  std::unique_ptr<catalog::ObjectSource> crawl_source;
  std::unique_ptr<catalog::CrawlerService> crawlers;
  std::unique_ptr<catalog::GlueApi> glue;
  // Delivery streams (Firehose_20150804.* JSON 1.1); after store and catalog, which it uses.
  std::unique_ptr<streams::StreamService> streams;
  std::unique_ptr<streams::FirehoseApi> firehose;
  // AWS IoT control plane ("iot" REST-JSON) and the rules engine; the engine's actions write
  // through the object store and the delivery streams, so it stops before them.
  std::unique_ptr<gateway::iot::DeviceCa> iot_ca;
  std::unique_ptr<gateway::rules::RulesEngine> rules;
  std::unique_ptr<gateway::iot::IotApi> iot;
  std::unique_ptr<gateway::iot::IotDataApi> iot_data;
  std::string iot_endpoint;  // DescribeEndpoint's answer, set in Start()
  std::unique_ptr<net::HttpServer> api_server;
  std::unique_ptr<gateway::mqtt::Authenticator> mqtt_authn;
  // AWS IoT device policies: admits registered ACTIVE certificates and evaluates the policies
  // attached to them; IAM user/password clients pass through to mqtt_authn.
  std::unique_ptr<gateway::iot::DevicePolicyHook> device_policy;
  std::unique_ptr<gateway::mqtt::Broker> mqtt;
  std::unique_ptr<net::StreamServer> stream_server;  // MQTT, MQTTS, MQTT over WebSocket
  std::unique_ptr<sql::Database> warehouse;  // <data>/warehouse/tarn.duckdb
  // The lake in the warehouse: catalog tables over pgwire, COPY/UNLOAD, statement authorisation
  // and audit (src/sql/lake). Outlives the SQL server's sessions.
  std::unique_ptr<catalog::Catalog> sql_catalog;
  std::unique_ptr<sql::lake::LakeSql> sql_lake;
  std::unique_ptr<sql::pgwire::PgServer> sql_server;
  std::string endpoints_json;
};

Lake::Lake() : impl_(std::make_unique<Impl>()) {}
Lake::~Lake() { Stop(); }

const Config& Lake::config() const { return impl_->config; }
std::string Lake::EndpointsJson() const { return impl_->endpoints_json; }

Result<std::unique_ptr<Lake>> Lake::Open(Config config) {
  std::unique_ptr<Lake> lake(new Lake());
  Impl& m = *lake->impl_;
  m.config = std::move(config);
  RETURN_IF_ERROR(ValidateConfig(m.config));
  m.dir = std::make_unique<DataDir>(m.config.data_dir);
  RETURN_IF_ERROR(m.dir->Create());
  RETURN_IF_ERROR(m.dir->Lock());
  ASSIGN_OR_RETURN(m.meta, MetaStore::Open(m.dir->meta_db()));
  RETURN_IF_ERROR(MigrateCore(m.meta.get()));
  ASSIGN_OR_RETURN(bool created, EnsureLakeInfo(m.meta.get(), &m.config));
  if (created) {
    return Error(ErrorCode::kFailedPrecondition, "data directory " + m.config.data_dir + " is not initialised");
  }
  ASSIGN_OR_RETURN(m.keyring, security::Keyring::Open(m.dir->keys()));
  m.iam = std::make_unique<security::IamStore>(m.meta.get(), m.keyring.get(), m.config.account_id);
  RETURN_IF_ERROR(m.iam->Migrate());
  ASSIGN_OR_RETURN(m.store, storage::LocalObjectStore::Open(m.dir->objects(), m.meta.get(),
                                                           m.config.region,
                                                           {"landing", "curated", "audit"}));
  m.router = std::make_unique<net::ApiRouter>(m.config.region);

  m.iam_directory = std::make_unique<security::iam::IamDirectory>(m.iam.get(), m.meta.get(), m.keyring.get(),
                                                                  Clock::Real());
  RETURN_IF_ERROR(m.iam_directory->Migrate());
  m.authz = std::make_unique<security::iam::IamAuthorizer>(m.iam_directory.get(), Clock::Real());
  m.sigv4 = std::make_unique<security::sigv4::SigV4Authenticator>(m.iam_directory.get(), Clock::Real());
  m.router->SetAuthenticator(m.sigv4.get());
  m.iam_api = std::make_unique<security::iam::IamService>(m.iam_directory.get(), m.authz.get());
  m.sts_api = std::make_unique<security::iam::StsService>(m.iam_directory.get(), m.authz.get(), Clock::Real());
  m.router->RegisterQueryService("iam", security::iam::kIamNamespace, m.iam_api.get());
  m.router->RegisterQueryService("sts", security::iam::kStsNamespace, m.sts_api.get());

  security::audit::AuditOptions ao;
  ao.account_id = m.config.account_id;
  ao.region = m.config.region;
  ao.keys_dir = m.dir->keys();
  ao.index_interval_ms = EnvSeconds("TARN_AUDIT_INDEX_MS", 100);  // milliseconds
  ao.flush_seconds = EnvSeconds("TARN_AUDIT_FLUSH_SECONDS", 60);
  ao.digest_seconds = EnvSeconds("TARN_AUDIT_DIGEST_SECONDS", 3600);
  ao.throttle_window_seconds = EnvSeconds("TARN_AUDIT_DEVICE_WINDOW_SECONDS", 60);
  ASSIGN_OR_RETURN(m.audit, security::audit::AuditTrail::Open(m.meta.get(), m.store.get(), ao));
  m.router->SetAuditSink(m.audit.get());
  m.cloudtrail = std::make_unique<security::audit::CloudTrailApi>(m.audit.get(), m.authz.get());
  m.router->RegisterJsonService("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101", "cloudtrail",
                                m.cloudtrail.get());

  // S3 REST API (path- and virtual-host style) over the store, authorised by IAM (identity
  // policies + bucket policies).
  storage::s3::S3Options s3_options;
  s3_options.region = m.config.region;
  s3_options.account_id = m.config.account_id;
  m.s3 = std::make_unique<storage::s3::S3Service>(m.store.get(), m.authz.get(), s3_options);

  // Glue Data Catalog (AWSGlue.* JSON 1.1), authorised by IAM.
  m.catalog = std::make_unique<catalog::CatalogStore>(m.meta.get(), Clock::Real(), m.config.account_id);
  RETURN_IF_ERROR(m.catalog->Migrate());
  m.crawl_source = catalog::NewObjectStoreSource(m.store.get());
  m.crawlers = std::make_unique<catalog::CrawlerService>(m.catalog.get(), m.crawl_source.get(),
                                                         Clock::Real());
  m.glue = std::make_unique<catalog::GlueApi>(m.catalog.get(), m.crawlers.get(), m.authz.get(),
                                              m.config.region);
  m.router->RegisterJsonService("AWSGlue", "glue", m.glue.get());

  // Delivery streams: WALs under <data>/wal/<stream>/, objects into the store, schemas and new
  // partitions through the catalog; authorised by IAM.
  if (m.config.ServiceEnabled("streams")) {
    streams::StreamServiceOptions so;
    so.wal_root = m.dir->wal();
    so.account_id = m.config.account_id;
    so.region = m.config.region;
    so.wal.quota_bytes = m.config.streams.wal_quota_mb << 20;
    so.wal.segment_bytes = m.config.streams.wal_segment_mb << 20;
    so.wal.committers = int(m.config.streams.wal_committers);
    so.flush_threads = int(m.config.streams.flush_threads);
    so.dedup_window_seconds = int64_t(m.config.streams.dedup_window_seconds);
    so.dedup_max_entries = size_t(m.config.streams.dedup_max_entries);
    so.compaction_files = size_t(m.config.streams.compaction_files);
    so.compaction_grace_ms = int64_t(m.config.streams.compaction_grace_seconds * 1000);
    so.zero_interval_gap_ms = int64_t(m.config.streams.zero_interval_gap_ms);
    ASSIGN_OR_RETURN(m.streams, streams::StreamService::Open(m.meta.get(), m.store.get(),
                                                            m.catalog.get(), so));
    m.firehose = std::make_unique<streams::FirehoseApi>(m.streams.get(), m.authz.get());
    m.router->RegisterJsonService("Firehose_20150804", "firehose", m.firehose.get());
  }

  if (m.config.ServiceEnabled("mqtt")) {
    const MqttConfig& mc = m.config.mqtt_broker;
    m.mqtt_authn = std::make_unique<gateway::mqtt::IamAuthenticator>(m.iam.get(), mc.allow_anonymous);
    gateway::mqtt::BrokerOptions bo;
    bo.allow_anonymous = mc.allow_anonymous;
    bo.max_packet_size = mc.max_packet_size;
    bo.max_queued_messages = mc.max_queued_messages;
    bo.max_session_expiry = mc.max_session_expiry;
    bo.data_dir = m.dir->mqtt();
    // Device policies (docs/iot.md): the hook both authenticates certificates against the
    // registry and authorises every connect / publish / subscribe / receive.
    m.device_policy = std::make_unique<gateway::iot::DevicePolicyHook>(
        m.meta.get(), m.mqtt_authn.get(), m.config.region, m.config.account_id);
    m.device_policy->SetDenialSink([audit = m.audit.get(), region = m.config.region,
                                    account = m.config.account_id](const gateway::iot::DeviceDenial& d) {
      audit->RecordServiceEvent(d.certificate_id + '\0' + d.client.client_id + '\0' + d.action, d.resource,
                                [&] { return DeviceDenialEvent(d, region, account); });
    });
    // MQTT clients that log in with an IAM user name are authorised by that user's IAM
    // policies (iot:Connect, iot:Publish, … on the same ARNs as devices).
    security::iam::IamDirectory* directory = m.iam_directory.get();
    m.device_policy->SetUserAuthorizer(
        m.authz.get(),
        UserIdentityResolver(directory),
        [directory] { return directory->Generation(); });
    ASSIGN_OR_RETURN(m.mqtt, gateway::mqtt::Broker::Open(bo, m.device_policy.get(), m.device_policy.get()));
  }
  m.router->SetS3Service(m.s3.get());

  // AWS IoT: REST-JSON paths (/things/…, /rules/…) dispatched by the SigV4 credential scope's
  // service name "iot", so they never collide with S3 paths (docs/iot.md). The device CA lives
  // under <data>/keys/. With the broker running, republish goes through its in-process API
  // and every message it routes (including Basic Ingest's $aws/rules/…) reaches the engine.
  ASSIGN_OR_RETURN(m.iot_ca, gateway::iot::DeviceCa::Open(m.dir->keys(), m.config.account_id));
  gateway::rules::ActionTargets targets;
  targets.store = m.store.get();
  targets.streams = m.streams.get();
  if (m.mqtt) {
    gateway::mqtt::Broker* broker = m.mqtt.get();
    targets.republish = [broker](const std::string& topic, const std::string& payload, int qos,
                                 std::function<void()> durable) {
      return broker->PublishDurable(topic, payload, qos, std::move(durable));
    };
  }
  m.rules = std::make_unique<gateway::rules::RulesEngine>(std::move(targets), Clock::Real(), 2);
  gateway::iot::IotApiOptions io;
  io.account_id = m.config.account_id;
  io.region = m.config.region;
  Impl* impl = &m;
  io.endpoint = [impl] { return impl->iot_endpoint; };
  m.iot = std::make_unique<gateway::iot::IotApi>(m.meta.get(), m.rules.get(), m.iot_ca.get(), m.authz.get(),
                                                 Clock::Real(), std::move(io));
  RETURN_IF_ERROR(m.iot->Open());
  if (m.device_policy) {
    gateway::iot::DevicePolicyHook* hook = m.device_policy.get();
    m.iot->SetChangeListener([hook] { hook->Invalidate(); });
    // A certificate that stops being ACTIVE loses its open MQTT connections at once (MQTT 5:
    // DISCONNECT 0x98 Administrative action); reconnecting is refused by the hook.
    gateway::mqtt::Broker* broker = m.mqtt.get();
    m.iot->SetCertificateDeactivatedListener([broker](const std::string& cert_id) {
      size_t n = broker->DisconnectCertificate(cert_id, gateway::mqtt::rc::kAdministrativeAction);
      if (n) TLOG_INFO("iot", "certificate {} deactivated: closed {} MQTT connection(s)", cert_id, n);
    });
  }
  m.router->RegisterRestJsonService("iot", m.iot.get());
  // Older botocore models (boto3 ≤ 1.29) sign the IoT control plane as "execute-api"; Tarn has
  // no API Gateway, so that name means IoT here too.
  m.router->RegisterRestJsonService("execute-api", m.iot.get());
  m.iot_data = std::make_unique<gateway::iot::IotDataApi>(m.rules.get(), m.authz.get(), Clock::Real(),
                                                          m.config.region, m.config.account_id);
  m.router->RegisterRestJsonService("iotdata", m.iot_data.get());
  if (m.mqtt) {
    gateway::rules::RulesEngine* engine = m.rules.get();
    // The device's PUBACK waits until every rule has run: a firehose action returns once the
    // record is in the stream's fsynced WAL, so an acknowledged reading survives kill -9.
    // A message the rules could not take (an append failed and no error action took it over)
    // is refused: MQTT 5 gets the reason code, a 3.1.1 client resends it (docs/iot.md). The
    // origin (packet id, DUP, payload hash) lets streams recognise a resend (docs/streams.md).
    auto feed = [engine](const gateway::mqtt::Message& msg, gateway::mqtt::AckHold hold) {
      if (!engine->AnyRuleFor(msg.topic)) return;
      gateway::rules::InboundMessage in;
      in.topic = msg.topic;
      // With room for simdjson's padding after it: the rules engine parses it in place.
      in.payload.reserve(msg.payload.size() + gateway::rules::ParsedPayload::kPadding);
      in.payload.append(msg.payload);
      in.client_id = msg.origin;
      if (msg.packet_id && !msg.origin.empty()) {
        in.packet_id = msg.packet_id;
        in.dup = msg.dup;
        in.payload_hash = StableHash64(msg.payload, StableHash64(msg.topic));
      }
      if (hold) {
        in.done = [hold](const Status& st) mutable {
          if (!st.ok()) {
            hold->Refuse(GetErrorInfo(st.code()).mqtt_reason, gateway::rules::RetryMaySucceed(st));
          }
          hold.reset();
        };
      }
      engine->Submit(std::move(in));
    };
    // "#" does not match $-topics (MQTT 3.1.1 §4.7.2), so Basic Ingest needs its own filter.
    ASSIGN_OR_RETURN(uint64_t h1, m.mqtt->Subscribe("#", feed, /*counts_as_subscriber=*/false));
    ASSIGN_OR_RETURN(uint64_t h2, m.mqtt->Subscribe("$aws/rules/#", feed, /*counts_as_subscriber=*/false));
    (void)h1;
    (void)h2;
    m.iot_data->SetBrokerPublish([broker = m.mqtt.get()](const std::string& topic, const std::string& payload,
                                                          int qos, bool retain) {
      return broker->Publish(topic, payload, qos, retain);
    });
  }
  return lake;
}

Status Lake::StartMqttListeners(std::vector<std::pair<std::string, std::string>>* endpoints) {
  Impl& m = *impl_;
  m.stream_server = net::StreamServer::Create(2);
  gateway::mqtt::Broker* broker = m.mqtt.get();
  auto factory = [broker](std::shared_ptr<net::StreamConnection> c) { return broker->Accept(std::move(c)); };
  const MqttConfig& mc = m.config.mqtt_broker;
  if (m.config.mqtt.enabled) {
    net::StreamListenerOptions o;
    o.name = "mqtt";
    o.listen = m.config.mqtt;
    ASSIGN_OR_RETURN(std::string addr, m.stream_server->Listen(o, factory));
    endpoints->emplace_back("mqtt", addr);
  }
  if (m.config.mqtts.enabled) {
    net::StreamListenerOptions o;
    o.name = "mqtts";
    o.listen = m.config.mqtts;
    o.transport = net::StreamTransport::kTls;
    o.tls.cert_file = !mc.cert_file.empty() ? mc.cert_file : m.config.tls.cert_file;
    o.tls.key_file = !mc.cert_file.empty() ? mc.key_file : m.config.tls.key_file;
    o.tls.client_ca_file = !mc.client_ca_file.empty() ? mc.client_ca_file : m.config.tls.client_ca_file;
    // Without a configured client CA, trust the lake's device CA, so that certificates from
    // CreateKeysAndCertificate work over mutual TLS out of the box (docs/iot.md).
    if (o.tls.client_ca_file.empty() && m.iot_ca) o.tls.client_ca_file = m.iot_ca->path();
    o.require_client_cert = mc.require_client_cert;
    if (o.tls.cert_file.empty()) {
      // No certificate configured: MQTTS still works out of the box with a self-signed one
      // (docs/mqtt.md says how to trust it or replace it).
      o.tls.cert_file = m.dir->keys() + "/mqtt-server.crt";
      o.tls.key_file = m.dir->keys() + "/mqtt-server.key";
      RETURN_IF_ERROR(net::EnsureSelfSignedCertificate(o.tls.cert_file, o.tls.key_file, "localhost",
                                                       {"localhost"}, {"127.0.0.1", "::1"}));
    }
    ASSIGN_OR_RETURN(std::string addr, m.stream_server->Listen(o, factory));
    endpoints->emplace_back("mqtts", addr);
  }
  if (m.config.mqtt_ws.enabled) {
    net::StreamListenerOptions o;
    o.name = "mqtt_ws";
    o.listen = m.config.mqtt_ws;
    o.transport = net::StreamTransport::kWebSocket;
    o.max_queued_bytes = std::max<size_t>(o.max_queued_bytes, mc.max_packet_size + 1024);
    ASSIGN_OR_RETURN(std::string addr, m.stream_server->Listen(o, factory));
    endpoints->emplace_back("mqtt_ws", addr);
  }
  return Status::OK();
}

Status Lake::Start() {
  Impl& m = *impl_;
  if (m.audit) m.audit->Start();
  // Crawler schedules (Glue cron expressions) run from here on.
  RETURN_IF_ERROR(m.crawlers->Start());
  std::vector<std::pair<std::string, std::string>> endpoints;
  if (m.config.api.enabled) {
    net::HttpServerOptions opts;
    opts.name = "api";
    opts.listen = m.config.api;
    opts.limits = m.config.http;
    opts.tls = m.config.tls;
    ASSIGN_OR_RETURN(m.api_server, net::HttpServer::Start(opts, m.router.get()));
    endpoints.emplace_back("api", m.api_server->address());
    m.iot_endpoint = m.api_server->address();
  }
  if (m.mqtt && (m.config.mqtt.enabled || m.config.mqtts.enabled || m.config.mqtt_ws.enabled)) {
    RETURN_IF_ERROR(StartMqttListeners(&endpoints));
  }
  if (m.config.sql.enabled && m.config.ServiceEnabled("sql")) {
    // The warehouse file is named for the database clients connect to ("tarn").
    sql::DatabaseOptions dopts;
    dopts.memory_limit = m.config.sql_limits.memory_limit;
    dopts.threads = static_cast<int>(m.config.sql_limits.threads);
    ASSIGN_OR_RETURN(m.warehouse, sql::Database::Open(m.dir->warehouse() + "/tarn.duckdb", dopts));
    sql::pgwire::PgServerOptions opts;
    opts.listen = m.config.sql;
    opts.max_connections = m.config.sql_limits.max_connections;
    opts.max_connections_per_user = m.config.sql_limits.max_connections_per_user;
    opts.max_queries_per_user = m.config.sql_limits.max_queries_per_user;
    opts.statement_timeout_ms = static_cast<int64_t>(m.config.sql_limits.statement_timeout_ms);
    opts.users = m.config.sql_limits.users;
    opts.tls = m.config.tls;
    opts.keys_dir = m.dir->keys();
    m.sql_catalog = catalog::NewCatalog(m.catalog.get());
    sql::lake::LakeSqlOptions lo;
    lo.account_id = m.config.account_id;
    lo.region = m.config.region;
    lo.database_name = opts.database_name;
    lo.scratch_dir = m.dir->root() + "/tmp/sql";
    // Every statement is audited unless the operator opts out (benchmarks, very chatty BI tools).
    if (const char* a = std::getenv("TARN_SQL_AUDIT")) lo.audit_statements = std::string(a) != "off";
    security::iam::IamDirectory* directory = m.iam_directory.get();
    m.sql_lake = std::make_unique<sql::lake::LakeSql>(
        m.sql_catalog.get(), m.store.get(), m.authz.get(),
        UserIdentityResolver(directory),
        m.audit.get(), m.meta.get(), lo);
    RETURN_IF_ERROR(m.sql_lake->Open());
    sql::lake::LakeSql* lake_sql = m.sql_lake.get();
    opts.hooks = [lake_sql](const sql::pgwire::SessionInfo& info) { return lake_sql->NewSession(info); };
    security::IamStore* iam = m.iam.get();
    ASSIGN_OR_RETURN(m.sql_server, sql::pgwire::PgServer::Start(
        opts, m.warehouse.get(), [iam](const std::string& user) -> Result<std::optional<std::string>> {
          ASSIGN_OR_RETURN(std::optional<security::IamUser> u, iam->GetUser(user));
          if (!u || u->password_verifier.empty()) return std::optional<std::string>();
          return std::optional<std::string>(u->password_verifier);
        }));
    endpoints.emplace_back("sql", m.sql_server->address());
  }
  std::string json = "{";
  for (size_t i = 0; i < endpoints.size(); ++i) {
    if (i) json += ", ";
    json += "\"" + endpoints[i].first + "\": \"" + JsonEscape(endpoints[i].second) + "\"";
  }
  json += "}\n";
  m.endpoints_json = json;
  RETURN_IF_ERROR(WriteFileAtomic(m.dir->endpoints_file(), json));
  for (const auto& [name, addr] : endpoints) TLOG_INFO("lake", "{} listening on {}", name, addr);
  return Status::OK();
}

void Lake::Stop() {
  Impl& m = *impl_;
  // MQTT first: clients get DISCONNECT "server shutting down", the session log is synced.
  if (m.mqtt) m.mqtt->Stop();
  if (m.stream_server) {
    m.stream_server->Stop();
    m.stream_server.reset();
  }
  if (m.api_server) {
    m.api_server->Stop();
    m.api_server.reset();
  }
  if (m.sql_server) {
    m.sql_server->Stop();  // interrupts running queries, closes sessions (their audit records)
    m.sql_server.reset();
  }
  // After the listeners: every call that finished is in the trail; then the last log file
  // and a digest covering it are written.
  if (m.audit) m.audit->Stop();
  if (m.rules) m.rules->Shutdown();
  if (m.streams) {
    // A graceful stop delivers what is buffered; anything that fails stays in the WAL.
    Status st = m.streams->FlushAll();
    if (!st.ok()) TLOG_WARN("lake", "flushing delivery streams at stop: {}", st.ToString());
  }
  m.warehouse.reset();  // checkpoints the DuckDB file
  if (m.crawlers) m.crawlers->Stop();
  if (m.dir) {
    std::error_code ec;
    std::filesystem::remove(m.dir->endpoints_file(), ec);
  }
}

}  // namespace tarn

namespace tarn {

Result<AuditVerifyResult> VerifyAuditTrail(const std::string& data_dir) {
  DataDir dir(data_dir);
  RETURN_IF_ERROR(dir.Lock());
  ASSIGN_OR_RETURN(auto meta, MetaStore::Open(dir.meta_db()));
  ASSIGN_OR_RETURN(Statement q, meta->Prepare("SELECT account_id, region FROM lake_info WHERE id = 1"));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Error(ErrorCode::kFailedPrecondition, data_dir + " is not an initialised data directory");
  std::string account = q.ColumnText(0), region = q.ColumnText(1);
  ASSIGN_OR_RETURN(auto store, storage::LocalObjectStore::Open(dir.objects(), meta.get(), region));
  ASSIGN_OR_RETURN(security::audit::VerifyReport r,
                   security::audit::VerifyAuditTrail(store.get(), "audit", account, dir.keys()));
  AuditVerifyResult out;
  out.digests = r.digests;
  out.log_files = r.log_files;
  out.problems = std::move(r.problems);
  return out;
}

}  // namespace tarn
