#include "security/iam/directory.h"

#include <cctype>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "core/crypto.h"
#include "core/strings.h"

namespace tarn::security::iam {

namespace {

constexpr char kIdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr int kMaxAccessKeysPerUser = 2;
constexpr int kMaxPolicyVersions = 5;

std::string NewId(const char* prefix) { return prefix + RandomString(17, kIdAlphabet); }

Status NoSuch(const std::string& what) { return Error(ErrorCode::kNoSuchEntity, what); }

// The statement patterns every entity shares, once.

// `sql` prepared with ?1..?N bound to `args`.
template <typename... A>
Result<Statement> Query(MetaStore* meta, std::string_view sql, const A&... args) {
  ASSIGN_OR_RETURN(Statement st, meta->Prepare(sql));
  st.BindAll(args...);
  return st;
}

// Every row of a bound query as a T; `from_row` returns a T or a Result<T>.
template <typename T, typename F>
Result<std::vector<T>> Rows(Statement st, F from_row) {
  std::vector<T> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    if constexpr (std::is_convertible_v<std::invoke_result_t<F, Statement&>, T>) {
      out.push_back(from_row(st));
    } else {
      ASSIGN_OR_RETURN(T item, from_row(st));
      out.push_back(std::move(item));
    }
  }
}

// Runs a write; returns the number of rows it changed.
template <typename... A>
Result<int> Write(MetaStore* meta, std::string_view sql, const A&... args) {
  ASSIGN_OR_RETURN(Statement st, Query(meta, sql, args...));
  RETURN_IF_ERROR(st.Run());
  return meta->Changes();
}

// IAM deletes refuse an entity that still has dependents: DeleteConflict when any of `probes`
// (each with ?1 = the entity's name) finds a row.
Status RequireNoDependents(MetaStore* meta, std::initializer_list<const char*> probes,
                           const std::string& name, const char* message) {
  for (const char* sql : probes) {
    ASSIGN_OR_RETURN(Statement q, Query(meta, sql, name));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) return Error(ErrorCode::kDeleteConflict, message);
  }
  return Status::OK();
}

std::string PathPrefix(const std::string& prefix) { return prefix.empty() ? "/" : prefix; }

}  // namespace

Status ValidateName(const std::string& what, const std::string& name, size_t max_len) {
  if (name.empty() || name.size() > max_len) {
    return Error(ErrorCode::kValidationError, what + " must be 1 to " + std::to_string(max_len) + " characters");
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("+=,.@_-", c))) {
      return Error(ErrorCode::kValidationError,
                   "1 validation error detected: Value '" + name + "' at '" + what +
                       "' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+");
    }
  }
  return Status::OK();
}

Status ValidatePath(const std::string& path) {
  if (path.empty() || path.front() != '/' || path.back() != '/' || path.size() > 512) {
    return Error(ErrorCode::kValidationError, "The path must begin and end with '/'");
  }
  return Status::OK();
}

IamDirectory::IamDirectory(IamStore* store, MetaStore* meta, const Keyring* keyring, const Clock* clock)
    : store_(store), meta_(meta), keyring_(keyring), clock_(clock) {}

Status IamDirectory::Migrate() {
  return meta_->Migrate("iam", {
      {2, R"sql(
        CREATE TABLE iam_groups (
          name TEXT PRIMARY KEY, group_id TEXT NOT NULL UNIQUE, path TEXT NOT NULL DEFAULT '/',
          created INTEGER NOT NULL);
        CREATE TABLE iam_group_members (
          group_name TEXT NOT NULL REFERENCES iam_groups(name) ON DELETE CASCADE ON UPDATE CASCADE,
          user_name TEXT NOT NULL REFERENCES iam_users(name) ON DELETE CASCADE ON UPDATE CASCADE,
          PRIMARY KEY (group_name, user_name));
        CREATE TABLE iam_roles (
          name TEXT PRIMARY KEY, role_id TEXT NOT NULL UNIQUE, path TEXT NOT NULL DEFAULT '/',
          trust_policy TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
          max_session INTEGER NOT NULL DEFAULT 3600, created INTEGER NOT NULL);
        CREATE TABLE iam_policies (
          arn TEXT PRIMARY KEY, name TEXT NOT NULL, policy_id TEXT NOT NULL UNIQUE,
          path TEXT NOT NULL DEFAULT '/', description TEXT NOT NULL DEFAULT '',
          default_version INTEGER NOT NULL DEFAULT 1, next_version INTEGER NOT NULL DEFAULT 2,
          created INTEGER NOT NULL, updated INTEGER NOT NULL);
        CREATE TABLE iam_policy_versions (
          policy_arn TEXT NOT NULL REFERENCES iam_policies(arn) ON DELETE CASCADE,
          version INTEGER NOT NULL, document TEXT NOT NULL, created INTEGER NOT NULL,
          PRIMARY KEY (policy_arn, version));
        CREATE TABLE iam_attachments (
          kind TEXT NOT NULL, entity TEXT NOT NULL,
          policy_arn TEXT NOT NULL REFERENCES iam_policies(arn),
          PRIMARY KEY (kind, entity, policy_arn));
        CREATE TABLE iam_inline_policies (
          kind TEXT NOT NULL, entity TEXT NOT NULL, policy_name TEXT NOT NULL, document TEXT NOT NULL,
          PRIMARY KEY (kind, entity, policy_name));
        CREATE TABLE sts_sessions (
          access_key_id TEXT PRIMARY KEY, sealed BLOB NOT NULL, kind TEXT NOT NULL,
          name TEXT NOT NULL, session_name TEXT NOT NULL DEFAULT '', principal_id TEXT NOT NULL,
          expires INTEGER NOT NULL, created INTEGER NOT NULL);
        CREATE INDEX sts_sessions_expires ON sts_sessions(expires);
      )sql"},
  });
}

