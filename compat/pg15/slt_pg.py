#!/usr/bin/env python3
"""Run sqllogictest (.slt) files against a PostgreSQL-compatible server.

Usage:
    python3 slt_pg.py --url postgresql://user@127.0.0.1:5432/postgres FILE...
    python3 slt_pg.py --url ... --complete FILE...   # rewrite expected results

Each file runs on its own connection in a freshly created database (dropped
afterwards, UTF8 encoding, LC_COLLATE 'C' so text sorts by code point), so
files are independent of each other.  Session settings:
TimeZone=UTC, DateStyle='ISO, MDY', extra_float_digits=1, IntervalStyle=postgres.

Supported records (the subset of the format parsed by the Rust `sqllogictest`
crate 0.29 that this corpus uses):

    statement ok
    statement error [<regex>]
    statement count <n>
    query <types> [rowsort|valuesort|nosort] [<label>]
    query error [<regex>]
    # comment
    halt

Values are rendered in PostgreSQL's text output format, NULL as `NULL`, the
empty string as `(empty)`, columns joined by one space.  Errors are matched
(regex search) against "<SQLSTATE> <primary message>".  Result comparison uses
the crate's default normalizer (trim + collapse ASCII whitespace per line).

Requires psycopg 3 (`pip install "psycopg[binary]"`).
"""

import argparse
import os
import re
import sys

try:
    import psycopg
    from psycopg import sql as pgsql
    from psycopg.adapt import Loader
    from psycopg.conninfo import make_conninfo
except ImportError:  # pragma: no cover
    sys.stderr.write('psycopg 3 is required: pip install "psycopg[binary]"\n')
    sys.exit(2)

SESSION_SETUP = [
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, MDY'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET client_min_messages = 'warning'",
]

# Type letters: I = integer types, R = real/double/numeric, T = everything else.
INT_OIDS = {20, 21, 23}          # int8, int2, int4
REAL_OIDS = {700, 701, 1700}     # float4, float8, numeric


class RawTextLoader(Loader):
    """Return the server's text representation unchanged."""

    def load(self, data):
        return bytes(data).decode("utf-8")


def normalize(s):
    return " ".join(s.strip().split())


def render_value(v):
    if v is None:
        return "NULL"
    if v == "":
        return "(empty)"
    return v


def type_letter(oid):
    if oid in INT_OIDS:
        return "I"
    if oid in REAL_OIDS:
        return "R"
    return "T"


# --------------------------------------------------------------------------
# Parsing


class Record:
    def __init__(self, kind, header, lineno):
        self.kind = kind          # 'statement' | 'query'
        self.header = header      # tokens of the header line
        self.lineno = lineno
        self.sql_lines = []
        self.has_delim = False
        self.results = []


