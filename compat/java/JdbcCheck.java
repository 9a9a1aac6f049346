// pgjdbc against a running ChronosDB: a JDBC user's round trip, each check asserting the values
// that come back. Compiled and run by compat/java/run.sh PORT.
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import org.postgresql.PGStatement;

public class JdbcCheck {
  interface Body {
    void run() throws Exception;
  }

  static int passed = 0;
  static int failed = 0;
  static Connection conn;

  static void check(String name, Body body) {
    try {
      if (!name.equals("connect") && conn == null) throw new IllegalStateException("no connection");
      body.run();
      passed++;
      System.out.println("ok   " + name);
    } catch (Throwable e) {
      failed++;
      System.out.println("FAIL " + name + ": " + e);
      if (e instanceof SQLException) {
        System.out.println("     SQLSTATE " + ((SQLException) e).getSQLState());
      }
      StackTraceElement[] st = e.getStackTrace();
      for (int i = 0; i < Math.min(st.length, 12); i++) System.out.println("     at " + st[i]);
      for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
        System.out.println("     caused by " + c);
      }
    }
  }

  static void eq(Object actual, Object expected, String what) {
    if (!Objects.equals(actual, expected)) {
      throw new AssertionError(what + ": got " + show(actual) + ", want " + show(expected));
    }
  }

  static String show(Object o) {
    if (o instanceof int[]) return Arrays.toString((int[]) o);
    return o == null ? "null" : o + " (" + o.getClass().getSimpleName() + ")";
  }

  static void yes(boolean cond, String what) {
    if (!cond) throw new AssertionError(what);
  }

  // The rows inserted by the insert check; the later checks compare against them.
  static final class Row {
    final Instant ts;
    final String device;
    final Double temp;
    final long seq;
    final boolean ok;
    final BigDecimal amount;
    final UUID id;

    Row(String ts, String device, Double temp, long seq, boolean ok, String amount, String id) {
      this.ts = Instant.parse(ts);
      this.device = device;
      this.temp = temp;
      this.seq = seq;
      this.ok = ok;
      this.amount = new BigDecimal(amount);
      this.id = UUID.fromString(id);
    }
  }

  static final Row R1 = new Row("2024-01-01T00:00:00Z", "dev-a", 21.5, 1L, true, "12.3400",
      "0e7a9c52-4b1d-4f0a-9c3e-6a1b2c3d4e5f");
  static final Row R2 = new Row("2024-01-01T00:01:00.123456Z", "dev-a", -3.25, 2L, false,
      "-0.5", "a3bb189e-8bf9-3888-9912-ace4e6543002");
  static final Row[] BATCH = {
    new Row("2024-01-01T00:02:00Z", "dev-a", 1e-3, 3L, true, "99999999.9999",
        "00000000-0000-0000-0000-000000000001"),
    new Row("2024-01-01T00:00:00Z", "dev-b", null, 4L, false, "0",
        "ffffffff-ffff-ffff-ffff-ffffffffffff"),
    new Row("2024-06-30T23:59:59.5Z", "dev-b", 1.0e10, 9007199254740993L, true,
        "-12345678901234567890.12345678", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
  };

  static final String TABLE = "jdbc_readings";
  static final String INSERT =
      "INSERT INTO " + TABLE + " (ts, device, temp, seq, ok, amount, id) VALUES (?, ?, ?, ?, ?, ?, ?)";
  static final String[] COLUMNS = {"ts", "device", "temp", "seq", "ok", "amount", "id"};
  static final String[] TYPE_NAMES = {"timestamptz", "text", "float8", "int8", "bool", "numeric", "uuid"};

  static void bindRest(PreparedStatement ps, Row r) throws SQLException {
    ps.setString(2, r.device);
    if (r.temp == null) ps.setNull(3, Types.DOUBLE);
    else ps.setDouble(3, r.temp);
    ps.setLong(4, r.seq);
    ps.setBoolean(5, r.ok);
    ps.setBigDecimal(6, r.amount);
    ps.setObject(7, r.id);
  }

  static long count(String where) throws SQLException {
    try (Statement st = conn.createStatement();
        ResultSet rs = st.executeQuery("SELECT count(*) FROM " + TABLE + " " + where)) {
      yes(rs.next(), "count(*) returned no row");
      return rs.getLong(1);
    }
  }

  // Reads the current row (columns in COLUMNS order) and compares every column with r.
  static void compareRow(ResultSet rs, Row r, String what) throws SQLException {
    eq(rs.getTimestamp(1).toInstant(), r.ts, what + " ts via getTimestamp");
    eq(rs.getObject(1, OffsetDateTime.class).toInstant(), r.ts, what + " ts via getObject(OffsetDateTime)");
    eq(rs.getString(2), r.device, what + " device");
    double temp = rs.getDouble(3);
    if (r.temp == null) {
      yes(rs.wasNull(), what + " temp: want SQL NULL, got " + temp);
      eq(rs.getObject(3), null, what + " temp via getObject");
    } else {
      yes(!rs.wasNull(), what + " temp: unexpected SQL NULL");
      eq(temp, r.temp, what + " temp");
    }
    eq(rs.getLong(4), r.seq, what + " seq");
    eq(rs.getBoolean(5), r.ok, what + " ok");
    eq(rs.getBigDecimal(6), r.amount, what + " amount");
    eq(rs.getObject(7, UUID.class), r.id, what + " id via getObject(UUID)");
    eq(rs.getObject(7), r.id, what + " id via getObject");
  }

  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args.length > 0 ? args[0] : "5432");
    String url = "jdbc:postgresql://127.0.0.1:" + port + "/chronos?user=admin";

    check("connect", () -> {
      conn = DriverManager.getConnection(url);
      yes(conn.isValid(5), "isValid(5) is false");
      eq(conn.getAutoCommit(), true, "autocommit");
      eq(conn.getCatalog(), "chronos", "getCatalog");
      eq(conn.getSchema(), "public", "getSchema");
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("SELECT current_user, current_database()")) {
        yes(rs.next(), "no row");
        eq(rs.getString(1), "admin", "current_user");
        eq(rs.getString(2), "chronos", "current_database()");
      }
    });

    check("DatabaseMetaData product name and version", () -> {
      DatabaseMetaData md = conn.getMetaData();
      eq(md.getDatabaseProductName(), "PostgreSQL", "getDatabaseProductName");
      String version;
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("SHOW server_version")) {
        yes(rs.next(), "SHOW server_version returned no row");
        version = rs.getString(1);
      }
      eq(md.getDatabaseProductVersion(), version, "getDatabaseProductVersion");
      yes(version.matches("\\d+\\.\\d+.*"), "server_version " + version + " is not N.N");
      eq(md.getDatabaseMajorVersion(), Integer.parseInt(version.split("\\.")[0]), "getDatabaseMajorVersion");
      eq(md.getDatabaseMajorVersion(), 15, "major version");
      eq(md.getURL(), url, "getURL");
      eq(md.getUserName(), "admin", "getUserName");
    });

    check("create table", () -> {
      try (Statement st = conn.createStatement()) {
        st.executeUpdate("DROP TABLE IF EXISTS " + TABLE);
        int n = st.executeUpdate("CREATE TABLE " + TABLE + " (ts timestamptz NOT NULL, device text NOT NULL,"
            + " temp double precision, seq bigint, ok boolean, amount numeric, id uuid,"
            + " PRIMARY KEY (device, ts))");
        eq(n, 0, "executeUpdate(CREATE TABLE)");
      }
      eq(count(""), 0L, "rows in the new table");
    });

    check("PreparedStatement inserts and a batch", () -> {
      try (PreparedStatement ps = conn.prepareStatement(INSERT)) {
        ps.setTimestamp(1, Timestamp.from(R1.ts));
        bindRest(ps, R1);
        eq(ps.executeUpdate(), 1, "executeUpdate with setTimestamp");
        ps.setObject(1, OffsetDateTime.ofInstant(R2.ts, ZoneOffset.ofHours(5)));
        bindRest(ps, R2);
        eq(ps.executeUpdate(), 1, "executeUpdate with setObject(OffsetDateTime)");
        for (Row r : BATCH) {
          ps.setObject(1, OffsetDateTime.ofInstant(r.ts, ZoneOffset.UTC));
          bindRest(ps, r);
          ps.addBatch();
        }
        int[] counts = ps.executeBatch();
        yes(Arrays.equals(counts, new int[] {1, 1, 1}), "executeBatch: got " + Arrays.toString(counts) + ", want [1, 1, 1]");
      }
      eq(count(""), 5L, "rows after the inserts");
    });

    check("SELECT with parameters and typed getters", () -> {
      String sql = "SELECT " + String.join(", ", COLUMNS) + " FROM " + TABLE
          + " WHERE device = ? AND ts >= ? ORDER BY ts";
      try (PreparedStatement ps = conn.prepareStatement(sql)) {
        ps.setString(1, "dev-a");
        ps.setObject(2, OffsetDateTime.ofInstant(R1.ts, ZoneOffset.UTC));
        try (ResultSet rs = ps.executeQuery()) {
          ResultSetMetaData md = rs.getMetaData();
          eq(md.getColumnCount(), 7, "column count");
          for (int i = 0; i < 7; i++) {
            eq(md.getColumnName(i + 1), COLUMNS[i], "column name " + (i + 1));
            eq(md.getColumnTypeName(i + 1), TYPE_NAMES[i], "column type of " + COLUMNS[i]);
          }
          Row[] want = {R1, R2, BATCH[0]};
          for (int i = 0; i < want.length; i++) {
            yes(rs.next(), "only " + i + " rows, want 3");
            compareRow(rs, want[i], "row " + (i + 1));
          }
          yes(!rs.next(), "more than 3 rows");
        }
        ps.setString(1, "dev-b");
        ps.setTimestamp(2, Timestamp.from(Instant.parse("2024-01-01T00:00:00Z")));
        try (ResultSet rs = ps.executeQuery()) {
          yes(rs.next(), "dev-b: no rows");
          compareRow(rs, BATCH[1], "dev-b row 1");
          yes(rs.next(), "dev-b: only 1 row, want 2");
          compareRow(rs, BATCH[2], "dev-b row 2");
          yes(!rs.next(), "dev-b: more than 2 rows");
        }
      }
    });

    check("UPDATE returns the update count", () -> {
      try (PreparedStatement ps =
          conn.prepareStatement("UPDATE " + TABLE + " SET seq = seq + ?, ok = ? WHERE device = ?")) {
        ps.setLong(1, 100);
        ps.setBoolean(2, false);
        ps.setString(3, "dev-a");
        eq(ps.executeUpdate(), 3, "executeUpdate(UPDATE ... WHERE device = 'dev-a')");
        ps.setString(3, "no-such-device");
        eq(ps.executeUpdate(), 0, "executeUpdate(UPDATE matching nothing)");
      }
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("SELECT seq, ok FROM " + TABLE + " WHERE device = 'dev-a' ORDER BY ts")) {
        long[] want = {101, 102, 103};
        for (long w : want) {
          yes(rs.next(), "fewer rows than updated");
          eq(rs.getLong(1), w, "seq after update");
          eq(rs.getBoolean(2), false, "ok after update");
        }
        yes(!rs.next(), "more rows than updated");
      }
      eq(count("WHERE device = 'dev-b' AND seq < 100"), 1L, "dev-b rows left alone");
    });

    check("setAutoCommit(false) and rollback leave nothing", () -> {
      conn.setAutoCommit(false);
      try {
        try (PreparedStatement ps = conn.prepareStatement(INSERT)) {
          Row r = new Row("2024-02-01T00:00:00Z", "dev-tx", 7.0, 7L, true, "7.7",
              "11111111-2222-3333-4444-555555555555");
          ps.setObject(1, OffsetDateTime.ofInstant(r.ts, ZoneOffset.UTC));
          bindRest(ps, r);
          eq(ps.executeUpdate(), 1, "insert inside the transaction");
        }
        try (Statement st = conn.createStatement()) {
          eq(st.executeUpdate("DELETE FROM " + TABLE + " WHERE device = 'dev-b'"), 2, "delete inside the transaction");
        }
        eq(count("WHERE device = 'dev-tx'"), 1L, "own insert visible inside the transaction");
        eq(count(""), 4L, "rows inside the transaction");
        conn.rollback();
      } catch (Throwable e) {
        conn.rollback();  // setAutoCommit(true) would commit what the failed check left
        throw e;
      } finally {
        conn.setAutoCommit(true);
      }
      eq(count("WHERE device = 'dev-tx'"), 0L, "inserted rows after rollback");
      eq(count("WHERE device = 'dev-b'"), 2L, "deleted rows after rollback");
      eq(count(""), 5L, "rows after rollback");
    });

    check("unique violation is SQLSTATE 23505 and the connection keeps working", () -> {
      SQLException err = null;
      try (PreparedStatement ps = conn.prepareStatement(INSERT)) {
        ps.setTimestamp(1, Timestamp.from(R1.ts));
        bindRest(ps, R1);
        ps.executeUpdate();
      } catch (SQLException e) {
        err = e;
      }
      yes(err != null, "duplicate primary key was accepted");
      eq(err.getSQLState(), "23505", "getSQLState() of " + err.getMessage());
      yes(!conn.isClosed(), "connection closed after the error");
      eq(conn.getAutoCommit(), true, "autocommit after the error");
      try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM " + TABLE + " WHERE device = ?")) {
        ps.setString(1, "dev-a");
        try (ResultSet rs = ps.executeQuery()) {
          yes(rs.next(), "no row after the error");
          eq(rs.getLong(1), 3L, "dev-a rows after the failed insert");
        }
      }
      try (Statement st = conn.createStatement()) {
        eq(st.executeUpdate("UPDATE " + TABLE + " SET temp = 0 WHERE device = 'nobody'"), 0, "update after the error");
      }
    });

    check("DatabaseMetaData getTables and getColumns", () -> {
      DatabaseMetaData md = conn.getMetaData();
      try (ResultSet rs = md.getTables(null, "public", TABLE, new String[] {"TABLE"})) {
        yes(rs.next(), "getTables did not list " + TABLE);
        eq(rs.getString("TABLE_SCHEM"), "public", "TABLE_SCHEM");
        eq(rs.getString("TABLE_NAME"), TABLE, "TABLE_NAME");
        eq(rs.getString("TABLE_TYPE"), "TABLE", "TABLE_TYPE");
        yes(!rs.next(), "getTables listed " + TABLE + " twice");
      }
      int[] sqlTypes = {Types.TIMESTAMP, Types.VARCHAR, Types.DOUBLE, Types.BIGINT, Types.BIT, Types.NUMERIC, Types.OTHER};
      String[] nullable = {"NO", "NO", "YES", "YES", "YES", "YES", "YES"};
      try (ResultSet rs = md.getColumns(null, "public", TABLE, null)) {
        for (int i = 0; i < COLUMNS.length; i++) {
          yes(rs.next(), "getColumns listed " + i + " columns, want " + COLUMNS.length);
          eq(rs.getString("TABLE_NAME"), TABLE, "TABLE_NAME of column " + (i + 1));
          eq(rs.getString("COLUMN_NAME"), COLUMNS[i], "COLUMN_NAME " + (i + 1));
          eq(rs.getInt("ORDINAL_POSITION"), i + 1, "ORDINAL_POSITION of " + COLUMNS[i]);
          eq(rs.getString("TYPE_NAME"), TYPE_NAMES[i], "TYPE_NAME of " + COLUMNS[i]);
          eq(rs.getInt("DATA_TYPE"), sqlTypes[i], "DATA_TYPE of " + COLUMNS[i]);
          eq(rs.getString("IS_NULLABLE"), nullable[i], "IS_NULLABLE of " + COLUMNS[i]);
        }
        yes(!rs.next(), "getColumns listed more than " + COLUMNS.length + " columns");
      }
    });

    check("DatabaseMetaData getPrimaryKeys", () -> {
      try (ResultSet rs = conn.getMetaData().getPrimaryKeys(null, "public", TABLE)) {
        List<String> keys = new ArrayList<>();
        while (rs.next()) keys.add(rs.getInt("KEY_SEQ") + ":" + rs.getString("COLUMN_NAME"));
        eq(keys.toString(), "[1:device, 2:ts]", "getPrimaryKeys");
      }
    });

    check("DatabaseMetaData getIndexInfo", () -> {
      try (ResultSet rs = conn.getMetaData().getIndexInfo(null, "public", TABLE, true, false)) {
        List<String> columns = new ArrayList<>();
        while (rs.next()) {
          eq(rs.getBoolean("NON_UNIQUE"), false, "NON_UNIQUE");
          columns.add(rs.getString("INDEX_NAME") + ":" + rs.getInt("ORDINAL_POSITION") + ":" + rs.getString("COLUMN_NAME"));
        }
        eq(columns.toString(), "[" + TABLE + "_pkey:1:device, " + TABLE + "_pkey:2:ts]", "getIndexInfo");
      }
    });

    check("prepareThreshold: server-side named statements and binary transfer", () -> {
      // pgjdbc switches a PreparedStatement to a named server-side statement with binary results
      // from the prepareThreshold-th execution (5 by default); run both paths several times.
      try (PreparedStatement ins = conn.prepareStatement(INSERT)) {
        eq(ins.unwrap(PGStatement.class).getPrepareThreshold(), 5, "default prepareThreshold");
        for (int i = 0; i < 8; i++) {
          Row r = new Row("2024-03-01T00:00:0" + i + ".25Z", "dev-p", i + 0.5, 1000L + i, i % 2 == 0,
              i + ".0" + i, "00000000-0000-4000-8000-00000000000" + i);
          ins.setObject(1, OffsetDateTime.ofInstant(r.ts, ZoneOffset.UTC));
          bindRest(ins, r);
          eq(ins.executeUpdate(), 1, "insert execution " + (i + 1));
        }
        yes(ins.unwrap(PGStatement.class).isUseServerPrepare(), "insert did not switch to a server-side statement");
      }
      String sql = "SELECT " + String.join(", ", COLUMNS) + " FROM " + TABLE + " WHERE device = ? AND seq = ?";
      try (PreparedStatement ps = conn.prepareStatement(sql)) {
        for (int i = 0; i < 8; i++) {
          Row r = new Row("2024-03-01T00:00:0" + i + ".25Z", "dev-p", i + 0.5, 1000L + i, i % 2 == 0,
              i + ".0" + i, "00000000-0000-4000-8000-00000000000" + i);
          ps.setString(1, "dev-p");
          ps.setLong(2, r.seq);
          try (ResultSet rs = ps.executeQuery()) {
            yes(rs.next(), "execution " + (i + 1) + ": no row");
            compareRow(rs, r, "execution " + (i + 1));
            yes(!rs.next(), "execution " + (i + 1) + ": more than one row");
          }
        }
        yes(ps.unwrap(PGStatement.class).isUseServerPrepare(), "select did not switch to a server-side statement");
        // The same statement with the earlier rows, over the named statement.
        ps.setString(1, "dev-b");
        ps.setLong(2, BATCH[2].seq);
        try (ResultSet rs = ps.executeQuery()) {
          yes(rs.next(), "dev-b: no row");
          compareRow(rs, BATCH[2], "dev-b");
        }
      }
      eq(count("WHERE device = 'dev-p'"), 8L, "dev-p rows");
    });

    check("drop table", () -> {
      try (Statement st = conn.createStatement()) {
        eq(st.executeUpdate("DROP TABLE " + TABLE), 0, "executeUpdate(DROP TABLE)");
      }
      SQLException err = null;
      try (Statement st = conn.createStatement()) {
        st.executeQuery("SELECT count(*) FROM " + TABLE).close();
      } catch (SQLException e) {
        err = e;
      }
      yes(err != null, TABLE + " can still be queried after DROP TABLE");
      eq(err.getSQLState(), "42P01", "getSQLState() of " + err.getMessage());
    });

    if (conn != null) conn.close();
    System.out.println("pgjdbc: " + passed + " passed, " + failed + " failed");
    System.exit(failed == 0 ? 0 : 1);
  }
}
