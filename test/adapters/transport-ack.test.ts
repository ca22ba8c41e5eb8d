import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mapCallError } from "../../src/adapters/transport/errors.js";
import { FramedTransport, type FramedTransportOptions } from "../../src/adapters/transport/index.js";
import { TransportUnavailableError } from "../../src/core/errors.js";
import type { ForwardRequest, ForwardResult, Peer, TransportHandlers } from "../../src/core/ports/transport.js";
import { FaultProxy } from "../../src/testing/fault-proxy.js";

/**
 * The acknowledgement ("started" frame) of a forward: a request whose connection the receiver
 * ended (FIN) before it acknowledged certainly did not run (`notDelivered`, safe to send elsewhere);
 * one it acknowledged and never answered is in doubt, and so is one whose connection was reset.
 * And the in-process shortcut.
 */
const SECRET = "ack-test-secret-0123456789-abcdef";
const CLUSTER = "ack-test";
const id = (name: string) => `${name}.${randomBytes(4).toString("hex")}`;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function transport(o: Partial<FramedTransportOptions> = {}): FramedTransport {
  const t = new FramedTransport({ nodeId: id("node"), clusterName: CLUSTER, secret: SECRET, inProcessShortcut: false, ...o });
  cleanups.push(() => t.close());
  return t;
}

async function coreapp(forward: NonNullable<TransportHandlers["forward"]>, o: Partial<FramedTransportOptions> = {}) {
  const self = id("core");
  const t = transport({ nodeId: self, ...o });
  const server = await t.listen(self, "127.0.0.1", 0, { forward });
  cleanups.push(() => server.close());
  return { server, peer: { id: self, address: `127.0.0.1:${server.port}` } satisfies Peer };
}

const REQUEST: ForwardRequest = { shard: 0, epoch: 1, method: "POST", path: "/v1/x", headers: {}, body: Buffer.from("x") };

/** Resolves when `flag()` holds. */
async function until(flag: () => boolean, timeout = 5000): Promise<void> {
  await vi.waitFor(() => expect(flag()).toBe(true), { timeout, interval: 5 });
}

describe("forward acknowledgement", () => {
  it("a connection the receiver closes before acknowledging fails the forward as notDelivered (nothing ran)", async () => {
    let arrived = false;
    const core = await coreapp(async () => {
      arrived = true;
      return new Promise<ForwardResult>(() => {}); // holds the request without starting it
    });
    const call = transport()
      .forward(core.peer, REQUEST, 10_000)
      .catch((e: unknown) => e);
    await until(() => arrived);
    await core.server.close(); // the receiver's process goes away: its sockets close
    const error = await call;
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect((error as TransportUnavailableError).notDelivered).toBe(true);
  });

  it("a connection closed after the acknowledgement fails the forward as in doubt (it may have run)", async () => {
    let running = false;
    const core = await coreapp(async (_f, _r, started) => {
      await started();
      running = true;
      return new Promise<ForwardResult>(() => {});
    });
    const call = transport()
      .forward(core.peer, REQUEST, 10_000)
      .catch((e: unknown) => e);
    await until(() => running);
    await core.server.close();
    const error = await call;
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect((error as TransportUnavailableError).notDelivered).toBe(false);
  });

  it("a connection reset before the acknowledgement leaves the forward in doubt (a reset drops what the kernel had not sent)", async () => {
    let arrived = false;
    const core = await coreapp(async () => {
      arrived = true;
      return new Promise<ForwardResult>(() => {});
    });
    const proxy = new FaultProxy("127.0.0.1", Number(core.peer.address.split(":")[1]), "webapp→coreapp");
    await proxy.start();
    cleanups.push(() => proxy.close());
    const call = transport()
      .forward({ id: core.peer.id, address: `127.0.0.1:${proxy.port}` }, REQUEST, 10_000)
      .catch((e: unknown) => e);
    await until(() => arrived);
    proxy.resetAll();
    const error = await call;
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(String(error)).toMatch(/ECONNRESET/);
    expect((error as TransportUnavailableError).notDelivered).toBe(false);
  });

  it("an established connection's network or TLS error is in doubt; the same code before the handshake is notDelivered", () => {
    for (const code of ["EHOSTUNREACH", "ENETUNREACH", "ECONNRESET", "ETIMEDOUT", "ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC"]) {
      const error = Object.assign(new Error("socket error"), { code });
      const after = mapCallError(error, "forward", "10.0.0.2:9091");
      const before = mapCallError(error, "forward", "10.0.0.2:9091", true);
      expect([code, (after as TransportUnavailableError).notDelivered]).toEqual([code, false]);
      expect([code, (before as TransportUnavailableError).notDelivered]).toEqual([code, true]);
    }
  });

  it("a timeout without any acknowledgement is in doubt, never notDelivered (the request may still be read and run)", async () => {
    const core = await coreapp(() => new Promise<ForwardResult>(() => {}));
    const error = await transport()
      .forward(core.peer, REQUEST, 200)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect((error as TransportUnavailableError).notDelivered).toBe(false);
  });

  it("started() rejects once the caller's connection is gone, so the handler does not run the request", async () => {
    let refusal: Error | undefined;
    let gate!: () => void;
    const opened = new Promise<void>((r) => (gate = r));
    let callerGone!: () => void;
    const gone = new Promise<void>((r) => (callerGone = r));
    const core = await coreapp(async (_f, _r, started) => {
      gate();
      await gone;
      // The coreapp learns of the close a moment after the caller closed (on a busy machine, later):
      // until then an acknowledgement may still go out; from then on started() must refuse.
      for (let i = 0; i < 500 && refusal === undefined; i++) {
        await started().catch((e: Error) => (refusal = e));
        await new Promise((r) => setTimeout(r, 20));
      }
      return { outcome: "served", response: { status: 200, headers: {}, body: new Uint8Array() } };
    });
    const caller = new FramedTransport({ nodeId: id("web"), clusterName: CLUSTER, secret: SECRET, inProcessShortcut: false });
    const call = caller.forward(core.peer, REQUEST, 10_000).catch((e: unknown) => e);
    await opened;
    await caller.close();
    await call;
    callerGone();
    await until(() => refusal !== undefined, 15_000);
    expect(refusal!.message).toMatch(/closed before the request started/);
  });
});

