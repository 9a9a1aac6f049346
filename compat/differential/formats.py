"""Result formats against PostgreSQL 15: every type, over a range of values, and expressions
whose result type is inferred, selected on both servers in text and in binary format. The
declared type OID and the raw bytes of each value must be the same, as a driver decodes a
column by its declared type.

    formats.py --pg DSN --chronos DSN

Prints one line per difference and "result formats: N passed, M failed".
"""

import argparse
import sys

import psycopg

# (type, values as SQL literals): each value is selected as `value::type`.
TYPED = [
    ("boolean", ["true", "false"]),
    ("smallint", ["0", "1", "-1", "32767", "-32768"]),
    ("integer", ["0", "42", "-42", "2147483647", "-2147483648"]),
    ("bigint", ["0", "9223372036854775807", "-9223372036854775808"]),
    ("real", ["0", "'-0'", "1.5", "-2.25", "3.4028235e38", "1e-45", "'NaN'", "'Infinity'", "'-Infinity'"]),
    ("double precision", ["0", "'-0'", "0.1", "1e308", "5e-324", "'NaN'", "'Infinity'", "'-Infinity'"]),
    ("numeric", ["0", "1.5", "-123.456", "100000", "0.000001", "12345678901234567890.12345678", "'NaN'",
                 "'Infinity'", "'-Infinity'"]),
    ("numeric(10,3)", ["1.5", "-0.001", "1234567.891"]),
    ("text", ["''", "'abc'", "'ünïcødé'", "'a''b'"]),
    ("varchar(5)", ["'ab'", "''"]),
    ("char(4)", ["'ab'", "'abcd'"]),
    ("bytea", ["'\\x'", "'\\x00ff10'"]),
    ("date", ["'2024-02-29'", "'1970-01-01'", "'2000-01-01'", "'1900-03-01'", "'infinity'", "'-infinity'"]),
    ("time", ["'00:00'", "'12:34:56.789'", "'23:59:59.999999'", "'24:00'"]),
    ("timetz", ["'12:00+02'", "'00:00:01-05:30'"]),
    ("timestamp", ["'2024-01-01 12:34:56.789'", "'1970-01-01'", "'1999-12-31 23:59:59'", "'infinity'",
                   "'-infinity'"]),
    ("timestamptz", ["'2024-01-01 12:34:56+03'", "'2000-01-01 00:00:00+00'", "'infinity'"]),
    ("interval", ["'1 year 2 mons 3 days 04:05:06.7'", "'-1 day'", "'0'", "'-00:00:00.000001'"]),
    ("uuid", ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'"]),
    ("jsonb", ["'{\"a\": 1, \"b\": [true, null]}'", "'[]'", "'\"x\"'", "'1.5'"]),
    ("integer[]", ["'{1,2,3}'", "'{}'", "'{1,NULL}'"]),
    ("bigint[]", ["'{9223372036854775807}'"]),
    ("text[]", ["'{a,\"b c\"}'", "'{NULL}'"]),
    ("double precision[]", ["'{1.5,-0}'"]),
    ("numeric[]", ["'{1.5,NaN}'"]),
    ("boolean[]", ["'{t,f}'"]),
]

# Expressions whose result type comes from inference (operators, functions, aggregates).
INFERRED = [
    "1 + 2", "1 + 2::bigint", "2::smallint * 3::smallint", "1 + 2.5", "1 + 2.5::real", "1.5::real * 2",
    "7 / 2", "7 % 3", "7.0 / 2", "2 ^ 3", "-(1::smallint)", "abs(-2::smallint)",
    "nullif(1, 2.5::real)", "nullif(1::int2, 2::int4)", "nullif(2.5::real, 1.5::numeric)", "nullif(1, 2.2)",
    "coalesce(1, 2.5::real)", "coalesce(NULL, 1::int2)", "coalesce(1::int2, 2::int8)", "greatest(1, 2.5)",
    "least(1::real, 2::float8)", "CASE WHEN true THEN 1 ELSE 2.5 END", "CASE WHEN true THEN 1::int2 ELSE 2::int8 END",
    "(SELECT count(*) FROM (VALUES (1), (2)) v(x))", "(SELECT sum(x) FROM (VALUES (1), (2)) v(x))",
    "(SELECT sum(x) FROM (VALUES (1::bigint), (2)) v(x))", "(SELECT sum(x) FROM (VALUES (1::smallint)) v(x))",
    "(SELECT avg(x) FROM (VALUES (1), (2)) v(x))", "(SELECT avg(x) FROM (VALUES (1.5::real)) v(x))",
    "(SELECT sum(x) FROM (VALUES (1.5::real)) v(x))", "(SELECT max(x) FROM (VALUES (1::smallint)) v(x))",
    "(SELECT stddev(x) FROM (VALUES (1), (3)) v(x))", "(SELECT array_agg(x) FROM (VALUES (1), (3)) v(x))",
    "length('abc')", "round(2.567, 2)", "round(2.5::float8)", "floor(2.5)", "ceil(2.5::real)", "sqrt(2)",
    "power(2, 10)", "mod(7, 3)", "mod(7::bigint, 3)", "trunc(2.567)",
    "extract(year FROM date '2024-05-06')", "date_part('hour', timestamp '2024-05-06 07:08:09')",
    "date '2024-05-06' + 3", "date '2024-05-06' - date '2024-05-01'", "date '2024-05-06' + interval '1 hour'",
    "timestamp '2024-05-06 07:00' - timestamp '2024-05-05 06:00'", "now() - now()",
    "date_trunc('hour', timestamptz '2024-05-06 07:08:09+00')", "interval '1 day' * 2",
    "'abc' || 1", "upper('abc')", "substr('abcdef', 2, 3)", "position('c' IN 'abc')",
    "1 = 1", "1 < 2.5::real", "'a' LIKE 'a%'", "1 IN (1, 2)", "NULL::int IS NULL",
    "cast(1.5 AS integer)", "cast('12' AS bigint)", "cast(2.5 AS real)", "1::boolean", "'1 day'::interval",
    "gen_random_uuid() IS NOT NULL", "pg_typeof(1)::text", "row_number() OVER ()",
]


def fetch(conn, sql, binary):
    """The declared type OID and the raw bytes of the first value, or the error's SQLSTATE."""
    try:
        with conn.cursor(binary=binary) as cur:
            cur.execute(sql)
            result = cur.pgresult
            return ("ok", result.ftype(0), result.get_value(0, 0))
    except psycopg.Error as e:
        return ("error", e.sqlstate, None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", required=True)
    parser.add_argument("--chronos", required=True)
    args = parser.parse_args()
    pg = psycopg.connect(args.pg, autocommit=True)
    chronos = psycopg.connect(args.chronos, autocommit=True)
    for conn in (pg, chronos):
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET extra_float_digits = 1")
    queries = [f"SELECT {value}::{t}" for t, values in TYPED for value in values]
    queries += [f"SELECT {e}" for e in INFERRED]
    passed = failed = 0
    for sql in queries:
        for binary in (False, True):
            expected = fetch(pg, sql, binary)
            actual = fetch(chronos, sql, binary)
            if expected == actual:
                passed += 1
            else:
                failed += 1
                form = "binary" if binary else "text"
                print(f"DIFF {form}: {sql}\n  postgresql: {expected}\n  chronos:    {actual}")
    print(f"result formats: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
