import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { PROTOCOL } from "../../src/adapters/transport/index.js";
import { CLI, monoNow, ProcessCluster, sleep } from "../support/process-cluster.js";
import { dropTables } from "../support/store-cleanup.js";

/**
 * Running a cluster for years, with real node processes on the real PostgreSQL server: a rolling
 * upgrade from protocol N to N + 1 in the documented order, ghost cleanup (node_retention, forget),
 * reset and the support bundle. PostgreSQL's trust authentication accepts any password, so the
 * store URL can carry one that the support bundle must not leak.
 */
const PG_URL = process.env["MC_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const STORE_PASSWORD = `pw-${Math.random().toString(36).slice(2)}-store`;
const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-token-0123`;
const CLUSTER_SECRET = "integration-test-secret-0123456789"; // the one ProcessCluster writes

const withPassword = (): string => {
  const u = new URL(PG_URL);
  u.password = STORE_PASSWORD;
  return u.toString();
};
const N = PROTOCOL.version;
const prefixes: string[] = [];
let cluster: ProcessCluster | null = null;

async function start(extraConfig: Record<string, unknown> = {}): Promise<ProcessCluster> {
  const prefix = `ops${Math.random().toString(36).slice(2, 9)}_`;
  prefixes.push(prefix);
  cluster = new ProcessCluster({ store: { backend: "postgres", url: withPassword(), table_prefix: prefix }, extraConfig });
  await cluster.start();
  await cluster.waitReady();
  return cluster;
}

/** Runs the built CLI without blocking this process's event loop (background load keeps going). */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function tablesWithPrefix(prefix: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const r = await client.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE starts_with(tablename, $1) ORDER BY 1", [
      prefix,
    ]);
    return r.rows.map((row) => row.name);
  } finally {
    await client.end();
  }
}

/** The entries of a .tar.gz as name → text (regular files only). */
function untar(file: string): Map<string, string> {
  const tar = gunzipSync(readFileSync(file));
  const out = new Map<string, string>();
  for (let off = 0; off + 512 <= tar.length;) {
    const name = tar
      .subarray(off, off + 100)
      .toString("utf8")
      .replace(/\0.*$/s, "");
    if (name === "") break;
    const size = parseInt(
      tar
        .subarray(off + 124, off + 136)
        .toString("utf8")
        .replace(/\0.*$/s, "")
        .trim(),
      8,
    );
    out.set(name, tar.subarray(off + 512, off + 512 + size).toString("utf8"));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

afterEach(async (ctx) => {
  if (cluster) {
    if (ctx.task.result?.state === "fail") console.error(cluster.logs());
    await cluster.stop();
    cluster = null;
  }
  for (const p of prefixes.splice(0)) {
    const left = await tablesWithPrefix(p);
    if (left.length > 0) await dropTables("postgres", PG_URL, p);
  }
});

describe("operations with real processes on postgres", { timeout: 180_000 }, () => {
  it(`rolling upgrade, protocol ${N} -> ${N + 1} in the documented order: every step serves requests, safety holds; ${N + 2} alone is refused with a log line naming both`, async () => {
    const c = await start();
    const NEXT = { MULTICONNECT_TEST_PROTOCOL: `${N + 1}:${N}` };
    let running = true;
    let sent = 0;
    let phase = "start";
    /** Failed requests per upgrade step (the webapp's own restart refuses connections while it is down). */
    const failures = new Map<string, number>();
    const load = (async () => {
      while (running) {
        const r = await c.send(`k${sent++}`);
        if (!r.ok)
          failures.set(
            `${phase}: ${r.status === 0 ? "connection refused" : r.status}`,
            (failures.get(`${phase}: ${r.status === 0 ? "connection refused" : r.status}`) ?? 0) + 1,
          );
        await sleep(20);
      }
    })();
    const upgrade = async (name: string, role: "master" | "coreapp" | "webapp") => {
      const started = monoNow();
      phase = `${role} ${name}`;
      await c.stopNode(name);
      c.spawn(role, name, role === "webapp" ? c.webappPort : 0, NEXT);
      await c.waitReady();
      console.log(`upgrade: ${name} replaced and the cluster ready again in ${(monoNow() - started).toFixed(0)} ms`);
    };
    const health = async () => (await c.health())!;
    // 1. secondary masters, 2. the primary master, 3. standby coreapps, 4. the primary coreapp, 5. webapps.
    for (const m of (await health()).nodes.filter((n) => n.role === "secondary_master")) await upgrade(m.name, "master");
    await upgrade((await health()).nodes.find((n) => n.role === "primary_master")!.name, "master");
    for (const s of (await health()).nodes.filter((n) => n.role === "coreapp" && n.gateway_status !== "connected"))
      await upgrade(s.name, "coreapp");
    await upgrade((await health()).nodes.find((n) => n.gateway_status === "connected")!.name, "coreapp");
    await upgrade("webapp-1", "webapp");
    running = false;
    await load;
    console.log(`upgrade: ${sent} requests during the rolling upgrade; failed: ${JSON.stringify(Object.fromEntries(failures))}`);
    expect(c.overlaps()).toEqual([]);
    expect((await c.send()).ok).toBe(true);

    // A node two versions ahead that no longer speaks N + 1 is refused: it is never promoted, and
    // the masters say why, naming both versions.
    c.spawn("coreapp", "coreapp-far", 0, { MULTICONNECT_TEST_PROTOCOL: `${N + 2}:${N + 2}` });
    const line = await c.waitFor(async () => {
      const logs = readdirSync(c.dir)
        .filter((f) => f.startsWith("master-"))
        .map((f) => readFileSync(join(c.dir, f), "utf8"))
        .join("\n");
      return logs.split("\n").find((l) => l.includes("heartbeat refused") && l.includes(`protocol ${N + 2}`)) ?? null;
    }, 15_000);
    expect(line).toContain(`protocol ${N + 1} (speaks back to ${N})`);
    expect(c.overlaps()).toEqual([]);
  });

  it("a killed node shows as down, `forget` removes it at once, node_retention prunes the next; owners and live nodes are refused", async () => {
    const c = await start({ node_retention: "8s" });
    const ready = (await c.health())!;
    const owner = ready.nodes.find((n) => n.gateway_status === "connected")!;
    const [s1, s2] = ready.nodes.filter((n) => n.role === "coreapp" && n.gateway_status !== "connected");
    const down = (name: string) =>
      c.waitFor(async () => ((await c.health())?.nodes.find((n) => n.name === name && n.state === "down") ? true : null), 15_000);
    const gone = (id: string) =>
      c.waitFor(async () => ((await c.health())?.nodes.some((n) => n.id === id) === false ? true : null), 30_000);

    expect((await cli("forget", owner.id, "--config", c.config, "--force")).stderr).toMatch(/owner/);
    const live = await cli("forget", s1!.name, "--config", c.config);
    expect(live.code).not.toBe(0);
    expect(live.stderr).toMatch(/is live .*--force/);

    c.kill9(s1!.name);
    await down(s1!.name);
    const forgot = await cli("forget", s1!.name, "--config", c.config);
    expect(forgot.code, forgot.stderr).toBe(0);
    expect(forgot.stdout).toContain(`removed ${s1!.id}`);
    expect((await c.health())!.nodes.some((n) => n.id === s1!.id)).toBe(false);

    const killedAt = monoNow();
    c.kill9(s2!.name);
    await down(s2!.name);
    const downAfter = monoNow() - killedAt;
    await gone(s2!.id);
    console.log(
      `membership: killed node down after ${downAfter.toFixed(0)} ms, removed after ${(monoNow() - killedAt).toFixed(0)} ms (node_retention 8 s)`,
    );
    const masterLogs = readdirSync(c.dir)
      .filter((f) => f.startsWith("master-"))
      .map((f) => readFileSync(join(c.dir, f), "utf8"))
      .join("\n");
    expect(masterLogs).toContain("removed a node silent for longer than node_retention");
    expect((await c.health())!.nodes.some((n) => n.id === owner.id)).toBe(true);
  });

  it("support-bundle writes one archive with status, settings, config, versions, metrics and logs, and neither the secret, the admin token nor the store password", async () => {
    const c = await start({ admin_token: ADMIN_TOKEN });
    const logs = join(c.dir, "bundle-logs");
    mkdirSync(logs);
    // A log line that leaked secrets (it must be scrubbed on the way into the bundle).
    writeFileSync(join(logs, "app.log"), `connect ${withPassword()} secret=${CLUSTER_SECRET} token=${ADMIN_TOKEN}\nplain line\n`);
    writeFileSync(join(logs, "master-1.log"), readFileSync(join(c.dir, "master-1.log")));
    await c.send();
    const out = join(c.dir, "bundle.tar.gz");
    const r = await cli("support-bundle", "--config", c.config, "--logs", logs, "--out", out);
    expect(r.code, r.stderr).toBe(0);
    const raw = gunzipSync(readFileSync(out)).toString("latin1");
    for (const secret of [CLUSTER_SECRET, ADMIN_TOKEN, STORE_PASSWORD]) expect(raw.includes(secret), secret).toBe(false);
    const files = untar(out);
    expect([...files.keys()].sort()).toEqual(
      expect.arrayContaining(["config.json", "logs/app.log", "logs/master-1.log", "settings.json", "status.json", "versions.json"]),
    );
    expect((JSON.parse(files.get("status.json")!) as { nodes: unknown[] }).nodes.length).toBeGreaterThanOrEqual(6);
    expect(files.get("config.json")).toContain("[redacted]");
    expect(files.get("logs/app.log")).toContain("plain line");
    expect(JSON.parse(files.get("versions.json")!)).toMatchObject({ protocol: PROTOCOL, node: process.version });
    expect([...files.entries()].find(([name]) => name.startsWith("metrics/"))?.[1]).toContain("multiconnect_requests_total");
  });

  it("reset is refused while nodes are live, then removes every table of the prefix, including unknown ones, and says what it removed", async () => {
    const c = await start();
    const prefix = prefixes.at(-1)!;
    const refused = await cli("reset", "--config", c.config);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/refused, \d+ node\(s\) .* are live/);
    expect((await tablesWithPrefix(prefix)).length).toBeGreaterThan(0);
    await c.stop();
    cluster = null;
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`CREATE TABLE "${prefix}added_later" (x int)`);
    await client.end();
    const before = await tablesWithPrefix(prefix);
    const r = await cli("reset", "--config", c.config);
    expect(r.code, r.stderr).toBe(0);
    for (const t of before) expect(r.stdout).toContain(t);
    expect(await tablesWithPrefix(prefix)).toEqual([]);
    expect((await cli("reset", "--config", c.config)).stdout).toContain("nothing to remove");
  });
});
