// The IAM (Version 2010-05-08) and STS (Version 2011-06-15) query-protocol APIs on the
// lake's port, registered with ApiRouter::RegisterQueryService("iam"/"sts"). Every call is
// authorised through the lake's Authorizer (iam:CreateUser on arn:aws:iam::<acct>:user/<name>
// …) before it touches the IamDirectory. Responses are the IAM/STS XML documents.
//
// Thread-safety: thread-safe (stateless over IamDirectory and Authorizer).
#pragma once

#include "core/clock.h"
#include "net/aws_api.h"
#include "security/authz.h"
#include "security/iam/directory.h"

namespace tarn::security::iam {

inline constexpr char kIamNamespace[] = "https://iam.amazonaws.com/doc/2010-05-08/";
inline constexpr char kStsNamespace[] = "https://sts.amazonaws.com/doc/2011-06-15/";

class IamService final : public net::ApiService {
 public:
  IamService(IamDirectory* directory, const Authorizer* authz);
  Status Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) override;

 private:
  IamDirectory* dir_;
  const Authorizer* authz_;
};

class StsService final : public net::ApiService {
 public:
  StsService(IamDirectory* directory, const Authorizer* authz, const Clock* clock);
  Status Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) override;

 private:
  IamDirectory* dir_;
  const Authorizer* authz_;
  const Clock* clock_;
};

// Fills call.audit_params from the query parameters (lowerCamel names, never passwords).
void QueryAuditParams(net::ApiCall& call);

}  // namespace tarn::security::iam