std::string IamDirectory::Arn(const std::string& kind, const std::string& path, const std::string& name) const {
  return "arn:aws:iam::" + account_id() + ":" + kind + (path.empty() ? "/" : path) + name;
}

Identity IamDirectory::UserIdentity(const IamUser& u) const {
  Identity id;
  id.account_id = account_id();
  id.arn = u.arn;
  id.user_name = u.name;
  id.principal_id = u.user_id;
  id.type = u.is_root ? Identity::Type::kRoot : Identity::Type::kUser;
  return id;
}

// --- users ---------------------------------------------------------------------------------

Result<IamUser> IamDirectory::CreateUser(const std::string& name, const std::string& path) {
  RETURN_IF_ERROR(ValidateName("userName", name, 64));
  RETURN_IF_ERROR(ValidatePath(path));
  ASSIGN_OR_RETURN(auto existing, store_->GetUser(name));
  if (existing) return Error(ErrorCode::kEntityAlreadyExists, "User with name " + name + " already exists.");
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "INSERT INTO iam_users(name, user_id, path, created) VALUES(?1, ?2, ?3, ?4)"));
  st.BindAll(name, NewId("AIDA"), path, clock_->NowSeconds());
  RETURN_IF_ERROR(st.Run());
  Bump();
  return GetUser(name);
}

Result<IamUser> IamDirectory::GetUser(const std::string& name) {
  ASSIGN_OR_RETURN(auto u, store_->GetUser(name));
  if (!u) return NoSuch("The user with name " + name + " cannot be found.");
  return *u;
}

Result<std::vector<IamUser>> IamDirectory::ListUsers(const std::string& prefix) {
  ASSIGN_OR_RETURN(Statement st, Query(meta_,
      "SELECT name FROM iam_users WHERE is_root = 0 AND substr(path, 1, length(?1)) = ?1 ORDER BY name",
      PathPrefix(prefix)));
  return Rows<IamUser>(std::move(st), [&](Statement& r) { return GetUser(r.ColumnText(0)); });
}

Status IamDirectory::UpdateUser(const std::string& name, const std::string& new_name, const std::string& new_path) {
  ASSIGN_OR_RETURN(IamUser u, GetUser(name));
  if (u.is_root) return Error(ErrorCode::kIamInvalidInput, "The root user cannot be renamed");
  std::string target = new_name.empty() ? name : new_name;
  RETURN_IF_ERROR(ValidateName("newUserName", target, 64));
  std::string path = new_path.empty() ? u.path : new_path;
  RETURN_IF_ERROR(ValidatePath(path));
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    if (target != name) {
      ASSIGN_OR_RETURN(auto other, store_->GetUser(target));
      if (other) return Error(ErrorCode::kEntityAlreadyExists, "User with name " + target + " already exists.");
    }
    // Access keys reference the user by name without ON UPDATE CASCADE: move them by hand.
    ASSIGN_OR_RETURN(Statement ins, meta_->Prepare(
        "INSERT INTO iam_users(name, user_id, path, is_root, created, password_verifier) "
        "SELECT ?2, user_id || '~', ?3, is_root, created, password_verifier FROM iam_users WHERE name = ?1"));
    if (target == name) {
      ASSIGN_OR_RETURN(Statement up, meta_->Prepare("UPDATE iam_users SET path = ?2 WHERE name = ?1"));
      up.BindAll(name, path);
      return up.Run();
    }
    ins.BindAll(name, target, path);
    RETURN_IF_ERROR(ins.Run());
    for (const char* sql : {"UPDATE iam_access_keys SET user_name = ?2 WHERE user_name = ?1",
                            "UPDATE iam_group_members SET user_name = ?2 WHERE user_name = ?1",
                            "UPDATE iam_attachments SET entity = ?2 WHERE kind = 'user' AND entity = ?1",
                            "UPDATE iam_inline_policies SET entity = ?2 WHERE kind = 'user' AND entity = ?1",
                            "DELETE FROM iam_users WHERE name = ?1",
                            "UPDATE iam_users SET user_id = substr(user_id, 1, length(user_id) - 1) WHERE name = ?2"}) {
      ASSIGN_OR_RETURN(Statement s, meta_->Prepare(sql));
      s.BindAll(name, target);
      RETURN_IF_ERROR(s.Run());
    }
    return Status::OK();
  }));
  Bump();
  return Status::OK();
}

