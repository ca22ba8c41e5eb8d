import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APP_ERROR_CODE } from "../../src/core/api-errors.js";
import { multiconnect } from "../../src/frameworks/fastify.js";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import { createWebapp } from "../../src/nodes/compose.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { startEmbeddedCluster, type EmbeddedCluster } from "../support/embedded-cluster.js";

/**
 * A webapp registered into a real Fastify 5 server under a prefix, with Fastify's content-type
 * parsers on for the host's routes, in front of a real embedded cluster (SQLite, HTTP transport).
 */
let cluster: EmbeddedCluster;
let webapp: Webapp;
let app: FastifyInstance;
let base = "";
const ADMIN_TOKEN = "fastify-admin-token-0123456789";

beforeAll(async () => {
  cluster = await startEmbeddedCluster({
    webapp: { max_body_bytes: 1024 },
    handle(req, name) {
      if (req.path.includes("/boom")) throw new Error("boom");
      const body = { by: name, path: req.path, type: req.headers["content-type"] ?? null, hex: Buffer.from(req.body).toString("hex") };
      return { status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    },
  });
  webapp = await createWebapp({
    config: { ...cluster.config, adminToken: ADMIN_TOKEN },
    port: 0,
    listen: false,
    shardKey: (req) => req.headers["x-phone"] as string | undefined,
  });
  await webapp.start();
  app = Fastify();
  app.post("/host/echo", async (request) => ({ parsed: request.body }));
  await app.register(multiconnect, { prefix: "/api", webapp });
  base = await app.listen({ port: 0, host: "127.0.0.1" });
  await cluster.ready();
}, 30_000);

afterAll(async () => {
  await app?.close();
  await webapp?.stop();
  await cluster?.stop();
});

const phone = { "x-phone": "+15550001" };
const hex = (s: string | Uint8Array) => Buffer.from(s).toString("hex");

describe("multiconnect/fastify", () => {
  for (const [type, body] of [
    ["text/plain", "plain text\n"],
    ["application/octet-stream", new Uint8Array([0, 255, 10, 13])],
    ["application/json", '{ "a" : 1.50 }'],
    ["application/x-www-form-urlencoded", "a=1&b=%20"],
  ] as const) {
    it(`forwards a ${type} POST with its full path and exact bytes`, async () => {
      const r = await fetch(`${base}/api/v1/messages?x=1`, { method: "POST", headers: { ...phone, "content-type": type }, body });
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ path: "/api/v1/messages?x=1", type, hex: hex(body) });
    });
  }

  it("forwards a GET and an empty POST", async () => {
    const get = await fetch(`${base}/api/v1/contacts/1`, { headers: phone });
    expect(await get.json()).toMatchObject({ path: "/api/v1/contacts/1", hex: "" });
    const empty = await fetch(`${base}/api/v1/ping`, { method: "POST", headers: phone });
    expect(await empty.json()).toMatchObject({ path: "/api/v1/ping", hex: "" });
  });

  it("leaves the host's own routes with Fastify's JSON parser", async () => {
    const r = await fetch(`${base}/host/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"a":[1,2]}' });
    expect(await r.json()).toEqual({ parsed: { a: [1, 2] } });
  });

  it("serves the webapp's own GET /v1/health and GET /metrics below the prefix", async () => {
    const health = await fetch(`${base}/api/v1/health`);
    expect(((await health.json()) as ClusterStatus).nodes.filter((n) => n.gateway_status === "connected")).toHaveLength(2);
    expect(await (await fetch(`${base}/api/metrics`)).text()).toMatch(/multiconnect_requests_total\{[^}]*outcome="ok"[^}]*\}/);
  });

  it("answers 413 in the webapp's format past max_body_bytes, and runs nothing", async () => {
    const before = cluster.handled.length;
    const r = await fetch(`${base}/api/v1/messages`, {
      method: "POST",
      headers: { ...phone, "content-type": "text/plain" },
      body: "x".repeat(4096),
    });
    expect(r.status).toBe(413);
    expect(await r.json()).toEqual({ errors: [{ code: 413, title: "Request too large", details: "the body exceeds 1024 bytes" }] });
    expect(cluster.handled.length).toBe(before);
  });

  it("a handle() that throws gets 500 with the application error code through Fastify", async () => {
    const r = await fetch(`${base}/api/v1/boom`, { method: "POST", headers: { ...phone, "content-type": "text/plain" }, body: "x" });
    expect(r.status).toBe(500);
    expect(r.headers.get("retry-after")).toBeNull();
    expect(await r.json()).toMatchObject({ errors: [{ code: APP_ERROR_CODE }] });
  });

  it("an admin POST with a JSON body that Fastify read answers at once and is applied (pause, then resume)", async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
    const started = performance.now();
    const paused = await fetch(`${base}/api/v1/admin/pause`, { method: "POST", headers: admin, body: '{"shard":0,"reason":"fastify"}' });
    expect(paused.status, await paused.clone().text()).toBe(200);
    expect(performance.now() - started).toBeLessThan(2000);
    const settings = (await (await fetch(`${base}/api/v1/settings`, { headers: admin })).json()) as { pauses: unknown[] };
    expect(settings.pauses).toEqual([expect.objectContaining({ shard: 0, reason: "fastify" })]);
    const bad = await fetch(`${base}/api/v1/admin/pause`, { method: "POST", headers: admin, body: '{"duration":"2000000h"}' });
    expect(bad.status).toBe(400);
    const resumed = await fetch(`${base}/api/v1/admin/resume`, { method: "POST", headers: admin, body: '{"shard":0}' });
    expect(resumed.status).toBe(200);
    // An empty body still means the whole cluster, through Fastify too.
    expect((await fetch(`${base}/api/v1/admin/pause`, { method: "POST", headers: { authorization: admin.authorization } })).status).toBe(
      200,
    );
    expect((await fetch(`${base}/api/v1/admin/resume`, { method: "POST", headers: { authorization: admin.authorization } })).status).toBe(
      200,
    );
  });
});
