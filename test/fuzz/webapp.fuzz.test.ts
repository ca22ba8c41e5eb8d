import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isReserved } from "../../src/nodes/webapp-admin.js";
import { ADMIN_TOKEN, APP_MARKER, FuzzCluster, KEY_ECHO, type WebappProcess } from "./fuzz-cluster.js";
import { exchange, mutateRequest, rawRequest, Rng, type RawExchange } from "./raw-http.js";

/**
 * Hostile input on everything a client or an operator reaches over HTTP: the webapp's API port
 * (forwarding and the reserved routes) and its operations port. The webapp runs as its own process
 * (the built CLI) on SQLite, in front of a real coreapp whose application records every request.
 *
 * Invariants, checked on every exchange: each answer is a 4xx, a 2xx the application gave (the
 * request was valid after all), or a 503 — never another 5xx — or a closed connection; the
 * webapp process never dies; the application gets exactly the requests the client saw it answer,
 * each with a shard key, a path outside the reserved prefixes and a body within the limit; the
 * webapp's RSS and heap stay within a bound a leak would break.
 *
 * The random part is seeded: the seed is printed, and `FUZZ_SEED=<seed> npm run fuzz` replays it.
 * `FUZZ_PROFILE=long` (what `npm run fuzz` sets) runs 20 times more mutations than CI's short profile.
 */
const SEED = process.env["FUZZ_SEED"] ? Number(process.env["FUZZ_SEED"]) : Math.floor(Math.random() * 2 ** 31);
const LONG = process.env["FUZZ_PROFILE"] === "long";
const MUTATIONS = LONG ? 20_000 : 1_000;
const MAX_BODY = 64 * 1024;
const HEADERS_TIMEOUT_MS = 2000;
const BODY_TIMEOUT_MS = 2000;
/** A closed connection, or an answer, is expected long before this: generous for a loaded machine. */
const SLOW_DEADLINE_MS = 20_000;
/** Growth a leak would pass over the run (each leaked 64 KiB body is 1 MiB per 16 requests). */
const RSS_GROWTH_BOUND = 160 * 1024 * 1024;
const HEAP_GROWTH_BOUND = 64 * 1024 * 1024;

const cluster = new FuzzCluster({
  max_body_bytes: MAX_BODY,
  body_timeout: `${BODY_TIMEOUT_MS}ms`,
  headers_timeout: `${HEADERS_TIMEOUT_MS}ms`,
  request_timeout: "4s",
  keep_alive_timeout: "5s",
});
let webapp: WebappProcess;
/** Responses that carried the application's marker: how many requests the application should have seen. */
let appAnswers = 0;
/** The shard keys of the requests the clients saw the application answer (echoed by it). */
const answeredKeys: string[] = [];
/** Mutation cases whose connection the server cut before answering the sentinel (a parse error, a timeout). */
const cutCases = new Set<number>();
let handledAtStart = 0;
const memory = { rss0: 0, heap0: 0, rssMax: 0 };
const log = (line: string) => process.stdout.write(`[fuzz] ${line}\n`);

beforeAll(async () => {
  log(`seed ${SEED} (${LONG ? "long" : "short"} profile; replay: FUZZ_SEED=${SEED} npm run fuzz)`);
  await cluster.start();
  webapp = await cluster.spawnWebapp("fuzz-webapp");
  // Warm up (JIT, pools, the first metrics scrape) before taking the memory baseline.
  for (let i = 0; i < 200; i++) await exchange(webapp.port, [valid(`warm-${i}`, "x".repeat(1024))]);
  memory.rss0 = webapp.rss();
  memory.heap0 = await webapp.heapUsed();
  handledAtStart = cluster.handled.length;
  log(`baseline rss ${mb(memory.rss0)}, heap ${mb(memory.heap0)}`);
}, 120_000);

afterAll(async () => {
  await cluster.stop();
});

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

function valid(key: string, body = "hello", path = "/v1/messages"): Buffer {
  return rawRequest(
    "POST",
    path,
    [
      ["host", "x"],
      ["x-shard-key", key],
      ["content-type", "text/plain"],
      ["content-length", String(Buffer.byteLength(body))],
    ],
    body,
  );
}

