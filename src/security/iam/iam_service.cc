#include "security/iam/iam_service.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <unordered_map>

#include "core/clock.h"
#include "core/strings.h"
#include "security/iam/authorize_call.h"

namespace tarn::security::iam {

namespace {

std::string Tag(const char* name, const std::string& value) {
  return std::string("<") + name + ">" + XmlEscape(value) + "</" + name + ">";
}
std::string Date(int64_t t) { return FormatIso8601(t); }

std::string UserXml(const IamUser& u, const char* tag = "User") {
  return std::string("<") + tag + ">" + Tag("Path", u.path) + Tag("UserName", u.name) + Tag("UserId", u.user_id) +
         Tag("Arn", u.arn) + Tag("CreateDate", Date(u.created)) + "</" + tag + ">";
}
std::string GroupXml(const Group& g, const char* tag = "Group") {
  return std::string("<") + tag + ">" + Tag("Path", g.path) + Tag("GroupName", g.name) + Tag("GroupId", g.group_id) +
         Tag("Arn", g.arn) + Tag("CreateDate", Date(g.created)) + "</" + tag + ">";
}
std::string RoleXml(const Role& r, const char* tag = "Role") {
  return std::string("<") + tag + ">" + Tag("Path", r.path) + Tag("RoleName", r.name) + Tag("RoleId", r.role_id) +
         Tag("Arn", r.arn) + Tag("CreateDate", Date(r.created)) +
         Tag("AssumeRolePolicyDocument", UriEncode(r.trust_policy)) +
         (r.description.empty() ? "" : Tag("Description", r.description)) +
         Tag("MaxSessionDuration", std::to_string(r.max_session_duration)) + "</" + tag + ">";
}
std::string PolicyXml(const ManagedPolicy& p, const char* tag = "Policy") {
  return std::string("<") + tag + ">" + Tag("PolicyName", p.name) + Tag("PolicyId", p.policy_id) + Tag("Arn", p.arn) +
         Tag("Path", p.path) + Tag("DefaultVersionId", "v" + std::to_string(p.default_version)) +
         Tag("AttachmentCount", std::to_string(p.attachment_count)) +
         Tag("PermissionsBoundaryUsageCount", "0") + Tag("IsAttachable", "true") +
         (p.description.empty() ? "" : Tag("Description", p.description)) + Tag("CreateDate", Date(p.created)) +
         Tag("UpdateDate", Date(p.updated)) + "</" + tag + ">";
}
std::string VersionXml(const PolicyVersion& v, bool with_document, const char* tag = "PolicyVersion") {
  return std::string("<") + tag + ">" + (with_document ? Tag("Document", UriEncode(v.document)) : std::string()) +
         Tag("VersionId", "v" + std::to_string(v.version)) +
         Tag("IsDefaultVersion", v.is_default ? "true" : "false") + Tag("CreateDate", Date(v.created)) +
         "</" + tag + ">";
}

const char* kNotTruncated = "<IsTruncated>false</IsTruncated>";

// IAM List* paging: MaxItems (1..1000, default 100), Marker (from the previous page's
// response), IsTruncated. The marker names the last item returned (base64, so clients treat
// it as opaque); the next page starts after that item, or after where it sorted if it was
// deleted meanwhile.
struct Paging {
  size_t max_items = 100;
  std::optional<std::string> after;
};

Result<Paging> ParsePaging(const net::ApiCall& call) {
  Paging p;
  const std::string& max = call.Param("MaxItems");
  if (!max.empty()) {
    auto n = ParseInt64(max);
    if (!n || *n < 1 || *n > 1000) {
      return Error(ErrorCode::kValidationError, "1 validation error detected: Value '" + max +
                                                    "' at 'maxItems' failed to satisfy constraint: Member "
                                                    "must have value between 1 and 1000");
    }
    p.max_items = static_cast<size_t>(*n);
  }
  const std::string& marker = call.Param("Marker");
  if (!marker.empty()) {
    auto decoded = Base64Decode(marker);
    if (!decoded) return Error(ErrorCode::kValidationError, "Invalid Marker: " + marker);
    p.after = *decoded;
  }
  return p;
}

// One page of `items` (in the directory's order, ascending by `key`) inside <tag>, followed by
// IsTruncated and, when truncated, the Marker of the next page.
template <typename T, typename KeyFn, typename XmlFn>
std::string Page(const char* tag, const std::vector<T>& items, const Paging& paging, KeyFn key, XmlFn xml) {
  auto it = items.begin();
  if (paging.after) {
    auto same = std::find_if(items.begin(), items.end(), [&](const T& i) { return key(i) == *paging.after; });
    it = same != items.end() ? same + 1
                             : std::find_if(items.begin(), items.end(), [&](const T& i) { return key(i) > *paging.after; });
  }
  std::string s = std::string("<") + tag + ">";
  size_t n = 0;
  std::string last;
  for (; it != items.end() && n < paging.max_items; ++it, ++n) {
    s += xml(*it);
    last = key(*it);
  }
  s += std::string("</") + tag + ">";
  if (it == items.end()) return s + kNotTruncated;
  return s + "<IsTruncated>true</IsTruncated>" + Tag("Marker", Base64Encode(last));
}

Status Required(const net::ApiCall& call, const char* name, std::string* out) {
  *out = call.Param(name);
  if (out->empty()) {
    std::string field(name);
    field[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(field[0])));
    return Error(ErrorCode::kValidationError,
                 "1 validation error detected: Value null at '" + field + "' failed to satisfy constraint: "
                 "Member must not be null");
  }
  return Status::OK();
}

Result<int64_t> ParseVersionId(const std::string& v) {
  if (v.size() < 2 || v[0] != 'v') return Error(ErrorCode::kValidationError, "VersionId must look like v1");
  auto n = ParseInt64(std::string_view(v).substr(1));
  if (!n || *n < 1) return Error(ErrorCode::kValidationError, "VersionId must look like v1");
  return *n;
}

void Respond(const net::ApiCall& call, net::HttpResponse& response, const std::string& result, const char* ns) {
  std::string a = call.action;
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + a + "Response xmlns=\"" + ns + "\">";
  if (!result.empty()) xml += "<" + a + "Result>" + result + "</" + a + "Result>";
  xml += "<ResponseMetadata><RequestId>" + XmlEscape(call.request_id) + "</RequestId></ResponseMetadata></" + a +
         "Response>";
  response.status = 200;
  response.SetBody("text/xml", std::move(xml));
}

}  // namespace

