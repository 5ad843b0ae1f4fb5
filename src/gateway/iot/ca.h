// The lake's device certificate authority (CreateKeysAndCertificate) and X.509 helpers.
// The CA key and certificate live under <data>/keys/ (iot-ca.key mode 0600, iot-ca.pem),
// created on first use; the MQTT listener's client_ca_file can point at iot-ca.pem so that
// devices present certificates it issued (mutual TLS).
//
// Thread-safety: a DeviceCa is immutable after Open(); Issue() may run concurrently.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

struct evp_pkey_st;    // OpenSSL's EVP_PKEY
struct X509_name_st;   // OpenSSL's X509_NAME

namespace tarn::gateway::iot {

struct CertificateInfo {
  std::string id;           // lower-case hex SHA-256 of the DER encoding (AWS certificateId)
  std::string pem;
  std::string subject_cn;
  std::string issuer_pem;   // empty when unknown
  int64_t not_before = 0;   // epoch seconds
  int64_t not_after = 0;
};

struct IssuedCertificate {
  CertificateInfo cert;
  std::string public_key_pem;
  std::string private_key_pem;
};

// Parses a PEM certificate; kIotInvalidRequest when it is not one.
Result<CertificateInfo> ParseCertificate(const std::string& pem);
// True when `cert_pem` is signed by `ca_pem`.
bool VerifySignedBy(const std::string& cert_pem, const std::string& ca_pem);

class DeviceCa {
 public:
  // Loads <dir>/iot-ca.{key,pem}, creating them (EC P-256, 10 years) the first time.
  static Result<std::unique_ptr<DeviceCa>> Open(const std::string& dir, const std::string& account_id);
  ~DeviceCa();
  const std::string& pem() const { return pem_; }
  const std::string& path() const { return path_; }
  // A new RSA-2048 key pair and a certificate for it, signed by this CA (valid ~25 years as
  // AWS's are until 2049), subject CN "AWS IoT Certificate".
  Result<IssuedCertificate> Issue() const;
  // CreateCertificateFromCsr: a certificate for the key in a PEM PKCS#10 request (its signature
  // proves possession of the key), with the request's subject (or CN "AWS IoT Certificate").
  // kIotInvalidRequest for a request that does not parse or verify.
  Result<CertificateInfo> IssueFromCsr(const std::string& csr_pem) const;

 private:
  DeviceCa() = default;
  Result<CertificateInfo> Sign(evp_pkey_st* key, X509_name_st* subject) const;
  struct Keys;
  std::unique_ptr<Keys> keys_;
  std::string pem_;
  std::string path_;
};

}  // namespace tarn::gateway::iot
