#!/usr/bin/env bash
# Checks docker/ without a container engine, against a running ChronosDB on 127.0.0.1 (user
# admin, no password, database chronos):
#   bash compat/docker/check.sh PG_PORT HTTP_PORT [CHRONOS_BIN]
# CHRONOS_BIN defaults to target/debug/chronos, else `chronos` on PATH.
#
# - Dashboards (docker/grafana/dashboards/*.json): every rawSql and SQL variable query runs
#   once Grafana's variables and PostgreSQL macros are expanded as Grafana expands them; a
#   query reading `readings` must return rows. When `readings` is missing it is created and
#   filled with a few hundred rows over the last two days, and dropped at the end; an existing
#   one is used as it is and left alone.
# - Every PromQL expr names only series chronos exports: those of the running server's
#   /metrics, of an edge, of a node taking pushes and of a cluster of two (loopback nodes
#   started from CHRONOS_BIN for a few seconds: their sync series exist only in those roles,
#   a leader's series about its followers only in a cluster), and `up`,
#   which Prometheus adds to every target. Every job label is a job of prometheus.yml.
# - Every chronos command in docker/docker-compose.yml, docker/*.sh and the Dockerfile's CMD:
#   the subcommand exists, each --flag is in `chronos SUBCOMMAND --help`; every CHRONOS_*
#   variable the compose file sets is in that help ([env: …]) or read from the environment by
#   src/main.rs. Cluster peers, sync targets and scrape targets name services listening on
#   those ports; every /certs file named is one docker/setup.sh makes; every ${VAR} has a
#   line in docker/.env.example; data source uids of the dashboards are provisioned.
# - docker-compose (Debian's 1.29, no engine needed) validates the compose file when it is
#   installed (.ci/run installs it).
# - With python3's yaml module, the compose file parses and every depends_on, named volume,
#   network, bind-mounted path and build context it refers to exists.
# One line per check, then `docker: N passed, M failed`; the exit status is 1 on any failure.
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash compat/docker/check.sh PG_PORT HTTP_PORT [CHRONOS_BIN]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
exec python3 - "$root" "$@" <<'PY'
import datetime, glob, json, os, re, shlex, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.request
from decimal import Decimal

ROOT, PG_PORT, HTTP_PORT = sys.argv[1], sys.argv[2], sys.argv[3]
DOCKER = os.path.join(ROOT, "docker")
COMPOSE = os.path.join(DOCKER, "docker-compose.yml")
if len(sys.argv) > 4:
    BIN = sys.argv[4]
elif os.access(os.path.join(ROOT, "target/debug/chronos"), os.X_OK):
    BIN = os.path.join(ROOT, "target/debug/chronos")
else:
    BIN = shutil.which("chronos") or "chronos"
CONNINFO = f"host=127.0.0.1 port={PG_PORT} user=admin dbname=chronos"

passed = failed = 0


def report(good, name, detail=""):
    global passed, failed
    if good:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}")
        for line in str(detail).strip().splitlines()[:15]:
            print(f"       {line}")


def note(text):
    print(f"note {text}")


def read(path):
    with open(path) as f:
        return f.read()


def rel(path):
    return os.path.relpath(path, ROOT)


# ---------------------------------------------------------------- SQL through psql

def psql(sql):
    """(ok, rows, output) of one statement; rows from psql's footer."""
    proc = subprocess.run(
        ["psql", "-X", "-q", "-A", "-v", "ON_ERROR_STOP=1", "-P", "pager=off", CONNINFO, "-c", sql],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    m = re.search(r"\((\d+) rows?\)\s*$", proc.stdout)
    return proc.returncode == 0, int(m.group(1)) if m else 0, out


# ------------------------------------------------- Grafana's expansion of SQL queries

def go_float(value):
    """A float64 as Go's %v prints it (strconv 'g', shortest): 60, 0.5, 1.2096e+06."""
    d = Decimal(repr(float(value))).normalize()
    exp = d.adjusted()
    if -4 <= exp < 6:
        return format(d, "f")
    digits = "".join(map(str, d.as_tuple().digits)).rstrip("0") or "0"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if d < 0 else ''}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"


UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


