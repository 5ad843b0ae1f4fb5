// The AWS Glue JSON 1.1 API (X-Amz-Target: AWSGlue.<Operation>) over the catalog store and
// the crawlers: databases, tables, table versions, partitions, crawlers. Request and response
// members, error __types and timestamps (epoch seconds, as JSON numbers) follow the AWS Glue
// API reference so that `aws glue …` and boto3 work unchanged.
//
// Every call is authorised as glue:<Operation> on
//   arn:aws:glue:<region>:<account>:catalog | database/<db> | table/<db>/<table> | crawler/<n>
// (the resources Glue's IAM documentation lists per action). A null Authorizer allows
// everything (used only until the lake installs one).
//
// Thread-safety: Handle() is thread-safe.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "net/aws_api.h"

namespace tarn::security {
class Authorizer;
}

namespace tarn::catalog {

class CatalogStore;

// The crawler operations (CreateCrawler, StartCrawler …), served by crawler.cc. The Glue API
// authorises the call, then hands over the parsed request.
class CrawlerApi {
 public:
  virtual ~CrawlerApi() = default;
  virtual bool Owns(const std::string& action) const = 0;
  virtual Status Call(const std::string& action, const nlohmann::json& input,
                      nlohmann::json* output) = 0;
};

class GlueApi final : public net::ApiService {
 public:
  // `crawlers` may be null: crawler operations then answer NotImplemented.
  GlueApi(CatalogStore* store, CrawlerApi* crawlers, const security::Authorizer* authz,
          std::string region);
  ~GlueApi() override;

  Status Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tarn::catalog
