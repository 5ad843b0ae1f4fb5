#include "core/status.h"

namespace tarn {

namespace {
constexpr ErrorInfo kOkInfo{"Ok", 200, "", "00000", 0x00};
constexpr ErrorInfo kInfos[] = {
#define X(name, http, aws, sqlstate, mqtt) {#name, http, aws, sqlstate, mqtt},
#include "core/error_codes.def"
#undef X
};
constexpr size_t kNumInfos = sizeof(kInfos) / sizeof(kInfos[0]);
}  // namespace

const ErrorInfo& GetErrorInfo(ErrorCode code) {
  auto i = static_cast<size_t>(code);
  if (i == 0) return kOkInfo;
  if (i - 1 < kNumInfos) return kInfos[i - 1];
  return kInfos[0];  // Internal
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(info().name);
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

}  // namespace tarn
