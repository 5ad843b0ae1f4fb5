// The in-process way into a delivery stream, for modules that are not HTTP clients (the MQTT
// rules engine's `firehose` action): append a record, learn when it is durable.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"

namespace tarn::streams {

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Appends `data` as one record of delivery stream `stream`. `done` runs exactly once: with
  // OK after the record's write-ahead-log fsync (so an MQTT QoS 1 PUBACK sent from `done` is
  // never ahead of durability), or with the reason it was not taken — kFirehoseResourceNotFound
  // (no such stream), kFirehoseServiceUnavailable (WAL quota full: back off and retry),
  // kFirehoseInvalidArgument (record over 1000 KiB). `done` may run on the caller's thread
  // before Append returns, or later on the stream's WAL writer thread; it must be short.
  virtual void Append(const std::string& stream, std::string data,
                      std::function<void(const Status&)> done) = 0;
};

}  // namespace tarn::streams
