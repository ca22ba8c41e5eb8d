import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APP_ERROR_CODE } from "../../src/core/api-errors.js";
import { keepRawBody, multiconnect } from "../../src/frameworks/express.js";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import { createWebapp } from "../../src/nodes/compose.js";
import { createLogger } from "../../src/nodes/logger.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { startEmbeddedCluster, type EmbeddedCluster } from "../support/embedded-cluster.js";

/**
 * A webapp mounted into real Express 5 servers under a prefix, with the usual body parsers on,
 * in front of a real embedded cluster (SQLite, HTTP transport).
 */
let cluster: EmbeddedCluster;
let webapp: Webapp;
const servers: Server[] = [];
let base = "";
let bare = "";
const ADMIN_TOKEN = "express-admin-token-0123456789";

async function listen(app: express.Express): Promise<string> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  cluster = await startEmbeddedCluster({
    handle(req, name) {
      if (req.path.includes("/boom")) throw new Error("boom");
      return {
        status: 200,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ by: name, path: req.path, body: Buffer.from(req.body).toString() }),
      };
    },
  });
  webapp = await createWebapp({
    config: { ...cluster.config, adminToken: ADMIN_TOKEN },
    port: 0,
    listen: false,
    logger: createLogger("silent"),
    shardKey: (req) => req.headers["x-phone"] as string | undefined,
  });
  await webapp.start();

  // The host service: its parsers on for every route, its own JSON route, the webapp under /api.
  const app = express();
  app.use(express.json({ verify: keepRawBody }));
  app.use(express.text());
  app.post("/host/echo", (req, res) => void res.json({ parsed: req.body as unknown }));
  app.use("/api", multiconnect(webapp));
  base = await listen(app);

  // A host that kept no raw bytes: express.json() alone before the webapp.
  const plain = express();
  plain.use(express.json());
  plain.use("/api", multiconnect(webapp));
  bare = await listen(plain);
  await cluster.ready();
}, 30_000);

afterAll(async () => {
  for (const s of servers) s.close();
  await webapp?.stop();
  await cluster?.stop();
});

const phone = { "x-phone": "+15550001" };

describe("multiconnect/express", () => {
  it("forwards a JSON POST with its full path and its original bytes while express.json() is on", async () => {
    const sent = '{ "to": "+1555",\n  "n": 1.50 }';
    const r = await fetch(`${base}/api/v1/messages?x=1`, {
      method: "POST",
      headers: { ...phone, "content-type": "application/json" },
      body: sent,
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ path: "/api/v1/messages?x=1", body: sent });
  });

  it("forwards a GET, with no body, under the prefix", async () => {
    const r = await fetch(`${base}/api/v1/contacts/7?full=1`, { headers: phone });
    expect(await r.json()).toMatchObject({ path: "/api/v1/contacts/7?full=1", body: "" });
  });

  it("forwards a text/plain body that express.text() read, unchanged", async () => {
    const r = await fetch(`${base}/api/v1/notes`, { method: "POST", headers: { ...phone, "content-type": "text/plain" }, body: "héllo\n" });
    expect(await r.json()).toMatchObject({ path: "/api/v1/notes", body: "héllo\n" });
  });

  it("leaves the host's own routes and parsers working", async () => {
    const r = await fetch(`${base}/host/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"a":[1,2]}' });
    expect(await r.json()).toEqual({ parsed: { a: [1, 2] } });
  });

  it("serves the webapp's own GET /v1/health and GET /metrics below the mount point", async () => {
    const health = await fetch(`${base}/api/v1/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as ClusterStatus).nodes.filter((n) => n.gateway_status === "connected")).toHaveLength(2);
    const metrics = await fetch(`${base}/api/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/multiconnect_requests_total\{[^}]*outcome="ok"[^}]*\}/);
  });

  it("a handle() that throws gets 500 with the application error code through Express", async () => {
    const r = await fetch(`${base}/api/v1/boom`, { method: "POST", headers: phone, body: "x" });
    expect(r.status).toBe(500);
    expect(r.headers.get("retry-after")).toBeNull();
    expect(await r.json()).toMatchObject({ errors: [{ code: APP_ERROR_CODE }] });
  });

  it("a JSON body parsed with no bytes kept gets a 500 at once that names the fix, and runs nothing", async () => {
    const before = cluster.handled.length;
    const started = performance.now();
    const r = await fetch(`${bare}/api/v1/messages`, {
      method: "POST",
      headers: { ...phone, "content-type": "application/json" },
      body: '{"a":1}',
    });
    expect(r.status).toBe(500);
    const { errors } = (await r.json()) as { errors: { details: string }[] };
    expect(errors[0]!.details).toMatch(/keepRawBody/);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(cluster.handled.length).toBe(before);
    // A body the parser did not take (another content type) still goes through that host.
    const ok = await fetch(`${bare}/api/v1/raw`, {
      method: "POST",
      headers: { ...phone, "content-type": "application/octet-stream" },
      body: new Uint8Array([0, 1, 2]),
    });
    expect(ok.status).toBe(200);
  });

  it("an admin POST with a JSON body that express.json() read answers at once and is applied (pause, then resume)", async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
    const started = performance.now();
    const paused = await fetch(`${base}/api/v1/admin/pause`, { method: "POST", headers: admin, body: '{"shard":0,"reason":"express"}' });
    expect(paused.status, await paused.clone().text()).toBe(200);
    expect(performance.now() - started).toBeLessThan(2000);
    const settings = (await (await fetch(`${base}/api/v1/settings`, { headers: admin })).json()) as { pauses: unknown[] };
    expect(settings.pauses).toEqual([expect.objectContaining({ shard: 0, reason: "express" })]);
    // Bad input in the body is read, and refused as such.
    const bad = await fetch(`${base}/api/v1/admin/pause`, { method: "POST", headers: admin, body: '{"duration":"2000000h"}' });
    expect(bad.status).toBe(400);
    const resumed = await fetch(`${base}/api/v1/admin/resume`, { method: "POST", headers: admin, body: '{"shard":0}' });
    expect(resumed.status).toBe(200);
  });

  it("an admin POST whose JSON body was parsed with no bytes kept gets a 500 at once naming the fix, not a 408 later", async () => {
    const started = performance.now();
    const r = await fetch(`${bare}/api/v1/admin/pause`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: '{"shard":0}',
    });
    expect(r.status).toBe(500);
    expect(await r.text()).toMatch(/keepRawBody/);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
