// One port, every AWS protocol family (DESIGN.md §4). The ApiRouter classifies each request,
// authenticates it, hands it to the service that owns it and answers errors in the shape the
// family's clients expect:
//
//   JSON 1.1   X-Amz-Target: <Prefix>.<Action>           (Firehose, Glue, KMS, CloudTrail …)
//   query      form-encoded Action=… on "/"               (IAM, STS)
//   REST-JSON  SigV4 credential scope names the service  (IoT control plane, iot-data …)
//   REST-XML   everything else                           (S3, path- and virtual-host style)
//
// GET /health and GET /metrics are answered here when the request carries no AWS credentials.
//
// Thread-safety: register everything before serving; Handle() is then thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/identity.h"
#include "core/status.h"
#include "net/http.h"

namespace tarn::ops {
class CounterMetric;
class HistogramMetric;
}  // namespace tarn::ops

namespace tarn::net {

enum class ApiFamily { kRestXml, kJson, kQuery, kRestJson, kInternal };

// What the router learned about a request; services fill in `action` and `resource` where
// the router cannot (S3 decides its operation from method + path + sub-resources).
struct ApiCall {
  ApiFamily family = ApiFamily::kRestXml;
  std::string service;     // signing name: "s3", "firehose", "glue", "iam", "sts", "iot" …
  std::string action;      // "PutObject", "PutRecord", "CreateUser" …
  std::string resource;    // ARN or path the call was about, for errors and audit
  std::string request_id;  // x-amz-request-id / x-amzn-RequestId
  std::string region;      // from the credential scope, or the lake's
  Identity identity;       // anonymous until an Authenticator says otherwise
  std::string credential_scope_service;  // as signed, when signed
  // Query protocol: decoded form parameters (body and query string).
  std::vector<std::pair<std::string, std::string>> params;
  // Free-form request facts for the audit record ("bucketName", "key" …); never secrets.
  std::map<std::string, std::string> audit_params;
  int64_t start_nanos = 0;
  // A body reader installed by the Authenticator as request.body (aws-chunked decoding,
  // payload-hash verification); kept alive here for the rest of the request.
  std::shared_ptr<BodyReader> owned_body;

  std::string Param(const std::string& name) const;
};

// A service behind the router. Handle() writes a success response, or returns an error that
// the router writes in the family's shape (and audits); services never build error bodies.
class ApiService {
 public:
  virtual ~ApiService() = default;
  virtual Status Handle(ApiCall& call, HttpRequest& request, HttpResponse& response) = 0;
};

// Verifies a request's credentials (SigV4 header or query, streaming payload signatures) and
// fills call.identity. May replace request.body with a verifying, de-chunking reader (it owns
// that reader until the request ends; aws-chunked bodies reach services already decoded, with
// their trailers in request.trailers). Returns an error for a
// request that claims credentials and fails; an unsigned request yields an anonymous
// identity, and the service's authorisation decides whether anonymous may proceed.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual Status Authenticate(ApiCall& call, HttpRequest& request) = 0;
};

// What the transport knew about a finished call, for its audit record.
struct AuditContext {
  std::string_view remote_ip;
  std::string_view user_agent;
  std::string_view method;  // the event name when the call has no action ("GET", "SQL")
  bool secure = false;      // arrived over TLS
};

// Receives every finished call (allowed, denied or failed) for the audit trail. Record()
// copies (or, given an rvalue, moves) what the record needs and returns: no formatting or
// I/O on the caller's thread. It may block when the sink's queue is full (backpressure: an
// audited call is never dropped), so never call it inside a MetaStore transaction.
class AuditSink {
 public:
  virtual ~AuditSink() = default;
  virtual void Record(const ApiCall& call, const AuditContext& context, int http_status,
                      const Status& error) = 0;
  // For a call built only to be recorded (a SQL statement's): its strings are moved from.
  virtual void Record(ApiCall&& call, const AuditContext& context, int http_status,
                      const Status& error) {
    Record(static_cast<const ApiCall&>(call), context, http_status, error);
  }
};

// Writes `error` in the shape of `call.family` (S3 XML <Error>, JSON __type, query
// <ErrorResponse>, REST-JSON x-amzn-ErrorType) with the status from the error registry.
void WriteApiError(const ApiCall& call, const Status& error, HttpResponse& response);
// Writes a JSON 1.1 success body.
void WriteJson(HttpResponse& response, std::string json, const char* content_type = "application/x-amz-json-1.1");
// Writes an XML success body.
void WriteXml(HttpResponse& response, std::string xml, int status = 200);

class ApiRouter final : public HttpHandler {
 public:
  explicit ApiRouter(std::string region);
  ~ApiRouter() override;

  // JSON 1.1 services by X-Amz-Target prefix ("Firehose_20150804"), with their signing name.
  void RegisterJsonService(const std::string& target_prefix, const std::string& signing_name,
                           ApiService* service);
  // Query-protocol services by signing name ("iam", "sts"), with their XML namespace.
  void RegisterQueryService(const std::string& signing_name, const std::string& xml_namespace,
                            ApiService* service);
  // REST-JSON services by signing name ("iot", "iotdata").
  void RegisterRestJsonService(const std::string& signing_name, ApiService* service);
  // The REST-XML service (S3).
  void SetS3Service(ApiService* service);
  void SetAuthenticator(Authenticator* authenticator);
  void SetAuditSink(AuditSink* sink);
  // Extra fields for GET /health (JSON object members, e.g. "\"mqtt\":\"ok\""). Runs on the
  // HTTP server's event loop: it must be quick and never block.
  void SetHealthDetail(std::function<std::string()> fn);

  void Handle(HttpRequest& request, HttpResponse& response) override;
  // Only Tarn's own GET /health and GET /metrics: everything else authenticates (IAM store),
  // touches storage or streams a body, and runs on a worker thread.
  bool RunsInline(const HttpRequest& request) const override { return IsInternal(request); }

  // The namespace used in query-protocol errors for `signing_name`.
  std::string QueryNamespace(const std::string& signing_name) const;

 private:
  struct JsonEntry {
    std::string signing_name;
    ApiService* service;
  };
  struct QueryEntry {
    std::string xml_namespace;
    ApiService* service;
  };
  static bool IsInternal(const HttpRequest& request);
  bool HandleInternal(HttpRequest& request, HttpResponse& response);
  void Classify(ApiCall& call, HttpRequest& request, ApiService** service);
  void RecordMetrics(const ApiCall& call, int status);

  std::string region_;
  std::map<std::string, JsonEntry> json_services_;
  std::map<std::string, QueryEntry> query_services_;
  std::map<std::string, ApiService*> rest_json_services_;
  ApiService* s3_ = nullptr;
  Authenticator* authenticator_ = nullptr;
  AuditSink* audit_ = nullptr;
  std::function<std::string()> health_detail_;
  std::atomic<uint64_t> next_request_{0};
  // /health and /metrics metrics, looked up once: they are the load balancer's hot path.
  struct InternalMetrics {
    ops::CounterMetric* requests;
    ops::HistogramMetric* duration;
  };
  InternalMetrics health_metrics_{}, metrics_metrics_{};
  std::string request_prefix_;
};

// Parses the SigV4 credential scope from an Authorization header or X-Amz-Credential query
// parameter: returns {access_key_id, date, region, service}, or empty strings when absent.
struct CredentialScope {
  std::string access_key_id, date, region, service;
  bool present() const { return !access_key_id.empty(); }
};
CredentialScope ParseCredentialScope(const HttpRequest& request);

}  // namespace tarn::net
