import type { AddressInfo } from "node:net";
import { createServer, type Server, type ServerOptions } from "node:http";
import express from "express";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keepRawBody, multiconnect as expressMount } from "../../src/frameworks/express.js";
import { multiconnect as fastifyPlugin } from "../../src/frameworks/fastify.js";
import { isReserved } from "../../src/nodes/webapp-admin.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { ADMIN_TOKEN, FuzzCluster } from "./fuzz-cluster.js";
import { exchange, mutateRequest, rawRequest, Rng } from "./raw-http.js";

/**
 * The same hostile input through the framework mounts: a webapp without its own listener, mounted
 * under `/api` in Express 5 (with express.json() and keepRawBody on, as the docs advise) and in
 * Fastify 5. The host's server owns the connection limits there; what must hold is the webapp's
 * part: no 5xx other than 503, nothing reserved or without a shard key reaches the application,
 * bodies stay within the limit, and the process (this one) keeps serving.
 */
const SEED = process.env["FUZZ_SEED"] ? Number(process.env["FUZZ_SEED"]) : Math.floor(Math.random() * 2 ** 31);
const MUTATIONS = process.env["FUZZ_PROFILE"] === "long" ? 5000 : 150;
const MAX_BODY = 16 * 1024;
const cluster = new FuzzCluster({ max_body_bytes: MAX_BODY, body_timeout: "2s", listen: false });
let webapp: Webapp;
let expressServer: Server;
let fastify: FastifyInstance;
const ports: Record<string, number> = {};
/**
 * The host servers' own timeouts, short as a careful host would set them (and so that a stalled
 * exchange ends in seconds: Node's defaults are 60 s for headers, checked every 30 s).
 */
const HOST_SERVER_LIMITS: ServerOptions = { headersTimeout: 2000, requestTimeout: 3000, connectionsCheckingInterval: 500 };

beforeAll(async () => {
  process.stdout.write(`[fuzz] frameworks seed ${SEED} (replay: FUZZ_SEED=${SEED} npm run fuzz)\n`);
  await cluster.start();
  webapp = await cluster.embeddedWebapp({ max_body_bytes: MAX_BODY, body_timeout: "2s", listen: false });
  const app = express();
  app.use(express.json({ verify: keepRawBody }));
  app.use("/api", expressMount(webapp));
  expressServer = createServer(HOST_SERVER_LIMITS, app).listen(0, "127.0.0.1");
  await new Promise((r) => expressServer.once("listening", r));
  ports["express"] = (expressServer.address() as AddressInfo).port;
  fastify = Fastify({ serverFactory: (handler) => createServer(HOST_SERVER_LIMITS, handler) });
  await fastify.register(fastifyPlugin, { prefix: "/api", webapp });
  ports["fastify"] = Number(new URL(await fastify.listen({ port: 0, host: "127.0.0.1" })).port);
}, 120_000);

afterAll(async () => {
  expressServer?.closeAllConnections();
  expressServer?.close();
  await fastify?.close();
  await cluster.stop();
});

const auth = (token: string): [string, string] => ["authorization", `Bearer ${token}`];
function request(method: string, path: string, headers: [string, string][], body = ""): Buffer {
  return rawRequest(method, path, [["host", "x"], ...headers, ["content-length", String(Buffer.byteLength(body))]], body);
}

