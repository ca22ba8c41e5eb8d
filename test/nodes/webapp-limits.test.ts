import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { ManualClock } from "../../src/core/clock.js";
import { ConfigError } from "../../src/core/errors.js";
import { ClientRateLimiter } from "../../src/core/webapp/rate-limit.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { FuzzCluster } from "../fuzz/fuzz-cluster.js";
import { exchange, rawRequest } from "../fuzz/raw-http.js";

/**
 * Each of the webapp's connection and request limits (webapp-limits.ts), on an embedded cluster
 * (SQLite, real transport): every test sets its limit low enough that the default, or Node's own
 * default, would fail it. Deadlines are generous (the machine may be loaded); what is asserted is
 * the outcome (closed, 431, 429), never a tight time.
 */
const cluster = new FuzzCluster({});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  await cluster.start();
}, 60_000);

afterAll(async () => {
  await cluster.stop();
});

/**
 * A webapp with `limits`. Every shard had its primary before it started, so it routes at once; it
 * sends no probe of its own, which would spend the connections and tokens the tests count.
 */
function webappWith(limits: Parameters<FuzzCluster["embeddedWebapp"]>[0]): Promise<Webapp> {
  return cluster.embeddedWebapp(limits);
}

function send(w: Webapp, key: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${w.port}/v1/messages`, { headers: { "x-shard-key": key }, ...init, signal: AbortSignal.timeout(10_000) });
}

/** Opens a connection and completes one request on it, leaving it open (keep-alive). */
async function heldConnection(port: number): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.once("data", () => resolve());
    socket.write(rawRequest("GET", "/livez", [["host", "x"]]));
  });
  return socket;
}

describe("webapp limits", () => {
  it("max_connections: a connection past the limit is closed unanswered; the open ones keep being served", async () => {
    const w = await webappWith({ max_connections: 3 });
    const held = [await heldConnection(w.port), await heldConnection(w.port)];
    const third = await heldConnection(w.port);
    const refused = await exchange(w.port, [rawRequest("GET", "/livez", [["host", "x"]])], { keepOpen: true, deadlineMs: 10_000 });
    expect(refused.ended, refused.text).toBe("closed");
    expect(refused.statuses, refused.text).toEqual([]);
    third.destroy();
    // Once the server has seen the close, a new connection is served again.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await exchange(w.port, [rawRequest("GET", "/livez", [["host", "x"]])], { deadlineMs: 5000 })).statuses[0] ?? 0;
      if (status !== 200) await sleep(100);
    }
    expect(status).toBe(200);
    const text = await w.metrics.registry.getSingleMetricAsString("multiconnect_connections_refused_total");
    expect(Number(/ (\d+)$/m.exec(text)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    for (const s of held) s.destroy();
  });

  it("max_header_bytes: headers past the limit get 431; under it they are forwarded", async () => {
    const w = await webappWith({ max_header_bytes: 2048 });
    const big = await exchange(w.port, [
      rawRequest("GET", "/m", [
        ["host", "x"],
        ["x-shard-key", "a"],
        ["x-pad", "p".repeat(3000)],
      ]),
    ]);
    expect(big.statuses).toEqual([431]);
    const fits = await exchange(w.port, [
      rawRequest("GET", "/m", [
        ["host", "x"],
        ["x-shard-key", "a"],
        ["x-pad", "p".repeat(1000)],
      ]),
    ]);
    expect(fits.statuses).toEqual([201]);
  });

  it("headers_timeout: a client trickling its headers gets 408 and the connection closes", async () => {
    const w = await webappWith({ headers_timeout: "1s", request_timeout: "30s" });
    const ex = await exchange(w.port, "GET /m HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\nx-slow: ".split("").concat(Array(200).fill("s")), {
      gapMs: 100,
      keepOpen: true,
      deadlineMs: 15_000,
    });
    expect(ex.ended).toBe("closed");
    expect(ex.statuses).toEqual([408]);
  });

  it("request_timeout: it bounds headers and body together, before the body's own timeout would", async () => {
    // Headers take ~3 s (inside headers_timeout), then the body trickles: request_timeout ends the
    // request about 6-7 s after it began; body_timeout alone would answer at ~9 s, with the
    // webapp's JSON error body instead of Node's bare 408.
    const w = await webappWith({ headers_timeout: "6s", request_timeout: "6s", body_timeout: "6s" });
    const head = "POST /m HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\ncontent-length: 100\r\n";
    const pieces = [...head.match(/[^\n]*\n/g)!, "\r\n", ...Array(30).fill("b")];
    const ex = await exchange(w.port, pieces, { gapMs: 500, keepOpen: true, deadlineMs: 20_000 });
    expect(ex.ended).toBe("closed");
    expect(ex.statuses).toEqual([408]);
    expect(ex.text).not.toContain('"errors"');
  });

  it("keep_alive_timeout: an idle keep-alive connection is closed by the webapp", async () => {
    const w = await webappWith({ keep_alive_timeout: "1s" });
    const ex = await exchange(
      w.port,
      [
        rawRequest("GET", "/m", [
          ["host", "x"],
          ["x-shard-key", "a"],
        ]),
      ],
      { keepOpen: true, deadlineMs: 15_000 },
    );
    expect(ex.statuses).toEqual([201]);
    expect(ex.ended).toBe("closed");
  });

  it("client_rate_limit: past the burst a client gets 429 with Retry-After, the application sees nothing, and it recovers", async () => {
    // One token every 5 s: the test's own slowness on a loaded machine cannot refill the bucket.
    const w = await webappWith({ client_rate_limit: 0.2, client_rate_burst: 3 });
    const before = cluster.handled.length;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await send(w, "r")).status);
    expect(statuses.slice(0, 3)).toEqual([201, 201, 201]);
    expect(statuses.slice(3)).toContain(429);
    expect(cluster.handled.length - before).toBe(statuses.filter((s) => s === 201).length);

    const limited = await send(w, "r");
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const body = (await limited.json()) as { errors: { code: number; title: string; details: string }[] };
    expect(body.errors[0]).toMatchObject({ code: 429, title: "Too many requests" });
    // The reserved paths are limited too: a token guesser gets 429, not a 403 that tells it something.
    const guess = await fetch(`http://127.0.0.1:${w.port}/v1/settings`, { headers: { authorization: "Bearer wrong-guess-0123456789" } });
    expect(guess.status).toBe(429);
    // A token comes back within 5 s.
    let status = 0;
    for (let i = 0; i < 100 && status !== 201; i++) {
      await sleep(200);
      status = (await send(w, "r")).status;
    }
    expect(status).toBe(201);
  });

  it("defaults leave 50 concurrent clients on one address unthrottled", async () => {
    const w = await webappWith({});
    const statuses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => Promise.all([0, 1, 2, 3].map(() => send(w, `c${i}`).then((r) => r.status)))),
    );
    expect(statuses.flat().every((s) => s === 201)).toBe(true);
  });
});

