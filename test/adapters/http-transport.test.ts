import { randomBytes } from "node:crypto";
import { createServer as createHttpServer } from "node:http";
import net from "node:net";
import { inspect } from "node:util";
import { Client } from "undici";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { AuthenticationError, MulticonnectError, TransportUnavailableError } from "../../src/core/errors.js";
import type { FailsafeReply, FailsafeRequest, Peer, SwitchoverCommand, TransportHandlers } from "../../src/core/ports/transport.js";
import {
  deriveTransportKey,
  HttpTransport,
  ReplayGuard,
  SenderWindow,
  signRequest,
  type HttpTransportOptions,
} from "../../src/adapters/http/index.js";
import { refusedPort, startBlackhole } from "../../src/testing/net.js";

const SECRET = "s3cret-for-tests-0123456789-abcdef";
const CLUSTER = "test-cluster";
const KEY = deriveTransportKey(SECRET, CLUSTER);

const id = (name: string) => `${name}.${randomBytes(4).toString("hex")}`;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function transport(o: Partial<HttpTransportOptions> = {}): HttpTransport {
  const t = new HttpTransport({ nodeId: id("master"), clusterName: CLUSTER, secret: SECRET, ...o });
  cleanups.push(() => t.close());
  return t;
}

/** A listening coreapp; returns the peer to call and the handlers' spies. */
async function coreapp(handlers: TransportHandlers = {}, o: Partial<HttpTransportOptions> = {}) {
  const self = id("core");
  const t = transport({ nodeId: self, ...o });
  const heartbeat = vi.fn(handlers.heartbeat ?? ((_from: string) => ({ id: self, shard: 0, epoch: 7 })));
  const server = await t.listen(self, "127.0.0.1", 0, { ...handlers, heartbeat });
  cleanups.push(() => server.close());
  return { self, server, heartbeat, peer: { id: self, address: `127.0.0.1:${server.port}` } satisfies Peer };
}

/** Signed headers for a hand-made request, as a sender with id `from` would produce them. */
function signedHeaders(kind: "heartbeat" | "switchover", from: string, to: string, seq: number, body: Buffer, key = KEY) {
  const sig = signRequest(key, { kind, from, to, seq: String(seq), shard: "", epoch: "", method: "", path: "", headers: "", body });
  return { "x-mc-from": from, "x-mc-to": to, "x-mc-seq": String(seq), "x-mc-sig": sig };
}

/** One POST on a fresh connection, closed afterwards. */
async function rawPost(port: number, path: string, headers: Record<string, string>, body: Buffer | string) {
  const client = new Client(`http://127.0.0.1:${port}`);
  try {
    const res = await client.request({ method: "POST", path, headers, body });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await client.close();
  }
}

/** A TCP proxy that counts connections and records the first bytes the client sent on each. */
async function tcpProxy(targetPort: number) {
  const captured: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const chunks: Buffer[] = [];
    captured.push(chunks);
    const up = net.connect(targetPort, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    down.on("data", (c: Buffer) => chunks.push(c));
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port, captured };
}

/** Writes raw bytes on a new connection and returns the status of the first response. */
async function rawReplay(port: number, bytes: Buffer): Promise<number> {
  const socket = net.connect(port, "127.0.0.1");
  socket.write(bytes);
  const first = await new Promise<string>((resolve, reject) => {
    socket.once("data", (c: Buffer) => resolve(c.toString("latin1")));
    socket.once("error", reject);
  });
  socket.destroy();
  return Number(first.split(" ")[1]);
}

