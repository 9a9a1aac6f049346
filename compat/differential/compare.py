"""Differential testing against PostgreSQL 15: queries generated from a seed, run on both
servers, results compared value by value (every query orders its rows fully), errors compared
by SQLSTATE class. Prints the match ratio per class of query and writes every mismatch.

    compare.py --pg DSN --chronos DSN [--seed N] [--per-class N] [--mismatches FILE]
               [--baseline FILE]

With --baseline (a JSON object of class -> lowest acceptable ratio) the exit status is 1 when a
class matches less often than its baseline says.
"""

import argparse
import json
import random
import sys

import psycopg
import psycopg.postgres
from psycopg.types.string import TextLoader

CLASSES = ["windows", "time", "numeric", "joins", "grouping", "setops", "dml", "queries"]

# Fixtures: the same tables on both servers. Values include NULLs, ties and edge values.
FIXTURES = [
    "DROP TABLE IF EXISTS dc_w, dc_times, dc_nums, dc_a, dc_b, dc_c, dc_dml",
    "CREATE TABLE dc_w (id int PRIMARY KEY, g int, o int, v int, f float8)",
    "INSERT INTO dc_w VALUES " + ", ".join(
        f"({i}, {i % 3}, {(i * 7) % 5 if i % 6 else 'NULL'}, {(i * 13) % 11 - 3 if i % 4 else 'NULL'}, {i * 0.25})"
        for i in range(1, 19)
    ),
    "CREATE TABLE dc_times (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz, iv interval)",
    """INSERT INTO dc_times VALUES
        (1, '2024-02-29', '2024-02-29 23:59:59.999999', '2024-02-29 12:00:00+00', '1 mon 2 days 03:04:05'),
        (2, '2023-12-31', '2023-12-31 00:00:00', '2023-12-31 23:30:00+00', '-1 day 02:00:00'),
        (3, '2000-01-01', '2000-01-01 12:34:56.789', '2000-01-01 00:00:00+00', '1 year 6 mons'),
        (4, '1999-06-15', '1999-06-15 06:07:08', '1999-06-15 18:00:00.5+00', '36 hours'),
        (5, '2026-07-04', '2026-07-04 00:00:01', '2026-07-04 09:15:00+00', '00:00:00.000001'),
        (6, NULL, NULL, NULL, NULL),
        (7, '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '-3 mons 10 days -00:00:01'),
        (8, '2100-03-01', '2099-12-31 23:59:59', '2038-01-19 03:14:07+00', '100 years')""",
    "CREATE TABLE dc_nums (id int PRIMARY KEY, i int, b bigint, n numeric, f float8)",
    """INSERT INTO dc_nums VALUES
        (1, 0, 0, 0, 0), (2, 1, -1, 1.5, -1.5), (3, -7, 9223372036854775807, 123.456, 1e10),
        (4, 2147483647, -9223372036854775808, -0.001, 0.1), (5, NULL, NULL, NULL, NULL),
        (6, -2147483648, 42, 99999999.99, -0.0), (7, 12, 18, 2.50, 3.75), (8, 5, 3, -7.25, 1e-5),
        (9, 3, 4, 'Infinity', 'Infinity'), (10, -2, 5, '-Infinity', '-Infinity'), (11, 1, 2, 'NaN', 'NaN')""",
    "CREATE TABLE dc_a (id int PRIMARY KEY, k int, x text)",
    "INSERT INTO dc_a VALUES (1, 1, 'a'), (2, 2, 'b'), (3, NULL, 'c'), (4, 2, NULL), (5, 5, 'e')",
    "CREATE TABLE dc_b (id int PRIMARY KEY, k int, y int)",
    "INSERT INTO dc_b VALUES (1, 2, 10), (2, 2, 20), (3, 3, NULL), (4, NULL, 40), (5, 1, 50), (6, 6, 60)",
    "CREATE TABLE dc_c (id int PRIMARY KEY, y int, z text)",
    "INSERT INTO dc_c VALUES (1, 10, 'p'), (2, 50, 'q'), (3, 60, NULL), (4, NULL, 's'), (5, 10, 't')",
]


