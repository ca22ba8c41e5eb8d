import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/adapters/sqlite/index.js";
import { parseConfig } from "../../src/config/load.js";
import type { AppRequest } from "../../src/core/coreapp/application.js";
import { createNode, type AnyNode } from "../../src/nodes/compose.js";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import { createLogger } from "../../src/nodes/logger.js";
import { sendJson } from "../../src/nodes/webapp-http.js";
import type { Webapp } from "../../src/nodes/webapp.js";

/**
 * The webapp's reserved paths, admin token and in-flight limit, on an embedded cluster (SQLite, real
 * HTTP transport). The application records every request it gets: a reserved path must never reach it.
 */
const ADMIN_TOKEN = "admin-token-for-tests-0123456789";
const dir = mkdtempSync(join(tmpdir(), "mc-admin-"));
const config = parseConfig(
  {
    cluster_name: "admin",
    shards: 1,
    secret: "admin-test-cluster-secret-0123456789",
    admin_token: "${ADMIN_TOKEN}",
    settings: { heartbeat_interval: "100ms", unhealthy_interval: "600ms", db_heartbeat_interval: "200ms", db_unhealthy_interval: "1s" },
    store: { backend: "sqlite", path: join(dir, "cluster.db") },
    node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
    webapp: { max_inflight_per_shard: 2 },
  },
  { ADMIN_TOKEN },
);
const handled: AppRequest[] = [];
/** While set, the app holds "/slow" requests until it resolves. */
let gate: Promise<void> | null = null;
const nodes: AnyNode[] = [];
let webapp: Webapp;
let base = "";

beforeAll(async () => {
  const logger = createLogger("silent");
  const app = {
    onPromote() {},
    onDemote() {},
    async handle(req: AppRequest) {
      handled.push(req);
      if (req.path === "/slow" && gate) await gate;
      return { status: 200, headers: {}, body: "ok" };
    },
  };
  nodes.push(await createNode({ config, role: "master", port: 0, logger }));
  nodes.push(await createNode({ config, role: "coreapp", name: "c1", port: 0, app, logger }));
  webapp = (await createNode({ config, role: "webapp", port: 0, logger })) as Webapp;
  nodes.push(webapp);
  for (const n of nodes) await n.start();
  base = `http://127.0.0.1:${webapp.port}`;
  for (let i = 0; i < 200; i++) {
    const h = (await (await fetch(`${base}/v1/health`)).json()) as ClusterStatus;
    if (h.nodes.some((n) => n.gateway_status === "connected") && (await fetch(`${base}/readyz`)).ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the embedded cluster did not become ready");
}, 30_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

const call = async (method: string, path: string, token?: string, body = "{}") => {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    ...(method === "GET" ? {} : { body }),
  });
  const text = await r.text();
  return {
    status: r.status,
    text,
    code: text.startsWith("{") ? (JSON.parse(text) as { errors?: { code: number }[] }).errors?.[0]?.code : undefined,
  };
};

describe("webapp: reserved paths and the admin token", () => {
  it("an admin path without a token is 401, with a wrong one 403, with the right one 404 when unknown; none reaches the app", async () => {
    const before = handled.length;
    expect(await call("GET", "/v1/admin/nodes")).toMatchObject({ status: 401, code: 1005 });
    const wrong = await call("GET", "/v1/admin/nodes", `${ADMIN_TOKEN}x`);
    expect(wrong).toMatchObject({ status: 403, code: 1005 });
    expect(wrong.text).not.toContain(ADMIN_TOKEN);
    expect(await call("GET", "/v1/admin/nodes", config.secret)).toMatchObject({ status: 403 });
    expect(await call("GET", "/v1/admin/nodes", ADMIN_TOKEN)).toMatchObject({ status: 404, code: 1006 });
    expect(handled.length).toBe(before);
  });

  it("PATCH /v1/settings/application and the other reserved paths are never forwarded to the application", async () => {
    const before = handled.length;
    expect(await call("PATCH", "/v1/settings/application")).toMatchObject({ status: 401 });
    for (const path of ["/v1/settings/application", "/v1/support", "/console/x", "/_mc/forward", "/v1/admin"]) {
      expect((await call("GET", path, ADMIN_TOKEN)).status, path).toBe(404);
    }
    expect(handled.length).toBe(before);
    // A path that only looks like a reserved one is the application's.
    expect((await call("GET", "/v1/healthy")).status).toBe(200);
    expect((await call("GET", "/consoles")).status).toBe(200);
    expect(handled.map((r) => r.path).slice(before)).toEqual(["/v1/healthy", "/consoles"]);
  });

  it("health, metrics, livez, readyz and the read-only console need no token", async () => {
    for (const path of ["/v1/health", "/metrics", "/livez", "/readyz", "/console", "/console/state"]) {
      expect((await call("GET", path)).status, path).toBe(200);
    }
  });

  it("POST /v1/admin/switchover needs the admin token; with it, a bad body is a 400 naming the problem", async () => {
    const before = handled.length;
    expect(await call("POST", "/v1/admin/switchover")).toMatchObject({ status: 401 });
    const r = await fetch(`${base}/v1/admin/switchover`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      body: '{"shard": "zero"}',
    });
    expect(r.status).toBe(400);
    expect(await r.text()).toMatch(/shard must be a non-negative whole number/);
    expect(handled.length).toBe(before);
  });

  it("reserved.add() registers an admin route in one line; it runs only with the token", async () => {
    let ran = 0;
    webapp.reserved.add("POST", "/v1/admin/ping", (_req, res) => {
      ran++;
      sendJson(res, 200, { pong: true });
    });
    expect((await call("POST", "/v1/admin/ping")).status).toBe(401);
    expect((await call("POST", "/v1/admin/ping", "nope")).status).toBe(403);
    expect(ran).toBe(0);
    expect(await call("POST", "/v1/admin/ping", ADMIN_TOKEN)).toMatchObject({ status: 200, text: '{\n  "pong": true\n}' });
    expect(ran).toBe(1);
    expect(() => webapp.reserved.add("GET", "/v2/mine", () => {})).toThrow(/not under a reserved prefix/);
  });
});

