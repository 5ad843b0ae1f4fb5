// Stable error codes and how each is shown at every edge (HTTP/AWS, pgwire, MQTT).
// The table lives in error_codes.def; see the comment there.
#pragma once

#include <cstdint>
#include <string_view>

namespace tarn {

enum class ErrorCode : uint16_t {
  kOk = 0,
#define X(name, http, aws, sqlstate, mqtt) k##name,
#include "core/error_codes.def"
#undef X
};

struct ErrorInfo {
  std::string_view name;      // "NoSuchKey"-like stable name of the enumerator
  int http_status;            // HTTP status at the AWS API edge
  std::string_view aws_code;  // <Code> / __type / query Code
  std::string_view sqlstate;  // PostgreSQL SQLSTATE
  uint8_t mqtt_reason;        // MQTT 5 reason code
};

// Never fails: unknown values map to Internal's row.
const ErrorInfo& GetErrorInfo(ErrorCode code);

}  // namespace tarn
