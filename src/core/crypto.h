// Hashes, HMAC and randomness on OpenSSL, for every module (SigV4, ETags, ids, keys).
// All functions are thread-safe. Hashers are not (one per stream).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace tarn {

// Raw digests (binary). Use HexEncode / Base64Encode for text.
std::string Sha256(std::string_view data);
std::string Sha1(std::string_view data);
std::string Md5(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);

// An incremental hash: Update any number of times, then Final once.
class Hasher {
 public:
  enum class Algorithm { kMd5, kSha1, kSha256 };
  explicit Hasher(Algorithm algorithm);
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  void Update(std::string_view data);
  std::string Final();  // raw digest

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Cryptographically random bytes / text.
std::string RandomBytes(size_t n);
// Random characters from [A-Za-z0-9] (or `alphabet`).
std::string RandomString(size_t n, std::string_view alphabet =
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
// A random RFC 4122 version-4 UUID in lower-case text.
std::string NewUuid();
// A random 12-digit AWS-style account id (never starting with 0).
std::string NewAccountId();

// Constant-time comparison for secrets and signatures.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace tarn
