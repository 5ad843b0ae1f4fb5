// STS (Version 2011-06-15): GetCallerIdentity, GetSessionToken, AssumeRole. Temporary
// credentials are ASIA… keys with a session token, stored sealed in sts_sessions and checked
// by SigV4 (X-Amz-Security-Token must match; past Expiration → ExpiredToken).
#include "core/clock.h"
#include "core/log.h"
#include "core/strings.h"
#include "security/iam/authorize_call.h"
#include "security/iam/iam_service.h"

namespace tarn::security::iam {

namespace {

std::string Tag(const char* name, const std::string& value) {
  return std::string("<") + name + ">" + XmlEscape(value) + "</" + name + ">";
}

std::string CredentialsXml(const TemporaryCredentials& c) {
  return "<Credentials>" + Tag("AccessKeyId", c.access_key_id) + Tag("SecretAccessKey", c.secret_access_key) +
         Tag("SessionToken", c.session_token) + Tag("Expiration", FormatIso8601(c.expiration)) + "</Credentials>";
}

void Respond(const net::ApiCall& call, net::HttpResponse& response, const std::string& result) {
  std::string a = call.action;
  response.status = 200;
  response.SetBody("text/xml", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + a + "Response xmlns=\"" +
                                   kStsNamespace + "\"><" + a + "Result>" + result + "</" + a +
                                   "Result><ResponseMetadata><RequestId>" + XmlEscape(call.request_id) +
                                   "</RequestId></ResponseMetadata></" + a + "Response>");
}

Result<int64_t> Duration(const net::ApiCall& call, int64_t dflt, int64_t min, int64_t max) {
  std::string d = call.Param("DurationSeconds");
  if (d.empty()) return std::min(dflt, max);
  auto v = ParseInt64(d);
  if (!v || *v < min || *v > max) {
    return Error(ErrorCode::kValidationError,
                 "1 validation error detected: Value '" + d + "' at 'durationSeconds' failed to satisfy "
                 "constraint: Member must have value between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return *v;
}

}  // namespace

StsService::StsService(IamDirectory* directory, const Authorizer* authz, const Clock* clock)
    : dir_(directory), authz_(authz), clock_(clock) {}

Status StsService::Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) {
  const std::string& a = call.action;
  QueryAuditParams(call);
  const Identity& id = call.identity;
  if (id.anonymous()) {
    return Error(ErrorCode::kMissingAuthenticationToken, "Request is missing Authentication Token");
  }
  if (a == "GetCallerIdentity") {
    // Always allowed (even under an explicit deny), as in AWS.
    std::string user_id = id.type == Identity::Type::kRoot ? id.account_id : id.principal_id;
    Respond(call, response, Tag("Arn", id.arn) + Tag("UserId", user_id) + Tag("Account", id.account_id));
    return Status::OK();
  }
  if (a == "GetSessionToken") {
    if (!id.session_token_id.empty()) {
      return Error(ErrorCode::kStsAccessDenied, "Cannot call GetSessionToken with session credentials");
    }
    // Root sessions last at most an hour; IAM users up to 36 hours (STS API reference).
    int64_t max = id.type == Identity::Type::kRoot ? 3600 : 129600;
    ASSIGN_OR_RETURN(int64_t seconds, Duration(call, 43200, 900, max));
    ASSIGN_OR_RETURN(TemporaryCredentials c, dir_->CreateSession(id, seconds));
    call.audit_params["durationSeconds"] = std::to_string(seconds);
    Respond(call, response, CredentialsXml(c));
    return Status::OK();
  }
  if (a == "AssumeRole") {
    std::string role_arn = call.Param("RoleArn"), session = call.Param("RoleSessionName");
    if (role_arn.empty() || session.empty()) {
      return Error(ErrorCode::kValidationError, "RoleArn and RoleSessionName are required");
    }
    RETURN_IF_ERROR(ValidateName("roleSessionName", session, 64));
    call.resource = role_arn;
    std::string prefix = "arn:aws:iam::" + dir_->account_id() + ":role/";
    if (!StartsWith(role_arn, prefix)) {
      return Error(ErrorCode::kStsAccessDenied, "User: " + id.arn + " is not authorized to perform: "
                                                "sts:AssumeRole on resource: " + role_arn);
    }
    std::string role_name = role_arn.substr(role_arn.rfind('/') + 1);
    auto role = dir_->GetRole(role_name);
    if (!role.ok() || role->arn != role_arn) {
      return Error(ErrorCode::kStsAccessDenied, "User: " + id.arn + " is not authorized to perform: "
                                                "sts:AssumeRole on resource: " + role_arn);
    }
    // The trust policy must allow the caller (IAM User Guide, "Granting a user permissions to
    // switch roles"); when it names only the account, the caller's identity policy must allow
    // sts:AssumeRole too. Both are one Authorize call with the trust policy as the resource
    // policy, plus a check that the trust policy itself allows.
    auto trust = Policy::Parse(role->trust_policy, "trust policy of role/" + role_name, true);
    if (!trust.ok()) return trust.status();
    EvalRequest er;
    er.identity = &id;
    er.action = "sts:AssumeRole";
    er.resource = role_arn;
    auto ctx = RequestContext(request);
    er.context = &ctx;
    er.now_seconds = clock_->NowSeconds();
    EvalResult tr;
    Evaluate(*trust, er, true, &tr);
    if (!tr.allow || tr.deny) {
      return Error(ErrorCode::kStsAccessDenied, "User: " + id.arn + " is not authorized to perform: "
                                                "sts:AssumeRole on resource: " + role_arn);
    }
    Status st = AuthorizeCall(*authz_, call, request, "sts:AssumeRole", role_arn, {}, role->trust_policy,
                              ErrorCode::kStsAccessDenied);
    RETURN_IF_ERROR(st);
    ASSIGN_OR_RETURN(int64_t seconds, Duration(call, 3600, 900, role->max_session_duration));
    Identity assumed;
    assumed.type = Identity::Type::kAssumedRole;
    assumed.account_id = dir_->account_id();
    assumed.arn = "arn:aws:sts::" + assumed.account_id + ":assumed-role/" + role_name + "/" + session;
    assumed.user_name = session;
    assumed.principal_id = role->role_id + ":" + session;
    ASSIGN_OR_RETURN(TemporaryCredentials c, dir_->CreateSession(assumed, seconds));
    Respond(call, response,
            CredentialsXml(c) + "<AssumedRoleUser>" + Tag("AssumedRoleId", assumed.principal_id) +
                Tag("Arn", assumed.arn) + "</AssumedRoleUser><PackedPolicySize>0</PackedPolicySize>");
    return Status::OK();
  }
  return Error(ErrorCode::kInvalidAction, "The action " + a + " is not valid for this endpoint");
}

}  // namespace tarn::security::iam