def parse_interval(text):
    """Seconds of a Grafana interval ('1m', '10s', '1h'); months and years approximated."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|M|y)", text.strip().strip("'"))
    if not m:
        raise ValueError(f"error parsing interval {text}")
    return int(m.group(1)) * UNITS[m.group(2)]


def interval_text(seconds):
    for unit in ("d", "h", "m", "s"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{int(seconds * 1000)}ms"


def rfc3339nano(t):
    """Go's time.RFC3339Nano of a UTC time: trailing zeros of the fraction dropped."""
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


class TimeRange:
    def __init__(self, start, end, interval):
        self.start, self.end, self.interval = start, end, interval

    def macro(self, name, args, sql, whole):
        """One macro, as pkg/tsdb/grafana-postgresql-datasource/macros.go expands it."""
        frm, to = rfc3339nano(self.start), rfc3339nano(self.end)
        if name == "__timeGroup":   # before 5.3, `$__timeGroup(...),` meant the alias form
            index = sql.find(whole)
            if index >= 0 and sql[index + len(whole):index + len(whole) + 1] == ",":
                name = "__timeGroupAlias"
        need_col = {"__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter"}
        if name in need_col and not args[0]:
            raise ValueError(f"missing time column argument for macro {name}")
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{frm}' AND '{to}'"
        if name == "__timeFrom":
            return f"'{frm}'"
        if name == "__timeTo":
            return f"'{to}'"
        if name in ("__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias"):
            if len(args) < 2:
                raise ValueError(f"macro {name} needs time column and interval and optional fill value")
            if len(args) == 3:
                note(f"fill argument of {name} ignored here (Grafana fills after the query)")
            n = go_float(parse_interval(args[1]))
            base = (f"floor(extract(epoch from {args[0]})/{n})*{n}" if "__time" in name
                    else f"floor(({args[0]})/{n})*{n}")
            return base + (' AS "time"' if name.endswith("Alias") else "")
        if name == "__unixEpochFilter":
            s, e = int(self.start.timestamp()), int(self.end.timestamp())
            return f"{args[0]} >= {s} AND {args[0]} <= {e}"
        if name == "__unixEpochNanoFilter":
            s, e = int(self.start.timestamp() * 1e9), int(self.end.timestamp() * 1e9)
            return f"{args[0]} >= {s} AND {args[0]} <= {e}"
        if name == "__unixEpochNanoFrom":
            return str(int(self.start.timestamp() * 1e9))
        if name == "__unixEpochNanoTo":
            return str(int(self.end.timestamp() * 1e9))
        raise ValueError(f'unknown macro "{name}"')

    def expand(self, sql, variables):
        """Grafana's front end replaces variables first, then the data source its macros."""
        ms = lambda t: str(int(t.timestamp() * 1000))
        builtins = {
            "__interval_ms": str(int(parse_interval(self.interval) * 1000)),
            "__interval": self.interval,
            "__from": ms(self.start),
            "__to": ms(self.end),
            "__range_s": str(int((self.end - self.start).total_seconds())),
        }
        def value_of(m, value):
            if m.group(1) not in (None, ":raw"):
                raise ValueError(f"variable format {m.group(1)} is not handled here")
            return value

        for name, value in list(builtins.items()) + list(variables.items()):
            sql = re.sub(r"\$\{" + re.escape(name) + r"(:[a-z]+)?\}|\$" + re.escape(name) + r"\b(?!\()",
                         lambda m: value_of(m, value), sql)
        left = re.findall(r"\$\{?([A-Za-z]\w*)\b(?!\()", sql)
        if left:
            raise ValueError(f"unknown variable(s): {', '.join(sorted(set(left)))}")
        pattern = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
        original = sql
        return pattern.sub(lambda m: self.macro(m.group(1), [a.strip(" ") for a in m.group(2).split(",")],
                                                original, m.group(0)), sql)


def sql_quote(value):
    return "'" + value.replace("'", "''") + "'"


def datasource_type(target, panel):
    ds = target.get("datasource") or panel.get("datasource") or {}
    return ds.get("type", "") if isinstance(ds, dict) else str(ds)


