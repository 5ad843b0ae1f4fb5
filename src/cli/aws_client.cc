#include "cli/aws_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include "core/crypto.h"
#include "core/strings.h"

namespace tarn::cli {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// Canonical URI: each path segment URI-encoded; services other than S3 encode the already
// encoded path a second time (SigV4 spec, "Canonical request": "Each path segment must be
// URI-encoded twice … except for Amazon S3").
std::string CanonicalUri(const std::string& service, const std::string& path) {
  std::string once = UriEncode(path.empty() ? "/" : path, /*encode_slash=*/false);
  return service == "s3" ? once : UriEncode(once, false);
}

std::string EncodedQuery(const HeaderList& query, bool sorted) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) enc.emplace_back(UriEncode(k), UriEncode(v));
  if (sorted) std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

// Lower-cased names, values trimmed with inner runs of spaces collapsed, sorted by name;
// repeated names joined with commas.
std::vector<std::pair<std::string, std::string>> CanonicalHeaders(const HeaderList& headers) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : headers) {
    std::string v;
    bool space = false;
    for (char c : Trim(value)) {
      if (c == ' ' || c == '\t') {
        space = true;
        continue;
      }
      if (space && !v.empty()) v += ' ';
      space = false;
      v += c;
    }
    std::string n = ToLower(name);
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == n; });
    if (it != out.end()) {
      it->second += "," + v;
    } else {
      out.emplace_back(std::move(n), std::move(v));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string SignedHeaderNames(const std::vector<std::pair<std::string, std::string>>& canon) {
  std::string out;
  for (const auto& [n, v] : canon) {
    if (!out.empty()) out += ';';
    out += n;
  }
  return out;
}

bool HasHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [n, v] : headers)
    if (EqualsIgnoreCase(n, name)) return true;
  return false;
}

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  std::string_view line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    static_cast<HeaderList*>(user)->emplace_back(ToLower(Trim(line.substr(0, colon))),
                                                 std::string(Trim(line.substr(colon + 1))));
  }
  return size * n;
}

void ParseError(AwsResponse& r) {
  if (r.ok()) return;
  std::string type = r.Header("x-amzn-errortype");
  const std::string& b = r.body;
  size_t first = b.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && b[first] == '{') {
    auto j = nlohmann::json::parse(b, nullptr, false);
    if (j.is_object()) {
      for (const char* k : {"__type", "code", "Code"})
        if (type.empty() && j.contains(k) && j[k].is_string()) type = j[k].get<std::string>();
      for (const char* k : {"message", "Message", "errorMessage"})
        if (r.error_message.empty() && j.contains(k) && j[k].is_string())
          r.error_message = j[k].get<std::string>();
    }
  } else if (first != std::string::npos && b[first] == '<') {
    pugi::xml_document doc;
    if (doc.load_buffer(b.data(), b.size())) {
      // S3: <Error><Code/>; query: <ErrorResponse><Error><Code/>.
      pugi::xpath_node code = doc.select_node("//Code");
      pugi::xpath_node msg = doc.select_node("//Message");
      if (type.empty() && code) type = code.node().text().get();
      if (msg) r.error_message = msg.node().text().get();
    }
  }
  // JSON __type may be "namespace#Code"; x-amzn-ErrorType may be "Code:http://…".
  if (auto hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
  if (auto colon = type.find(':'); colon != std::string::npos) type = type.substr(0, colon);
  if (type.empty()) {
    // A HEAD answer has no body: name the status the way the AWS CLI does.
    switch (r.status) {
      case 400: type = "BadRequest"; break;
      case 403: type = "Forbidden"; break;
      case 404: type = "NotFound"; break;
      case 501: type = "NotImplemented"; break;
      default: type = "HTTP" + std::to_string(r.status);
    }
  }
  r.error_code = type;
}

}  // namespace

Result<AwsCredentials> CredentialsFromEnvironment() {
  AwsCredentials c;
  c.access_key_id = Env("AWS_ACCESS_KEY_ID");
  c.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
  c.session_token = Env("AWS_SESSION_TOKEN");
  std::string region = Env("AWS_REGION");
  if (region.empty()) region = Env("AWS_DEFAULT_REGION");
  if (!region.empty()) c.region = region;
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (tarn init "
                 "printed the root user's)");
  }
  return c;
}

std::string AmzDateNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string AwsResponse::Header(const std::string& lower_name) const {
  for (const auto& [n, v] : headers)
    if (n == lower_name) return v;
  return "";
}

std::string AwsResponse::ErrorText() const {
  std::string s = error_code;
  if (!error_message.empty()) s += ": " + error_message;
  return s + " (HTTP " + std::to_string(status) + ")";
}