void QueryAuditParams(net::ApiCall& call) {
  for (const auto& [k, v] : call.params) {
    if (k == "Action" || k == "Version" || k.empty()) continue;
    if (k.find("Password") != std::string::npos) continue;  // never audit secrets
    std::string key = k;
    key[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(key[0])));
    call.audit_params[key] = v;
  }
}

IamService::IamService(IamDirectory* directory, const Authorizer* authz) : dir_(directory), authz_(authz) {}

Status IamService::Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) {
  const std::string& a = call.action;
  QueryAuditParams(call);
  const std::string acct = dir_->account_id();
  auto arn = [&](const char* kind, const std::string& name) { return "arn:aws:iam::" + acct + ":" + kind + "/" + name; };
  auto authorize = [&](const std::string& resource) -> Status {
    call.resource = resource;
    return AuthorizeCall(*authz_, call, request, "iam:" + a, resource);
  };
  auto respond = [&](const std::string& result) {
    Respond(call, response, result, kIamNamespace);
    return Status::OK();
  };
  // The user a call is about: UserName, or the caller when omitted (GetUser, access keys).
  auto target_user = [&](std::string* name) -> Status {
    *name = call.Param("UserName");
    if (name->empty()) {
      if (call.identity.type == Identity::Type::kRoot) *name = "root";
      else if (call.identity.type == Identity::Type::kUser) *name = call.identity.user_name;
      else return Error(ErrorCode::kValidationError, "Must specify userName when calling with non-User credentials");
    }
    return Status::OK();
  };
  auto user_arn = [&](const std::string& name) {
    return name == "root" ? "arn:aws:iam::" + acct + ":root" : arn("user", name);
  };
  std::string path = call.Param("Path").empty() ? "/" : call.Param("Path");
  std::string prefix = call.Param("PathPrefix");
  ASSIGN_OR_RETURN(Paging paging, ParsePaging(call));
  auto user_key = [](const IamUser& u) { return u.name; };
  auto user_xml = [](const IamUser& u) { return UserXml(u, "member"); };
  auto group_key = [](const Group& g) { return g.name; };
  auto group_xml = [](const Group& g) { return GroupXml(g, "member"); };

  // --- users ---
  if (a == "CreateUser") {
    std::string name;
    RETURN_IF_ERROR(Required(call, "UserName", &name));
    RETURN_IF_ERROR(authorize(arn("user", name)));
    ASSIGN_OR_RETURN(IamUser u, dir_->CreateUser(name, path));
    return respond(UserXml(u));
  }
  if (a == "GetUser") {
    std::string name;
    RETURN_IF_ERROR(target_user(&name));
    RETURN_IF_ERROR(authorize(user_arn(name)));
    ASSIGN_OR_RETURN(IamUser u, dir_->GetUser(name));
    if (u.is_root) u.user_id = acct;
    return respond(UserXml(u));
  }
  if (a == "ListUsers") {
    RETURN_IF_ERROR(authorize(arn("user", "")));
    ASSIGN_OR_RETURN(auto users, dir_->ListUsers(prefix));
    return respond(Page("Users", users, paging, user_key, user_xml));
  }
  if (a == "UpdateUser") {
    std::string name;
    RETURN_IF_ERROR(Required(call, "UserName", &name));
    RETURN_IF_ERROR(authorize(arn("user", name)));
    RETURN_IF_ERROR(dir_->UpdateUser(name, call.Param("NewUserName"), call.Param("NewPath")));
    return respond("");
  }
  if (a == "DeleteUser") {
    std::string name;
    RETURN_IF_ERROR(Required(call, "UserName", &name));
    RETURN_IF_ERROR(authorize(arn("user", name)));
    RETURN_IF_ERROR(dir_->DeleteUser(name));
    return respond("");
  }
  // --- login profiles (SQL / console password, kept as a SCRAM verifier) ---
  if (a == "CreateLoginProfile" || a == "UpdateLoginProfile") {
    std::string name, password;
    RETURN_IF_ERROR(target_user(&name));
    RETURN_IF_ERROR(Required(call, "Password", &password));
    RETURN_IF_ERROR(authorize(user_arn(name)));
    ASSIGN_OR_RETURN(IamUser u, dir_->GetUser(name));
    if (a == "CreateLoginProfile" && !u.password_verifier.empty()) {
      return Error(ErrorCode::kEntityAlreadyExists, "Login Profile for user " + name + " already exists.");
    }
    if (a == "UpdateLoginProfile" && u.password_verifier.empty()) {
      return Error(ErrorCode::kNoSuchEntity, "Login Profile for user " + name + " cannot be found.");
    }
    RETURN_IF_ERROR(dir_->SetPassword(name, password));
    if (a == "UpdateLoginProfile") return respond("");
    return respond("<LoginProfile>" + Tag("UserName", name) + Tag("CreateDate", Date(Clock::Real()->NowSeconds())) +
                   "<PasswordResetRequired>false</PasswordResetRequired></LoginProfile>");
  }
  if (a == "GetLoginProfile" || a == "DeleteLoginProfile") {
    std::string name;
    RETURN_IF_ERROR(target_user(&name));
    RETURN_IF_ERROR(authorize(user_arn(name)));
    ASSIGN_OR_RETURN(IamUser u, dir_->GetUser(name));
    if (u.password_verifier.empty()) {
      return Error(ErrorCode::kNoSuchEntity, "Login Profile for user " + name + " cannot be found.");
    }
    if (a == "DeleteLoginProfile") {
      RETURN_IF_ERROR(dir_->SetPassword(name, ""));
      return respond("");
    }
    return respond("<LoginProfile>" + Tag("UserName", name) + Tag("CreateDate", Date(u.created)) +
                   "<PasswordResetRequired>false</PasswordResetRequired></LoginProfile>");
  }

  // --- groups ---
  if (a == "CreateGroup" || a == "GetGroup" || a == "DeleteGroup") {
    std::string name;
    RETURN_IF_ERROR(Required(call, "GroupName", &name));
    RETURN_IF_ERROR(authorize(arn("group", name)));
    if (a == "CreateGroup") {
      ASSIGN_OR_RETURN(Group g, dir_->CreateGroup(name, path));
      return respond(GroupXml(g));
    }
    if (a == "DeleteGroup") {
      RETURN_IF_ERROR(dir_->DeleteGroup(name));
      return respond("");
    }
    ASSIGN_OR_RETURN(Group g, dir_->GetGroup(name));
    ASSIGN_OR_RETURN(auto users, dir_->GroupMembers(name));
    return respond(GroupXml(g) + Page("Users", users, paging, user_key, user_xml));
  }
  if (a == "ListGroups") {
    RETURN_IF_ERROR(authorize(arn("group", "")));
    ASSIGN_OR_RETURN(auto groups, dir_->ListGroups(prefix));
    return respond(Page("Groups", groups, paging, group_key, group_xml));
  }
  if (a == "ListGroupsForUser") {
    std::string name;
    RETURN_IF_ERROR(Required(call, "UserName", &name));
    RETURN_IF_ERROR(authorize(arn("user", name)));
    ASSIGN_OR_RETURN(auto groups, dir_->ListGroupsForUser(name));
    return respond(Page("Groups", groups, paging, group_key, group_xml));
  }
  if (a == "AddUserToGroup" || a == "RemoveUserFromGroup") {
    std::string group, user;
    RETURN_IF_ERROR(Required(call, "GroupName", &group));
    RETURN_IF_ERROR(Required(call, "UserName", &user));
    RETURN_IF_ERROR(authorize(arn("group", group)));
    RETURN_IF_ERROR(a == "AddUserToGroup" ? dir_->AddUserToGroup(group, user) : dir_->RemoveUserFromGroup(group, user));
    return respond("");
  }

  // --- access keys ---
  if (a == "CreateAccessKey" || a == "ListAccessKeys" || a == "UpdateAccessKey" || a == "DeleteAccessKey") {
    std::string name;
    RETURN_IF_ERROR(target_user(&name));
    RETURN_IF_ERROR(authorize(user_arn(name)));
    if (a == "CreateAccessKey") {
      ASSIGN_OR_RETURN(AccessKey k, dir_->CreateAccessKey(name));
      return respond("<AccessKey>" + Tag("UserName", name) + Tag("AccessKeyId", k.access_key_id) +
                     Tag("Status", "Active") + Tag("SecretAccessKey", k.secret_access_key) +
                     Tag("CreateDate", Date(k.created)) + "</AccessKey>");
    }
    if (a == "ListAccessKeys") {
      ASSIGN_OR_RETURN(auto keys, dir_->ListAccessKeys(name));
      return respond(Page("AccessKeyMetadata", keys, paging, [](const AccessKeyInfo& k) { return k.access_key_id; },
                          [](const AccessKeyInfo& k) {
                            return "<member>" + Tag("UserName", k.user_name) + Tag("AccessKeyId", k.access_key_id) +
                                   Tag("Status", k.status) + Tag("CreateDate", Date(k.created)) + "</member>";
                          }));
    }
    std::string akid;
    RETURN_IF_ERROR(Required(call, "AccessKeyId", &akid));
    if (a == "UpdateAccessKey") {
      std::string status;
      RETURN_IF_ERROR(Required(call, "Status", &status));
      if (status != "Active" && status != "Inactive") {
        return Error(ErrorCode::kValidationError, "Status must be Active or Inactive");
      }
      RETURN_IF_ERROR(dir_->UpdateAccessKey(name, akid, status == "Active"));
    } else {
      RETURN_IF_ERROR(dir_->DeleteAccessKey(name, akid));
    }
    return respond("");
  }

  // --- managed policies ---
  if (a == "CreatePolicy") {
    std::string name, doc;
    RETURN_IF_ERROR(Required(call, "PolicyName", &name));
    RETURN_IF_ERROR(Required(call, "PolicyDocument", &doc));
    RETURN_IF_ERROR(authorize(dir_->Arn("policy", path, name)));
    ASSIGN_OR_RETURN(ManagedPolicy p, dir_->CreatePolicy(name, path, doc, call.Param("Description")));
    return respond(PolicyXml(p));
  }
  if (a == "GetPolicy" || a == "DeletePolicy" || a == "GetPolicyVersion" || a == "CreatePolicyVersion" ||
      a == "ListPolicyVersions" || a == "DeletePolicyVersion" || a == "SetDefaultPolicyVersion") {
    std::string parn;
    RETURN_IF_ERROR(Required(call, "PolicyArn", &parn));
    RETURN_IF_ERROR(authorize(parn));
    if (a == "GetPolicy") {
      ASSIGN_OR_RETURN(ManagedPolicy p, dir_->GetPolicy(parn));
      return respond(PolicyXml(p));
    }
    if (a == "DeletePolicy") {
      RETURN_IF_ERROR(dir_->DeletePolicy(parn));
      return respond("");
    }
    if (a == "ListPolicyVersions") {
      ASSIGN_OR_RETURN(auto versions, dir_->ListPolicyVersions(parn));
      // Newest first, as IAM lists them; the marker names the last version returned.
      return respond(Page("Versions", versions, paging,
                          [](const PolicyVersion& v) { return std::to_string(v.version); },
                          [](const PolicyVersion& v) { return VersionXml(v, false, "member"); }));
    }
    if (a == "CreatePolicyVersion") {
      std::string doc;
      RETURN_IF_ERROR(Required(call, "PolicyDocument", &doc));
      ASSIGN_OR_RETURN(PolicyVersion v, dir_->CreatePolicyVersion(parn, doc, call.Param("SetAsDefault") == "true"));
      return respond(VersionXml(v, false));
    }
    std::string vid;
    RETURN_IF_ERROR(Required(call, "VersionId", &vid));
    ASSIGN_OR_RETURN(int64_t version, ParseVersionId(vid));
    if (a == "GetPolicyVersion") {
      ASSIGN_OR_RETURN(PolicyVersion v, dir_->GetPolicyVersion(parn, version));
      return respond(VersionXml(v, true));
    }
    RETURN_IF_ERROR(a == "DeletePolicyVersion" ? dir_->DeletePolicyVersion(parn, version)
                                               : dir_->SetDefaultPolicyVersion(parn, version));
    return respond("");
  }
  if (a == "ListPolicies") {
    RETURN_IF_ERROR(authorize(arn("policy", "")));
    std::vector<ManagedPolicy> policies;
    if (call.Param("Scope") != "AWS") {
      ASSIGN_OR_RETURN(policies, dir_->ListPolicies(call.Param("OnlyAttached") == "true", prefix));
    }
    return respond(Page("Policies", policies, paging, [](const ManagedPolicy& p) { return p.name + '\n' + p.arn; },
                        [](const ManagedPolicy& p) { return PolicyXml(p, "member"); }));
  }

  // --- attachments and inline policies: <Verb><Kind>Policy / ListAttached<Kind>Policies ---
  struct KindInfo {
    const char* kind;
    const char* Kind;
    const char* param;
  };
  static const KindInfo kKinds[] = {{"user", "User", "UserName"}, {"group", "Group", "GroupName"},
                                    {"role", "Role", "RoleName"}};
  for (const KindInfo& k : kKinds) {
    std::string K = k.Kind;
    bool attach = a == "Attach" + K + "Policy", detach = a == "Detach" + K + "Policy";
    bool list_attached = a == "ListAttached" + K + "Policies";
    bool put = a == "Put" + K + "Policy", get = a == "Get" + K + "Policy", del = a == "Delete" + K + "Policy";
    bool list_inline = a == "List" + K + "Policies";
    if (!(attach || detach || list_attached || put || get || del || list_inline)) continue;
    std::string name;
    RETURN_IF_ERROR(Required(call, k.param, &name));
    RETURN_IF_ERROR(authorize(arn(k.kind, name)));
    if (attach || detach) {
      std::string parn;
      RETURN_IF_ERROR(Required(call, "PolicyArn", &parn));
      RETURN_IF_ERROR(attach ? dir_->AttachPolicy(k.kind, name, parn) : dir_->DetachPolicy(k.kind, name, parn));
      return respond("");
    }
    if (list_attached) {
      ASSIGN_OR_RETURN(auto attached, dir_->ListAttached(k.kind, name));
      return respond(Page("AttachedPolicies", attached, paging, [](const ManagedPolicy& p) { return p.arn; },
                          [](const ManagedPolicy& p) {
                            return "<member>" + Tag("PolicyName", p.name) + Tag("PolicyArn", p.arn) + "</member>";
                          }));
    }
    if (list_inline) {
      ASSIGN_OR_RETURN(auto names, dir_->ListInlinePolicies(k.kind, name));
      return respond(Page("PolicyNames", names, paging, [](const std::string& n) { return n; },
                          [](const std::string& n) { return Tag("member", n); }));
    }
    std::string pname;
    RETURN_IF_ERROR(Required(call, "PolicyName", &pname));
    if (put) {
      std::string doc;
      RETURN_IF_ERROR(Required(call, "PolicyDocument", &doc));
      RETURN_IF_ERROR(dir_->PutInlinePolicy(k.kind, name, pname, doc));
      return respond("");
    }
    if (del) {
      RETURN_IF_ERROR(dir_->DeleteInlinePolicy(k.kind, name, pname));
      return respond("");
    }
    ASSIGN_OR_RETURN(std::string doc, dir_->GetInlinePolicy(k.kind, name, pname));
    return respond(Tag(k.param, name) + Tag("PolicyName", pname) + Tag("PolicyDocument", UriEncode(doc)));
  }

  // --- roles ---
  if (a == "CreateRole") {
    std::string name, trust;
    RETURN_IF_ERROR(Required(call, "RoleName", &name));
    RETURN_IF_ERROR(Required(call, "AssumeRolePolicyDocument", &trust));
    RETURN_IF_ERROR(authorize(arn("role", name)));
    int64_t max_session = 3600;
    if (!call.Param("MaxSessionDuration").empty()) {
      auto v = ParseInt64(call.Param("MaxSessionDuration"));
      if (!v) return Error(ErrorCode::kValidationError, "MaxSessionDuration must be a number");
      max_session = *v;
    }
    ASSIGN_OR_RETURN(Role r, dir_->CreateRole(name, path, trust, call.Param("Description"), max_session));
    return respond(RoleXml(r));
  }
  if (a == "GetRole" || a == "DeleteRole" || a == "UpdateAssumeRolePolicy") {
    std::string name;
    RETURN_IF_ERROR(Required(call, "RoleName", &name));
    RETURN_IF_ERROR(authorize(arn("role", name)));
    if (a == "DeleteRole") {
      RETURN_IF_ERROR(dir_->DeleteRole(name));
      return respond("");
    }
    if (a == "UpdateAssumeRolePolicy") {
      std::string doc;
      RETURN_IF_ERROR(Required(call, "PolicyDocument", &doc));
      RETURN_IF_ERROR(dir_->UpdateAssumeRolePolicy(name, doc));
      return respond("");
    }
    ASSIGN_OR_RETURN(Role r, dir_->GetRole(name));
    return respond(RoleXml(r));
  }
  if (a == "ListRoles") {
    RETURN_IF_ERROR(authorize(arn("role", "")));
    ASSIGN_OR_RETURN(auto roles, dir_->ListRoles(prefix));
    return respond(Page("Roles", roles, paging, [](const Role& r) { return r.name; },
                        [](const Role& r) { return RoleXml(r, "member"); }));
  }
  if (a == "GetAccountSummary" || a == "ListAccountAliases") {
    RETURN_IF_ERROR(authorize("*"));
    if (a == "ListAccountAliases") return respond("<AccountAliases></AccountAliases>" + std::string(kNotTruncated));
    ASSIGN_OR_RETURN(auto users, dir_->ListUsers("/"));
    ASSIGN_OR_RETURN(auto groups, dir_->ListGroups("/"));
    ASSIGN_OR_RETURN(auto roles, dir_->ListRoles("/"));
    ASSIGN_OR_RETURN(auto policies, dir_->ListPolicies(false, "/"));
    auto entry = [](const char* k, size_t v) { return "<entry><key>" + std::string(k) + "</key><value>" + std::to_string(v) + "</value></entry>"; };
    return respond("<SummaryMap>" + entry("Users", users.size()) + entry("Groups", groups.size()) +
                   entry("Roles", roles.size()) + entry("Policies", policies.size()) + "</SummaryMap>");
  }
  return Error(ErrorCode::kInvalidAction, "The action " + a + " is not valid for this endpoint");
}

}  // namespace tarn::security::iam
