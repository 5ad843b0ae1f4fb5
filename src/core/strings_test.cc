#include "core/strings.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cctype>
#include <cstring>
#include <random>

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
  EXPECT_EQ(JsonEscape("caf\xc3\xa9 \xff"), "caf\xc3\xa9 \\ufffd");  // valid JSON whatever the bytes
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

// OpenSSL's block decoder with the padding bytes dropped: what Base64Decode returned before it
// had its own decoder. nullopt when OpenSSL refuses the input.
std::optional<std::string> OpenSslBase64(std::string_view b64) {
  std::string in(Trim(b64));
  if (in.size() % 4) return std::nullopt;
  std::string out(in.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), int(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = (!in.empty() && in.back() == '=') + (in.size() > 1 && in[in.size() - 2] == '=');
  out.resize(size_t(n) - pad);
  return out;
}

TEST(StringsTest, Base64DecodeMatchesOpenSsl) {
  std::mt19937_64 rnd(7);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(rnd() % 300, '\0');
    for (char& c : bytes) c = char(rnd());
    std::string b64 = Base64Encode(bytes);
    auto ours = Base64Decode(b64);
    ASSERT_TRUE(ours.has_value()) << b64;
    EXPECT_EQ(*ours, bytes);
    EXPECT_EQ(ours, OpenSslBase64(b64));
    std::string again;
    ASSERT_TRUE(Base64DecodeTo(" \r\n" + b64 + "\n\t ", &again));
    EXPECT_EQ(again, bytes);
  }
}

