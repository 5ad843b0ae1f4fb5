// Authorisation: the one decision path every API in Tarn calls (DESIGN.md §5).
//
//   identity → IAM identity policies (+ resource policy such as a bucket policy)
//            → explicit Deny > Allow > implicit deny
//
// Services build an AuthzRequest for each call — action "s3:GetObject", resource
// "arn:aws:s3:::landing/iot/x.parquet", condition context — and act on the decision. The
// decision names the statement that decided, for the audit record.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/identity.h"

namespace tarn::security {

struct AuthzRequest {
  const Identity* identity = nullptr;
  std::string action;    // "s3:GetObject", "glue:GetTable", "firehose:PutRecord" …
  std::string resource;  // full ARN
  // Condition keys and their values: "aws:SourceIp", "aws:SecureTransport" ("true"/"false"),
  // "aws:username", "s3:prefix", "aws:CurrentTime" …
  std::map<std::string, std::vector<std::string>> context;
  // A resource-based policy document (bucket policy JSON) to combine with identity
  // policies; empty when the resource has none.
  std::string resource_policy;
};

struct AuthzDecision {
  bool allowed = false;
  bool explicit_deny = false;
  // Which policy and statement decided ("user/alice inline:ReadCurated statement 0",
  // "implicit deny"), for audit and for error messages that explain a denial.
  std::string reason;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  virtual AuthzDecision Authorize(const AuthzRequest& request) const = 0;
};

// Allows every non-anonymous identity, denies anonymous ones unless a resource policy is
// present (which it does not evaluate). Only for module tests written before IAM policy
// evaluation existed; the Lake always installs the IAM authorizer.
class AllowAuthenticatedAuthorizer final : public Authorizer {
 public:
  AuthzDecision Authorize(const AuthzRequest& request) const override {
    AuthzDecision d;
    d.allowed = request.identity && !request.identity->anonymous();
    d.reason = d.allowed ? "authenticated (no policy evaluation)" : "anonymous";
    return d;
  }
};

}  // namespace tarn::security
