import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import type { ShardAssignment } from "../../src/core/ports/shard-map.js";
import { APP_ERROR_CODE, NOT_PRIMARY_COREAPP } from "../../src/core/api-errors.js";
import { WebappRequestError } from "../../src/core/errors.js";
import { createMaster, createWebapp } from "../../src/nodes/compose.js";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { refusedPort } from "../../src/testing/net.js";
import { startEmbeddedCluster, type EmbeddedCluster } from "../support/embedded-cluster.js";
import { freePort } from "../../src/testing/net.js";

/**
 * The embedding API as a host service uses it: per-role constructors, a pino logger of the host,
 * typed events, a webapp served only through the host's node:http server, honest application
 * errors, and start-up that can be aborted.
 */
const lines: Record<string, unknown>[] = [];
const logger = pino(
  { level: "info" },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  }),
);

/** A body the application keeps and returns on every request (what a cache would do). */
const CACHED = Buffer.from("cached answer");

let cluster: EmbeddedCluster;
let webapp: Webapp;
let host: Server;
let base = "";
let ownPort = 0;
const mapEvents: ShardAssignment[][] = [];

beforeAll(async () => {
  cluster = await startEmbeddedCluster({
    logger,
    webapp: { body_timeout: "300ms" },
    handle(req, name) {
      if (req.path.startsWith("/v1/boom")) throw new Error(`boom in ${name}`);
      if (req.path.startsWith("/v1/spoof")) return { status: 200, headers: { "X-MC-Error": "1018" }, body: "ran" };
      if (req.path.startsWith("/v1/proto")) return { status: 200, headers: JSON.parse('{"__proto__": "x"}') as Record<string, string> };
      if (req.path.startsWith("/v1/cached")) return { status: 200, body: CACHED };
      return { status: 200, body: `ok from ${name}` };
    },
  });
  ownPort = await freePort();
  webapp = await createWebapp({
    config: cluster.config,
    port: ownPort,
    listen: false,
    logger,
    shardKey: (req) => req.headers["x-phone"] as string | undefined,
  });
  webapp.on("map", (changed) => mapEvents.push([...changed]));
  await webapp.start();
  host = createServer((req, res) => webapp.handler(req, res));
  await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
  await cluster.ready();
}, 30_000);

afterAll(async () => {
  await webapp?.stop();
  host?.close();
  await cluster?.stop();
});

describe("application errors", () => {
  it("a handle() that throws gets 500 with code 1500, no retry-after, runs once, and its stack is logged", async () => {
    const before = cluster.handled.length;
    const r = await fetch(`${base}/v1/boom`, { method: "POST", headers: { "x-phone": "+15550001" }, body: "once" });
    expect(r.status).toBe(500);
    expect(r.headers.get("retry-after")).toBeNull();
    expect(r.headers.get("x-mc-error")).toBeNull();
    const body = (await r.json()) as { errors: { code: number; title: string; details: string }[] };
    expect(body.errors[0]).toMatchObject({ code: APP_ERROR_CODE, title: "Application Error" });
    expect(APP_ERROR_CODE).toBe(1500);
    // The exception's text stays in the log, not in the answer to the client.
    expect(body.errors[0]!.details).not.toMatch(/boom/);
    expect(cluster.handled.length - before).toBe(1);
    const logged = lines.find((l) => l["msg"] === "application handle() threw");
    expect(logged).toBeDefined();
    const err = logged!["err"] as { message: string; stack: string };
    expect(err.message).toMatch(/^boom in c[123]$/);
    expect(err.stack).toMatch(/embedding-api\.test\.ts/);
  });

  it("an application header named like the SDK's old marker reaches the client untouched and does not make the webapp retry", async () => {
    const before = cluster.handled.length;
    const r = await fetch(`${base}/v1/spoof`, { method: "POST", headers: { "x-phone": "+15550003" }, body: "x" });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("ran");
    // The SDK's outcomes travel typed beside the application's response, never in its headers.
    expect(r.headers.get("x-mc-error")).toBe("1018");
    expect(cluster.handled.length - before).toBe(1);
  });

  it("GET /metrics counts the application error under its own outcome, not no_primary", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/multiconnect_requests_total\{[^}]*outcome="app_error"[^}]*\} 1/);
    expect(text).not.toMatch(/outcome="no_primary"/);
  });

  it("a response header named __proto__ is the application's error (500, logged), not a prototype swap that drops it", async () => {
    const r = await fetch(`${base}/v1/proto`, { method: "POST", headers: { "x-phone": "+15550004" }, body: "x" });
    expect(r.status).toBe(500);
    const body = (await r.json()) as { errors: { code: number }[] };
    expect(body.errors[0]!.code).toBe(APP_ERROR_CODE);
    const logged = lines.filter((l) => l["msg"] === "application handle() threw").map((l) => (l["err"] as { message: string }).message);
    expect(logged).toContain("handle() returned a header named __proto__");
  });
});

