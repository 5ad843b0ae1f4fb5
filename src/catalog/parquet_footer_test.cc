#include "catalog/parquet_footer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "catalog/classifier.h"
#include "sql/duckdb/engine.h"

namespace tarn::catalog {
namespace {

namespace fs = std::filesystem;

class ParquetFooterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("parquet-footer-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto db = sql::Database::Open("");
    ASSERT_TRUE(db.ok());
    duck_ = std::move(*db);
    auto c = duck_->Connect();
    ASSERT_TRUE(c.ok());
    conn_ = std::move(*c);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& select) {
    std::string path = (dir_ / name).string();
    Status s =
        conn_->Execute("COPY (" + select + ") TO " + sql::QuoteLiteral(path) + " (FORMAT parquet)");
    EXPECT_TRUE(s.ok()) << s.ToString();
    return path;
  }
  static std::string Bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  fs::path dir_;
  std::unique_ptr<sql::Database> duck_;
  std::unique_ptr<sql::Connection> conn_;
};

TEST_F(ParquetFooterTest, SameSchemaSameKeyOtherwiseNot) {
  std::string a = Write("a.parquet", "SELECT i AS id, 'x' || i AS name FROM range(10) t(i)");
  std::string b = Write("b.parquet", "SELECT i + 100 AS id, 'y' AS name FROM range(1000) t(i)");
  std::string c = Write("c.parquet", "SELECT i::INTEGER AS id, 'x' AS name FROM range(3) t(i)");
  std::string d = Write("d.parquet", "SELECT {'k': i, 'l': [i, i]} AS s FROM range(3) t(i)");
  auto fa = ReadParquetFooter(a), fb = ReadParquetFooter(b), fc = ReadParquetFooter(c),
       fd = ReadParquetFooter(d);
  ASSERT_TRUE(fa.ok() && fb.ok() && fc.ok() && fd.ok()) << fa.status().ToString();
  EXPECT_EQ(fa->num_rows, 10);
  EXPECT_EQ(fb->num_rows, 1000);
  EXPECT_EQ(fa->schema_key, fb->schema_key);
  EXPECT_NE(fa->schema_key, fc->schema_key);  // bigint vs int
  EXPECT_NE(fa->schema_key, fd->schema_key);

  // The classifier asks DuckDB once for files with the same footer schema, and the shared
  // schema is the one DuckDB reports.
  Classifier classifier(conn_.get());
  auto sa = classifier.ClassifyShared(a, "a.parquet");
  auto sb = classifier.ClassifyShared(b, "b.parquet");
  auto sc = classifier.ClassifyShared(c, "c.parquet");
  ASSERT_TRUE(sa.ok() && sb.ok() && sc.ok());
  EXPECT_EQ(sa->get(), sb->get());
  EXPECT_EQ(classifier.described(), 2);
  EXPECT_EQ((*sa)->columns[0].type, "bigint");
  EXPECT_EQ((*sc)->columns[0].type, "int");
  auto sd = classifier.Classify(d, "no-suffix");  // found by its magic bytes
  ASSERT_TRUE(sd.ok());
  EXPECT_EQ(sd->columns[0].type, "struct<k:bigint,l:array<bigint>>");
}

TEST_F(ParquetFooterTest, TruncatedAndMalformedFilesAreErrorsNotCrashes) {
  std::string a =
      Write("a.parquet", "SELECT i AS id, [i] AS l, {'a': 'b'} AS s FROM range(10) t(i)");
  std::string bytes = Bytes(a);
  auto write = [&](const std::string& name, const std::string& content) {
    std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  };
  EXPECT_FALSE(ReadParquetFooter(write("t1", bytes.substr(0, bytes.size() - 1))).ok());
  EXPECT_FALSE(ReadParquetFooter(write("t2", bytes.substr(0, 8))).ok());
  EXPECT_FALSE(ReadParquetFooter(write("t3", "PAR1")).ok());
  EXPECT_FALSE(ReadParquetFooter((dir_ / "missing").string()).ok());
  std::string huge = bytes;
  huge[huge.size() - 5] = '\x7f';  // footer length beyond the file
  EXPECT_FALSE(ReadParquetFooter(write("t4", huge)).ok());

  // Every mutation of the footer bytes either parses or fails cleanly.
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) len |= uint32_t(uint8_t(bytes[bytes.size() - 8 + i])) << (8 * i);
  std::string footer = bytes.substr(bytes.size() - 8 - len, len);
  ASSERT_TRUE(ParseParquetFileMetaData(footer).ok());
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string m = footer;
    int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) m[rng() % m.size()] = char(rng());
    if (rng() % 4 == 0) m.resize(rng() % m.size());
    (void)ParseParquetFileMetaData(m);
  }
  for (int i = 0; i < 2000; ++i) {
    std::string m(rng() % 64, '\0');
    for (char& ch : m) ch = char(rng());
    (void)ParseParquetFileMetaData(m);
  }
  // Deep nesting is refused, not recursed into.
  EXPECT_FALSE(ParseParquetFileMetaData(std::string(100000, '\x1c')).ok());
}

}  // namespace
}  // namespace tarn::catalog
