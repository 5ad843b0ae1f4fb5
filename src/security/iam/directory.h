// The IAM directory: users, groups, roles, access keys, managed and inline policies, login
// passwords and STS sessions in the metadata store (tables iam_* and sts_sessions, module
// "iam" migrations 2+). It is the CredentialProvider SigV4 asks for secrets and the
// PolicySource the Authorizer asks for identity policies; every write bumps Generation() so
// compiled-policy caches follow IAM changes at once.
//
// Names follow the IAM API: entity types "user", "group", "role"; managed policies are named
// by ARN (arn:aws:iam::<account>:policy<path><name>).
//
// Thread-safety: thread-safe (MetaStore is; the generation is atomic).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/meta_store.h"
#include "security/iam/authorizer.h"
#include "security/iam/iam_store.h"
#include "security/keyring.h"
#include "security/sigv4/sigv4.h"

namespace tarn::security::iam {

struct Group {
  std::string name, group_id, path, arn;
  int64_t created = 0;
};

struct Role {
  std::string name, role_id, path, arn, trust_policy, description;
  int64_t max_session_duration = 3600;
  int64_t created = 0;
};

struct ManagedPolicy {
  std::string arn, name, policy_id, path, description;
  int64_t default_version = 1;
  int64_t attachment_count = 0;
  int64_t created = 0, updated = 0;
};

struct PolicyVersion {
  std::string document;
  int64_t version = 1;
  bool is_default = false;
  int64_t created = 0;
};

struct AccessKeyInfo {
  std::string access_key_id, user_name, status;
  int64_t created = 0;
};

struct TemporaryCredentials {
  std::string access_key_id, secret_access_key, session_token;
  int64_t expiration = 0;
};

class IamDirectory final : public sigv4::CredentialProvider, public PolicySource {
 public:
  IamDirectory(IamStore* store, MetaStore* meta, const Keyring* keyring, const Clock* clock);

  Status Migrate();
  const std::string& account_id() const { return store_->account_id(); }
  std::string Arn(const std::string& kind, const std::string& path, const std::string& name) const;
  // The identity of a long-term user ("root" is the account root).
  Identity UserIdentity(const IamUser& user) const;

  // Users.
  Result<IamUser> CreateUser(const std::string& name, const std::string& path);
  Result<IamUser> GetUser(const std::string& name);
  Result<std::vector<IamUser>> ListUsers(const std::string& path_prefix);
  Status UpdateUser(const std::string& name, const std::string& new_name, const std::string& new_path);
  Status DeleteUser(const std::string& name);
  // SQL / console password (stored as a SCRAM verifier); empty password removes it.
  Status SetPassword(const std::string& user_name, const std::string& password);

  // Groups.
  Result<Group> CreateGroup(const std::string& name, const std::string& path);
  Result<Group> GetGroup(const std::string& name);
  Result<std::vector<Group>> ListGroups(const std::string& path_prefix);
  Result<std::vector<Group>> ListGroupsForUser(const std::string& user_name);
  Result<std::vector<IamUser>> GroupMembers(const std::string& group_name);
  Status DeleteGroup(const std::string& name);
  Status AddUserToGroup(const std::string& group, const std::string& user);
  Status RemoveUserFromGroup(const std::string& group, const std::string& user);

  // Access keys.
  Result<AccessKey> CreateAccessKey(const std::string& user_name);
  Result<std::vector<AccessKeyInfo>> ListAccessKeys(const std::string& user_name);
  Status UpdateAccessKey(const std::string& user_name, const std::string& access_key_id, bool active);
  Status DeleteAccessKey(const std::string& user_name, const std::string& access_key_id);
  // The user owning `access_key_id` (long-term keys only).
  Result<std::optional<std::string>> AccessKeyOwner(const std::string& access_key_id);

  // Managed policies.
  Result<ManagedPolicy> CreatePolicy(const std::string& name, const std::string& path,
                                     const std::string& document, const std::string& description);
  Result<ManagedPolicy> GetPolicy(const std::string& arn);
  Result<std::vector<ManagedPolicy>> ListPolicies(bool only_attached, const std::string& path_prefix);
  Status DeletePolicy(const std::string& arn);
  Result<PolicyVersion> GetPolicyVersion(const std::string& arn, int64_t version);
  Result<std::vector<PolicyVersion>> ListPolicyVersions(const std::string& arn);
  Result<PolicyVersion> CreatePolicyVersion(const std::string& arn, const std::string& document, bool set_default);
  Status DeletePolicyVersion(const std::string& arn, int64_t version);
  Status SetDefaultPolicyVersion(const std::string& arn, int64_t version);

  // Attachments and inline policies; `kind` is "user", "group" or "role".
  Status AttachPolicy(const std::string& kind, const std::string& name, const std::string& arn);
  Status DetachPolicy(const std::string& kind, const std::string& name, const std::string& arn);
  Result<std::vector<ManagedPolicy>> ListAttached(const std::string& kind, const std::string& name);
  Status PutInlinePolicy(const std::string& kind, const std::string& name, const std::string& policy_name,
                         const std::string& document);
  Result<std::string> GetInlinePolicy(const std::string& kind, const std::string& name,
                                      const std::string& policy_name);
  Status DeleteInlinePolicy(const std::string& kind, const std::string& name, const std::string& policy_name);
  Result<std::vector<std::string>> ListInlinePolicies(const std::string& kind, const std::string& name);

  // Roles.
  Result<Role> CreateRole(const std::string& name, const std::string& path, const std::string& trust_policy,
                          const std::string& description, int64_t max_session_duration);
  Result<Role> GetRole(const std::string& name);
  Result<std::vector<Role>> ListRoles(const std::string& path_prefix);
  Status DeleteRole(const std::string& name);
  Status UpdateAssumeRolePolicy(const std::string& name, const std::string& trust_policy);

  // STS sessions: temporary ASIA… credentials for `identity`, expiring after `seconds`.
  Result<TemporaryCredentials> CreateSession(const Identity& identity, int64_t seconds);

  // sigv4::CredentialProvider. A found credential is remembered until the next IAM write
  // (Generation()), so a signed request costs no metadata query and no unsealing; deleting or
  // deactivating a key, deleting its user or role, takes effect on the next request.
  Result<std::optional<sigv4::SigningCredential>> Lookup(const std::string& access_key_id) override;
  // PolicySource
  Result<std::vector<NamedPolicyDocument>> IdentityPolicies(const Identity& identity) override;
  uint64_t Generation() const override { return generation_.load(std::memory_order_acquire); }

 private:
  void Bump() { generation_.fetch_add(1, std::memory_order_acq_rel); }
  Result<std::optional<sigv4::SigningCredential>> LookupStored(const std::string& access_key_id);
  Status RequireEntity(const std::string& kind, const std::string& name);
  Status PoliciesOf(const std::string& kind, const std::string& name, std::vector<NamedPolicyDocument>* out);

  IamStore* store_;
  MetaStore* meta_;
  const Keyring* keyring_;
  const Clock* clock_;
  std::atomic<uint64_t> generation_{1};
  struct CachedCredential {
    uint64_t generation;
    sigv4::SigningCredential credential;
  };
  std::mutex credentials_mu_;
  std::unordered_map<std::string, CachedCredential> credentials_;  // guarded by credentials_mu_
};

// Validates an IAM entity name ([\w+=,.@-], 1..64/128) and path (/…/).
Status ValidateName(const std::string& what, const std::string& name, size_t max_len);
Status ValidatePath(const std::string& path);

}  // namespace tarn::security::iam
