// pgJDBC against Tarn's SQL endpoint: connect (SCRAM), DatabaseMetaData, and a prepared
// statement executed 10 times (pgJDBC switches to server-prepared binary transfer after 5)
// that must return identical values every time. Prints "OK" on success.
//   java -cp /usr/share/java/postgresql.jar JdbcSmoke.java URL USER PASSWORD
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;

public class JdbcSmoke {
  static void check(boolean ok, String what) {
    if (!ok) throw new AssertionError(what);
  }

  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.setProperty("user", args[1]);
    p.setProperty("password", args[2]);
    p.setProperty("prepareThreshold", "5");
    try (Connection c = DriverManager.getConnection(args[0], p)) {
      try (Statement s = c.createStatement()) {
        s.execute("create table jdbc_t(id integer, name varchar, amount decimal(12,3), ts timestamp, "
            + "d date, flag boolean, f double, big bigint)");
        s.execute("insert into jdbc_t values (1, 'one', 12.345, timestamp '2024-01-02 03:04:05.678', "
            + "date '2024-01-02', true, 1.5, 9007199254740993)");
      }
      String first = null;
      try (PreparedStatement ps = c.prepareStatement(
          "select id, name, amount, ts, d, flag, f, big from jdbc_t where id = ? and name = ?")) {
        for (int i = 0; i < 10; i++) {
          ps.setInt(1, 1);
          ps.setString(2, "one");
          try (ResultSet rs = ps.executeQuery()) {
            check(rs.next(), "row " + i);
            String v = rs.getInt(1) + "|" + rs.getString(2) + "|" + rs.getBigDecimal(3) + "|"
                + rs.getTimestamp(4) + "|" + rs.getDate(5) + "|" + rs.getBoolean(6) + "|"
                + rs.getDouble(7) + "|" + rs.getLong(8);
            if (first == null) first = v;
            check(v.equals(first), "execution " + i + ": " + v + " != " + first);
            check(!rs.next(), "one row");
          }
        }
      }
      check(first.equals("1|one|12.345|2024-01-02 03:04:05.678|2024-01-02|true|1.5|9007199254740993"),
          "values: " + first);
      // The other types a driver asks for, read through typed getters: executions 1-4 in text,
      // 5-10 in binary (prepareThreshold 5) must give the same values.
      try (Statement s = c.createStatement()) {
        s.execute("create table jdbc_more(s smallint, r real, t time, tz timestamptz, iv interval, u uuid, "
            + "b blob, j json, a integer[], n decimal(30,10))");
        s.execute("insert into jdbc_more values (7, 1.5, time '13:14:15.123456', "
            + "timestamptz '2024-05-06 07:08:09.123456+00', interval '3 days 04:05:06', "
            + "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00\\xFFab'::blob, '{\"k\": [1, 2]}', [1, 2, 3], "
            + "-12345678901234567890.0123456789)");
      }
      String more = null;
      try (PreparedStatement ps = c.prepareStatement(
          "select s, r, t, tz, iv, u, b, j, a, n from jdbc_more where s = ?")) {
        for (int i = 0; i < 10; i++) {
          ps.setShort(1, (short) 7);
          try (ResultSet rs = ps.executeQuery()) {
            check(rs.next(), "jdbc_more row " + i);
            String v = rs.getShort(1) + "|" + rs.getFloat(2) + "|" + rs.getTime(3) + "|"
                + rs.getTimestamp(4).toInstant() + "|" + rs.getObject(5) + "|" + rs.getObject(6) + "|"
                + Arrays.toString(rs.getBytes(7)) + "|" + rs.getString(8) + "|"
                + Arrays.toString((Object[]) rs.getArray(9).getArray()) + "|" + rs.getBigDecimal(10);
            if (more == null) more = v;
            check(v.equals(more), "jdbc_more execution " + i + ": " + v + " != " + more);
          }
        }
      }
      check(more.equals("7|1.5|13:14:15|2024-05-06T07:08:09.123456Z|0 years 0 mons 3 days 4 hours 5 mins 6.0 secs|"
          + "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|[0, -1, 97, 98]|{\"k\": [1, 2]}|[1, 2, 3]|"
          + "-12345678901234567890.0123456789"), "more values: " + more);
      DatabaseMetaData md = c.getMetaData();
      check(md.getDatabaseProductVersion().startsWith("15"), "version " + md.getDatabaseProductVersion());
      boolean found = false;
      try (ResultSet rs = md.getTables(null, null, "jdbc_t", null)) {
        while (rs.next()) found |= rs.getString("TABLE_NAME").equals("jdbc_t");
      }
      check(found, "getTables");
      try (ResultSet rs = md.getSchemas()) {
        check(rs.next(), "getSchemas");
      }
      List<String> cols = new ArrayList<>();
      try (ResultSet rs = md.getColumns(null, null, "jdbc_more", null)) {
        while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
      }
      check(cols.equals(List.of("s:int2", "r:float4", "t:time", "tz:timestamptz", "iv:interval", "u:uuid",
          "b:bytea", "j:json", "a:_int4", "n:numeric")), "getColumns " + cols);
      // Primary keys (composite, declared out of column order) and unique constraints come back
      // as PostgreSQL reports them: key columns in key order, the index named <table>_pkey.
      try (Statement s = c.createStatement()) {
        s.execute("create table jdbc_pk(a integer, b varchar, c integer, primary key (c, a), unique (b))");
      }
      List<String> pk = new ArrayList<>();
      try (ResultSet rs = md.getPrimaryKeys(null, null, "jdbc_pk")) {
        while (rs.next()) {
          pk.add(rs.getString("COLUMN_NAME") + ":" + rs.getInt("KEY_SEQ") + ":" + rs.getString("PK_NAME"));
        }
      }
      check(pk.equals(List.of("c:1:jdbc_pk_pkey", "a:2:jdbc_pk_pkey")), "getPrimaryKeys " + pk);
      try (ResultSet rs = md.getPrimaryKeys(null, null, "jdbc_t")) {
        check(!rs.next(), "getPrimaryKeys of a table without one");
      }
      List<String> idx = new ArrayList<>();
      try (ResultSet rs = md.getIndexInfo(null, null, "jdbc_pk", true, false)) {
        while (rs.next()) {
          idx.add(rs.getString("INDEX_NAME") + ":" + rs.getString("COLUMN_NAME") + ":" + rs.getBoolean("NON_UNIQUE"));
        }
      }
      check(idx.contains("jdbc_pk_pkey:c:false") && idx.contains("jdbc_pk_pkey:a:false")
          && idx.contains("jdbc_pk_b_key:b:false"), "getIndexInfo " + idx);
      System.out.println("OK " + first);
    }
  }
}
