// ParquetWriter: the records → Parquet conversion, read back with DuckDB. Pins the output
// (column names, order and types, values after the OpenX coercions, row groups, compression)
// and the routing of records that cannot be converted.
#include "streams/convert.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "sql/duckdb/engine.h"

namespace tarn::streams {
namespace {

using Rows = std::vector<std::vector<std::optional<std::string>>>;

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tarn_convert_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    db_ = std::move(sql::Database::Open("")).value();
    conn_ = std::move(db_->Connect()).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<ColumnSpec> Schema(const nlohmann::json& columns) {
    DestinationConfig config;
    auto s = SchemaFromGlueTable({{"StorageDescriptor", {{"Columns", columns}}}}, config);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : std::vector<ColumnSpec>{};
  }

  Rows Query(const std::string& sql) {
    auto q = conn_->Query(sql);
    EXPECT_TRUE(q.ok()) << sql << ": " << q.status().ToString();
    if (!q.ok()) return {};
    return std::move(q->ToRows()).value();
  }

  std::string Path(const std::string& name) { return (dir_ / name).string(); }

  std::filesystem::path dir_;
  std::unique_ptr<sql::Database> db_;
  std::unique_ptr<sql::Connection> conn_;
};

std::vector<WalRecord> Records(const std::vector<std::string>& data) {
  std::vector<WalRecord> out;
  for (size_t i = 0; i < data.size(); ++i) out.push_back({i + 1, 0, data[i], ""});
  return out;
}

std::vector<const WalRecord*> Pointers(const std::vector<WalRecord>& records) {
  std::vector<const WalRecord*> out;
  for (const auto& r : records) out.push_back(&r);
  return out;
}

// Every supported Glue type keeps its Parquet type and the catalog's column order; coercions as
// OpenX does them; failed records come back in order with their reason, the others are written.
TEST_F(ConvertTest, EveryTypeInCatalogOrderWithCoercionsAndFailedRecordsReturned) {
  auto columns = Schema(nlohmann::json::parse(R"j([
    {"Name":"Device","Type":"string"}, {"Name":"t8","Type":"tinyint"},
    {"Name":"t16","Type":"smallint"}, {"Name":"t32","Type":"int"}, {"Name":"t64","Type":"bigint"},
    {"Name":"f","Type":"float"}, {"Name":"d","Type":"double"}, {"Name":"ok","Type":"boolean"},
    {"Name":"ts","Type":"timestamp"}, {"Name":"day","Type":"date"},
    {"Name":"price","Type":"decimal(10,2)"}, {"Name":"meta","Type":"string"}])j"));
  ASSERT_EQ(columns.size(), 12u);
  auto records = Records({
      R"({"device":"a","t8":-128,"t16":"300","t32":7.0,"t64":9007199254740993,"f":1.5,"d":"2.25",)"
      R"("ok":"TRUE","ts":"2025-11-25T12:00:01.5Z","day":"2025-11-25","price":"12.346","meta":{"x":[1,2]}})",
      "not json",
      R"({"DEVICE":"b","t8":128})",
      R"([1,2])",
      R"({"device":"c","ts":1764072002000,"day":1764072002,"price":7,"ok":false,"unknown":1})",
      R"({"device":"d","d":"warm"})",
      R"({"device":"e","meta":12.5,"t16":null})",
  });
  auto writer = std::move(ParquetWriter::Create()).value();
  std::vector<FailedRecord> failed;
  std::string path = Path("out.parquet");
  auto n = writer->Write(columns, Pointers(records), "snappy", path, &failed);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3u);

  ASSERT_EQ(failed.size(), 4u);
  EXPECT_EQ(failed[0].record->seq, 2u);
  EXPECT_EQ(failed[0].error_code, "DataFormatConversion.MalformedData");
  EXPECT_EQ(failed[1].record->seq, 3u);
  EXPECT_EQ(failed[1].error_code, "DataFormatConversion.InvalidValue");
  EXPECT_NE(failed[1].error_message.find("'t8'"), std::string::npos) << failed[1].error_message;
  EXPECT_EQ(failed[2].record->seq, 4u);
  EXPECT_EQ(failed[2].error_message, "the record is not a JSON object");
  EXPECT_EQ(failed[3].record->seq, 6u);
  EXPECT_NE(failed[3].error_message.find("'d'"), std::string::npos) << failed[3].error_message;

