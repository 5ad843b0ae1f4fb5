// The in-process way into a delivery stream, for modules that are not HTTP clients (the MQTT
// rules engine's `firehose` action): append a record, learn when it is durable.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tarn::streams {

// Which device message a record comes from, so that a device's resend of a message whose
// record is already durable is recognised and not appended again (docs/streams.md, "Exactly
// once from devices"). `slot` tells apart the records one message produces (rule, action,
// element of a batchMode array).
struct RecordOrigin {
  std::string_view client_id;
  uint16_t packet_id = 0;     // the MQTT PUBLISH's packet identifier (QoS 1/2)
  bool dup = false;           // the PUBLISH carried DUP=1: it may be a resend
  uint64_t payload_hash = 0;  // StableHash64 of the message's topic and payload as published
  uint64_t slot = 0;
};

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Appends `data` as one record of delivery stream `stream`. `done` runs exactly once: with
  // OK after the record's write-ahead-log fsync (so an MQTT QoS 1 PUBACK sent from `done` is
  // never ahead of durability), or with the reason it was not taken — kFirehoseResourceNotFound
  // (no such stream), kFirehoseServiceUnavailable (WAL quota full: back off and retry),
  // kFirehoseInvalidArgument (record over 1000 KiB). `done` may run on the caller's thread
  // before Append returns, or later on the stream's WAL writer thread; it must be short.
  //
  // With an `origin` (copied before Append returns), the record is stored with it; and when
  // `origin->dup` is set and the stream already holds a durable record of the same origin
  // (client id, packet id, slot) with the same payload hash, recently enough, nothing is
  // appended and `done` gets OK: the device resent a message whose acknowledgement it lost.
  virtual void Append(const std::string& stream, std::string data,
                      std::function<void(const Status&)> done,
                      const RecordOrigin* origin = nullptr) = 0;

  // Whether `data` would fail stream `stream`'s record format conversion (JSON → Parquet) as
  // its schema is now, checked with the conversion's own code, without appending anything: OK
  // when it would convert, when the stream converts nothing, or when there is no such stream or
  // no schema yet; otherwise kFirehoseInvalidArgument with "<errorCode>: <reason>" (errorCode
  // DataFormatConversion.MalformedData or .InvalidValue, as its error output will say). The
  // rules engine uses it to tell a rule's error action about such records (docs/iot.md).
  virtual Status CheckConversion(const std::string& stream, std::string_view data) = 0;
};

}  // namespace tarn::streams
