// IAM entities in the metadata store: users, access keys (secrets sealed by the Keyring),
// and SQL/console passwords as SCRAM verifiers. The root user is created at init.
// Thread-safe (MetaStore is).
#pragma once

#include <optional>
#include <string>

#include "core/meta_store.h"
#include "core/status.h"
#include "security/keyring.h"

namespace tarn::security {

struct RootCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string password;
};

struct IamUser {
  std::string name;
  std::string user_id;  // AIDA… stable id
  std::string arn;
  std::string path = "/";
  bool is_root = false;
  int64_t created = 0;  // unix seconds
  std::string password_verifier;  // SCRAM-SHA-256$…; empty = no password
};

struct AccessKey {
  std::string access_key_id;
  std::string user_name;
  std::string secret_access_key;  // unsealed; never logged
  bool active = true;
  int64_t created = 0;
};

class IamStore {
 public:
  IamStore(MetaStore* meta, const Keyring* keyring, std::string account_id);

  // Creates the IAM tables (module "iam").
  Status Migrate();

  // Generates root credentials (AKIA…/40-char secret/24-char password), or takes them from
  // TARN_ROOT_ACCESS_KEY_ID / TARN_ROOT_SECRET_ACCESS_KEY / TARN_ROOT_PASSWORD when set.
  static RootCredentials NewRootCredentials();
  Status CreateRootUser(const RootCredentials& creds);
  Result<bool> HasRootUser();

  Result<std::optional<IamUser>> GetUser(const std::string& name);
  Result<std::optional<AccessKey>> FindAccessKey(const std::string& access_key_id);
  Status CreateAccessKey(const std::string& user_name, const std::string& access_key_id,
                         const std::string& secret);

  static std::string NewAccessKeyId(const char* prefix = "AKIA");
  static std::string NewSecretAccessKey();

  const std::string& account_id() const { return account_id_; }
  MetaStore* meta() const { return meta_; }

 private:
  MetaStore* meta_;
  const Keyring* keyring_;
  std::string account_id_;
};

}  // namespace tarn::security
