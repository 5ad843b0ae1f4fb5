#include "sql/duckdb/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace tarn::sql {
namespace {

TEST(EngineTest, MultiStatementQueryReturnsLast) {
  auto db = Database::Open(":memory:");
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto conn = (*db)->Connect();
  ASSERT_TRUE(conn.ok());
  auto r = (*conn)->Query("CREATE TABLE t(a INTEGER, b VARCHAR, c DOUBLE, d DATE); "
                          "INSERT INTO t VALUES (1, 'one', 1.5, DATE '2026-11-25'), (2, NULL, NULL, NULL); "
                          "SELECT a, b, c, d FROM t ORDER BY a");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->column_count(), 4u);
  EXPECT_EQ(r->column_name(1), "b");
  EXPECT_EQ(r->column_type(0), ColumnType::kInteger);
  auto rows = r->ToRows();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ(*(*rows)[0][1], "one");
  EXPECT_EQ(*(*rows)[0][2], "1.5");
  EXPECT_EQ(*(*rows)[0][3], "2026-11-25");
  EXPECT_FALSE((*rows)[1][1].has_value());
}

TEST(EngineTest, ErrorsMapToSqlCodes) {
  auto db = Database::Open("");
  auto conn = (*db)->Connect();
  EXPECT_EQ((*conn)->Query("SELEC 1").status().code(), ErrorCode::kSqlSyntaxError);
  EXPECT_EQ((*conn)->Query("SELECT * FROM missing_table").status().code(), ErrorCode::kSqlUndefinedTable);
  EXPECT_EQ((*conn)->Query("SELECT 1; SELEC 2").status().code(), ErrorCode::kSqlSyntaxError);
}

TEST(EngineTest, NoExtensionDownloads) {
  auto db = Database::Open("");
  auto conn = (*db)->Connect();
  auto r = (*conn)->Query("SELECT current_setting('autoinstall_known_extensions')::VARCHAR, "
                          "current_setting('autoload_known_extensions')::VARCHAR");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto rows = *r->ToRows();
  EXPECT_EQ(*rows[0][0], "false");
  EXPECT_EQ(*rows[0][1], "false");
  // httpfs is not built in and must not be fetched.
  EXPECT_FALSE((*conn)->Query("SELECT * FROM read_parquet('s3://b/k.parquet')").ok());
}

TEST(EngineTest, PreparedAndAppenderAndChangedRows) {
  auto db = Database::Open("");
  auto conn = (*db)->Connect();
  ASSERT_TRUE((*conn)->Execute("CREATE TABLE s(id BIGINT, name VARCHAR, v DOUBLE, ok BOOLEAN)").ok());
  {
    auto app = (*conn)->CreateAppender("", "s");
    ASSERT_TRUE(app.ok()) << app.status().ToString();
    for (int64_t i = 0; i < 5000; ++i) {
      ASSERT_TRUE((*app)->Append(i).ok());
      ASSERT_TRUE((*app)->Append(std::string_view(i % 2 ? "a-long-name-beyond-inline" : "s")).ok());
      ASSERT_TRUE((*app)->Append(double(i) / 2).ok());
      ASSERT_TRUE((*app)->Append(i % 3 == 0).ok());
      ASSERT_TRUE((*app)->EndRow().ok());
    }
    ASSERT_TRUE((*app)->Close().ok());
  }
  auto ps = (*conn)->Prepare("SELECT count(*), sum(v), max(name) FROM s WHERE id >= $1 AND name = $2");
  ASSERT_TRUE(ps.ok()) << ps.status().ToString();
  EXPECT_EQ((*ps)->parameter_count(), 2u);
  ASSERT_TRUE((*ps)->Bind(1, int64_t{4000}).ok());
  ASSERT_TRUE((*ps)->Bind(2, std::string_view("a-long-name-beyond-inline")).ok());
  auto r = (*ps)->Execute();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto chunk = r->Next();
  ASSERT_TRUE(chunk.ok() && chunk->has_value());
  EXPECT_EQ((*chunk)->GetInt64(0, 0), 500);
  EXPECT_EQ((*chunk)->GetString(2, 0), "a-long-name-beyond-inline");
  auto del = (*conn)->Query("DELETE FROM s WHERE id < 10");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->rows_changed(), 10);
  EXPECT_FALSE(del->returns_rows());
}

// Values are bound in the parameter's inferred type (no per-execution re-plan), and values
// that do not fit or do not parse still reach DuckDB's own casts and errors.
TEST(EngineTest, BindsInTheInferredParameterType) {
  auto db = Database::Open("");
  auto conn = (*db)->Connect();
  ASSERT_TRUE((*conn)->Execute("CREATE TABLE t(i INTEGER, s SMALLINT, f FLOAT, b BOOLEAN, d DECIMAL(10,2))").ok());
  auto ins = (*conn)->Prepare("INSERT INTO t VALUES ($1, $2, $3, $4, $5)");
  ASSERT_TRUE(ins.ok()) << ins.status().ToString();
  EXPECT_EQ((*ins)->param_type(1), ColumnType::kInteger);
  EXPECT_EQ((*ins)->param_type(3), ColumnType::kFloat);
  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE((*ins)->Bind(1, int64_t{7 + k}).ok());
    ASSERT_TRUE((*ins)->Bind(2, std::string_view(" 12 ")).ok());
    ASSERT_TRUE((*ins)->Bind(3, std::string_view("1.5")).ok());
    ASSERT_TRUE((*ins)->Bind(4, std::string_view("t")).ok());
    ASSERT_TRUE((*ins)->Bind(5, std::string_view("3.25")).ok());
    ASSERT_TRUE((*ins)->Execute().ok());
  }
  // Out of the inferred type's range: DuckDB reports the overflow.
  ASSERT_TRUE((*ins)->Bind(1, int64_t{1} << 40).ok());
  EXPECT_FALSE((*ins)->Execute().ok());
  ASSERT_TRUE((*ins)->Bind(1, int64_t{1}).ok());
  ASSERT_TRUE((*ins)->Bind(2, std::string_view("x")).ok());
  EXPECT_EQ((*ins)->Execute().status().code(), ErrorCode::kSqlConversion);
  auto r = (*conn)->Query("SELECT sum(i), sum(s), sum(f), bool_and(b), sum(d)::DOUBLE FROM t");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto rows = *r->ToRows();
  EXPECT_EQ(*rows[0][0], "24");
  EXPECT_EQ(*rows[0][1], "36");
  EXPECT_EQ(*rows[0][2], "4.5");
  EXPECT_EQ(*rows[0][3], "true");
  EXPECT_EQ(*rows[0][4], "9.75");
}

