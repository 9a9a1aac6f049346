// node-postgres against a running ChronosDB: node pg_test.mjs <port>
import pg from "pg";

const port = Number(process.argv[2] ?? 5432);
const client = new pg.Client({ host: "127.0.0.1", port, user: "admin", database: "chronos" });
const results = [];

async function check(name, fn) {
  try {
    await fn();
    results.push(true);
    console.log(`ok   ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}

function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  if (a !== b) throw new Error(`${what}: ${a} != ${b}`);
}

await client.connect();
await check("node-postgres: parameters, types and RETURNING", async () => {
  await client.query("DROP TABLE IF EXISTS js_readings");
  await client.query("CREATE TABLE js_readings (id INT PRIMARY KEY, device TEXT, temp DOUBLE PRECISION, ok BOOLEAN, ts TIMESTAMPTZ)");
  const ins = await client.query(
    "INSERT INTO js_readings VALUES ($1, $2, $3, $4, $5) RETURNING id, device",
    [1, "a", 21.5, true, new Date("2024-01-01T00:00:00Z")],
  );
  assertEqual(ins.rows, [{ id: 1, device: "a" }], "returning");
  const res = await client.query("SELECT temp, ok, ts FROM js_readings WHERE id = $1", [1]);
  assertEqual(res.rows[0].temp, 21.5, "temp");
  assertEqual(res.rows[0].ok, true, "ok");
  assertEqual(res.rows[0].ts.toISOString(), "2024-01-01T00:00:00.000Z", "ts");
});
await check("node-postgres: errors and transactions", async () => {
  try {
    await client.query("INSERT INTO js_readings (id) VALUES (1)");
    throw new Error("duplicate accepted");
  } catch (e) {
    assertEqual(e.code, "23505", "sqlstate");
  }
  await client.query("BEGIN");
  await client.query("INSERT INTO js_readings (id) VALUES (2)");
  await client.query("ROLLBACK");
  const n = await client.query("SELECT count(*)::int AS n FROM js_readings");
  assertEqual(n.rows[0].n, 1, "count after rollback");
});
await check("node-postgres: simple protocol with several statements", async () => {
  const res = await client.query("SELECT 1 AS a; SELECT 'x' AS b");
  assertEqual(res.map((r) => r.rows[0]), [{ a: 1 }, { b: "x" }], "multi");
});
await client.end();
const failed = results.filter((r) => !r).length;
console.log(`node-postgres: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