function admin(
  method: string,
  path: string,
  body: string,
  auth: [string, string][] = [["authorization", `Bearer ${ADMIN_TOKEN}`]],
): Buffer {
  return rawRequest(
    method,
    path,
    [["host", "x"], ...auth, ["content-type", "application/json"], ["content-length", String(Buffer.byteLength(body))]],
    body,
  );
}

/** The application's answers in `text` (one per forwarded request the client saw answered). */
const markers = (text: string) => (text.match(new RegExp(`\\r\\n${APP_MARKER}: 1\\r\\n`, "gi")) ?? []).length;

/**
 * Checks one exchange against the invariants and counts the application's answers in it. `label`
 * names the case in a failure message, with the seed.
 */
function check(label: string, ex: RawExchange, o: { app?: "never" | "maybe" } = {}): RawExchange {
  const context = `${label} (seed ${SEED}): ${JSON.stringify(ex.text.slice(0, 300))}`;
  for (const s of ex.statuses) expect(s < 500 || s === 503, `status ${s}: ${context}`).toBe(true);
  const m = markers(ex.text);
  if (o.app === "never") expect(m, `the application answered: ${context}`).toBe(0);
  appAnswers += m;
  for (const k of ex.text.matchAll(new RegExp(`\\r\\n${KEY_ECHO}: ([^\\r]*)\\r\\n`, "gi"))) answeredKeys.push(k[1]!);
  return ex;
}

/** Sends each case and checks it; `app` is whether a case may reach the application. */
async function run(cases: Record<string, (Buffer | string)[]>, app: "never" | "maybe" = "never", o: { deadlineMs?: number } = {}) {
  const before = cluster.handled.length;
  const results = await Promise.all(
    Object.entries(cases).map(async ([label, chunks]) => [label, check(label, await exchange(webapp.port, chunks, o), { app })] as const),
  );
  const answered = Object.values(Object.fromEntries(results)).reduce((n, ex) => n + markers(ex.text), 0);
  expect(cluster.handled.length - before, `the application's requests vs its answers, from: ${Object.keys(cases).join(", ")}`).toBe(
    answered,
  );
  return Object.fromEntries(results);
}