  std::string src = "read_parquet(" + sql::QuoteLiteral(path) + ")";
  Rows types = Query("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM " + src + ")");
  std::vector<std::pair<std::string, std::string>> want = {
      {"Device", "VARCHAR"}, {"t8", "TINYINT"},  {"t16", "SMALLINT"},     {"t32", "INTEGER"},
      {"t64", "BIGINT"},     {"f", "FLOAT"},     {"d", "DOUBLE"},         {"ok", "BOOLEAN"},
      {"ts", "TIMESTAMP"},   {"day", "DATE"},    {"price", "DECIMAL(10,2)"}, {"meta", "VARCHAR"}};
  ASSERT_EQ(types.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(*types[i][0], want[i].first);
    EXPECT_EQ(*types[i][1], want[i].second);
  }
  Rows rows = Query("SELECT Device, t8, t16, t32, t64, f, d, ok, epoch_ms(ts), day::VARCHAR, "
                    "price::VARCHAR, meta FROM " + src);
  ASSERT_EQ(rows.size(), 3u);
  std::vector<std::optional<std::string>> a = {
      "a", "-128", "300", "7", "9007199254740993", "1.5", "2.25", "true", "1764072001500",
      "2025-11-25", "12.35", R"({"x":[1,2]})"};
  EXPECT_EQ(rows[0], a);
  EXPECT_EQ(*rows[1][0], "c");
  EXPECT_FALSE(rows[1][1].has_value());
  EXPECT_EQ(*rows[1][7], "false");
  EXPECT_EQ(*rows[1][8], "1764072002000");
  EXPECT_EQ(*rows[1][9], "2025-11-25");
  EXPECT_EQ(*rows[1][10], "7.00");
  EXPECT_EQ(*rows[2][0], "e");
  EXPECT_FALSE(rows[2][2].has_value());
  EXPECT_EQ(*rows[2][11], "12.5");

  Rows codec = Query("SELECT DISTINCT compression FROM parquet_metadata(" + sql::QuoteLiteral(path) + ")");
  ASSERT_EQ(codec.size(), 1u);
  EXPECT_EQ(*codec[0][0], "SNAPPY");
}

// Rows stay in record order and row groups hold 122 880 rows; one writer converts batch after
// batch, each with the schema it is given; a batch whose records all fail writes no file.
TEST_F(ConvertTest, RowGroupsOrderReuseAndNoFileWhenEveryRecordFails) {
  auto writer = std::move(ParquetWriter::Create()).value();
  auto columns = Schema(nlohmann::json::parse(R"([{"Name":"seq","Type":"bigint"},{"Name":"s","Type":"string"}])"));
  std::vector<std::string> data;
  for (int i = 0; i < 130000; ++i) {
    data.push_back("{\"seq\":" + std::to_string(i) + ",\"s\":\"" + std::string(i % 40, 'x') + "\"}");
  }
  auto records = Records(data);
  std::vector<FailedRecord> failed;
  std::string big = Path("big.parquet");
  auto n = writer->Write(columns, Pointers(records), "zstd", big, &failed);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 130000u);
  EXPECT_TRUE(failed.empty());
  Rows groups = Query("SELECT row_group_num_rows FROM parquet_metadata(" + sql::QuoteLiteral(big) +
                      ") WHERE column_id = 0 ORDER BY row_group_id");
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(*groups[0][0], "122880");
  EXPECT_EQ(*groups[1][0], "7120");
  Rows order = Query("SELECT count(*) FROM (SELECT seq, row_number() OVER () - 1 AS pos FROM "
                     "read_parquet(" + sql::QuoteLiteral(big) + ")) WHERE seq <> pos");
  EXPECT_EQ(*order[0][0], "0");

  auto other = Schema(nlohmann::json::parse(R"([{"Name":"v","Type":"double"}])"));
  auto small = Records({R"({"v":1})", R"({"v":"x"})"});
  std::string second = Path("second.parquet");
  n = writer->Write(other, Pointers(small), "uncompressed", second, &failed);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(failed.size(), 1u);
  Rows v = Query("SELECT * FROM read_parquet(" + sql::QuoteLiteral(second) + ")");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(*v[0][0], "1");

  failed.clear();
  auto bad = Records({"{", R"({"v":"no"})"});
  std::string none = Path("none.parquet");
  n = writer->Write(other, Pointers(bad), "snappy", none, &failed);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(failed.size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(none));
}