describe("webapp: POST /v1/admin/forget", () => {
  it("removes a node only with the token; refuses a shard's owner with 409", async () => {
    const store = new SqliteStore({ path: join(dir, "cluster.db") });
    try {
      await store.liveness.beat({ id: "ghost.1", name: "ghost", role: "coreapp", address: "127.0.0.1:1", meta: {} });
      const ids = async () => (await store.liveness.list()).map((n) => n.id);
      const forget = JSON.stringify({ node: "ghost.1", force: true });
      expect((await call("POST", "/v1/admin/forget", undefined, forget)).status).toBe(401);
      expect((await call("POST", "/v1/admin/forget", "wrong-token", forget)).status).toBe(403);
      expect(await ids()).toContain("ghost.1");
      const ok = await call("POST", "/v1/admin/forget", ADMIN_TOKEN, forget);
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.text)).toEqual({ removed: "ghost.1", role: "coreapp", name: "ghost" });
      expect(await ids()).not.toContain("ghost.1");
      const owner = (await store.shardMap.read())[0]!.owner!;
      const refused = await call("POST", "/v1/admin/forget", ADMIN_TOKEN, JSON.stringify({ node: owner, force: true }));
      expect(refused.status).toBe(409);
      expect(refused.text).toContain("owner");
      expect((await call("POST", "/v1/admin/forget", ADMIN_TOKEN, "not json")).status).toBe(400);
    } finally {
      await store.close();
    }
  });

  it("a body that is no JSON object, or names no node, is 400; one past 64 KiB 413; none is a 500", async () => {
    for (const body of ["null", "[]", '"ghost"', "7", "{}", '{"node": "ghost", "force": "yes"}']) {
      expect(await call("POST", "/v1/admin/forget", ADMIN_TOKEN, body), body).toMatchObject({ status: 400, code: 400 });
    }
    const long = await call("POST", "/v1/admin/forget", ADMIN_TOKEN, JSON.stringify({ node: "x".repeat(5000) }));
    expect(long).toMatchObject({ status: 400, code: 400 });
    expect(long.text).toContain("node must be a node id or name");
    const big = JSON.stringify({ node: "x".repeat(70_000) });
    expect(await call("POST", "/v1/admin/forget", ADMIN_TOKEN, big)).toMatchObject({ status: 413, code: 413 });
  });

  it("resume of a shard that is not paused is 404 and writes no new document version", async () => {
    const store = new SqliteStore({ path: join(dir, "cluster.db") });
    try {
      const before = (await store.clusterDocument.read())!.version;
      expect(await call("POST", "/v1/admin/resume", ADMIN_TOKEN, '{"shard":0}')).toMatchObject({ status: 404 });
      expect((await store.clusterDocument.read())!.version).toBe(before);
    } finally {
      await store.close();
    }
  });
});

