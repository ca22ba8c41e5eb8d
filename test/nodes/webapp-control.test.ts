import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/adapters/memory/index.js";
import { refusalError } from "../../src/adapters/transport/errors.js";
import { addSwitchoverRoute } from "../../src/console/routes.js";
import { TransportUnavailableError } from "../../src/core/errors.js";
import { MASTER_LEASE } from "../../src/core/ports/leases.js";
import type { AdminCommand, AdminReply, SwitchoverCommand, SwitchoverReply, Transport } from "../../src/core/ports/transport.js";
import { DEFAULT_SETTINGS, deriveTiming } from "../../src/core/timing.js";
import { ReservedRoutes } from "../../src/nodes/webapp-admin.js";
import { addControlRoutes } from "../../src/nodes/webapp-control.js";

/**
 * The admin API's own checks and its answers for what the primary master does, with a transport
 * that records every command and answers as each test says: input the master would refuse is a 400
 * before anything is sent, and a command the master did not answer is never a 500.
 */
const TOKEN = "control-admin-token-0123456789";
const sent: (AdminCommand | SwitchoverCommand)[] = [];
/** What the next command gets: a reply, or an error thrown by the transport. */
let outcome: () => Promise<AdminReply> = () => Promise.resolve({ ok: true, version: 2 });
const transport = {
  admin: (_to: unknown, c: AdminCommand) => {
    sent.push(c);
    return outcome();
  },
  switchover: async (_to: unknown, c: SwitchoverCommand): Promise<SwitchoverReply> => {
    sent.push(c);
    await outcome();
    return { ok: true, shard: c.shard, from: "c1.a", to: c.to ?? "c2.b", epoch: 2 };
  },
} as unknown as Transport;
let server: Server;
let base = "";

beforeAll(async () => {
  const store = new MemoryStore();
  const lease = await store.leases.acquire(MASTER_LEASE, "m1.a", 600_000);
  if (!lease.acquired) throw new Error("setup: master lease");
  await store.liveness.beat({ id: "m1.a", name: "m1", role: "master", address: "127.0.0.1:1", meta: {} });
  const timing = deriveTiming(DEFAULT_SETTINGS);
  const routes = new ReservedRoutes(TOKEN);
  addControlRoutes(routes, { store, transport, timing, shards: 2, bodyTimeoutMs: 1000 });
  addSwitchoverRoute(routes, { store, transport, timing, bodyTimeoutMs: 1000 });
  server = createServer((req, res) => void routes.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  sent.length = 0;
  outcome = () => Promise.resolve({ ok: true, version: 2 });
});

async function call(method: string, path: string, body: string) {
  const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, body });
  const text = await r.text();
  return { status: r.status, text, error: (JSON.parse(text) as { errors?: { code: number; details: string }[] }).errors?.[0] };
}

describe("admin API: input the primary master would refuse", () => {
  for (const [path, body, problem] of [
    ["/v1/admin/pause", JSON.stringify({ reason: "r".repeat(1001) }), /reason must be text of at most 1000 characters/],
    ["/v1/admin/pause", '{"duration":0.4}', /duration must be at least 1 ms/],
    ["/v1/admin/pause", '{"duration":"3000000000h"}', /duration must be at most 168h \(7 days\)/],
    ["/v1/admin/pause", `{"duration":"${"9".repeat(400)}"}`, /duration must be at most 168h/],
    ["/v1/admin/pause", '{"duration":"2000000h"}', /duration must be at most 168h/],
    ["/v1/admin/clear-hold", '{"node":"core 1"}', /node must be a node id or name/],
    ["/v1/admin/switchover", '{"shard":0,"to":"core 1"}', /to must be a coreapp's name or id/],
  ] as const) {
    it(`POST ${path} ${body.slice(0, 40)} is 400 naming the problem, and nothing is sent`, async () => {
      const r = await call("POST", path, body);
      expect(r.status, r.text).toBe(400);
      expect(r.error!.details).toMatch(problem);
      expect(sent).toEqual([]);
    });
  }

  for (const body of ['{"__proto__":"1s"}', '{"toString":"1s"}', '{"heartbeat_quorum":"0x10"}', '{"heartbeat_quorum":2.5}']) {
    it(`PATCH /v1/settings/application ${body} is 400, and nothing is sent`, async () => {
      const r = await call("PATCH", "/v1/settings/application", body);
      expect(r.status, r.text).toBe(400);
      expect(sent).toEqual([]);
    });
  }

  it("a pause of exactly 7 days is sent; an empty body pauses the whole cluster for the default hour", async () => {
    expect((await call("POST", "/v1/admin/pause", '{"duration":"168h"}')).status).toBe(200);
    expect((await call("POST", "/v1/admin/pause", "")).status).toBe(200);
    expect(sent).toEqual([
      expect.objectContaining({ op: "pause", shard: null, durationMs: 168 * 3_600_000 }),
      expect.objectContaining({ op: "pause", shard: null, durationMs: 3_600_000 }),
    ]);
  });
});

describe("admin API: what the primary master did not answer", () => {
  it("a refusal as malformed (as between two versions that check differently) is a 400 with the master's reason", async () => {
    outcome = () => Promise.reject(refusalError(400, "admin: node must be a node id or name", "admin", "127.0.0.1:1"));
    const r = await call("POST", "/v1/admin/clear-hold", '{"node":"c1"}');
    expect(r.status).toBe(400);
    expect(r.error!.details).toMatch(/refused the command as malformed: .*node must be a node id or name/);
    outcome = () => Promise.reject(refusalError(400, "switchover: to must be a node id or name", "switchover", "127.0.0.1:1"));
    expect((await call("POST", "/v1/admin/switchover", '{"shard":0,"to":"c2"}')).status).toBe(400);
  });

  it("no answer in time is a 504 (1502) saying the outcome is unknown and where to check; the switchover's too", async () => {
    outcome = () => Promise.reject(new TransportUnavailableError("transport: admin to 127.0.0.1:1: no answer within 10000 ms"));
    const r = await call("POST", "/v1/admin/pause", '{"shard":1}');
    expect(r.status).toBe(504);
    expect(r.error).toMatchObject({ code: 1502, details: expect.stringMatching(/may or may not have been applied.*GET \/v1\/settings/) });
    const s = await call("POST", "/v1/admin/switchover", '{"shard":0}');
    expect(s.status).toBe(504);
    expect(s.error).toMatchObject({ code: 1502, details: expect.stringMatching(/GET \/v1\/health/) });
  });

  it("a command that certainly was not delivered is a 503 to retry", async () => {
    outcome = () =>
      Promise.reject(new TransportUnavailableError("transport: admin to 127.0.0.1:1: unreachable (ECONNREFUSED)", { notDelivered: true }));
    const r = await fetch(`${base}/v1/admin/resume`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "{}" });
    expect(r.status).toBe(503);
    expect(r.headers.get("retry-after")).toBe("1");
    expect(await r.text()).toMatch(/nothing was applied/);
  });
});