def walk_panels(panels):
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def relative_hours(text, default):
    m = re.fullmatch(r"now-(\d+)([mhdw])", text or "")
    return int(m.group(1)) * UNITS[m.group(2)] / 3600 if m else default


IS_PG = ("grafana-postgresql-datasource", "postgres")


def check_dashboards():
    files = sorted(glob.glob(os.path.join(DOCKER, "grafana/dashboards/*.json")))
    report(bool(files), f"dashboards found: {', '.join(rel(f) for f in files) or 'none'}")
    ok, _, out = psql("SELECT 1")
    report(ok, f"psql reaches ChronosDB on port {PG_PORT}", out)
    if not ok:
        return [], []
    ok, rows, out = psql("SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'readings'")
    created = ok and rows == 0
    if created:
        ok, _, out = psql(
            "CREATE TABLE readings (device text, ts timestamptz, temp float8, PRIMARY KEY (device, ts))")
        report(ok, "readings created for the check", out)
        ok, _, out = psql(
            "INSERT INTO readings SELECT 'check-' || d, now() - g * interval '20 minutes', "
            "20 + d + 3 * sin(g / 9.0) FROM generate_series(1, 4) AS d, generate_series(0, 143) AS g")
        report(ok, "readings filled: 4 devices, one reading every 20 minutes over 2 days", out)
    else:
        note("readings exists: its rows are used and the table is left in place")
    proms, cleanup = [], (["DROP TABLE readings"] if created else [])
    for path in files:
        try:
            dash = json.loads(read(path))
        except ValueError as e:
            report(False, f"{rel(path)} is JSON", e)
            continue
        hours = relative_hours(dash.get("time", {}).get("from"), 6)
        now = datetime.datetime.now(datetime.timezone.utc)
        end = now.replace(microsecond=now.microsecond // 1000 * 1000)   # Grafana's ranges are in ms
        start = end - datetime.timedelta(hours=hours)
        # Grafana's interval: the range over about 1000 points, rounded up to a round value.
        raw = (end - start).total_seconds() / 1000
        steps = [1, 5, 10, 15, 20, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400]
        interval = interval_text(next((s for s in steps if s >= raw), 86400))
        tr = TimeRange(start, end, interval)
        note(f"{os.path.basename(path)}: range {rfc3339nano(start)} to {rfc3339nano(end)}, $__interval {interval}")
        variables = {}
        for var in dash.get("templating", {}).get("list", []):
            query = var.get("query")
            query = query.get("rawSql") if isinstance(query, dict) else query
            if var.get("type") != "query" or datasource_type(var, {}) not in IS_PG:
                continue
            name = f'variable ${var["name"]}'
            try:
                sql = tr.expand(query, variables)
            except ValueError as e:
                report(False, f"{name}: expands", e)
                continue
            proc = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", CONNINFO, "-c", sql],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
            values = [v for v in proc.stdout.splitlines() if v != ""]
            report(proc.returncode == 0 and bool(values), f"{name}: {len(values)} values", proc.stdout + proc.stderr)
            # "All" (or several values) becomes a quoted, comma-separated list.
            variables[var["name"]] = ",".join(sql_quote(v) for v in values) if values else "NULL"
        for panel in walk_panels(dash.get("panels")):
            for target in panel.get("targets", []) or []:
                kind = datasource_type(target, panel)
                title = f'"{panel.get("title", "?")}" {target.get("refId", "?")}'
                if kind in IS_PG and "rawSql" in target:
                    try:
                        sql = tr.expand(target["rawSql"], variables)
                    except ValueError as e:
                        report(False, f"sql {title}: expands", e)
                        continue
                    ok, rows, out = psql(sql)
                    needs_rows = re.search(r"\breadings\b", sql, re.I) is not None
                    report(ok and (rows > 0 or not needs_rows),
                           f"sql {title}: {rows} rows" + ("" if needs_rows else " (may be empty)"),
                           out if not ok else sql)
                elif kind == "prometheus" and target.get("expr"):
                    proms.append((title, target["expr"]))
    return proms, cleanup


# --------------------------------------------------------------------- PromQL

PROM_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
              "unless", "offset", "inf", "nan", "atan2", "topk", "bottomk", "count_values", "quantile"}


