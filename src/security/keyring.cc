#include "security/keyring.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>

#include "core/crypto.h"
#include "core/data_dir.h"
#include "core/strings.h"

namespace tarn::security {

Result<std::unique_ptr<Keyring>> Keyring::Open(const std::string& keys_dir) {
  std::string path = keys_dir + "/master.key";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    std::filesystem::create_directories(keys_dir, ec);
    RETURN_IF_ERROR(WriteFileAtomic(path, RandomBytes(32), 0600));
  }
  ASSIGN_OR_RETURN(std::string key, ReadFile(path));
  if (key.size() != 32) {
    return Error(ErrorCode::kFailedPrecondition, path + " is not a 32-byte master key");
  }
  return std::unique_ptr<Keyring>(new Keyring(std::move(key)));
}

Result<std::string> Keyring::Seal(std::string_view plaintext, std::string_view context) const {
  std::string nonce = RandomBytes(12);
  std::string out;
  out.resize(1 + 12 + plaintext.size() + 16);
  out[0] = 1;
  std::memcpy(out.data() + 1, nonce.data(), 12);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(key_.data()),
                               reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(context.data()),
                              static_cast<int>(context.size())) == 1 &&
            EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data() + 13), &len,
                              reinterpret_cast<const unsigned char*>(plaintext.data()),
                              static_cast<int>(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data() + 13 + len), &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16,
                                out.data() + 13 + plaintext.size()) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return Error(ErrorCode::kInternal, "AES-GCM seal failed");
  return out;
}

Result<std::string> Keyring::Unseal(std::string_view sealed, std::string_view context) const {
  if (sealed.size() < 29 || sealed[0] != 1) {
    return Error(ErrorCode::kFailedPrecondition, "sealed value is malformed");
  }
  size_t n = sealed.size() - 29;
  std::string out(n, '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  std::string tag(sealed.substr(13 + n, 16));
  bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(key_.data()),
                               reinterpret_cast<const unsigned char*>(sealed.data() + 1)) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(context.data()),
                              static_cast<int>(context.size())) == 1 &&
            EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                              reinterpret_cast<const unsigned char*>(sealed.data() + 13),
                              static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data() + len), &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return Error(ErrorCode::kFailedPrecondition, "sealed value does not authenticate under the master key");
  return out;
}

std::string ScramVerifier::Serialize() const {
  return "SCRAM-SHA-256$" + std::to_string(iterations) + ":" + Base64Encode(salt) + "$" +
         Base64Encode(stored_key) + ":" + Base64Encode(server_key);
}

Result<ScramVerifier> ScramVerifier::Parse(std::string_view s) {
  auto bad = [] { return Error(ErrorCode::kFailedPrecondition, "malformed SCRAM verifier"); };
  if (!StartsWith(s, "SCRAM-SHA-256$")) return bad();
  s.remove_prefix(14);
  size_t colon = s.find(':'), dollar = s.find('$');
  if (colon == std::string_view::npos || dollar == std::string_view::npos || colon > dollar) return bad();
  auto iter = ParseInt64(s.substr(0, colon));
  auto salt = Base64Decode(s.substr(colon + 1, dollar - colon - 1));
  std::string_view keys = s.substr(dollar + 1);
  size_t c2 = keys.find(':');
  if (!iter || !salt || c2 == std::string_view::npos) return bad();
  auto sk = Base64Decode(keys.substr(0, c2));
  auto svk = Base64Decode(keys.substr(c2 + 1));
  if (!sk || !svk) return bad();
  ScramVerifier v;
  v.iterations = static_cast<int>(*iter);
  v.salt = *salt;
  v.stored_key = *sk;
  v.server_key = *svk;
  return v;
}

namespace {
std::string SaltedPassword(std::string_view password, const std::string& salt, int iterations) {
  unsigned char out[32];
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                    iterations, EVP_sha256(), 32, out);
  return std::string(reinterpret_cast<char*>(out), 32);
}
}  // namespace

ScramVerifier MakeScramVerifier(std::string_view password, int iterations) {
  ScramVerifier v;
  v.salt = RandomBytes(16);
  v.iterations = iterations;
  std::string salted = SaltedPassword(password, v.salt, iterations);
  v.stored_key = Sha256(HmacSha256(salted, "Client Key"));
  v.server_key = HmacSha256(salted, "Server Key");
  return v;
}

bool CheckPassword(const ScramVerifier& v, std::string_view password) {
  std::string salted = SaltedPassword(password, v.salt, v.iterations);
  return ConstantTimeEquals(Sha256(HmacSha256(salted, "Client Key")), v.stored_key);
}

}  // namespace tarn::security
