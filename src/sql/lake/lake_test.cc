#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sql/duckdb/engine.h"
#include "sql/lake/redshift_statements.h"
#include "sql/lake/sql_text.h"
#include "sql/lake/table_refs.h"
#include "sql/lake/table_view.h"

namespace tarn::sql::lake {
namespace {

TEST(SqlText, TokensSkipStringsCommentsAndQuotedNames) {
  auto t = Tokenize("SELECT 'a.b' -- iot.x\n, \"Iot\".\"T\" /* x /* nested */ y */ FROM e'it\\'s' $$iot.t$$ $1");
  ASSERT_EQ(t.size(), 10u);
  EXPECT_TRUE(t[0].Is("SELECT"));
  EXPECT_EQ(t[1].kind, TokenKind::kString);
  EXPECT_EQ(t[1].text, "a.b");
  EXPECT_TRUE(t[2].IsSymbol(','));
  EXPECT_EQ(t[3].kind, TokenKind::kQuotedIdent);
  EXPECT_EQ(t[3].name, "iot");
  EXPECT_TRUE(t[4].IsSymbol('.'));
  EXPECT_EQ(t[5].text, "T");
  EXPECT_TRUE(t[6].Is("FROM"));
  EXPECT_EQ(t[7].text, "it's");
  EXPECT_EQ(t[8].text, "iot.t");
  EXPECT_EQ(t[9].kind, TokenKind::kParam);
  // Unterminated input stops the list.
  EXPECT_EQ(Tokenize("SELECT 'open").size(), 1u);
  size_t next;
  auto q = Tokenize("tarn.iot.telemetry t");
  EXPECT_EQ(QualifiedName(q, 0, &next), (std::vector<std::string>{"tarn", "iot", "telemetry"}));
  EXPECT_EQ(next, 5u);
}

TEST(RedshiftStatements, Classify) {
  EXPECT_EQ(ClassifyStatement("unload ('select 1') to 's3://b/x'"), LakeStatement::kUnload);
  EXPECT_EQ(ClassifyStatement("COPY t FROM 's3://curated/x/' FORMAT AS PARQUET"), LakeStatement::kCopyFromS3);
  EXPECT_EQ(ClassifyStatement("COPY t FROM STDIN"), LakeStatement::kNone);
  EXPECT_EQ(ClassifyStatement("COPY t FROM '/tmp/x.csv'"), LakeStatement::kNone);
  EXPECT_EQ(ClassifyStatement("COPY (SELECT 1) TO STDOUT"), LakeStatement::kNone);
  EXPECT_EQ(ClassifyStatement("create external schema lake from data catalog database 'iot'"),
            LakeStatement::kCreateExternalSchema);
  EXPECT_EQ(ClassifyStatement("DROP SCHEMA lake"), LakeStatement::kDropSchema);
  EXPECT_EQ(ClassifyStatement("SELECT 1"), LakeStatement::kNone);
  EXPECT_EQ(ClassifyStatement("/* c */ UNLOAD ('x') TO 's3://b/'"), LakeStatement::kUnload);
}

TEST(RedshiftStatements, CreateExternalSchema) {
  auto c = ParseCreateExternalSchema(
      "CREATE EXTERNAL SCHEMA IF NOT EXISTS Lake FROM DATA CATALOG DATABASE 'IoT' "
      "IAM_ROLE 'arn:aws:iam::123456789012:role/spectrum' REGION 'us-east-1';");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "lake");
  EXPECT_EQ(c->database, "iot");
  EXPECT_TRUE(c->if_not_exists);
  EXPECT_EQ(c->iam_role, "arn:aws:iam::123456789012:role/spectrum");
  auto d = ParseCreateExternalSchema("CREATE EXTERNAL SCHEMA s FROM DATA CATALOG DATABASE 'x' IAM_ROLE default");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->iam_role, "default");
  auto pg = ParseCreateExternalSchema("CREATE EXTERNAL SCHEMA s FROM POSTGRES DATABASE 'x'");
  EXPECT_EQ(pg.status().code(), ErrorCode::kNotImplemented);
  auto bad = ParseCreateExternalSchema("CREATE EXTERNAL SCHEMA s FROM DATA CATALOG DATABASE x");
  EXPECT_EQ(bad.status().code(), ErrorCode::kSqlSyntaxError);
}