describe("ClientRateLimiter", () => {
  it("take() allows a burst, then one request per 1/rate seconds, and says how long to wait", () => {
    const clock = new ManualClock();
    const limiter = new ClientRateLimiter(2, 3, clock);
    expect([0, 1, 2].map(() => limiter.take("a"))).toEqual([0, 0, 0]);
    expect(limiter.take("a")).toBe(500);
    expect(limiter.take("b")).toBe(0); // another client has its own bucket
    void clock.advance(250, 250);
    expect(limiter.take("a")).toBe(250);
    void clock.advance(250, 250);
    expect(limiter.take("a")).toBe(0);
    void clock.advance(10_000, 10_000);
    expect([0, 1, 2, 3].map(() => limiter.take("a"))).toEqual([0, 0, 0, 500]); // refills to the burst, not beyond
  });

  it("take() keeps at most maxClients buckets however many addresses call", () => {
    const clock = new ManualClock();
    const limiter = new ClientRateLimiter(1, 1, clock, 100);
    for (let i = 0; i < 10_000; i++) limiter.take(`10.0.${i >> 8}.${i & 255}`);
    expect(limiter.clients).toBeLessThanOrEqual(100);
  });

  it("refuses a rate or burst that makes no sense", () => {
    const clock = new ManualClock();
    expect(() => new ClientRateLimiter(0, 1, clock)).toThrow(/ratePerSecond/);
    expect(() => new ClientRateLimiter(1, 0, clock)).toThrow(/burst/);
  });
});

describe("webapp limits in the config", () => {
  const base = { cluster_name: "c", secret: "limits-test-secret-0123456789", store: { backend: "sqlite", path: "/tmp/x.db" } };
  const error = (webapp: Record<string, unknown>): ConfigError => {
    try {
      parseConfig({ ...base, webapp }, {});
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return e as ConfigError;
    }
    throw new Error("expected a ConfigError");
  };

  it("parseConfig() fills the documented defaults", () => {
    const w = parseConfig(base, {}).webapp;
    expect(w).toMatchObject({
      maxConnections: 1000,
      maxHeaderBytes: 16384,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 65_000,
      clientRateLimit: 0,
    });
  });

  it("parseConfig() names the key of a limit that is out of range or inconsistent", () => {
    expect(error({ request_timeout: "5s", headers_timeout: "10s" }).key).toBe("webapp.request_timeout");
    expect(error({ request_timeout: "5s", headers_timeout: "1s", body_timeout: "10s" }).message).toMatch(/body_timeout/);
    expect(error({ client_rate_burst: 10 }).key).toBe("webapp.client_rate_burst");
    expect(error({ max_header_bytes: 100 }).message).toMatch(/webapp\.max_header_bytes/);
    // Past 64 KiB a forward's headers could outgrow the room the transport's frames leave for them.
    expect(error({ max_header_bytes: 64 * 1024 + 1 }).message).toMatch(/webapp\.max_header_bytes/);
    expect(error({ max_connections: 0 }).message).toMatch(/webapp\.max_connections/);
    expect(error({ client_rate_limit: -1 }).message).toMatch(/webapp\.client_rate_limit/);
    expect(error({ headers_timeout: "soon" }).message).toMatch(/webapp\.headers_timeout/);
  });

  it("client_rate_burst defaults to one second's worth", () => {
    expect(parseConfig({ ...base, webapp: { client_rate_limit: 50 } }, {}).webapp.clientRateBurst).toBe(50);
    expect(parseConfig({ ...base, webapp: { client_rate_limit: 0.5 } }, {}).webapp.clientRateBurst).toBe(1);
  });
});