def window_query(r):
    aggregates = ["sum(v)", "count(*)", "count(v)", "min(v)", "max(v)", "avg(v)", "sum(f)"]
    ordered = ["row_number()", "rank()", "dense_rank()", "percent_rank()", "cume_dist()", "ntile(3)",
               "lag(v)", "lead(v, 2)", "lag(v, 1, -1)", "first_value(v)", "last_value(v)", "nth_value(v, 2)"]
    partition = r.choice(["", "PARTITION BY g "])
    kind = r.choice(["none", "ROWS", "RANGE", "GROUPS", "RANGE_OFFSET"])
    bound = ["UNBOUNDED PRECEDING", "1 PRECEDING", "2 PRECEDING", "CURRENT ROW", "1 FOLLOWING",
             "UNBOUNDED FOLLOWING"]
    exclude = r.choice(["", "", " EXCLUDE CURRENT ROW", " EXCLUDE GROUP", " EXCLUDE TIES", " EXCLUDE NO OTHERS"])
    if kind == "none":
        func = r.choice(aggregates + ordered)
        order = r.choice(["", "ORDER BY o, id", "ORDER BY o DESC, id", "ORDER BY v NULLS FIRST, id"])
        if not order and func in ordered:
            order = "ORDER BY o, id"
        return f"SELECT id, {func} OVER ({partition}{order}) FROM dc_w ORDER BY id"
    i = r.randrange(len(bound) - 1)
    j = r.randrange(max(i, 1), len(bound))
    frame = f"BETWEEN {bound[i]} AND {bound[j]}"
    if kind == "ROWS":
        func = r.choice(aggregates + ["first_value(v)", "last_value(v)", "nth_value(v, 2)"])
        return f"SELECT id, {func} OVER ({partition}ORDER BY o, id ROWS {frame}{exclude}) FROM dc_w ORDER BY id"
    func = r.choice(aggregates)
    if kind == "RANGE_OFFSET":
        frame = frame.replace("1 ", f"{r.choice([1, 2])} ").replace("2 PRECEDING", "3 PRECEDING")
        direction = r.choice(["", " DESC"])
        return (f"SELECT id, {func} OVER ({partition}ORDER BY o{direction} RANGE {frame}{exclude}) "
                f"FROM dc_w ORDER BY id")
    return f"SELECT id, {func} OVER ({partition}ORDER BY o {kind} {frame}{exclude}) FROM dc_w ORDER BY id"