TEST(RedshiftStatements, CopyAndUnload) {
  auto c = ParseCopyFromS3(
      "COPY public.sales (id, amount) FROM 's3://curated/sales/2026/' IAM_ROLE default FORMAT AS CSV "
      "DELIMITER AS ';' IGNOREHEADER 1 GZIP NULL AS 'NA' REGION 'us-east-1' COMPUPDATE OFF");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->table, "public.sales");
  EXPECT_EQ(c->columns, (std::vector<std::string>{"id", "amount"}));
  EXPECT_EQ(c->from.bucket, "curated");
  EXPECT_EQ(c->from.key, "sales/2026/");
  EXPECT_EQ(c->format, "csv");
  EXPECT_EQ(c->delimiter, ";");
  EXPECT_EQ(c->ignore_header, 1);
  EXPECT_EQ(c->compression, "gzip");
  EXPECT_EQ(*c->null_as, "NA");
  auto j = ParseCopyFromS3("COPY t FROM 's3://b/p' FORMAT JSON 'auto'");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->format, "json");
  EXPECT_EQ(ParseCopyFromS3("COPY t FROM 's3://b/p' JSON 's3://b/paths.json'").status().code(),
            ErrorCode::kNotImplemented);
  EXPECT_EQ(ParseCopyFromS3("COPY t FROM 's3://b/p' FORMAT AVRO 'auto'").status().code(), ErrorCode::kNotImplemented);
  EXPECT_EQ(ParseCopyFromS3("COPY t FROM 's3://b/p' BOGUS").status().code(), ErrorCode::kSqlSyntaxError);

  auto u = ParseUnload(
      "UNLOAD ('select * from t where name = ''x''') TO 's3://curated/out/' IAM_ROLE 'arn:aws:iam::1:role/r' "
      "FORMAT AS PARQUET PARTITION BY (day, Hour) INCLUDE ALLOWOVERWRITE MAXFILESIZE 100 MB MANIFEST VERBOSE");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->query, "select * from t where name = 'x'");
  EXPECT_EQ(u->to.bucket, "curated");
  EXPECT_EQ(u->to.key, "out/");
  EXPECT_EQ(u->format, "parquet");
  EXPECT_EQ(u->partition_by, (std::vector<std::string>{"day", "hour"}));
  EXPECT_TRUE(u->include);
  EXPECT_TRUE(u->allow_overwrite);
  EXPECT_EQ(u->max_file_bytes, 100u << 20);
  EXPECT_TRUE(u->manifest && u->manifest_verbose);
  EXPECT_EQ(ParseUnload("UNLOAD ('x') TO 's3://b/' ENCRYPTED").status().code(), ErrorCode::kNotImplemented);
  EXPECT_EQ(ParseUnload("UNLOAD ('x') TO '/tmp/x'").status().code(), ErrorCode::kInvalidInput);
}

class Refs : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open("");
    ASSERT_TRUE(db.ok());
    db_ = std::move(*db);
    auto c = db_->Connect();
    ASSERT_TRUE(c.ok());
    conn_ = std::move(*c);
  }
  nlohmann::json Ast(const std::string& sql) {
    auto r = conn_->Query("SELECT json_serialize_sql(" + SqlLiteral(sql) + ")");
    EXPECT_TRUE(r.ok());
    auto rows = r->ToRows();
    return nlohmann::json::parse(*(*rows)[0][0]);
  }
  // The predicate for the first reference to iot.telemetry in `sql`.
  std::string Predicate(const std::string& sql, size_t nth = 0) {
    ast_ = Ast(sql);
    auto refs = FindTableRefs(ast_);
    EXPECT_TRUE(refs.ok());
    size_t seen = 0;
    for (const auto& r : *refs) {
      if (r.schema == "iot" && r.table == "telemetry" && seen++ == nth) {
        EXPECT_EQ(sql.substr(r.location, 3), "iot");
        return PartitionPredicate(r, keys_);
      }
    }
    ADD_FAILURE() << "no reference in " << sql;
    return "?";
  }
  std::unique_ptr<Database> db_;
  std::unique_ptr<Connection> conn_;
  nlohmann::json ast_;
  std::vector<catalog::PartitionKey> keys_ = {{"day", "string"}, {"hour", "string"}, {"n", "int"}};
};

TEST_F(Refs, PrunesWithConjunctsOfPartitionColumns) {
  EXPECT_EQ(Predicate("SELECT device, avg(t) FROM iot.telemetry WHERE day = '2026-01-02' GROUP BY 1"),
            "`day` = '2026-01-02'");
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry t WHERE t.day >= '2026-01-01' AND temperature > 3 AND "
                      "t.hour IN ('01', '02') AND n BETWEEN 1 AND 5"),
            "(`day` >= '2026-01-01' AND `hour` IN ('01', '02') AND `n` BETWEEN 1 AND 5)");
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry WHERE '2026' < day OR (day LIKE '2025-%' AND n <> 3)"),
            "(`day` > '2026' OR (`day` LIKE '2025-%' AND `n` <> 3))");
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry WHERE telemetry.n = '7'"), "`n` = 7");
}

