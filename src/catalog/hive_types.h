// Hive column types — the type language of Glue's StorageDescriptor.Columns — and their
// translation to and from DuckDB's, so that crawlers (DuckDB infers a file's schema) and the
// SQL endpoint (DuckDB reads a Glue table) agree with Spark, Hive, Trino and Athena.
//
//   primitive: boolean tinyint smallint int bigint float double decimal(p,s) string
//              char(n) varchar(n) binary date timestamp
//   complex:   array<T>  map<K,V>  struct<name:T,…>
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace tarn::catalog {

// One column of a StorageDescriptor (or a partition key).
struct Column {
  std::string name;
  std::string type;  // Hive type
  std::string comment;
};

// DuckDB type as DESCRIBE prints it ("BIGINT", "STRUCT(a INTEGER, \"b c\" VARCHAR)[]",
// "MAP(VARCHAR, DOUBLE)", "DECIMAL(10,2)") → Hive ("bigint", "array<struct<a:int,b c:string>>" …).
// Types Hive lacks become the nearest wider one (UBIGINT → decimal(20,0), TIME → string).
Result<std::string> DuckDbToHiveType(std::string_view duckdb_type);

// Hive type → DuckDB type for reading ("array<struct<a:int>>" → "STRUCT(\"a\" INTEGER)[]").
// Unknown or malformed types are InvalidInput.
Result<std::string> HiveToDuckDbType(std::string_view hive_type);

// Hive types that hold the same values (int and bigint widen; anything else must be equal).
// Returns the common type, or empty when the two conflict.
std::string WidenHiveTypes(const std::string& a, const std::string& b);

}  // namespace tarn::catalog
