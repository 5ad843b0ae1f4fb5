// Status and Result<T>: the return type of every fallible call in Tarn.
//
// A Status is OK or carries an ErrorCode (core/error_codes.def) and a human message. Edges
// (HTTP, pgwire, MQTT) turn the code into the client's error shape through GetErrorInfo();
// nothing else builds error bodies. Both types are cheap to move and not thread-safe to
// mutate concurrently (like std::string).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/error_codes.h"

namespace tarn {

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const ErrorInfo& info() const { return GetErrorInfo(code_); }

  // "Code: message", for logs and tests.
  std::string ToString() const;

  // Adds context in front of the message: "opening x: <message>".
  Status WithContext(std::string_view context) const;

  void IgnoreError() const {}

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status Error(ErrorCode code, std::string message) { return Status(code, std::move(message)); }

// Result<T>: a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "Result built from an OK status");
    if (status_.ok()) status_ = Status(ErrorCode::kInternal, "Result built from OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  T value_or(T other) const& { return ok() ? *value_ : std::move(other); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace tarn

#define TARN_CONCAT_INNER_(a, b) a##b
#define TARN_CONCAT_(a, b) TARN_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): expr is a Status or Result<T>; returns its Status when not OK.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    auto&& _tarn_st = (expr);                                   \
    if (!_tarn_st.ok()) return ::tarn::internal::ToStatus(_tarn_st); \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): expr is a Result<T>; on error returns its Status, else assigns.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(TARN_CONCAT_(_tarn_res_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

namespace tarn::internal {
inline const Status& ToStatus(const Status& s) { return s; }
template <typename T>
const Status& ToStatus(const Result<T>& r) { return r.status(); }
}  // namespace tarn::internal
