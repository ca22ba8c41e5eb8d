import { randomBytes } from "node:crypto";
import net from "node:net";
import { inspect } from "node:util";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AuthenticationError, MulticonnectError, TransportUnavailableError } from "../../src/core/errors.js";
import type {
  ExitNotice,
  FailsafeReply,
  FailsafeRequest,
  ForwardRequest,
  ForwardResult,
  Peer,
  SwitchoverCommand,
  TransportHandlers,
} from "../../src/core/ports/transport.js";
import { deriveTransportKey, FramedTransport, type FramedTransportOptions } from "../../src/adapters/transport/index.js";
import { PROTOCOL } from "../../src/adapters/transport/messages.js";
import { startServer } from "../../src/adapters/transport/server.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { refusedPort, startBlackhole } from "../../src/testing/net.js";
import { RawConnection } from "../support/raw-transport.js";

const SECRET = "s3cret-for-tests-0123456789-abcdef";
const CLUSTER = "test-cluster";
const KEY = deriveTransportKey(SECRET, CLUSTER);

const id = (name: string) => `${name}.${randomBytes(4).toString("hex")}`;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A transport; forwards go over the network unless a test asks for the in-process shortcut. */
function transport(o: Partial<FramedTransportOptions> = {}): FramedTransport {
  const t = new FramedTransport({ nodeId: id("master"), clusterName: CLUSTER, secret: SECRET, inProcessShortcut: false, ...o });
  cleanups.push(() => t.close());
  return t;
}

/** A listening coreapp; returns the peer to call and the handlers' spies. */
async function coreapp(handlers: TransportHandlers = {}, o: Partial<FramedTransportOptions> = {}) {
  const self = id("core");
  const t = transport({ nodeId: self, ...o });
  const heartbeat = vi.fn(handlers.heartbeat ?? ((_from: string) => ({ id: self, shard: 0, epoch: 7 })));
  const server = await t.listen(self, "127.0.0.1", 0, { ...handlers, heartbeat });
  cleanups.push(() => server.close());
  return { self, server, heartbeat, peer: { id: self, address: `127.0.0.1:${server.port}` } satisfies Peer };
}

/** A forward handler that acknowledges, then answers with `answer(request)`. */
function serving(answer: (r: ForwardRequest) => { status: number; headers: Record<string, string>; body: Uint8Array }) {
  return async (_from: string, r: ForwardRequest, started: () => Promise<void>): Promise<ForwardResult> => {
    await started();
    return { outcome: "served", response: answer(r) };
  };
}

const GET = { shard: 0, epoch: 1, method: "GET", path: "/", headers: {}, body: new Uint8Array() };

/** A TCP proxy that counts connections and records the bytes the client sent on each. */
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

describe("deriveTransportKey", () => {
  it("is scrypt of the secret salted with the cluster name: fixed, so that nodes of two builds agree on it", () => {
    // Known answer: a change of the derivation changes the wire, and must be a protocol version of its own.
    expect(deriveTransportKey("0123456789abcdef", "c1").toString("hex")).toBe(
      "65cf00f6cf1ad07a46481f4d241ec005cff2e47659798eb9aeee05e34d760354",
    );
    expect(deriveTransportKey("0123456789abcdef", "c2").equals(deriveTransportKey("0123456789abcdef", "c1"))).toBe(false);
    expect(() => deriveTransportKey("short", "c1")).toThrow(/transport\.secret.*at least 16 characters/);
  });
});

