#include "security/sigv4/sigv4.h"

#include <gtest/gtest.h>

#include <map>

#include "core/crypto.h"
#include "core/strings.h"

namespace tarn::security::sigv4 {
namespace {

// 2013-05-24T00:00:00Z, the date of the S3 SigV4 examples.
constexpr int64_t kExampleTime = 1369353600;
constexpr char kS3Key[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kS3Secret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

class FakeCredentials final : public CredentialProvider {
 public:
  Result<std::optional<SigningCredential>> Lookup(const std::string& akid) override {
    auto it = creds.find(akid);
    if (it == creds.end()) return std::optional<SigningCredential>();
    return std::optional<SigningCredential>(it->second);
  }
  std::map<std::string, SigningCredential> creds;
};

class SigV4Test : public ::testing::Test {
 protected:
  SigV4Test() : clock_(kExampleTime * 1000000), auth_(&creds_, &clock_) {
    SigningCredential c;
    c.secret_access_key = kS3Secret;
    c.identity.type = Identity::Type::kUser;
    c.identity.user_name = "alice";
    creds_.creds[kS3Key] = c;
  }
  FakeCredentials creds_;
  ManualClock clock_;
  SigV4Authenticator auth_;
};

net::HttpRequest S3GetExample() {
  net::HttpRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers.Add("Host", "examplebucket.s3.amazonaws.com");
  r.headers.Add("Range", "bytes=0-9");
  r.headers.Add("x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  r.headers.Add("x-amz-date", "20130524T000000Z");
  return r;
}

// S3 API reference, "Signature Calculations for the Authorization Header", Example: GET Object.
TEST_F(SigV4Test, S3GetObjectExample) {
  net::HttpRequest r = S3GetExample();
  std::string sh = "host;range;x-amz-content-sha256;x-amz-date";
  std::string cr = CanonicalRequest(r, true, false, sh, r.headers.Get("x-amz-content-sha256"));
  std::string sig = Sign(DeriveSigningKey(kS3Secret, "20130524", "us-east-1", "s3"),
                         StringToSign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", cr));
  EXPECT_EQ(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

  r.headers.Add("Authorization", std::string("AWS4-HMAC-SHA256 Credential=") + kS3Key +
                                     "/20130524/us-east-1/s3/aws4_request,SignedHeaders=" + sh +
                                     ",Signature=" + sig);
  net::MemoryBodyReader body("");
  r.body = &body;
  net::ApiCall call;
  ASSERT_TRUE(auth_.Authenticate(call, r).ok());
  EXPECT_EQ(call.identity.user_name, "alice");
  EXPECT_EQ(call.identity.access_key_id, kS3Key);

  // One byte of the signature changed: SignatureDoesNotMatch.
  net::HttpRequest bad = S3GetExample();
  bad.body = &body;
  bad.headers.Add("Authorization", std::string("AWS4-HMAC-SHA256 Credential=") + kS3Key +
                                       "/20130524/us-east-1/s3/aws4_request,SignedHeaders=" + sh +
                                       ",Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42");
  net::ApiCall call2;
  EXPECT_EQ(auth_.Authenticate(call2, bad).code(), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, UnknownKeyAndSkew) {
  net::HttpRequest r = S3GetExample();
  net::MemoryBodyReader body("");
  r.body = &body;
  r.headers.Add("Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIANOSUCHKEY0000000/20130524/us-east-1/s3/aws4_request,"
                "SignedHeaders=host,Signature=00");
  net::ApiCall call;
  EXPECT_EQ(auth_.Authenticate(call, r).code(), ErrorCode::kInvalidAccessKeyId);
  call.family = net::ApiFamily::kQuery;
  EXPECT_EQ(auth_.Authenticate(call, r).code(), ErrorCode::kInvalidClientTokenId);

  clock_.Advance(16 * 60 * 1000000LL);
  net::HttpRequest s = S3GetExample();
  s.body = &body;
  SignRequest(s, kS3Key, kS3Secret, "us-east-1", "s3", kExampleTime, kEmpty);
  net::ApiCall c3;
  EXPECT_EQ(auth_.Authenticate(c3, s).code(), ErrorCode::kRequestTimeTooSkewed);
}

// S3 API reference, "Authenticating Requests: Using Query Parameters", Example.
TEST_F(SigV4Test, S3PresignedExampleAndExpiry) {
  net::HttpRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
  r.headers.Add("Host", "examplebucket.s3.amazonaws.com");
  net::MemoryBodyReader body("");
  r.body = &body;
  net::ApiCall call;
  ASSERT_TRUE(auth_.Authenticate(call, r).ok());
  EXPECT_EQ(call.identity.user_name, "alice");
  clock_.Advance(86401LL * 1000000);
  net::ApiCall call2;
  Status st = auth_.Authenticate(call2, r);
  EXPECT_EQ(st.code(), ErrorCode::kAccessDenied);
  EXPECT_EQ(st.message(), "Request has expired");
}

// aws-sig-v4-test-suite: get-vanilla and get-vanilla-query-order-key-case (service "service").
TEST_F(SigV4Test, TestSuiteVanilla) {
  const std::string secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  std::string key = DeriveSigningKey(secret, "20150830", "us-east-1", "service");
  const std::string scope = "20150830/us-east-1/service/aws4_request";
  net::HttpRequest r;
  r.method = "GET";
  r.path = "/";
  r.headers.Add("Host", "example.amazonaws.com");
  r.headers.Add("X-Amz-Date", "20150830T123600Z");
  std::string cr = CanonicalRequest(r, false, false, "host;x-amz-date", kEmpty);
  EXPECT_EQ(Sign(key, StringToSign("20150830T123600Z", scope, cr)),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  r.query = "Param2=value2&Param1=value1";
  cr = CanonicalRequest(r, false, false, "host;x-amz-date", kEmpty);
  EXPECT_EQ(Sign(key, StringToSign("20150830T123600Z", scope, cr)),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4Canonical, UriAndQuery) {
  EXPECT_EQ(CanonicalUri("/a%20b/c", true), "/a%20b/c");
  EXPECT_EQ(CanonicalUri("/a%20b/./c//d", false), "/a%2520b/c/d");
  EXPECT_EQ(CanonicalQuery("b=2&a=x%2Fy&a=1&X-Amz-Signature=zz&e", true), "a=1&a=x%2Fy&b=2&e=");
  EXPECT_EQ(CanonicalHeaderValue("  a   b  c "), "a b c");
}

// S3 API reference, "Transferring Payload in Multiple Chunks", Example: PUT Object
// (65536 + 1024 bytes of 'a', seed signature 4f232c43…).
std::string ChunkedExampleBody(bool tamper) {
  std::string a64(65536, 'a'), a1(1024, 'a');
  std::string b;
  b += "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n";
  b += a64;
  if (tamper) b[b.size() - 5] = 'b';
  b += "\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n";
  b += a1;
  b += "\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n";
  return b;
}

net::HttpRequest ChunkedExampleRequest() {
  net::HttpRequest r;
  r.method = "PUT";
  r.path = "/examplebucket/chunkObject.txt";
  r.headers.Add("Host", "s3.amazonaws.com");
  r.headers.Add("x-amz-date", "20130524T000000Z");
  r.headers.Add("x-amz-storage-class", "REDUCED_REDUNDANCY");
  r.headers.Add("Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                "x-amz-decoded-content-length;x-amz-storage-class,"
                "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
  r.headers.Add("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
  r.headers.Add("Content-Encoding", "aws-chunked");
  r.headers.Add("x-amz-decoded-content-length", "66560");
  r.headers.Add("Content-Length", "66824");
  return r;
}

TEST_F(SigV4Test, StreamingSignedChunks) {
  for (bool tamper : {false, true}) {
    net::HttpRequest r = ChunkedExampleRequest();
    net::MemoryBodyReader body(ChunkedExampleBody(tamper));
    r.body = &body;
    net::ApiCall call;
    ASSERT_TRUE(auth_.Authenticate(call, r).ok());
    EXPECT_FALSE(r.headers.Has("Content-Encoding"));
    EXPECT_EQ(r.body->content_length().value_or(0), 66560u);
    auto all = r.body->ReadAll(1 << 20);
    if (tamper) {
      ASSERT_FALSE(all.ok());
      EXPECT_EQ(all.status().code(), ErrorCode::kSignatureDoesNotMatch);
    } else {
      ASSERT_TRUE(all.ok()) << all.status().ToString();
      EXPECT_EQ(*all, std::string(66560, 'a'));
    }
  }
}

TEST(SigV4Chunked, UnsignedTrailer) {
  std::string body = "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
  net::MemoryBodyReader inner(body);
  net::Headers trailers;
  auto r = NewChunkedReader(&inner, 11, &trailers, false, false, "", "", "", "");
  auto all = r->ReadAll(1024);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all, "hello world");
  EXPECT_EQ(trailers.Get("x-amz-checksum-crc32"), "DUoRhQ==");

  net::MemoryBodyReader truncated("5\r\nhel");
  auto r2 = NewChunkedReader(&truncated, std::nullopt, &trailers, false, false, "", "", "", "");
  EXPECT_FALSE(r2->ReadAll(1024).ok());
}

TEST(SigV4Chunked, SignedTrailerRoundTrip) {
  std::string key = DeriveSigningKey("secret", "20130524", "us-east-1", "s3");
  std::string date = "20130524T000000Z", scope = "20130524/us-east-1/s3/aws4_request";
  std::string seed = std::string(64, 'a');
  auto chunk_sig = [&](const std::string& prev, const std::string& data) {
    return Sign(key, "AWS4-HMAC-SHA256-PAYLOAD\n" + date + "\n" + scope + "\n" + prev + "\n" + kEmpty +
                         "\n" + HexEncode(Sha256(data)));
  };
  std::string s1 = chunk_sig(seed, "abc");
  std::string s2 = chunk_sig(s1, "");
  std::string trailer = "x-amz-checksum-crc32:NSRBwg==\n";
  std::string ts = Sign(key, "AWS4-HMAC-SHA256-TRAILER\n" + date + "\n" + scope + "\n" + s2 + "\n" +
                                 HexEncode(Sha256(trailer)));
  for (bool tamper : {false, true}) {
    std::string body = "3;chunk-signature=" + s1 + "\r\nabc\r\n0;chunk-signature=" + s2 +
                       "\r\nx-amz-checksum-crc32:" + (tamper ? "AAAAAA==" : "NSRBwg==") +
                       "\r\nx-amz-trailer-signature:" + ts + "\r\n\r\n";
    net::MemoryBodyReader inner(body);
    net::Headers trailers;
    auto r = NewChunkedReader(&inner, 3, &trailers, true, true, key, date, scope, seed);
    auto all = r->ReadAll(1024);
    EXPECT_EQ(all.ok(), !tamper);
  }
}

TEST(SigV4Payload, Sha256Mismatch) {
  net::MemoryBodyReader inner("hello");
  auto r = NewSha256VerifyingReader(&inner, HexEncode(Sha256("hellO")));
  auto all = r->ReadAll(100);
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), ErrorCode::kXAmzContentSHA256Mismatch);
}

}  // namespace
}  // namespace tarn::security::sigv4