def parse_file(text):
    """Return a list of items: either ('raw', line) or ('rec', Record)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    items = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        toks = line.split()
        if line.startswith("#") or not toks or toks[0] not in ("statement", "query"):
            items.append(("raw", line))
            i += 1
            continue
        rec = Record(toks[0], toks, i + 1)
        i += 1
        # SQL lines up to '----' or blank line
        while i < n and lines[i] != "":
            if lines[i] == "----":
                rec.has_delim = True
                i += 1
                break
            rec.sql_lines.append(lines[i])
            i += 1
        if rec.has_delim:
            while i < n and lines[i] != "":
                rec.results.append(lines[i])
                i += 1
        items.append(("rec", rec))
    return items


def parse_error_regex(tokens):
    """tokens after 'error' -> (kind, value). kind in empty|sqlstate|regex."""
    joined = " ".join(tokens)
    if not joined:
        return ("empty", None)
    m = re.fullmatch(r"\(([0-9A-Z]{5})\)", joined)
    if m:
        return ("sqlstate", m.group(1))
    return ("regex", joined)


def error_matches(expect, sqlstate, message):
    kind, val = expect
    if kind == "empty":
        return True
    if kind == "sqlstate":
        return sqlstate == val
    return re.search(val, f"{sqlstate} {message}") is not None


# --------------------------------------------------------------------------
# Execution


class Outcome:
    def __init__(self):
        self.error = None         # (sqlstate, message)
        self.rows = None          # list[list[str]]
        self.types = None         # str
        self.rowcount = None


def execute(conn, sql):
    out = Outcome()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            out.rowcount = cur.rowcount
            if cur.description is not None:
                out.types = "".join(type_letter(c.type_code) for c in cur.description)
                out.rows = [[render_value(v) for v in row] for row in cur.fetchall()]
    except psycopg.Error as e:
        diag = e.diag
        state = diag.sqlstate or "XX000"
        msg = diag.message_primary or str(e).strip()
        out.error = (state, msg)
    return out


def format_rows(rows, sort_mode):
    if sort_mode == "rowsort":
        rows = sorted(rows)
    elif sort_mode == "valuesort":
        rows = sorted([[v] for row in rows for v in row])
    return [" ".join(r) for r in rows]


def register_loaders(conn):
    oids = [0, 705]
    with conn.cursor() as cur:
        cur.execute("SELECT oid::int FROM pg_type")
        oids += [r[0] for r in cur.fetchall()]
    for oid in set(oids):
        conn.adapters.register_loader(oid, RawTextLoader)


def run_file(path, base_url, complete, verbose, lint):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    items = parse_file(text)

    dbname = "slt_" + re.sub(r"[^a-z0-9_]", "_", os.path.basename(path).lower())[:40] + f"_{os.getpid()}"
    admin = psycopg.connect(base_url, autocommit=True)
    admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(dbname)))
    admin.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C'").format(pgsql.Identifier(dbname)))
    failures = []
    passed = 0
    changed = False
    try:
        conn = psycopg.connect(make_conninfo(base_url, dbname=dbname), autocommit=True)
        register_loaders(conn)
        for s in SESSION_SETUP:
            conn.execute(s)
        halted = False
        for kind, obj in items:
            if kind == "raw":
                if obj.strip() == "halt":
                    halted = True
                continue
            if halted:
                continue
            rec = obj
            sql = "\n".join(rec.sql_lines)
            loc = f"{path}:{rec.lineno}"
            if verbose:
                print(f"  {loc}: {' '.join(rec.header)}")
            out = execute(conn, sql)
            err_text = f"{out.error[0]} {out.error[1]}" if out.error else None
            h = rec.header

            def fail(msg):
                failures.append(f"{loc}: {msg}\n    [SQL] {sql}")

            if rec.kind == "statement":
                if len(h) < 2:
                    fail("bad header"); continue
                if h[1] == "ok":
                    if out.error:
                        fail(f"statement failed: {err_text}")
                    else:
                        passed += 1
                elif h[1] == "count":
                    if out.error:
                        fail(f"statement failed: {err_text}")
                    elif out.rowcount != int(h[2]):
                        if complete:
                            rec.header = h[:2] + [str(out.rowcount)]; changed = True; passed += 1
                        else:
                            fail(f"expected count {h[2]}, got {out.rowcount}")
                    else:
                        passed += 1
                elif h[1] == "error":
                    expect = parse_error_regex(h[2:])
                    if not out.error:
                        fail("statement succeeded but an error was expected")
                    elif complete and expect[0] == "empty":
                        rec.header = h[:2] + [out.error[0]]; changed = True; passed += 1
                    elif not error_matches(expect, *out.error):
                        fail(f"error mismatch: expected /{' '.join(h[2:])}/, got {err_text}")
                    else:
                        passed += 1
                else:
                    fail("bad statement header")
                continue

            # query
            if len(h) >= 2 and h[1] == "error":
                expect = parse_error_regex(h[2:])
                if not out.error:
                    fail("query succeeded but an error was expected")
                elif complete and expect[0] == "empty":
                    rec.header = h[:2] + [out.error[0]]; changed = True; passed += 1
                elif not error_matches(expect, *out.error):
                    fail(f"error mismatch: expected /{' '.join(h[2:])}/, got {err_text}")
                else:
                    passed += 1
                continue
            if out.error:
                fail(f"query failed: {err_text}")
                continue
            if out.rows is None:
                fail("query returned no result set")
                continue
            types = h[1] if len(h) >= 2 else ""
            sort_mode = h[2] if len(h) >= 3 and h[2] in ("rowsort", "valuesort", "nosort") else None
            actual = format_rows(out.rows, sort_mode)
            if lint and sort_mode in (None, "nosort") and len(out.rows) > 1 \
                    and "order by" not in " ".join(sql.lower().split()):
                print(f"  warning: {loc}: {len(out.rows)} rows, no ORDER BY and no rowsort")
            if any("\n" in v or "\r" in v for r in out.rows for v in r):
                fail("a value contains a newline; not representable")
                continue
            if any(normalize(a) == "" for a in actual):
                fail("a row renders as an empty line (all-blank values); not representable")
                continue
            if complete:
                new_header = [h[0], out.types] + h[2:]
                new_results = [normalize(a) for a in actual]
                if new_header != h or new_results != rec.results or not rec.has_delim:
                    changed = True
                rec.header = new_header
                rec.results = new_results
                rec.has_delim = True
                passed += 1
                continue
            problems = []
            if types != out.types:
                problems.append(f"type string mismatch: file has {types!r}, server gives {out.types!r}")
            exp_norm = [normalize(x) for x in rec.results]
            act_norm = [normalize(x) for x in actual]
            if exp_norm != act_norm:
                problems.append("\n".join(["result mismatch", "    expected:"] + [f"      {x}" for x in exp_norm] +
                                          ["    actual:"] + [f"      {x}" for x in act_norm]))
            if problems:
                fail("\n".join(problems))
            else:
                passed += 1
        conn.close()
    finally:
        admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(dbname)))
        admin.close()

    if complete and changed:
        out_lines = []
        for kind, obj in items:
            if kind == "raw":
                out_lines.append(obj)
                continue
            out_lines.append(" ".join(obj.header))
            out_lines.extend(obj.sql_lines)
            if obj.has_delim:
                out_lines.append("----")
                out_lines.extend(obj.results)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(out_lines) + "\n")
    return passed, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("SLT_PG_URL"),
                    help="libpq URL of a database to connect to for creating per-file databases "
                         "(default: $SLT_PG_URL)")
    ap.add_argument("--complete", action="store_true",
                    help="rewrite the files, filling in expected results/type strings and empty error patterns")
    ap.add_argument("--no-lint", action="store_true", help="do not warn about unordered multi-row queries")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if not args.url:
        ap.error("--url is required")

    total_pass = total_fail = 0
    for path in args.files:
        passed, failures = run_file(path, args.url, args.complete, args.verbose, not args.no_lint)
        total_pass += passed
        total_fail += len(failures)
        status = "ok" if not failures else "FAILED"
        print(f"{path}: {passed} passed, {len(failures)} failed [{status}]")
        for f in failures:
            print("  " + f.replace("\n", "\n  "))
    print(f"{total_pass} passed, {total_fail} failed")
    sys.exit(1 if total_fail else 0)


if __name__ == "__main__":
    main()
