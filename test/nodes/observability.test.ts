import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { stringify } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { StoreUnavailableError } from "../../src/core/errors.js";
import { createNode, type AnyNode } from "../../src/nodes/compose.js";
import type { Coreapp } from "../../src/nodes/coreapp.js";
import { instrumentStore } from "../../src/nodes/instrumented-store.js";
import { createLogger } from "../../src/nodes/logger.js";
import { NodeMetrics, demotionCause, promotionCause } from "../../src/nodes/metrics.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { freePort, refusedPort } from "../../src/testing/net.js";
import { CLI } from "../support/process-cluster.js";

/**
 * Metrics and probes on every role: a master, two coreapps and a webapp embedded in one process on
 * SQLite, each master and coreapp with its own operations port; the webapp serves the same paths
 * on its API port.
 */
const dir = mkdtempSync(join(tmpdir(), "mc-observe-"));
const raw = {
  cluster_name: "observe",
  shards: 2,
  secret: "${SECRET}",
  settings: { heartbeat_interval: "100ms", unhealthy_interval: "600ms", db_heartbeat_interval: "200ms", db_unhealthy_interval: "1s" },
  store: { backend: "sqlite", path: join(dir, "cluster.db") },
  node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
};
const env = { SECRET: "observe-test-secret-0123456789" };
const config = parseConfig(raw, env);
const logger = createLogger("silent");
const nodes: AnyNode[] = [];
const ops: Record<string, number> = {};
let webapp: Webapp;
const hostRegistry = new Registry();

const get = async (port: number, path: string) => {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, type: r.headers.get("content-type") ?? "", text: await r.text() };
};

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  const app = { onPromote() {}, onDemote() {}, handle: () => ({ status: 200, body: "ok" }) };
  ops["m1"] = await freePort();
  nodes.push(await createNode({ config, role: "master", name: "m1", port: 0, opsPort: ops["m1"], logger }));
  for (const name of ["c1", "c2"]) {
    ops[name] = await freePort();
    nodes.push(await createNode({ config, role: "coreapp", name, port: 0, opsPort: ops[name], app, logger }));
  }
  webapp = (await createNode({ config, role: "webapp", name: "w1", port: 0, logger, metrics: { registry: hostRegistry } })) as Webapp;
  nodes.push(webapp);
  for (const n of nodes) await n.start();
  await until(
    async () => (await hostRegistry.getSingleMetricAsString("multiconnect_shard_owner")).includes('owner="c'),
    "both shards routed",
  );
}, 30_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

describe("operations endpoint", () => {
  it("GET /livez and GET /readyz answer 200 on a master and on a coreapp once started", async () => {
    for (const name of ["m1", "c1", "c2"]) {
      expect(await get(ops[name]!, "/livez")).toMatchObject({ status: 200, text: '{"live":true}' });
      const ready = await get(ops[name]!, "/readyz");
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.text)).toMatchObject({ ready: true });
    }
  });

  it("GET /metrics on a master reports its role, primary-master state, the shard map it wrote and its store calls", async () => {
    const m = await get(ops["m1"]!, "/metrics");
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain/);
    expect(m.text).toMatch(/multiconnect_node_info\{node="m1",role="master"\} 1/);
    expect(m.text).toMatch(/multiconnect_primary_master\{node="m1"\} 1/);
    expect(m.text).toMatch(/multiconnect_shard_epoch\{node="m1",shard="1"\} [1-9]/);
    expect(m.text).toMatch(/multiconnect_promotions_total\{node="m1",shard="0",cause="no_owner"\} 1/);
    expect(m.text).toMatch(/multiconnect_store_call_seconds_count\{node="m1",operation="leases.renew"\} [1-9]/);
    expect(m.text).toMatch(/multiconnect_store_call_seconds_count\{node="m1",operation="shardMap.assign"\} [1-9]/);
    expect(m.text).toMatch(/process_cpu_seconds_total/); // the node's own registry carries process metrics
  });

  it("GET /metrics on a coreapp reports the shard it serves and its promotion", async () => {
    const texts = await Promise.all(["c1", "c2"].map(async (n) => (await get(ops[n]!, "/metrics")).text));
    const serving = texts.filter((t) => /multiconnect_shard_owner\{node="c[12]",shard="[01]",owner="c[12]\.[0-9a-f]+"\} 1/.test(t));
    expect(serving.length).toBeGreaterThanOrEqual(1);
    expect(texts.join("")).toMatch(/multiconnect_promotions_total\{node="c[12]",shard="[01]",cause="named_by_shard_map"\} 1/);
  });

  it("createNode() with an ops port already in use fails start() with a ConfigError naming node.ops_port", async () => {
    const app = { onPromote() {}, onDemote() {}, handle: () => ({ status: 200 }) };
    const node = await createNode({ config, role: "coreapp", name: "clash", port: 0, opsPort: ops["m1"]!, app, logger });
    await expect(node.start()).rejects.toThrow(/node\.ops_port: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
    await node.stop();
  });

  it("an unknown path on the operations port gets 404 naming what it serves", async () => {
    const r = await get(ops["m1"]!, "/v1/health");
    expect(r.status).toBe(404);
    expect(r.text).toMatch(/\/metrics, \/livez and \/readyz/);
  });
});