describe.each(["express", "fastify"])("webapp mounted in %s under hostile input", (framework) => {
  it(
    `answers targeted cases and ${MUTATIONS} mutations without a 5xx other than 503, forwarding nothing it should not`,
    {
      timeout: 600_000,
    },
    async () => {
      const port = ports[framework]!;
      const rng = new Rng(SEED);
      const before = cluster.handled.length;
      const json: [string, string] = ["content-type", "application/json"];
      // Admin requests whose answer is known, so a body the framework read and the webapp could
      // not (a 408 after body_timeout) or a refusal turned into a 500 cannot pass as "some 4xx".
      const expected = new Map<Buffer, number>([
        [request("POST", "/api/v1/admin/pause", [auth("wrong-token-0123456789abcdef"), json], "{}"), 403],
        [request("POST", "/api/v1/admin/pause", [json], '{"shard":0}'), 401],
        [request("PATCH", "/api/v1/settings/application", [auth(ADMIN_TOKEN), json], "{bad json"), 400],
        [request("PATCH", "/api/v1/settings/application", [auth(ADMIN_TOKEN), json], '{"toString":"1s"}'), 400],
        [request("PATCH", "/api/v1/settings/application", [auth(ADMIN_TOKEN), json], '{"heartbeat_quorum":1000}'), 400],
        [request("POST", "/api/v1/admin/pause", [auth(ADMIN_TOKEN), json], '{"shard":0,"duration":"2000000h"}'), 400],
        [request("POST", "/api/v1/admin/pause", [auth(ADMIN_TOKEN), json], `{"reason":"${"r".repeat(1001)}"}`), 400],
        [request("POST", "/api/v1/admin/clear-hold", [auth(ADMIN_TOKEN), json], '{"node":"core 1"}'), 400],
        [request("POST", "/api/v1/admin/switchover", [auth(ADMIN_TOKEN), json], '{"shard":0,"to":"core 1"}'), 400],
        [request("POST", "/api/v1/admin/forget", [auth(ADMIN_TOKEN), json], "null"), 400],
      ]);
      const targeted = [
        ...expected.keys(),
        request("GET", "http://evil/api/v1/settings", [["x-shard-key", "a"]]),
        request("GET", "/api/v1/messages", []),
        request(
          "POST",
          "/api/v1/messages",
          [
            ["x-shard-key", "a"],
            ["content-type", "application/json"],
          ],
          `{"a":"${"z".repeat(MAX_BODY)}"}`,
        ),
        request(
          "POST",
          "/api/v1/messages",
          [
            ["x-shard-key", "a"],
            ["content-type", "application/json"],
          ],
          "{not json",
        ),
        request(
          "POST",
          "/api/v1/messages",
          [
            ["x-shard-key", "a"],
            ["content-type", "text/plain; charset=utf-16"],
          ],
          "hi",
        ),
        Buffer.from(`GET /api/x HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\nx-big: ${"b".repeat(20_000)}\r\n\r\n`),
        Buffer.from("POST /api/x HTTP/1.1\r\nhost: x\r\nx-shard-key: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
      ];
      const corpus = [
        () =>
          request(
            "POST",
            "/api/v1/messages",
            [
              ["x-shard-key", `k${rng.int(100)}`],
              ["content-type", "application/json"],
            ],
            '{"m":"hello"}',
          ),
        () =>
          request(
            "POST",
            "/api/v1/messages",
            [
              ["x-shard-key", `k${rng.int(100)}`],
              ["content-type", "text/plain"],
            ],
            "x".repeat(rng.int(3000)),
          ),
        () => request("GET", "/api/v1/health", []),
        () => request("GET", "/api/v1/settings", [auth(ADMIN_TOKEN)]),
        () => request("POST", "/api/v1/admin/resume", [auth("wrong-token-0123456789abcdef"), ["content-type", "application/json"]], "{}"),
      ];
      const statuses = new Map<number, number>();
      const record = (label: string, text: string, codes: number[]) => {
        for (const s of codes) {
          statuses.set(s, (statuses.get(s) ?? 0) + 1);
          expect(s < 500 || s === 503, `${framework} ${label} (seed ${SEED}): ${JSON.stringify(text.slice(0, 300))}`).toBe(true);
        }
      };
      for (const [i, req] of targeted.entries()) {
        const ex = await exchange(port, [req], { deadlineMs: 5000 });
        record(`targeted #${i}`, ex.text, ex.statuses);
        const want = expected.get(req);
        if (want !== undefined) expect(ex.statuses, `${framework} targeted #${i}: ${ex.text.slice(0, 300)}`).toEqual([want]);
      }
      for (let done = 0; done < MUTATIONS; done += 16) {
        await Promise.all(
          Array.from({ length: Math.min(16, MUTATIONS - done) }, async (_, i) => {
            const req = mutateRequest(rng.pick(corpus)(), rng);
            const ex = await exchange(port, [req], { deadlineMs: 5000 });
            record(`mutation #${done + i} of ${JSON.stringify(req.toString("latin1").slice(0, 200))}`, ex.text, ex.statuses);
          }),
        );
      }
      for (const req of cluster.handled.slice(before)) {
        const path = req.path.split("?")[0]!;
        const context = `${framework}: ${req.method} ${req.path.slice(0, 100)} (seed ${SEED})`;
        // The mount's root (`/api`, the application's `/`) is the application's as much as `/api/x`.
        expect(path === "/api" || path.startsWith("/api/"), context).toBe(true);
        expect(isReserved(path) || isReserved(path.slice("/api".length) || "/"), context).toBe(false);
        expect(req.headers["x-shard-key"] ?? "", context).not.toBe("");
        expect(req.body.byteLength, context).toBeLessThanOrEqual(MAX_BODY);
      }
      process.stdout.write(
        `[fuzz] ${framework}: statuses ${[...statuses]
          .sort(([a], [b]) => a - b)
          .map(([s, n]) => `${s}×${n}`)
          .join(" ")}; the application received ${cluster.handled.length - before}\n`,
      );
      // Still serving.
      const ok = await exchange(port, [request("GET", "/api/v1/health", [])]);
      expect(ok.statuses[0]).toBe(200);
    },
  );
});
