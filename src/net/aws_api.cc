#include "net/aws_api.h"

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/strings.h"
#include "ops/metrics.h"

namespace tarn::net {

namespace {

constexpr size_t kMaxApiBody = 16 * 1024 * 1024;  // JSON / query bodies (Firehose: 4 MiB + base64)

const char* FamilyName(ApiFamily f) {
  switch (f) {
    case ApiFamily::kRestXml: return "rest-xml";
    case ApiFamily::kJson: return "json";
    case ApiFamily::kQuery: return "query";
    case ApiFamily::kRestJson: return "rest-json";
    default: return "internal";
  }
}

int64_t g_start_seconds = Clock::Real()->NowSeconds();

constexpr char kRequestsName[] = "tarn_api_requests_total";
constexpr char kRequestsHelp[] = "AWS API requests by service, action and status class";
constexpr char kDurationName[] = "tarn_api_request_duration_seconds";
constexpr char kDurationHelp[] = "AWS API request latency";

}  // namespace

std::string ApiCall::Param(const std::string& name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return "";
}

CredentialScope ParseCredentialScope(const HttpRequest& request) {
  CredentialScope scope;
  std::string credential;
  const std::string* auth = request.headers.Find("Authorization");
  if (auth && StartsWith(*auth, "AWS4-HMAC-SHA256")) {
    size_t p = auth->find("Credential=");
    if (p != std::string::npos) {
      p += 11;
      size_t e = auth->find_first_of(", ", p);
      credential = auth->substr(p, e == std::string::npos ? std::string::npos : e - p);
    }
  } else {
    for (const auto& [k, v] : request.QueryParams()) {
      if (k == "X-Amz-Credential") credential = v;
    }
  }
  if (credential.empty()) return scope;
  // AKID/20261125/us-east-1/s3/aws4_request
  std::vector<std::string> parts = Split(credential, '/');
  if (parts.size() != 5) return scope;
  scope.access_key_id = parts[0];
  scope.date = parts[1];
  scope.region = parts[2];
  scope.service = parts[3];
  return scope;
}

void WriteJson(HttpResponse& response, std::string json, const char* content_type) {
  response.status = 200;
  response.SetBody(content_type, std::move(json));
}

void WriteXml(HttpResponse& response, std::string xml, int status) {
  response.status = status;
  response.SetBody("application/xml", std::move(xml));
}

void WriteApiError(const ApiCall& call, const Status& error, HttpResponse& response) {
  const ErrorInfo& info = error.info();
  response.status = info.http_status;
  response.body_source.reset();
  response.content_length.reset();
  std::string code(info.aws_code);
  switch (call.family) {
    case ApiFamily::kJson: {
      response.headers.Set("x-amzn-ErrorType", code);
      response.SetBody("application/x-amz-json-1.1",
                       "{\"__type\":\"" + JsonEscape(code) + "\",\"message\":\"" +
                           JsonEscape(error.message()) + "\"}");
      break;
    }
    case ApiFamily::kRestJson: {
      response.headers.Set("x-amzn-ErrorType", code);
      response.SetBody("application/json",
                       "{\"message\":\"" + JsonEscape(error.message()) + "\"}");
      break;
    }
    case ApiFamily::kQuery: {
      const char* type = info.http_status >= 500 ? "Receiver" : "Sender";
      std::string ns = call.service == "sts" ? "https://sts.amazonaws.com/doc/2011-06-15/"
                                             : "https://iam.amazonaws.com/doc/2010-05-08/";
      response.SetBody("text/xml",
                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"" + ns +
                           "\"><Error><Type>" + type + "</Type><Code>" + XmlEscape(code) +
                           "</Code><Message>" + XmlEscape(error.message()) +
                           "</Message></Error><RequestId>" + XmlEscape(call.request_id) +
                           "</RequestId></ErrorResponse>");
      break;
    }
    case ApiFamily::kRestXml:
    case ApiFamily::kInternal: {
      std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" +
                        XmlEscape(code) + "</Code><Message>" + XmlEscape(error.message()) +
                        "</Message>";
      if (!call.resource.empty()) xml += "<Resource>" + XmlEscape(call.resource) + "</Resource>";
      xml += "<RequestId>" + XmlEscape(call.request_id) + "</RequestId></Error>";
      response.SetBody("application/xml", std::move(xml));
      break;
    }
  }
}

ApiRouter::ApiRouter(std::string region)
    : region_(std::move(region)), request_prefix_(HexEncode(RandomBytes(4))) {
  for (char& c : request_prefix_) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto internal = [](const char* action) {
    return InternalMetrics{
        &ops::Metrics().Counter(kRequestsName, kRequestsHelp,
                                {{"service", "tarn"}, {"action", action}, {"status", "2xx"}}),
        &ops::Metrics().Histogram(kDurationName, kDurationHelp,
                                  {{"service", "tarn"}, {"action", action}})};
  };
  health_metrics_ = internal("Health");
  metrics_metrics_ = internal("Metrics");
}

ApiRouter::~ApiRouter() = default;

void ApiRouter::RegisterJsonService(const std::string& prefix, const std::string& signing_name,
                                    ApiService* service) {
  json_services_[prefix] = {signing_name, service};
}
void ApiRouter::RegisterQueryService(const std::string& signing_name, const std::string& ns,
                                     ApiService* service) {
  query_services_[signing_name] = {ns, service};
}
void ApiRouter::RegisterRestJsonService(const std::string& signing_name, ApiService* service) {
  rest_json_services_[signing_name] = service;
}
void ApiRouter::SetS3Service(ApiService* service) { s3_ = service; }
void ApiRouter::SetAuthenticator(Authenticator* a) { authenticator_ = a; }
void ApiRouter::SetAuditSink(AuditSink* sink) { audit_ = sink; }
void ApiRouter::SetHealthDetail(std::function<std::string()> fn) { health_detail_ = std::move(fn); }

std::string ApiRouter::QueryNamespace(const std::string& signing_name) const {
  auto it = query_services_.find(signing_name);
  return it == query_services_.end() ? "" : it->second.xml_namespace;
}

bool ApiRouter::IsInternal(const HttpRequest& request) {
  if (request.method != "GET" && request.method != "HEAD") return false;
  if (request.path != "/health" && request.path != "/metrics") return false;
  // A signed request for these paths is an S3 request for a bucket of that name.
  return !request.headers.Has("Authorization") && request.query.find("X-Amz-") == std::string::npos;
}

bool ApiRouter::HandleInternal(HttpRequest& request, HttpResponse& response) {
  if (!IsInternal(request)) return false;
  if (request.path == "/health") {
    std::string body = "{\"status\":\"ok\",\"uptime_seconds\":" +
                       std::to_string(Clock::Real()->NowSeconds() - g_start_seconds);
    if (health_detail_) {
      std::string extra = health_detail_();
      if (!extra.empty()) body += "," + extra;
    }
    body += "}\n";
    response.SetBody("application/json", std::move(body));
  } else {
    response.SetBody("text/plain; version=0.0.4", ops::Metrics().RenderPrometheus());
  }
  return true;
}

void ApiRouter::Classify(ApiCall& call, HttpRequest& request, ApiService** service) {
  *service = nullptr;
  CredentialScope scope = ParseCredentialScope(request);
  call.credential_scope_service = scope.service;
  if (!scope.region.empty()) call.region = scope.region;

  // JSON 1.1: X-Amz-Target names the service prefix and the operation.
  if (const std::string* target = request.headers.Find("X-Amz-Target")) {
    call.family = ApiFamily::kJson;
    size_t dot = target->rfind('.');
    std::string prefix = dot == std::string::npos ? *target : target->substr(0, dot);
    call.action = dot == std::string::npos ? "" : target->substr(dot + 1);
    auto it = json_services_.find(prefix);
    if (it != json_services_.end()) {
      call.service = it->second.signing_name;
      *service = it->second.service;
    } else {
      call.service = scope.service.empty() ? prefix : scope.service;
    }
    return;
  }

  // REST-JSON: the credential scope names a registered service (iot, iotdata …).
  if (!scope.service.empty()) {
    auto it = rest_json_services_.find(scope.service);
    if (it != rest_json_services_.end()) {
      call.family = ApiFamily::kRestJson;
      call.service = scope.service;
      *service = it->second;
      return;
    }
  }

  // Query protocol: form-encoded POST (or GET with Action=) on "/".
  std::string content_type = ToLower(request.headers.Get("Content-Type"));
  bool form = request.method == "POST" && StartsWith(content_type, "application/x-www-form-urlencoded");
  bool get_action = request.method == "GET" && request.path == "/" &&
                    (StartsWith(request.query, "Action=") || request.query.find("&Action=") != std::string::npos);
  if ((form && request.path == "/") || get_action) {
    call.family = ApiFamily::kQuery;
    call.service = scope.service;
    return;  // the service is resolved after the body is read
  }

  call.family = ApiFamily::kRestXml;
  call.service = "s3";
  *service = s3_;
}

void ApiRouter::RecordMetrics(const ApiCall& call, int status) {
  std::string klass = std::to_string(status / 100) + "xx";
  std::string action = call.action.empty() ? "unknown" : call.action;
  ops::Metrics()
      .Counter(kRequestsName, kRequestsHelp,
               {{"service", call.service}, {"action", action}, {"status", klass}})
      .Inc();
  double seconds = double(Clock::Real()->MonotonicNanos() - call.start_nanos) / 1e9;
  ops::Metrics()
      .Histogram(kDurationName, kDurationHelp, {{"service", call.service}, {"action", action}})
      .Observe(seconds);
}

void ApiRouter::Handle(HttpRequest& request, HttpResponse& response) {
  int64_t start = Clock::Real()->MonotonicNanos();
  if (HandleInternal(request, response)) {
    const InternalMetrics& m = request.path == "/health" ? health_metrics_ : metrics_metrics_;
    m.requests->Inc();
    m.duration->Observe(double(Clock::Real()->MonotonicNanos() - start) / 1e9);
    return;
  }
  ApiCall call;
  call.start_nanos = start;
  call.region = region_;
  {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%08llX", request_prefix_.c_str(),
                  static_cast<unsigned long long>(++next_request_));
    call.request_id = buf;
  }
  ApiService* service = nullptr;
  Classify(call, request, &service);