Status IamDirectory::DeleteUser(const std::string& name) {
  ASSIGN_OR_RETURN(IamUser u, GetUser(name));
  if (u.is_root) return Error(ErrorCode::kIamInvalidInput, "The root user cannot be deleted");
  // IAM DeleteUser: the user must have no keys, policies or group memberships left.
  RETURN_IF_ERROR(RequireNoDependents(meta_, {"SELECT 1 FROM iam_access_keys WHERE user_name = ?1",
                                              "SELECT 1 FROM iam_attachments WHERE kind = 'user' AND entity = ?1",
                                              "SELECT 1 FROM iam_inline_policies WHERE kind = 'user' AND entity = ?1",
                                              "SELECT 1 FROM iam_group_members WHERE user_name = ?1"},
                                      name, "Cannot delete entity, must delete access keys, policies and group memberships first."));
  RETURN_IF_ERROR(Write(meta_, "DELETE FROM iam_users WHERE name = ?1", name));
  Bump();
  return Status::OK();
}

Status IamDirectory::SetPassword(const std::string& user_name, const std::string& password) {
  ASSIGN_OR_RETURN(IamUser u, GetUser(user_name));
  (void)u;
  return Write(meta_, "UPDATE iam_users SET password_verifier = ?2 WHERE name = ?1", user_name,
               password.empty() ? std::string() : MakeScramVerifier(password).Serialize())
      .status();
}

// --- groups --------------------------------------------------------------------------------

namespace {
Group GroupFromRow(const Statement& st, const std::string& account) {
  Group g;
  g.name = st.ColumnText(0);
  g.group_id = st.ColumnText(1);
  g.path = st.ColumnText(2);
  g.created = st.ColumnInt(3);
  g.arn = "arn:aws:iam::" + account + ":group" + g.path + g.name;
  return g;
}
Role RoleFromRow(const Statement& st, const std::string& account) {
  Role r;
  r.name = st.ColumnText(0);
  r.role_id = st.ColumnText(1);
  r.path = st.ColumnText(2);
  r.trust_policy = st.ColumnText(3);
  r.description = st.ColumnText(4);
  r.max_session_duration = st.ColumnInt(5);
  r.created = st.ColumnInt(6);
  r.arn = "arn:aws:iam::" + account + ":role" + r.path + r.name;
  return r;
}
constexpr char kGroupCols[] = "SELECT name, group_id, path, created FROM iam_groups ";
constexpr char kRoleCols[] =
    "SELECT name, role_id, path, trust_policy, description, max_session, created FROM iam_roles ";
}  // namespace

Result<Group> IamDirectory::CreateGroup(const std::string& name, const std::string& path) {
  RETURN_IF_ERROR(ValidateName("groupName", name, 128));
  RETURN_IF_ERROR(ValidatePath(path));
  auto existing = GetGroup(name);
  if (existing.ok()) return Error(ErrorCode::kEntityAlreadyExists, "Group with name " + name + " already exists.");
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "INSERT INTO iam_groups(name, group_id, path, created) VALUES(?1, ?2, ?3, ?4)"));
  st.BindAll(name, NewId("AGPA"), path, clock_->NowSeconds());
  RETURN_IF_ERROR(st.Run());
  return GetGroup(name);
}

Result<Group> IamDirectory::GetGroup(const std::string& name) {
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(std::string(kGroupCols) + "WHERE name = ?1"));
  st.Bind(1, name);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NoSuch("The group with name " + name + " cannot be found.");
  return GroupFromRow(st, account_id());
}

Result<std::vector<Group>> IamDirectory::ListGroups(const std::string& prefix) {
  ASSIGN_OR_RETURN(Statement st, Query(meta_, std::string(kGroupCols) +
                                      "WHERE substr(path, 1, length(?1)) = ?1 ORDER BY name", PathPrefix(prefix)));
  return Rows<Group>(std::move(st), [&](Statement& r) { return GroupFromRow(r, account_id()); });
}

Result<std::vector<Group>> IamDirectory::ListGroupsForUser(const std::string& user) {
  ASSIGN_OR_RETURN(IamUser u, GetUser(user));
  (void)u;
  ASSIGN_OR_RETURN(Statement st, Query(meta_,
      "SELECT g.name, g.group_id, g.path, g.created FROM iam_groups g JOIN iam_group_members m "
      "ON m.group_name = g.name WHERE m.user_name = ?1 ORDER BY g.name", user));
  return Rows<Group>(std::move(st), [&](Statement& r) { return GroupFromRow(r, account_id()); });
}

Result<std::vector<IamUser>> IamDirectory::GroupMembers(const std::string& group) {
  ASSIGN_OR_RETURN(Statement st, Query(meta_,
      "SELECT user_name FROM iam_group_members WHERE group_name = ?1 ORDER BY user_name", group));
  return Rows<IamUser>(std::move(st), [&](Statement& r) { return GetUser(r.ColumnText(0)); });
}

Status IamDirectory::DeleteGroup(const std::string& name) {
  ASSIGN_OR_RETURN(Group g, GetGroup(name));
  (void)g;
  RETURN_IF_ERROR(RequireNoDependents(meta_, {"SELECT 1 FROM iam_group_members WHERE group_name = ?1",
                                              "SELECT 1 FROM iam_attachments WHERE kind = 'group' AND entity = ?1",
                                              "SELECT 1 FROM iam_inline_policies WHERE kind = 'group' AND entity = ?1"},
                                      name, "Cannot delete entity, must remove users and policies from group first."));
  RETURN_IF_ERROR(Write(meta_, "DELETE FROM iam_groups WHERE name = ?1", name));
  Bump();
  return Status::OK();
}

