#include "streams/firehose_api.h"

#include <future>

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "core/strings.h"
#include "security/authz.h"
#include "streams/destination.h"
#include "streams/service.h"

namespace tarn::streams {

using json = nlohmann::json;

namespace {

// Firehose limits (AWS Firehose "Quota"): PutRecordBatch takes up to 500 records and 4 MiB;
// a record is up to 1,000 KiB before base64. The body bound covers base64 and JSON framing.
constexpr size_t kMaxBatchRecords = 500;
constexpr size_t kMaxBatchBytes = 4u << 20;
constexpr size_t kMaxBodyBytes = 8u << 20;

Status Invalid(const std::string& msg) { return Error(ErrorCode::kFirehoseInvalidArgument, msg); }

Result<std::string> StreamName(const json& in) {
  if (!in.contains("DeliveryStreamName") || !in["DeliveryStreamName"].is_string() ||
      in["DeliveryStreamName"].get<std::string>().empty()) {
    return Invalid("DeliveryStreamName is required");
  }
  return in["DeliveryStreamName"].get<std::string>();
}

// Opaque to clients; Tarn's carries the WAL sequence number, zero-padded to 56 characters like
// AWS's. Appended by hand: PutRecordBatch writes 500 of them per call.
constexpr size_t kRecordIdChars = 56;
void AppendRecordId(uint64_t seq, std::string* out) {
  size_t at = out->size();
  out->append(kRecordIdChars, '0');
  char* p = out->data() + at + kRecordIdChars;
  do {
    *--p = char('0' + seq % 10);
    seq /= 10;
  } while (seq);
}
std::string RecordId(uint64_t seq) {
  std::string id;
  AppendRecordId(seq, &id);
  return id;
}

// PutRecord / PutRecordBatch are the hot path: parsed with simdjson (no DOM of nlohmann values
// per record), answered with a hand-built body.
struct PutRequest {
  std::string stream;
  std::vector<std::string> records;
};

Result<PutRequest> ParsePut(std::string_view body, bool batch) {
  // One parser per HTTP worker thread: its buffers (a copy of the ~140 KB body, the tape) stay
  // allocated and faulted in from call to call instead of being built afresh for each.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc) || !doc.is_object()) {
    return Error(ErrorCode::kSerializationError, "The request body is not a JSON object");
  }
  PutRequest out;
  std::string_view name;
  if (doc["DeliveryStreamName"].get(name) || name.empty()) {
    return Invalid("DeliveryStreamName is required");
  }
  out.stream = std::string(name);
  auto decode = [&](simdjson::dom::element rec) -> Status {
    std::string_view data;
    if (!rec.is_object() || rec["Data"].get(data)) return Invalid("each Record needs Data (base64)");
    // Decoded straight into the record that goes to the log (one allocation per record).
    if (!Base64DecodeTo(data, &out.records.emplace_back())) {
      return Error(ErrorCode::kSerializationError, "Record Data is not valid base64");
    }
    return Status::OK();
  };
  if (!batch) {
    simdjson::dom::element rec;
    if (doc["Record"].get(rec)) return Invalid("Record is required");
    RETURN_IF_ERROR(decode(rec));
    if (out.records[0].size() > 1000 * 1024) {
      return Invalid("Record size " + std::to_string(out.records[0].size()) +
                     " exceeds the 1000 KiB limit");
    }
    return out;
  }
  simdjson::dom::array recs;
  if (doc["Records"].get(recs) || recs.size() == 0) return Invalid("Records must be a non-empty list");
  if (recs.size() > kMaxBatchRecords) {
    return Invalid("PutRecordBatch takes at most 500 records; got " + std::to_string(recs.size()));
  }
  out.records.reserve(recs.size());
  size_t total = 0;
  for (simdjson::dom::element r : recs) {
    RETURN_IF_ERROR(decode(r));
    total += out.records.back().size();
  }
  if (total > kMaxBatchBytes) {
    return Invalid("PutRecordBatch takes at most 4 MiB of record data; got " +
                   std::to_string(total) + " bytes");
  }
  return out;
}

}  // namespace

FirehoseApi::FirehoseApi(StreamService* service, const security::Authorizer* authz)
    : service_(service), authz_(authz) {}