def time_query(r):
    units = ["microseconds", "milliseconds", "second", "minute", "hour", "day", "week", "month", "quarter",
             "year", "decade", "century", "millennium"]
    fields = units + ["dow", "doy", "isodow", "isoyear", "epoch", "julian"]
    column = r.choice(["d", "ts", "tz"])
    expressions = [
        f"date_trunc('{r.choice(units)}', {column})",
        f"extract({r.choice(fields)} FROM {column})",
        f"date_part('{r.choice(fields)}', {column})",
        f"{column} + iv",
        f"{column} - iv",
        f"{column} + interval '{r.choice(['1 mon', '-1 day', '25 hours', '1 year 2 mons 3 days'])}'",
        f"age(ts, '2000-01-01'::timestamp)",
        f"(d, {r.choice(['ts', 'iv', 'NULL::date'])}) OVERLAPS ('{r.choice(['2001-01-01', '1999-12-31'])}'::timestamp, "
        f"{r.choice(['ts', '6 * interval ' + repr('1 month'), 'NULL::timestamp'])})",
        f"(ts::time || '{r.choice(['+02', '-05:30', '+00', '-12', '+14'])}')::timetz {r.choice(['+', '-'])} iv",
        f"extract({r.choice(['hour', 'minute', 'second', 'epoch', 'timezone', 'timezone_hour', 'timezone_minute'])}"
        f" FROM (ts::time || '{r.choice(['+02', '-05:30', '+00', '-12', '+14'])}')::timetz)",
        f"(ts::time || '{r.choice(['+02', '-05:30', '+00', '-12', '+14'])}')::timetz AT TIME ZONE '{r.choice(['UTC', '+03', '-07:30'])}'",
        f"tz::timetz {r.choice(['<', '=', '>='])} '{r.choice(['12:00+02', '00:00-01', '23:59:59+00'])}'::timetz",
        f"d + (ts::time || '{r.choice(['+02', '-05:30', '+00', '-12', '+14'])}')::timetz",
        f"date_bin('{r.choice(['15 minutes', '1 hour', '1 day'])}', ts, '2000-01-01'::timestamp)",
        f"to_char({column}, '{r.choice(['YYYY-MM-DD', 'HH24:MI:SS', 'Dy DD Mon YYYY', 'IYYY-IW', 'Q', 'DDD'])}')",
        f"{column}::date",
        "ts::time",
        "tz::timestamp",
        f"justify_{r.choice(['days', 'hours', 'interval'])}(iv)",
        f"iv * {r.choice(['2', '0.5', '1.3', '-1', '1.0 / 3'])}",
        f"iv / {r.choice(['2', '3', '0.7'])}",
        f"extract({r.choice(['epoch', 'day', 'hour', 'minute', 'second', 'month', 'year'])} FROM iv)",
        f"date_trunc('{r.choice(['day', 'hour', 'month', 'year'])}', iv)",
        "d - '2000-01-01'::date",
        f"d + {r.choice(['1', '-30', '365'])}",
        f"{column} < '2001-01-01'",
        "isfinite(ts)",
        "make_date(extract(year FROM d)::int, 1, 1)",
        f"to_char({r.choice(['iv', 'ts::time', 'ts - d'])}, "
        f"'{r.choice(['HH24:MI:SS.US', 'FMHH12 AM', 'YYYY-MM-DD', 'DDD W WW', 'IYYY-IW IDDD', 'J Q RM', 'SSSS CC'])}')",
    ]
    return f"SELECT id, {r.choice(expressions)} FROM dc_times ORDER BY id"


def numeric_query(r):
    cols = ["i", "b", "n", "f"]
    a, b = r.choice(cols), r.choice(cols)
    constant = r.choice(["0", "1", "-1", "2", "0.5", "1e3", "NULL", "2147483647", "-3", "'Infinity'::numeric",
                         "'-Infinity'::numeric"])
    expressions = [
        f"{a} {r.choice(['+', '-', '*', '/', '%'])} {b}",
        f"{a} {r.choice(['+', '-', '*', '/', '%'])} {constant}",
        f"abs({a})", f"sign({a})", f"round({r.choice(['n', 'f'])})", f"round(n, {r.choice([0, 1, 2, -1])})",
        f"trunc(n, {r.choice([0, 1, -2])})", f"ceil({a})", f"floor({a})", f"sqrt({a})", f"power({a}, 2)",
        f"mod({r.choice(['i', 'b', 'n'])}, {r.choice(['3', '-4', '0'])})",
        f"div(n, {r.choice(['2', '0.3', '0'])})", f"gcd(i, {r.choice(['6', '0', '-4'])})",
        f"lcm(b, {r.choice(['2', '3'])})", "scale(n)", "min_scale(n)", "trim_scale(n)",
        f"width_bucket({r.choice(['n', 'f'])}, -10, 10, {r.choice([1, 4, 7])})",
        f"{a}::{r.choice(['int', 'bigint', 'numeric', 'numeric(10,2)', 'float8', 'text', 'smallint'])}",
        f"greatest({a}, {b}, {constant})", f"least({a}, {constant})", f"coalesce({a}, {b})",
        f"nullif({a}, {b})", f"{a} {r.choice(['<', '=', '>=', '<>'])} {b}",
        f"CASE WHEN {a} > {constant} THEN {b} ELSE {a} END",
        f"{a} IS DISTINCT FROM {b}",
    ]
    return f"SELECT id, {r.choice(expressions)} FROM dc_nums ORDER BY id"


