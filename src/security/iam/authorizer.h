// The IAM Authorizer (security::Authorizer): the one decision path for every API in Tarn.
//
// For a same-account request AWS combines policies like this (IAM User Guide, "Policy
// evaluation logic"), and so do we:
//   1. an explicit Deny in any identity policy or in the resource policy → deny;
//   2. the root user → allow (identity policies never restrict the account's root);
//   3. an Allow in an identity policy, or in the resource policy naming the caller → allow
//      (a resource policy that names only the caller's *account* still needs an identity
//      Allow);
//   4. otherwise implicit deny. Anonymous callers can only be allowed by a resource policy
//      with Principal "*".
//
// Identity policies come from a PolicySource (IAM users, groups, roles in the metadata store)
// and are compiled once per principal; the cache is dropped whenever the source's generation
// changes (every IAM write bumps it). Resource policies are compiled once per distinct text.
//
// Thread-safety: thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "security/authz.h"
#include "security/iam/policy.h"

namespace tarn::security::iam {

struct NamedPolicyDocument {
  std::string name;  // "user/alice inline:ReadCurated", "arn:aws:iam::…:policy/ReadOnly"
  std::string document;
};

class PolicySource {
 public:
  virtual ~PolicySource() = default;
  // Every identity-based policy that applies to `identity`: for a user its inline and
  // attached policies and those of its groups; for a role session the role's policies.
  virtual Result<std::vector<NamedPolicyDocument>> IdentityPolicies(const Identity& identity) = 0;
  // Changes whenever any identity policy, attachment or group membership changes.
  virtual uint64_t Generation() const = 0;
};

class IamAuthorizer final : public Authorizer {
 public:
  IamAuthorizer(PolicySource* source, const Clock* clock);

  AuthzDecision Authorize(const AuthzRequest& request) const override;

  // Compiled identity policies of `identity` (cached). Exposed for the benchmark and tests.
  std::shared_ptr<const std::vector<Policy>> PoliciesFor(const Identity& identity) const;

 private:
  struct CacheEntry {
    uint64_t generation = 0;
    std::shared_ptr<const std::vector<Policy>> policies;
  };
  std::shared_ptr<const Policy> ResourcePolicy(const std::string& text, std::string* error) const;

  PolicySource* source_;
  const Clock* clock_;
  uint64_t instance_;
  mutable std::shared_mutex mu_;
  mutable std::unordered_map<std::string, CacheEntry> identity_cache_;  // guarded by mu_
  mutable std::unordered_map<std::string, std::shared_ptr<const Policy>> resource_cache_;  // guarded by mu_
};

}  // namespace tarn::security::iam
