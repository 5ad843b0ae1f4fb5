#include "catalog/hive_types.h"

#include <gtest/gtest.h>

namespace tarn::catalog {
namespace {

std::string D2H(const std::string& t) {
  auto r = DuckDbToHiveType(t);
  EXPECT_TRUE(r.ok()) << t << ": " << r.status().ToString();
  return r.ok() ? *r : "";
}

TEST(HiveTypes, FromDuckDb) {
  EXPECT_EQ(D2H("BIGINT"), "bigint");
  EXPECT_EQ(D2H("INTEGER"), "int");
  EXPECT_EQ(D2H("VARCHAR"), "string");
  EXPECT_EQ(D2H("DECIMAL(10,2)"), "decimal(10,2)");
  EXPECT_EQ(D2H("TIMESTAMP WITH TIME ZONE"), "timestamp");
  EXPECT_EQ(D2H("VARCHAR[]"), "array<string>");
  EXPECT_EQ(D2H("INTEGER[3]"), "array<int>");
  EXPECT_EQ(D2H("MAP(VARCHAR, DOUBLE)"), "map<string,double>");
  EXPECT_EQ(D2H("STRUCT(a INTEGER, \"b c\" VARCHAR[])"), "struct<a:int,b c:array<string>>");
  EXPECT_EQ(D2H("STRUCT(x STRUCT(y BIGINT))[]"), "array<struct<x:struct<y:bigint>>>");
  EXPECT_EQ(D2H("UBIGINT"), "decimal(20,0)");
  EXPECT_FALSE(DuckDbToHiveType("STRUCT(a").ok());
  EXPECT_FALSE(DuckDbToHiveType("WIBBLE").ok());
}

TEST(HiveTypes, ToDuckDb) {
  EXPECT_EQ(*HiveToDuckDbType("bigint"), "BIGINT");
  EXPECT_EQ(*HiveToDuckDbType("array<struct<a:int,b:string>>"),
            "STRUCT(\"a\" INTEGER, \"b\" VARCHAR)[]");
  EXPECT_EQ(*HiveToDuckDbType("map<string,array<double>>"), "MAP(VARCHAR, DOUBLE[])");
  EXPECT_EQ(*HiveToDuckDbType("decimal(12, 3)"), "DECIMAL(12,3)");
  EXPECT_EQ(*HiveToDuckDbType("varchar(20)"), "VARCHAR");
  EXPECT_EQ(HiveToDuckDbType("array<int").status().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(HiveToDuckDbType("struct<a int>").status().code(), ErrorCode::kInvalidInput);
}

TEST(HiveTypes, Widen) {
  EXPECT_EQ(WidenHiveTypes("int", "bigint"), "bigint");
  EXPECT_EQ(WidenHiveTypes("bigint", "double"), "double");
  EXPECT_EQ(WidenHiveTypes("string", "string"), "string");
  EXPECT_EQ(WidenHiveTypes("string", "int"), "");
}

}  // namespace
}  // namespace tarn::catalog