def promql_metrics(expr):
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)                       # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                      # ranges, subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\b(offset|@)\s*-?[\w.]+", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)                     # dashboard variables
    s = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        if s[m.end():].lstrip().startswith("(") or m.group(0) in PROM_WORDS:
            continue   # a function or an aggregation
        names.add(m.group(0))
    return names


def metric_names(text):
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, 1)[0])
    return names


def fetch(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def role_metrics():
    """/metrics of a node taking pushes, of an edge pushing to it, and of the two members of
    a cluster (a leader's series about its followers exist only there), all on loopback."""
    tmp = tempfile.mkdtemp(prefix="docker-check-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOS_")}
    env["CHRONOS_LOG"] = "warn"
    procs, found = [], {}
    sync = free_port()
    internode = [free_port(), free_port()]
    peers = ",".join(f"{i + 1}=127.0.0.1:{port}" for i, port in enumerate(internode))
    roles = [("sync receiver", [["single-node", "--sync-address", f"127.0.0.1:{sync}"]]),
             ("edge", [["single-node", "--edge-id", "docker-check", "--sync-target", f"http://127.0.0.1:{sync}"]]),
             ("cluster of two", [["node", "--id", str(i + 1), "--address", f"127.0.0.1:{port}", "--peers", peers]
                                 for i, port in enumerate(internode)])]
    leads = 'chronos_raft_role{role="Leader"} 1'
    try:
        for role, members in roles:
            https, logs = [], []
            for n, extra in enumerate(members):
                http = free_port()
                name = f"{role.replace(' ', '-')}-{n}"
                log = open(os.path.join(tmp, name + ".log"), "w")
                argv = [BIN] + extra[:1] + ["--data-dir", os.path.join(tmp, name),
                        "--pg-addr", f"127.0.0.1:{free_port()}", "--http-addr", f"127.0.0.1:{http}"] + extra[1:]
                procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env))
                https.append(http)
                logs.append(log)
            # Every member answers; a cluster also has a leader with a follower.
            deadline, texts = time.time() + 20, {}
            while time.time() < deadline:
                for http in https:
                    try:
                        texts[http] = fetch(f"http://127.0.0.1:{http}/metrics")
                    except OSError:
                        pass
                if len(texts) == len(https) and (len(https) == 1 or any(leads in t for t in texts.values())):
                    break
                if any(p.poll() is not None for p in procs):
                    break
                time.sleep(0.2)
            if len(texts) == len(https):
                found[role] = set().union(*(metric_names(t) for t in texts.values()))
            else:
                for log in logs:
                    log.flush()
                found[role] = "\n".join(read(log.name) for log in logs) or "did not start"
    except OSError as e:
        found = {role: str(e) for role, _ in roles}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return found


def check_promql(proms):
    try:
        exported = metric_names(fetch(f"http://127.0.0.1:{HTTP_PORT}/metrics"))
        report(True, f"/metrics on port {HTTP_PORT}: {len(exported)} series names")
    except OSError as e:
        report(False, f"/metrics on port {HTTP_PORT}", e)
        exported = set()
    for role, names in role_metrics().items():
        good = isinstance(names, set)
        report(good, f"/metrics of a loopback {role} ({os.path.basename(BIN)}): "
                     + (f"{len(names)} series names" if good else "unavailable"), "" if good else names)
        if good:
            exported |= names
    exported.add("up")   # added by Prometheus for every target it scrapes
    prom_text = read(os.path.join(DOCKER, "prometheus/prometheus.yml"))
    jobs = re.findall(r"job_name:\s*[\"']?([\w.-]+)", prom_text)
    report(bool(jobs), f"prometheus.yml jobs: {', '.join(jobs)}")
    for title, expr in proms:
        names = promql_metrics(expr)
        missing = sorted(names - exported)
        report(bool(names) and not missing, f"promql {title}: {', '.join(sorted(names)) or 'no series'}",
               f"not exported: {', '.join(missing)}\n{expr}")
        for op, value in sorted(set(re.findall(r'\bjob\s*(=~|!=|!~|=)\s*"([^"]*)"', expr))):
            if op == "=":
                report(value in jobs, f'promql {title}: job "{value}" is scraped')
            elif op == "=~":
                report(any(re.fullmatch(value, j) for j in jobs), f'promql {title}: job =~ "{value}" matches a job')