Status IamDirectory::AddUserToGroup(const std::string& group, const std::string& user) {
  RETURN_IF_ERROR(GetGroup(group));
  RETURN_IF_ERROR(GetUser(user));
  RETURN_IF_ERROR(Write(meta_, "INSERT OR IGNORE INTO iam_group_members(group_name, user_name) VALUES(?1, ?2)",
                        group, user));
  Bump();
  return Status::OK();
}

Status IamDirectory::RemoveUserFromGroup(const std::string& group, const std::string& user) {
  RETURN_IF_ERROR(GetGroup(group));
  RETURN_IF_ERROR(GetUser(user));
  RETURN_IF_ERROR(Write(meta_, "DELETE FROM iam_group_members WHERE group_name = ?1 AND user_name = ?2", group, user));
  Bump();
  return Status::OK();
}

// --- access keys ---------------------------------------------------------------------------

Result<AccessKey> IamDirectory::CreateAccessKey(const std::string& user_name) {
  ASSIGN_OR_RETURN(IamUser u, GetUser(user_name));
  ASSIGN_OR_RETURN(auto keys, ListAccessKeys(user_name));
  if (static_cast<int>(keys.size()) >= kMaxAccessKeysPerUser && !u.is_root) {
    return Error(ErrorCode::kIamLimitExceeded, "Cannot exceed quota for AccessKeysPerUser: 2");
  }
  AccessKey k;
  k.access_key_id = IamStore::NewAccessKeyId();
  k.secret_access_key = IamStore::NewSecretAccessKey();
  k.user_name = user_name;
  k.created = clock_->NowSeconds();
  RETURN_IF_ERROR(store_->CreateAccessKey(user_name, k.access_key_id, k.secret_access_key));
  return k;
}

Result<std::vector<AccessKeyInfo>> IamDirectory::ListAccessKeys(const std::string& user_name) {
  RETURN_IF_ERROR(GetUser(user_name));
  ASSIGN_OR_RETURN(Statement st, Query(meta_,
      "SELECT access_key_id, status, created FROM iam_access_keys WHERE user_name = ?1 ORDER BY created, access_key_id",
      user_name));
  return Rows<AccessKeyInfo>(std::move(st), [&](Statement& r) {
    return AccessKeyInfo{r.ColumnText(0), user_name, r.ColumnText(1), r.ColumnInt(2)};
  });
}

Status IamDirectory::UpdateAccessKey(const std::string& user_name, const std::string& akid, bool active) {
  ASSIGN_OR_RETURN(int changed, Write(meta_, "UPDATE iam_access_keys SET status = ?3 WHERE user_name = ?1 AND access_key_id = ?2",
                                      user_name, akid, active ? "Active" : "Inactive"));
  if (changed == 0) return NoSuch("The Access Key with id " + akid + " cannot be found.");
  Bump();  // remembered credentials (Lookup) follow the key's status at once
  return Status::OK();
}

Status IamDirectory::DeleteAccessKey(const std::string& user_name, const std::string& akid) {
  ASSIGN_OR_RETURN(int changed, Write(meta_, "DELETE FROM iam_access_keys WHERE user_name = ?1 AND access_key_id = ?2",
                                      user_name, akid));
  if (changed == 0) return NoSuch("The Access Key with id " + akid + " cannot be found.");
  Bump();
  return Status::OK();
}

Result<std::optional<std::string>> IamDirectory::AccessKeyOwner(const std::string& akid) {
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare("SELECT user_name FROM iam_access_keys WHERE access_key_id = ?1"));
  st.Bind(1, akid);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnText(0));
}

// --- managed policies ----------------------------------------------------------------------

namespace {
constexpr char kPolicyCols[] =
    "SELECT arn, name, policy_id, path, description, default_version, created, updated, "
    "(SELECT count(*) FROM iam_attachments a WHERE a.policy_arn = p.arn) FROM iam_policies p ";
ManagedPolicy PolicyFromRow(const Statement& st) {
  ManagedPolicy p;
  p.arn = st.ColumnText(0);
  p.name = st.ColumnText(1);
  p.policy_id = st.ColumnText(2);
  p.path = st.ColumnText(3);
  p.description = st.ColumnText(4);
  p.default_version = st.ColumnInt(5);
  p.created = st.ColumnInt(6);
  p.updated = st.ColumnInt(7);
  p.attachment_count = st.ColumnInt(8);
  return p;
}
Status CheckDocument(const std::string& document, bool resource_policy = false) {
  if (document.size() > 6144 * 4) return Error(ErrorCode::kIamLimitExceeded, "The policy document is too large");
  return Policy::Parse(document, "check", resource_policy).status();
}
}  // namespace

