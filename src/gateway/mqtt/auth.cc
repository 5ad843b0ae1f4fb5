#include "gateway/mqtt/auth.h"

#include <mutex>
#include <unordered_set>

#include "core/crypto.h"
#include "security/iam/iam_store.h"
#include "security/keyring.h"

namespace tarn::gateway::mqtt {

const char* AuthzActionName(AuthzAction a) {
  switch (a) {
    case AuthzAction::kConnect: return "connect";
    case AuthzAction::kPublish: return "publish";
    case AuthzAction::kSubscribe: return "subscribe";
    case AuthzAction::kReceive: return "receive";
    case AuthzAction::kRetainPublish: return "retain-publish";
  }
  return "?";
}

// Devices reconnect often with the same credentials; PBKDF2 at 4096 rounds per CONNECT would
// dominate reconnect storms. A successful check is remembered as SHA-256(verifier, password),
// so a changed password (new verifier) is checked afresh and nothing reversible is kept.
struct IamAuthenticator::Cache {
  std::mutex mu;
  std::unordered_set<std::string> ok;  // guarded by mu
};

IamAuthenticator::IamAuthenticator(security::IamStore* iam, bool allow_anonymous)
    : iam_(iam), allow_anonymous_(allow_anonymous), cache_(std::make_unique<Cache>()) {}
IamAuthenticator::~IamAuthenticator() = default;

Result<std::string> IamAuthenticator::Authenticate(const ClientInfo& client,
                                                   const std::optional<std::string>& username,
                                                   const std::optional<std::string>& password) {
  if (username) {
    if (!password) return Error(ErrorCode::kInvalidPassword, "a password is required");
    ASSIGN_OR_RETURN(auto user, iam_->GetUser(*username));
    if (!user || user->password_verifier.empty()) {
      return Error(ErrorCode::kInvalidPassword, "bad user name or password");
    }
    std::string key = Sha256(user->password_verifier + '\0' + *password);
    {
      std::lock_guard<std::mutex> lock(cache_->mu);
      if (cache_->ok.count(key)) return user->name;
    }
    auto v = security::ScramVerifier::Parse(user->password_verifier);
    if (!v.ok() || !security::CheckPassword(*v, *password)) {
      return Error(ErrorCode::kInvalidPassword, "bad user name or password");
    }
    std::lock_guard<std::mutex> lock(cache_->mu);
    if (cache_->ok.size() > 100000) cache_->ok.clear();
    cache_->ok.insert(key);
    return user->name;
  }
  if (client.has_client_cert) return "cert:" + client.cert_subject_cn;
  if (allow_anonymous_) return std::string();
  return Error(ErrorCode::kAccessDenied, "anonymous connections are not allowed");
}

}  // namespace tarn::gateway::mqtt