std::string CanonicalRequest(const std::string& service, const AwsHttpRequest& request) {
  auto canon = CanonicalHeaders(request.headers);
  std::string out = request.method + "\n" + CanonicalUri(service, request.path) + "\n" +
                    EncodedQuery(request.query, /*sorted=*/true) + "\n";
  for (const auto& [n, v] : canon) out += n + ":" + v + "\n";
  out += "\n" + SignedHeaderNames(canon) + "\n" + HexEncode(Sha256(request.body));
  return out;
}

void SignV4(const AwsCredentials& credentials, const std::string& service,
            const std::string& amz_date, AwsHttpRequest& request) {
  if (!HasHeader(request.headers, "host")) request.headers.emplace_back("Host", request.host);
  request.headers.emplace_back("X-Amz-Date", amz_date);
  if (!credentials.session_token.empty())
    request.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  if (service == "s3" && !HasHeader(request.headers, "x-amz-content-sha256"))
    request.headers.emplace_back("X-Amz-Content-Sha256", HexEncode(Sha256(request.body)));

  std::string date = amz_date.substr(0, 8);
  std::string scope = date + "/" + credentials.region + "/" + service + "/aws4_request";
  std::string string_to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" +
                               HexEncode(Sha256(CanonicalRequest(service, request)));
  std::string k = HmacSha256("AWS4" + credentials.secret_access_key, date);
  k = HmacSha256(k, credentials.region);
  k = HmacSha256(k, service);
  k = HmacSha256(k, "aws4_request");
  std::string signature = HexEncode(HmacSha256(k, string_to_sign));
  request.headers.emplace_back(
      "Authorization", "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + scope +
                           ", SignedHeaders=" + SignedHeaderNames(CanonicalHeaders(request.headers)) +
                           ", Signature=" + signature);
}

AwsClient::AwsClient(std::string endpoint, AwsCredentials credentials)
    : endpoint_(std::move(endpoint)), credentials_(std::move(credentials)) {
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  if (endpoint_.find("://") == std::string::npos) endpoint_ = "http://" + endpoint_;
  host_ = endpoint_.substr(endpoint_.find("://") + 3);
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
}

AwsClient::~AwsClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<AwsResponse> AwsClient::Send(const std::string& service, AwsHttpRequest request) {
  CURL* curl = static_cast<CURL*>(curl_);
  if (!curl) return Error(ErrorCode::kInternal, "curl_easy_init failed");
  request.host = host_;
  SignV4(credentials_, service, AmzDateNow(), request);

  std::string url = endpoint_ + UriEncode(request.path, false);
  std::string q = EncodedQuery(request.query, false);
  if (!q.empty()) url += "?" + q;

  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  if (request.method == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }
  curl_slist* hl = nullptr;
  for (const auto& [n, v] : request.headers) {
    if (EqualsIgnoreCase(n, "host")) continue;  // curl writes the same value from the URL
    hl = curl_slist_append(hl, (n + ": " + v).c_str());
  }
  hl = curl_slist_append(hl, "Expect:");  // no 100-continue round trip
  hl = curl_slist_append(hl, "Accept:");
  if (!HasHeader(request.headers, "content-type")) hl = curl_slist_append(hl, "Content-Type:");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
  AwsResponse r;
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 120000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(hl);
  if (rc != CURLE_OK) {
    return Error(ErrorCode::kUnavailable,
                 "cannot reach " + endpoint_ + ": " + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  r.status = static_cast<int>(status);
  ParseError(r);
  return r;
}

Result<AwsResponse> AwsClient::Json(const std::string& service, const std::string& target,
                                    const std::string& json_body) {
  AwsHttpRequest req;
  req.method = "POST";
  req.headers = {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
  req.body = json_body.empty() ? "{}" : json_body;
  return Send(service, std::move(req));
}

Result<AwsResponse> AwsClient::RestJson(const std::string& service, const std::string& method,
                                        const std::string& path, const std::string& json_body,
                                        HeaderList query, HeaderList headers) {
  AwsHttpRequest req;
  req.method = method;
  req.path = path;
  req.query = std::move(query);
  req.headers = std::move(headers);
  if (!json_body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  req.body = json_body;
  return Send(service, std::move(req));
}

Result<AwsResponse> AwsClient::RestXml(const std::string& method, const std::string& path,
                                       const std::string& body, HeaderList query) {
  AwsHttpRequest req;
  req.method = method;
  req.path = path;
  req.query = std::move(query);
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/xml");
  req.body = body;
  return Send("s3", std::move(req));
}

Result<AwsResponse> AwsClient::Query(const std::string& service, const std::string& action,
                                     const std::string& version, HeaderList params) {
  params.insert(params.begin(), {{"Action", action}, {"Version", version}});
  AwsHttpRequest req;
  req.method = "POST";
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  req.body = EncodedQuery(params, false);
  return Send(service, std::move(req));
}

}  // namespace tarn::cli
