#include "catalog/glue_api.h"

#include <cctype>

#include <nlohmann/json.hpp>

#include "catalog/store.h"
#include "core/strings.h"
#include "security/authz.h"

namespace tarn::catalog {

namespace {

constexpr size_t kMaxBatchGet = 1000;
constexpr size_t kMaxBatchCreate = 100;
constexpr size_t kMaxBatchDelete = 25;
constexpr size_t kMaxBatchDeleteTables = 100;

Result<std::string> RequiredString(const json& in, const char* field) {
  if (!in.contains(field) || !in[field].is_string() || in[field].get<std::string>().empty()) {
    return Error(ErrorCode::kInvalidInput, std::string(field) + " is required");
  }
  return in[field].get<std::string>();
}

Result<const json*> RequiredObject(const json& in, const char* field) {
  if (!in.contains(field) || !in[field].is_object()) {
    return Error(ErrorCode::kInvalidInput, std::string(field) + " is required");
  }
  return &in[field];
}

Result<std::vector<std::string>> StringList(const json& v, const char* field) {
  if (!v.is_array()) return Error(ErrorCode::kInvalidInput, std::string(field) + " must be a list");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) {
      return Error(ErrorCode::kInvalidInput, std::string(field) + " must be a list of strings");
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<PageRequest> PageOf(const json& in, int cap) {
  PageRequest p;
  p.max_results = cap;
  if (in.contains("MaxResults") && !in["MaxResults"].is_null()) {
    if (!in["MaxResults"].is_number_integer()) {
      return Error(ErrorCode::kInvalidInput, "MaxResults must be an integer");
    }
    int64_t m = in["MaxResults"].get<int64_t>();
    if (m < 1 || m > cap) {
      return Error(ErrorCode::kInvalidInput,
                   "MaxResults must be between 1 and " + std::to_string(cap));
    }
    p.max_results = int(m);
  }
  if (in.contains("NextToken") && in["NextToken"].is_string()) {
    p.next_token = in["NextToken"].get<std::string>();
  }
  return p;
}

json ErrorDetail(const Status& s) {
  return {{"ErrorCode", std::string(s.info().aws_code)}, {"ErrorMessage", s.message()}};
}

std::string Lower(const std::string& s) { return ToLower(s); }

}  // namespace

struct GlueApi::Impl {
  CatalogStore* store;
  CrawlerApi* crawlers;
  const security::Authorizer* authz;
  std::string region;

  std::string Arn(const std::string& suffix) const {
    return "arn:aws:glue:" + region + ":" + store->account_id() + ":" + suffix;
  }

  Status Authorize(const net::ApiCall& call, const std::string& resource) const {
    if (!authz) return Status::OK();
    security::AuthzRequest rq;
    rq.identity = &call.identity;
    rq.action = "glue:" + call.action;
    rq.resource = resource;
    security::AuthzDecision d = authz->Authorize(rq);
    if (d.allowed) return Status::OK();
    std::string who = call.identity.anonymous() ? "anonymous" : call.identity.arn;
    return Error(ErrorCode::kAccessDeniedException, "User: " + who +
                                                        " is not authorized to perform: glue:" +
                                                        call.action + " on resource: " + resource);
  }

  // The resource a call is about, per Glue's IAM resource table.
  std::string ResourceOf(const std::string& action, const json& in) const {
    auto s = [&](const char* f) {
      return in.contains(f) && in[f].is_string() ? Lower(in[f].get<std::string>()) : std::string();
    };
    if (action == "CreateDatabase") {
      std::string n = in.contains("DatabaseInput") && in["DatabaseInput"].is_object()
                          ? Lower(in["DatabaseInput"].value("Name", ""))
                          : "";
      return Arn("database/" + n);
    }
    if (action == "GetDatabase" || action == "UpdateDatabase" || action == "DeleteDatabase") {
      return Arn("database/" + s("Name"));
    }
    if (action == "GetDatabases") return Arn("catalog");
    if (action == "GetTables" || action == "BatchDeleteTable") {
      return Arn("database/" + s("DatabaseName"));
    }
    if (action == "CreateTable" || action == "UpdateTable") {
      std::string n = in.contains("TableInput") && in["TableInput"].is_object()
                          ? Lower(in["TableInput"].value("Name", ""))
                          : "";
      return Arn("table/" + s("DatabaseName") + "/" + n);
    }
    if (action == "GetTable" || action == "DeleteTable") {
      return Arn("table/" + s("DatabaseName") + "/" + s("Name"));
    }
    if (crawlers && crawlers->Owns(action)) {
      std::string n = in.contains("Name") ? in.value("Name", "") : in.value("CrawlerName", "");
      return Arn("crawler/" + n);
    }
    // Table versions and partitions name the table as TableName.
    return Arn("table/" + s("DatabaseName") + "/" + s("TableName"));
  }