  // JSON and query bodies are small and needed whole (to find Action, to hash for SigV4):
  // read them once and give everyone after us a reader over the bytes.
  std::unique_ptr<MemoryBodyReader> memory_body;
  Status status;
  if (call.family == ApiFamily::kJson || call.family == ApiFamily::kQuery) {
    auto body = request.body->ReadAll(kMaxApiBody);
    if (!body.ok()) {
      status = body.status();
    } else {
      if (call.family == ApiFamily::kQuery) {
        call.params = ParseQueryString(request.query, true);
        auto form = ParseQueryString(*body, true);
        call.params.insert(call.params.end(), form.begin(), form.end());
        call.action = call.Param("Action");
        if (call.service.empty()) {
          // Unsigned query request: infer the service from well-known STS actions.
          static const char* kSts[] = {"AssumeRole", "GetCallerIdentity", "GetSessionToken",
                                       "AssumeRoleWithWebIdentity", "GetFederationToken"};
          call.service = "iam";
          for (const char* a : kSts) {
            if (call.action == a) call.service = "sts";
          }
        }
        auto it = query_services_.find(call.service);
        if (it != query_services_.end()) service = it->second.service;
      }
      memory_body = std::make_unique<MemoryBodyReader>(std::move(*body));
      request.body = memory_body.get();
    }
  }
  response.headers.Set(call.family == ApiFamily::kRestXml ? "x-amz-request-id" : "x-amzn-RequestId",
                       call.request_id);