Result<ManagedPolicy> IamDirectory::CreatePolicy(const std::string& name, const std::string& path,
                                                 const std::string& document, const std::string& description) {
  RETURN_IF_ERROR(ValidateName("policyName", name, 128));
  RETURN_IF_ERROR(ValidatePath(path));
  RETURN_IF_ERROR(CheckDocument(document));
  std::string arn = Arn("policy", path, name);
  if (GetPolicy(arn).ok()) {
    return Error(ErrorCode::kEntityAlreadyExists, "A policy called " + name + " already exists. Duplicate names are not allowed.");
  }
  int64_t now = clock_->NowSeconds();
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
        "INSERT INTO iam_policies(arn, name, policy_id, path, description, created, updated) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)"));
    st.BindAll(arn, name, NewId("ANPA"), path, description, now);
    RETURN_IF_ERROR(st.Run());
    ASSIGN_OR_RETURN(Statement v, meta_->Prepare(
        "INSERT INTO iam_policy_versions(policy_arn, version, document, created) VALUES(?1, 1, ?2, ?3)"));
    v.BindAll(arn, document, now);
    return v.Run();
  }));
  return GetPolicy(arn);
}

Result<ManagedPolicy> IamDirectory::GetPolicy(const std::string& arn) {
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(std::string(kPolicyCols) + "WHERE arn = ?1"));
  st.Bind(1, arn);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NoSuch("Policy " + arn + " was not found.");
  return PolicyFromRow(st);
}

Result<std::vector<ManagedPolicy>> IamDirectory::ListPolicies(bool only_attached, const std::string& prefix) {
  ASSIGN_OR_RETURN(Statement st, Query(meta_, std::string(kPolicyCols) +
                                      "WHERE substr(path, 1, length(?1)) = ?1 ORDER BY name, arn", PathPrefix(prefix)));
  ASSIGN_OR_RETURN(std::vector<ManagedPolicy> out, Rows<ManagedPolicy>(std::move(st), PolicyFromRow));
  if (only_attached) std::erase_if(out, [](const ManagedPolicy& p) { return p.attachment_count == 0; });
  return out;
}

Status IamDirectory::DeletePolicy(const std::string& arn) {
  ASSIGN_OR_RETURN(ManagedPolicy p, GetPolicy(arn));
  if (p.attachment_count > 0) {
    return Error(ErrorCode::kDeleteConflict, "Cannot delete a policy attached to entities.");
  }
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare("DELETE FROM iam_policies WHERE arn = ?1"));
  st.Bind(1, arn);
  RETURN_IF_ERROR(st.Run());
  Bump();
  return Status::OK();
}

Result<PolicyVersion> IamDirectory::GetPolicyVersion(const std::string& arn, int64_t version) {
  ASSIGN_OR_RETURN(ManagedPolicy p, GetPolicy(arn));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "SELECT document, version, created FROM iam_policy_versions WHERE policy_arn = ?1 AND version = ?2"));
  st.Bind(1, arn).Bind(2, version);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NoSuch("Policy " + arn + " version v" + std::to_string(version) + " does not exist.");
  return PolicyVersion{st.ColumnText(0), st.ColumnInt(1), st.ColumnInt(1) == p.default_version, st.ColumnInt(2)};
}

Result<std::vector<PolicyVersion>> IamDirectory::ListPolicyVersions(const std::string& arn) {
  ASSIGN_OR_RETURN(ManagedPolicy p, GetPolicy(arn));
  ASSIGN_OR_RETURN(Statement st, Query(meta_,
      "SELECT document, version, created FROM iam_policy_versions WHERE policy_arn = ?1 ORDER BY version DESC", arn));
  return Rows<PolicyVersion>(std::move(st), [&](Statement& r) {
    return PolicyVersion{r.ColumnText(0), r.ColumnInt(1), r.ColumnInt(1) == p.default_version, r.ColumnInt(2)};
  });
}

Result<PolicyVersion> IamDirectory::CreatePolicyVersion(const std::string& arn, const std::string& document,
                                                        bool set_default) {
  RETURN_IF_ERROR(CheckDocument(document));
  int64_t version = 0;
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(auto versions, ListPolicyVersions(arn));
    if (static_cast<int>(versions.size()) >= kMaxPolicyVersions) {
      return Error(ErrorCode::kIamLimitExceeded, "A managed policy can have up to 5 versions.");
    }
    ASSIGN_OR_RETURN(Statement q, meta_->Prepare("SELECT next_version FROM iam_policies WHERE arn = ?1"));
    q.Bind(1, arn);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return NoSuch("Policy " + arn + " was not found.");
    version = q.ColumnInt(0);
    int64_t now = clock_->NowSeconds();
    ASSIGN_OR_RETURN(Statement v, meta_->Prepare(
        "INSERT INTO iam_policy_versions(policy_arn, version, document, created) VALUES(?1, ?2, ?3, ?4)"));
    v.Bind(1, arn).Bind(2, version).Bind(3, document).Bind(4, now);
    RETURN_IF_ERROR(v.Run());
    ASSIGN_OR_RETURN(Statement u, meta_->Prepare(
        "UPDATE iam_policies SET next_version = next_version + 1, updated = ?2, "
        "default_version = CASE WHEN ?3 THEN ?4 ELSE default_version END WHERE arn = ?1"));
    u.Bind(1, arn).Bind(2, now).Bind(3, int64_t(set_default ? 1 : 0)).Bind(4, version);
    return u.Run();
  }));
  Bump();
  return GetPolicyVersion(arn, version);
}

