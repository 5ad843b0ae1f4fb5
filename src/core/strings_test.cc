#include "core/strings.h"

#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/crypto.h"

namespace tarn {
namespace {

TEST(StringsTest, UriRoundTrip) {
  std::string key = "a b+c%d/é//x?y";
  EXPECT_EQ(UriEncode(key, false), "a%20b%2Bc%25d/%C3%A9//x%3Fy");
  EXPECT_EQ(*UriDecode(UriEncode(key)), key);
  EXPECT_FALSE(UriDecode("%4").has_value());
  EXPECT_FALSE(UriDecode("%zz").has_value());
  EXPECT_EQ(*UriDecode("a+b", true), "a b");
  EXPECT_EQ(*UriDecode("a+b", false), "a+b");
}

TEST(StringsTest, QueryString) {
  auto q = ParseQueryString("Action=ListUsers&Version=2010-05-08&x&e=");
  ASSERT_EQ(q.size(), 4u);
  EXPECT_EQ(q[0].first, "Action");
  EXPECT_EQ(q[0].second, "ListUsers");
  EXPECT_EQ(q[2].first, "x");
  EXPECT_EQ(q[3].second, "");
}

TEST(StringsTest, Encodings) {
  EXPECT_EQ(HexEncode("\x01\xff"), "01ff");
  EXPECT_EQ(*HexDecode("01ff"), "\x01\xff");
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  EXPECT_EQ(*Base64Decode("aGVsbG8="), "hello");
  EXPECT_EQ(*Base64Decode(""), "");
  EXPECT_FALSE(Base64Decode("abc").has_value());
  EXPECT_EQ(JsonEscape("a\"b\n\x01"), "a\\\"b\\n\\u0001");
  EXPECT_EQ(XmlEscape("<a&b>"), "&lt;a&amp;b&gt;");
}

TEST(StringsTest, AppendJsonString) {
  std::string out;
  AppendJsonString(&out, "select 'é€😀' \"x\"\\\n\t\x01");
  EXPECT_EQ(out, "\"select 'é€😀' \\\"x\\\"\\\\\\n\\t\\u0001\"");
  // Bytes that are not UTF-8 become U+FFFD, one each; the rest is kept.
  out.clear();
  AppendJsonString(&out, "a\xff\xc3(\xed\xa0\x80z\xe2\x82");
  EXPECT_EQ(out, "\"a\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffdz\\ufffd\\ufffd\"");
  EXPECT_TRUE(IsValidUtf8(out));
}

TEST(StringsTest, Utf8) {
  EXPECT_TRUE(IsValidUtf8("héllo €"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong
}

TEST(StringsTest, Numbers) {
  EXPECT_EQ(*ParseInt64("-12"), -12);
  EXPECT_FALSE(ParseInt64("12a").has_value());
  EXPECT_FALSE(ParseUint64("").has_value());
}

TEST(CryptoTest, KnownDigests) {
  EXPECT_EQ(HexEncode(Md5("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Hasher h(Hasher::Algorithm::kSha256);
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.Final(), Sha256("abc"));
  // RFC 4231 test case 2
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(NewUuid().size(), 36u);
  std::string acct = NewAccountId();
  EXPECT_EQ(acct.size(), 12u);
  EXPECT_NE(acct[0], '0');
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
}

TEST(ClockTest, Formats) {
  EXPECT_EQ(FormatIso8601(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(ParseHttpDate("garbage"), -1);
  EXPECT_EQ(ParseIso8601("19941106T084937Z"), 784111777);
  EXPECT_EQ(ParseIso8601("1994-11-06T08:49:37.123Z"), 784111777);
  ManualClock c(1000);
  c.Advance(500);
  EXPECT_EQ(c.NowMicros(), 1500);
}

}  // namespace
}  // namespace tarn
