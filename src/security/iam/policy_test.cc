#include "security/iam/policy.h"

#include <gtest/gtest.h>

#include "security/iam/authorizer.h"

namespace tarn::security::iam {
namespace {

Identity User(const std::string& name) {
  Identity id;
  id.type = Identity::Type::kUser;
  id.account_id = "123456789012";
  id.user_name = name;
  id.arn = "arn:aws:iam::123456789012:user/" + name;
  id.principal_id = "AIDA" + name;
  return id;
}

class MapSource final : public PolicySource {
 public:
  Result<std::vector<NamedPolicyDocument>> IdentityPolicies(const Identity& id) override {
    return docs[id.user_name];
  }
  uint64_t Generation() const override { return gen; }
  std::map<std::string, std::vector<NamedPolicyDocument>> docs;
  uint64_t gen = 1;
};

TEST(Wildcard, Basics) {
  EXPECT_TRUE(WildcardMatch("s3:get*", "s3:GetObject", true));
  EXPECT_FALSE(WildcardMatch("s3:get*", "s3:GetObject", false));
  EXPECT_TRUE(WildcardMatch("arn:aws:s3:::curated/*", "arn:aws:s3:::curated/a/b", false));
  EXPECT_FALSE(WildcardMatch("arn:aws:s3:::curated/*", "arn:aws:s3:::curatedx/a", false));
  EXPECT_TRUE(WildcardMatch("a?c*", "abcdef", false));
  EXPECT_TRUE(WildcardMatch("*", "", false));
  EXPECT_FALSE(WildcardMatch("a*b*c", "aXbY", false));
}

TEST(Policy, Malformed) {
  EXPECT_FALSE(Policy::Parse("{", "x").ok());
  EXPECT_FALSE(Policy::Parse(R"({"Statement":{"Effect":"Maybe","Action":"s3:*","Resource":"*"}})", "x").ok());
  EXPECT_FALSE(Policy::Parse(R"({"Statement":{"Effect":"Allow","Resource":"*"}})", "x").ok());
  EXPECT_EQ(Policy::Parse("[]", "x").status().code(), ErrorCode::kMalformedPolicyDocument);
}

class AuthorizerTest : public ::testing::Test {
 protected:
  AuthorizerTest() : clock_(1700000000LL * 1000000), authz_(&source_, &clock_) {}
  AuthzDecision Ask(const Identity& id, const std::string& action, const std::string& resource,
                    std::map<std::string, std::vector<std::string>> ctx = {}, std::string rp = "") {
    AuthzRequest r;
    r.identity = &id;
    r.action = action;
    r.resource = resource;
    r.context = std::move(ctx);
    r.resource_policy = std::move(rp);
    return authz_.Authorize(r);
  }
  MapSource source_;
  ManualClock clock_;
  IamAuthorizer authz_;
};

TEST_F(AuthorizerTest, DenyBeatsAllowAndImplicitDeny) {
  source_.docs["alice"] = {{"user/alice inline:Read", R"({"Version":"2012-10-17","Statement":[
      {"Sid":"Read","Effect":"Allow","Action":["s3:GetObject","s3:List*"],"Resource":"arn:aws:s3:::curated/*"},
      {"Sid":"NoSecret","Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::curated/secret/*"}]})"}};
  Identity alice = User("alice");
  auto d = Ask(alice, "s3:GetObject", "arn:aws:s3:::curated/a.parquet");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, "user/alice inline:Read statement Read");
  EXPECT_TRUE(Ask(alice, "S3:getobject", "arn:aws:s3:::curated/a").allowed);  // actions ignore case
  EXPECT_FALSE(Ask(alice, "s3:GetObject", "arn:aws:s3:::Curated/a").allowed);  // resources do not
  d = Ask(alice, "s3:PutObject", "arn:aws:s3:::curated/a");
  EXPECT_FALSE(d.allowed);
  EXPECT_FALSE(d.explicit_deny);
  d = Ask(alice, "s3:GetObject", "arn:aws:s3:::curated/secret/x");
  EXPECT_FALSE(d.allowed);
  EXPECT_TRUE(d.explicit_deny);
  // The cache follows the source's generation.
  source_.docs["alice"].clear();
  EXPECT_TRUE(Ask(alice, "s3:GetObject", "arn:aws:s3:::curated/a").allowed);
  source_.gen++;
  EXPECT_FALSE(Ask(alice, "s3:GetObject", "arn:aws:s3:::curated/a").allowed);
}

