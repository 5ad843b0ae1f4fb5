// Glue / EventBridge schedule expressions: `cron(Minutes Hours Day-of-month Month Day-of-week
// Year)` in UTC (AWS Glue Developer Guide, "Time-based schedules for jobs and crawlers").
// Fields take `*`, lists `a,b`, ranges `a-b`, steps `a/n` and `a-b/n`, month names JAN–DEC and
// weekday names SUN–SAT (1–7, Sunday = 1). One of day-of-month and day-of-week must be `?`.
// `L`, `W` and `#` are rejected as not supported.
//
// Thread-safety: a parsed CronSchedule is immutable.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace tarn::catalog {

class CronSchedule {
 public:
  // Parses "cron(…)"; errors are InvalidInput with the offending field.
  static Result<CronSchedule> Parse(const std::string& expression);

  // The first fire time strictly after `after_unix_seconds` (whole minutes), or -1 when none
  // falls within the next five years.
  int64_t Next(int64_t after_unix_seconds) const;

 private:
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1..31
  std::bitset<13> months_;   // 1..12
  std::bitset<8> weekdays_;  // 1..7, Sunday = 1
  bool any_day_of_month_ = false;  // '?' or '*'
  bool any_weekday_ = false;
  std::bitset<200> years_;   // 1970 + i
  bool any_year_ = true;
};

}  // namespace tarn::catalog