Status IamDirectory::DeletePolicyVersion(const std::string& arn, int64_t version) {
  ASSIGN_OR_RETURN(PolicyVersion v, GetPolicyVersion(arn, version));
  if (v.is_default) return Error(ErrorCode::kDeleteConflict, "Cannot delete the default version of a policy.");
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare("DELETE FROM iam_policy_versions WHERE policy_arn = ?1 AND version = ?2"));
  st.Bind(1, arn).Bind(2, version);
  return st.Run();
}

Status IamDirectory::SetDefaultPolicyVersion(const std::string& arn, int64_t version) {
  RETURN_IF_ERROR(GetPolicyVersion(arn, version));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare("UPDATE iam_policies SET default_version = ?2 WHERE arn = ?1"));
  st.Bind(1, arn).Bind(2, version);
  RETURN_IF_ERROR(st.Run());
  Bump();
  return Status::OK();
}

// --- attachments and inline policies -------------------------------------------------------

Status IamDirectory::RequireEntity(const std::string& kind, const std::string& name) {
  if (kind == "user") return GetUser(name).status();
  if (kind == "group") return GetGroup(name).status();
  if (kind == "role") return GetRole(name).status();
  return Error(ErrorCode::kInternal, "unknown IAM entity kind " + kind);
}

Status IamDirectory::AttachPolicy(const std::string& kind, const std::string& name, const std::string& arn) {
  RETURN_IF_ERROR(RequireEntity(kind, name));
  RETURN_IF_ERROR(GetPolicy(arn));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "INSERT OR IGNORE INTO iam_attachments(kind, entity, policy_arn) VALUES(?1, ?2, ?3)"));
  st.BindAll(kind, name, arn);
  RETURN_IF_ERROR(st.Run());
  Bump();
  return Status::OK();
}

Status IamDirectory::DetachPolicy(const std::string& kind, const std::string& name, const std::string& arn) {
  RETURN_IF_ERROR(RequireEntity(kind, name));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "DELETE FROM iam_attachments WHERE kind = ?1 AND entity = ?2 AND policy_arn = ?3"));
  st.BindAll(kind, name, arn);
  RETURN_IF_ERROR(st.Run());
  if (meta_->Changes() == 0) return NoSuch("Policy " + arn + " was not found.");
  Bump();
  return Status::OK();
}

Result<std::vector<ManagedPolicy>> IamDirectory::ListAttached(const std::string& kind, const std::string& name) {
  RETURN_IF_ERROR(RequireEntity(kind, name));
  ASSIGN_OR_RETURN(Statement st, Query(meta_,
      "SELECT policy_arn FROM iam_attachments WHERE kind = ?1 AND entity = ?2 ORDER BY policy_arn", kind, name));
  return Rows<ManagedPolicy>(std::move(st), [&](Statement& r) { return GetPolicy(r.ColumnText(0)); });
}

Status IamDirectory::PutInlinePolicy(const std::string& kind, const std::string& name,
                                     const std::string& policy_name, const std::string& document) {
  RETURN_IF_ERROR(RequireEntity(kind, name));
  RETURN_IF_ERROR(ValidateName("policyName", policy_name, 128));
  RETURN_IF_ERROR(CheckDocument(document));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "INSERT INTO iam_inline_policies(kind, entity, policy_name, document) VALUES(?1, ?2, ?3, ?4) "
      "ON CONFLICT(kind, entity, policy_name) DO UPDATE SET document = excluded.document"));
  st.BindAll(kind, name, policy_name, document);
  RETURN_IF_ERROR(st.Run());
  Bump();
  return Status::OK();
}

Result<std::string> IamDirectory::GetInlinePolicy(const std::string& kind, const std::string& name,
                                                  const std::string& policy_name) {
  RETURN_IF_ERROR(RequireEntity(kind, name));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "SELECT document FROM iam_inline_policies WHERE kind = ?1 AND entity = ?2 AND policy_name = ?3"));
  st.BindAll(kind, name, policy_name);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NoSuch("The " + kind + " policy with name " + policy_name + " cannot be found.");
  return st.ColumnText(0);
}

Status IamDirectory::DeleteInlinePolicy(const std::string& kind, const std::string& name,
                                        const std::string& policy_name) {
  RETURN_IF_ERROR(RequireEntity(kind, name));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "DELETE FROM iam_inline_policies WHERE kind = ?1 AND entity = ?2 AND policy_name = ?3"));
  st.BindAll(kind, name, policy_name);
  RETURN_IF_ERROR(st.Run());
  if (meta_->Changes() == 0) return NoSuch("The " + kind + " policy with name " + policy_name + " cannot be found.");
  Bump();
  return Status::OK();
}

Result<std::vector<std::string>> IamDirectory::ListInlinePolicies(const std::string& kind, const std::string& name) {
  RETURN_IF_ERROR(RequireEntity(kind, name));
  ASSIGN_OR_RETURN(Statement st, Query(meta_,
      "SELECT policy_name FROM iam_inline_policies WHERE kind = ?1 AND entity = ?2 ORDER BY policy_name", kind, name));
  return Rows<std::string>(std::move(st), [](Statement& r) { return r.ColumnText(0); });
}