def join_query(r):
    kinds = ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"]
    q = f"FROM dc_a a {r.choice(kinds)} dc_b b ON a.k = b.k"
    cols = ["a.id", "a.x", "b.id", "b.y"]
    if r.random() < 0.6:
        q += f" {r.choice(kinds)} dc_c c ON {r.choice(['b.y = c.y', 'c.y = b.y AND c.z IS NOT NULL'])}"
        cols += ["c.id", "c.z"]
    if r.random() < 0.3:
        q = q.replace("FROM dc_a a", "FROM dc_a a CROSS JOIN (VALUES (1), (2)) v(n)")
        cols.append("v.n")
    where = r.choice(["", " WHERE a.id > 1", " WHERE b.y IS NULL", " WHERE a.x IS NOT NULL OR b.y > 15"])
    picked = r.sample(cols, r.randint(2, len(cols)))
    order = ", ".join(f"{c} NULLS FIRST" for c in picked)
    return f"SELECT {', '.join(picked)} {q}{where} ORDER BY {order}"


def grouping_query(r):
    aggregates = ["count(*)", "sum(v)", "min(f)", "max(v)", "avg(v)", "count(DISTINCT o)", "bool_and(v > 0)",
                  "string_agg(id::text, ',' ORDER BY id)", "array_agg(v ORDER BY id)"]
    agg = r.choice(aggregates)
    form = r.choice(["plain", "plain", "rollup", "cube", "sets"])
    if form == "plain":
        keys = r.choice(["g", "o", "g, o", "g % 2", "v IS NULL"])
        having = r.choice(["", " HAVING count(*) > 1", " HAVING sum(v) IS NOT NULL"])
        n = keys.count(",") + 1
        order = ", ".join(str(i) + " NULLS FIRST" for i in range(1, n + 2))
        return f"SELECT {keys}, {agg} FROM dc_w GROUP BY {keys}{having} ORDER BY {order}"
    group = {"rollup": "ROLLUP (g, o)", "cube": "CUBE (g, o)",
             "sets": r.choice(["GROUPING SETS ((g), (o), ())", "GROUPING SETS ((g, o), (g))"])}[form]
    extra = r.choice(["", ", grouping(g)", ", grouping(g, o)"])
    return (f"SELECT g, o, {agg}{extra} FROM dc_w GROUP BY {group} "
            f"ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3 NULLS FIRST{', 4' if extra else ''}")


def setop_query(r):
    def side():
        return r.choice(["SELECT k, x FROM dc_a", "SELECT k, x FROM dc_a WHERE id > 2",
                         "SELECT k, y::text FROM dc_b", "SELECT y / 10, z FROM dc_c",
                         "SELECT 2, 'b'", "SELECT NULL::int, NULL::text"])
    op = r.choice(["UNION", "UNION ALL", "INTERSECT", "INTERSECT ALL", "EXCEPT", "EXCEPT ALL"])
    q = f"{side()} {op} {side()}"
    if r.random() < 0.3:
        q = f"({q}) {r.choice(['UNION', 'EXCEPT', 'INTERSECT'])} {side()}"
    return f"SELECT * FROM ({q}) s ORDER BY 1 NULLS FIRST, 2 NULLS FIRST"


