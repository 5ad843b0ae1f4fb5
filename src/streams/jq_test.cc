// The native JQ programs against libjq itself: for every program and record, the native path
// (JqQuery with native on) must give libjq's answer — the same keys, or an error with the same
// message — and the programs Firehose users write most must run natively.
#include "streams/jq.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace tarn::streams {
namespace {

const std::vector<std::string> kPrograms = {
    R"({day: (.ts / 1000 | floor | strftime("%Y-%m-%d")), hour: (.ts / 1000 | floor | strftime("%H"))})",
    R"({device: .device, site: .meta.site})",
    R"({device})",
    R"({"dev": .device, n: .n})",
    R"({t: (.ts | strftime("%Y/%m/%dT%H:%M:%S %j %a %b %%"))})",
    R"({t: (.ts / 1000 | floor), flag: .ok})",
    R"({x: .a.b.c})",
    R"({t: (.ts | . / 60 | floor)})",
    // Not native (libjq answers): other operators, escapes, zone conversions.
    R"({t: (.ts | strftime("%Z"))})",
    R"({d: (.device | ascii_downcase)})",
    R"({d: .["device"]})",
    R"({d: ("x\n" + .device)})",
};

const std::vector<std::string> kRecords = {
    R"({"device":"sensor-001","ts":1765104367123,"n":12,"ok":true,"meta":{"site":"north"},"a":{"b":{"c":1.5}}})",
    R"({"device":"s-2","ts":1765104367,"n":-3,"ok":false,"meta":{"site":7},"a":{"b":{"c":"str"}}})",
    R"({"device":"dup","device":"last","ts":0,"n":1e300,"ok":null,"meta":null,"a":{"b":[1]}})",
    R"({"ts":"not a number","device":1234567890123456789,"meta":{"site":true}})",
    R"({"ts":1765104367123.75,"device":"x","n":0.1,"meta":{}})",
    R"({"ts":-5,"device":"neg","n":9007199254740993})",
    R"({"device":"é\u00e9","ts":253402300799000})",
    R"([1,2,3])",
    R"("just a string")",
    R"(not json at all)",
    R"({"device":"unterminated)",
    R"({})",
};

TEST(JqNative, AgreesWithLibjqEverywhere) {
  for (const std::string& program : kPrograms) {
    auto native = JqQuery::Compile(program, true);
    auto libjq = JqQuery::Compile(program, false);
    ASSERT_TRUE(native.ok()) << program << ": " << native.status().ToString();
    ASSERT_TRUE(libjq.ok()) << program;
    for (const std::string& record : kRecords) {
      SCOPED_TRACE(program + " over " + record);
      auto a = (*native)->Extract(record);
      auto b = (*libjq)->Extract(record);
      ASSERT_EQ(a.ok(), b.ok()) << (a.ok() ? b.status().ToString() : a.status().ToString());
      if (a.ok()) {
        EXPECT_EQ(*a, *b);
      } else {
        EXPECT_EQ(a.status().message(), b.status().message());
      }
    }
  }
}

TEST(JqNative, CommonProgramsRunNatively) {
  for (size_t i = 0; i < 8; ++i) {
    auto q = JqQuery::Compile(kPrograms[i]);
    ASSERT_TRUE(q.ok());
    EXPECT_TRUE((*q)->native()) << kPrograms[i];
  }
  for (size_t i = 8; i < kPrograms.size(); ++i) {
    auto q = JqQuery::Compile(kPrograms[i]);
    ASSERT_TRUE(q.ok()) << kPrograms[i];
    EXPECT_FALSE((*q)->native()) << kPrograms[i];
  }
  auto day = JqQuery::Compile(kPrograms[0]);
  auto keys = (*day)->Extract(R"({"ts":1765104367123})");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ((*keys)["day"], "2025-12-07");
  EXPECT_EQ((*keys)["hour"], "10");
}