TEST_F(AuthorizerTest, NotActionNotResourceAndVariables) {
  source_.docs["bob"] = {{"p", R"({"Statement":[
      {"Effect":"Allow","NotAction":"iam:*","NotResource":"arn:aws:s3:::audit/*"},
      {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::*:user/${aws:username}"}]})"}};
  Identity bob = User("bob");
  EXPECT_TRUE(Ask(bob, "s3:GetObject", "arn:aws:s3:::landing/x").allowed);
  EXPECT_FALSE(Ask(bob, "s3:GetObject", "arn:aws:s3:::audit/x").allowed);
  EXPECT_FALSE(Ask(bob, "iam:CreateUser", "arn:aws:iam::123456789012:user/eve").allowed);
  EXPECT_TRUE(Ask(bob, "iam:GetUser", "arn:aws:iam::123456789012:user/bob").allowed);
  EXPECT_FALSE(Ask(bob, "iam:GetUser", "arn:aws:iam::123456789012:user/alice").allowed);
}

TEST_F(AuthorizerTest, Conditions) {
  source_.docs["carol"] = {{"p", R"({"Statement":[{"Effect":"Allow","Action":"s3:ListBucket",
      "Resource":"arn:aws:s3:::curated",
      "Condition":{"StringLike":{"s3:prefix":["home/${aws:username}/*"]},
                   "IpAddress":{"aws:SourceIp":"10.0.0.0/8"},
                   "Bool":{"aws:SecureTransport":"true"},
                   "NumericLessThanEquals":{"s3:max-keys":"100"},
                   "DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}]})"}};
  Identity carol = User("carol");
  std::map<std::string, std::vector<std::string>> ctx = {{"s3:prefix", {"home/carol/x"}},
                                                         {"aws:SourceIp", {"10.1.2.3"}},
                                                         {"aws:SecureTransport", {"true"}},
                                                         {"s3:max-keys", {"50"}}};
  EXPECT_TRUE(Ask(carol, "s3:ListBucket", "arn:aws:s3:::curated", ctx).allowed);
  auto c2 = ctx;
  c2["s3:prefix"] = {"home/dave/"};
  EXPECT_FALSE(Ask(carol, "s3:ListBucket", "arn:aws:s3:::curated", c2).allowed);
  c2 = ctx;
  c2["aws:SourceIp"] = {"192.168.1.1"};
  EXPECT_FALSE(Ask(carol, "s3:ListBucket", "arn:aws:s3:::curated", c2).allowed);
  c2 = ctx;
  c2["aws:SecureTransport"] = {"false"};
  EXPECT_FALSE(Ask(carol, "s3:ListBucket", "arn:aws:s3:::curated", c2).allowed);
  c2 = ctx;
  c2["s3:max-keys"] = {"1000"};
  EXPECT_FALSE(Ask(carol, "s3:ListBucket", "arn:aws:s3:::curated", c2).allowed);
  c2 = ctx;
  c2.erase("s3:prefix");
  EXPECT_FALSE(Ask(carol, "s3:ListBucket", "arn:aws:s3:::curated", c2).allowed);
}

TEST_F(AuthorizerTest, ResourcePolicyCombination) {
  Identity anon;
  Identity root;
  root.type = Identity::Type::kRoot;
  root.account_id = "123456789012";
  root.arn = "arn:aws:iam::123456789012:root";
  Identity dave = User("dave");
  std::string pub = R"({"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"},
      {"Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::pub/*"},
      {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/dave"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::pub/*"},
      {"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"s3:PutObjectTagging","Resource":"arn:aws:s3:::pub/*"}]})";
  EXPECT_TRUE(Ask(anon, "s3:GetObject", "arn:aws:s3:::pub/x", {}, pub).allowed);
  EXPECT_FALSE(Ask(anon, "s3:PutObject", "arn:aws:s3:::pub/x", {}, pub).allowed);
  EXPECT_FALSE(Ask(anon, "s3:GetObject", "arn:aws:s3:::pub/x").allowed);
  EXPECT_TRUE(Ask(root, "s3:PutObject", "arn:aws:s3:::pub/x").allowed);
  EXPECT_TRUE(Ask(root, "s3:DeleteObject", "arn:aws:s3:::pub/x", {}, pub).explicit_deny);
  EXPECT_TRUE(Ask(dave, "s3:PutObject", "arn:aws:s3:::pub/x", {}, pub).allowed);
  // Naming only the account delegates to identity policies, which dave lacks.
  EXPECT_FALSE(Ask(dave, "s3:PutObjectTagging", "arn:aws:s3:::pub/x", {}, pub).allowed);
}

}  // namespace
}  // namespace tarn::security::iam