# ---------------------------------------------------------- compose and commands

def help_text(*args):
    try:
        proc = subprocess.run([BIN, *args, "--help"], capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL)
        return proc.stdout if proc.returncode == 0 else None
    except OSError:
        return None


def script_commands(script):
    """`chronos SUB …` invocations in a shell script (comments skipped, `$$` unescaped)."""
    script = script.replace("\\\n", " ").replace("$$", "$")
    found = []
    for line in script.splitlines():
        if line.strip().startswith("#"):
            continue
        for m in re.finditer(r"(?:^|[\s;&|(`])chronos\s+([a-z][a-z0-9-]*)([^;&|)<>#]*)", line):
            try:
                rest = shlex.split(m.group(2))
            except ValueError:
                rest = m.group(2).split()
            found.append([m.group(1)] + rest)
    return found


def fallback_services(text):
    """Without yaml: each service's entrypoint and command from the block lists this file uses."""
    services, current, key, lines = {}, None, None, text.splitlines()
    in_services = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\S", line):
            in_services = line.startswith("services:")
            current = None
        elif in_services and re.match(r"^  [\w.-]+:\s*$", line):
            current = line.strip()[:-1]
            services[current] = {"text": ""}
        elif current:
            services[current]["text"] += line + "\n"
            m = re.match(r"^    (entrypoint|command):\s*(.*)$", line)
            if m:
                key, value = m.group(1), m.group(2).strip()
                if value.startswith("["):
                    services[current][key] = [v.strip().strip("\"'") for v in value.strip("[]").split(",")]
                elif value:
                    services[current][key] = shlex.split(value)
                else:
                    items = []
                    while i + 1 < len(lines) and re.match(r"^      ", lines[i + 1]):
                        i += 1
                        item = lines[i][6:]
                        if item.startswith("- |") or item.startswith("- >"):
                            block = []
                            while i + 1 < len(lines) and (lines[i + 1].startswith("        ") or not lines[i + 1].strip()):
                                i += 1
                                block.append(lines[i][8:])
                            items.append("\n".join(block))
                        elif item.startswith("- "):
                            items.append(item[2:].strip().strip("\"'"))
                    services[current][key] = items
        i += 1
    for svc in services.values():
        t = svc["text"]
        svc["chronos_image"] = bool(re.search(r"<<: \*chronos\b|image:\s*chronos\b|dockerfile:\s*docker/Dockerfile", t))
    return services


def as_list(value):
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def service_argvs(name, svc, default_cmd):
    """(where, argv after `chronos`) of every chronos command a service runs."""
    entry, command = as_list(svc.get("entrypoint")), as_list(svc.get("command"))
    out = []
    if entry and os.path.basename(entry[0]) in ("sh", "bash", "ash") and "-c" in entry:
        script = " ".join(entry[entry.index("-c") + 1:] + (command or [])) if entry.index("-c") + 1 < len(entry) else (command or [""])[0]
        out += [(f"{name} (sh -c)", argv) for argv in script_commands(script)]
    elif command and os.path.basename(command[0]) in ("sh", "bash") and "-c" in command:
        out += [(f"{name} (sh -c)", argv) for argv in script_commands(command[command.index("-c") + 1])]
    elif svc.get("chronos_image") and (entry is None or entry == ["chronos"]):
        out.append((name, command if command is not None else default_cmd))
    return out


def flag_values(argv):
    values, i = {}, 1
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--"):
            if "=" in tok:
                k, v = tok.split("=", 1)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                k, v = tok, argv[i + 1]
                i += 1
            else:
                k, v = tok, ""
            values.setdefault(k, []).append(v)
        i += 1
    return values


def port_of(addr):
    return addr.rsplit(":", 1)[-1] if addr else None


