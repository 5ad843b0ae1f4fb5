// An injectable clock, so time-dependent logic (buffering intervals, expiry, alarms) can be
// tested without sleeping. SystemClock is thread-safe; ManualClock is thread-safe too.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace tarn {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in microseconds since the Unix epoch.
  virtual int64_t NowMicros() const = 0;
  // Monotonic time in nanoseconds, for durations and deadlines.
  virtual int64_t MonotonicNanos() const = 0;

  int64_t NowSeconds() const { return NowMicros() / 1000000; }
  int64_t NowMillis() const { return NowMicros() / 1000; }

  // The process-wide real clock.
  static Clock* Real();
};

class SystemClock final : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicNanos() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that only moves when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t now_micros = 1'700'000'000'000'000) : now_(now_micros) {}
  int64_t NowMicros() const override { return now_.load(); }
  int64_t MonotonicNanos() const override { return now_.load() * 1000; }
  void Advance(int64_t micros) { now_ += micros; }
  void Set(int64_t micros) { now_ = micros; }

 private:
  std::atomic<int64_t> now_;
};

// ISO 8601 UTC with seconds: 2026-11-25T12:00:00Z
std::string FormatIso8601(int64_t unix_seconds);
// ISO 8601 UTC with milliseconds: 2026-11-25T12:00:00.123Z
std::string FormatIso8601Millis(int64_t unix_micros);
// RFC 7231 HTTP date: Wed, 25 Nov 2026 12:00:00 GMT
std::string FormatHttpDate(int64_t unix_seconds);
// Parses an HTTP date (RFC 7231 IMF-fixdate); returns -1 when malformed.
int64_t ParseHttpDate(const std::string& s);
// Parses ISO 8601 basic (20261125T120000Z) or extended (2026-11-25T12:00:00Z, optional
// fraction); returns -1 when malformed.
int64_t ParseIso8601(const std::string& s);

}  // namespace tarn
