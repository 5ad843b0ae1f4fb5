#include "security/iam/iam_store.h"

#include <cstdlib>

#include "core/clock.h"
#include "core/crypto.h"

namespace tarn::security {

namespace {
constexpr char kUpper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
}

IamStore::IamStore(MetaStore* meta, const Keyring* keyring, std::string account_id)
    : meta_(meta), keyring_(keyring), account_id_(std::move(account_id)) {}

Status IamStore::Migrate() {
  return meta_->Migrate("iam", {
      {1, R"sql(
        CREATE TABLE iam_users (
          name TEXT PRIMARY KEY,
          user_id TEXT NOT NULL UNIQUE,
          path TEXT NOT NULL DEFAULT '/',
          is_root INTEGER NOT NULL DEFAULT 0,
          created INTEGER NOT NULL,
          password_verifier TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE iam_access_keys (
          access_key_id TEXT PRIMARY KEY,
          user_name TEXT NOT NULL REFERENCES iam_users(name) ON DELETE CASCADE,
          secret_sealed BLOB NOT NULL,
          status TEXT NOT NULL DEFAULT 'Active',
          created INTEGER NOT NULL
        );
        CREATE INDEX iam_access_keys_user ON iam_access_keys(user_name);
      )sql"},
  });
}

std::string IamStore::NewAccessKeyId(const char* prefix) { return prefix + RandomString(16, kUpper); }

std::string IamStore::NewSecretAccessKey() {
  return RandomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
}

RootCredentials IamStore::NewRootCredentials() {
  RootCredentials c;
  auto env = [](const char* n) -> std::string {
    const char* v = std::getenv(n);
    return v ? v : "";
  };
  c.access_key_id = env("TARN_ROOT_ACCESS_KEY_ID");
  c.secret_access_key = env("TARN_ROOT_SECRET_ACCESS_KEY");
  c.password = env("TARN_ROOT_PASSWORD");
  if (c.access_key_id.empty()) c.access_key_id = NewAccessKeyId();
  if (c.secret_access_key.empty()) c.secret_access_key = NewSecretAccessKey();
  if (c.password.empty()) c.password = RandomString(24);
  return c;
}

Result<bool> IamStore::HasRootUser() {
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare("SELECT 1 FROM iam_users WHERE is_root = 1"));
  return st.Step();
}

Status IamStore::CreateRootUser(const RootCredentials& creds) {
  return meta_->Transaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
        "INSERT INTO iam_users(name, user_id, is_root, created, password_verifier) VALUES(?1, ?2, 1, ?3, ?4)"));
    st.Bind(1, "root").Bind(2, account_id_).Bind(3, Clock::Real()->NowSeconds())
        .Bind(4, MakeScramVerifier(creds.password).Serialize());
    RETURN_IF_ERROR(st.Run());
    return CreateAccessKey("root", creds.access_key_id, creds.secret_access_key);
  });
}

Status IamStore::CreateAccessKey(const std::string& user_name, const std::string& access_key_id,
                                 const std::string& secret) {
  ASSIGN_OR_RETURN(std::string sealed, keyring_->Seal(secret, access_key_id));
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "INSERT INTO iam_access_keys(access_key_id, user_name, secret_sealed, created) VALUES(?1, ?2, ?3, ?4)"));
  st.Bind(1, access_key_id).Bind(2, user_name).BindBlob(3, sealed).Bind(4, Clock::Real()->NowSeconds());
  return st.Run();
}

Result<std::optional<IamUser>> IamStore::GetUser(const std::string& name) {
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "SELECT name, user_id, path, is_root, created, password_verifier FROM iam_users WHERE name = ?1"));
  st.Bind(1, name);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<IamUser>();
  IamUser u;
  u.name = st.ColumnText(0);
  u.user_id = st.ColumnText(1);
  u.path = st.ColumnText(2);
  u.is_root = st.ColumnInt(3) != 0;
  u.created = st.ColumnInt(4);
  u.password_verifier = st.ColumnText(5);
  u.arn = u.is_root ? "arn:aws:iam::" + account_id_ + ":root"
                    : "arn:aws:iam::" + account_id_ + ":user" + u.path + u.name;
  return std::optional<IamUser>(std::move(u));
}

Result<std::optional<AccessKey>> IamStore::FindAccessKey(const std::string& access_key_id) {
  ASSIGN_OR_RETURN(Statement st, meta_->Prepare(
      "SELECT access_key_id, user_name, secret_sealed, status, created FROM iam_access_keys WHERE access_key_id = ?1"));
  st.Bind(1, access_key_id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<AccessKey>();
  AccessKey k;
  k.access_key_id = st.ColumnText(0);
  k.user_name = st.ColumnText(1);
  ASSIGN_OR_RETURN(k.secret_access_key, keyring_->Unseal(st.ColumnText(2), k.access_key_id));
  k.active = st.ColumnText(3) == "Active";
  k.created = st.ColumnInt(4);
  return std::optional<AccessKey>(std::move(k));
}

}  // namespace tarn::security
