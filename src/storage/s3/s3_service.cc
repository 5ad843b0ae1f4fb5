#include "storage/s3/s3_service.h"

#include <pugixml.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/strings.h"
#include "storage/checksum.h"
#include "storage/s3/aws_chunked.h"

namespace tarn::storage::s3 {

namespace {

constexpr const char* kNs = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr size_t kMaxXmlBody = 2 << 20;
constexpr uint64_t kMaxSinglePut = uint64_t{5} << 30;  // S3: 5 GiB per PUT / part

// A small writer for success bodies; every text goes through XmlEscape.
class Xml {
 public:
  explicit Xml(const std::string& root) : root_(root) {
    s_ = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + root + " xmlns=\"" + kNs + "\">";
  }
  Xml& Open(const char* tag) {
    s_ += "<";
    s_ += tag;
    s_ += ">";
    return *this;
  }
  Xml& Close(const char* tag) {
    s_ += "</";
    s_ += tag;
    s_ += ">";
    return *this;
  }
  Xml& Elem(const char* tag, std::string_view text) {
    Open(tag);
    s_ += XmlEscape(text);
    return Close(tag);
  }
  Xml& Elem(const char* tag, uint64_t v) { return Elem(tag, std::to_string(v)); }
  Xml& Bool(const char* tag, bool v) { return Elem(tag, v ? "true" : "false"); }
  std::string Done() { return s_ + "</" + root_ + ">"; }

 private:
  std::string root_, s_;
};

std::string IsoTime(int64_t ms) { return FormatIso8601Millis(ms * 1000); }
std::string Quote(const std::string& etag) { return "\"" + etag + "\""; }

std::string Arn(const std::string& bucket, const std::string& key, bool object_level) {
  if (bucket.empty()) return "arn:aws:s3:::*";
  return "arn:aws:s3:::" + bucket + (object_level ? "/" + key : "");
}

class ReaderBody final : public net::BodySource {
 public:
  explicit ReaderBody(std::unique_ptr<ObjectReader> r) : r_(std::move(r)) {}
  Result<size_t> Read(char* buf, size_t n) override { return r_->Read(buf, n); }

 private:
  std::unique_ptr<ObjectReader> r_;
};

class BodySourceAdapter final : public ByteSource {
 public:
  explicit BodySourceAdapter(net::BodyReader* r) : r_(r) {}
  Result<size_t> Read(char* buf, size_t n) override { return r_->Read(buf, n); }

 private:
  net::BodyReader* r_;
};

class ObjectReaderSource final : public ByteSource {
 public:
  explicit ObjectReaderSource(ObjectReader* r) : r_(r) {}
  Result<size_t> Read(char* buf, size_t n) override { return r_->Read(buf, n); }

 private:
  ObjectReader* r_;
};

Result<pugi::xml_document> ParseXml(net::BodyReader* body) {
  ASSIGN_OR_RETURN(std::string text, body->ReadAll(kMaxXmlBody));
  pugi::xml_document doc;
  if (!doc.load_buffer(text.data(), text.size())) {
    return Error(ErrorCode::kMalformedXML,
                 "The XML you provided was not well-formed or did not validate against our published schema");
  }
  return doc;
}

std::string ChildText(const pugi::xml_node& n, const char* name) {
  return n.child(name).text().as_string();
}

// "bytes=a-b" | "bytes=a-" | "bytes=-n"; anything else (several ranges, other units) is
// ignored and the whole object is served, as S3 does.
void ParseRange(const std::string& h, GetOptions* g) {
  if (!StartsWith(h, "bytes=") || h.find(',') != std::string::npos) return;
  std::string spec = h.substr(6);
  size_t dash = spec.find('-');
  if (dash == std::string::npos) return;
  auto a = ParseUint64(Trim(spec.substr(0, dash)));
  std::string rest(Trim(spec.substr(dash + 1)));
  if (dash == 0) {
    if (auto n = ParseUint64(rest)) g->suffix_length = *n;
    return;
  }
  if (!a) return;
  if (rest.empty()) {
    g->range_first = *a;
    return;
  }
  auto b = ParseUint64(rest);
  if (!b || *b < *a) return;
  g->range_first = *a;
  g->range_last = *b;
}

bool EtagMatches(const std::string& header, const std::string& etag) {
  for (auto part : Split(header, ',')) {
    std::string v(Trim(part));
    if (v == "*") return true;
    if (StartsWith(v, "W/")) v = v.substr(2);
    if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
    if (v == etag) return true;
  }
  return false;
}

// What the client asked us to check about a PUT body.
struct ChecksumRequest {
  std::vector<ChecksumAlgorithm> algorithms;                 // to compute
  std::map<ChecksumAlgorithm, std::string> expected;        // from headers (base64)
  std::vector<ChecksumAlgorithm> trailer;                   // announced in x-amz-trailer
  std::optional<std::string> content_md5;                   // raw
};

const ChecksumAlgorithm kAllAlgorithms[] = {ChecksumAlgorithm::kCrc32, ChecksumAlgorithm::kCrc32c,
                                           ChecksumAlgorithm::kSha1, ChecksumAlgorithm::kSha256,
                                           ChecksumAlgorithm::kCrc64Nvme};

std::string HeaderName(ChecksumAlgorithm a) { return "x-amz-checksum-" + ToLower(ChecksumName(a)); }

Result<ChecksumRequest> ParseChecksumRequest(const net::HttpRequest& rq) {
  ChecksumRequest cr;
  auto add = [&](ChecksumAlgorithm a) {
    if (std::find(cr.algorithms.begin(), cr.algorithms.end(), a) == cr.algorithms.end()) {
      cr.algorithms.push_back(a);
    }
  };
  for (auto a : kAllAlgorithms) {
    if (const std::string* v = rq.headers.Find(HeaderName(a))) {
      cr.expected[a] = *v;
      add(a);
    }
  }
  for (const char* h : {"x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"}) {
    std::string v = rq.headers.Get(h);
    if (v.empty()) continue;
    auto a = ParseChecksumAlgorithm(v);
    if (!a) return Error(ErrorCode::kInvalidRequest, "Checksum algorithm " + v + " is not supported");
    add(*a);
  }
  for (auto part : Split(rq.headers.Get("x-amz-trailer"), ',')) {
    std::string name = ToLower(Trim(part));
    if (name.empty()) continue;
    if (!StartsWith(name, "x-amz-checksum-")) continue;
    auto a = ParseChecksumAlgorithm(name.substr(15));
    if (!a) return Error(ErrorCode::kInvalidRequest, "Checksum trailer " + name + " is not supported");
    cr.trailer.push_back(*a);
    add(*a);
  }
  if (const std::string* md5 = rq.headers.Find("Content-MD5")) {
    auto raw = Base64Decode(Trim(*md5));
    if (!raw || raw->size() != 16) {
      return Error(ErrorCode::kInvalidDigest, "The Content-MD5 you specified was invalid");
    }
    cr.content_md5 = *raw;
  }
  return cr;
}

Status VerifyChecksums(const ChecksumRequest& cr, const net::HttpRequest& rq,
                       const std::string& etag_hex,
                       const std::map<std::string, std::string>& computed) {
  if (cr.content_md5 && HexEncode(*cr.content_md5) != etag_hex) {
    return Error(ErrorCode::kBadDigest, "The Content-MD5 you specified did not match what we received.");
  }
  auto check = [&](ChecksumAlgorithm a, const std::string& expected) -> Status {
    auto it = computed.find(ChecksumName(a));
    if (it == computed.end() || Trim(expected) != it->second) {
      return Error(ErrorCode::kBadDigest, std::string("The ") + ChecksumName(a) +
                                              " you specified did not match the calculated checksum.");
    }
    return Status::OK();
  };
  for (const auto& [a, v] : cr.expected) RETURN_IF_ERROR(check(a, v));
  for (auto a : cr.trailer) {
    const std::string* v = rq.trailers.Find(HeaderName(a));
    if (!v) {
      return Error(ErrorCode::kInvalidRequest,
                   "The request announced trailer " + HeaderName(a) + " but did not send it");
    }
    RETURN_IF_ERROR(check(a, *v));
  }
  return Status::OK();
}

// The SigV4 payload hash a body reader handed over (TakePayloadSha256Check), against what the
// store computed.
Status VerifyPayloadSha256(const std::optional<std::string>& expected_hex,
                           const std::string& computed_raw) {
  if (!expected_hex) return Status::OK();
  if (!EqualsIgnoreCase(HexEncode(computed_raw), *expected_hex)) {
    return Error(ErrorCode::kXAmzContentSHA256Mismatch,
                 "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  return Status::OK();
}

void SetChecksumHeaders(net::HttpResponse& rs, const std::map<std::string, std::string>& sums) {
  for (const auto& [name, value] : sums) {
    rs.headers.Set("x-amz-checksum-" + ToLower(name), value);
  }
}

Result<std::map<std::string, std::string>> ParseTagging(net::BodyReader* body) {
  ASSIGN_OR_RETURN(pugi::xml_document doc, ParseXml(body));
  std::map<std::string, std::string> tags;
  pugi::xml_node set = doc.child("Tagging").child("TagSet");
  if (!doc.child("Tagging")) return Error(ErrorCode::kMalformedXML, "expected a <Tagging> document");
  for (pugi::xml_node t : set.children("Tag")) {
    std::string k = ChildText(t, "Key");
    if (k.empty() || k.size() > 128) return Error(ErrorCode::kInvalidTag, "The TagKey you have provided is invalid");
    if (tags.count(k)) return Error(ErrorCode::kInvalidTag, "Cannot provide multiple Tags with the same key");
    tags[k] = ChildText(t, "Value");
  }
  if (tags.size() > 50) return Error(ErrorCode::kInvalidTag, "Object tags cannot be greater than 50");
  return tags;
}

std::string TaggingXml(const std::map<std::string, std::string>& tags) {
  Xml x("Tagging");
  x.Open("TagSet");
  for (const auto& [k, v] : tags) x.Open("Tag").Elem("Key", k).Elem("Value", v).Close("Tag");
  x.Close("TagSet");
  return x.Done();
}

}  // namespace

struct S3Service::Ctx {
  net::ApiCall& call;
  net::HttpRequest& rq;
  net::HttpResponse& rs;
  std::string bucket;
  std::string key;
  std::vector<std::pair<std::string, std::string>> params;

  bool Has(const char* name) const {
    for (const auto& [k, v] : params) {
      if (k == name) return true;
    }
    return false;
  }
  std::string Param(const char* name) const {
    for (const auto& [k, v] : params) {
      if (k == name) return v;
    }
    return "";
  }
};

S3Service::S3Service(ObjectStore* store, const security::Authorizer* authorizer, S3Options options)
    : store_(store), authorizer_(authorizer), options_(std::move(options)) {}

Status S3Service::Authorize(Ctx& c, const std::string& action, const std::string& bucket,
                            const std::string& key, bool object_level,
                            std::map<std::string, std::vector<std::string>> extra) {
  if (!authorizer_) return Status::OK();
  security::AuthzRequest req;
  req.identity = &c.call.identity;
  req.action = action;
  req.resource = Arn(bucket, key, object_level);
  req.context = std::move(extra);
  req.context["aws:SourceIp"] = {c.rq.remote_ip};
  req.context["aws:SecureTransport"] = {c.rq.secure ? "true" : "false"};
  // aws:username, aws:userid, aws:PrincipalArn and aws:CurrentTime are derived from the caller
  // by the policy evaluator, as AWS does: aws:username exists only for IAM users (not for the
  // root user nor for role sessions), so a condition or ${aws:username} on it does not match.
  if (!bucket.empty()) {
    auto policy = store_->GetBucketConfig(bucket, "policy");
    if (policy.ok() && policy->has_value()) req.resource_policy = **policy;
  }
  security::AuthzDecision d = authorizer_->Authorize(req);
  if (!d.allowed) {
    return Error(ErrorCode::kAccessDenied, "Access Denied (" + action + " on " + req.resource + ")");
  }
  return Status::OK();
}

Status S3Service::Handle(net::ApiCall& call, net::HttpRequest& request,
                         net::HttpResponse& response) {
  Ctx c{call, request, response, "", "", request.QueryParams()};
  // Virtual-host style: <bucket>.<domain>[:port].
  std::string host = ToLower(request.headers.Get("Host"));
  if (!host.empty() && host.front() != '[') host = host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':'));
  bool virtual_host = false;
  for (const auto& domain : options_.virtual_host_domains) {
    if (host.size() > domain.size() + 1 && EndsWith(host, "." + domain)) {
      c.bucket = host.substr(0, host.size() - domain.size() - 1);
      virtual_host = true;
      break;
    }
  }
  auto path = UriDecode(request.path, false);
  if (!path) return Error(ErrorCode::kInvalidArgument, "malformed percent-encoding in the request path");
  std::string p = *path;
  if (!p.empty() && p.front() == '/') p.erase(0, 1);
  if (virtual_host) {
    c.key = p;
  } else {
    size_t slash = p.find('/');
    c.bucket = p.substr(0, slash);
    c.key = slash == std::string::npos ? "" : p.substr(slash + 1);
  }
  if (!c.bucket.empty()) call.audit_params["bucketName"] = c.bucket;
  if (!c.key.empty()) call.audit_params["key"] = c.key;
  call.resource = c.bucket.empty() ? "" : Arn(c.bucket, c.key, !c.key.empty());