describe("webapp: in-flight limit per shard", () => {
  it("past webapp.max_inflight_per_shard the answer is 1016 System overloaded at once; slots come back when requests finish", async () => {
    let open!: () => void;
    gate = new Promise<void>((r) => (open = r));
    const slow = [call("POST", "/slow"), call("POST", "/slow")];
    // Wait until both are held by the app, so both slots are taken.
    for (let i = 0; i < 200 && handled.filter((r) => r.path === "/slow").length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const started = performance.now();
    const third = await call("POST", "/slow");
    const refusedInMs = performance.now() - started;
    console.log(`webapp: request past the in-flight limit refused in ${refusedInMs.toFixed(1)} ms`);
    expect(third).toMatchObject({ status: 503, code: 1016 });
    expect(handled.filter((r) => r.path === "/slow")).toHaveLength(2);
    open();
    gate = null;
    for (const r of await Promise.all(slow)) expect(r.status).toBe(200);
    expect((await call("POST", "/slow")).status).toBe(200);
  });
});

describe("webapp: the control plane's admin API", () => {
  type Settings = { settings: Record<string, number> & { version: number }; pauses: { shard: number | null; reason: string }[] };
  const settings = async () => JSON.parse((await call("GET", "/v1/settings", ADMIN_TOKEN)).text) as Settings;

  it("PATCH /v1/settings/application changes the live settings through the primary master; bad or unsafe values are 400 and change nothing", async () => {
    expect((await call("GET", "/v1/settings")).status).toBe(401);
    const before = await settings();
    expect((await call("PATCH", "/v1/settings/application", undefined, '{"unhealthy_interval":"800ms"}')).status).toBe(401);
    const bad = await call("PATCH", "/v1/settings/application", ADMIN_TOKEN, '{"unhealthy_interval":"soon"}');
    expect(bad).toMatchObject({ status: 400, code: 400 });
    expect(bad.text).toContain("settings.unhealthy_interval: must be a duration");
    const unsafe = await call("PATCH", "/v1/settings/application", ADMIN_TOKEN, '{"unhealthy_interval":"150ms"}');
    expect(unsafe).toMatchObject({ status: 400, code: 400 });
    expect(unsafe.text).toContain("must be at least twice heartbeat_interval");
    expect((await settings()).settings.version).toBe(before.settings.version);

    const ok = await call("PATCH", "/v1/settings/application", ADMIN_TOKEN, '{"unhealthy_interval":"800ms"}');
    expect(ok.status, ok.text).toBe(200);
    const after = await settings();
    expect(after.settings.version).toBeGreaterThan(before.settings.version);
    expect(after.settings.unhealthy_interval).toBe(800);
    expect(handled.some((r) => r.path.startsWith("/v1/settings"))).toBe(false);
  });

  it("POST /v1/admin/pause and resume; GET /v1/history shows both and the settings change, newest first", async () => {
    expect((await call("POST", "/v1/admin/pause", ADMIN_TOKEN, '{"shard":0,"duration":"10m","reason":"disk swap"}')).status).toBe(200);
    expect((await settings()).pauses).toEqual([expect.objectContaining({ shard: 0, reason: "disk swap" })]);
    expect((await call("POST", "/v1/admin/pause", ADMIN_TOKEN, '{"shard":7}')).status).toBe(400);
    expect((await call("POST", "/v1/admin/resume", ADMIN_TOKEN, '{"shard":0}')).status).toBe(200);
    expect(await call("POST", "/v1/admin/resume", ADMIN_TOKEN, '{"shard":0}')).toMatchObject({ status: 404 });
    expect((await settings()).pauses).toEqual([]);
    const history = JSON.parse((await call("GET", "/v1/history?limit=10", ADMIN_TOKEN)).text) as {
      events: { type: string; seq: number }[];
    };
    const types = history.events.map((e) => e.type);
    expect(types.slice(0, 2)).toEqual(["resumed", "paused"]);
    expect(types).toContain("settings_changed");
    expect(history.events.map((e) => e.seq)).toEqual([...history.events.map((e) => e.seq)].sort((a, b) => b - a));
    expect((await call("GET", "/v1/history?shard=x", ADMIN_TOKEN)).status).toBe(400);
  });
});
