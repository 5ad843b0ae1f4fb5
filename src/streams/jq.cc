#include "streams/jq.h"

#include <cmath>
#include <cstdio>

extern "C" {
#include <jq.h>
#include <jv.h>
}

namespace tarn::streams {

namespace {

void OnJqError(void* data, jv msg) {
  auto* out = static_cast<std::string*>(data);
  if (jv_get_kind(msg) == JV_KIND_STRING) {
    *out = jv_string_value(msg);
  } else {
    jv s = jv_dump_string(jv_copy(msg), 0);
    *out = jv_string_value(s);
    jv_free(s);
  }
  jv_free(msg);
}

std::string Message(jv invalid) {
  jv msg = jv_invalid_get_msg(invalid);  // consumes `invalid`
  std::string out = "error";
  if (jv_get_kind(msg) == JV_KIND_STRING) out = jv_string_value(msg);
  jv_free(msg);
  return out;
}

}  // namespace

Result<std::unique_ptr<JqQuery>> JqQuery::Compile(const std::string& program) {
  std::unique_ptr<JqQuery> q(new JqQuery());
  jq_state* jq = jq_init();
  if (!jq) return Error(ErrorCode::kInternal, "jq_init failed");
  q->state_ = jq;
  jq_set_error_cb(jq, OnJqError, &q->error_);
  if (!jq_compile(jq, program.c_str())) {
    return Error(ErrorCode::kFirehoseInvalidArgument,
                 "MetadataExtractionQuery '" + program + "' does not compile: " +
                     (q->error_.empty() ? "syntax error" : q->error_));
  }
  return q;
}

JqQuery::~JqQuery() {
  if (state_) {
    jq_state* jq = static_cast<jq_state*>(state_);
    jq_teardown(&jq);
  }
}

Result<std::map<std::string, std::string>> JqQuery::Extract(std::string_view json) {
  jv input = jv_parse_sized(json.data(), int(json.size()));
  if (!jv_is_valid(input)) {
    return Error(ErrorCode::kInvalidArgument, "record is not JSON: " + Message(input));
  }
  std::lock_guard<std::mutex> l(mu_);
  jq_state* jq = static_cast<jq_state*>(state_);
  error_.clear();
  jq_start(jq, input, 0);
  jv out = jq_next(jq);
  if (!jv_is_valid(out)) {
    std::string why = jv_invalid_has_msg(jv_copy(out)) ? Message(out) : "no output";
    if (why == "no output") jv_free(out);
    return Error(ErrorCode::kInvalidArgument, "MetadataExtractionQuery failed: " + why);
  }
  // Drain the rest so the state is ready for the next record.
  for (jv more = jq_next(jq); jv_is_valid(more); more = jq_next(jq)) jv_free(more);
  if (jv_get_kind(out) != JV_KIND_OBJECT) {
    jv_free(out);
    return Error(ErrorCode::kInvalidArgument, "MetadataExtractionQuery must produce an object");
  }
  std::map<std::string, std::string> keys;
  Status st;
  for (int it = jv_object_iter(out); jv_object_iter_valid(out, it); it = jv_object_iter_next(out, it)) {
    jv k = jv_object_iter_key(out, it);
    jv v = jv_object_iter_value(out, it);
    std::string key = jv_string_value(k);
    switch (jv_get_kind(v)) {
      case JV_KIND_STRING: keys[key] = jv_string_value(v); break;
      case JV_KIND_TRUE: keys[key] = "true"; break;
      case JV_KIND_FALSE: keys[key] = "false"; break;
      case JV_KIND_NUMBER: {
        double d = jv_number_value(v);
        char buf[64];
        if (std::floor(d) == d && std::fabs(d) < 1e15) {
          std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(d));
        } else {
          std::snprintf(buf, sizeof(buf), "%.17g", d);
        }
        keys[key] = buf;
        break;
      }
      default:
        if (st.ok()) {
          st = Error(ErrorCode::kInvalidArgument,
                     "partition key '" + key + "' is null or not a scalar in the record");
        }
    }
    jv_free(k);
    jv_free(v);
  }
  jv_free(out);
  if (!st.ok()) return st;
  return keys;
}

}  // namespace tarn::streams
