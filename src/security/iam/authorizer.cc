#include "security/iam/authorizer.h"

#include <mutex>

#include "core/log.h"

namespace tarn::security::iam {

namespace {
constexpr size_t kMaxCachedResourcePolicies = 4096;
constexpr size_t kMaxCachedPrincipals = 16384;
}  // namespace

IamAuthorizer::IamAuthorizer(PolicySource* source, const Clock* clock) : source_(source), clock_(clock) {}

std::shared_ptr<const std::vector<Policy>> IamAuthorizer::PoliciesFor(const Identity& identity) const {
  uint64_t gen = source_->Generation();
  {
    std::shared_lock lock(mu_);
    auto it = identity_cache_.find(identity.arn);
    if (it != identity_cache_.end() && it->second.generation == gen) return it->second.policies;
  }
  auto compiled = std::make_shared<std::vector<Policy>>();
  auto docs = source_->IdentityPolicies(identity);
  if (!docs.ok()) {
    // Fail closed: no policies means implicit deny; not cached so the next call retries.
    TLOG_WARN("iam", "loading policies of {}: {}", identity.arn, docs.status().ToString());
    return compiled;
  }
  for (const NamedPolicyDocument& d : *docs) {
    auto p = Policy::Parse(d.document, d.name);
    if (!p.ok()) {
      TLOG_WARN("iam", "policy {} does not compile: {}", d.name, p.status().message());
      continue;
    }
    compiled->push_back(std::move(*p));
  }
  std::unique_lock lock(mu_);
  if (identity_cache_.size() > kMaxCachedPrincipals) identity_cache_.clear();
  identity_cache_[identity.arn] = {gen, compiled};
  return compiled;
}

std::shared_ptr<const Policy> IamAuthorizer::ResourcePolicy(const std::string& text, std::string* error) const {
  {
    std::shared_lock lock(mu_);
    auto it = resource_cache_.find(text);
    if (it != resource_cache_.end()) return it->second;
  }
  auto p = Policy::Parse(text, "resource policy", /*resource_policy=*/true);
  if (!p.ok()) {
    *error = p.status().message();
    return nullptr;
  }
  auto shared = std::make_shared<const Policy>(std::move(*p));
  std::unique_lock lock(mu_);
  if (resource_cache_.size() > kMaxCachedResourcePolicies) resource_cache_.clear();
  resource_cache_[text] = shared;
  return shared;
}

AuthzDecision IamAuthorizer::Authorize(const AuthzRequest& request) const {
  AuthzDecision d;
  static const Identity kAnonymous;
  const Identity* id = request.identity ? request.identity : &kAnonymous;
  EvalRequest er;
  er.identity = id;
  er.action = request.action;
  er.resource = request.resource;
  er.context = &request.context;
  er.now_seconds = clock_->NowSeconds();

  EvalResult identity_result;
  bool has_identity_policies = id->type == Identity::Type::kUser || id->type == Identity::Type::kAssumedRole;
  if (has_identity_policies) {
    auto policies = PoliciesFor(*id);
    for (const Policy& p : *policies) {
      Evaluate(p, er, false, &identity_result);
      if (identity_result.deny) break;
    }
  }
  EvalResult resource_result;
  if (!request.resource_policy.empty()) {
    std::string error;
    auto rp = ResourcePolicy(request.resource_policy, &error);
    if (rp) {
      Evaluate(*rp, er, true, &resource_result);
    } else {
      TLOG_WARN("iam", "resource policy for {} does not compile: {}", request.resource, error);
    }
  }

  if (identity_result.deny || resource_result.deny) {
    d.explicit_deny = true;
    d.reason = "explicit deny in " + (identity_result.deny ? identity_result.reason : resource_result.reason);
    return d;
  }
  if (id->type == Identity::Type::kRoot) {
    d.allowed = true;
    d.reason = "account root";
    return d;
  }
  if (identity_result.allow) {
    d.allowed = true;
    d.reason = identity_result.reason;
    return d;
  }
  if (resource_result.allow && !resource_result.allow_via_account_principal) {
    d.allowed = true;
    d.reason = resource_result.reason;
    return d;
  }
  d.reason = "implicit deny";
  return d;
}

}  // namespace tarn::security::iam
