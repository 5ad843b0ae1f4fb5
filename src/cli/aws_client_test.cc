// The signer against AWS's published Signature Version 4 examples (AWS General Reference,
// "Signature Version 4 test suite" and the IAM ListUsers walkthrough), all with the example
// credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY at 20150830T123600Z.
#include "cli/aws_client.h"

#include <gtest/gtest.h>

namespace tarn::cli {
namespace {

AwsCredentials Example() {
  AwsCredentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  c.region = "us-east-1";
  return c;
}

std::string Authorization(const AwsHttpRequest& r) {
  for (const auto& [n, v] : r.headers)
    if (n == "Authorization") return v;
  return "";
}

TEST(SignV4, GetVanilla) {
  AwsHttpRequest r;
  r.host = "example.amazonaws.com";
  SignV4(Example(), "service", "20150830T123600Z", r);
  EXPECT_EQ(Authorization(r),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SignV4, IamListUsersExample) {
  AwsHttpRequest r;
  r.host = "iam.amazonaws.com";
  r.query = {{"Version", "2010-05-08"}, {"Action", "ListUsers"}};  // sorted by the signer
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  SignV4(Example(), "iam", "20150830T123600Z", r);
  EXPECT_EQ(Authorization(r),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

TEST(SignV4, PostFormBody) {
  // Test suite "post-x-www-form-urlencoded": the body is hashed into the canonical request.
  AwsHttpRequest r;
  r.method = "POST";
  r.host = "example.amazonaws.com";
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  r.body = "Param1=value1";
  SignV4(Example(), "service", "20150830T123600Z", r);
  EXPECT_NE(Authorization(r).find(
                "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
            std::string::npos)
      << Authorization(r);
}

TEST(SignV4, CanonicalRequestOfUtf8Path) {
  // Test suite "get-utf8": the path segment is percent-encoded (upper-case hex).
  AwsHttpRequest r;
  r.host = "example.amazonaws.com";
  r.path = "/\xE1\x88\xB4";
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  std::string creq = CanonicalRequest("s3", r);
  EXPECT_EQ(creq,
            "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(SignV4, SessionTokenAndS3PayloadHashAreSigned) {
  AwsCredentials c = Example();
  c.session_token = "token/with+chars";
  AwsHttpRequest r;
  r.method = "PUT";
  r.host = "127.0.0.1:9000";
  r.path = "/landing";
  SignV4(c, "s3", "20150830T123600Z", r);
  EXPECT_NE(Authorization(r).find(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"),
            std::string::npos)
      << Authorization(r);
}

}  // namespace
}  // namespace tarn::cli
