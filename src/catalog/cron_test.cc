#include "catalog/cron.h"

#include <gtest/gtest.h>

namespace tarn::catalog {
namespace {

// 2026-11-25T12:03:10Z, a Wednesday.
constexpr int64_t kNow = 1795608190;

TEST(Cron, EveryFiveMinutes) {
  auto c = CronSchedule::Parse("cron(0/5 * * * ? *)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->Next(kNow), kNow - 190 + 300);        // 12:05
  EXPECT_EQ(c->Next(kNow - 190 + 300), kNow - 190 + 600);  // 12:10
}

TEST(Cron, DailyAndWeekdays) {
  auto daily = CronSchedule::Parse("cron(15 12 * * ? *)");
  ASSERT_TRUE(daily.ok());
  EXPECT_EQ(daily->Next(kNow), kNow - 190 + 15 * 60);  // today 12:15
  auto weekend = CronSchedule::Parse("cron(0 8 ? * SAT,SUN *)");
  ASSERT_TRUE(weekend.ok());
  // Saturday 2026-11-28T08:00:00Z
  EXPECT_EQ(weekend->Next(kNow), 1795608190 - 190 - 12 * 3600 + 3 * 86400 + 8 * 3600);
  auto monthly = CronSchedule::Parse("cron(0 0 1 JAN,JUL ? 2027)");
  ASSERT_TRUE(monthly.ok()) << monthly.status().ToString();
  EXPECT_EQ(monthly->Next(kNow), 1798761600);  // 2027-01-01T00:00:00Z
}

TEST(Cron, Rejects) {
  for (const char* bad : {"rate(5 minutes)", "cron(* * * * *)", "cron(0 0 1 * 1 *)",
                          "cron(61 * * * ? *)", "cron(0 0 L * ? *)", "cron(0/0 * * * ? *)",
                          "cron(0 25 * * ? *)"}) {
    auto c = CronSchedule::Parse(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), ErrorCode::kInvalidInput) << bad;
  }
}

}  // namespace
}  // namespace tarn::catalog
