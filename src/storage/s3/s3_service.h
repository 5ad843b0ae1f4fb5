// The S3 REST-XML API (https://docs.aws.amazon.com/AmazonS3/latest/API/) on top of an
// ObjectStore: buckets, objects, listings, versions, tagging, bucket policies, multipart
// uploads and additional checksums. Path-style (`/bucket/key`) and virtual-host-style
// (`bucket.localhost:9000/key`) addressing.
//
// Every operation asks the Authorizer with the S3 action name ("s3:GetObject") and the ARN
// ("arn:aws:s3:::bucket/key"), with the bucket policy as the resource policy, and obeys.
// Errors are returned as Status codes (core/error_codes.def); the router writes the S3 XML.
//
// Thread-safety: Handle() is thread-safe.
#pragma once

#include <string>
#include <vector>

#include "net/aws_api.h"
#include "security/authz.h"
#include "storage/object_store.h"

namespace tarn::storage::s3 {

struct S3Options {
  std::string region = "us-east-1";
  std::string account_id;
  // Host names under which `<bucket>.<domain>` is virtual-host-style addressing.
  std::vector<std::string> virtual_host_domains = {"localhost"};
  // Decode aws-chunked framing of anonymous requests here (the SigV4 authenticator decodes
  // signed ones before the service sees them; with no authenticator every request is
  // anonymous).
  bool decode_aws_chunked = true;
};

class S3Service final : public net::ApiService {
 public:
  S3Service(ObjectStore* store, const security::Authorizer* authorizer, S3Options options);
  Status Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) override;

 private:
  struct Ctx;
  Status Dispatch(Ctx& c);
  Status Authorize(Ctx& c, const std::string& action, const std::string& bucket,
                   const std::string& key, bool object_level,
                   std::map<std::string, std::vector<std::string>> extra = {});

  // Service and buckets.
  Status ListBuckets(Ctx& c);
  Status CreateBucket(Ctx& c);
  Status DeleteBucket(Ctx& c);
  Status HeadBucket(Ctx& c);
  Status GetBucketLocation(Ctx& c);
  Status PutBucketVersioning(Ctx& c);
  Status GetBucketVersioning(Ctx& c);
  Status PutBucketTagging(Ctx& c);
  Status GetBucketTagging(Ctx& c);
  Status DeleteBucketTagging(Ctx& c);
  Status PutBucketPolicy(Ctx& c);
  Status GetBucketPolicy(Ctx& c);
  Status DeleteBucketPolicy(Ctx& c);
  Status ListObjects(Ctx& c, bool v2);
  Status ListObjectVersions(Ctx& c);
  Status ListMultipartUploads(Ctx& c);
  Status DeleteObjects(Ctx& c);

  // Objects.
  Status PutObject(Ctx& c);
  Status CopyObject(Ctx& c);
  Status GetObject(Ctx& c, bool head);
  Status DeleteObject(Ctx& c);
  Status PutObjectTagging(Ctx& c);
  Status GetObjectTagging(Ctx& c);
  Status DeleteObjectTagging(Ctx& c);
  Status CreateMultipartUpload(Ctx& c);
  Status UploadPart(Ctx& c);
  Status UploadPartCopy(Ctx& c);
  Status CompleteMultipartUpload(Ctx& c);
  Status AbortMultipartUpload(Ctx& c);
  Status ListParts(Ctx& c);

  ObjectStore* store_;
  const security::Authorizer* authorizer_;
  S3Options options_;
};

}  // namespace tarn::storage::s3
