"""psycopg 3 and asyncpg against a running ChronosDB.

    python drivers_test.py "host=127.0.0.1 port=5432 user=admin dbname=chronos"

Prints one line per check and a closing "N passed, M failed" line; exits non-zero on failure.
"""

import asyncio
import datetime as dt
import decimal
import sys
import traceback
import uuid

import asyncpg
import psycopg

DSN = sys.argv[1] if len(sys.argv) > 1 else "host=127.0.0.1 port=5432 user=admin dbname=chronos"
results = []


def check(name):
    def wrap(fn):
        try:
            if asyncio.iscoroutinefunction(fn):
                asyncio.run(fn())
            else:
                fn()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - report every failure
            results.append((name, e))
            print(f"FAIL {name}: {e!r}")
            traceback.print_exc()
        return fn

    return wrap


def asyncpg_dsn():
    parts = dict(p.split("=", 1) for p in DSN.split())
    return f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"


@check("psycopg: types round trip through parameters and binary results")
def _():
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS py_types")
        conn.execute(
            "CREATE TABLE py_types (id INT PRIMARY KEY, b BOOLEAN, n NUMERIC(10,2), f DOUBLE PRECISION,"
            " t TEXT, ts TIMESTAMPTZ, d DATE, u UUID, j JSONB, by BYTEA, big BIGINT, tm TIME)"
        )
        ts = dt.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=dt.timezone.utc)
        u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        row = (1, True, decimal.Decimal("12.34"), 1.5, "héllo", ts, dt.date(2024, 2, 29), u, psycopg.types.json.Jsonb({"a": [1, 2]}), b"\x00\xff", 2**40, dt.time(23, 59, 58, 250))
        conn.execute("INSERT INTO py_types VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            got = cur.execute("SELECT * FROM py_types WHERE id = %s", (1,)).fetchone()
            assert got[1] is True and got[2] == decimal.Decimal("12.34") and got[3] == 1.5, got
            assert got[4] == "héllo" and got[5] == ts and got[6] == dt.date(2024, 2, 29), got
            assert got[7] == u and got[8] == {"a": [1, 2]} and bytes(got[9]) == b"\x00\xff" and got[10] == 2**40, got
            assert got[11] == dt.time(23, 59, 58, 250), got
        # Rows and NUMERIC infinities, in text and in binary (record_send, NUMERIC's special signs).
        query = "SELECT (1, 'a b'::text, NULL, 2.5::numeric, (3, true)), 'Infinity'::numeric, '-Infinity'::numeric, %s::numeric"
        for binary in (False, True):
            got = conn.cursor(binary=binary).execute(query, (decimal.Decimal("-Infinity"),)).fetchone()
            inner = (3, True) if binary else "(3,t)"
            fields = (1, "a b", None, decimal.Decimal("2.5"), inner) if binary else ("1", "a b", None, "2.5", inner)
            assert got[0] == fields, got
            assert got[1] == decimal.Decimal("Infinity") and got[2] == got[3] == decimal.Decimal("-Infinity"), got
        # time with time zone: the offset survives parameters and both result formats.
        plus2 = dt.timezone(dt.timedelta(hours=2))
        minus_530 = dt.timezone(-dt.timedelta(hours=5, minutes=30))
        for binary in (False, True):
            got = conn.cursor(binary=binary).execute(
                "SELECT '12:34:56.5+02'::timetz, %s::timetz, %s::timetz + interval '1 hour'",
                (dt.time(23, 0, tzinfo=minus_530), dt.time(23, 30, tzinfo=plus2)),
            ).fetchone()
            assert got == (dt.time(12, 34, 56, 500000, tzinfo=plus2), dt.time(23, 0, tzinfo=minus_530), dt.time(0, 30, tzinfo=plus2)), got


@check("psycopg: SQL PREPARE, EXECUTE and DEALLOCATE through the extended protocol")
def _():
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("PREPARE py_double (int) AS SELECT $1 * 2 AS doubled, 'x'::text AS tag")
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            assert cur.execute("EXECUTE py_double(21)").fetchall() == [(42, "x")], binary
            assert [d.name for d in cur.description] == ["doubled", "tag"], cur.description
        conn.execute("DEALLOCATE py_double")
        try:
            conn.execute("EXECUTE py_double(1)")
            raise AssertionError("a deallocated statement ran")
        except psycopg.errors.InvalidSqlStatementName:
            pass


@check("psycopg: errors carry SQLSTATEs and transactions roll back")
def _():
    with psycopg.connect(DSN) as conn:
        conn.execute("DROP TABLE IF EXISTS py_tx")
        conn.execute("CREATE TABLE py_tx (id INT PRIMARY KEY)")
        conn.commit()
        conn.execute("INSERT INTO py_tx VALUES (1)")
        conn.commit()
        try:
            conn.execute("INSERT INTO py_tx VALUES (1)")
            raise AssertionError("duplicate accepted")
        except psycopg.errors.UniqueViolation:
            conn.rollback()
        with conn.transaction():
            conn.execute("INSERT INTO py_tx VALUES (2)")
        try:
            with conn.transaction():
                conn.execute("INSERT INTO py_tx VALUES (3)")
                conn.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero:
            pass
        n = conn.execute("SELECT count(*) FROM py_tx").fetchone()[0]
        assert n == 2, n


@check("psycopg: COPY in and out")
def _():
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS py_copy")
        conn.execute("CREATE TABLE py_copy (ts TIMESTAMPTZ, device TEXT, temp DOUBLE PRECISION)")
        with conn.cursor().copy("COPY py_copy (ts, device, temp) FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=i), f"d{i % 7}", i / 10))
        assert conn.execute("SELECT count(*), max(temp) FROM py_copy").fetchone() == (1000, 99.9)
        with conn.cursor().copy("COPY (SELECT device, count(*) FROM py_copy GROUP BY 1 ORDER BY 1) TO STDOUT") as copy:
            rows = list(copy.rows())
        assert rows[0] == ("d0", "143"), rows


@check("psycopg: Grafana PostgreSQL data source query shapes")
def _():
    with psycopg.connect(DSN, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute("DROP TABLE IF EXISTS metrics")
        conn.execute('CREATE TABLE metrics ("time" TIMESTAMPTZ, sensor TEXT, value DOUBLE PRECISION)')
        conn.execute(
            "INSERT INTO metrics SELECT '2024-01-01T00:00:00Z'::timestamptz + g * interval '30 seconds', 's' || (g % 2), g FROM generate_series(0, 9) AS g"
        )
        rows = conn.execute(
            'SELECT floor(extract(epoch from "time")/60)*60 AS "time", sensor AS metric, avg(value) AS value '
            'FROM metrics WHERE "time" BETWEEN \'2024-01-01T00:00:00Z\' AND \'2024-01-01T00:05:00Z\' '
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        assert rows[:2] == [(decimal.Decimal("1704067200"), "s0", 0.0), (decimal.Decimal("1704067200"), "s1", 1.0)], rows
        tables = [r[0] for r in conn.execute(
            "SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()]
        assert "metrics" in tables, tables
        cols = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            ("metrics",),
        ).fetchall()
        assert cols == [("time", "timestamp with time zone"), ("sensor", "text"), ("value", "double precision")], cols


@check("asyncpg: prepared statements, binary types, errors")
async def _():
    conn = await asyncpg.connect(asyncpg_dsn())
    try:
        await conn.execute("DROP TABLE IF EXISTS apg")
        await conn.execute("CREATE TABLE apg (id INT PRIMARY KEY, ts TIMESTAMPTZ, v DOUBLE PRECISION, tag TEXT)")
        ts = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        await conn.executemany("INSERT INTO apg VALUES ($1, $2, $3, $4)", [(i, ts + dt.timedelta(seconds=i), i * 0.5, f"t{i}") for i in range(100)])
        row = await conn.fetchrow("SELECT count(*), sum(v), max(ts) FROM apg WHERE id >= $1", 50)
        assert row[0] == 50 and row[1] == sum(i * 0.5 for i in range(50, 100)) and row[2] == ts + dt.timedelta(seconds=99), row
        try:
            await conn.execute("INSERT INTO apg VALUES (1, now(), 0, 'dup')")
            raise AssertionError("duplicate accepted")
        except asyncpg.UniqueViolationError:
            pass
        async with conn.transaction():
            await conn.execute("UPDATE apg SET tag = 'x' WHERE id = 1")
        assert await conn.fetchval("SELECT tag FROM apg WHERE id = 1") == "x"
    finally:
        await conn.close()


@check("asyncpg and psycopg: enum types (introspected by the drivers) in parameters, results and ORDER BY")
async def _():
    conn = await asyncpg.connect(asyncpg_dsn())
    try:
        await conn.execute("DROP TABLE IF EXISTS py_logs; DROP TYPE IF EXISTS py_level")
        await conn.execute("CREATE TYPE py_level AS ENUM ('debug', 'info', 'warn', 'error')")
        await conn.execute("CREATE TABLE py_logs (id INT PRIMARY KEY, lvl py_level NOT NULL)")
        await conn.executemany("INSERT INTO py_logs VALUES ($1, $2)", [(1, "warn"), (2, "debug"), (3, "error")])
        rows = await conn.fetch("SELECT id, lvl FROM py_logs WHERE lvl >= $1 ORDER BY lvl DESC", "info")
        assert [tuple(r) for r in rows] == [(3, "error"), (1, "warn")], rows
        try:
            await conn.execute("INSERT INTO py_logs VALUES ($1, $2)", 4, "fatal")
            raise AssertionError("a value outside the enum was accepted")
        except asyncpg.InvalidTextRepresentationError:
            pass
    finally:
        await conn.close()
    with psycopg.connect(DSN, autocommit=True) as c:
        for binary in (False, True):
            got = c.cursor(binary=binary).execute("SELECT id FROM py_logs WHERE lvl = %s", ("debug",)).fetchall()
            assert got == [(2,)], got
        assert c.execute("SELECT lvl FROM py_logs ORDER BY lvl").fetchall() == [("debug",), ("warn",), ("error",)]


failed = [r for r in results if r[1] is not None]
print(f"drivers: {len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
