// ParquetWriter: the records → Parquet conversion, read back with DuckDB. Pins the output
// (column names, order and types, values after the OpenX coercions, row groups, compression)
// and the routing of records that cannot be converted.
#include "streams/convert.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

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

}  // namespace
}  // namespace tarn::streams
