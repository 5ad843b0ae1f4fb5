// A compiled JQ program (libjq) for Firehose dynamic partitioning's MetadataExtraction
// processor: `{device: .device, site: .meta.site}` run over a JSON record yields the partition
// keys. Only the object-producing shape is used: the first output must be an object whose
// values are strings, numbers or booleans.
//
// The shape Firehose users write most — an object of paths, optionally divided, floored and
// formatted with strftime (`{day: (.ts / 1000 | floor | strftime("%Y-%m-%d")), device: .device}`)
// — is compiled to a native program that reads the record with simdjson, without libjq and its
// lock, and remembers each strftime's text for the last few whole seconds it formatted (records
// of the same second repeat it thousands of times). It answers only when every step meets the
// types it expects; anything else (not JSON, a
// missing key, a string where a number was expected, …) goes to libjq, so results and error
// messages are libjq's in every case (tested against it, jq_test.cc).
//
// Thread-safety: thread-safe (libjq's state is not, so its runs are serialised; the native
// program runs concurrently).
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
  // `native` = false keeps every record on libjq (tests compare the two).
  static Result<std::unique_ptr<JqQuery>> Compile(const std::string& program, bool native = true);
  ~JqQuery();

  // True when the program runs natively (see above).
  bool native() const { return native_ != nullptr; }

  // Runs over one JSON document; kInvalidArgument when it is not JSON, the program fails, the
  // output is not an object, or a value is null / not a scalar.
  Result<std::map<std::string, std::string>> Extract(std::string_view json);
  // The same into `*keys`, which is replaced (its nodes and strings are reused: a native program
  // run record after record allocates nothing). `readable_after`: bytes that may be read past
  // the end of `json` (a std::string's capacity - size); with at least kPadding the record is
  // parsed where it is, otherwise copied into the parser's padded buffer first.
  Status ExtractInto(std::string_view json, size_t readable_after,
                     std::map<std::string, std::string>* keys);
  // simdjson's SIMDJSON_PADDING: a record with this much spare capacity is parsed without a copy.
  static constexpr size_t kPadding = 64;

  struct Native;  // jq.cc

 private:
  JqQuery() = default;
  Status ExtractWithLibjq(std::string_view json, std::map<std::string, std::string>* keys);
  std::unique_ptr<Native> native_;
  std::mutex mu_;
  void* state_ = nullptr;  // jq_state*, guarded by mu_
  std::string error_;      // guarded by mu_; last message from libjq's error callback
};

}  // namespace tarn::streams