describe("webapp API port under hostile input", () => {
  it("answers malformed request lines with 4xx and closes, reaching nothing", async () => {
    const r = await run({
      garbage: ["GARBAGE\r\n\r\n"],
      "no target": ["GET\r\n\r\n"],
      "bad version": ["GET / HTTP/9.9\r\nhost: x\r\n\r\n"],
      "NUL in target": ["GET /\0 HTTP/1.1\r\nhost: x\r\n\r\n"],
      "control char in method": ["G\x7fT / HTTP/1.1\r\nhost: x\r\n\r\n"],
      "unknown method": ["FROB /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\n\r\n"],
      "target of 100 KB": [`GET /${"a".repeat(100_000)} HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\n\r\n`],
      "only CRLFs": ["\r\n\r\n\r\n\r\n"],
      "binary noise": [Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) % 256))],
      "asterisk target": ["OPTIONS * HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\n\r\n"],
      "authority target": ["CONNECT example.com:443 HTTP/1.1\r\nhost: example.com\r\nx-shard-key: a\r\n\r\n"],
    });
    for (const [label, ex] of Object.entries(r)) {
      expect(
        ex.statuses.every((s) => s >= 400 && s < 500),
        `${label}: ${ex.text.slice(0, 200)}`,
      ).toBe(true);
      expect(ex.ended, label).toBe("closed");
    }
  });

  it("refuses malformed and smuggling-shaped headers", async () => {
    const head = "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\n";
    const r = await run({
      "no colon": [`${head}this is not a header\r\n\r\n`],
      "space before colon": [`${head}content-length : 5\r\n\r\nhello`],
      "bad name": [`${head}bad(name): 1\r\n\r\n`],
      "NUL in value": [`${head}x-a: a\0b\r\n\r\n`],
      "bare CR": [`${head}x-a: a\rb\r\n\r\n`],
      "obs-fold": [`${head}x-a: a\r\n  folded\r\n\r\n`],
      "two content-lengths": [`${head}content-length: 5\r\ncontent-length: 6\r\n\r\nhello!`],
      "negative content-length": [`${head}content-length: -1\r\n\r\n`],
      "content-length and chunked": [`${head}content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`],
      "unknown transfer-encoding": [`${head}transfer-encoding: gzip\r\n\r\nhello`],
      "chunked twice": [`${head}transfer-encoding: chunked, chunked\r\n\r\n0\r\n\r\n`],
    });
    for (const [label, ex] of Object.entries(r)) expect(ex.statuses.length === 0 || ex.statuses.every((s) => s >= 400), label).toBe(true);
  });

  it("answers 431 to huge headers and to too many headers", async () => {
    const many = Array.from({ length: 3000 }, (_, i) => `x-h-${i}: v\r\n`).join("");
    const r = await run({
      "one 20 KB header": [`GET / HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\nx-big: ${"b".repeat(20_000)}\r\n\r\n`],
      "3000 headers": [`GET / HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\n${many}\r\n`],
      "20 KB shard key": [`GET / HTTP/1.1\r\nhost: x\r\nx-shard-key: ${"k".repeat(20_000)}\r\n\r\n`],
    });
    for (const [label, ex] of Object.entries(r)) expect(ex.statuses, label).toEqual([431]);
  });

  it("handles invalid shard keys: missing or empty is 400, binary is refused by the parser", async () => {
    const r = await run({
      missing: ["GET /v1/messages HTTP/1.1\r\nhost: x\r\n\r\n"],
      empty: ["GET /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: \r\n\r\n"],
      "control bytes": ["GET /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: \x01\x02\x03\r\n\r\n"],
      "NUL only": ["GET /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: \0\r\n\r\n"],
    });
    for (const [label, ex] of Object.entries(r)) expect(ex.statuses, label).toEqual([400]);
    // Long and non-ASCII keys are keys like any other: they hash to a shard and reach the application.
    const ok = await run(
      {
        "8 KB key": [`GET /k HTTP/1.1\r\nhost: x\r\nx-shard-key: ${"k".repeat(8000)}\r\n\r\n`],
        "latin1 key": [Buffer.from("GET /k HTTP/1.1\r\nhost: x\r\nx-shard-key: \xe9\xff\x80\r\n\r\n", "latin1")],
      },
      "maybe",
    );
    for (const [label, ex] of Object.entries(ok)) expect(ex.statuses, label).toEqual([201]);
  });

  it("answers 413 to oversized bodies, declared or chunked, and closes", async () => {
    const r = await run({
      "declared 100 MB": [`POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\ncontent-length: 100000000\r\n\r\n`, "x".repeat(1000)],
      "chunked 1 MB": [
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\ntransfer-encoding: chunked\r\n\r\n",
        ...Array.from({ length: 16 }, () => `10000\r\n${"y".repeat(0x10000)}\r\n`),
        "0\r\n\r\n",
      ],
      "admin body of 1 MB": [admin("PATCH", "/v1/settings/application", `{"a":"${"z".repeat(1_000_000)}"}`)],
    });
    for (const [label, ex] of Object.entries(r)) {
      expect(ex.statuses, label).toEqual([413]);
      expect(ex.ended, label).toBe("closed");
    }
  });

  it("refuses invalid chunked encoding", async () => {
    const head = "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\ntransfer-encoding: chunked\r\n\r\n";
    const r = await run({
      "non-hex size": [`${head}zz\r\nhello\r\n0\r\n\r\n`],
      "size overflow": [`${head}ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n`],
      "missing CRLF after data": [`${head}5\r\nhelloXX0\r\n\r\n`],
      "negative size": [`${head}-5\r\nhello\r\n0\r\n\r\n`],
      "size larger than data, then end": [`${head}ff\r\nhello\r\n`],
      "bad extension": [`${head}5;\0\r\nhello\r\n0\r\n\r\n`],
    });
    for (const [label, ex] of Object.entries(r)) {
      expect(
        ex.statuses.every((s) => s >= 400 && s < 500),
        `${label}: ${ex.text.slice(0, 200)}`,
      ).toBe(true);
      expect(ex.ended, label).toBe("closed");
    }
  });

  it("answers pipelined requests in order, and stops at a malformed one", async () => {
    const burst = Array.from({ length: 300 }, (_, i) => valid(`pipe-${i}`));
    const before = cluster.handled.length;
    const all = check("300 pipelined", await exchange(webapp.port, [Buffer.concat(burst)]), { app: "maybe" });
    expect(all.statuses).toEqual(Array(300).fill(201));
    expect(cluster.handled.length - before).toBe(300);

    const mixed = [valid("m1"), valid("m2"), Buffer.from("BROKEN REQUEST\r\n\r\n"), valid("m3")];
    const before2 = cluster.handled.length;
    const ex = check("pipelined with a malformed one", await exchange(webapp.port, [Buffer.concat(mixed)]), { app: "maybe" });
    // The two before it may be answered or cut off by the parse error; the one after never runs.
    expect(ex.statuses.filter((s) => s === 400).length).toBeLessThanOrEqual(1);
    expect(cluster.handled.map((r) => r.headers["x-shard-key"]).slice(before2)).not.toContain("m3");
  });

  it("closes connections that trickle their headers or body (slowloris)", async () => {
    const headerBytes = "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-shard-key: slow\r\ncontent-length: 5\r\n".split("");
    const [headers, body, admin401] = await Promise.all([
      exchange(webapp.port, headerBytes, { gapMs: 300, deadlineMs: SLOW_DEADLINE_MS, keepOpen: true }),
      exchange(webapp.port, [valid("slow-body", "12345").subarray(0, -5), ..."12345".split("").map((c) => c.repeat(1))], {
        gapMs: BODY_TIMEOUT_MS,
        deadlineMs: SLOW_DEADLINE_MS,
        keepOpen: true,
      }),
      // Answered (401) without reading the body; the trickled body then runs into request_timeout.
      exchange(
        webapp.port,
        ["POST /v1/admin/pause HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n", ...Array.from({ length: 200 }, () => "{")],
        { gapMs: 200, deadlineMs: SLOW_DEADLINE_MS, keepOpen: true },
      ),
    ]);
    for (const [label, ex] of Object.entries({ headers, body, admin401 })) {
      check(label, ex, { app: "never" });
      log(`slow ${label}: closed after ${Math.round(ex.ms)} ms, statuses ${ex.statuses.join(",") || "none"}`);
      expect(ex.ended, `${label} was still open after ${SLOW_DEADLINE_MS} ms`).toBe("closed");
    }
    expect(headers.statuses).toEqual([408]);
    expect(body.statuses).toEqual([408]);
    // Answered before its body: the connection lingers a moment, then closes; one answer only
    // (without the linger, the trickle ran into request_timeout and Node sent a 408 after the 401).
    expect(admin401.statuses).toEqual([401]);
  });

  it("keeps the reserved routes to themselves: bad JSON, wrong types and missing or misplaced tokens", async () => {
    const wrongHeaders: Record<string, [string, string][]> = {
      "no token": [],
      "wrong token": [["authorization", "Bearer wrong-token-0123456789abcdef"]],
      "token in x-admin-token": [["x-admin-token", ADMIN_TOKEN]],
      "token as Basic": [["authorization", `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString("base64")}`]],
      "token without scheme": [["authorization", ADMIN_TOKEN]],
      "token in the query": [],
      "empty bearer": [["authorization", "Bearer "]],
      "token with a byte appended": [["authorization", `Bearer ${ADMIN_TOKEN}x`]],
      "token prefix": [["authorization", `Bearer ${ADMIN_TOKEN.slice(0, -1)}`]],
    };
    const denied: Record<string, Buffer[]> = {};
    for (const [label, auth] of Object.entries(wrongHeaders)) {
      const path = label === "token in the query" ? `/v1/admin/pause?token=${ADMIN_TOKEN}` : "/v1/admin/pause";
      denied[`pause, ${label}`] = [admin("POST", path, '{"shard":0}', auth)];
      denied[`settings, ${label}`] = [admin("GET", "/v1/settings", "", auth)];
      denied[`forget, ${label}`] = [admin("POST", "/v1/admin/forget", '{"node":"c1"}', auth)];
    }
    const r = await run(denied);
    for (const [label, ex] of Object.entries(r)) expect([401, 403], label).toContain(ex.statuses[0]);

    const bad = await run({
      "bad JSON": [admin("PATCH", "/v1/settings/application", "{not json")],
      "JSON array": [admin("PATCH", "/v1/settings/application", "[1,2]")],
      "JSON string": [admin("POST", "/v1/admin/pause", '"pause"')],
      "unknown setting": [admin("PATCH", "/v1/settings/application", '{"no_such_setting": "5s"}')],
      "setting of wrong type": [admin("PATCH", "/v1/settings/application", '{"unhealthy_interval": {"a": 1}}')],
      "negative setting": [admin("PATCH", "/v1/settings/application", '{"unhealthy_interval": -5}')],
      "shard as text": [admin("POST", "/v1/admin/pause", '{"shard": "0"}')],
      "shard negative": [admin("POST", "/v1/admin/resume", '{"shard": -1}')],
      "shard huge": [admin("POST", "/v1/admin/resume", '{"shard": 1e300}')],
      "duration nonsense": [admin("POST", "/v1/admin/pause", '{"duration": "forever"}')],
      "reason not text": [admin("POST", "/v1/admin/pause", '{"reason": 5}')],
      "clear-hold without node": [admin("POST", "/v1/admin/clear-hold", "{}")],
      "forget without node": [admin("POST", "/v1/admin/forget", '{"force": true}')],
      "forget with force as text": [admin("POST", "/v1/admin/forget", '{"node": "c1", "force": "yes"}')],
      "deeply nested": [admin("PATCH", "/v1/settings/application", `${"[".repeat(30_000)}${"]".repeat(30_000)}`)],
      "history shard text": [admin("GET", "/v1/history?shard=abc", "")],
      "history limit too long": [admin("GET", "/v1/history?limit=99999999999999999999", "")],
      "unknown admin path": [admin("POST", "/v1/admin/launch-missiles", "{}")],
      "wrong method": [admin("DELETE", "/v1/settings", "")],
      "metrics by POST": [admin("POST", "/metrics", "{}", [])],
    });
    for (const [label, ex] of Object.entries(bad)) {
      expect(ex.statuses.length, label).toBe(1);
      expect(ex.statuses[0]! >= 400 && ex.statuses[0]! < 500, `${label}: ${ex.text.slice(0, 300)}`).toBe(true);
    }
    // The scheme is case-insensitive (RFC 9110 §11.1); an open route ignores a body it does not need.
    const fine = await run({
      "lower-case bearer": [admin("GET", "/v1/settings", "", [["authorization", `bearer ${ADMIN_TOKEN}`]])],
      "health with a body": [admin("GET", "/v1/health", '{"x": 1}', [])],
    });
    for (const [label, ex] of Object.entries(fine)) expect(ex.statuses, label).toEqual([200]);
    // A forget of a live node is refused (409), never done: the coreapps are still serving.
    const forget = await run({ "forget a live coreapp": [admin("POST", "/v1/admin/forget", '{"node": "c1"}')] });
    expect(forget["forget a live coreapp"]!.statuses).toEqual([409]);
  });

  it("never forwards a reserved path, however the request target spells it", async () => {
    const targets = [
      "http://evil.example/v1/admin/pause",
      "HTTP://x/v1/settings",
      "https://x:1/v1/history",
      "//v1/admin/pause",
      "/v1/admin/../admin/pause",
      "/v1/admin?x=/../../",
      "/v1/admin/",
      "/v1/settings/",
    ];
    const cases = Object.fromEntries(targets.map((t) => [t, [admin("POST", t, '{"shard":0}', [["x-shard-key", "a"]])]]));
    const before = cluster.handled.length;
    const r = await run(cases, "maybe");
    for (const req of cluster.handled.slice(before)) expect(isReserved(req.path.split("?")[0]!), `forwarded ${req.path}`).toBe(false);
    for (const [label, ex] of Object.entries(r)) expect(ex.statuses.length, label).toBe(1);
    // Absolute-form targets are routed by their path: the admin token is asked for (it used to be
    // a 503/1018 from the transport, which refused the scheme and host in the path).
    for (const t of targets.slice(0, 3)) expect(r[t]!.statuses, t).toEqual([401]);
  });

  it(`survives ${MUTATIONS} random mutations of valid requests`, { timeout: LONG ? 1_800_000 : 120_000 }, async () => {
    const rng = new Rng(SEED);
    // Keys name their case (with a check digit group), so a request the application got can be
    // traced to the connection it came on even when nobody saw its answer.
    let id = 0;
    const key = () => `m${id}.${(id * 7919) % 10007}`;
    const corpus = [
      () => valid(key(), "x".repeat(rng.int(2000))),
      () => valid(key(), "", "/v1/messages?a=1&b=2"),
      () => rawRequest("GET", "/v1/health", [["host", "x"]]),
      () => rawRequest("GET", "/metrics", [["host", "x"]]),
      () => rawRequest("GET", "/readyz", [["host", "x"]]),
      () => admin("GET", "/v1/settings", ""),
      () => admin("GET", `/v1/history?limit=${rng.int(50)}`, ""),
      () => admin("POST", "/v1/admin/pause", '{"shard":0,"duration":"1s"}', [["authorization", "Bearer wrong-token-0123456789abcd"]]),
      () => admin("PATCH", "/v1/settings/application", '{"unhealthy_interval":"1s"}', []),
      () =>
        Buffer.concat([
          rawRequest("POST", "/v1/chunked", [
            ["host", "x"],
            ["x-shard-key", key()],
            ["transfer-encoding", "chunked"],
          ]),
          Buffer.from("5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"),
        ]),
    ];
    const mutate = (b: Buffer) => mutateRequest(b, rng);
    const CONCURRENCY = 16;
    let done = 0;
    let closedOnly = 0;
    const statusCounts = new Map<number, number>();
    while (done < MUTATIONS) {
      const batch = Array.from({ length: Math.min(CONCURRENCY, MUTATIONS - done) }, (_, i) => {
        const n = (id = done + i);
        const request = mutate(rng.pick(corpus)());
        return exchange(webapp.port, [request], { deadlineMs: 15_000 }).then((ex) => {
          check(`mutation #${n} of ${JSON.stringify(request.toString("latin1").slice(0, 200))}`, ex, { app: "maybe" });
          if (!ex.sentinel) cutCases.add(n);
          if (ex.statuses.length === 0) closedOnly++;
          for (const s of ex.statuses) statusCounts.set(s, (statusCounts.get(s) ?? 0) + 1);
          expect(ex.ended, `mutation #${id} was still open after 15 s (seed ${SEED})`).toBe("closed");
        });
      });
      await Promise.all(batch);
      done += batch.length;
      if (done % 160 === 0 || done === MUTATIONS) {
        expect(webapp.alive, `the webapp died: ${webapp.log()}`).toBe(true);
        memory.rssMax = Math.max(memory.rssMax, webapp.rss());
      }
    }
    log(
      `${MUTATIONS} mutations: statuses ${[...statusCounts]
        .sort(([a], [b]) => a - b)
        .map(([s, n]) => `${s}×${n}`)
        .join(" ")}, closed without an answer ×${closedOnly}`,
    );
  });

  it("bounded memory under a flood of maximum-size and refused bodies", async () => {
    const body = "m".repeat(MAX_BODY);
    for (let round = 0; round < (LONG ? 50 : 10); round++) {
      await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          exchange(webapp.port, [i % 2 === 0 ? valid(`mem-${i}`, body) : valid(`mem-${i}`, `${body}!`)]).then((ex) =>
            check(`flood ${round}/${i}`, ex, { app: "maybe" }),
          ),
        ),
      );
      memory.rssMax = Math.max(memory.rssMax, webapp.rss());
    }
  });
});