describe("webapp metrics in the host application's registry", () => {
  it("requests, forwarding latency and routed shards land in the registry given as metrics.registry", async () => {
    const r = await fetch(`http://127.0.0.1:${webapp.port}/v1/x`, { method: "POST", headers: { "x-shard-key": "k" }, body: "b" });
    expect(r.status).toBe(200);
    const text = await hostRegistry.metrics();
    expect(text).toMatch(/multiconnect_requests_total\{node="w1",outcome="ok"\} 1/);
    expect(text).toMatch(/multiconnect_forward_seconds_count\{node="w1",outcome="ok"\} 1/);
    expect(text).toMatch(/multiconnect_shard_epoch\{node="w1",shard="0"\} [1-9]/);
    expect(text).not.toMatch(/process_cpu_seconds_total/); // the host decides on process metrics
  });

  it("the webapp's own port serves the same registry at /metrics, and /livez and /readyz", async () => {
    expect((await get(webapp.port, "/metrics")).text).toMatch(/multiconnect_requests_total\{node="w1",outcome="ok"\}/);
    expect((await get(webapp.port, "/livez")).status).toBe(200);
    expect(JSON.parse((await get(webapp.port, "/readyz")).text)).toEqual({
      ready: true,
      checks: { shardMapLoaded: true, stopping: false },
    });
  });
});

describe("probes during a store outage", () => {
  it("a coreapp whose store is unreachable is live but not ready while start() waits for the store", async () => {
    const down = parseConfig({ ...raw, store: { backend: "postgres", host: "127.0.0.1", port: await refusedPort(), user: "x" } }, env);
    const port = await freePort();
    const app = { onPromote() {}, onDemote() {}, handle: () => ({ status: 200 }) };
    const node = (await createNode({ config: down, role: "coreapp", name: "lonely", port: 0, opsPort: port, app, logger })) as Coreapp;
    const starting = node.start().catch((e: unknown) => e);
    try {
      await until(async () => (await get(port, "/livez").catch(() => ({ status: 0 }))).status === 200, "the ops port");
      const ready = await get(port, "/readyz");
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.text)).toEqual({ ready: false, checks: { started: false, shardMapWatch: false, stopping: false } });
      await until(
        async () =>
          /multiconnect_store_call_errors_total\{node="lonely",operation="store\.(migrate|recordedSchemaVersion)",kind="unavailable"\} [1-9]/.test(
            (await get(port, "/metrics")).text,
          ),
        "a counted store error",
      );
    } finally {
      await node.stop();
      await starting;
    }
    await expect(fetch(`http://127.0.0.1:${port}/livez`)).rejects.toThrow(); // closed with the node
  });
});