def general_query(r):
    """Subqueries, CTEs, DISTINCT, LIMIT/OFFSET, string functions, CASE, casts."""
    text = r.choice(["x", "upper(x)", "x || '-' || coalesce(k::text, 'null')", "length(x)", "substr(x, 1, 1)",
                     "lpad(x, 3, '*')", "replace(coalesce(x, 'n'), 'a', 'A')", "concat(x, k)", "reverse(x)",
                     "split_part('a,b,c', ',', k)", "format('%s:%s', k, x)", "x IS NULL", "x LIKE 'b%'",
                     "position('b' IN coalesce(x, ''))", "initcap(x)", "repeat(x, 2)", "md5(coalesce(x, ''))",
                     "left(x, 1) || right(coalesce(x, 'zz'), 1)", "x ~ '^[a-c]$'", "translate(x, 'abc', 'xyz')"])
    forms = [
        f"SELECT id, {text} FROM dc_a ORDER BY id",
        f"SELECT DISTINCT {r.choice(['k', 'k % 2', 'x IS NULL'])} AS d FROM dc_a ORDER BY 1 NULLS FIRST",
        f"SELECT id FROM dc_a ORDER BY {r.choice(['k', 'x', 'k DESC', 'x DESC NULLS LAST', 'k NULLS FIRST'])}, id"
        f" LIMIT {r.randint(1, 4)} OFFSET {r.randint(0, 3)}",
        f"SELECT id, (SELECT max(y) FROM dc_b b WHERE b.k = a.k) FROM dc_a a ORDER BY id",
        f"SELECT id FROM dc_a a WHERE {r.choice(['', 'NOT '])}EXISTS (SELECT 1 FROM dc_b b WHERE b.k = a.k) ORDER BY id",
        f"SELECT id FROM dc_a WHERE k {r.choice(['IN', 'NOT IN'])} (SELECT k FROM dc_b{r.choice(['', ' WHERE k IS NOT NULL'])}) ORDER BY id",
        f"WITH t AS (SELECT k, count(*) AS n FROM dc_b GROUP BY k) SELECT a.id, t.n FROM dc_a a LEFT JOIN t ON t.k = a.k ORDER BY 1",
        f"SELECT id, CASE WHEN k > {r.randint(0, 5)} THEN 'big' WHEN k IS NULL THEN 'none' ELSE 'small' END FROM dc_a ORDER BY id",
        f"SELECT DISTINCT ON (k) k, id FROM dc_b ORDER BY k NULLS FIRST, id {r.choice(['ASC', 'DESC'])}",
        f"SELECT id, {r.choice(['k::text', 'k::float8 / 3', 'k::numeric / 3', 'x::varchar(1)', 'k::bool', 'cast(k AS bigint) * 3000000000'])} FROM dc_a ORDER BY id",
        f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + {r.randint(1, 3)} FROM s WHERE n < {r.randint(5, 20)}) SELECT n FROM s ORDER BY n",
        f"SELECT count(*) FILTER (WHERE y > {r.randint(0, 50)}), array_agg(DISTINCT k ORDER BY k) FROM dc_b",
        f"SELECT id, k FROM dc_a WHERE (k, id) {r.choice(['>', '<', '=', '<>'])} ({r.randint(1, 5)}, {r.randint(1, 5)}) ORDER BY id",
        f"SELECT id, greatest(k, {r.randint(0, 5)}), least(x, 'c') FROM dc_a ORDER BY id",
        f"SELECT id, {r.choice(['(k, x)', 'ROW(k, x, id)', '(k, x) IS NULL', '(k, x) IS NOT NULL', 'a', '(a).x', 'ROW(k)'])}"
        " FROM dc_a a ORDER BY id",
        f"SELECT (k, {r.choice(['k % 2', 'y > 20', 'NULL::int'])}) AS r, count(*) FROM dc_b GROUP BY 1 ORDER BY 1 {r.choice(['ASC', 'DESC'])}",
    ]
    return r.choice(forms)


