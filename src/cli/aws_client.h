// A small AWS API client for the `tarn` commands that talk to a running lake (`tarn apply`),
// the way terraform or kubectl talk to theirs: SigV4-signed HTTP over libcurl, with the usual
// credential environment variables. Four protocol families (DESIGN.md §4): JSON 1.1
// (X-Amz-Target), REST-JSON (IoT), REST-XML (S3) and query (IAM/STS).
//
// Thread-safety: an AwsClient is used by one thread at a time; SignV4 is a pure function.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace tarn::cli {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // AWS_SESSION_TOKEN, optional
  std::string region = "us-east-1";
};

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION.
Result<AwsCredentials> CredentialsFromEnvironment();

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// One HTTP request before signing. `path` is the decoded path ("/things/sensor-001"); the
// query parameters are decoded too; the signer and the transport encode both.
struct AwsHttpRequest {
  std::string method = "GET";
  std::string host;  // Host header value ("127.0.0.1:9000")
  std::string path = "/";
  HeaderList query;
  HeaderList headers;
  std::string body;
};

// Signs `request` with AWS Signature Version 4, header form (AWS General Reference, "Create a
// signed AWS API request"): adds X-Amz-Date, X-Amz-Security-Token (when a session token is
// set), X-Amz-Content-Sha256 (S3 only) and Authorization. `amz_date` is "YYYYMMDDTHHMMSSZ".
// Every header present is signed. Paths are URI-encoded once for S3, twice for other services.
void SignV4(const AwsCredentials& credentials, const std::string& service,
            const std::string& amz_date, AwsHttpRequest& request);

// The canonical request SignV4 hashes (exposed for tests and --debug output).
std::string CanonicalRequest(const std::string& service, const AwsHttpRequest& request);

struct AwsResponse {
  int status = 0;
  HeaderList headers;  // names lower-cased
  std::string body;
  // For non-2xx answers: the AWS error code (JSON __type / x-amzn-ErrorType / XML <Code>) and
  // message, parsed from whichever shape the family uses.
  std::string error_code;
  std::string error_message;

  bool ok() const { return status >= 200 && status < 300; }
  std::string Header(const std::string& lower_name) const;
  // "Code: message (HTTP n)" for reports.
  std::string ErrorText() const;
};

class AwsClient {
 public:
  // `endpoint` is "http://host:port" or "https://host:port" (no path).
  AwsClient(std::string endpoint, AwsCredentials credentials);
  ~AwsClient();

  const AwsCredentials& credentials() const { return credentials_; }
  const std::string& endpoint() const { return endpoint_; }

  // Signs and sends; a transport failure (connection refused, timeout) is a Status, any HTTP
  // answer is an AwsResponse.
  Result<AwsResponse> Send(const std::string& service, AwsHttpRequest request);

  // JSON 1.1: POST / with X-Amz-Target `target` ("AWSGlue.GetTable").
  Result<AwsResponse> Json(const std::string& service, const std::string& target,
                           const std::string& json_body);
  // REST-JSON (IoT control plane): `path` decoded, body JSON or empty.
  Result<AwsResponse> RestJson(const std::string& service, const std::string& method,
                               const std::string& path, const std::string& json_body = "",
                               HeaderList query = {}, HeaderList headers = {});
  // REST-XML (S3): path-style `/bucket/key`.
  Result<AwsResponse> RestXml(const std::string& method, const std::string& path,
                              const std::string& body = "", HeaderList query = {});
  // Query protocol: POST form Action=…&Version=…&params.
  Result<AwsResponse> Query(const std::string& service, const std::string& action,
                            const std::string& version, HeaderList params = {});

 private:
  std::string endpoint_;
  std::string host_;
  AwsCredentials credentials_;
  void* curl_ = nullptr;  // CURL*, reused so connections are kept alive
};

// "20150830T123600Z" for now (UTC).
std::string AmzDateNow();

}  // namespace tarn::cli
