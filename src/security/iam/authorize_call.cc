#include "security/iam/authorize_call.h"

namespace tarn::security {

std::map<std::string, std::vector<std::string>> RequestContext(const net::HttpRequest& request) {
  std::map<std::string, std::vector<std::string>> ctx;
  if (!request.remote_ip.empty()) ctx["aws:SourceIp"] = {request.remote_ip};
  ctx["aws:SecureTransport"] = {request.secure ? "true" : "false"};
  if (const std::string* ua = request.headers.Find("User-Agent")) ctx["aws:UserAgent"] = {*ua};
  if (const std::string* ref = request.headers.Find("Referer")) ctx["aws:Referer"] = {*ref};
  return ctx;
}

Status AuthorizeCall(const Authorizer& authz, const net::ApiCall& call, const net::HttpRequest& request,
                     const std::string& action, const std::string& resource,
                     std::map<std::string, std::vector<std::string>> extra,
                     const std::string& resource_policy, ErrorCode denied_code) {
  AuthzRequest r;
  r.identity = &call.identity;
  r.action = action;
  r.resource = resource;
  r.context = RequestContext(request);
  for (auto& [k, v] : extra) r.context[k] = std::move(v);
  r.resource_policy = resource_policy;
  AuthzDecision d = authz.Authorize(r);
  if (d.allowed) return Status::OK();
  std::string who = call.identity.anonymous() ? std::string("anonymous") : call.identity.arn;
  return Error(denied_code, "User: " + who + " is not authorized to perform: " + action + " on resource: " +
                                resource + (d.explicit_deny ? " with an explicit deny" : ""));
}

}  // namespace tarn::security