describe("in-process shortcut", () => {
  it("forward() to a listener of the same process and cluster calls its handler directly, with the same result", async () => {
    const forward = vi.fn(async (_f: string, r: ForwardRequest, started: () => Promise<void>): Promise<ForwardResult> => {
      if (r.epoch !== 1) return { outcome: "not-serving", shard: r.shard, epoch: r.epoch, node: "c" };
      await started();
      return { outcome: "served", response: { status: 201, headers: { "x-a": "b" }, body: r.body } };
    });
    // The listener's address refuses connections: only the direct call can reach it.
    const core = await coreapp(forward);
    const webapp = transport({ inProcessShortcut: true });
    const peer = { id: core.peer.id, address: "127.0.0.1:1" };
    await expect(webapp.forward(peer, REQUEST, 1000)).resolves.toMatchObject({ outcome: "served", response: { status: 201 } });
    await expect(webapp.forward(peer, { ...REQUEST, epoch: 2 }, 1000)).resolves.toMatchObject({ outcome: "not-serving" });
    expect(forward).toHaveBeenCalledTimes(2);
    expect(forward.mock.calls[0]![0]).toMatch(/^node\./);
  });

  it("forward() never takes the shortcut to a listener of another cluster in the same process", async () => {
    const forward = vi.fn(async (): Promise<ForwardResult> => ({
      outcome: "served",
      response: { status: 200, headers: {}, body: new Uint8Array() },
    }));
    const core = await coreapp(forward, { clusterName: "another-cluster" });
    const error = await transport({ inProcessShortcut: true })
      .forward({ id: core.peer.id, address: core.peer.address }, REQUEST, 2000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(forward).not.toHaveBeenCalled();
  });

  it("a shortcut handler that throws before starting is notDelivered, after starting in doubt", async () => {
    const core = await coreapp(async (_f, r, started) => {
      if (r.epoch === 2) await started();
      throw new Error("handler broke");
    });
    const webapp = transport({ inProcessShortcut: true });
    const before = await webapp.forward(core.peer, REQUEST, 1000).catch((e: unknown) => e);
    const after = await webapp.forward(core.peer, { ...REQUEST, epoch: 2 }, 1000).catch((e: unknown) => e);
    expect((before as TransportUnavailableError).notDelivered).toBe(true);
    expect((after as TransportUnavailableError).notDelivered).toBe(false);
  });
});