Status FirehoseApi::Handle(net::ApiCall& call, net::HttpRequest& request,
                           net::HttpResponse& response) {
  // A body the server already holds in memory (every PutRecordBatch up to 256 KiB, and any body
  // SigV4 had to hash) is read in place rather than copied.
  std::string read;
  std::string_view body;
  if (auto* memory = dynamic_cast<net::MemoryBodyReader*>(request.body);
      memory && memory->data().size() <= kMaxBodyBytes) {
    body = memory->data();
  } else {
    ASSIGN_OR_RETURN(read, request.body->ReadAll(kMaxBodyBytes));
    body = read;
  }
  const std::string& a = call.action;
  bool put = a == "PutRecord" || a == "PutRecordBatch";
  json in;
  PutRequest put_request;
  std::string name;
  if (put) {
    ASSIGN_OR_RETURN(put_request, ParsePut(body, a == "PutRecordBatch"));
    name = put_request.stream;
  } else {
    in = body.empty() ? json::object() : json::parse(body.begin(), body.end(), nullptr, false);
    if (in.is_discarded() || !in.is_object()) {
      return Error(ErrorCode::kSerializationError, "The request body is not a JSON object");
    }
  }
  if (put) {
    call.resource = service_->Arn(name);
    call.audit_params["deliveryStreamName"] = name;
  } else if (a != "ListDeliveryStreams") {
    ASSIGN_OR_RETURN(name, StreamName(in));
    call.resource = service_->Arn(name);
    call.audit_params["deliveryStreamName"] = name;
  } else {
    call.resource = "*";
  }
  if (authz_) {
    security::AuthzRequest rq;
    rq.identity = &call.identity;
    rq.action = "firehose:" + a;
    rq.resource = call.resource;
    security::AuthzDecision d = authz_->Authorize(rq);
    if (!d.allowed) {
      std::string who = call.identity.anonymous() ? "anonymous" : call.identity.arn;
      return Error(ErrorCode::kAccessDeniedException, "User: " + who +
                                                          " is not authorized to perform: " +
                                                          rq.action + " on resource: " + rq.resource);
    }
  }

  json out = json::object();
  if (put) {
    std::vector<std::string> records = std::move(put_request.records);
    if (!service_->Exists(name)) {
      return Error(ErrorCode::kFirehoseResourceNotFound,
                   "Firehose " + name + " under account not found.");
    }
    std::promise<std::vector<PutResult>> p;
    auto f = p.get_future();
    service_->Put(name, std::move(records), [&p](std::vector<PutResult> r) { p.set_value(std::move(r)); });
    std::vector<PutResult> results = f.get();
    if (a == "PutRecord") {
      if (!results[0].status.ok()) return results[0].status;
      net::WriteJson(response, "{\"RecordId\":\"" + RecordId(results[0].seq) + "\",\"Encrypted\":false}");
      return Status::OK();
    }
    std::string resp = "{\"RequestResponses\":[";
    resp.reserve(results.size() * 72 + 64);
    int failed = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const PutResult& r = results[i];
      if (i) resp += ',';
      if (r.status.ok()) {
        resp += "{\"RecordId\":\"";
        AppendRecordId(r.seq, &resp);
        resp += "\"}";
      } else {
        ++failed;
        resp += "{\"ErrorCode\":\"" + std::string(r.status.info().aws_code) +
                "\",\"ErrorMessage\":\"" + JsonEscape(r.status.message()) + "\"}";
      }
    }
    resp += "],\"FailedPutCount\":" + std::to_string(failed) + ",\"Encrypted\":false}";
    net::WriteJson(response, std::move(resp));
    return Status::OK();
  } else if (a == "CreateDeliveryStream") {
    json ext;
    if (in.contains("ExtendedS3DestinationConfiguration")) {
      ext = in["ExtendedS3DestinationConfiguration"];
    } else if (in.contains("S3DestinationConfiguration")) {
      ext = FromS3Destination(in["S3DestinationConfiguration"]);
    } else {
      for (const char* other : {"RedshiftDestinationConfiguration",
                                "ElasticsearchDestinationConfiguration",
                                "AmazonopensearchserviceDestinationConfiguration",
                                "SplunkDestinationConfiguration",
                                "HttpEndpointDestinationConfiguration",
                                "SnowflakeDestinationConfiguration",
                                "IcebergDestinationConfiguration"}) {
        if (in.contains(other)) {
          return Invalid(std::string(other) + " is not supported: Tarn delivers to its object "
                         "store (ExtendedS3DestinationConfiguration)");
        }
      }
      return Invalid("ExtendedS3DestinationConfiguration is required");
    }
    if (in.contains("KinesisStreamSourceConfiguration") || in.contains("MSKSourceConfiguration")) {
      return Invalid("only DirectPut streams are supported");
    }
    if (in.contains("DeliveryStreamEncryptionConfigurationInput")) {
      return Invalid("server-side encryption of delivery streams is not supported yet (no KMS)");
    }
    std::string type = in.value("DeliveryStreamType", "");
    json tags = in.contains("Tags") ? in["Tags"] : json();
    ASSIGN_OR_RETURN(std::string arn, service_->Create(name, type, ext, tags));
    out = {{"DeliveryStreamARN", arn}};
  } else if (a == "DescribeDeliveryStream") {
    ASSIGN_OR_RETURN(json d, service_->Describe(name));
    out = {{"DeliveryStreamDescription", d}};
  } else if (a == "ListDeliveryStreams") {
    std::string type = in.value("DeliveryStreamType", "");
    std::string start = in.value("ExclusiveStartDeliveryStreamName", "");
    int64_t limit = 10;
    if (in.contains("Limit")) {
      if (!in["Limit"].is_number_integer()) return Invalid("Limit must be an integer");
      limit = in["Limit"].get<int64_t>();
      if (limit < 1 || limit > 10000) return Invalid("Limit must be between 1 and 10000");
    }
    ASSIGN_OR_RETURN(std::vector<std::string> all, service_->List());
    json names = json::array();
    bool more = false;
    if (type.empty() || type == "DirectPut") {
      for (const auto& n : all) {
        if (!start.empty() && n <= start) continue;
        if (int64_t(names.size()) == limit) {
          more = true;
          break;
        }
        names.push_back(n);
      }
    }
    out = {{"DeliveryStreamNames", names}, {"HasMoreDeliveryStreams", more}};
  } else if (a == "DeleteDeliveryStream") {
    RETURN_IF_ERROR(service_->Delete(name));
  } else if (a == "UpdateDestination") {
    std::string version = in.value("CurrentDeliveryStreamVersionId", "");
    if (version.empty()) return Invalid("CurrentDeliveryStreamVersionId is required");
    std::string dest = in.value("DestinationId", "");
    json update;
    if (in.contains("ExtendedS3DestinationUpdate")) {
      update = in["ExtendedS3DestinationUpdate"];
    } else if (in.contains("S3DestinationUpdate")) {
      update = in["S3DestinationUpdate"];
    } else {
      return Invalid("ExtendedS3DestinationUpdate is required (other destinations are not "
                     "supported)");
    }
    if (!update.is_object()) return Invalid("the destination update must be an object");
    RETURN_IF_ERROR(service_->UpdateDestination(name, version, dest, update));
  } else if (a == "TagDeliveryStream") {
    if (!in.contains("Tags")) return Invalid("Tags is required");
    RETURN_IF_ERROR(service_->Tag(name, in["Tags"]));
  } else if (a == "UntagDeliveryStream") {
    if (!in.contains("TagKeys") || !in["TagKeys"].is_array()) return Invalid("TagKeys is required");
    std::vector<std::string> keys;
    for (const json& k : in["TagKeys"]) {
      if (k.is_string()) keys.push_back(k.get<std::string>());
    }
    RETURN_IF_ERROR(service_->Untag(name, keys));
  } else if (a == "ListTagsForDeliveryStream") {
    ASSIGN_OR_RETURN(json tags, service_->Tags(name));
    std::string start = in.value("ExclusiveStartTagKey", "");
    int64_t limit = in.contains("Limit") && in["Limit"].is_number_integer() ? in["Limit"].get<int64_t>() : 50;
    json page = json::array();
    bool more = false;
    for (const json& t : tags) {
      if (!start.empty() && t["Key"].get<std::string>() <= start) continue;
      if (int64_t(page.size()) == limit) {
        more = true;
        break;
      }
      page.push_back(t);
    }
    out = {{"Tags", page}, {"HasMoreTags", more}};
  } else if (a == "StartDeliveryStreamEncryption" || a == "StopDeliveryStreamEncryption") {
    if (!service_->Exists(name)) {
      return Error(ErrorCode::kFirehoseResourceNotFound,
                   "Firehose " + name + " under account not found.");
    }
    return Invalid("server-side encryption of delivery streams is not supported yet: Tarn has no "
                   "KMS; records are stored unencrypted in the WAL and the landing bucket");
  } else {
    return Error(ErrorCode::kUnknownOperation, "Operation " + a + " is not supported by Firehose");
  }
  net::WriteJson(response, out.dump());
  return Status::OK();
}

}  // namespace tarn::streams