  if (status.ok() && authenticator_) status = authenticator_->Authenticate(call, request);

  if (status.ok()) {
    if (service) {
      status = service->Handle(call, request, response);
    } else {
      switch (call.family) {
        case ApiFamily::kJson:
          status = Error(ErrorCode::kUnknownOperation,
                         "Operation " + request.headers.Get("X-Amz-Target") + " is not supported by this lake");
          break;
        case ApiFamily::kQuery:
          status = call.action.empty()
                       ? Error(ErrorCode::kMissingAction, "The request must contain the parameter Action")
                       : Error(ErrorCode::kInvalidAction,
                               "The action " + call.action + " is not valid for this endpoint");
          break;
        default:
          status = Error(ErrorCode::kS3NotImplemented,
                         "A header or operation you provided implies functionality that is not implemented");
      }
    }
  }
  if (!status.ok()) WriteApiError(call, status, response);
  RecordMetrics(call, response.status);
  if (audit_) {
    std::string user_agent = request.headers.Get("User-Agent");
    audit_->Record(call, AuditContext{request.remote_ip, user_agent, request.method, request.secure},
                   response.status, status);
  }
  if (!status.ok() && status.info().http_status >= 500) {
    TLOG_WARN("api", "{} {} {}: {}", request.method, FamilyName(call.family), call.action, status.ToString());
  }
}

}  // namespace tarn::net