describe("webapp operations port under hostile input", () => {
  it("answers 4xx or closes, and keeps serving /livez", async () => {
    const port = webapp.opsPort;
    // Each case asks for `connection: close` itself: the sentinel is an API-port path.
    const cases: Record<string, (Buffer | string)[]> = {
      garbage: ["GARBAGE\r\n\r\n"],
      "huge header": [`GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: ${"b".repeat(20_000)}\r\n\r\n`],
      "POST with body": [
        rawRequest(
          "POST",
          "/metrics",
          [
            ["host", "x"],
            ["connection", "close"],
            ["content-length", "5"],
          ],
          "hello",
        ),
      ],
      "unknown path": [
        rawRequest("GET", "/v1/admin/pause", [
          ["host", "x"],
          ["connection", "close"],
        ]),
      ],
      "bad chunked": ["POST /livez HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"],
      "bad version": ["GET /livez HTTP/7.0\r\nhost: x\r\n\r\n"],
    };
    for (const [label, chunks] of Object.entries(cases)) {
      const ex = check(`ops ${label}`, await exchange(port, chunks, { keepOpen: true }), { app: "never" });
      expect(ex.ended, `ops ${label}`).toBe("closed");
      expect(ex.statuses.length, `ops ${label}`).toBe(1);
      expect(
        ex.statuses.every((s) => s >= 400 && s < 500),
        `ops ${label}: ${ex.text.slice(0, 200)}`,
      ).toBe(true);
    }
    const slow = await exchange(port, "GET /livez HTTP/1.1\r\nhost: x\r\n".split(""), { gapMs: 500, deadlineMs: 30_000, keepOpen: true });
    log(`ops slowloris: closed after ${Math.round(slow.ms)} ms`);
    expect(slow.ended).toBe("closed");
    expect((await fetch(`http://127.0.0.1:${port}/livez`)).status).toBe(200);
  });
});

