#include "catalog/partition_filter.h"

#include <gtest/gtest.h>

namespace tarn::catalog {
namespace {

const std::vector<PartitionKey> kKeys = {
    {"year", "string"}, {"month", "int"}, {"region", "string"}, {"ratio", "double"}};

bool M(const std::string& expr, std::vector<std::string> values) {
  auto f = PartitionFilter::Compile(expr, kKeys);
  EXPECT_TRUE(f.ok()) << expr << ": " << f.status().ToString();
  return f.ok() && (*f)->Matches(values);
}

TEST(PartitionFilter, ComparisonsAreTypedByKey) {
  std::vector<std::string> v = {"2026", "9", "eu-west", "0.5"};
  EXPECT_TRUE(M("year = '2026'", v));
  EXPECT_FALSE(M("year <> '2026'", v));
  // month is an int: 9 < 10 numerically although '9' > '10' as strings.
  EXPECT_TRUE(M("month < 10", v));
  EXPECT_TRUE(M("month < '10'", v));
  EXPECT_FALSE(M("month >= 10", v));
  // year is a string: compared as text.
  EXPECT_TRUE(M("year > '199'", v));
  EXPECT_TRUE(M("ratio <= 0.5 AND ratio > 0.25", v));
}

TEST(PartitionFilter, BooleanOperatorsAndPrecedence) {
  std::vector<std::string> v = {"2026", "9", "eu-west", "0.5"};
  EXPECT_TRUE(M("year = '2025' OR month = 9 AND region = 'eu-west'", v));
  EXPECT_FALSE(M("(year = '2025' OR month = 9) AND region = 'us'", v));
  EXPECT_TRUE(M("NOT year = '2025'", v));
  EXPECT_TRUE(M("not (year = '2025') and MONTH in (1, 9)", v));
}

TEST(PartitionFilter, InBetweenLike) {
  std::vector<std::string> v = {"2026", "11", "eu-west-1", "0.5"};
  EXPECT_TRUE(M("month IN (10, 11, 12)", v));
  EXPECT_FALSE(M("month NOT IN (10, 11, 12)", v));
  EXPECT_TRUE(M("month BETWEEN 9 AND 11", v));
  EXPECT_FALSE(M("month BETWEEN 1 AND 9", v));
  EXPECT_TRUE(M("region LIKE 'eu-%'", v));
  EXPECT_TRUE(M("region LIKE 'eu-west-_'", v));
  EXPECT_FALSE(M("region NOT LIKE '%west%'", v));
  EXPECT_TRUE(M("`year` = '2026'", v));
  EXPECT_TRUE(M("region = 'eu-west-1' AND year IS NOT NULL", v));
}

TEST(PartitionFilter, BadExpressionsAreInvalidInput) {
  for (const char* bad : {"", "year =", "nokey = '1'", "year = '2026' AND", "month = 'x'",
                          "(year = '1'", "year == ", "year ~ '1'", "year = 'unterminated",
                          "month IN 1, 2", "month BETWEEN 1 2", "region LIKE 5"}) {
    auto f = PartitionFilter::Compile(bad, kKeys);
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_EQ(f.status().code(), ErrorCode::kInvalidInput) << bad;
  }
}

TEST(PartitionFilter, DeepNestingIsInvalidInputNotAStackOverflow) {
  std::string deep = std::string(1000, '(') + "year = '1'" + std::string(1000, ')');
  auto f = PartitionFilter::Compile(deep, kKeys);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), ErrorCode::kInvalidInput);
  std::string nots;
  for (int i = 0; i < 400; ++i) nots += "NOT ";
  EXPECT_FALSE(PartitionFilter::Compile(nots + "year = '1'", kKeys).ok());
  // Sixty levels are fine.
  EXPECT_TRUE(M(std::string(60, '(') + "year = '2026'" + std::string(60, ')'),
                {"2026", "1", "x", "0"}));
}

TEST(PartitionFilter, LikeMatch) {
  EXPECT_TRUE(LikeMatch("abc", "a%"));
  EXPECT_TRUE(LikeMatch("abc", "%c"));
  EXPECT_TRUE(LikeMatch("abc", "%b%"));
  EXPECT_TRUE(LikeMatch("abc", "a_c"));
  EXPECT_FALSE(LikeMatch("abc", "a_"));
  EXPECT_TRUE(LikeMatch("", "%"));
  EXPECT_FALSE(LikeMatch("abc", "%d%"));
}

TEST(PartitionFilter, ConstraintsForIndexLookups) {
  auto f = PartitionFilter::Compile(
      "region LIKE 'eu-%' AND month BETWEEN 3 AND 5 AND year IN ('2025', '2026') AND NOT "
      "year = '2024' AND (month = 1 OR region = 'x') AND ratio > 0.5",
      kKeys);
  ASSERT_TRUE(f.ok());
  auto cs = (*f)->Constraints();
  ASSERT_EQ(cs.size(), 4u);
  // Equality first.
  EXPECT_EQ(cs[0].key, 0u);
  EXPECT_TRUE(cs[0].equality);
  ASSERT_EQ(cs[0].ranges.size(), 2u);
  EXPECT_EQ(*cs[0].ranges[1].lo, "2026");
  EXPECT_EQ(cs[1].key, 2u);  // LIKE 'eu-%' → ['eu-', 'eu.')
  EXPECT_EQ(*cs[1].ranges[0].lo, "eu-");
  EXPECT_EQ(*cs[1].ranges[0].hi, "eu.");
  EXPECT_FALSE(cs[1].ranges[0].hi_inclusive);
  EXPECT_EQ(cs[2].key, 1u);  // BETWEEN on an int key → a number range
  EXPECT_TRUE(cs[2].ranges[0].numeric);
  EXPECT_EQ(cs[2].ranges[0].lo_num, 3);
  EXPECT_EQ(cs[2].ranges[0].hi_num, 5);
  EXPECT_EQ(cs[3].key, 3u);  // > 0.5 → [0.5, inf]
  EXPECT_EQ(cs[3].ranges[0].lo_num, 0.5);
  // OR over one key is a union; across keys it is not a constraint.
  f = PartitionFilter::Compile("month = 1 OR month > 10", kKeys);
  ASSERT_TRUE(f.ok());
  cs = (*f)->Constraints();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].ranges.size(), 2u);
  EXPECT_FALSE(cs[0].equality);
  f = PartitionFilter::Compile("month = 1 OR year = '2026'", kKeys);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE((*f)->Constraints().empty());
  // NaN is not a number: it matches no comparison.
  EXPECT_FALSE(M("ratio = 1", {"2026", "9", "eu", "nan"}));
  EXPECT_FALSE(PartitionFilter::NumericValue("nan").has_value());
  EXPECT_EQ(*PartitionFilter::NumericValue(" 12 "), 12);
}

}  // namespace
}  // namespace tarn::catalog
