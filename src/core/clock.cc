#include "core/clock.h"

#include <cstdio>
#include <cstring>
#include <ctime>

namespace tarn {

Clock* Clock::Real() {
  static SystemClock clock;
  return &clock;
}

namespace {
std::tm ToTm(int64_t secs) {
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}
constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
}  // namespace

std::string FormatIso8601(int64_t unix_seconds) {
  std::tm tm = ToTm(unix_seconds);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string FormatIso8601Millis(int64_t unix_micros) {
  int64_t secs = unix_micros / 1000000;
  int millis = static_cast<int>((unix_micros % 1000000) / 1000);
  std::tm tm = ToTm(secs);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

std::string FormatHttpDate(int64_t unix_seconds) {
  std::tm tm = ToTm(unix_seconds);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

int64_t ParseHttpDate(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return -1;
  return static_cast<int64_t>(timegm(&tm));
}

int64_t ParseIso8601(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm);
  if (end != nullptr && *end == '\0') return static_cast<int64_t>(timegm(&tm));
  tm = {};
  end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return -1;
  if (*end == '.') {
    ++end;
    while (*end >= '0' && *end <= '9') ++end;
  }
  if (*end != 'Z' || end[1] != '\0') {
    if (!(std::strcmp(end, "+00:00") == 0)) return -1;
  }
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace tarn