describe("HttpTransport", () => {
  it("heartbeat() returns the coreapp's reply and the handler sees the authenticated sender", async () => {
    const core = await coreapp();
    const master = transport({ nodeId: "master-1.abcd" });
    // A reply without `ended` (an SDK before that field) reads as null.
    await expect(master.heartbeat(core.peer, { master: "master-1.abcd" }, 2000)).resolves.toEqual({
      id: core.self,
      shard: 0,
      epoch: 7,
      ended: null,
    });
    expect(core.heartbeat).toHaveBeenCalledWith("master-1.abcd", { master: "master-1.abcd" });
  });

  it("heartbeat() carries the assignment a coreapp gave up, its reason reduced to printable text", async () => {
    const ended = { shard: 3, epoch: 9, reason: "lease lost\n\u0000", refused: false };
    const core = await coreapp({ heartbeat: () => ({ id: "coreapp-1.abcd", shard: null, epoch: null, ended }) });
    const reply = await transport({ nodeId: "master-1.abcd" }).heartbeat(core.peer, { master: "master-1.abcd" }, 2000);
    expect(reply.ended).toEqual({ shard: 3, epoch: 9, reason: "lease lost??", refused: false });
  });

  it("forward() returns the coreapp's status, headers and body unchanged", async () => {
    const body = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
    const forward = vi.fn(async (_from: string, r: Parameters<NonNullable<TransportHandlers["forward"]>>[1]) => ({
      status: 418,
      headers: { "content-type": "application/octet-stream", "x-reply": "café ✓" },
      body: Buffer.concat([Buffer.from(r.body).reverse(), Buffer.from([0, 255])]),
    }));
    const core = await coreapp({ forward });
    const webapp = transport({ nodeId: "web-1.ffff" });
    const headers = { "content-type": "application/octet-stream", authorization: "Bearer x", "x-name": "Zoë" };
    const res = await webapp.forward(core.peer, { shard: 3, epoch: 42, method: "PUT", path: "/v1/media?id=7&x=%20", headers, body }, 2000);
    expect(res.status).toBe(418);
    expect(res.headers).toEqual({ "content-type": "application/octet-stream", "x-reply": "café ✓" });
    expect(Buffer.from(res.body).equals(Buffer.concat([Buffer.from(body).reverse(), Buffer.from([0, 255])]))).toBe(true);
    const [from, seen] = forward.mock.calls[0]!;
    expect(from).toBe("web-1.ffff");
    expect({ ...seen, body: undefined }).toEqual({
      shard: 3,
      epoch: 42,
      method: "PUT",
      path: "/v1/media?id=7&x=%20",
      headers,
      body: undefined,
    });
    expect(Buffer.from(seen.body).equals(body)).toBe(true);
  });

  it("forward() passes the coreapp's own 401 back as a status, not as an AuthenticationError", async () => {
    const core = await coreapp({ forward: async () => ({ status: 401, headers: {}, body: new Uint8Array() }) });
    const res = await transport().forward(
      core.peer,
      { shard: 0, epoch: 1, method: "GET", path: "/", headers: {}, body: new Uint8Array() },
      2000,
    );
    expect(res).toEqual({ status: 401, headers: {}, body: expect.any(Uint8Array) });
    expect(res.body.byteLength).toBe(0);
  });

  it("switchover() returns the master's reply", async () => {
    const reply = { ok: false, shard: 1, from: "core-a.01", to: null, epoch: 9, error: { code: 1017, message: "Not Primary Master" } };
    const switchover = vi.fn(async (_from: string, _command: SwitchoverCommand) => reply);
    const core = await coreapp({ switchover });
    await expect(transport().switchover(core.peer, { shard: 1, to: "core-b" }, 2000)).resolves.toEqual(reply);
    expect(switchover.mock.calls[0]![1]).toEqual({ shard: 1, to: "core-b" });
  });

  it("failsafe() carries a coreapp's request to a master and its promise or refusal back; a malformed promise is refused", async () => {
    const answers: FailsafeReply[] = [
      { ok: true, promiseMs: 2500 },
      { ok: false, reason: "this master reaches the store" },
    ];
    const failsafe = vi.fn((_from: string, _r: FailsafeRequest) => answers.shift()!);
    const master = await coreapp({ failsafe });
    const t = transport();
    await expect(t.failsafe(master.peer, { shard: 3, epoch: 41 }, 2000)).resolves.toEqual({ ok: true, promiseMs: 2500 });
    await expect(t.failsafe(master.peer, { shard: 3, epoch: 41 }, 2000)).resolves.toEqual({
      ok: false,
      reason: "this master reaches the store",
    });
    expect(failsafe.mock.calls[0]![1]).toEqual({ shard: 3, epoch: 41 });
    const broken = await coreapp({ failsafe: () => ({ ok: true, promiseMs: -1 }) });
    await expect(t.failsafe(broken.peer, { shard: 0, epoch: 1 }, 2000)).rejects.toThrow(/promiseMs must be a positive number/);
  });

  it("forward() of 200 concurrent requests over the pool all succeed (out-of-order sequence numbers within the window)", async () => {
    const core = await coreapp({ forward: async (_f, r) => ({ status: 200, headers: {}, body: r.body }) });
    const webapp = transport({ connectionsPerPeer: 16 });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        webapp.forward(core.peer, { shard: 0, epoch: 1, method: "POST", path: `/n/${i}`, headers: {}, body: Buffer.from(String(i)) }, 5000),
      ),
    );
    expect(results.map((r) => Buffer.from(r.body).toString())).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
  });

  it("heartbeat() with the wrong secret throws AuthenticationError and runs no handler", async () => {
    const core = await coreapp();
    const intruder = transport({ secret: "another-secret-of-enough-length" });
    await expect(intruder.heartbeat(core.peer, { master: "m.1" }, 2000)).rejects.toBeInstanceOf(AuthenticationError);
    const otherCluster = transport({ clusterName: "other-cluster" });
    await expect(otherCluster.heartbeat(core.peer, { master: "m.1" }, 2000)).rejects.toBeInstanceOf(AuthenticationError);
    expect(core.heartbeat).not.toHaveBeenCalled();
  });

  it("heartbeat() addressed to another receiver id is rejected with AuthenticationError and runs no handler", async () => {
    const core = await coreapp();
    const redirected = { id: id("core"), address: core.peer.address };
    await expect(transport().heartbeat(redirected, { master: "m.1" }, 2000)).rejects.toThrow(/addressed to another node/);
    expect(core.heartbeat).not.toHaveBeenCalled();
  });

  it("listen() rejects a replayed request (raw bytes captured by a proxy) the second time", async () => {
    const core = await coreapp();
    const proxy = await tcpProxy(core.server.port);
    const master = transport();
    await master.heartbeat({ id: core.self, address: `127.0.0.1:${proxy.port}` }, { master: "m.1" }, 2000);
    expect(core.heartbeat).toHaveBeenCalledTimes(1);
    const recorded = Buffer.concat(proxy.captured[0]!);
    expect(await rawReplay(core.server.port, recorded)).toBe(401);
    expect(core.heartbeat).toHaveBeenCalledTimes(1);
  });

  it("listen() accepts an out-of-order sequence number within the window once, and refuses one older than the window", async () => {
    const core = await coreapp();
    const body = Buffer.from(JSON.stringify({ master: "m.1" }));
    const post = (seq: number) =>
      rawPost(core.server.port, "/_mc/heartbeat", signedHeaders("heartbeat", "m.1", core.self, seq, body), body);
    expect((await post(10)).status).toBe(200);
    expect((await post(5)).status).toBe(200);
    expect((await post(5)).status).toBe(401);
    expect((await post(10)).status).toBe(401);
    expect((await post(2000)).status).toBe(200);
    expect((await post(2000 - 1023)).status).toBe(200);
    expect((await post(2000 - 1024)).status).toBe(401);
    expect(core.heartbeat).toHaveBeenCalledTimes(4);
  });

  it("listen() answers 400 to malformed JSON and to missing or malformed headers, running no handler", async () => {
    const core = await coreapp();
    const bad = Buffer.from("{not json");
    expect((await rawPost(core.server.port, "/_mc/heartbeat", signedHeaders("heartbeat", "m.1", core.self, 1, bad), bad)).status).toBe(400);
    const wrongType = Buffer.from(JSON.stringify({ master: 12 }));
    expect(
      (await rawPost(core.server.port, "/_mc/heartbeat", signedHeaders("heartbeat", "m.1", core.self, 2, wrongType), wrongType)).status,
    ).toBe(400);
    const ok = Buffer.from(JSON.stringify({ master: "m.1" }));
    const { "x-mc-seq": _seq, ...noSeq } = signedHeaders("heartbeat", "m.1", core.self, 3, ok);
    expect((await rawPost(core.server.port, "/_mc/heartbeat", noSeq, ok)).status).toBe(400);
    const badSeq = { ...signedHeaders("heartbeat", "m.1", core.self, 4, ok), "x-mc-seq": "-4" };
    expect((await rawPost(core.server.port, "/_mc/heartbeat", badSeq, ok)).status).toBe(400);
    const fwdNoMeta = signedHeaders("heartbeat", "m.1", core.self, 5, ok);
    expect((await rawPost(core.server.port, "/_mc/forward", fwdNoMeta, ok)).status).toBe(400);
    expect(core.heartbeat).not.toHaveBeenCalled();
  });

  it("listen() answers 401 to a missing or wrong signature, 404 to an unknown path and 501 without a handler", async () => {
    const core = await coreapp();
    const ok = Buffer.from(JSON.stringify({ master: "m.1" }));
    const { "x-mc-sig": _sig, ...unsigned } = signedHeaders("heartbeat", "m.1", core.self, 1, ok);
    expect((await rawPost(core.server.port, "/_mc/heartbeat", unsigned, ok)).status).toBe(401);
    const tampered = signedHeaders("heartbeat", "m.1", core.self, 2, Buffer.from(JSON.stringify({ master: "m.2" })));
    expect((await rawPost(core.server.port, "/_mc/heartbeat", tampered, ok)).status).toBe(401);
    expect((await rawPost(core.server.port, "/_mc/nope", {}, "")).status).toBe(404);
    const cmd = Buffer.from(JSON.stringify({ shard: 0 }));
    expect((await rawPost(core.server.port, "/_mc/switchover", signedHeaders("switchover", "m.1", core.self, 3, cmd), cmd)).status).toBe(
      501,
    );
    await expect(transport().switchover(core.peer, { shard: 0 }, 2000)).rejects.toMatchObject({ code: "transport_rejected" });
    expect(core.heartbeat).not.toHaveBeenCalled();
  });

  it("listen() answers 413 to a body over maxBodyBytes and runs no handler", async () => {
    const forward = vi.fn(async () => ({ status: 200, headers: {}, body: new Uint8Array() }));
    const core = await coreapp({ forward }, { maxBodyBytes: 1024 });
    const request = { shard: 0, epoch: 1, method: "POST", path: "/", headers: {}, body: Buffer.alloc(4096, 1) };
    const error = await transport()
      .forward(core.peer, request, 2000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MulticonnectError);
    expect((error as MulticonnectError).message).toMatch(/413/);
    const body = Buffer.alloc(2048, 0x7b);
    expect((await rawPost(core.server.port, "/_mc/heartbeat", signedHeaders("heartbeat", "m.1", core.self, 1, body), body)).status).toBe(
      413,
    );
    expect(forward).not.toHaveBeenCalled();
    expect(core.heartbeat).not.toHaveBeenCalled();
  });

  it("heartbeat() to a refused port throws TransportUnavailableError naming the address within the timeout", async () => {
    const address = `127.0.0.1:${await refusedPort()}`;
    const started = performance.now();
    const error = await transport()
      .heartbeat({ id: "core.1", address }, { master: "m.1" }, 1000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect((error as Error).message).toContain(address);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("forward() to a peer that accepts and never answers throws TransportUnavailableError at about the timeout", async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const started = performance.now();
    const request = { shard: 0, epoch: 1, method: "GET", path: "/", headers: {}, body: new Uint8Array() };
    const error = await transport()
      .forward({ id: "core.1", address: `${hole.host}:${hole.port}` }, request, 300)
      .catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect((error as Error).message).toMatch(/no answer within 300 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(800);
  });

  it("heartbeat() throws AuthenticationError when the reply's signature is wrong", async () => {
    const fake = createHttpServer((_req, res) => {
      res.writeHead(200, { "x-mc-sig": "A".repeat(43), "content-type": "application/json" });
      res.end(JSON.stringify({ id: "core.1", shard: null, epoch: null }));
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          fake.close(() => resolve());
          fake.closeAllConnections();
        }),
    );
    const address = `127.0.0.1:${(fake.address() as net.AddressInfo).port}`;
    await expect(transport().heartbeat({ id: "core.1", address }, { master: "m.1" }, 2000)).rejects.toThrow(
      /reply .* failed authentication/,
    );
  });

  it("calls never put the secret in an error, whatever fails", async () => {
    const core = await coreapp({}, { maxBodyBytes: 16 });
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const errors: unknown[] = [];
    const catchInto = (p: Promise<unknown>) =>
      p.then(
        () => errors.push(new Error("no error")),
        (e: unknown) => errors.push(e),
      );
    await catchInto(transport({ secret: `${SECRET}-wrong` }).heartbeat(core.peer, { master: "m.1" }, 1000));
    await catchInto(transport().heartbeat({ id: "x.1", address: core.peer.address }, { master: "m.1" }, 1000));
    await catchInto(transport().heartbeat({ id: "x.1", address: `127.0.0.1:${await refusedPort()}` }, { master: "m.1" }, 1000));
    await catchInto(transport().heartbeat({ id: "x.1", address: `${hole.host}:${hole.port}` }, { master: "m.1" }, 200));
    await catchInto(
      transport().forward(core.peer, { shard: 0, epoch: 0, method: "GET", path: "/", headers: {}, body: Buffer.alloc(64) }, 1000),
    );
    await catchInto(Promise.resolve().then(() => new HttpTransport({ nodeId: "n.1", clusterName: CLUSTER, secret: "short" })));
    expect(errors).toHaveLength(6);
    for (const e of errors) {
      expect(e).toBeInstanceOf(MulticonnectError);
      const text = `${String(e)} ${inspect(e, { depth: 10 })} ${JSON.stringify(e)}`;
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain("short");
    }
  });

  it("close() leaves no socket open after calls that reused pooled connections", async () => {
    const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;
    const before = tcpSockets();
    const core = await coreapp();
    const proxy = await tcpProxy(core.server.port);
    const master = new HttpTransport({ nodeId: id("master"), clusterName: CLUSTER, secret: SECRET });
    const peer = { id: core.self, address: `127.0.0.1:${proxy.port}` };
    for (let i = 0; i < 20; i++) await master.heartbeat(peer, { master: "m.1" }, 2000);
    // undici waits one event-loop turn before reusing a socket with pipelining 1, so back-to-back
    // calls alternate between two sockets; what matters is that they do not open one per call.
    expect(proxy.captured.length).toBeLessThanOrEqual(2);
    await master.close();
    await expect(master.heartbeat(peer, { master: "m.1" }, 2000)).rejects.toBeInstanceOf(TransportUnavailableError);
    // Servers still listen: only the client closing its sockets can bring the count back down.
    await vi.waitFor(() => expect(tcpSockets()).toBeLessThanOrEqual(before), { timeout: 2000 });
  });
});

