#include "catalog/cron.h"

#include <ctime>
#include <vector>

#include "core/strings.h"

namespace tarn::catalog {

namespace {

int NameValue(const std::string& s, bool month) {
  static const char* kMonths[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
  static const char* kDays[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
  std::string u;
  for (char c : s) u += char(std::toupper(static_cast<unsigned char>(c)));
  if (month) {
    for (int i = 0; i < 12; ++i) if (u == kMonths[i]) return i + 1;
  } else {
    for (int i = 0; i < 7; ++i) if (u == kDays[i]) return i + 1;
  }
  auto v = ParseInt64(s);
  return v ? int(*v) : -1;
}

// Sets bits lo..hi of `field` from one cron field; `any` reports '*' or '?'.
template <size_t N>
Status ParseField(const std::string& text, int lo, int hi, bool names_month, bool names_day,
                  const char* what, std::bitset<N>* field, bool* any, int offset = 0) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidInput,
                 std::string("Invalid schedule expression: ") + what + " field '" + text + "' " + why);
  };
  if (text == "*" || text == "?") {
    if (any) *any = true;
    for (int v = lo; v <= hi; ++v) field->set(size_t(v - offset));
    return Status::OK();
  }
  if (text.find('#') != std::string::npos || text == "L" || text == "LW" ||
      (!names_month && !names_day && text.find_first_of("LW") != std::string::npos) ||
      (names_day && EndsWith(text, "L"))) {
    return bad("uses L, W or #, which are not supported");
  }
  for (const std::string& part : Split(text, ',')) {
    std::string range = part;
    int step = 1;
    size_t slash = part.find('/');
    if (slash != std::string::npos) {
      auto s = ParseInt64(part.substr(slash + 1));
      if (!s || *s <= 0) return bad("has a bad step");
      step = int(*s);
      range = part.substr(0, slash);
    }
    int a, b;
    if (range == "*") {
      a = lo;
      b = hi;
    } else {
      size_t dash = range.find('-');
      a = NameValue(range.substr(0, dash), names_month);
      if (!names_month && !names_day) {
        auto v = ParseInt64(range.substr(0, dash));
        a = v ? int(*v) : -1;
      }
      if (dash == std::string::npos) {
        b = slash != std::string::npos ? hi : a;
      } else {
        b = NameValue(range.substr(dash + 1), names_month);
        if (!names_month && !names_day) {
          auto v = ParseInt64(range.substr(dash + 1));
          b = v ? int(*v) : -1;
        }
      }
    }
    if (a < lo || a > hi || b < lo || b > hi || a > b) return bad("is out of range");
    for (int v = a; v <= b; v += step) field->set(size_t(v - offset));
  }
  return Status::OK();
}

}  // namespace

Result<CronSchedule> CronSchedule::Parse(const std::string& expression) {
  std::string e(Trim(expression));
  if (!StartsWith(e, "cron(") || !EndsWith(e, ")")) {
    return Error(ErrorCode::kInvalidInput,
                 "Invalid schedule expression '" + expression + "': expected cron(…)");
  }
  std::vector<std::string> fields;
  for (const std::string& f : Split(e.substr(5, e.size() - 6), ' ')) {
    if (!f.empty()) fields.push_back(f);
  }
  if (fields.size() != 6) {
    return Error(ErrorCode::kInvalidInput,
                 "Invalid schedule expression '" + expression + "': cron needs 6 fields");
  }
  CronSchedule s;
  RETURN_IF_ERROR(ParseField(fields[0], 0, 59, false, false, "minutes", &s.minutes_, nullptr));
  RETURN_IF_ERROR(ParseField(fields[1], 0, 23, false, false, "hours", &s.hours_, nullptr));
  RETURN_IF_ERROR(ParseField(fields[2], 1, 31, false, false, "day-of-month", &s.days_,
                             &s.any_day_of_month_));
  RETURN_IF_ERROR(ParseField(fields[3], 1, 12, true, false, "month", &s.months_, nullptr));
  RETURN_IF_ERROR(ParseField(fields[4], 1, 7, false, true, "day-of-week", &s.weekdays_,
                             &s.any_weekday_));
  bool any_year = false;
  RETURN_IF_ERROR(ParseField(fields[5], 1970, 2169, false, false, "year", &s.years_, &any_year, 1970));
  s.any_year_ = any_year;
  if (fields[2] != "?" && fields[4] != "?") {
    return Error(ErrorCode::kInvalidInput, "Invalid schedule expression '" + expression +
                                               "': day-of-month or day-of-week must be '?'");
  }
  return s;
}

int64_t CronSchedule::Next(int64_t after) const {
  int64_t t = (after / 60 + 1) * 60;  // next whole minute
  const int64_t limit = after + int64_t(5) * 366 * 86400;
  while (t <= limit) {
    time_t tt = time_t(t);
    struct tm tm;
    gmtime_r(&tt, &tm);
    int year = tm.tm_year + 1900;
    bool year_ok = any_year_ || (year >= 1970 && year < 2170 && years_.test(size_t(year - 1970)));
    bool day_ok = months_.test(size_t(tm.tm_mon + 1)) &&
                  (any_day_of_month_ || days_.test(size_t(tm.tm_mday))) &&
                  (any_weekday_ || weekdays_.test(size_t(tm.tm_wday + 1)));
    if (!year_ok || !day_ok) {
      // Skip to the next day's midnight.
      t = (t / 86400 + 1) * 86400;
      continue;
    }
    if (!hours_.test(size_t(tm.tm_hour))) {
      t = (t / 3600 + 1) * 3600;
      continue;
    }
    if (!minutes_.test(size_t(tm.tm_min))) {
      t += 60;
      continue;
    }
    return t;
  }
  return -1;
}

}  // namespace tarn::catalog
