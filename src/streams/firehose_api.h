// The Kinesis Data Firehose JSON 1.1 API (X-Amz-Target: Firehose_20150804.<Operation>) over the
// StreamService, so that `aws firehose …` and boto3 work unchanged:
//
//   CreateDeliveryStream, DescribeDeliveryStream, ListDeliveryStreams, DeleteDeliveryStream,
//   UpdateDestination, PutRecord, PutRecordBatch, TagDeliveryStream, UntagDeliveryStream,
//   ListTagsForDeliveryStream; Start/StopDeliveryStreamEncryption answer InvalidArgumentException
//   (no KMS yet).
//
// Every call is authorised as firehose:<Operation> on
// arn:aws:firehose:<region>:<account>:deliverystream/<name> (ListDeliveryStreams on "*").
// PutRecord / PutRecordBatch answer only after the records' WAL fsync. A null Authorizer allows
// everything (used only until the lake installs one).
//
// Thread-safety: Handle() is thread-safe.
#pragma once

#include <string>

#include "net/aws_api.h"

namespace tarn::security {
class Authorizer;
}

namespace tarn::streams {

class StreamService;

class FirehoseApi final : public net::ApiService {
 public:
  FirehoseApi(StreamService* service, const security::Authorizer* authz);
  Status Handle(net::ApiCall& call, net::HttpRequest& request, net::HttpResponse& response) override;

 private:
  StreamService* service_;
  const security::Authorizer* authz_;
};

}  // namespace tarn::streams
