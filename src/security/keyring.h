// The lake's master key (<data>/keys/master.key, 32 random bytes, mode 0600) and envelope
// helpers on it: secrets that must be usable in the clear later (SigV4 secret access keys)
// are sealed with AES-256-GCM under this key before they reach the metadata store.
// Thread-safe after Open.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tarn::security {

class Keyring {
 public:
  // Loads the master key from `keys_dir`, creating it when absent.
  static Result<std::unique_ptr<Keyring>> Open(const std::string& keys_dir);

  // AES-256-GCM: output = version(1) | nonce(12) | ciphertext | tag(16). `context` is bound
  // as associated data (e.g. the access key id), so a sealed value cannot be moved to
  // another record.
  Result<std::string> Seal(std::string_view plaintext, std::string_view context) const;
  Result<std::string> Unseal(std::string_view sealed, std::string_view context) const;

 private:
  explicit Keyring(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// Salted password verifiers in the SCRAM-SHA-256 form (RFC 7677), so pgwire can run SCRAM
// and every other login can check a password without the server ever storing it.
struct ScramVerifier {
  std::string salt;        // raw
  int iterations = 4096;
  std::string stored_key;  // raw
  std::string server_key;  // raw
  // "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>" (PostgreSQL's format)
  std::string Serialize() const;
  static Result<ScramVerifier> Parse(std::string_view s);
};
ScramVerifier MakeScramVerifier(std::string_view password, int iterations = 4096);
bool CheckPassword(const ScramVerifier& v, std::string_view password);

}  // namespace tarn::security
