// The native JQ programs against libjq itself: for every program and record, the native path
// (JqQuery with native on) must give libjq's answer — the same keys, or an error with the same
// message — and the programs Firehose users write most must run natively.
#include "streams/jq.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace tarn::streams