def check_compose():
    text = read(COMPOSE)
    try:
        import yaml
    except ImportError:
        yaml = None
        note("python3 has no yaml module: compose references are not checked, commands are read line by line")
    data = None
    if yaml:
        try:
            data = yaml.safe_load(text)
            report(isinstance(data, dict) and isinstance(data.get("services"), dict),
                   f"{rel(COMPOSE)} parses as YAML: {len(data.get('services', {}))} services")
        except yaml.YAMLError as e:
            report(False, f"{rel(COMPOSE)} parses as YAML", e)
            data = None
    if data:
        services = {}
        for name, svc in data["services"].items():
            svc = dict(svc or {})
            build = svc.get("build")
            dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else ""
            svc["chronos_image"] = str(svc.get("image", "")).split(":")[0] == "chronos" or dockerfile == "docker/Dockerfile"
            services[name] = svc
    else:
        services = fallback_services(text)

    # Help texts of the binary.
    top = help_text()
    report(top is not None, f"{BIN} --help")
    subs = {}
    if top:
        section = top.split("Commands:", 1)[-1].split("Options:", 1)[0]
        for sub in re.findall(r"^  ([a-z][a-z0-9-]*)\s", section, re.M):
            if sub != "help":
                subs[sub] = help_text(sub) or ""
    helps_env = set()
    for h in subs.values():
        helps_env |= set(re.findall(r"\[env: (CHRONOS_[A-Z0-9_]+)=", h))
    main_rs = os.path.join(ROOT, "src/main.rs")
    try:
        env_only = set(re.findall(r"\b(?:password|var|var_os|env|try_from_env)\(\s*\"(CHRONOS_[A-Z0-9_]+)\"",
                                  read(main_rs))) - helps_env
        report(bool(env_only), f"variables read only from the environment (src/main.rs): {', '.join(sorted(env_only))}")
    except OSError as e:
        report(False, "src/main.rs readable", e)
        env_only = set()

    # The Dockerfile's default command.
    dockerfile = read(os.path.join(DOCKER, "Dockerfile"))
    m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile, re.M)
    report(bool(m) and json.loads(m.group(1)) == ["chronos"], 'Dockerfile ENTRYPOINT is ["chronos"]')
    m = re.search(r"^CMD\s+(\[.*\])\s*$", dockerfile, re.M)
    default_cmd = json.loads(m.group(1)) if m else []
    commands = [("Dockerfile CMD", default_cmd)]
    for name, svc in services.items():
        commands += service_argvs(name, svc, default_cmd)
    for path in sorted(glob.glob(os.path.join(DOCKER, "**/*.sh"), recursive=True)):
        commands += [(rel(path), argv) for argv in script_commands(read(path))]

    by_service = {}
    for where, argv in commands:
        if not argv:
            report(False, f"command {where}: empty")
            continue
        sub = argv[0]
        if sub not in subs:
            report(False, f"command {where}: chronos {sub}", f"no such subcommand (have: {', '.join(subs)})")
            continue
        flags = [t.split("=", 1)[0] for t in argv[1:] if t.startswith("-")]
        known = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*|-[a-zA-Z])\b", subs[sub]))
        unknown = [f for f in flags if f not in known]
        report(not unknown, f"command {where}: chronos {sub} {' '.join(flags)}",
               f"not in `chronos {sub} --help`: {', '.join(unknown)}")
        by_service.setdefault(where.split(" ")[0], []).append(argv)

    # CHRONOS_* variables set in the compose file.
    body = "\n".join(l for l in text.splitlines() if not l.strip().startswith("#"))
    set_vars = set(re.findall(r"(?<![\w{$])(CHRONOS_[A-Z0-9_]+)(?=\s*[:=])", body))
    if data:
        for svc in services.values():
            env = svc.get("environment") or {}
            set_vars |= {k for k in (env if isinstance(env, dict) else [e.split("=", 1)[0] for e in env])
                         if k.startswith("CHRONOS_")}
    for var in sorted(set_vars):
        where = "--help" if var in helps_env else "src/main.rs" if var in env_only else None
        report(where is not None, f"environment {var}: " + (f"read by chronos ({where})" if where else "unknown"))

    # Coherence: peers, sync targets and scrape targets name services listening there.
    listening = {}
    for svc, argvs in by_service.items():
        for argv in argvs:
            v = flag_values(argv)
            listening.setdefault(svc, {}).update({k: vals[-1] for k, vals in v.items()})
    for svc, flags in sorted(listening.items()):
        for item in (flags.get("--peers") or "").split(","):
            if not item:
                continue
            node_id, addr = item.split("=", 1)
            host, port = addr.rsplit(":", 1)
            other = listening.get(host, {})
            report(other.get("--id") == node_id and port_of(other.get("--address")) == port,
                   f"{svc} peer {node_id}={addr}: service {host} runs --id {node_id} on port {port}",
                   f"{host}: --id {other.get('--id')} --address {other.get('--address')}")
        for url in (flags.get("--sync-target") or "").split(","):
            if not url:
                continue
            m = re.match(r"(https?)://([\w.-]+):(\d+)$", url)
            other = listening.get(m.group(2), {}) if m else {}
            report(bool(m) and port_of(other.get("--sync-address")) == m.group(3),
                   f"{svc} sync target {url}: a --sync-address of that service", other.get("--sync-address"))
            if m and data and m.group(1) == "https":
                env = services.get(svc, {}).get("environment") or {}
                cloud_env = services.get(m.group(2), {}).get("environment") or {}
                report(("CHRONOS_SYNC_CA_CERT" in env or "CHRONOS_TLS_CA_CERT" in env) and "CHRONOS_TLS_CERT" in cloud_env,
                       f"{svc} sync target {url}: the edge has a CA, {m.group(2)} a certificate")
    prom_text = read(os.path.join(DOCKER, "prometheus/prometheus.yml"))
    for job in re.split(r"-\s*job_name:", prom_text)[1:]:
        scheme = "https" if re.search(r"^\s*scheme:\s*https", job, re.M) else "http"
        for target in re.findall(r'"([\w.-]+:\d+)"', job):
            host, port = target.rsplit(":", 1)
            report(port_of(listening.get(host, {}).get("--http-addr")) == port,
                   f"prometheus target {scheme}://{target}: the --http-addr of service {host}")
            if data:
                env = services.get(host, {}).get("environment") or {}
                report(("CHRONOS_TLS_CERT" in env) == (scheme == "https"),
                       f"prometheus target {target}: {scheme} as the node serves it")

    # Files under /certs: the ones docker/setup.sh makes.
    setup = read(os.path.join(DOCKER, "setup.sh"))
    default = lambda var: (re.search(var + r"=\$\{" + var + r":-([^}]*)\}", setup) or [None, ""])[1]
    env = (services.get("setup", {}).get("environment") or {}) if data else {}
    hosts = str(env.get("CLOUD_HOSTS", default("CLOUD_HOSTS"))).split()
    edges = str(env.get("EDGE_IDS", default("EDGE_IDS"))).split()
    names = hosts + re.findall(r"^cert ([\w-]+) ", setup, re.M)
    made = {"ca.pem", "ca.key"} | {f"{n}.{x}" for n in names for x in ("pem", "key")} | {f"{e}.token" for e in edges}
    for svc, argvs in by_service.items():
        for argv in argvs:
            edge = flag_values(argv).get("--edge-id", [None])[-1]
            if edge and not svc.endswith(".sh"):
                report(edge in edges, f"{svc}: edge id {edge} gets a token from setup.sh")
    named = set()
    for path in [COMPOSE, os.path.join(DOCKER, "prometheus/prometheus.yml")] + glob.glob(
            os.path.join(DOCKER, "grafana/provisioning/**/*.yml"), recursive=True):
        named |= set(re.findall(r"/certs/([\w.-]+)", read(path)))
    for f in sorted(named):
        report(f in made, f"/certs/{f} is made by docker/setup.sh")

    # ${VAR} of the compose file in .env.example.
    example = os.path.join(DOCKER, ".env.example")
    keys = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", read(example), re.M)) if os.path.exists(example) else set()
    for var in sorted(set(re.findall(r"(?<!\$)\$\{([A-Za-z_]\w*)", text))):
        report(var in keys, f"${{{var}}} has a line in docker/.env.example")

    # Data source uids the dashboards use are provisioned.
    provisioned = set()
    for path in glob.glob(os.path.join(DOCKER, "grafana/provisioning/datasources/*.y*ml")):
        provisioned |= set(re.findall(r"^\s*uid:\s*[\"']?([\w-]+)", read(path), re.M))
    for path in sorted(glob.glob(os.path.join(DOCKER, "grafana/dashboards/*.json"))):
        uids = set(re.findall(r'"uid":\s*"([\w-]+)"', json.dumps([p.get("datasource") for p in walk_panels(json.loads(read(path)).get("panels"))]
                                                            + [v.get("datasource") for v in json.loads(read(path)).get("templating", {}).get("list", [])])))
        report(uids <= provisioned, f"{rel(path)}: data sources {', '.join(sorted(uids))} are provisioned",
               f"provisioned: {', '.join(sorted(provisioned))}")

    if not data:
        return
    # References (needs yaml).
    top_volumes = set((data.get("volumes") or {}).keys())
    top_networks = set((data.get("networks") or {}).keys()) | {"default"}
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        deps = list(deps.keys()) if isinstance(deps, dict) else deps
        for dep in deps:
            report(dep in services, f"{name} depends_on {dep}: a service")
        for vol in svc.get("volumes") or []:
            if isinstance(vol, dict):
                source, kind = str(vol.get("source", "")), vol.get("type", "volume")
            else:
                source = vol.split(":", 1)[0]
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            if kind == "bind":
                path = os.path.normpath(os.path.join(DOCKER, source))
                report(os.path.exists(path), f"{name} mounts {source}: exists ({rel(path)})")
            elif source:
                report(source in top_volumes, f"{name} volume {source}: declared")
        nets = svc.get("networks") or []
        for net in (nets.keys() if isinstance(nets, dict) else nets):
            report(net in top_networks, f"{name} network {net}: declared")
        build = svc.get("build")
        if build:
            context = build if isinstance(build, str) else build.get("context", ".")
            ctx = os.path.normpath(os.path.join(DOCKER, context))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            report(os.path.isfile(os.path.join(ctx, dockerfile)),
                   f"{name} builds {dockerfile} in context {rel(ctx) if ctx != ROOT else '(repository root)'}")
    grafana = services.get("grafana", {})
    targets = {str(v).split(":")[1] for v in grafana.get("volumes", []) if isinstance(v, str) and v.count(":") >= 1}
    for path in glob.glob(os.path.join(DOCKER, "grafana/provisioning/dashboards/*.y*ml")):
        for p in (yaml.safe_load(read(path)) or {}).get("providers", []):
            dir_ = (p.get("options") or {}).get("path", "")
            report(dir_ in targets, f"dashboard provider {p.get('name')}: {dir_} is mounted in grafana")