// The strftime memo (the text of the last seconds formatted, per thread) gives libjq's answer on
// both sides of second, hour and day boundaries, going back and forth between seconds, for two
// programs whose formats share seconds.
TEST(JqNative, StrftimeMemoAcrossBoundaries) {
  const std::string program = kPrograms[0];  // day and hour
  const std::string other = R"({m: (.ts / 1000 | floor | strftime("%M:%S")), d: (.ts / 1000 | floor | strftime("%j"))})";
  auto native = JqQuery::Compile(program);
  auto native2 = JqQuery::Compile(other);
  auto libjq = JqQuery::Compile(program, false);
  auto libjq2 = JqQuery::Compile(other, false);
  ASSERT_TRUE(native.ok() && native2.ok() && libjq.ok() && libjq2.ok());
  ASSERT_TRUE((*native)->native());
  ASSERT_TRUE((*native2)->native());
  // 2025-12-07 23:59:59 / 2025-12-08 00:00:00, 2025-12-07 00:59:59 / 01:00:00, 2025-12-31 /
  // 2026-01-01, and a run of consecutive seconds (more than the memo's slots).
  std::vector<int64_t> ms = {1765151999999, 1765152000000, 1765151999000, 1765152000999, 1765069199500,
                             1765069200000, 1765069199999, 1767225599999, 1767225600000, 1767225599000};
  for (int64_t s = 0; s < 40; ++s) ms.push_back((1765151990 + s) * 1000 + 17);
  for (int64_t s = 39; s >= 0; --s) ms.push_back((1765151990 + s) * 1000 + 999);
  std::map<std::string, std::string> keys, keys2;
  for (int round = 0; round < 2; ++round) {
    for (int64_t t : ms) {
      std::string record = R"({"device":"d","ts":)" + std::to_string(t) + "}";
      SCOPED_TRACE(record);
      auto want = (*libjq)->Extract(record);
      auto want2 = (*libjq2)->Extract(record);
      ASSERT_TRUE(want.ok() && want2.ok());
      ASSERT_TRUE((*native)->ExtractInto(record, 0, &keys).ok());
      ASSERT_TRUE((*native2)->ExtractInto(record, 0, &keys2).ok());
      EXPECT_EQ(keys, *want);
      EXPECT_EQ(keys2, *want2);
    }
  }
  auto k = (*native)->Extract(R"({"ts":1765152000000})");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ((*k)["day"], "2025-12-08");
  EXPECT_EQ((*k)["hour"], "00");
}

// ExtractInto over records of every size, parsed in place when padding fits after them and
// copied otherwise, into a map an earlier run left other keys in: Extract's answer each time
// (under ASan: nothing read beyond the record's allocation).
TEST(JqNative, ExtractIntoInPlaceAndReusingKeys) {
  for (const std::string& program : kPrograms) {
    auto q = JqQuery::Compile(program);
    ASSERT_TRUE(q.ok());
    std::map<std::string, std::string> keys = {{"stale", "x"}, {"device", "old"}};
    for (size_t n = 0; n < 200; n += 3) {
      for (bool padded : {false, true}) {
        std::string text = R"({"device":")" + std::string(n, 'd') + R"(","ts":1765104367123,"n":)" +
                           std::to_string(n) + R"(,"ok":true,"meta":{"site":"s"},"a":{"b":{"c":1}}})";
        std::string record;
        record.reserve(text.size() + (padded ? JqQuery::kPadding : 0));
        record.append(text);
        SCOPED_TRACE(program + " over " + record);
        auto want = (*q)->Extract(text);
        Status st = (*q)->ExtractInto(record, record.capacity() - record.size(), &keys);
        ASSERT_EQ(st.ok(), want.ok());
        if (want.ok()) {
          EXPECT_EQ(keys, *want);
        }
      }
    }
    // After an error, and after a record libjq answers (other keys), the next is right again.
    (void)(*q)->ExtractInto("not json", 0, &keys);
    std::string record = R"({"device":"z","ts":1765104367123,"n":1,"ok":false,"meta":{"site":"t"},"a":{"b":{"c":2}}})";
    auto want = (*q)->Extract(record);
    ASSERT_TRUE(want.ok());
    ASSERT_TRUE((*q)->ExtractInto(record, 0, &keys).ok());
    EXPECT_EQ(keys, *want);
  }
}

}  // namespace
}  // namespace tarn::streams