TEST(EngineTest, StreamsLargeResultsChunkByChunk) {
  auto db = Database::Open("");
  auto conn = (*db)->Connect();
  auto r = (*conn)->Query("SELECT range AS i FROM range(10000000)");
  ASSERT_TRUE(r.ok());
  int64_t total = 0, chunks = 0;
  for (;;) {
    auto c = r->Next();
    ASSERT_TRUE(c.ok());
    if (!*c) break;
    ++chunks;
    total += int64_t((*c)->size());
  }
  EXPECT_EQ(total, 10000000);
  EXPECT_GT(chunks, 1000);
}

TEST(EngineTest, InterruptCancelsRunningQuery) {
  auto db = Database::Open("");
  auto conn = (*db)->Connect();
  Connection* c = conn->get();
  std::thread canceller([c] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    c->Interrupt();
  });
  auto r = c->Query("SELECT count(*) FROM range(100000000000) a");
  Status s = r.ok() ? r->Next().status() : r.status();
  canceller.join();
  EXPECT_EQ(s.code(), ErrorCode::kCancelled) << s.ToString();
}

TEST(EngineTest, ParquetRoundTripOnDisk) {
  std::string dir = std::filesystem::temp_directory_path() / ("tarn-duck-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    auto db = Database::Open(dir + "/w.duckdb");
    ASSERT_TRUE(db.ok());
    auto conn = (*db)->Connect();
    ASSERT_TRUE((*conn)->Execute("COPY (SELECT range AS i, 'x' || range AS s FROM range(1000)) TO '" + dir +
                                 "/p.parquet' (FORMAT parquet)").ok());
    auto r = (*conn)->Query("SELECT count(*), sum(i) FROM read_parquet('" + dir + "/p.parquet')");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto rows = *r->ToRows();
    EXPECT_EQ(*rows[0][0], "1000");
    EXPECT_EQ(*rows[0][1], "499500");
  }
  std::filesystem::remove_all(dir);
}

// A registered row source: the query sees its columns and rows (NULLs, strings longer than
// DuckDB's 12-byte inline form, several chunks); an error from Fill is what the query returns;
// without a source attached the function refuses to bind.
TEST(EngineTest, RowSourceFeedsAQueryChunkByChunkAndItsErrorIsTheQuerys) {
  class Counter final : public RowSource {
   public:
    explicit Counter(size_t n, bool fail = false) : n_(n), fail_(fail) {}
    const std::vector<RowSourceColumn>& columns() const override { return columns_; }
    Result<size_t> Fill(ChunkWriter& out, size_t capacity) override {
      if (fail_ && next_ > 0) return Error(ErrorCode::kInvalidArgument, "source failed at row 5000");
      size_t k = 0;
      for (; k < capacity && next_ < n_; ++k, ++next_) {
        out.Set<int64_t>(0, k, int64_t(next_));
        if (next_ % 3 == 0) {
          out.SetNull(1, k);
        } else {
          out.SetString(1, k, "value number " + std::to_string(next_));
        }
        out.Set<int32_t>(2, k, int32_t(next_ % 10));
      }
      return k;
    }

   private:
    std::vector<RowSourceColumn> columns_ = {{"n", ColumnType::kBigInt},
                                             {"s", ColumnType::kVarchar},
                                             {"d", ColumnType::kDate}};
    size_t n_, next_ = 0;
    bool fail_;
  };
  auto db = std::move(Database::Open("")).value();
  auto conn = std::move(db->Connect()).value();
  auto slot = conn->RegisterRowSource("rows");
  ASSERT_TRUE(slot.ok()) << slot.status().ToString();
  EXPECT_FALSE(conn->Query("SELECT * FROM rows()").ok());

  Counter src(5000);
  (*slot)->source = &src;
  auto r = conn->Query("SELECT count(*), count(s), sum(n), max(s), max(d)::VARCHAR FROM rows()");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto rows = std::move(r->ToRows()).value();
  EXPECT_EQ(*rows[0][0], "5000");
  EXPECT_EQ(*rows[0][1], "3333");
  EXPECT_EQ(*rows[0][2], std::to_string(4999 * 5000 / 2));
  EXPECT_EQ(*rows[0][3], "value number 998");
  EXPECT_EQ(*rows[0][4], "1970-01-10");

  Counter failing(5000, true);
  (*slot)->source = &failing;
  auto bad = conn->Query("SELECT count(*) FROM rows()");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ((*slot)->error.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE((*slot)->error.message().find("row 5000"), std::string::npos);
  (*slot)->source = nullptr;
}

}  // namespace
}  // namespace tarn::sql