TEST(StringsTest, Base64DecodeMalformed) {
  // Damaged encodings: whatever Tarn accepts, OpenSSL accepts with the same bytes; Tarn refuses
  // '=' anywhere but the padding of the last group, which OpenSSL reads as zero bits.
  std::mt19937_64 rnd(11);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n.\x80\xff";
  int refused = 0;
  for (int i = 0; i < 50000; ++i) {
    std::string bytes(1 + rnd() % 40, '\0');
    for (char& c : bytes) c = char(rnd());
    std::string b64 = Base64Encode(bytes);
    switch (rnd() % 4) {
      case 0: b64[rnd() % b64.size()] = alphabet[rnd() % alphabet.size()]; break;
      case 1: b64.erase(rnd() % b64.size(), 1); break;
      case 2: b64.insert(rnd() % b64.size(), 1, alphabet[rnd() % alphabet.size()]); break;
      default:
        for (int k = 0; k < 4; ++k) b64[rnd() % b64.size()] = alphabet[rnd() % alphabet.size()];
        break;
    }
    auto ours = Base64Decode(b64);
    auto theirs = OpenSslBase64(b64);
    if (ours) {
      ASSERT_TRUE(theirs.has_value()) << b64;
      EXPECT_EQ(*ours, *theirs) << b64;
    } else {
      ++refused;
      if (theirs) {
        // … because of an '=' that is not the padding of the last group.
        std::string_view t = Trim(b64);
        size_t eq = t.find('=');
        ASSERT_NE(eq, std::string_view::npos) << b64;
        EXPECT_TRUE(t.find_first_not_of('=', eq) != std::string_view::npos || t.size() - eq > 2)
            << b64;
      }
    }
    std::string out = "x";
    EXPECT_EQ(Base64DecodeTo(b64, &out), ours.has_value());
    if (!ours) {
      EXPECT_EQ(out, "");
    }
  }
  EXPECT_GT(refused, 10000);
  for (const char* bad : {"=", "====", "a===", "ab=c", "aGU=aGU=", "aGVs bG8=", "-_ab", "aGVsbG8",
                          "aGVs\x80G8="}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
  EXPECT_EQ(*Base64Decode("aGVsbG9="), "hello");  // unused bits ignored, as OpenSSL does
  EXPECT_EQ(*Base64Decode("aG=="), "h");
  EXPECT_EQ(*Base64Decode("  aGVsbG8=\r\n"), "hello");
}

// The vector decoder (32 characters per step where the CPU has AVX2) against the portable one,
// which the tests above pin to OpenSSL: the same answer and the same `out` for every input.
void ExpectSameAsPortable(std::string_view b64) {
  std::string fast = "x", portable = "y";
  bool ok = Base64DecodeTo(b64, &fast);
  ASSERT_EQ(ok, internal::Base64DecodeToPortable(b64, &portable)) << b64;
  ASSERT_EQ(fast, portable) << b64;
  if (!ok) {
    ASSERT_EQ(fast, "") << b64;
  }
}

TEST(StringsTest, Base64VectorMatchesPortableEveryLengthAndAlignment) {
  std::mt19937_64 rnd(13);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  alignas(64) static char buf[64 + 2008];
  for (size_t len = 0; len <= 2000; ++len) {
    // A valid encoding of len rounded down to whole groups (random padding), then len % 4
    // alphabet characters: lengths that are not a multiple of four are refused.
    size_t groups = len / 4, pad = groups ? rnd() % 3 : 0;
    std::string bytes(groups * 3 - pad, '\0');
    for (char& c : bytes) c = char(rnd());
    std::string b64 = Base64Encode(bytes);
    ASSERT_EQ(b64.size(), groups * 4);
    for (size_t k = 0; k < len % 4; ++k) b64 += alphabet[rnd() % 64];
    for (size_t off = 0; off < 64; ++off) {
      std::memcpy(buf + off, b64.data(), b64.size());
      std::string_view in(buf + off, b64.size());
      ExpectSameAsPortable(in);
      if (len % 4 == 0) {
        std::string out;
        ASSERT_TRUE(Base64DecodeTo(in, &out)) << len << " " << off;
        ASSERT_EQ(out, bytes) << len << " " << off;
      }
    }
  }
}

TEST(StringsTest, Base64VectorRefusesEveryBadCharacterAtEveryPosition) {
  // 128 characters: three 32-character vector steps, then the portable groups and the last one.
  std::mt19937_64 rnd(17);
  std::string bytes(96, '\0');
  for (char& c : bytes) c = char(rnd());
  const std::string good = Base64Encode(bytes);
  ASSERT_EQ(good.size(), 128u);
  int bad_chars = 0;
  for (int c = 0; c < 256; ++c) {
    bool in_alphabet = std::isalnum(c) || c == '+' || c == '/';
    if (in_alphabet) continue;
    ++bad_chars;
    for (size_t pos = 0; pos < good.size(); ++pos) {
      std::string b64 = good;
      b64[pos] = char(c);
      for (size_t off : {0, 1, 31}) {
        std::string shifted = std::string(off, 'A') + b64;
        std::string_view in = std::string_view(shifted).substr(off);
        ExpectSameAsPortable(in);
        std::string out = "x";
        bool ok = Base64DecodeTo(in, &out);
        // Only the padding of the last group, or whitespace at either end, can be accepted.
        bool space = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        bool may = (pos >= 126 && c == '=') || ((pos == 0 || pos == 127) && space);
        if (!may) {
          ASSERT_FALSE(ok) << pos << " " << c << " " << off;
          ASSERT_EQ(out, "");
        }
      }
    }
  }
  EXPECT_EQ(bad_chars, 192);
}

TEST(StringsTest, Base64VectorPaddingAndWhitespace) {
  std::mt19937_64 rnd(19);
  for (size_t n : {46, 47, 48, 94, 95, 96, 200, 201, 202}) {
    std::string bytes(n, '\0');
    for (char& c : bytes) c = char(rnd());
    std::string b64 = Base64Encode(bytes);
    std::string out;
    // Whitespace around the encoding is ignored; inside it, it is refused.
    ASSERT_TRUE(Base64DecodeTo(" \r\n\t" + b64 + "\r\n \t", &out)) << n;
    EXPECT_EQ(out, bytes);
    for (size_t pos = 1; pos < b64.size(); ++pos) {
      for (char ws : {' ', '\n', '\r', '\t'}) {
        std::string with = b64;
        with.insert(pos, 1, ws);
        ExpectSameAsPortable(with);
        std::string_view t = Trim(with);
        EXPECT_FALSE(Base64DecodeTo(with, &out)) << pos;
        // (A length that is a multiple of four again is still refused for the inner space.)
        ExpectSameAsPortable(std::string(t) + "AAA");
        EXPECT_FALSE(Base64DecodeTo(std::string(t) + "AAA", &out)) << pos;
      }
    }
    // '=' before the last group, alone or as a whole padded group, is refused.
    for (size_t pos = 0; pos + 4 < b64.size(); ++pos) {
      std::string with = b64;
      with[pos] = '=';
      ExpectSameAsPortable(with);
      EXPECT_FALSE(Base64DecodeTo(with, &out)) << pos;
    }
    ExpectSameAsPortable(b64 + "AA==");
    EXPECT_TRUE(Base64DecodeTo(b64.substr(0, b64.size() / 4 * 4 - 4) + "AA==", &out));
    std::string padded_inside = b64.substr(0, 36) + "AA==" + b64.substr(36);
    ExpectSameAsPortable(padded_inside);
    EXPECT_FALSE(Base64DecodeTo(padded_inside, &out));
    for (const char* tail : {"A===", "====", "A=A=", "AAA="}) {
      std::string t = b64.substr(0, b64.size() / 4 * 4 - 4) + tail;
      ExpectSameAsPortable(t);
    }
  }
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