describe("FramedTransport", () => {
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
    // The primary master's hint that the shard map changed reaches the handler.
    await master.heartbeat(core.peer, { master: "master-1.abcd", mapChanged: true }, 2000);
    expect(core.heartbeat).toHaveBeenLastCalledWith("master-1.abcd", { master: "master-1.abcd", mapChanged: true });
  });

  it("heartbeat() carries the assignment a coreapp gave up, its reason reduced to printable text", async () => {
    const ended = { shard: 3, epoch: 9, reason: "lease lost\n\u0000", refused: false };
    const core = await coreapp({ heartbeat: () => ({ id: "coreapp-1.abcd", shard: null, epoch: null, ended }) });
    const reply = await transport({ nodeId: "master-1.abcd" }).heartbeat(core.peer, { master: "master-1.abcd" }, 2000);
    expect(reply.ended).toEqual({ shard: 3, epoch: 9, reason: "lease lost??", refused: false });
  });

  it("forward() returns the coreapp's status, headers and body unchanged", async () => {
    const body = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
    const forward = vi.fn(
      serving((r) => ({
        status: 418,
        // An application header named like the SDK's old marker passes untouched.
        headers: { "content-type": "application/octet-stream", "x-reply": "café ✓", "x-mc-error": "1018" },
        body: Buffer.concat([Buffer.from(r.body).reverse(), Buffer.from([0, 255])]),
      })),
    );
    const core = await coreapp({ forward });
    const webapp = transport({ nodeId: "web-1.ffff" });
    const headers = { "content-type": "application/octet-stream", authorization: "Bearer x", "x-name": "Zoë" };
    const result = await webapp.forward(
      core.peer,
      { shard: 3, epoch: 42, method: "PUT", path: "/v1/media?id=7&x=%20", headers, body },
      2000,
    );
    if (result.outcome !== "served") throw new Error(`expected served, got ${result.outcome}`);
    const res = result.response;
    expect(res.status).toBe(418);
    expect(res.headers).toEqual({ "content-type": "application/octet-stream", "x-reply": "café ✓", "x-mc-error": "1018" });
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
    const core = await coreapp({ forward: serving(() => ({ status: 401, headers: {}, body: new Uint8Array() })) });
    const res = await transport().forward(core.peer, GET, 2000);
    expect(res).toEqual({ outcome: "served", response: { status: 401, headers: {}, body: expect.any(Uint8Array) } });
  });

  it("forward() returns not-serving as a typed result, and failed as the application's failure", async () => {
    const core = await coreapp({
      forward: async (_f, r, started) => {
        if (r.epoch !== 5) return { outcome: "not-serving", shard: r.shard, epoch: r.epoch, node: "core-a" };
        await started();
        return { outcome: "failed", response: { status: 500, headers: { "content-type": "application/json" }, body: Buffer.from("{}") } };
      },
    });
    const webapp = transport();
    await expect(webapp.forward(core.peer, { ...GET, shard: 2, epoch: 4 }, 2000)).resolves.toEqual({
      outcome: "not-serving",
      shard: 2,
      epoch: 4,
      node: "core-a",
    });
    await expect(webapp.forward(core.peer, { ...GET, epoch: 5 }, 2000)).resolves.toMatchObject({
      outcome: "failed",
      response: { status: 500 },
    });
  });

  it("switchover() returns the master's reply", async () => {
    const reply = { ok: false, shard: 1, from: "core-a.01", to: null, epoch: 9, error: { code: 1017, message: "Not Primary Master" } };
    const switchover = vi.fn(async (_from: string, _command: SwitchoverCommand) => reply);
    const core = await coreapp({ switchover });
    await expect(transport().switchover(core.peer, { shard: 1, to: "core-b" }, 2000)).resolves.toEqual(reply);
    expect(switchover.mock.calls[0]![1]).toEqual({ shard: 1, to: "core-b" });
  });

  it("exited() delivers a supervisor's exit notice to a master's handler, authenticated, and returns its answer", async () => {
    const exited = vi.fn((_from: string, _notice: ExitNotice) => ({ ok: true }));
    const master = await coreapp({ exited });
    const notice: ExitNotice = { node: "core-a.1f2e3d", role: "coreapp", cause: "killed by SIGKILL", released: ["shard/3"] };
    await expect(transport({ nodeId: id("supervisor") }).exited(master.peer, notice, 2000)).resolves.toEqual({ ok: true });
    expect(exited.mock.calls[0]![1]).toEqual(notice);
    await expect(
      transport({ nodeId: id("x"), secret: "another-secret-0123456789-abcdef" }).exited(master.peer, notice, 2000),
    ).rejects.toBeInstanceOf(AuthenticationError);
    expect(exited).toHaveBeenCalledTimes(1);
  });

  it("listen() refuses a malformed exit notice (a lease name that is not one) with 400 and runs no handler", async () => {
    const exited = vi.fn(() => ({ ok: true }));
    const master = await coreapp({ exited });
    const raw = await RawConnection.open(master.server.port);
    cleanups.push(async () => raw.close());
    expect(await raw.handshake(KEY, "s.1", master.self)).toBe(true);
    raw.request(1, "exited", Buffer.from(JSON.stringify({ node: "n.1", role: "coreapp", cause: "x", released: ["../etc"] })));
    await raw.until(() => raw.frames.length >= 1, "a refusal");
    expect(raw.sessionFrames().map((f) => [f.id, f.type, f.payload.readUInt16BE(0)])).toEqual([[1, 19, 400]]);
    expect(exited).not.toHaveBeenCalled();
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

  it("forward() of 200 concurrent requests, small and large, share one connection and all succeed", async () => {
    const core = await coreapp({ forward: serving((r) => ({ status: 200, headers: {}, body: r.body })) });
    const proxy = await tcpProxy(core.server.port);
    const webapp = transport();
    // Mostly small bodies (sealed in batches), some of 30 KiB (a batch fills and a new one starts),
    // some of 100 KiB (each sealed alone between batches).
    const body = (i: number) => (i % 50 === 7 ? "L".repeat(100 * 1024) : i % 10 === 3 ? "M".repeat(30 * 1024) : "") + String(i);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        webapp.forward(
          { id: core.self, address: `127.0.0.1:${proxy.port}` },
          { shard: 0, epoch: 1, method: "POST", path: `/n/${i}`, headers: {}, body: Buffer.from(body(i)) },
          5000,
        ),
      ),
    );
    const bodies = results.map((r) => (r.outcome === "served" ? Buffer.from(r.response.body).toString() : r.outcome));
    expect(bodies).toEqual(Array.from({ length: 200 }, (_, i) => body(i)));
    expect(proxy.captured).toHaveLength(1);
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
    const error = await transport()
      .heartbeat(redirected, { master: "m.1" }, 2000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as AuthenticationError).refusedByReceiver).toBe(true);
    expect((error as Error).message).toMatch(/addressed to another node/);
    expect(core.heartbeat).not.toHaveBeenCalled();
  });

  it("listen() runs a replayed connection's requests only once (raw bytes captured by a proxy, sent again)", async () => {
    const core = await coreapp();
    const proxy = await tcpProxy(core.server.port);
    await transport().heartbeat({ id: core.self, address: `127.0.0.1:${proxy.port}` }, { master: "m.1" }, 2000);
    expect(core.heartbeat).toHaveBeenCalledTimes(1);
    const raw = await RawConnection.open(core.server.port);
    cleanups.push(async () => raw.close());
    raw.write(Buffer.concat(proxy.captured[0]!));
    // The server's fresh nonce makes the recorded proof worthless: the connection closes, nothing runs.
    await raw.until(() => raw.closed, "close");
    expect(raw.frames.map((f) => f.type)).toEqual([2, 4]); // challenge, then reject
    expect(core.heartbeat).toHaveBeenCalledTimes(1);
  });

  it("listen() refuses a handshake whose announced protocol range was altered on the way (a downgrade), and accepts it unaltered", async () => {
    const core = await coreapp();
    const altered = await RawConnection.open(core.server.port);
    cleanups.push(async () => altered.close());
    const claimed = { version: PROTOCOL.version + 1, min: PROTOCOL.min }; // what reached the listener
    expect(await altered.handshake(KEY, "m.1", core.self, claimed, PROTOCOL)).toBe(false);
    const honest = await RawConnection.open(core.server.port);
    cleanups.push(async () => honest.close());
    expect(await honest.handshake(KEY, "m.1", core.self, claimed)).toBe(true);
  });

  it("listen() refuses malformed JSON and unknown kinds with a clean refusal, running no handler", async () => {
    const core = await coreapp();
    const raw = await RawConnection.open(core.server.port);
    cleanups.push(async () => raw.close());
    expect(await raw.handshake(KEY, "m.1", core.self)).toBe(true);
    raw.request(1, "heartbeat", Buffer.from("{not json"));
    raw.request(2, "heartbeat", Buffer.from(JSON.stringify({ master: 12 })));
    raw.request(3, 99, Buffer.from("{}"));
    raw.request(4, "forward", Buffer.from("xx"));
    raw.request(5, "heartbeat", Buffer.from(JSON.stringify({ master: "m.1", mapChanged: "yes" })));
    await raw.until(() => raw.frames.length >= 5, "five refusals");
    const refusals = raw
      .sessionFrames()
      .map((f) => [f.id, f.type, f.payload.readUInt16BE(0)])
      .sort((a, b) => a[0]! - b[0]!);
    expect(refusals).toEqual([
      [1, 19, 400],
      [2, 19, 400],
      [3, 19, 501],
      [4, 19, 501],
      [5, 19, 400],
    ]);
    expect(raw.closed).toBe(false);
    expect(core.heartbeat).not.toHaveBeenCalled();
  });

  it("switchover() without a handler is refused as transport_rejected", async () => {
    const core = await coreapp();
    await expect(transport().switchover(core.peer, { shard: 0 }, 2000)).rejects.toMatchObject({ code: "transport_rejected" });
  });

  it("forward() of a body over maxBodyBytes closes the connection and runs no handler", async () => {
    const forward = vi.fn(serving(() => ({ status: 200, headers: {}, body: new Uint8Array() })));
    const core = await coreapp({ forward }, { maxBodyBytes: 1024 });
    const request = { ...GET, method: "POST", body: Buffer.alloc(1024 * 1024, 1) };
    const error = await transport()
      .forward(core.peer, request, 2000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(forward).not.toHaveBeenCalled();
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
    const error = await transport()
      .forward({ id: "core.1", address: `${hole.host}:${hole.port}` }, GET, 300)
      .catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect((error as Error).message).toMatch(/within 300 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(800);
  });

  it("heartbeat() to a listener that does not hold the cluster key throws AuthenticationError and sends it nothing", async () => {
    const impostor = await coreapp({}, { secret: "another-secret-of-enough-length" });
    const error = await transport()
      .heartbeat(impostor.peer, { master: "m.1" }, 2000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as Error).message).toMatch(/did not prove the cluster key/);
    expect(impostor.heartbeat).not.toHaveBeenCalled();
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
    await catchInto(transport().forward(core.peer, { ...GET, body: Buffer.alloc(300 * 1024) }, 1000));
    await catchInto(Promise.resolve().then(() => new FramedTransport({ nodeId: "n.1", clusterName: CLUSTER, secret: "short" })));
    expect(errors).toHaveLength(6);
    for (const e of errors) {
      expect(e).toBeInstanceOf(MulticonnectError);
      const text = `${String(e)} ${inspect(e, { depth: 10 })} ${JSON.stringify(e)}`;
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain("short");
    }
  });

  it("close() leaves no socket open after calls that reused the connection", async () => {
    const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;
    const before = tcpSockets();
    const core = await coreapp();
    const proxy = await tcpProxy(core.server.port);
    const master = new FramedTransport({ nodeId: id("master"), clusterName: CLUSTER, secret: SECRET });
    const peer = { id: core.self, address: `127.0.0.1:${proxy.port}` };
    for (let i = 0; i < 20; i++) await master.heartbeat(peer, { master: "m.1" }, 2000);
    expect(proxy.captured.length).toBe(1);
    await master.close();
    await expect(master.heartbeat(peer, { master: "m.1" }, 2000)).rejects.toBeInstanceOf(TransportUnavailableError);
    // Servers still listen: only the client closing its sockets can bring the count back down.
    await vi.waitFor(() => expect(tcpSockets()).toBeLessThanOrEqual(before), { timeout: 2000 });
  });

  it("listen() closes a connection at once past maxHandshaking unauthenticated ones, warns, and keeps the authenticated going", async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_fields: object, message: string) => void warnings.push(message) };
    const self = id("core");
    const heartbeat = vi.fn((_from: string) => ({ id: self, shard: 0, epoch: 7 }));
    const server = await startServer(
      self,
      "127.0.0.1",
      0,
      { heartbeat },
      { key: KEY, maxBodyBytes: 1024, protocol: PROTOCOL, logger, maxHandshaking: 2 },
    );
    cleanups.push(() => server.close());
    const master = transport();
    const peer = { id: self, address: `127.0.0.1:${server.port}` };
    await master.heartbeat(peer, { master: "m.1" }, 2000); // authenticated: it no longer counts
    const silent = await Promise.all([0, 1].map(() => connectedSocket(server.port)));
    const third = await connectedSocket(server.port);
    await vi.waitFor(() => expect(third.destroyed || third.readableEnded).toBe(true), { timeout: 5000 });
    expect(silent.every((s) => !s.destroyed && !s.readableEnded)).toBe(true);
    expect(warnings).toEqual([expect.stringMatching(/closed unread: 2 others are still in the handshake/)]);
    await master.heartbeat(peer, { master: "m.1" }, 2000);
    expect(heartbeat).toHaveBeenCalledTimes(2);
    for (const s of silent) s.destroy();
  });
});

/** A plain TCP connection that says nothing; resolves once connected, and notes when the other side ends it. */
async function connectedSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.on("end", () => socket.destroy());
  socket.resume();
  cleanups.push(async () => void socket.destroy());
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  return socket;
}