// No value can fail a whole file: a record whose value the column's type cannot hold (beyond
// the range of FLOAT, DECIMAL, TIMESTAMP or DATE, or an integer out of range) fails alone, so
// one bad record never blocks a stream whose flush would otherwise be retried forever. Each
// value is written in a file of its own and with all the others in one file.
TEST_F(ConvertTest, ExtremeValuesFailAloneNeverTheFile) {
  auto columns = Schema(nlohmann::json::parse(R"j([
    {"Name":"i8","Type":"tinyint"}, {"Name":"i32","Type":"int"}, {"Name":"i64","Type":"bigint"},
    {"Name":"f","Type":"float"}, {"Name":"d","Type":"double"}, {"Name":"dec","Type":"decimal(4,3)"},
    {"Name":"ts","Type":"timestamp"}, {"Name":"day","Type":"date"}])j"));
  const std::map<std::string, std::vector<std::string>> values = {
      {"i8", {"1e300", "-1e300", "128", "-129", "1.5", "\"1e3\"", "18446744073709551615"}},
      {"i32", {"2147483648", "-2147483649", "1e300"}},
      {"i64", {"9223372036854775807", "9223372036854775808", "-9223372036854775808",
               "-9223372036854775809", "9.3e18", "-9.3e18", "1e300", "\"99999999999999999999\""}},
      {"f", {"1e300", "-1e300", "3.4e38", "3.5e38", "1e-300", "\"NaN\"", "\"Infinity\"",
             "\"-inf\"", "\"1e400\""}},
      {"d", {"1e308", "\"1e309\"", "\"nan\"", "-1e308", "\"-1e999\""}},
      {"dec", {"9.999", "9.9994", "9.9995", "9.9999", "-9.9999", "10", "1e300", "\"NaN\"",
               "\"inf\"", "1e-300", "\"9.99951\""}},
      {"ts", {"1e300", "-1e300", "9.2e18", "-9.2e18", "1e17", "-1e17", "253402300800",
              "\"1e20\"", "\"294247-01-10T04:00:54Z\"", "\"0001-01-01T00:00:00Z\"",
              "\"9999-12-31T23:59:59.999999Z\"", "\"2025-02-30\"", "\"NaN\"", "\"inf\""}},
      {"day", {"1e300", "-1e300", "1e15", "-1e15", "9.2e18", "\"5881580-07-11\"",
               "\"9999-12-31\"", "\"0001-01-01\"", "\"nan\""}}};
  // The values that must fail (their column's type cannot hold them); every other one converts.
  const std::set<std::string> refused = {
      R"({"i8":1e300})", R"({"i8":-1e300})", R"({"i8":128})", R"({"i8":-129})", R"({"i8":1.5})",
      R"({"i8":"1e3"})", R"({"i8":18446744073709551615})",
      R"({"i32":2147483648})", R"({"i32":-2147483649})", R"({"i32":1e300})",
      R"({"i64":9223372036854775808})", R"({"i64":-9223372036854775809})", R"({"i64":9.3e18})",
      R"({"i64":-9.3e18})", R"({"i64":1e300})", R"({"i64":"99999999999999999999"})",
      R"({"f":1e300})", R"({"f":-1e300})", R"({"f":3.5e38})",
      R"({"dec":9.9995})", R"({"dec":9.9999})", R"({"dec":-9.9999})", R"({"dec":10})",
      R"({"dec":1e300})", R"({"dec":"NaN"})", R"({"dec":"inf"})", R"({"dec":"9.99951"})",
      R"({"ts":1e300})", R"({"ts":-1e300})", R"({"ts":9.2e18})", R"({"ts":-9.2e18})",
      R"({"ts":1e17})", R"({"ts":-1e17})", R"({"ts":"1e20"})", R"({"ts":"294247-01-10T04:00:54Z"})",
      R"({"ts":"2025-02-30"})", R"({"ts":"NaN"})", R"({"ts":"inf"})",
      R"({"day":1e300})", R"({"day":-1e300})", R"({"day":9.2e18})", R"({"day":"5881580-07-11"})",
      R"({"day":"nan"})"};
  std::vector<std::string> all;
  for (const auto& [col, vs] : values) {
    for (const auto& v : vs) all.push_back("{\"" + col + "\":" + v + "}");
  }
  for (const auto& r : refused) EXPECT_NE(std::find(all.begin(), all.end(), r), all.end()) << r;
  auto records = Records(all);
  auto pointers = Pointers(records);
  ParquetWriter* writer = nullptr;
  auto created = ParquetWriter::Create();
  ASSERT_TRUE(created.ok());
  writer = created->get();
  size_t converted_alone = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    std::vector<FailedRecord> failed;
    auto w = writer->Write(columns, {pointers[i]}, "snappy", Path("one.parquet"), &failed);
    ASSERT_TRUE(w.ok()) << records[i].data << ": " << w.status().ToString();
    EXPECT_EQ(*w + failed.size(), 1u) << records[i].data;
    EXPECT_EQ(*w == 0, refused.count(records[i].data) == 1) << records[i].data;
    converted_alone += *w;
    std::string code, why;
    EXPECT_EQ(CheckRecord(columns, records[i].data, &code, &why), *w == 1) << records[i].data;
  }
  std::vector<FailedRecord> failed;
  auto w = writer->Write(columns, pointers, "snappy", Path("all.parquet"), &failed);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(*w, converted_alone);
  EXPECT_EQ(*w + failed.size(), records.size());
  // Every row written reads back.
  auto n = Query("SELECT count(*) FROM read_parquet('" + Path("all.parquet") + "')");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(*n[0][0], std::to_string(*w));
}