describe("replay window", () => {
  it("SenderWindow.accept() takes each number once, late ones within 1024, and forgets across a large jump", () => {
    const w = new SenderWindow();
    expect([w.accept(1), w.accept(3), w.accept(2), w.accept(3), w.accept(1)]).toEqual([true, true, true, false, false]);
    expect(w.accept(5000)).toBe(true);
    expect(w.accept(5000 - 1023)).toBe(true);
    expect(w.accept(5000 - 1024)).toBe(false);
    expect(w.accept(3)).toBe(false);
    for (let s = 5001; s < 5100; s += 2) expect(w.accept(s)).toBe(true);
    for (let s = 5002; s < 5100; s += 2) expect(w.accept(s)).toBe(true);
    for (let s = 5001; s < 5100; s++) expect(w.accept(s)).toBe(false);
  });

  it("ReplayGuard.accept() forgets the least recently seen sender at the cap, and idle senders", async () => {
    const clock = new ManualClock();
    const guard = new ReplayGuard({ maxSenders: 2, idleMs: 60_000, clock });
    expect(guard.accept("a", 1)).toBe(true);
    await clock.advance(2000, 2000);
    expect(guard.accept("b", 1)).toBe(true);
    await clock.advance(2000, 2000);
    expect(guard.accept("a", 2)).toBe(true); // a is now the most recent
    await clock.advance(2000, 2000);
    expect(guard.accept("c", 1)).toBe(true); // evicts b
    expect(guard.size).toBe(2);
    expect(guard.accept("a", 2)).toBe(false);
    await clock.advance(61_000, 61_000);
    expect(guard.accept("d", 1)).toBe(true); // a and c idle: both forgotten
    expect(guard.size).toBe(1);
  });
});