def check_compose_tool():
    """`docker-compose config` (Debian's docker-compose 1.29, which needs no engine to check a
    file) on the compose file with every variable of .env.example set. Version 1 predates the
    top-level `name:` of the Compose specification, so a copy without that line is checked,
    beside the original so that relative paths resolve the same."""
    tool = shutil.which("docker-compose")
    if tool is None:
        print("note docker-compose is not installed: the compose tool's own validation was not run")
        return
    keys = re.findall(r"^([A-Z_][A-Z0-9_]*)=", read(os.path.join(DOCKER, ".env.example")), re.M)
    env = dict(os.environ, **{k: "check" for k in keys})
    copy = os.path.join(DOCKER, ".compose-check.yml")
    with open(copy, "w") as f:
        f.write("".join(l for l in read(COMPOSE).splitlines(True) if not l.startswith("name:")))
    try:
        out = subprocess.run([tool, "--project-directory", DOCKER, "-f", copy, "config", "-q"], env=env,
                             capture_output=True, text=True, timeout=60)
        report(out.returncode == 0, f"{rel(COMPOSE)} validates with docker-compose config",
               (out.stdout + out.stderr).strip())
    finally:
        os.remove(copy)


cleanup = []
try:
    proms, cleanup = check_dashboards()
    check_promql(proms)
    check_compose()
    check_compose_tool()
finally:
    for sql in cleanup:
        ok, _, out = psql(sql)
        report(ok, "readings dropped", out)
print(f"docker: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