TEST_F(Refs, LeavesToDuckDbWhatMightMeanSomethingElse) {
  // A string key compared with a number: DuckDB casts, Glue compares text.
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry WHERE hour = 5"), "");
  // Parameters, functions, an OR with an unprunable branch.
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry WHERE day = $1"), "");
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry WHERE day = current_date::varchar"), "");
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry WHERE day = 'a' OR temperature > 1"), "");
  // Another table's column of the same name.
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry t JOIN cal c ON true WHERE c.day = 'x'"), "");
  // USING merges the column with the other table's.
  EXPECT_EQ(Predicate("SELECT * FROM iot.telemetry FULL JOIN cal USING (day) WHERE day = 'x'"), "");
  // The WHERE of an outer query does not prune a subquery's table.
  EXPECT_EQ(Predicate("SELECT * FROM (SELECT * FROM iot.telemetry) s WHERE s.day = 'x'"), "");
  // Each reference has its own predicate.
  std::string self = "SELECT * FROM iot.telemetry a, (SELECT * FROM iot.telemetry WHERE day = 'y') b WHERE a.day = 'x'";
  EXPECT_EQ(Predicate(self, 0), "`day` = 'x'");
  EXPECT_EQ(Predicate(self, 1), "`day` = 'y'");
}

TEST(TableView, HiveLayoutOneReaderElseConstantsPerPartition) {
  catalog::TableInfo t;
  t.database = "iot";
  t.name = "telemetry";
  t.classification = "parquet";
  t.columns = {{"device", "string", ""}, {"temperature", "double", ""}};
  t.partition_keys = {{"day", "string", ""}};
  auto hive = LakeTableSelect(t, {{{"2026-01-01"}, {"/d/objects/landing/t/day=2026-01-01/a.parquet"}},
                                  {{"2026-01-02"}, {"/d/objects/landing/t/day=2026-01-02/b.parquet"}}});
  ASSERT_TRUE(hive.ok()) << hive.status().ToString();
  EXPECT_NE(hive->find("hive_partitioning=true"), std::string::npos) << *hive;
  EXPECT_EQ(hive->find("UNION ALL"), std::string::npos) << *hive;
  auto odd = LakeTableSelect(t, {{{"2026-01-01"}, {"/d/objects/landing/t/p1/a.parquet"}},
                                 {{"2026-01-02"}, {"/d/objects/landing/t/p2/b.parquet"}}});
  ASSERT_TRUE(odd.ok());
  EXPECT_NE(odd->find("UNION ALL"), std::string::npos) << *odd;
  EXPECT_NE(odd->find("CAST('2026-01-02' AS VARCHAR) AS \"day\""), std::string::npos) << *odd;
  auto none = LakeTableSelect(t, {});
  ASSERT_TRUE(none.ok());
  EXPECT_NE(none->find("LIMIT 0"), std::string::npos);
  t.classification = "avro";
  EXPECT_EQ(LakeTableSelect(t, {}).status().code(), ErrorCode::kNotImplemented);
}

TEST(TableView, ReadsWhatItDescribes) {
  namespace fs = std::filesystem;
  std::string dir = fs::temp_directory_path() / ("tarn-lake-view-" + std::to_string(::getpid()));
  fs::create_directories(dir + "/day=1");
  fs::create_directories(dir + "/odd");
  { std::ofstream(dir + "/day=1/a.json") << "{\"device\":\"d1\",\"v\":1.5,\"extra\":true}\n"; }
  { std::ofstream(dir + "/odd/b.json") << "{\"device\":\"d2\"}\n"; }
  catalog::TableInfo t;
  t.database = "raw";
  t.name = "j";
  t.classification = "json";
  t.columns = {{"device", "string", ""}, {"v", "double", ""}};
  t.partition_keys = {{"day", "int", ""}};
  auto db = Database::Open("");
  auto conn = (*db)->Connect();
  for (bool hive : {true, false}) {
    std::vector<PartitionFiles> parts = {{{"1"}, {dir + "/day=1/a.json"}}};
    if (!hive) parts.push_back({{"2"}, {dir + "/odd/b.json"}});
    auto sel = LakeTableSelect(t, parts);
    ASSERT_TRUE(sel.ok()) << sel.status().ToString();
    auto r = (*conn)->Query("SELECT device, v, day, typeof(day) FROM (" + *sel + ") ORDER BY device");
    ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << *sel;
    auto rows = *r->ToRows();
    ASSERT_EQ(rows.size(), hive ? 1u : 2u);
    EXPECT_EQ(*rows[0][0], "d1");
    EXPECT_EQ(*rows[0][1], "1.5");
    EXPECT_EQ(*rows[0][2], "1");
    EXPECT_EQ(*rows[0][3], "INTEGER");
    if (!hive) {
      EXPECT_FALSE(rows[1][1]);
      EXPECT_EQ(*rows[1][2], "2");
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tarn::sql::lake
