#include "security/iam/authorizer.h"

#include <mutex>

#include "core/log.h"

namespace tarn::security::iam {

namespace {
constexpr size_t kMaxCachedResourcePolicies = 4096;
constexpr size_t kMaxCachedPrincipals = 16384;
}  // namespace

namespace {
// Distinguishes authorizers that reuse an address (the per-thread caches key on both).
std::atomic<uint64_t> g_next_instance{1};
}  // namespace

IamAuthorizer::IamAuthorizer(PolicySource* source, const Clock* clock)
    : source_(source), clock_(clock), instance_(g_next_instance++) {}

std::shared_ptr<const std::vector<Policy>> IamAuthorizer::PoliciesFor(const Identity& identity) const {
  uint64_t gen = source_->Generation();
  // One entry per thread in front of the shared cache: a connection's requests usually come
  // from one principal, and this skips the lock and the hash of the ARN.
  struct Last {
    const IamAuthorizer* owner = nullptr;
    uint64_t instance = 0;
    uint64_t generation = 0;
    std::string arn;
    std::shared_ptr<const std::vector<Policy>> policies;
  };
  thread_local Last last;
  if (last.owner == this && last.instance == instance_ && last.generation == gen &&
      last.arn == identity.arn) {
    return last.policies;
  }
  auto remember = [&](std::shared_ptr<const std::vector<Policy>> p) {
    last.owner = this;
    last.instance = instance_;
    last.generation = gen;
    last.arn = identity.arn;
    last.policies = p;
    return p;
  };
  {
    std::shared_lock lock(mu_);
    auto it = identity_cache_.find(identity.arn);
    if (it != identity_cache_.end() && it->second.generation == gen) return remember(it->second.policies);
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
  lock.unlock();
  return remember(compiled);
}

std::shared_ptr<const Policy> IamAuthorizer::ResourcePolicy(const std::string& text, std::string* error) const {
  // Per thread, the last document compiled: comparing the text is cheaper than hashing it.
  struct Last {
    const IamAuthorizer* owner = nullptr;
    uint64_t instance = 0;
    std::string text;
    std::shared_ptr<const Policy> policy;
  };
  thread_local Last last;
  if (last.owner == this && last.instance == instance_ && last.text == text) return last.policy;
  auto remember = [&](std::shared_ptr<const Policy> p) {
    last.owner = this;
    last.instance = instance_;
    last.text = text;
    last.policy = p;
    return p;
  };
  {
    std::shared_lock lock(mu_);
    auto it = resource_cache_.find(text);
    if (it != resource_cache_.end()) return remember(it->second);
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
  lock.unlock();
  return remember(shared);
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

  // Both kept alive until the decision's reason is written (EvalResult points into them).
  std::shared_ptr<const std::vector<Policy>> policies;
  std::shared_ptr<const Policy> rp;
  EvalResult identity_result;
  bool has_identity_policies = id->type == Identity::Type::kUser || id->type == Identity::Type::kAssumedRole;
  if (has_identity_policies) {
    policies = PoliciesFor(*id);
    for (const Policy& p : *policies) {
      Evaluate(p, er, false, &identity_result);
      if (identity_result.deny) break;
    }
  }
  EvalResult resource_result;
  if (!request.resource_policy.empty()) {
    std::string error;
    rp = ResourcePolicy(request.resource_policy, &error);
    if (rp) {
      Evaluate(*rp, er, true, &resource_result);
    } else {
      TLOG_WARN("iam", "resource policy for {} does not compile: {}", request.resource, error);
    }
  }

  if (identity_result.deny || resource_result.deny) {
    d.explicit_deny = true;
    d.reason = "explicit deny in " + (identity_result.deny ? identity_result.Reason() : resource_result.Reason());
    return d;
  }
  if (id->type == Identity::Type::kRoot) {
    d.allowed = true;
    d.reason = "account root";
    return d;
  }
  if (identity_result.allow) {
    d.allowed = true;
    d.reason = identity_result.Reason();
    return d;
  }
  if (resource_result.allow && !resource_result.allow_via_account_principal) {
    d.allowed = true;
    d.reason = resource_result.Reason();
    return d;
  }
  d.reason = "implicit deny";
  return d;
}

}  // namespace tarn::security::iam
