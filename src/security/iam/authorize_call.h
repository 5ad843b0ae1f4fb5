// The helper every AWS API service calls to authorise one call through the lake's
// Authorizer: builds the AuthzRequest with the global condition keys taken from the HTTP
// request (aws:SourceIp, aws:SecureTransport, aws:UserAgent, aws:CurrentTime …), records
// action/resource on the call for audit, and turns a denial into the AWS error
// ("User: <arn> is not authorized to perform: <action> on resource: <resource>").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "net/aws_api.h"
#include "net/http.h"
#include "security/authz.h"

namespace tarn::security {

// The global condition keys of `request` (aws:SourceIp, aws:SecureTransport, aws:UserAgent,
// aws:Referer when present).
std::map<std::string, std::vector<std::string>> RequestContext(const net::HttpRequest& request);

// Authorises `action` on `resource` for call.identity. `extra` adds service condition keys
// (s3:prefix …); `resource_policy` is a bucket/trust policy to combine. `denied_code` is the
// error to return (AccessDenied for query/REST-XML services, AccessDeniedException for JSON).
Status AuthorizeCall(const Authorizer& authz, const net::ApiCall& call, const net::HttpRequest& request,
                     const std::string& action, const std::string& resource,
                     std::map<std::string, std::vector<std::string>> extra = {},
                     const std::string& resource_policy = "",
                     ErrorCode denied_code = ErrorCode::kAccessDenied);

}  // namespace tarn::security
