// Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL runs it inside
// AuthenticationSASL messages (PostgreSQL docs §55.3.1 "SCRAM-SHA-256 Authentication"),
// checked against a stored verifier: the server never sees or stores the password.
// Channel binding (SCRAM-SHA-256-PLUS) is not offered.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "security/keyring.h"

namespace tarn::sql::pgwire {

class ScramServer {
 public:
  // `verifier` nullopt: the user does not exist; the exchange runs with a made-up salt so a
  // client cannot tell unknown users from wrong passwords, and fails at the proof.
  explicit ScramServer(std::optional<security::ScramVerifier> verifier);

  // client-first-message → server-first-message.
  Result<std::string> ClientFirst(std::string_view message);
  // client-final-message → server-final-message ("v=…"); kInvalidPassword on a bad proof.
  Result<std::string> ClientFinal(std::string_view message);

 private:
  std::optional<security::ScramVerifier> verifier_;
  security::ScramVerifier fake_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;
  std::string gs2_header_;
};

}  // namespace tarn::sql::pgwire