def dml_sequence(r):
    steps = ["DROP TABLE IF EXISTS dc_dml",
             "CREATE TABLE dc_dml (k int PRIMARY KEY, v int CHECK (v BETWEEN -100 AND 100), t text NOT NULL DEFAULT 'x')"]
    for _ in range(r.randint(3, 7)):
        k, v = r.randint(1, 6), r.choice([r.randint(-20, 20), 150, "NULL"])
        steps.append(r.choice([
            f"INSERT INTO dc_dml (k, v) VALUES ({k}, {v}) RETURNING *",
            f"INSERT INTO dc_dml VALUES ({k}, {v}, 'i'), ({k % 6 + 1}, 1, 'j') ON CONFLICT (k) DO NOTHING RETURNING k, v",
            f"INSERT INTO dc_dml VALUES ({k}, {v}) ON CONFLICT (k) DO UPDATE SET v = dc_dml.v + excluded.v RETURNING *",
            f"UPDATE dc_dml SET v = v * {r.choice([2, -1, 10])} WHERE k {r.choice(['<', '>', '='])} {k} RETURNING k, v",
            f"UPDATE dc_dml SET t = t || k::text, v = coalesce(v, 0) + 1 WHERE v IS NULL OR v > {r.randint(-5, 5)}",
            f"DELETE FROM dc_dml WHERE k % {r.choice([2, 3])} = 0 RETURNING k",
            f"INSERT INTO dc_dml (k, t) VALUES ({k}, NULL)",
        ]))
    steps.append("SELECT k, v, t FROM dc_dml ORDER BY k")
    return steps


GENERATORS = {"windows": window_query, "time": time_query, "numeric": numeric_query, "joins": join_query,
              "grouping": grouping_query, "setops": setop_query, "queries": general_query}


def connect(dsn):
    conn = psycopg.connect(dsn, autocommit=True)
    # Every value as the text the server sent.
    for info in psycopg.postgres.types:
        conn.adapters.register_loader(info.oid, TextLoader)
        if info.array_oid:
            conn.adapters.register_loader(info.array_oid, TextLoader)
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


def normalize(cell):
    """Floats to 12 significant digits: the order of a float sum may differ in the last bits."""
    if cell is None:
        return None
    if any(c in cell for c in ".e") and not any(c.isalpha() and c not in "eE" for c in cell):
        try:
            return f"{float(cell):.12g}"
        except ValueError:
            pass
    return cell


def run(conn, sql):
    try:
        cur = conn.execute(sql)
        if cur.description is None:
            return ("ok", cur.rowcount)
        rows = [[normalize(c) for c in row] for row in cur.fetchall()]
        if "RETURNING" in sql:
            # The order of RETURNING rows is unspecified.
            rows.sort(key=lambda row: [(c is None, c or "") for c in row])
        return ("rows", rows)
    except psycopg.Error as e:
        state = e.sqlstate or "?????"
        return ("error", state[:2])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pg", required=True)
    p.add_argument("--chronos", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--mismatches", default=None)
    p.add_argument("--baseline", default=None)
    args = p.parse_args()
    pg, ch = connect(args.pg), connect(args.chronos)
    for sql in FIXTURES:
        for conn in (pg, ch):
            conn.execute(sql)
    out = open(args.mismatches, "w") if args.mismatches else None
    ratios = {}
    for cls in CLASSES:
        r = random.Random(f"{args.seed}/{cls}")
        matched = 0
        for n in range(args.per_class):
            statements = dml_sequence(r) if cls == "dml" else [GENERATORS[cls](r)]
            a = [run(pg, s) for s in statements]
            b = [run(ch, s) for s in statements]
            if a == b:
                matched += 1
            elif out:
                first = next(i for i in range(len(a)) if a[i] != b[i])
                out.write(json.dumps({"seed": args.seed, "class": cls, "item": n, "sql": statements,
                                      "first_difference": statements[first], "postgres": a[first],
                                      "chronos": b[first]}) + "\n")
        ratios[cls] = matched / args.per_class
        print(f"{cls:9} {matched:4}/{args.per_class} {100 * ratios[cls]:6.1f}%")
    total = sum(ratios.values()) / len(ratios)
    print(f"{'all':9} {100 * total:6.1f}% (seed {args.seed})")
    if args.baseline:
        with open(args.baseline) as f:
            baseline = json.load(f)
        below = [c for c, floor in baseline.items() if ratios.get(c, 0) + 1e-9 < floor]
        for c in below:
            print(f"FAIL {c}: {100 * ratios[c]:.1f}% is below its baseline {100 * baseline[c]:.1f}%")
        print(f"differential: {len(baseline) - len(below)} passed, {len(below)} failed")
        if below:
            sys.exit(1)


if __name__ == "__main__":
    main()
