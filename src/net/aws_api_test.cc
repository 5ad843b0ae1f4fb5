#include "net/aws_api.h"

#include <gtest/gtest.h>

namespace tarn::net {
namespace {

class Recorder : public ApiService {
 public:
  Status Handle(ApiCall& call, HttpRequest&, HttpResponse& rs) override {
    last = call;
    if (call.action == "Fail") return Error(ErrorCode::kValidationException, "bad input");
    WriteJson(rs, "{}");
    return Status::OK();
  }
  ApiCall last;
};

HttpResponse Call(ApiRouter& r, HttpRequest rq, const std::string& body = "") {
  MemoryBodyReader reader(body);
  rq.body = &reader;
  HttpResponse rs;
  r.Handle(rq, rs);
  return rs;
}

TEST(ApiRouterTest, JsonTargetDispatchAndUnknownOperation) {
  ApiRouter router("us-east-1");
  Recorder firehose;
  router.RegisterJsonService("Firehose_20150804", "firehose", &firehose);
  HttpRequest rq;
  rq.method = "POST";
  rq.path = "/";
  rq.headers.Add("X-Amz-Target", "Firehose_20150804.PutRecord");
  auto rs = Call(router, rq, "{}");
  EXPECT_EQ(rs.status, 200);
  EXPECT_EQ(firehose.last.action, "PutRecord");
  EXPECT_EQ(firehose.last.service, "firehose");

  rq.headers.Set("X-Amz-Target", "Firehose_20150804.Fail");
  rs = Call(router, rq, "{}");
  EXPECT_EQ(rs.status, 400);
  EXPECT_NE(rs.body.find("\"__type\":\"ValidationException\""), std::string::npos) << rs.body;

  rq.headers.Set("X-Amz-Target", "AWSNoSuch_2020.DoIt");
  rs = Call(router, rq, "{}");
  EXPECT_EQ(rs.status, 400);
  EXPECT_NE(rs.body.find("UnknownOperationException"), std::string::npos);
  EXPECT_EQ(rs.headers.Get("x-amzn-ErrorType"), "UnknownOperationException");
}

TEST(ApiRouterTest, QueryProtocol) {
  ApiRouter router("us-east-1");
  Recorder iam;
  router.RegisterQueryService("iam", "https://iam.amazonaws.com/doc/2010-05-08/", &iam);
  HttpRequest rq;
  rq.method = "POST";
  rq.path = "/";
  rq.headers.Add("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
  rq.headers.Add("Authorization",
                 "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/iam/aws4_request, "
                 "SignedHeaders=host, Signature=abc");
  auto rs = Call(router, rq, "Action=ListUsers&Version=2010-05-08");
  EXPECT_EQ(rs.status, 200);
  EXPECT_EQ(iam.last.action, "ListUsers");
  EXPECT_EQ(iam.last.Param("Version"), "2010-05-08");

  rq.headers.Set("Authorization",
                 "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sts/aws4_request, "
                 "SignedHeaders=host, Signature=abc");
  rs = Call(router, rq, "Action=NoSuchThing&Version=2011-06-15");
  EXPECT_EQ(rs.status, 400);
  EXPECT_NE(rs.body.find("<Code>InvalidAction</Code>"), std::string::npos) << rs.body;
  EXPECT_NE(rs.body.find("<ErrorResponse"), std::string::npos);
}

TEST(ApiRouterTest, RestXmlDefaultsToS3) {
  ApiRouter router("us-east-1");
  HttpRequest rq;
  rq.method = "GET";
  rq.path = "/bucket";
  auto rs = Call(router, rq);
  EXPECT_EQ(rs.status, 501);
  EXPECT_NE(rs.body.find("<Error><Code>NotImplemented</Code>"), std::string::npos) << rs.body;
  EXPECT_FALSE(rs.headers.Get("x-amz-request-id").empty());
}

TEST(ApiRouterTest, RestJsonByCredentialScope) {
  ApiRouter router("us-east-1");
  Recorder iot;
  router.RegisterRestJsonService("iot", &iot);
  HttpRequest rq;
  rq.method = "GET";
  rq.path = "/things/abc";
  rq.headers.Add("Authorization",
                 "AWS4-HMAC-SHA256 Credential=AKID/20261125/eu-west-1/iot/aws4_request, SignedHeaders=host, Signature=x");
  auto rs = Call(router, rq);
  EXPECT_EQ(rs.status, 200);
  EXPECT_EQ(iot.last.family, ApiFamily::kRestJson);
  EXPECT_EQ(iot.last.region, "eu-west-1");
}

TEST(ApiRouterTest, HealthAndMetrics) {
  ApiRouter router("us-east-1");
  HttpRequest rq;
  rq.method = "GET";
  rq.path = "/health";
  auto rs = Call(router, rq);
  EXPECT_EQ(rs.status, 200);
  EXPECT_NE(rs.body.find("\"status\":\"ok\""), std::string::npos);
  rq.path = "/metrics";
  rs = Call(router, rq);
  EXPECT_NE(rs.body.find("tarn_api_requests_total"), std::string::npos) << rs.body;
}

TEST(CredentialScopeTest, HeaderAndQuery) {
  HttpRequest rq;
  rq.headers.Add("Authorization",
                 "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=x");
  auto s = ParseCredentialScope(rq);
  EXPECT_EQ(s.access_key_id, "AKID");
  EXPECT_EQ(s.service, "s3");
  HttpRequest q;
  q.query = "X-Amz-Credential=AKID%2F20261125%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=1";
  EXPECT_EQ(ParseCredentialScope(q).service, "s3");
}

}  // namespace
}  // namespace tarn::net