// --- roles ---------------------------------------------------------------------------------

Result<Role> IamDirectory::CreateRole(const std::string& name, const std::string& path, const std::string& trust,
                                      const std::string& description, int64_t max_session) {
  RETURN_IF_ERROR(ValidateName("roleName", name, 64));
  RETURN_IF_ERROR(ValidatePath(path));
  RETURN_IF_ERROR(CheckDocument(trust, /*resource_policy=*/true));
  if (max_session < 3600 || max_session > 43200) {
    return Error(ErrorCode::kValidationError, "MaxSessionDuration must be between 3600 and 43200 seconds");
  }
  if (GetRole(name).ok()) return Error(ErrorCode::kEntityAlreadyExists, "Role with name " + name + " already exists.");
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "INSERT INTO iam_roles(name, role_id, path, trust_policy, description, max_session, created) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  st.Bind(1, name).Bind(2, NewId("AROA")).Bind(3, path).Bind(4, trust).Bind(5, description)
      .Bind(6, max_session).Bind(7, clock_->NowSeconds());
  RETURN_IF_ERROR(st.Run());
  return GetRole(name);
}

Result<Role> IamDirectory::GetRole(const std::string& name) {
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(std::string(kRoleCols) + "WHERE name = ?1"));
  st.Bind(1, name);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NoSuch("The role with name " + name + " cannot be found.");
  return RoleFromRow(st, account_id());
}

Result<std::vector<Role>> IamDirectory::ListRoles(const std::string& prefix) {
  ASSIGN_OR_RETURN(Statement st, Query(meta_, std::string(kRoleCols) +
                                      "WHERE substr(path, 1, length(?1)) = ?1 ORDER BY name", PathPrefix(prefix)));
  return Rows<Role>(std::move(st), [&](Statement& r) { return RoleFromRow(r, account_id()); });
}

Status IamDirectory::DeleteRole(const std::string& name) {
  RETURN_IF_ERROR(GetRole(name));
  RETURN_IF_ERROR(RequireNoDependents(meta_, {"SELECT 1 FROM iam_attachments WHERE kind = 'role' AND entity = ?1",
                                              "SELECT 1 FROM iam_inline_policies WHERE kind = 'role' AND entity = ?1"},
                                      name, "Cannot delete entity, must detach all policies first."));
  RETURN_IF_ERROR(Write(meta_, "DELETE FROM iam_roles WHERE name = ?1", name));
  Bump();
  return Status::OK();
}

Status IamDirectory::UpdateAssumeRolePolicy(const std::string& name, const std::string& trust) {
  RETURN_IF_ERROR(GetRole(name));
  RETURN_IF_ERROR(CheckDocument(trust, true));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare("UPDATE iam_roles SET trust_policy = ?2 WHERE name = ?1"));
  st.BindAll(name, trust);
  return st.Run();
}

// --- STS sessions ----------------------------------------------------------------------------

Result<TemporaryCredentials> IamDirectory::CreateSession(const Identity& identity, int64_t seconds) {
  TemporaryCredentials c;
  c.access_key_id = IamStore::NewAccessKeyId("ASIA");
  c.secret_access_key = IamStore::NewSecretAccessKey();
  // An opaque token; the lake looks it up by access key id and compares it.
  c.session_token = "FwoGZXIvYXdzE" + Base64Encode(RandomBytes(96));
  int64_t now = clock_->NowSeconds();
  c.expiration = now + seconds;
  ASSIGN_OR_RETURN(std::string sealed,
                   keyring_->Seal(c.secret_access_key + "\n" + c.session_token, c.access_key_id));
  std::string kind, name, session;
  switch (identity.type) {
    case Identity::Type::kAssumedRole: {
      kind = "role";
      // arn:aws:sts::<acct>:assumed-role/<role>/<session>
      std::string rest = identity.arn.substr(identity.arn.find("assumed-role/") + 13);
      name = rest.substr(0, rest.find('/'));
      session = identity.user_name;
      break;
    }
    case Identity::Type::kRoot: kind = "root"; name = "root"; break;
    default: kind = "user"; name = identity.user_name; break;
  }
  RETURN_IF_ERROR(meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement gc, meta_->Prepare("DELETE FROM sts_sessions WHERE expires < ?1"));
    gc.Bind(1, now - 3600);
    RETURN_IF_ERROR(gc.Run());
    ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
        "INSERT INTO sts_sessions(access_key_id, sealed, kind, name, session_name, principal_id, expires, created) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    st.Bind(1, c.access_key_id).BindBlob(2, sealed).Bind(3, kind).Bind(4, name).Bind(5, session)
        .Bind(6, identity.principal_id).Bind(7, c.expiration).Bind(8, now);
    return st.Run();
  }));
  return c;
}