  Result<json> Dispatch(const std::string& a, const json& in) {
    json out = json::object();
    if (a == "CreateDatabase") {
      ASSIGN_OR_RETURN(const json* input, RequiredObject(in, "DatabaseInput"));
      RETURN_IF_ERROR(store->CreateDatabase(*input));
    } else if (a == "GetDatabase") {
      ASSIGN_OR_RETURN(std::string name, RequiredString(in, "Name"));
      ASSIGN_OR_RETURN(out["Database"], store->GetDatabase(name));
    } else if (a == "GetDatabases") {
      ASSIGN_OR_RETURN(PageRequest p, PageOf(in, 100));
      ASSIGN_OR_RETURN(Page page, store->GetDatabases(p));
      out["DatabaseList"] = page.items;
      if (!page.next_token.empty()) out["NextToken"] = page.next_token;
    } else if (a == "UpdateDatabase") {
      ASSIGN_OR_RETURN(std::string name, RequiredString(in, "Name"));
      ASSIGN_OR_RETURN(const json* input, RequiredObject(in, "DatabaseInput"));
      RETURN_IF_ERROR(store->UpdateDatabase(name, *input));
    } else if (a == "DeleteDatabase") {
      ASSIGN_OR_RETURN(std::string name, RequiredString(in, "Name"));
      RETURN_IF_ERROR(store->DeleteDatabase(name));
    } else if (a == "CreateTable") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(const json* input, RequiredObject(in, "TableInput"));
      RETURN_IF_ERROR(store->CreateTable(db, *input));
    } else if (a == "GetTable") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string name, RequiredString(in, "Name"));
      ASSIGN_OR_RETURN(out["Table"], store->GetTable(db, name));
    } else if (a == "GetTables") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(PageRequest p, PageOf(in, 100));
      std::string expr = in.value("Expression", "");
      ASSIGN_OR_RETURN(Page page, store->GetTables(db, expr, p));
      out["TableList"] = page.items;
      if (!page.next_token.empty()) out["NextToken"] = page.next_token;
    } else if (a == "UpdateTable") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(const json* input, RequiredObject(in, "TableInput"));
      bool skip = in.contains("SkipArchive") && in["SkipArchive"].is_boolean() &&
                  in["SkipArchive"].get<bool>();
      RETURN_IF_ERROR(store->UpdateTable(db, *input, skip, in.value("VersionId", "")));
    } else if (a == "DeleteTable") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string name, RequiredString(in, "Name"));
      RETURN_IF_ERROR(store->DeleteTable(db, name));
    } else if (a == "BatchDeleteTable") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      if (!in.contains("TablesToDelete")) {
        return Error(ErrorCode::kInvalidInput, "TablesToDelete is required");
      }
      ASSIGN_OR_RETURN(auto names, StringList(in["TablesToDelete"], "TablesToDelete"));
      if (names.size() > kMaxBatchDeleteTables) {
        return Error(ErrorCode::kInvalidInput, "TablesToDelete holds at most 100 names");
      }
      json errors = json::array();
      for (const auto& n : names) {
        Status s = store->DeleteTable(db, n);
        if (!s.ok()) errors.push_back({{"TableName", n}, {"ErrorDetail", ErrorDetail(s)}});
      }
      out["Errors"] = errors;
    } else if (a == "GetTableVersions") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      ASSIGN_OR_RETURN(PageRequest p, PageOf(in, 100));
      ASSIGN_OR_RETURN(Page page, store->GetTableVersions(db, t, p));
      out["TableVersions"] = page.items;
      if (!page.next_token.empty()) out["NextToken"] = page.next_token;
    } else if (a == "GetTableVersion") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      ASSIGN_OR_RETURN(out["TableVersion"], store->GetTableVersion(db, t, in.value("VersionId", "")));
    } else if (a == "DeleteTableVersion") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      ASSIGN_OR_RETURN(std::string v, RequiredString(in, "VersionId"));
      RETURN_IF_ERROR(store->DeleteTableVersion(db, t, v));
    } else if (a == "BatchDeleteTableVersion") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      if (!in.contains("VersionIds")) return Error(ErrorCode::kInvalidInput, "VersionIds is required");
      ASSIGN_OR_RETURN(auto ids, StringList(in["VersionIds"], "VersionIds"));
      json errors = json::array();
      for (const auto& v : ids) {
        Status s = store->DeleteTableVersion(db, t, v);
        if (!s.ok()) {
          errors.push_back({{"TableName", Lower(t)}, {"VersionId", v}, {"ErrorDetail", ErrorDetail(s)}});
        }
      }
      out["Errors"] = errors;
    } else if (a == "CreatePartition") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      ASSIGN_OR_RETURN(const json* input, RequiredObject(in, "PartitionInput"));
      RETURN_IF_ERROR(store->CreatePartition(db, t, *input));
    } else if (a == "BatchCreatePartition") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      if (!in.contains("PartitionInputList") || !in["PartitionInputList"].is_array()) {
        return Error(ErrorCode::kInvalidInput, "PartitionInputList is required");
      }
      const json& list = in["PartitionInputList"];
      if (list.size() > kMaxBatchCreate) {
        return Error(ErrorCode::kInvalidInput, "PartitionInputList holds at most 100 partitions");
      }
      ASSIGN_OR_RETURN(std::vector<Status> results, store->CreatePartitions(db, t, list));
      json errors = json::array();
      for (size_t i = 0; i < results.size(); ++i) {
        if (!results[i].ok()) {
          const json& p = list[i];
          json values = p.is_object() && p.contains("Values") ? p["Values"] : json::array();
          errors.push_back({{"PartitionValues", values}, {"ErrorDetail", ErrorDetail(results[i])}});
        }
      }
      out["Errors"] = errors;
    } else if (a == "GetPartition") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      if (!in.contains("PartitionValues")) {
        return Error(ErrorCode::kInvalidInput, "PartitionValues is required");
      }
      ASSIGN_OR_RETURN(auto values, StringList(in["PartitionValues"], "PartitionValues"));
      ASSIGN_OR_RETURN(out["Partition"], store->GetPartition(db, t, values));
    } else if (a == "GetPartitions") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      ASSIGN_OR_RETURN(PageRequest p, PageOf(in, 1000));
      Segment seg;
      if (in.contains("Segment") && in["Segment"].is_object()) {
        const json& sj = in["Segment"];
        if (!sj.contains("SegmentNumber") || !sj["SegmentNumber"].is_number_integer() ||
            !sj.contains("TotalSegments") || !sj["TotalSegments"].is_number_integer()) {
          return Error(ErrorCode::kInvalidInput, "Segment needs SegmentNumber and TotalSegments");
        }
        seg.number = sj["SegmentNumber"].get<int>();
        seg.total = sj["TotalSegments"].get<int>();
      }
      std::string expr = in.contains("Expression") && in["Expression"].is_string()
                             ? in["Expression"].get<std::string>()
                             : "";
      ASSIGN_OR_RETURN(Page page, store->GetPartitions(db, t, expr, seg, p));
      bool exclude = in.contains("ExcludeColumnSchema") && in["ExcludeColumnSchema"].is_boolean() &&
                     in["ExcludeColumnSchema"].get<bool>();
      if (exclude) {
        for (auto& part : page.items) {
          if (part.contains("StorageDescriptor")) part["StorageDescriptor"].erase("Columns");
        }
      }
      out["Partitions"] = page.items;
      if (!page.next_token.empty()) out["NextToken"] = page.next_token;
    } else if (a == "BatchGetPartition") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      if (!in.contains("PartitionsToGet") || !in["PartitionsToGet"].is_array()) {
        return Error(ErrorCode::kInvalidInput, "PartitionsToGet is required");
      }
      if (in["PartitionsToGet"].size() > kMaxBatchGet) {
        return Error(ErrorCode::kInvalidInput, "PartitionsToGet holds at most 1000 entries");
      }
      RETURN_IF_ERROR(store->GetTable(db, t));
      json parts = json::array(), unprocessed = json::array();
      for (const auto& k : in["PartitionsToGet"]) {
        if (!k.is_object() || !k.contains("Values")) {
          return Error(ErrorCode::kInvalidInput, "every PartitionsToGet entry needs Values");
        }
        ASSIGN_OR_RETURN(auto values, StringList(k["Values"], "Values"));
        auto p = store->GetPartition(db, t, values);
        if (p.ok()) {
          parts.push_back(std::move(*p));
        } else if (p.status().code() != ErrorCode::kEntityNotFound) {
          unprocessed.push_back(k);
        }
      }
      out["Partitions"] = parts;
      out["UnprocessedKeys"] = unprocessed;
    } else if (a == "UpdatePartition") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      if (!in.contains("PartitionValueList")) {
        return Error(ErrorCode::kInvalidInput, "PartitionValueList is required");
      }
      ASSIGN_OR_RETURN(auto values, StringList(in["PartitionValueList"], "PartitionValueList"));
      ASSIGN_OR_RETURN(const json* input, RequiredObject(in, "PartitionInput"));
      RETURN_IF_ERROR(store->UpdatePartition(db, t, values, *input));
    } else if (a == "DeletePartition") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      if (!in.contains("PartitionValues")) {
        return Error(ErrorCode::kInvalidInput, "PartitionValues is required");
      }
      ASSIGN_OR_RETURN(auto values, StringList(in["PartitionValues"], "PartitionValues"));
      RETURN_IF_ERROR(store->DeletePartition(db, t, values));
    } else if (a == "BatchDeletePartition") {
      ASSIGN_OR_RETURN(std::string db, RequiredString(in, "DatabaseName"));
      ASSIGN_OR_RETURN(std::string t, RequiredString(in, "TableName"));
      if (!in.contains("PartitionsToDelete") || !in["PartitionsToDelete"].is_array()) {
        return Error(ErrorCode::kInvalidInput, "PartitionsToDelete is required");
      }
      if (in["PartitionsToDelete"].size() > kMaxBatchDelete) {
        return Error(ErrorCode::kInvalidInput, "PartitionsToDelete holds at most 25 entries");
      }
      RETURN_IF_ERROR(store->GetTable(db, t));
      json errors = json::array();
      for (const auto& k : in["PartitionsToDelete"]) {
        if (!k.is_object() || !k.contains("Values")) {
          return Error(ErrorCode::kInvalidInput, "every PartitionsToDelete entry needs Values");
        }
        ASSIGN_OR_RETURN(auto values, StringList(k["Values"], "Values"));
        Status s = store->DeletePartition(db, t, values);
        if (!s.ok()) errors.push_back({{"PartitionValues", k["Values"]}, {"ErrorDetail", ErrorDetail(s)}});
      }
      out["Errors"] = errors;
    } else if (crawlers && crawlers->Owns(a)) {
      RETURN_IF_ERROR(crawlers->Call(a, in, &out));
    } else {
      return Error(ErrorCode::kUnknownOperation, "Operation AWSGlue." + a +
                                                     " is not supported by this lake");
    }
    return out;
  }
};