describe("after the run", () => {
  it("the webapp is alive and its memory stayed bounded", async () => {
    expect(webapp.alive, `the webapp died: ${webapp.log()}`).toBe(true);
    const rss = webapp.rss();
    // The heap right after a burst holds garbage not yet collected: the smallest of a few samples.
    const heaps: number[] = [];
    for (let i = 0; i < 5; i++) {
      heaps.push(await webapp.heapUsed());
      await new Promise((r) => setTimeout(r, 300));
    }
    const heap = Math.min(...heaps);
    memory.rssMax = Math.max(memory.rssMax, rss);
    log(`memory: rss ${mb(memory.rss0)} → max ${mb(memory.rssMax)}, heap ${mb(memory.heap0)} → ${mb(heap)}`);
    expect(memory.rssMax - memory.rss0).toBeLessThan(RSS_GROWTH_BOUND);
    expect(heap - memory.heap0).toBeLessThan(HEAP_GROWTH_BOUND);
  });

  it("the application saw only valid requests, each answered unless its client cut the connection", () => {
    const handled = cluster.handled.slice(handledAtStart);
    for (const req of handled) {
      const context = `${req.method} ${req.path.slice(0, 100)} (seed ${SEED})`;
      expect(req.path.startsWith("/"), context).toBe(true);
      expect(isReserved(req.path.split("?")[0]!), context).toBe(false);
      expect(req.headers["x-shard-key"] ?? "", context).not.toBe("");
      expect(req.body.byteLength, context).toBeLessThanOrEqual(MAX_BODY);
    }
    // Every request the application got was answered to its client, unless the client's own
    // connection was cut first: Node's server drops the answers still pending on a connection when
    // a later pipelined request on it is malformed (it answers 400 and closes). Those requests
    // were valid and ran once, as on any server; they must come from a cut connection.
    const unanswered = new Map<string, number>();
    for (const req of handled) unanswered.set(req.headers["x-shard-key"]!, (unanswered.get(req.headers["x-shard-key"]!) ?? 0) + 1);
    for (const k of answeredKeys) unanswered.set(k, (unanswered.get(k) ?? 0) - 1);
    let cut = 0;
    for (const [k, n] of unanswered) {
      expect(n, `the client saw more answers for key ${k.slice(0, 80)} than the application handled`).toBeGreaterThanOrEqual(0);
      if (n === 0) continue;
      cut += n;
      // A key the mutations damaged (its check digits no longer match) names no case for sure.
      const m = /^m(\d+)\.(\d+)$/.exec(k);
      const traced = m !== null && (Number(m[1]) * 7919) % 10007 === Number(m[2]);
      expect(
        traced ? cutCases.has(Number(m[1])) : cutCases.size > 0,
        `key ${k.slice(0, 80)} reached the application unanswered on a connection that was not cut`,
      ).toBe(true);
    }
    log(
      `the application received ${handled.length} requests; the clients saw ${appAnswers} answers; ${cut} more on ${cutCases.size} cut connections`,
    );
    expect(handled.length).toBe(appAnswers + cut);
  });
});