// A value the conversion takes but DuckDB's cast refuses (provoked here with a column whose
// DuckDB type is narrower than the catalog's) fails its record alone, with DuckDB's reason; the
// other records, including ones the conversion refuses, are handled as always.
TEST_F(ConvertTest, RecordsDuckDbRefusesAreIsolatedAndFailAlone) {
  auto columns = Schema(nlohmann::json::parse(R"j([
    {"Name":"id","Type":"int"}, {"Name":"v","Type":"decimal(10,2)"}])j"));
  ASSERT_EQ(columns.size(), 2u);
  columns[1].sql_type = "DECIMAL(3,1)";  // holds at most 99.9
  std::vector<std::string> data;
  std::set<int> refused_by_duckdb = {3, 17, 18, 40}, refused_by_conversion = {9};
  for (int i = 0; i < 50; ++i) {
    std::string v = refused_by_duckdb.count(i) ? "500.5" : refused_by_conversion.count(i) ? "\"x\"" : "1.5";
    data.push_back("{\"id\":" + std::to_string(i) + ",\"v\":" + v + "}");
  }
  auto records = Records(data);
  auto writer = std::move(ParquetWriter::Create()).value();
  std::vector<FailedRecord> failed;
  auto w = writer->Write(columns, Pointers(records), "snappy", Path("x.parquet"), &failed);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(*w, 45u);
  ASSERT_EQ(failed.size(), 5u);
  std::vector<uint64_t> seqs;
  for (const auto& f : failed) {
    seqs.push_back(f.record->seq);
    int id = int(f.record->seq) - 1;
    if (refused_by_duckdb.count(id)) {
      EXPECT_EQ(f.error_code, "DataFormatConversion.InvalidValue");
      EXPECT_NE(f.error_message.find("DECIMAL(3,1)"), std::string::npos) << f.error_message;
    }
  }
  EXPECT_EQ(seqs, (std::vector<uint64_t>{4, 10, 18, 19, 41}));  // record order
  auto rows = Query("SELECT count(*), min(id), max(id), CAST(sum(v) AS VARCHAR) FROM read_parquet('" + Path("x.parquet") + "')");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(*rows[0][0], "45");
  EXPECT_EQ(*rows[0][2], "49");
  EXPECT_EQ(*rows[0][3], "67.5");
}

}  // namespace
}  // namespace tarn::streams