GlueApi::GlueApi(CatalogStore* store, CrawlerApi* crawlers, const security::Authorizer* authz,
                 std::string region)
    : impl_(std::make_unique<Impl>()) {
  impl_->store = store;
  impl_->crawlers = crawlers;
  impl_->authz = authz;
  impl_->region = std::move(region);
}

GlueApi::~GlueApi() = default;

Status GlueApi::Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) {
  ASSIGN_OR_RETURN(std::string body, request.body->ReadAll(1 << 20));
  json in = body.empty() ? json::object() : json::parse(body, nullptr, false);
  if (in.is_discarded() || !in.is_object()) {
    return Error(ErrorCode::kSerializationError, "The request body is not a JSON object");
  }
  call.resource = impl_->ResourceOf(call.action, in);
  // CloudTrail's requestParameters: the names a call is about (lowerCamel, as CloudTrail spells
  // Glue's members), not the bodies of table or partition definitions.
  for (auto it = in.begin(); it != in.end(); ++it) {
    std::string k = it.key();
    if (k.empty() || k == "NextToken") continue;
    std::string camel = std::string(1, char(std::tolower(static_cast<unsigned char>(k[0])))) +
                        k.substr(1);
    if (it->is_string()) {
      call.audit_params[camel] = it->get<std::string>().substr(0, 1024);
    } else if (it->is_object() && it->contains("Name") && (*it)["Name"].is_string()) {
      call.audit_params[camel + ".name"] = (*it)["Name"].get<std::string>().substr(0, 1024);
    }
  }
  RETURN_IF_ERROR(impl_->Authorize(call, call.resource));
  ASSIGN_OR_RETURN(json out, impl_->Dispatch(call.action, in));
  net::WriteJson(response, out.dump());
  return Status::OK();
}

}  // namespace tarn::catalog