describe("instrumentStore()", () => {
  it("counts a refused renewal and a failed one, and passes results and errors through unchanged", async () => {
    const registry = new Registry();
    const metrics = new NodeMetrics("n", { registry });
    const inner = new MemoryStore(new MemoryStorage());
    const store = instrumentStore(inner, metrics);
    const r = await store.leases.acquire("shard/0", "n", 1000);
    if (!r.acquired) throw new Error("setup: not acquired");
    expect(await store.leases.renew({ ...r.lease, holder: "other" }, 1000)).toBe(false);
    inner.leases.renew = async () => {
      throw new StoreUnavailableError("down");
    };
    await expect(store.leases.renew(r.lease, 1000)).rejects.toThrow(StoreUnavailableError);
    const text = await registry.metrics();
    expect(text).toMatch(/multiconnect_lease_renewal_failures_total\{node="n",lease="shard",reason="refused"\} 1/);
    expect(text).toMatch(/multiconnect_lease_renewal_failures_total\{node="n",lease="shard",reason="error"\} 1/);
    expect(text).toMatch(/multiconnect_store_call_errors_total\{node="n",operation="leases.renew",kind="unavailable"\} 1/);
    expect(text).toMatch(/multiconnect_store_call_seconds_count\{node="n",operation="leases.acquire"\} 1/);
  });

  it("times every method of every port (the memory store implements exactly the ports' methods)", () => {
    const inner = new MemoryStore(new MemoryStorage());
    const store = instrumentStore(inner, new NodeMetrics("n", { registry: new Registry() }));
    for (const port of ["leases", "liveness", "shardMap", "clusterDocument", "history"] as const) {
      const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(inner[port])).filter((m) => m !== "constructor");
      expect({ port, timed: Object.keys(store[port]).sort() }).toEqual({ port, timed: methods.sort() });
    }
  });

  it("cause labels stay a small fixed set whatever numbers the reasons carry", () => {
    expect(promotionCause("store detector: liveness record 1234 ms old")).toBe("store_detector");
    expect(promotionCause("heartbeat detector: silent 700 ms to the primary master and to 1 secondary master(s)")).toBe(
      "heartbeat_detector",
    );
    expect(promotionCause("switchover requested")).toBe("switchover");
    expect(demotionCause("confirmation deadline passed without a successful renewal")).toBe("lease_deadline");
    expect(demotionCause("something new")).toBe("other");
  });
});

describe("multiconnect start", () => {
  it("opens the operations endpoint on node.ops_port from the YAML file, and --ops-port overrides it", async () => {
    const [fromFile, fromFlag] = [await freePort(), await freePort()];
    const file = join(dir, "cli.yaml");
    writeFileSync(
      file,
      stringify({
        ...raw,
        secret: env.SECRET,
        store: { backend: "sqlite", path: join(dir, "cli.db") },
        node: { ...raw.node, ops_port: fromFile },
        log_level: "warn",
      }),
    );
    const run = (args: string[]) => spawn(process.execPath, [CLI, "start", "--config", file, "--port", "0", ...args], { stdio: "ignore" });
    const master = run(["--role", "master", "--name", "cli-m"]);
    const coreapp = run(["--role", "coreapp", "--name", "cli-c", "--ops-port", String(fromFlag)]);
    try {
      for (const [port, node, role] of [
        [fromFile, "cli-m", "master"],
        [fromFlag, "cli-c", "coreapp"],
      ] as const) {
        await until(async () => (await get(port, "/readyz").catch(() => ({ status: 0 }))).status === 200, `${node} ready`);
        expect((await get(port, "/livez")).status).toBe(200);
        expect((await get(port, "/metrics")).text).toContain(`multiconnect_node_info{node="${node}",role="${role}"} 1`);
      }
    } finally {
      for (const child of [master, coreapp]) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
    }
  }, 30_000);
});
