"""Back-pressure: when a delivery stream's write-ahead log reaches its quota (tarn.yaml
`streams.wal_quota_mb`) with records not yet delivered, producers get ServiceUnavailableException —
per record in PutRecordBatch, for the call in PutRecord — instead of the server buffering without
bound; nothing acknowledged is lost, and a restart delivers it all."""
import glob
import json
import os

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from harness import Lake

ROLE = "arn:aws:iam::123456789012:role/firehose"


def test_quota_full_gives_service_unavailable_and_keeps_acknowledged_records():
    lake = Lake(config="streams:\n  wal_quota_mb: 1\n  wal_segment_mb: 1\n")
    lake.start()
    try:
        fh = lake.boto3_client("firehose", config=Config(retries={"max_attempts": 1}))
        # A long interval and a large size: nothing is delivered while the log fills.
        fh.create_delivery_stream(
            DeliveryStreamName="bp", DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::landing",
                "BufferingHints": {"IntervalInSeconds": 900, "SizeInMBs": 128},
                "ProcessingConfiguration": {"Enabled": True, "Processors": [
                    {"Type": "AppendDelimiterToRecord"}]}})
        acked, refused = [], 0
        n = 0
        for _ in range(40):  # 40 × 100 × ~1 KiB ≈ 4 MiB offered against a 1 MiB quota
            recs = []
            for _ in range(100):
                recs.append({"Data": json.dumps({"n": n, "pad": "x" * 1000}).encode()})
                n += 1
            r = fh.put_record_batch(DeliveryStreamName="bp", Records=recs)
            for rec, resp in zip(recs, r["RequestResponses"]):
                if "RecordId" in resp:
                    acked.append(json.loads(rec["Data"])["n"])
                else:
                    assert resp["ErrorCode"] == "ServiceUnavailableException", resp
                    refused += 1
        assert refused > 0, "the quota never pushed back"
        assert 500 <= len(acked) <= 1100, len(acked)
        with pytest.raises(ClientError) as e:
            fh.put_record(DeliveryStreamName="bp", Record={"Data": b"y" * 500000})
        assert e.value.response["Error"]["Code"] == "ServiceUnavailableException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

        # kill -9 with the log full, restart, stop gracefully: everything acknowledged lands.
        lake.kill()
        lake.start()
        assert lake.stop() == 0
        landed = []
        for p in glob.glob(os.path.join(lake.data_dir, "objects", "landing", "iot", "bp", "**",
                                        "bp-*"), recursive=True):
            with open(p) as f:
                landed += [json.loads(x)["n"] for x in f.read().splitlines()]
        assert sorted(landed) == sorted(acked)
    finally:
        lake.cleanup()
