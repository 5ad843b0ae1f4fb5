// Who is making a request, once authenticated. Produced by security/ (SigV4, SCRAM, mTLS)
// and read by authorisation, audit and every service. Plain data.
#pragma once

#include <string>

namespace tarn {

struct Identity {
  enum class Type { kAnonymous, kRoot, kUser, kAssumedRole, kDevice };
  Type type = Type::kAnonymous;
  std::string arn;            // arn:aws:iam::<account>:user/<name>, …:root, assumed-role/…
  std::string account_id;
  std::string user_name;      // IAM user name, role session name, or thing name
  std::string principal_id;   // AIDA…/AROA…:session, stable id
  std::string access_key_id;  // the key that signed the request (never the secret)
  std::string session_token_id;  // set for temporary credentials

  bool anonymous() const { return type == Type::kAnonymous; }
  // CloudTrail userIdentity.type
  const char* TypeName() const {
    switch (type) {
      case Type::kRoot: return "Root";
      case Type::kUser: return "IAMUser";
      case Type::kAssumedRole: return "AssumedRole";
      case Type::kDevice: return "IoTDevice";
      default: return "Anonymous";
    }
  }
};

}  // namespace tarn
