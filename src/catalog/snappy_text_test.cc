#include "catalog/snappy_text.h"

#include <gtest/gtest.h>
#include <snappy.h>

#include <filesystem>
#include <fstream>

#include "catalog/classifier.h"
#include "sql/duckdb/engine.h"

namespace tarn::catalog {
namespace {

std::string Be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// Hadoop SnappyCodec: per block, the uncompressed length, then (length, raw snappy) chunks.
std::string Hadoop(const std::string& text, size_t block) {
  std::string out;
  for (size_t at = 0; at < text.size(); at += block) {
    std::string part = text.substr(at, block), c;
    out += Be32(uint32_t(part.size()));
    // Two chunks per block, as BlockCompressorStream writes when a block exceeds its buffer.
    size_t half = part.size() / 2;
    for (const std::string& piece : {part.substr(0, half), part.substr(half)}) {
      if (piece.empty()) continue;
      snappy::Compress(piece.data(), piece.size(), &c);
      out += Be32(uint32_t(c.size())) + c;
    }
  }
  return out;
}

// Framing format: stream identifier, then compressed (0x00) and uncompressed (0x01) chunks and
// a skippable one (0x80). The CRCs are zero: the reader does not check them.
std::string Framed(const std::string& text, size_t chunk) {
  std::string out("\xff\x06\x00\x00sNaPpY", 10);
  auto put = [&](uint8_t type, const std::string& body) {
    size_t n = body.size();
    out += char(type);
    out += char(n & 0xff);
    out += char((n >> 8) & 0xff);
    out += char((n >> 16) & 0xff);
    out += body;
  };
  put(0x80, "padding");
  int i = 0;
  for (size_t at = 0; at < text.size(); at += chunk, ++i) {
    std::string part = text.substr(at, chunk), c;
    if (i % 2 == 0) {
      snappy::Compress(part.data(), part.size(), &c);
      put(0x00, std::string(4, '\0') + c);
    } else {
      put(0x01, std::string(4, '\0') + part);
    }
  }
  return out;
}

std::string Lines(int n) {
  std::string s = "id,name,score\n";
  for (int i = 0; i < n; ++i)
    s += std::to_string(i) + ",name-" + std::to_string(i) + "," + std::to_string(i * 0.5) + "\n";
  return s;
}

TEST(SnappyText, BothFormatsRoundTripAndPrefixesEndAtALine) {
  std::string text = Lines(5000);
  for (bool framed : {false, true}) {
    std::string data = framed ? Framed(text, 7000) : Hadoop(text, 10000);
    auto all = DecompressSnappyText(data, framed, 1 << 30);
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    EXPECT_EQ(*all, text);
    auto some = DecompressSnappyText(data, framed, 20000);
    ASSERT_TRUE(some.ok());
    EXPECT_LE(some->size(), 20000u);
    EXPECT_GT(some->size(), 10000u);
    EXPECT_EQ(some->back(), '\n');
    EXPECT_EQ(text.compare(0, some->size(), *some), 0);
    // Only the start of the file was read: whole chunks are used, the last line is dropped.
    auto cut = DecompressSnappyText(data.substr(0, data.size() / 2), framed, 1 << 30, false);
    ASSERT_TRUE(cut.ok()) << cut.status().ToString();
    EXPECT_FALSE(cut->empty());
    EXPECT_EQ(cut->back(), '\n');
    EXPECT_EQ(text.compare(0, cut->size(), *cut), 0);
  }
  EXPECT_TRUE(IsSnappyFramed(Framed("x\n", 10)));
  EXPECT_FALSE(IsSnappyFramed(Hadoop("x\n", 10)));
}

TEST(SnappyText, GarbageIsInvalidInput) {
  for (const std::string& bad :
       {std::string("plain text, not snappy\n"), std::string(3, '\0'), Be32(5) + Be32(3) + "abc",
        std::string("\xff\x06\x00\x00sNaPpY\x05\x01\x00\x00x", 15)}) {
    auto r = DecompressSnappyText(bad, IsSnappyFramed(bad), 1 << 20);
    if (r.ok()) {
      EXPECT_TRUE(r->empty()) << bad;
    } else {
      EXPECT_EQ(r.status().code(), ErrorCode::kInvalidInput);
    }
  }
}

TEST(SnappyText, ClassifierInfersCsvAndJsonInsideSnappy) {
  auto dir = std::filesystem::temp_directory_path() / ("snappy-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto db = sql::Database::Open("");
  ASSERT_TRUE(db.ok());
  auto conn = (*db)->Connect();
  ASSERT_TRUE(conn.ok());
  Classifier classifier(conn->get());
  std::string csv = (dir / "part-0.csv.snappy").string();
  std::ofstream(csv, std::ios::binary) << Hadoop(Lines(100), 1000);
  auto s = classifier.Classify(csv, "db/orders/part-0.csv.snappy");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->classification, "csv");
  EXPECT_EQ(s->compression, "snappy");
  ASSERT_EQ(s->columns.size(), 3u);
  EXPECT_EQ(s->columns[0].type, "bigint");
  EXPECT_EQ(s->columns[2].type, "double");
  std::string js = (dir / "events").string();  // no name: the framing format's magic bytes
  std::ofstream(js, std::ios::binary)
      << Framed("{\"a\": 1, \"b\": {\"c\": \"x\"}}\n{\"a\": 2, \"b\": {\"c\": \"y\"}}\n", 16);
  s = classifier.Classify(js, "events");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->classification, "json");
  EXPECT_EQ(s->compression, "snappy");
  EXPECT_EQ(s->columns[1].type, "struct<c:string>");
  std::string bad = (dir / "bad.snappy").string();
  std::ofstream(bad, std::ios::binary) << "definitely not snappy";
  EXPECT_FALSE(classifier.Classify(bad, "bad.snappy").ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tarn::catalog
