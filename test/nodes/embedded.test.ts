import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import type { AppRequest } from "../../src/core/coreapp/application.js";
import { createNode, type AnyNode } from "../../src/nodes/compose.js";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { createLogger } from "../../src/nodes/logger.js";

/**
 * The nodes embedded in one process as the README shows, through the composition root, on SQLite
 * with the real HTTP transport: the webapp's HTTP surface and its refusals.
 */
const dir = mkdtempSync(join(tmpdir(), "mc-embedded-"));
const config = parseConfig(
  {
    cluster_name: "embedded",
    shards: 2,
    secret: "${SECRET}",
    settings: { heartbeat_interval: "100ms", unhealthy_interval: "600ms", db_heartbeat_interval: "200ms", db_unhealthy_interval: "1s" },
    store: { backend: "sqlite", path: join(dir, "cluster.db") },
    node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
    webapp: { max_body_bytes: 1024 },
  },
  { SECRET: "embedded-test-secret-0123456789" },
);
const handled: AppRequest[] = [];
const nodes: AnyNode[] = [];
let webapp: Webapp;
let base = "";
const logger = createLogger("silent");

beforeAll(async () => {
  const app = (name: string) => ({
    onPromote() {},
    onDemote() {},
    handle(req: AppRequest) {
      handled.push(req);
      return { status: 201, headers: { "x-app": name }, body: `ok from ${name}` };
    },
  });
  for (const role of ["master", "master"] as const) nodes.push(await createNode({ config, role, port: 0, logger }));
  for (const name of ["c1", "c2", "c3"]) nodes.push(await createNode({ config, role: "coreapp", name, port: 0, app: app(name), logger }));
  webapp = (await createNode({ config, role: "webapp", port: 0, logger })) as Webapp;
  nodes.push(webapp);
  for (const n of nodes) await n.start();
  base = `http://127.0.0.1:${webapp.port}`;
  for (let i = 0; i < 200; i++) {
    const h = (await (await fetch(`${base}/v1/health`)).json()) as ClusterStatus;
    if (h.nodes.filter((n) => n.gateway_status === "connected").length === 2) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the embedded cluster did not become ready");
}, 30_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

describe("embedded nodes over HTTP", () => {
  it("GET /v1/health lists every node with its role and one connected primary per shard", async () => {
    const h = (await (await fetch(`${base}/v1/health`)).json()) as ClusterStatus;
    expect(h.nodes.map((n) => n.role).sort()).toEqual(["coreapp", "coreapp", "coreapp", "primary_master", "secondary_master", "webapp"]);
    const connected = h.nodes.filter((n) => n.gateway_status === "connected");
    expect(connected.map((n) => n.shard).sort()).toEqual([0, 1]);
    expect(h.failover_bound_ms).toBeGreaterThan(600);
  });

  it("a request with a shard key reaches that shard's primary and returns its answer with the node and epoch", async () => {
    const r = await fetch(`${base}/v1/messages?to=1`, { method: "POST", headers: { "x-shard-key": "+15550001" }, body: "hello" });
    expect(r.status).toBe(201);
    expect(await r.text()).toMatch(/^ok from c[123]$/);
    expect(r.headers.get("x-multiconnect-node")).toMatch(/^c[123]$/);
    expect(Number(r.headers.get("x-multiconnect-epoch"))).toBeGreaterThan(0);
    expect(handled.at(-1)).toMatchObject({ method: "POST", path: "/v1/messages?to=1" });
    expect(Buffer.from(handled.at(-1)!.body).toString()).toBe("hello");
  });

  it("a request without a shard key gets 400 and never reaches a coreapp", async () => {
    const before = handled.length;
    const r = await fetch(`${base}/v1/messages`, { method: "POST", body: "x" });
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({ errors: [{ title: "Missing shard key" }] });
    expect(handled.length).toBe(before);
  });

  it("an oversized request gets 413 and never reaches a coreapp", async () => {
    const before = handled.length;
    const r = await fetch(`${base}/v1/messages`, { method: "POST", headers: { "x-shard-key": "k" }, body: "x".repeat(4096) });
    expect(r.status).toBe(413);
    expect(handled.length).toBe(before);
  });

  it("an unauthenticated message straight to a coreapp's listener is refused and runs nothing", async () => {
    const h = (await (await fetch(`${base}/v1/health`)).json()) as ClusterStatus;
    const target = h.nodes.find((n) => n.gateway_status === "connected")!;
    const before = handled.length;
    const r = await fetch(`http://${target.address}/_mc/forward`, {
      method: "POST",
      headers: {
        "x-mc-from": "intruder",
        "x-mc-to": target.id,
        "x-mc-seq": "1",
        "x-mc-sig": Buffer.alloc(32, 7).toString("base64url"),
        "x-mc-shard": String(target.shard),
        "x-mc-epoch": String(target.epoch),
        "x-mc-method": "POST",
        "x-mc-path": "/v1/messages",
        "x-mc-headers": "{}",
      },
      body: "forged",
    });
    expect(r.status).toBe(401);
    expect(handled.length).toBe(before);
  });

  it("GET /metrics exposes request counters and shard epochs in Prometheus text", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/multiconnect_requests_total\{node="webapp",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/multiconnect_requests_total\{node="webapp",outcome="too_large"\} 1/);
    expect(text).toMatch(/multiconnect_shard_epoch\{node="webapp",shard="1"\} [1-9]/);
  });
});
