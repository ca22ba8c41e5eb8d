import { deriveTransportKey } from "../../src/adapters/transport/index.js";
import { RawConnection } from "../support/raw-transport.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import { createWebapp } from "../../src/nodes/compose.js";
import { createLogger } from "../../src/nodes/logger.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { startEmbeddedCluster, type EmbeddedCluster } from "../support/embedded-cluster.js";

/**
 * The nodes embedded in one process through the composition root, on SQLite with the real node-to-node
 * transport: the webapp's own listener, its HTTP surface and its refusals.
 */
let cluster: EmbeddedCluster;
let webapp: Webapp;
let base = "";

beforeAll(async () => {
  cluster = await startEmbeddedCluster({ webapp: { max_body_bytes: 1024 } });
  webapp = await createWebapp({ config: cluster.config, port: 0, logger: createLogger("silent") });
  await webapp.start();
  base = `http://127.0.0.1:${webapp.port}`;
  await cluster.ready();
}, 30_000);

afterAll(async () => {
  await webapp?.stop();
  await cluster?.stop();
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
    expect(cluster.handled.at(-1)).toMatchObject({ method: "POST", path: "/v1/messages?to=1" });
    expect(Buffer.from(cluster.handled.at(-1)!.body).toString()).toBe("hello");
  });

  it("a request without a shard key gets 400 and never reaches a coreapp", async () => {
    const before = cluster.handled.length;
    const r = await fetch(`${base}/v1/messages`, { method: "POST", body: "x" });
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({ errors: [{ title: "Missing shard key" }] });
    expect(cluster.handled.length).toBe(before);
  });

  it("an oversized request gets 413 and never reaches a coreapp", async () => {
    const before = cluster.handled.length;
    const r = await fetch(`${base}/v1/messages`, { method: "POST", headers: { "x-shard-key": "k" }, body: "x".repeat(4096) });
    expect(r.status).toBe(413);
    expect(cluster.handled.length).toBe(before);
  });

  it("a request with more distinct headers than a forward carries gets 431 and never reaches a coreapp", async () => {
    const before = cluster.handled.length;
    const headers = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`x-h${i}`, "v"]));
    const r = await fetch(`${base}/v1/messages`, { method: "POST", headers: { ...headers, "x-shard-key": "k" }, body: "x" });
    expect(r.status).toBe(431);
    expect(await r.json()).toMatchObject({ errors: [{ code: 431, details: "more than 256 distinct headers" }] });
    expect(cluster.handled.length).toBe(before);
  });

  it("an unauthenticated message straight to a coreapp's listener is refused and runs nothing", async () => {
    const h = (await (await fetch(`${base}/v1/health`)).json()) as ClusterStatus;
    const target = h.nodes.find((n) => n.gateway_status === "connected")!;
    const before = cluster.handled.length;
    // A stranger without the cluster secret: its handshake fails and its connection is closed.
    const port = Number(target.address.split(":").pop());
    const raw = await RawConnection.open(port);
    expect(await raw.handshake(deriveTransportKey("not-the-cluster-secret-0123", "x"), "intruder", target.id)).toBe(false);
    await raw.until(() => raw.closed, "the listener closing the connection");
    // An HTTP request of the old transport gets no answer either.
    await expect(fetch(`http://${target.address}/_mc/forward`, { method: "POST", body: "forged" })).rejects.toThrow();
    expect(cluster.handled.length).toBe(before);
  });

  it("GET /metrics exposes request counters and shard epochs in Prometheus text", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/multiconnect_requests_total\{node="webapp",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/multiconnect_requests_total\{node="webapp",outcome="too_large"\} 2/); // the 413 and the 431 above
    expect(text).toMatch(/multiconnect_shard_epoch\{node="webapp",shard="1"\} [1-9]/);
  });
});
