// pgJDBC's connect-and-browse traffic for the catalog corpus (record_corpus.py): what a JDBC
// tool (DBeaver, a BI client) does on connect and while browsing the tables.
//   java -cp /usr/share/java/postgresql.jar Browse.java URL USER PASSWORD
import java.sql.*;
import java.util.*;

public class Browse {
  static void drain(ResultSet rs) throws SQLException {
    try (rs) {
      while (rs.next()) {
        for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) rs.getObject(i);
      }
    }
  }

  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.setProperty("user", args[1]);
    p.setProperty("password", args[2]);
    p.setProperty("ApplicationName", "pgjdbc");
    try (Connection c = DriverManager.getConnection(args[0], p)) {
      DatabaseMetaData md = c.getMetaData();
      md.getDatabaseProductVersion();
      drain(md.getCatalogs());
      drain(md.getSchemas());
      drain(md.getSchemas(null, "main"));
      drain(md.getTableTypes());
      drain(md.getTables(null, null, "%", new String[] {"TABLE", "VIEW"}));
      drain(md.getTables(null, "main", "sensors", null));
      drain(md.getColumns(null, "main", "sensors", "%"));
      drain(md.getPrimaryKeys(null, "main", "sensors"));
      drain(md.getIndexInfo(null, "main", "sensors", false, true));
      drain(md.getImportedKeys(null, "main", "sensors"));
      drain(md.getExportedKeys(null, "main", "sensors"));
      drain(md.getTypeInfo());
      drain(md.getProcedures(null, "main", "%"));
      drain(md.getFunctions(null, "main", "%"));
      drain(md.getUDTs(null, null, "%", null));
      drain(md.getTablePrivileges(null, "main", "sensors"));
      drain(md.getColumnPrivileges(null, "main", "sensors", "%"));
      drain(md.getBestRowIdentifier(null, "main", "sensors", DatabaseMetaData.bestRowSession, true));
      drain(md.getVersionColumns(null, "main", "sensors"));
      drain(md.getClientInfoProperties());
      // A prepared query over every column type: result metadata lookups (pg_type, pg_attribute).
      try (PreparedStatement ps = c.prepareStatement("select * from sensors where id > ?")) {
        ps.setInt(1, 0);
        try (ResultSet rs = ps.executeQuery()) {
          ResultSetMetaData m = rs.getMetaData();
          for (int i = 1; i <= m.getColumnCount(); i++) {
            m.getColumnTypeName(i);
            m.isNullable(i);
            m.isAutoIncrement(i);
            m.getTableName(i);
            m.getSchemaName(i);
            m.getPrecision(i);
          }
        }
      }
      c.setAutoCommit(false);
      c.setReadOnly(true);
      c.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
      c.rollback();
    }
  }
}