  // An authenticated request's aws-chunked body was decoded (and its chunk signatures checked)
  // by the authenticator; an anonymous one's framing is still there.
  std::unique_ptr<AwsChunkedReader> chunked;
  net::BodyReader* inner = request.body;
  if (options_.decode_aws_chunked && call.identity.anonymous() && IsAwsChunked(request)) {
    chunked = std::make_unique<AwsChunkedReader>(request.body, &request.trailers);
    request.body = chunked.get();
  }
  Status s = Dispatch(c);
  request.body = inner;  // the decoder dies with this call
  return s;
}

Status S3Service::Dispatch(Ctx& c) {
  const std::string& m = c.rq.method;
  auto& call = c.call;
  if (c.bucket.empty()) {
    if (m == "GET") {
      call.action = "ListBuckets";
      return ListBuckets(c);
    }
    return Error(ErrorCode::kMethodNotAllowed, "The specified method is not allowed against this resource.");
  }
  if (c.key.empty()) {
    if (m == "PUT") {
      if (c.Has("versioning")) return call.action = "PutBucketVersioning", PutBucketVersioning(c);
      if (c.Has("tagging")) return call.action = "PutBucketTagging", PutBucketTagging(c);
      if (c.Has("policy")) return call.action = "PutBucketPolicy", PutBucketPolicy(c);
      bool sub = false;
      for (const char* s : {"acl", "cors", "lifecycle", "encryption", "notification", "logging",
                            "website", "replication", "object-lock", "ownershipControls",
                            "publicAccessBlock", "requestPayment", "accelerate"}) {
        if (c.Has(s)) sub = true;
      }
      if (!sub) return call.action = "CreateBucket", CreateBucket(c);
    } else if (m == "GET") {
      if (c.Has("location")) return call.action = "GetBucketLocation", GetBucketLocation(c);
      if (c.Has("versioning")) return call.action = "GetBucketVersioning", GetBucketVersioning(c);
      if (c.Has("tagging")) return call.action = "GetBucketTagging", GetBucketTagging(c);
      if (c.Has("policy")) return call.action = "GetBucketPolicy", GetBucketPolicy(c);
      if (c.Has("versions")) return call.action = "ListObjectVersions", ListObjectVersions(c);
      if (c.Has("uploads")) return call.action = "ListMultipartUploads", ListMultipartUploads(c);
      bool sub = false;
      for (const char* s : {"acl", "cors", "lifecycle", "encryption", "notification", "logging",
                            "website", "replication", "object-lock", "ownershipControls",
                            "requestPayment", "accelerate", "analytics", "inventory", "metrics",
                            "intelligent-tiering", "publicAccessBlock", "policyStatus"}) {
        if (c.Has(s)) sub = true;
      }
      if (!sub) {
        bool v2 = c.Param("list-type") == "2";
        call.action = v2 ? "ListObjectsV2" : "ListObjects";
        return ListObjects(c, v2);
      }
    } else if (m == "HEAD") {
      call.action = "HeadBucket";
      return HeadBucket(c);
    } else if (m == "DELETE") {
      if (c.Has("tagging")) return call.action = "DeleteBucketTagging", DeleteBucketTagging(c);
      if (c.Has("policy")) return call.action = "DeleteBucketPolicy", DeleteBucketPolicy(c);
      bool sub = false;
      for (const char* s : {"cors", "lifecycle", "encryption", "website", "replication",
                            "publicAccessBlock", "ownershipControls"}) {
        if (c.Has(s)) sub = true;
      }
      if (!sub) return call.action = "DeleteBucket", DeleteBucket(c);
    } else if (m == "POST" && c.Has("delete")) {
      call.action = "DeleteObjects";
      return DeleteObjects(c);
    }
    return Error(ErrorCode::kS3NotImplemented,
                 "A header or operation you provided implies functionality that is not implemented");
  }
  if (m == "PUT") {
    if (c.Has("tagging")) return call.action = "PutObjectTagging", PutObjectTagging(c);
    if (c.Has("uploadId") && c.Has("partNumber")) {
      if (c.rq.headers.Has("x-amz-copy-source")) return call.action = "UploadPartCopy", UploadPartCopy(c);
      return call.action = "UploadPart", UploadPart(c);
    }
    if (c.Has("acl") || c.Has("retention") || c.Has("legal-hold")) {
      return Error(ErrorCode::kS3NotImplemented, "object ACLs, retention and legal holds are not implemented");
    }
    if (c.rq.headers.Has("x-amz-copy-source")) return call.action = "CopyObject", CopyObject(c);
    call.action = "PutObject";
    return PutObject(c);
  }
  if (m == "GET" || m == "HEAD") {
    if (m == "GET" && c.Has("tagging")) return call.action = "GetObjectTagging", GetObjectTagging(c);
    if (m == "GET" && c.Has("uploadId")) return call.action = "ListParts", ListParts(c);
    if (c.Has("acl") || c.Has("attributes") || c.Has("retention") || c.Has("legal-hold") ||
        c.Has("torrent")) {
      return Error(ErrorCode::kS3NotImplemented, "this object sub-resource is not implemented");
    }
    call.action = m == "GET" ? "GetObject" : "HeadObject";
    return GetObject(c, m == "HEAD");
  }
  if (m == "DELETE") {
    if (c.Has("tagging")) return call.action = "DeleteObjectTagging", DeleteObjectTagging(c);
    if (c.Has("uploadId")) return call.action = "AbortMultipartUpload", AbortMultipartUpload(c);
    call.action = "DeleteObject";
    return DeleteObject(c);
  }
  if (m == "POST") {
    if (c.Has("uploads")) return call.action = "CreateMultipartUpload", CreateMultipartUpload(c);
    if (c.Has("uploadId")) return call.action = "CompleteMultipartUpload", CompleteMultipartUpload(c);
  }
  return Error(ErrorCode::kS3NotImplemented,
               "A header or operation you provided implies functionality that is not implemented");
}

// ---------------- buckets ----------------

Status S3Service::ListBuckets(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:ListAllMyBuckets", "", "", false));
  ASSIGN_OR_RETURN(std::vector<BucketInfo> buckets, store_->ListBuckets());
  Xml x("ListAllMyBucketsResult");
  x.Open("Owner").Elem("ID", options_.account_id).Elem("DisplayName", "tarn").Close("Owner");
  x.Open("Buckets");
  for (const auto& b : buckets) {
    x.Open("Bucket").Elem("Name", b.name).Elem("CreationDate", IsoTime(b.created_ms)).Close("Bucket");
  }
  x.Close("Buckets");
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::CreateBucket(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:CreateBucket", c.bucket, "", false));
  // The body may name a LocationConstraint; this lake has one region, any other is an error.
  ASSIGN_OR_RETURN(std::string body, c.rq.body->ReadAll(kMaxXmlBody));
  if (!Trim(body).empty()) {
    pugi::xml_document doc;
    if (!doc.load_buffer(body.data(), body.size())) {
      return Error(ErrorCode::kMalformedXML, "The XML you provided was not well-formed");
    }
    std::string loc = doc.child("CreateBucketConfiguration").child("LocationConstraint").text().as_string();
    if (!loc.empty() && loc != options_.region) {
      return Error(ErrorCode::kInvalidArgument,
                   "The specified location-constraint " + loc + " is not valid for this lake (" +
                       options_.region + ")");
    }
  }
  RETURN_IF_ERROR(store_->CreateBucket(c.bucket));
  c.rs.headers.Set("Location", "/" + c.bucket);
  c.rs.status = 200;
  return Status::OK();
}

Status S3Service::DeleteBucket(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:DeleteBucket", c.bucket, "", false));
  RETURN_IF_ERROR(store_->DeleteBucket(c.bucket));
  c.rs.status = 204;
  return Status::OK();
}

Status S3Service::HeadBucket(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:ListBucket", c.bucket, "", false));
  ASSIGN_OR_RETURN(BucketInfo b, store_->HeadBucket(c.bucket));
  c.rs.headers.Set("x-amz-bucket-region", b.region);
  c.rs.status = 200;
  return Status::OK();
}

Status S3Service::GetBucketLocation(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:GetBucketLocation", c.bucket, "", false));
  ASSIGN_OR_RETURN(BucketInfo b, store_->HeadBucket(c.bucket));
  // S3 answers an empty constraint for us-east-1.
  std::string region = b.region == "us-east-1" ? "" : b.region;
  net::WriteXml(c.rs, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"" +
                          std::string(kNs) + "\">" + XmlEscape(region) + "</LocationConstraint>");
  return Status::OK();
}

Status S3Service::PutBucketVersioning(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:PutBucketVersioning", c.bucket, "", false));
  ASSIGN_OR_RETURN(pugi::xml_document doc, ParseXml(c.rq.body));
  std::string status = doc.child("VersioningConfiguration").child("Status").text().as_string();
  Versioning v;
  if (status == "Enabled") {
    v = Versioning::kEnabled;
  } else if (status == "Suspended") {
    v = Versioning::kSuspended;
  } else {
    return Error(ErrorCode::kMalformedXML, "VersioningConfiguration Status must be Enabled or Suspended");
  }
  RETURN_IF_ERROR(store_->SetVersioning(c.bucket, v));
  c.rs.status = 200;
  return Status::OK();
}

Status S3Service::GetBucketVersioning(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:GetBucketVersioning", c.bucket, "", false));
  ASSIGN_OR_RETURN(Versioning v, store_->GetVersioning(c.bucket));
  Xml x("VersioningConfiguration");
  if (v == Versioning::kEnabled) x.Elem("Status", "Enabled");
  if (v == Versioning::kSuspended) x.Elem("Status", "Suspended");
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::PutBucketTagging(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:PutBucketTagging", c.bucket, "", false));
  ASSIGN_OR_RETURN(auto tags, ParseTagging(c.rq.body));
  RETURN_IF_ERROR(store_->SetBucketConfig(c.bucket, "tagging", nlohmann::json(tags).dump()));
  c.rs.status = 204;
  return Status::OK();
}

Status S3Service::GetBucketTagging(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:GetBucketTagging", c.bucket, "", false));
  ASSIGN_OR_RETURN(auto value, store_->GetBucketConfig(c.bucket, "tagging"));
  if (!value) return Error(ErrorCode::kNoSuchTagSet, "The TagSet does not exist");
  auto j = nlohmann::json::parse(*value, nullptr, false);
  std::map<std::string, std::string> tags;
  if (j.is_object()) tags = j.get<std::map<std::string, std::string>>();
  net::WriteXml(c.rs, TaggingXml(tags));
  return Status::OK();
}

Status S3Service::DeleteBucketTagging(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:PutBucketTagging", c.bucket, "", false));
  RETURN_IF_ERROR(store_->SetBucketConfig(c.bucket, "tagging", ""));
  c.rs.status = 204;
  return Status::OK();
}

Status S3Service::PutBucketPolicy(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:PutBucketPolicy", c.bucket, "", false));
  ASSIGN_OR_RETURN(std::string body, c.rq.body->ReadAll(20 * 1024));
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("Statement")) {
    return Error(ErrorCode::kMalformedPolicy, "Policies must be valid JSON with a Statement");
  }
  RETURN_IF_ERROR(store_->SetBucketConfig(c.bucket, "policy", body));
  c.rs.status = 204;
  return Status::OK();
}

Status S3Service::GetBucketPolicy(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:GetBucketPolicy", c.bucket, "", false));
  ASSIGN_OR_RETURN(auto value, store_->GetBucketConfig(c.bucket, "policy"));
  if (!value) return Error(ErrorCode::kNoSuchBucketPolicy, "The bucket policy does not exist");
  c.rs.SetBody("application/json", *value);
  return Status::OK();
}

Status S3Service::DeleteBucketPolicy(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:DeleteBucketPolicy", c.bucket, "", false));
  RETURN_IF_ERROR(store_->SetBucketConfig(c.bucket, "policy", ""));
  c.rs.status = 204;
  return Status::OK();
}

Status S3Service::ListObjects(Ctx& c, bool v2) {
  ListOptions o;
  o.prefix = c.Param("prefix");
  o.delimiter = c.Param("delimiter");
  std::string encoding = c.Param("encoding-type");
  if (!encoding.empty() && encoding != "url") {
    return Error(ErrorCode::kInvalidArgument, "Invalid Encoding Method specified in Request");
  }
  bool url = encoding == "url";
  auto enc = [&](const std::string& s) { return url ? UriEncode(s, false) : s; };
  if (c.Has("max-keys")) {
    auto mk = ParseInt64(c.Param("max-keys"));
    if (!mk || *mk < 0) return Error(ErrorCode::kInvalidArgument, "Provided max-keys not an integer or within integer range");
    o.max_keys = static_cast<int>(std::min<int64_t>(*mk, 1000));
  }
  std::map<std::string, std::vector<std::string>> ctx;
  ctx["s3:prefix"] = {o.prefix};
  if (!o.delimiter.empty()) ctx["s3:delimiter"] = {o.delimiter};
  ctx["s3:max-keys"] = {std::to_string(o.max_keys)};
  RETURN_IF_ERROR(Authorize(c, "s3:ListBucket", c.bucket, "", false, ctx));
  std::string token = c.Param("continuation-token");
  if (v2) {
    o.start_after = c.Param("start-after");
    if (c.Has("continuation-token")) {
      auto decoded = Base64Decode(token);
      if (!decoded || !StartsWith(*decoded, "t1:")) {
        return Error(ErrorCode::kInvalidArgument, "The continuation token provided is incorrect");
      }
      o.start_after = decoded->substr(3);
    }
  } else {
    o.start_after = c.Param("marker");
  }
  ASSIGN_OR_RETURN(ListResult r, store_->ListObjects(c.bucket, o));
  Xml x("ListBucketResult");
  x.Elem("Name", c.bucket).Elem("Prefix", enc(o.prefix));
  if (v2) {
    if (c.Has("continuation-token")) x.Elem("ContinuationToken", token);
    if (c.Has("start-after")) x.Elem("StartAfter", enc(c.Param("start-after")));
    x.Elem("KeyCount", r.objects.size() + r.common_prefixes.size());
  } else {
    x.Elem("Marker", enc(c.Param("marker")));
  }
  x.Elem("MaxKeys", static_cast<uint64_t>(o.max_keys));
  if (!o.delimiter.empty()) x.Elem("Delimiter", enc(o.delimiter));
  if (url) x.Elem("EncodingType", "url");
  x.Bool("IsTruncated", r.truncated);
  if (r.truncated) {
    if (v2) {
      x.Elem("NextContinuationToken", Base64Encode("t1:" + r.next_start_after));
    } else {
      x.Elem("NextMarker", enc(r.next_start_after));
    }
  }
  bool owner = !v2 || c.Param("fetch-owner") == "true";
  for (const auto& obj : r.objects) {
    x.Open("Contents").Elem("Key", enc(obj.key)).Elem("LastModified", IsoTime(obj.last_modified_ms));
    x.Elem("ETag", Quote(obj.etag)).Elem("Size", obj.size).Elem("StorageClass", "STANDARD");
    if (owner) x.Open("Owner").Elem("ID", options_.account_id).Elem("DisplayName", "tarn").Close("Owner");
    x.Close("Contents");
  }
  for (const auto& cp : r.common_prefixes) x.Open("CommonPrefixes").Elem("Prefix", enc(cp)).Close("CommonPrefixes");
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::ListObjectVersions(Ctx& c) {
  VersionListOptions o;
  o.prefix = c.Param("prefix");
  o.delimiter = c.Param("delimiter");
  o.key_marker = c.Param("key-marker");
  o.version_id_marker = c.Param("version-id-marker");
  bool url = c.Param("encoding-type") == "url";
  auto enc = [&](const std::string& s) { return url ? UriEncode(s, false) : s; };
  if (c.Has("max-keys")) {
    auto mk = ParseInt64(c.Param("max-keys"));
    if (!mk || *mk < 0) return Error(ErrorCode::kInvalidArgument, "Provided max-keys not an integer or within integer range");
    o.max_keys = static_cast<int>(std::min<int64_t>(*mk, 1000));
  }
  RETURN_IF_ERROR(Authorize(c, "s3:ListBucketVersions", c.bucket, "", false,
                            {{"s3:prefix", {o.prefix}}}));
  ASSIGN_OR_RETURN(VersionListResult r, store_->ListObjectVersions(c.bucket, o));
  Xml x("ListVersionsResult");
  x.Elem("Name", c.bucket).Elem("Prefix", enc(o.prefix)).Elem("KeyMarker", enc(o.key_marker));
  x.Elem("VersionIdMarker", o.version_id_marker).Elem("MaxKeys", static_cast<uint64_t>(o.max_keys));
  if (!o.delimiter.empty()) x.Elem("Delimiter", enc(o.delimiter));
  if (url) x.Elem("EncodingType", "url");
  x.Bool("IsTruncated", r.truncated);
  if (r.truncated) {
    x.Elem("NextKeyMarker", enc(r.next_key_marker));
    x.Elem("NextVersionIdMarker", r.next_version_id_marker);
  }
  for (const auto& v : r.versions) {
    const char* tag = v.delete_marker ? "DeleteMarker" : "Version";
    x.Open(tag).Elem("Key", enc(v.key)).Elem("VersionId", v.version_id).Bool("IsLatest", v.is_latest);
    x.Elem("LastModified", IsoTime(v.last_modified_ms));
    if (!v.delete_marker) {
      x.Elem("ETag", Quote(v.etag)).Elem("Size", v.size).Elem("StorageClass", "STANDARD");
    }
    x.Open("Owner").Elem("ID", options_.account_id).Elem("DisplayName", "tarn").Close("Owner");
    x.Close(tag);
  }
  for (const auto& cp : r.common_prefixes) x.Open("CommonPrefixes").Elem("Prefix", enc(cp)).Close("CommonPrefixes");
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::ListMultipartUploads(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:ListBucketMultipartUploads", c.bucket, "", false));
  std::string prefix = c.Param("prefix"), delimiter = c.Param("delimiter");
  std::string key_marker = c.Param("key-marker"), id_marker = c.Param("upload-id-marker");
  int64_t max_uploads = 1000;
  if (c.Has("max-uploads")) {
    auto mu = ParseInt64(c.Param("max-uploads"));
    if (!mu || *mu < 0) return Error(ErrorCode::kInvalidArgument, "max-uploads must be a non-negative integer");
    max_uploads = std::min<int64_t>(*mu, 1000);
  }
  ASSIGN_OR_RETURN(std::vector<UploadInfo> ups, store_->ListMultipartUploads(c.bucket, prefix));
  // Order (key, initiated) as the store returns it; resume after (key-marker, upload-id-marker).
  std::vector<const UploadInfo*> page;
  std::vector<std::string> prefixes;
  bool truncated = false, past_marker = key_marker.empty();
  for (const auto& u : ups) {
    if (!past_marker) {
      if (u.key < key_marker) continue;
      if (u.key == key_marker) {
        if (id_marker.empty()) continue;
        if (u.upload_id == id_marker) past_marker = true;
        continue;
      }
      past_marker = true;
    }
    if (!delimiter.empty()) {
      size_t pos = u.key.find(delimiter, prefix.size());
      if (pos != std::string::npos) {
        std::string cp = u.key.substr(0, pos + delimiter.size());
        if (prefixes.empty() || prefixes.back() != cp) {
          if (static_cast<int64_t>(page.size() + prefixes.size()) >= max_uploads) {
            truncated = true;
            break;
          }
          prefixes.push_back(cp);
        }
        continue;
      }
    }
    if (static_cast<int64_t>(page.size() + prefixes.size()) >= max_uploads) {
      truncated = true;
      break;
    }
    page.push_back(&u);
  }
  Xml x("ListMultipartUploadsResult");
  x.Elem("Bucket", c.bucket).Elem("KeyMarker", key_marker).Elem("UploadIdMarker", id_marker);
  if (truncated && !page.empty()) {
    x.Elem("NextKeyMarker", page.back()->key).Elem("NextUploadIdMarker", page.back()->upload_id);
  }
  x.Elem("Prefix", prefix);
  if (!delimiter.empty()) x.Elem("Delimiter", delimiter);
  x.Elem("MaxUploads", static_cast<uint64_t>(max_uploads)).Bool("IsTruncated", truncated);
  for (const UploadInfo* u : page) {
    x.Open("Upload").Elem("Key", u->key).Elem("UploadId", u->upload_id);
    x.Open("Initiator").Elem("ID", options_.account_id).Elem("DisplayName", "tarn").Close("Initiator");
    x.Open("Owner").Elem("ID", options_.account_id).Elem("DisplayName", "tarn").Close("Owner");
    x.Elem("StorageClass", "STANDARD").Elem("Initiated", IsoTime(u->initiated_ms)).Close("Upload");
  }
  for (const auto& cp : prefixes) x.Open("CommonPrefixes").Elem("Prefix", cp).Close("CommonPrefixes");
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::DeleteObjects(Ctx& c) {
  ASSIGN_OR_RETURN(std::string body, c.rq.body->ReadAll(kMaxXmlBody));
  if (const std::string* md5 = c.rq.headers.Find("Content-MD5")) {
    if (Base64Encode(Md5(body)) != Trim(*md5)) {
      return Error(ErrorCode::kBadDigest, "The Content-MD5 you specified did not match what we received.");
    }
  }
  pugi::xml_document doc;
  if (!doc.load_buffer(body.data(), body.size()) || !doc.child("Delete")) {
    return Error(ErrorCode::kMalformedXML, "The XML you provided was not well-formed");
  }
  RETURN_IF_ERROR(store_->HeadBucket(c.bucket));
  bool quiet = std::string(doc.child("Delete").child("Quiet").text().as_string()) == "true";
  Xml x("DeleteResult");
  int count = 0;
  for (pugi::xml_node o : doc.child("Delete").children("Object")) {
    if (++count > 1000) return Error(ErrorCode::kMalformedXML, "at most 1000 keys per DeleteObjects");
    std::string key = ChildText(o, "Key");
    std::string vid = ChildText(o, "VersionId");
    Status s = ValidateKey(key);
    if (s.ok()) s = Authorize(c, vid.empty() ? "s3:DeleteObject" : "s3:DeleteObjectVersion", c.bucket, key, true);
    Result<DeleteResult> r = s.ok() ? store_->DeleteObject(c.bucket, key, vid) : Result<DeleteResult>(s);
    if (!r.ok()) {
      x.Open("Error").Elem("Key", key);
      if (!vid.empty()) x.Elem("VersionId", vid);
      x.Elem("Code", r.status().info().aws_code).Elem("Message", r.status().message()).Close("Error");
      continue;
    }
    if (quiet) continue;
    x.Open("Deleted").Elem("Key", key);
    if (!vid.empty()) x.Elem("VersionId", vid);
    if (r->delete_marker) {
      x.Bool("DeleteMarker", true);
      if (vid.empty()) x.Elem("DeleteMarkerVersionId", r->version_id);
    }
    x.Close("Deleted");
  }
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

// ---------------- objects ----------------

namespace {

ObjectAttributes AttrsFromHeaders(const net::HttpRequest& rq) {
  ObjectAttributes a;
  a.content_type = rq.headers.Get("Content-Type");
  // aws-chunked is a transfer detail of this request, not part of the stored object.
  std::vector<std::string> enc;
  for (auto part : Split(rq.headers.Get("Content-Encoding"), ',')) {
    std::string v(Trim(part));
    if (!v.empty() && !EqualsIgnoreCase(v, "aws-chunked")) enc.push_back(v);
  }
  a.content_encoding = Join(enc, ",");
  a.content_disposition = rq.headers.Get("Content-Disposition");
  a.content_language = rq.headers.Get("Content-Language");
  a.cache_control = rq.headers.Get("Cache-Control");
  a.expires = rq.headers.Get("Expires");
  for (const auto& [k, v] : rq.headers.fields()) {
    std::string lk = ToLower(k);
    if (StartsWith(lk, "x-amz-meta-")) a.user_metadata[lk.substr(11)] = v;
  }
  if (const std::string* t = rq.headers.Find("x-amz-tagging")) {
    for (auto& [k, v] : ParseQueryString(*t, true)) a.tags[k] = v;
  }
  return a;
}

void SetObjectHeaders(net::HttpResponse& rs, const ObjectInfo& info) {
  rs.headers.Set("ETag", Quote(info.etag));
  rs.headers.Set("Last-Modified", FormatHttpDate(info.last_modified_ms / 1000));
  rs.headers.Set("Accept-Ranges", "bytes");
  const auto& a = info.attrs;
  rs.headers.Set("Content-Type", a.content_type.empty() ? "binary/octet-stream" : a.content_type);
  if (!a.content_encoding.empty()) rs.headers.Set("Content-Encoding", a.content_encoding);
  if (!a.content_disposition.empty()) rs.headers.Set("Content-Disposition", a.content_disposition);
  if (!a.content_language.empty()) rs.headers.Set("Content-Language", a.content_language);
  if (!a.cache_control.empty()) rs.headers.Set("Cache-Control", a.cache_control);
  if (!a.expires.empty()) rs.headers.Set("Expires", a.expires);
  for (const auto& [k, v] : a.user_metadata) rs.headers.Set("x-amz-meta-" + k, v);
  if (!a.tags.empty()) rs.headers.Set("x-amz-tagging-count", std::to_string(a.tags.size()));
  if (info.version_id != "null") rs.headers.Set("x-amz-version-id", info.version_id);
  if (info.parts_count > 0) rs.headers.Set("x-amz-mp-parts-count", std::to_string(info.parts_count));
}

// x-amz-copy-source: [/]bucket/key[?versionId=…], URL-encoded.
Status ParseCopySource(const std::string& header, std::string* bucket, std::string* key,
                       std::string* version) {
  std::string src = header;
  size_t q = src.find('?');
  if (q != std::string::npos) {
    for (const auto& [k, v] : ParseQueryString(src.substr(q + 1), false)) {
      if (k == "versionId") *version = v;
    }
    src = src.substr(0, q);
  }
  auto decoded = UriDecode(src, false);
  if (!decoded) return Error(ErrorCode::kInvalidArgument, "Invalid copy source encoding");
  std::string s = *decoded;
  if (!s.empty() && s.front() == '/') s.erase(0, 1);
  size_t slash = s.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == s.size()) {
    return Error(ErrorCode::kInvalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
  }
  *bucket = s.substr(0, slash);
  *key = s.substr(slash + 1);
  return Status::OK();
}

}  // namespace

Status S3Service::PutObject(Ctx& c) {
  RETURN_IF_ERROR(ValidateKey(c.key));
  RETURN_IF_ERROR(Authorize(c, "s3:PutObject", c.bucket, c.key, true));
  ASSIGN_OR_RETURN(ChecksumRequest cr, ParseChecksumRequest(c.rq));
  std::optional<uint64_t> expected_len;
  if (const std::string* d = c.rq.headers.Find("x-amz-decoded-content-length")) {
    expected_len = ParseUint64(*d);
  } else if (!IsAwsChunked(c.rq)) {
    expected_len = c.rq.body->content_length();
  }
  if (expected_len && *expected_len > kMaxSinglePut) {
    return Error(ErrorCode::kEntityTooLarge, "Your proposed upload exceeds the maximum allowed size");
  }
  PutOptions o;
  o.attrs = AttrsFromHeaders(c.rq);
  o.checksums = cr.algorithms;
  o.max_size = kMaxSinglePut;
  // The SigV4 payload hash is computed by the store in the same pass as the MD5 (see
  // net::BodyReader::TakePayloadSha256Check) and checked before anything becomes visible.
  std::optional<std::string> payload_sha256 = c.rq.body->TakePayloadSha256Check();
  o.payload_sha256 = payload_sha256.has_value();
  o.verify = [&](const ObjectInfo& computed) -> Status {
    RETURN_IF_ERROR(VerifyPayloadSha256(payload_sha256, computed.payload_sha256));
    if (expected_len && computed.size != *expected_len) {
      return Error(ErrorCode::kIncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header");
    }
    return VerifyChecksums(cr, c.rq, computed.etag, computed.checksums);
  };
  BodySourceAdapter src(c.rq.body);
  ASSIGN_OR_RETURN(ObjectInfo info, store_->PutObject(c.bucket, c.key, src, o));
  c.rs.headers.Set("ETag", Quote(info.etag));
  if (info.version_id != "null") c.rs.headers.Set("x-amz-version-id", info.version_id);
  SetChecksumHeaders(c.rs, info.checksums);
  c.rs.status = 200;
  return Status::OK();
}

Status S3Service::CopyObject(Ctx& c) {
  RETURN_IF_ERROR(ValidateKey(c.key));
  std::string sb, sk, sv;
  RETURN_IF_ERROR(ParseCopySource(c.rq.headers.Get("x-amz-copy-source"), &sb, &sk, &sv));
  c.call.audit_params["copySource"] = sb + "/" + sk;
  RETURN_IF_ERROR(Authorize(c, sv.empty() ? "s3:GetObject" : "s3:GetObjectVersion", sb, sk, true));
  RETURN_IF_ERROR(Authorize(c, "s3:PutObject", c.bucket, c.key, true));
  std::string directive = c.rq.headers.Get("x-amz-metadata-directive", "COPY");
  if (directive != "COPY" && directive != "REPLACE") {
    return Error(ErrorCode::kInvalidArgument, "Unknown metadata directive.");
  }
  ObjectAttributes replace;
  bool replacing = directive == "REPLACE";
  if (replacing) replace = AttrsFromHeaders(c.rq);
  if (sb == c.bucket && sk == c.key && sv.empty() && !replacing) {
    return Error(ErrorCode::kInvalidRequest,
                 "This copy request is illegal because it is trying to copy an object to itself "
                 "without changing the object's metadata, storage class, website redirect "
                 "location or encryption attributes.");
  }
  // Tagging directive: COPY (default) keeps the source's tags, REPLACE takes x-amz-tagging.
  ASSIGN_OR_RETURN(ObjectInfo src_info, store_->HeadObject(sb, sk, sv));
  if (replacing && c.rq.headers.Get("x-amz-tagging-directive") != "REPLACE") {
    replace.tags = src_info.attrs.tags;
  }
  // Copy-source conditions (x-amz-copy-source-if-*).
  if (auto h = c.rq.headers.Find("x-amz-copy-source-if-match"); h && !EtagMatches(*h, src_info.etag)) {
    return Error(ErrorCode::kPreconditionFailed, "At least one of the pre-conditions you specified did not hold");
  }
  if (auto h = c.rq.headers.Find("x-amz-copy-source-if-none-match"); h && EtagMatches(*h, src_info.etag)) {
    return Error(ErrorCode::kPreconditionFailed, "At least one of the pre-conditions you specified did not hold");
  }
  ASSIGN_OR_RETURN(ObjectInfo info, store_->CopyObject(sb, sk, sv, c.bucket, c.key, replacing ? &replace : nullptr));
  if (!replacing && c.rq.headers.Get("x-amz-tagging-directive") == "REPLACE") {
    ObjectAttributes a = AttrsFromHeaders(c.rq);
    RETURN_IF_ERROR(store_->SetObjectTags(c.bucket, c.key, info.version_id == "null" ? "" : info.version_id, a.tags));
  }
  if (info.version_id != "null") c.rs.headers.Set("x-amz-version-id", info.version_id);
  if (src_info.version_id != "null") c.rs.headers.Set("x-amz-copy-source-version-id", src_info.version_id);
  Xml x("CopyObjectResult");
  x.Elem("LastModified", IsoTime(info.last_modified_ms)).Elem("ETag", Quote(info.etag));
  for (const auto& [name, value] : info.checksums) x.Elem(("Checksum" + name).c_str(), value);
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::GetObject(Ctx& c, bool head) {
  std::string version = c.Param("versionId");
  RETURN_IF_ERROR(Authorize(c, version.empty() ? "s3:GetObject" : "s3:GetObjectVersion", c.bucket,
                            c.key, true));
  GetOptions g;
  g.version_id = version;
  bool by_part = false;
  int part_number = 0;  // > 0: serving this part of a multipart object
  if (c.Has("partNumber")) {
    // GET/HEAD ?partNumber=N: the bytes of part N of a multipart object (a ranged GET over the
    // part's offsets, answered 206 with x-amz-mp-parts-count); part 1 of a simple object is
    // the whole object. A Range header may not be combined with it.
    auto pn = ParseInt64(c.Param("partNumber"));
    if (!pn || *pn < 1 || *pn > 10000) return Error(ErrorCode::kInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive");
    if (c.rq.headers.Find("Range")) {
      return Error(ErrorCode::kInvalidRequest, "Cannot specify both Range header and partNumber query parameter");
    }
    // Beyond the last part: S3's 416 InvalidPartNumber.
    ASSIGN_OR_RETURN(ObjectInfo info, store_->HeadObject(c.bucket, c.key, version));
    if (info.parts_count > 0 && !info.part_sizes.empty()) {
      if (*pn > static_cast<int64_t>(info.part_sizes.size())) {
        return Error(ErrorCode::kInvalidPartNumber, "The requested partnumber is not satisfiable");
      }
      uint64_t first = 0;
      for (int64_t i = 0; i + 1 < *pn; ++i) first += info.part_sizes[i];
      uint64_t size = info.part_sizes[*pn - 1];
      if (size == 0) return Error(ErrorCode::kInvalidPartNumber, "The requested partnumber is not satisfiable");
      g.range_first = first;
      g.range_last = first + size - 1;
      by_part = true;
      part_number = static_cast<int>(*pn);
    } else if (*pn != 1 || info.parts_count > 1) {
      // Multipart objects completed before part sizes were recorded.
      return Error(ErrorCode::kInvalidPartNumber, "The requested partnumber is not satisfiable");
    }
  }
  if (!by_part) {
    std::string range = c.rq.headers.Get("Range");
    ParseRange(range, &g);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> reader, store_->GetObject(c.bucket, c.key, g));
  const ObjectInfo& info = reader->info();
  SetObjectHeaders(c.rs, info);

  // Conditional requests, RFC 7232 §6 precedence as S3 applies it.
  int64_t lm = info.last_modified_ms / 1000;
  const std::string* if_match = c.rq.headers.Find("If-Match");
  const std::string* if_none = c.rq.headers.Find("If-None-Match");
  if (if_match) {
    if (!EtagMatches(*if_match, info.etag)) {
      return Error(ErrorCode::kPreconditionFailed, "At least one of the pre-conditions you specified did not hold");
    }
  } else if (const std::string* ius = c.rq.headers.Find("If-Unmodified-Since")) {
    int64_t t = ParseHttpDate(*ius);
    if (t >= 0 && lm > t) {
      return Error(ErrorCode::kPreconditionFailed, "At least one of the pre-conditions you specified did not hold");
    }
  }
  if (if_none) {
    if (EtagMatches(*if_none, info.etag)) return Error(ErrorCode::kNotModified, "Not Modified");
  } else if (const std::string* ims = c.rq.headers.Find("If-Modified-Since")) {
    int64_t t = ParseHttpDate(*ims);
    if (t >= 0 && lm <= t) return Error(ErrorCode::kNotModified, "Not Modified");
  }

  // response-* overrides (signed requests only in S3; authorisation already passed).
  static const std::pair<const char*, const char*> kOverrides[] = {
      {"response-content-type", "Content-Type"},
      {"response-content-language", "Content-Language"},
      {"response-expires", "Expires"},
      {"response-cache-control", "Cache-Control"},
      {"response-content-disposition", "Content-Disposition"},
      {"response-content-encoding", "Content-Encoding"}};
  for (const auto& [param, header] : kOverrides) {
    if (c.Has(param)) c.rs.headers.Set(header, c.Param(param));
  }
  bool partial = g.range_first || g.suffix_length;
  bool checksum_mode = EqualsIgnoreCase(c.rq.headers.Get("x-amz-checksum-mode"), "ENABLED");
  if (checksum_mode && (!partial || part_number > 0)) {
    // A part of a multipart object carries its own checksums (those its UploadPart computed),
    // which match exactly the bytes served; a ranged GET carries none.
    const std::map<std::string, std::string>* sums = &info.checksums;
    if (part_number > 0) {
      sums = static_cast<size_t>(part_number) <= info.part_checksums.size()
                 ? &info.part_checksums[part_number - 1]
                 : nullptr;
    }
    if (sums) {
      SetChecksumHeaders(c.rs, *sums);
      for (const auto& [name, value] : info.checksums) {
        c.rs.headers.Set("x-amz-checksum-type",
                         value.find('-') == std::string::npos ? "FULL_OBJECT" : "COMPOSITE");
      }
    }
  }
  uint64_t length = reader->length();
  if (partial) {
    c.rs.status = 206;
    c.rs.headers.Set("Content-Range", "bytes " + std::to_string(reader->first()) + "-" +
                                          std::to_string(reader->first() + length - 1) + "/" +
                                          std::to_string(info.size));
  } else {
    c.rs.status = 200;
  }
  c.rs.headers.Set("Content-Length", std::to_string(length));
  if (!head) {
    c.rs.content_length = length;
    c.rs.body_source = std::make_unique<ReaderBody>(std::move(reader));
  }
  return Status::OK();
}

Status S3Service::DeleteObject(Ctx& c) {
  std::string version = c.Param("versionId");
  RETURN_IF_ERROR(Authorize(c, version.empty() ? "s3:DeleteObject" : "s3:DeleteObjectVersion",
                            c.bucket, c.key, true));
  ASSIGN_OR_RETURN(DeleteResult r, store_->DeleteObject(c.bucket, c.key, version));
  if (r.delete_marker) c.rs.headers.Set("x-amz-delete-marker", "true");
  if (!r.version_id.empty() && r.version_id != "null") c.rs.headers.Set("x-amz-version-id", r.version_id);
  c.rs.status = 204;
  return Status::OK();
}

Status S3Service::PutObjectTagging(Ctx& c) {
  std::string version = c.Param("versionId");
  RETURN_IF_ERROR(Authorize(c, version.empty() ? "s3:PutObjectTagging" : "s3:PutObjectVersionTagging",
                            c.bucket, c.key, true));
  ASSIGN_OR_RETURN(auto tags, ParseTagging(c.rq.body));
  if (tags.size() > 10) return Error(ErrorCode::kInvalidTag, "Object tags cannot be greater than 10");
  RETURN_IF_ERROR(store_->SetObjectTags(c.bucket, c.key, version, tags));
  c.rs.status = 200;
  return Status::OK();
}

Status S3Service::GetObjectTagging(Ctx& c) {
  std::string version = c.Param("versionId");
  RETURN_IF_ERROR(Authorize(c, version.empty() ? "s3:GetObjectTagging" : "s3:GetObjectVersionTagging",
                            c.bucket, c.key, true));
  ASSIGN_OR_RETURN(ObjectInfo info, store_->HeadObject(c.bucket, c.key, version));
  if (info.version_id != "null") c.rs.headers.Set("x-amz-version-id", info.version_id);
  net::WriteXml(c.rs, TaggingXml(info.attrs.tags));
  return Status::OK();
}

Status S3Service::DeleteObjectTagging(Ctx& c) {
  std::string version = c.Param("versionId");
  RETURN_IF_ERROR(Authorize(c, version.empty() ? "s3:DeleteObjectTagging" : "s3:DeleteObjectVersionTagging",
                            c.bucket, c.key, true));
  RETURN_IF_ERROR(store_->SetObjectTags(c.bucket, c.key, version, {}));
  c.rs.status = 204;
  return Status::OK();
}

// ---------------- multipart ----------------

Status S3Service::CreateMultipartUpload(Ctx& c) {
  RETURN_IF_ERROR(ValidateKey(c.key));
  RETURN_IF_ERROR(Authorize(c, "s3:PutObject", c.bucket, c.key, true));
  std::vector<ChecksumAlgorithm> algos;
  std::string algo = c.rq.headers.Get("x-amz-checksum-algorithm");
  if (!algo.empty()) {
    auto a = ParseChecksumAlgorithm(algo);
    if (!a) return Error(ErrorCode::kInvalidRequest, "Checksum algorithm " + algo + " is not supported");
    algos.push_back(*a);
    c.rs.headers.Set("x-amz-checksum-algorithm", ChecksumName(*a));
  }
  // x-amz-checksum-type: COMPOSITE (the default) or FULL_OBJECT, which S3 allows for the CRCs
  // only; CRC64NVME has no composite form, so its uploads are FULL_OBJECT (the default for it).
  bool full_object = !algos.empty() && algos[0] == ChecksumAlgorithm::kCrc64Nvme;
  std::string type = c.rq.headers.Get("x-amz-checksum-type");
  if (!type.empty()) {
    full_object = EqualsIgnoreCase(type, "FULL_OBJECT");
    if (!full_object && !EqualsIgnoreCase(type, "COMPOSITE")) {
      return Error(ErrorCode::kInvalidRequest, "Value for x-amz-checksum-type header is invalid.");
    }
    if (algos.empty()) {
      return Error(ErrorCode::kInvalidRequest, "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.");
    }
    if (full_object && !IsCrc(algos[0])) {
      return Error(ErrorCode::kInvalidRequest, std::string("The FULL_OBJECT checksum type cannot be used with the ") +
                                                   ChecksumName(algos[0]) + " checksum algorithm.");
    }
    if (!full_object && algos[0] == ChecksumAlgorithm::kCrc64Nvme) {
      return Error(ErrorCode::kInvalidRequest,
                   "The COMPOSITE checksum type cannot be used with the CRC64NVME checksum algorithm.");
    }
  }
  if (!algos.empty()) c.rs.headers.Set("x-amz-checksum-type", full_object ? "FULL_OBJECT" : "COMPOSITE");
  ASSIGN_OR_RETURN(UploadInfo u, store_->CreateMultipartUpload(c.bucket, c.key, AttrsFromHeaders(c.rq), algos,
                                                               full_object));
  Xml x("InitiateMultipartUploadResult");
  x.Elem("Bucket", c.bucket).Elem("Key", c.key).Elem("UploadId", u.upload_id);
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::UploadPart(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:PutObject", c.bucket, c.key, true));
  auto pn = ParseInt64(c.Param("partNumber"));
  if (!pn) return Error(ErrorCode::kInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive");
  ASSIGN_OR_RETURN(ChecksumRequest cr, ParseChecksumRequest(c.rq));
  ASSIGN_OR_RETURN(UploadInfo upload, store_->GetUpload(c.bucket, c.key, c.Param("uploadId")));
  (void)upload;
  std::optional<uint64_t> expected_len;
  if (const std::string* d = c.rq.headers.Find("x-amz-decoded-content-length")) {
    expected_len = ParseUint64(*d);
  } else if (!IsAwsChunked(c.rq)) {
    expected_len = c.rq.body->content_length();
  }
  if (expected_len && *expected_len > kMaxSinglePut) {
    return Error(ErrorCode::kEntityTooLarge, "Your proposed upload exceeds the maximum allowed size");
  }
  BodySourceAdapter src(c.rq.body);
  std::optional<std::string> payload_sha256 = c.rq.body->TakePayloadSha256Check();
  ASSIGN_OR_RETURN(PartInfo part, store_->UploadPart(
      c.bucket, c.key, c.Param("uploadId"), static_cast<int>(*pn), src, cr.algorithms,
      [&](const PartInfo& p) -> Status {
        RETURN_IF_ERROR(VerifyPayloadSha256(payload_sha256, p.payload_sha256));
        if (expected_len && p.size != *expected_len) {
          return Error(ErrorCode::kIncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header");
        }
        // The upload computes its own algorithm; a part may carry others: check those too.
        std::map<std::string, std::string> sums = p.checksums;
        return VerifyChecksums(cr, c.rq, p.etag, sums);
      },
      payload_sha256.has_value()));
  c.rs.headers.Set("ETag", Quote(part.etag));
  SetChecksumHeaders(c.rs, part.checksums);
  c.rs.status = 200;
  return Status::OK();
}

Status S3Service::UploadPartCopy(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:PutObject", c.bucket, c.key, true));
  std::string sb, sk, sv;
  RETURN_IF_ERROR(ParseCopySource(c.rq.headers.Get("x-amz-copy-source"), &sb, &sk, &sv));
  RETURN_IF_ERROR(Authorize(c, sv.empty() ? "s3:GetObject" : "s3:GetObjectVersion", sb, sk, true));
  auto pn = ParseInt64(c.Param("partNumber"));
  if (!pn) return Error(ErrorCode::kInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive");
  GetOptions g;
  g.version_id = sv;
  if (const std::string* r = c.rq.headers.Find("x-amz-copy-source-range")) {
    ParseRange(*r, &g);
    if (!g.range_first || !g.range_last) {
      return Error(ErrorCode::kInvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last");
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> reader, store_->GetObject(sb, sk, g));
  if (g.range_last && *g.range_last >= reader->info().size) {
    return Error(ErrorCode::kInvalidRange, "The requested range is not satisfiable");
  }
  ObjectReaderSource src(reader.get());
  ASSIGN_OR_RETURN(PartInfo part, store_->UploadPart(c.bucket, c.key, c.Param("uploadId"),
                                                     static_cast<int>(*pn), src, {}, nullptr));
  Xml x("CopyPartResult");
  x.Elem("LastModified", IsoTime(part.last_modified_ms)).Elem("ETag", Quote(part.etag));
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::CompleteMultipartUpload(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:PutObject", c.bucket, c.key, true));
  ASSIGN_OR_RETURN(pugi::xml_document doc, ParseXml(c.rq.body));
  pugi::xml_node root = doc.child("CompleteMultipartUpload");
  if (!root) return Error(ErrorCode::kMalformedXML, "expected a <CompleteMultipartUpload> document");
  std::vector<CompletePart> parts;
  for (pugi::xml_node p : root.children("Part")) {
    auto n = ParseInt64(ChildText(p, "PartNumber"));
    if (!n) return Error(ErrorCode::kMalformedXML, "PartNumber must be an integer");
    parts.push_back({static_cast<int>(*n), ChildText(p, "ETag")});
  }
  // The whole object's checksum may come with the request (x-amz-checksum-crc32 … of the
  // FULL_OBJECT value, or the COMPOSITE "…-N"): checked before the object becomes visible.
  auto verify = [&](const ObjectInfo& computed) -> Status {
    for (ChecksumAlgorithm a : kAllAlgorithms) {
      const std::string* sent = c.rq.headers.Find(std::string("x-amz-checksum-") + ToLower(ChecksumName(a)));
      if (!sent) continue;
      auto it = computed.checksums.find(ChecksumName(a));
      if (it == computed.checksums.end() || std::string(Trim(*sent)) != it->second) {
        return Error(ErrorCode::kBadDigest, std::string("The ") + ChecksumName(a) +
                                                " you specified did not match the calculated checksum.");
      }
    }
    return Status::OK();
  };
  ASSIGN_OR_RETURN(ObjectInfo info, store_->CompleteMultipartUpload(c.bucket, c.key, c.Param("uploadId"), parts,
                                                                    verify));
  if (info.version_id != "null") c.rs.headers.Set("x-amz-version-id", info.version_id);
  Xml x("CompleteMultipartUploadResult");
  std::string host = c.rq.headers.Get("Host");
  x.Elem("Location", std::string(c.rq.secure ? "https://" : "http://") + host + "/" + c.bucket + "/" +
                         UriEncode(c.key, false));
  x.Elem("Bucket", c.bucket).Elem("Key", c.key).Elem("ETag", Quote(info.etag));
  for (const auto& [name, value] : info.checksums) x.Elem(("Checksum" + name).c_str(), value);
  if (!info.checksums.empty()) {
    bool composite = info.checksums.begin()->second.find('-') != std::string::npos;
    x.Elem("ChecksumType", composite ? "COMPOSITE" : "FULL_OBJECT");
    c.rs.headers.Set("x-amz-checksum-type", composite ? "COMPOSITE" : "FULL_OBJECT");
  }
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

Status S3Service::AbortMultipartUpload(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:AbortMultipartUpload", c.bucket, c.key, true));
  RETURN_IF_ERROR(store_->AbortMultipartUpload(c.bucket, c.key, c.Param("uploadId")));
  c.rs.status = 204;
  return Status::OK();
}

Status S3Service::ListParts(Ctx& c) {
  RETURN_IF_ERROR(Authorize(c, "s3:ListMultipartUploadParts", c.bucket, c.key, true));
  ASSIGN_OR_RETURN(std::vector<PartInfo> parts, store_->ListParts(c.bucket, c.key, c.Param("uploadId")));
  int marker = 0;
  if (c.Has("part-number-marker")) marker = static_cast<int>(ParseInt64(c.Param("part-number-marker")).value_or(0));
  int max_parts = 1000;
  if (c.Has("max-parts")) max_parts = static_cast<int>(std::clamp<int64_t>(ParseInt64(c.Param("max-parts")).value_or(1000), 0, 1000));
  Xml x("ListPartsResult");
  x.Elem("Bucket", c.bucket).Elem("Key", c.key).Elem("UploadId", c.Param("uploadId"));
  x.Elem("PartNumberMarker", static_cast<uint64_t>(marker));
  std::vector<const PartInfo*> page;
  bool truncated = false;
  for (const auto& p : parts) {
    if (p.part_number <= marker) continue;
    if (static_cast<int>(page.size()) == max_parts) {
      truncated = true;
      break;
    }
    page.push_back(&p);
  }
  if (!page.empty()) x.Elem("NextPartNumberMarker", static_cast<uint64_t>(page.back()->part_number));
  x.Elem("MaxParts", static_cast<uint64_t>(max_parts)).Bool("IsTruncated", truncated);
  x.Open("Initiator").Elem("ID", options_.account_id).Elem("DisplayName", "tarn").Close("Initiator");
  x.Open("Owner").Elem("ID", options_.account_id).Elem("DisplayName", "tarn").Close("Owner");
  x.Elem("StorageClass", "STANDARD");
  for (const PartInfo* p : page) {
    x.Open("Part").Elem("PartNumber", static_cast<uint64_t>(p->part_number));
    x.Elem("LastModified", IsoTime(p->last_modified_ms)).Elem("ETag", Quote(p->etag)).Elem("Size", p->size);
    for (const auto& [name, value] : p->checksums) x.Elem(("Checksum" + name).c_str(), value);
    x.Close("Part");
  }
  net::WriteXml(c.rs, x.Done());
  return Status::OK();
}

}  // namespace tarn::storage::s3
