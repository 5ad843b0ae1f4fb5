#include "sql/pgwire/scram.h"

#include "core/crypto.h"
#include "core/strings.h"

namespace tarn::sql::pgwire {

namespace {
Status Malformed(std::string_view what) {
  return Error(ErrorCode::kSqlProtocolViolation, "malformed SCRAM message: " + std::string(what));
}
}  // namespace

ScramServer::ScramServer(std::optional<security::ScramVerifier> verifier) : verifier_(std::move(verifier)) {
  if (!verifier_) {
    fake_.salt = RandomBytes(16);
    fake_.iterations = 4096;
    fake_.stored_key = RandomBytes(32);
    fake_.server_key = RandomBytes(32);
  }
}

Result<std::string> ScramServer::ClientFirst(std::string_view msg) {
  // RFC 5802 §7: gs2-header = gs2-cbind-flag "," [authzid] ","
  size_t c1 = msg.find(',');
  if (c1 == std::string_view::npos) return Malformed("no GS2 header");
  size_t c2 = msg.find(',', c1 + 1);
  if (c2 == std::string_view::npos) return Malformed("no GS2 header");
  std::string_view flag = msg.substr(0, c1);
  if (flag != "n" && flag != "y") {
    // "p=…" asks for channel binding, which was not offered.
    return Error(ErrorCode::kSqlProtocolViolation, "SCRAM channel binding is not supported");
  }
  gs2_header_ = std::string(msg.substr(0, c2 + 1));
  client_first_bare_ = std::string(msg.substr(c2 + 1));
  // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
  std::string client_nonce;
  for (std::string_view attr : Split(client_first_bare_, ',')) {
    if (StartsWith(attr, "m=")) return Error(ErrorCode::kSqlProtocolViolation, "SCRAM extensions are not supported");
    if (StartsWith(attr, "r=")) client_nonce = std::string(attr.substr(2));
  }
  if (client_nonce.empty()) return Malformed("no client nonce");
  for (char c : client_nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return Malformed("bad nonce");
  }
  // PostgreSQL ignores the SCRAM user name (libpq sends "n=") and uses the startup user.
  nonce_ = std::string(client_nonce) + Base64Encode(RandomBytes(18));
  const security::ScramVerifier& v = verifier_ ? *verifier_ : fake_;
  server_first_ = "r=" + nonce_ + ",s=" + Base64Encode(v.salt) + ",i=" + std::to_string(v.iterations);
  return server_first_;
}

Result<std::string> ScramServer::ClientFinal(std::string_view msg) {
  // client-final-message = channel-binding "," nonce ["," extensions] "," proof
  size_t p = msg.rfind(",p=");
  if (p == std::string_view::npos) return Malformed("no proof");
  std::string_view without_proof = msg.substr(0, p);
  std::string cbind, nonce;
  for (std::string_view attr : Split(without_proof, ',')) {
    if (StartsWith(attr, "c=")) cbind = std::string(attr.substr(2));
    if (StartsWith(attr, "r=")) nonce = std::string(attr.substr(2));
  }
  auto cb = Base64Decode(cbind);
  if (!cb || *cb != gs2_header_) return Malformed("channel binding does not match");
  if (nonce != nonce_) return Malformed("nonce does not match");
  auto proof = Base64Decode(msg.substr(p + 3));
  if (!proof || proof->size() != 32) return Malformed("bad proof");
  std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  const security::ScramVerifier& v = verifier_ ? *verifier_ : fake_;
  // RFC 5802 §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) must
  // equal StoredKey.
  std::string signature = HmacSha256(v.stored_key, auth_message);
  std::string client_key(32, '\0');
  for (size_t i = 0; i < 32; ++i) client_key[i] = static_cast<char>((*proof)[i] ^ signature[i]);
  if (!verifier_ || !ConstantTimeEquals(Sha256(client_key), v.stored_key)) {
    return Error(ErrorCode::kInvalidPassword, "password authentication failed");
  }
  return "v=" + Base64Encode(HmacSha256(v.server_key, auth_message));
}

}  // namespace tarn::sql::pgwire
