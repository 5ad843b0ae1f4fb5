// A compiled JQ program (libjq) for Firehose dynamic partitioning's MetadataExtraction
// processor: `{device: .device, site: .meta.site}` run over a JSON record yields the partition
// keys. Only the object-producing shape is used: the first output must be an object whose
// values are strings, numbers or booleans.
//
// Thread-safety: thread-safe (libjq's state is not, so runs are serialised).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tarn::streams {

class JqQuery {
 public:
  // kFirehoseInvalidArgument with libjq's message when the program does not compile.
  static Result<std::unique_ptr<JqQuery>> Compile(const std::string& program);
  ~JqQuery();

  // Runs over one JSON document; kInvalidArgument when it is not JSON, the program fails, the
  // output is not an object, or a value is null / not a scalar.
  Result<std::map<std::string, std::string>> Extract(std::string_view json);

 private:
  JqQuery() = default;
  std::mutex mu_;
  void* state_ = nullptr;  // jq_state*, guarded by mu_
  std::string error_;      // guarded by mu_; last message from libjq's error callback
};

}  // namespace tarn::streams