describe("a webapp served only through the host's server", () => {
  it("forwards through the host's handler and opens no listener of its own", async () => {
    const r = await fetch(`${base}/v1/messages?to=1`, { method: "POST", headers: { "x-phone": "+15550002" }, body: "hi" });
    expect(r.status).toBe(200);
    expect(await r.text()).toMatch(/^ok from c[123]$/);
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(ownPort, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve(false)));
      s.once("error", () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it("a missing shard key with a shardKey function gets a 400 that does not name the header", async () => {
    const r = await fetch(`${base}/v1/messages`, { method: "POST", body: "x" });
    expect(r.status).toBe(400);
    const { errors } = (await r.json()) as { errors: { details: string }[] };
    expect(errors[0]!.details).not.toMatch(/x-shard-key|header/);
    expect(errors[0]!.details).toMatch(/shardKey function/);
  });

  it("a client that stalls mid-body gets 408 after body_timeout and nothing reaches a coreapp", async () => {
    const before = cluster.handled.length;
    const { port } = host.address() as AddressInfo;
    const started = performance.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(port, "127.0.0.1", () => {
        s.write("POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-phone: 1\r\ncontent-length: 10\r\n\r\nhalf");
      });
      let text = "";
      s.on("data", (d: Buffer) => (text += d.toString()));
      s.on("close", () => resolve(text));
      s.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(cluster.handled.length).toBe(before);
  });

  it('emits a typed "map" event with each shard\'s route as it moves to a newer epoch', () => {
    const seen = new Set(mapEvents.flat().map((a) => a.shard));
    expect([...seen].sort()).toEqual([0, 1]);
    for (const a of mapEvents.flat()) expect(a.epoch).toBeGreaterThan(0);
  });
});

describe("start-up and disposal", () => {
  it("start({ signal }) stops retrying an unreachable store when the signal aborts", async () => {
    const config = parseConfig(
      {
        cluster_name: "unreachable",
        secret: "embedded-test-secret-0123456789",
        store: { backend: "postgres", url: `postgres://postgres@127.0.0.1:${await refusedPort()}/test`, connect_timeout: "200ms" },
      } satisfies ConfigInput,
      {},
    );
    const master = await createMaster({ config, port: 0, logger: pino({ level: "silent" }) });
    const started = performance.now();
    await expect(master.start({ signal: AbortSignal.timeout(500) })).rejects.toMatchObject({ name: "TimeoutError" });
    expect(performance.now() - started).toBeLessThan(10_000);
    await master.stop();
  });

  it("stop() right after start() returns, even while the master lease is still being acquired", async () => {
    const config = parseConfig(
      {
        cluster_name: "quick",
        secret: "embedded-test-secret-0123456789",
        store: { backend: "sqlite", path: join(mkdtempSync(join(tmpdir(), "mc-quick-")), "c.db") },
      } satisfies ConfigInput,
      {},
    );
    const master = await createMaster({ config, port: 0, logger: pino({ level: "silent" }) });
    await master.start();
    const started = performance.now();
    await master[Symbol.asyncDispose]();
    const ms = performance.now() - started;
    console.log(`master stopped ${Math.round(ms)} ms after start() returned`);
    expect(ms).toBeLessThan(10_000);
  });

  it("[Symbol.asyncDispose]() stops the node: it leaves the cluster's registry", async () => {
    const extra = await createWebapp({ config: cluster.config, name: "disposable", port: 0, listen: false, logger });
    await extra.start();
    const registered = async () =>
      ((await (await fetch(`${base}/v1/health`)).json()) as ClusterStatus).nodes.some((n) => n.id === extra.id);
    expect(await registered()).toBe(true);
    await extra[Symbol.asyncDispose]();
    expect(await registered()).toBe(false);
  });
});

describe("webapp.request(): calling the cluster from the host's own code", () => {
  it("reaches the shard's owner the listener would route to, with the method, path, headers and body given", async () => {
    const viaHttp = await fetch(`${base}/v1/messages`, { method: "POST", headers: { "x-phone": "+15550042" }, body: "x" });
    await viaHttp.text();
    const before = cluster.handled.length;
    const r = await webapp.request({
      shardKey: "+15550042",
      method: "PUT",
      path: "/v1/messages?to=2",
      headers: { "Content-Type": "text/plain", Host: "ignored.example", Connection: "close", "X-Trace": "t1" },
      body: "héllo",
    });
    expect(r.status).toBe(200);
    expect(r.applicationError).toBe(false);
    expect(r.body.toString()).toMatch(/^ok from c[123]$/);
    expect(r.headers["x-multiconnect-node"]).toBe(viaHttp.headers.get("x-multiconnect-node"));
    expect(cluster.handled.length - before).toBe(1);
    const seen = cluster.handled.at(-1)!;
    expect(seen).toMatchObject({ method: "PUT", path: "/v1/messages?to=2" });
    // Names lower-cased as node:http gives them; hop-by-hop ones are not forwarded.
    expect(seen.headers).toMatchObject({ "content-type": "text/plain", "x-trace": "t1" });
    expect(seen.headers["host"]).toBeUndefined();
    expect(seen.headers["connection"]).toBeUndefined();
    expect(Buffer.from(seen.body).toString()).toBe("héllo");
  });

  it("resolves with the application's failure as answered (500, code 1500), ran once and marked applicationError", async () => {
    const before = cluster.handled.length;
    const r = await webapp.request({ shardKey: "+15550043", method: "POST", path: "/v1/boom", body: new Uint8Array([1, 2]) });
    expect(r.status).toBe(500);
    expect(r.applicationError).toBe(true);
    expect((JSON.parse(r.body.toString()) as { errors: { code: number }[] }).errors[0]!.code).toBe(APP_ERROR_CODE);
    expect(cluster.handled.length - before).toBe(1);
  });

  it("refuses a malformed request with the listener's status and code, naming the problem, and runs nothing", async () => {
    const before = cluster.handled.length;
    const refusal = (p: Promise<unknown>, what: string) =>
      p.then(
        () => expect.fail(`request() resolved: ${what}`),
        (e: unknown) => e as WebappRequestError,
      );
    const cases: [Parameters<Webapp["request"]>[0], number, RegExp][] = [
      [{ path: "/v1/messages" }, 400, /Missing shard key.*shardKey/],
      [{ shardKey: "k", path: "v1/messages" }, 400, /Bad request target/],
      [{ shardKey: "k", method: "GE T", path: "/v1/messages" }, 400, /Bad method/],
      [{ shardKey: "k", path: "/v1/messages", headers: { "x-bad": "a\r\nx-injected: 1" } }, 400, /Bad header.*x-bad/],
      [{ shardKey: "k", path: "/v1/messages", headers: { "bad name": "v" } }, 400, /Bad header.*bad name/],
      [{ shardKey: "k", path: "/v1/messages", body: "x".repeat(cluster.config.webapp.maxBodyBytes + 1) }, 413, /exceeds \d+ bytes/],
    ];
    const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`x-h${i}`, "v"]));
    const odd = (v: unknown) => v as Parameters<Webapp["request"]>[0];
    cases.push(
      [{ shardKey: "k", path: "/v1/messages", headers: JSON.parse('{"__proto__": "x"}') as Record<string, string> }, 400, /__proto__/],
      [{ shardKey: "k", path: "/v1/messages", headers: { "x-n": 5 } as unknown as Record<string, string> }, 400, /Bad header.*x-n/],
      [{ shardKey: "k", path: "/v1/messages", headers: many }, 400, /257 headers/],
      [odd({ shardKey: "k", path: "/v1/messages", headers: new Map([["x-a", "1"]]) }), 400, /plain object/],
      [odd({ shardKey: "k", path: "/v1/messages", body: 42 }), 400, /Bad body/],
      [odd(null), 400, /must be an object/],
      [{ shardKey: "k", path: "/v1/messages", headers: { "x-big": "b".repeat(20_000) } }, 431, /headers exceed 16384 bytes/],
    );
    for (const [req, status, message] of cases) {
      const e = await refusal(webapp.request(req), `the case that expects ${String(message)}`);
      expect(e).toBeInstanceOf(WebappRequestError);
      expect({ status: e.status, apiCode: e.apiCode, retryable: e.retryable, mayHaveRun: e.mayHaveRun }).toEqual({
        status,
        apiCode: status,
        retryable: false,
        mayHaveRun: false,
      });
      expect(e.message).toMatch(message);
      // A header's value may be a secret (authorization): a refusal names the header, never the value.
      expect(e.message).not.toMatch(/x-injected|bbbb/);
    }
    expect(cluster.handled.length).toBe(before);
  });

  it("upper-cases the method and joins headers that differ only in case, as node:http gives them", async () => {
    await webapp.request({ shardKey: "+15550044", method: "post", path: "/v1/messages", headers: { "X-A": "1", "x-a": "2" } });
    expect(cluster.handled.at(-1)).toMatchObject({ method: "POST", headers: { "x-a": "1, 2" } });
  });

  it("shares no buffer with the application, either way, even in one process", async () => {
    const sent = new Uint8Array([1, 2, 3]);
    const first = await webapp.request({ shardKey: "+15550045", method: "POST", path: "/v1/cached", body: sent });
    sent[0] = 9;
    expect([...cluster.handled.at(-1)!.body]).toEqual([1, 2, 3]);
    first.body.fill(0);
    const again = await webapp.request({ shardKey: "+15550045", path: "/v1/cached" });
    expect(again.body.toString()).toBe("cached answer");
  });

  it("rejects as retryable 1018 when no coreapp serves the shard within the retry window", async () => {
    const config = parseConfig(
      {
        cluster_name: "no-coreapps",
        shards: 2,
        secret: "embedded-test-secret-0123456789",
        store: { backend: "sqlite", path: join(mkdtempSync(join(tmpdir(), "mc-empty-")), "c.db") },
        webapp: { retry_window: "200ms" },
      } satisfies ConfigInput,
      {},
    );
    const lonely = await createWebapp({ config, port: 0, listen: false, logger });
    await expect(lonely.request({ shardKey: "k", path: "/v1/messages" })).rejects.toMatchObject({ code: "not_started" });
    await lonely.start();
    try {
      const e = (await lonely.request({ shardKey: "k", path: "/v1/messages" }).catch((error: unknown) => error)) as WebappRequestError;
      expect(e).toBeInstanceOf(WebappRequestError);
      expect({ status: e.status, apiCode: e.apiCode, retryable: e.retryable, mayHaveRun: e.mayHaveRun }).toEqual({
        status: 503,
        apiCode: NOT_PRIMARY_COREAPP,
        retryable: true,
        mayHaveRun: false,
      });
      expect(e.details).toMatch(/has no primary coreapp/);
    } finally {
      await lonely.stop();
    }
    await expect(lonely.request({ shardKey: "k", path: "/v1/messages" })).rejects.toMatchObject({ code: "not_started" });
  });
});
