// Policy evaluation latency: one IamAuthorizer::Authorize call for a user whose identity
// policies hold 50 statements (48 that do not match the request, one Deny that does not
// apply, one Allow that does — so every statement is looked at), with a bucket policy of 5
// statements and a condition context, as an S3 GetObject would ask. Goal (issue 4): p99 ≤ 5 µs.
//
//   build/bin/bench_iam_policy            # prints p50/p99 per call
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "security/iam/authorizer.h"

namespace {

using namespace tarn;
using namespace tarn::security;

class FixedSource final : public iam::PolicySource {
 public:
  explicit FixedSource(std::vector<iam::NamedPolicyDocument> docs) : docs_(std::move(docs)) {}
  Result<std::vector<iam::NamedPolicyDocument>> IdentityPolicies(const Identity&) override { return docs_; }
  uint64_t Generation() const override { return 1; }

 private:
  std::vector<iam::NamedPolicyDocument> docs_;
};

std::string FiftyStatements() {
  std::string s = R"({"Version":"2012-10-17","Statement":[)";
  for (int i = 0; i < 48; ++i) {
    s += R"({"Sid":"S)" + std::to_string(i) + R"(","Effect":"Allow","Action":["s3:PutObject","s3:Get*"],)"
         R"("Resource":"arn:aws:s3:::bucket)" + std::to_string(i) + R"(/home/${aws:username}/*",)"
         R"("Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},)";
  }
  s += R"({"Sid":"NoAudit","Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::audit/*"},)";
  s += R"({"Sid":"Curated","Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],)"
       R"("Resource":["arn:aws:s3:::curated","arn:aws:s3:::curated/*"],)"
       R"("Condition":{"Bool":{"aws:SecureTransport":"false"}}}]})";
  return s;
}

const char* kBucketPolicy = R"({"Version":"2012-10-17","Statement":[
  {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::curated/*"},
  {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::curated/*"},
  {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::curated/*","Condition":{"NotIpAddress":{"aws:SourceIp":["0.0.0.0/0","::/0"]}}},
  {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObjectTagging","Resource":"arn:aws:s3:::curated/*"},
  {"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::curated"}]})";

void BM_Authorize50(benchmark::State& state) {
  FixedSource source({{"user/alice inline:Big", FiftyStatements()}});
  iam::IamAuthorizer authz(&source, Clock::Real());
  Identity alice;
  alice.type = Identity::Type::kUser;
  alice.account_id = "123456789012";
  alice.user_name = "alice";
  alice.arn = "arn:aws:iam::123456789012:user/alice";
  alice.principal_id = "AIDAEXAMPLE";
  AuthzRequest req;
  req.identity = &alice;
  req.action = "s3:GetObject";
  req.resource = "arn:aws:s3:::curated/sales/2026/11/25/part-0001.parquet";
  req.context = {{"aws:SourceIp", {"127.0.0.1"}}, {"aws:SecureTransport", {"false"}},
                 {"aws:UserAgent", {"aws-cli/1.45"}}};
  req.resource_policy = kBucketPolicy;
  if (!authz.Authorize(req).allowed) {
    state.SkipWithError("expected an Allow");
    return;
  }
  std::vector<int64_t> samples;
  samples.reserve(1 << 20);
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    AuthzDecision d = authz.Authorize(req);
    auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(d);
    if (samples.size() < samples.capacity()) {
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    }
  }
  std::sort(samples.begin(), samples.end());
  auto pct = [&](double p) { return double(samples[size_t(p * double(samples.size() - 1))]); };
  state.counters["p50_ns"] = pct(0.50);
  state.counters["p99_ns"] = pct(0.99);
  std::printf("policy evaluation, 50 statements + 5-statement bucket policy: p50 %.0f ns, p99 %.0f ns "
              "(goal p99 <= 5000 ns) over %zu calls\n",
              pct(0.50), pct(0.99), samples.size());
}
BENCHMARK(BM_Authorize50)->Iterations(200000);

}  // namespace

BENCHMARK_MAIN();
