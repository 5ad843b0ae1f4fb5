#include "gateway/iot/ca.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/crypto.h"
#include "core/data_dir.h"
#include "core/strings.h"

namespace tarn::gateway::iot {

namespace {

struct BioDel { void operator()(BIO* b) const { BIO_free(b); } };
struct X509Del { void operator()(X509* x) const { X509_free(x); } };
struct PkeyDel { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
using BioPtr = std::unique_ptr<BIO, BioDel>;
using X509Ptr = std::unique_ptr<X509, X509Del>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDel>;

Status SslError(const std::string& what) {
  return Error(ErrorCode::kInternal, what + " (OpenSSL)");
}

std::string BioString(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

X509Ptr ReadPem(const std::string& pem) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
}

std::string CertPem(X509* x) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), x);
  return BioString(b.get());
}

int64_t AsnTime(const ASN1_TIME* t) {
  struct tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(ErrorCode::kIoError, "cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A v3 certificate with a random positive 128-bit serial, valid from an hour ago (clock skew).
X509Ptr NewCertificate() {
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  std::string serial = RandomBytes(16);
  serial[0] = static_cast<char>(serial[0] & 0x7f);
  BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(serial.data()), 16, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  return x;
}

Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return SslError("building a certificate extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return Status::OK();
}

}  // namespace

struct DeviceCa::Keys {
  PkeyPtr key;
  X509Ptr cert;
};

Result<CertificateInfo> ParseCertificate(const std::string& pem) {
  X509Ptr x = ReadPem(pem);
  if (!x) return Error(ErrorCode::kIotInvalidRequest, "certificatePem is not a PEM X.509 certificate");
  CertificateInfo info;
  unsigned char* der = nullptr;
  int n = i2d_X509(x.get(), &der);
  if (n <= 0) return SslError("encoding a certificate");
  info.id = HexEncode(Sha256(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(n))));
  OPENSSL_free(der);
  info.pem = CertPem(x.get());
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(x.get()), NID_commonName, cn, sizeof(cn)) > 0) {
    info.subject_cn = cn;
  }
  info.not_before = AsnTime(X509_get0_notBefore(x.get()));
  info.not_after = AsnTime(X509_get0_notAfter(x.get()));
  return info;
}

bool VerifySignedBy(const std::string& cert_pem, const std::string& ca_pem) {
  X509Ptr c = ReadPem(cert_pem), ca = ReadPem(ca_pem);
  if (!c || !ca) return false;
  EVP_PKEY* k = X509_get0_pubkey(ca.get());
  return k && X509_verify(c.get(), k) == 1;
}

DeviceCa::~DeviceCa() = default;

Result<std::unique_ptr<DeviceCa>> DeviceCa::Open(const std::string& dir, const std::string& account_id) {
  std::unique_ptr<DeviceCa> ca(new DeviceCa());
  ca->keys_ = std::make_unique<Keys>();
  std::string key_path = dir + "/iot-ca.key";
  ca->path_ = dir + "/iot-ca.pem";
  if (std::filesystem::exists(key_path) && std::filesystem::exists(ca->path_)) {
    ASSIGN_OR_RETURN(std::string kp, ReadFile(key_path));
    ASSIGN_OR_RETURN(ca->pem_, ReadFile(ca->path_));
    BioPtr b(BIO_new_mem_buf(kp.data(), static_cast<int>(kp.size())));
    ca->keys_->key.reset(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    ca->keys_->cert = ReadPem(ca->pem_);
    if (!ca->keys_->key || !ca->keys_->cert) return SslError("reading the IoT CA in " + dir);
    return ca;
  }
  // A new CA: EC P-256, self-signed, basicConstraints CA:TRUE.
  ca->keys_->key.reset(EVP_EC_gen("P-256"));
  if (!ca->keys_->key) return SslError("generating the IoT CA key");
  X509Ptr x = NewCertificate();
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(x.get(), ca->keys_->key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  std::string cn = "Tarn IoT device CA " + account_id;
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("Tarn"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  RETURN_IF_ERROR(AddExt(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(AddExt(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"));
  RETURN_IF_ERROR(AddExt(x.get(), x.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(x.get(), ca->keys_->key.get(), EVP_sha256()) <= 0) return SslError("signing the IoT CA");
  ca->pem_ = CertPem(x.get());
  BioPtr kb(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(kb.get(), ca->keys_->key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::filesystem::create_directories(dir);
  RETURN_IF_ERROR(WriteFileAtomic(key_path, BioString(kb.get()), 0600));
  RETURN_IF_ERROR(WriteFileAtomic(ca->path_, ca->pem_));
  ca->keys_->cert = std::move(x);
  return ca;
}

Result<CertificateInfo> DeviceCa::Sign(EVP_PKEY* key, X509_NAME* subject) const {
  X509Ptr x = NewCertificate();
  ASN1_TIME_set_string(X509_getm_notAfter(x.get()), "20491231235959Z");
  X509_set_pubkey(x.get(), key);
  if (subject && X509_NAME_entry_count(subject) > 0) {
    X509_set_subject_name(x.get(), subject);
  } else {
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("AWS IoT Certificate"), -1, -1, 0);
  }
  X509_set_issuer_name(x.get(), X509_get_subject_name(keys_->cert.get()));
  RETURN_IF_ERROR(AddExt(x.get(), keys_->cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExt(x.get(), keys_->cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  RETURN_IF_ERROR(AddExt(x.get(), keys_->cert.get(), NID_ext_key_usage, "clientAuth"));
  RETURN_IF_ERROR(AddExt(x.get(), keys_->cert.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(x.get(), keys_->key.get(), EVP_sha256()) <= 0) return SslError("signing a device certificate");
  ASSIGN_OR_RETURN(CertificateInfo info, ParseCertificate(CertPem(x.get())));
  info.issuer_pem = pem_;
  return info;
}

Result<IssuedCertificate> DeviceCa::Issue() const {
  PkeyPtr key(EVP_RSA_gen(2048));
  if (!key) return SslError("generating a device key");
  IssuedCertificate out;
  ASSIGN_OR_RETURN(out.cert, Sign(key.get(), nullptr));
  BioPtr pub(BIO_new(BIO_s_mem())), priv(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(pub.get(), key.get());
  PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  out.public_key_pem = BioString(pub.get());
  out.private_key_pem = BioString(priv.get());
  return out;
}

Result<CertificateInfo> DeviceCa::IssueFromCsr(const std::string& csr_pem) const {
  BioPtr b(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr),
                                                          &X509_REQ_free);
  ERR_clear_error();
  if (!req) return Error(ErrorCode::kIotInvalidRequest, "certificateSigningRequest is not a PEM certificate request");
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  // Proof of possession: the request must be signed by the key it asks a certificate for.
  if (!key || X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();
    return Error(ErrorCode::kIotInvalidRequest, "the certificate signing request's signature does not verify");
  }
  return Sign(key, X509_REQ_get_subject_name(req.get()));
}

}  // namespace tarn::gateway::iot