Result<std::optional<sigv4::SigningCredential>> IamDirectory::Lookup(const std::string& akid) {
  // Read before the store: a write that lands meanwhile makes this entry stale at once.
  uint64_t generation = Generation();
  {
    std::lock_guard<std::mutex> l(credentials_mu_);
    auto it = credentials_.find(akid);
    if (it != credentials_.end() && it->second.generation == generation) {
      return std::optional<sigv4::SigningCredential>(it->second.credential);
    }
  }
  ASSIGN_OR_RETURN(std::optional<sigv4::SigningCredential> found, LookupStored(akid));
  if (found) {  // unknown ids are not remembered: random ones cannot grow the map
    std::lock_guard<std::mutex> l(credentials_mu_);
    if (credentials_.size() >= 4096) credentials_.clear();
    credentials_[akid] = {generation, *found};
  }
  return found;
}

Result<std::optional<sigv4::SigningCredential>> IamDirectory::LookupStored(const std::string& akid) {
  using Out = std::optional<sigv4::SigningCredential>;
  if (StartsWith(akid, "ASIA")) {
    ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
        "SELECT sealed, kind, name, session_name, principal_id, expires FROM sts_sessions WHERE access_key_id = ?1"));
    st.Bind(1, akid);
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Out();
    ASSIGN_OR_RETURN(std::string plain, keyring_->Unseal(st.ColumnText(0), akid));
    size_t nl = plain.find('\n');
    sigv4::SigningCredential c;
    c.secret_access_key = plain.substr(0, nl);
    c.session_token = nl == std::string::npos ? "" : plain.substr(nl + 1);
    c.expires = st.ColumnInt(5);
    std::string kind = st.ColumnText(1), name = st.ColumnText(2);
    c.identity.account_id = account_id();
    c.identity.principal_id = st.ColumnText(4);
    c.identity.session_token_id = akid;
    if (kind == "role") {
      auto role = GetRole(name);
      if (!role.ok()) return Out();  // the role was deleted: its sessions die with it
      c.identity.type = Identity::Type::kAssumedRole;
      c.identity.user_name = st.ColumnText(3);
      c.identity.arn = "arn:aws:sts::" + account_id() + ":assumed-role/" + name + "/" + c.identity.user_name;
    } else {
      auto user = store_->GetUser(name);
      if (!user.ok() || !*user) return Out();
      Identity base = UserIdentity(**user);
      c.identity.type = base.type;
      c.identity.arn = base.arn;
      c.identity.user_name = base.user_name;
    }
    return Out(std::move(c));
  }
  ASSIGN_OR_RETURN(std::optional<AccessKey> key, store_->FindAccessKey(akid));
  if (!key) return Out();
  ASSIGN_OR_RETURN(std::optional<IamUser> user, store_->GetUser(key->user_name));
  if (!user) return Out();
  sigv4::SigningCredential c;
  c.secret_access_key = key->secret_access_key;
  c.active = key->active;
  c.identity = UserIdentity(*user);
  return Out(std::move(c));
}

Status IamDirectory::PoliciesOf(const std::string& kind, const std::string& name,
                                std::vector<NamedPolicyDocument>* out) {
  ASSIGN_OR_RETURN(Statement in, Query(meta_,
      "SELECT policy_name, document FROM iam_inline_policies WHERE kind = ?1 AND entity = ?2", kind, name));
  ASSIGN_OR_RETURN(auto inline_docs, Rows<NamedPolicyDocument>(std::move(in), [&](Statement& r) {
    return NamedPolicyDocument{kind + "/" + name + " inline:" + r.ColumnText(0), r.ColumnText(1)};
  }));
  ASSIGN_OR_RETURN(Statement at, Query(meta_,
      "SELECT a.policy_arn, v.document FROM iam_attachments a JOIN iam_policies p ON p.arn = a.policy_arn "
      "JOIN iam_policy_versions v ON v.policy_arn = p.arn AND v.version = p.default_version "
      "WHERE a.kind = ?1 AND a.entity = ?2", kind, name));
  ASSIGN_OR_RETURN(auto attached, Rows<NamedPolicyDocument>(std::move(at), [](Statement& r) {
    return NamedPolicyDocument{r.ColumnText(0), r.ColumnText(1)};
  }));
  for (auto* docs : {&inline_docs, &attached}) {
    for (auto& d : *docs) out->push_back(std::move(d));
  }
  return Status::OK();
}

Result<std::vector<NamedPolicyDocument>> IamDirectory::IdentityPolicies(const Identity& identity) {
  std::vector<NamedPolicyDocument> out;
  if (identity.type == Identity::Type::kUser) {
    RETURN_IF_ERROR(PoliciesOf("user", identity.user_name, &out));
    ASSIGN_OR_RETURN(Statement g, Query(meta_, "SELECT group_name FROM iam_group_members WHERE user_name = ?1",
                                        identity.user_name));
    ASSIGN_OR_RETURN(auto groups, Rows<std::string>(std::move(g), [](Statement& r) { return r.ColumnText(0); }));
    for (const std::string& grp : groups) RETURN_IF_ERROR(PoliciesOf("group", grp, &out));
  } else if (identity.type == Identity::Type::kAssumedRole) {
    size_t p = identity.arn.find("assumed-role/");
    if (p != std::string::npos) {
      std::string rest = identity.arn.substr(p + 13);
      RETURN_IF_ERROR(PoliciesOf("role", rest.substr(0, rest.find('/')), &out));
    }
  }
  return out;
}

}  // namespace tarn::security::iam
