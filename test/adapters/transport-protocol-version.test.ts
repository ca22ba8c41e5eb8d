import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigError } from "../../src/core/errors.js";
import type { Peer } from "../../src/core/ports/transport.js";
import {
  FramedTransport,
  PROTOCOL,
  ProtocolMismatchError,
  testProtocolOverride,
  type ProtocolRange,
} from "../../src/adapters/transport/index.js";

/**
 * The node-to-node protocol version: nodes whose version ranges overlap talk (a rolling upgrade,
 * N beside N + 1); nodes that do not are refused with an error naming both ranges, before any
 * handler runs. Real transports on loopback.
 */
const SECRET = "protocol-test-secret-0123456789";
const CLUSTER = "proto";
const id = (name: string) => `${name}.${randomBytes(4).toString("hex")}`;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function transport(nodeId: string, protocol: ProtocolRange): FramedTransport {
  const t = new FramedTransport({ nodeId, clusterName: CLUSTER, secret: SECRET, protocol });
  cleanups.push(() => t.close());
  return t;
}

async function receiver(protocol: ProtocolRange) {
  const self = id("core");
  const heartbeat = vi.fn(() => ({ id: self, shard: 0, epoch: 3 }));
  const server = await transport(self, protocol).listen(self, "127.0.0.1", 0, { heartbeat });
  cleanups.push(() => server.close());
  return { heartbeat, peer: { id: self, address: `127.0.0.1:${server.port}` } satisfies Peer };
}

const N = PROTOCOL.version;
const current: ProtocolRange = { version: N, min: PROTOCOL.min };
const next: ProtocolRange = { version: N + 1, min: N };
const skipped: ProtocolRange = { version: N + 2, min: N + 2 };

describe("transport protocol version", () => {
  it("N and N + 1 (speaking back to N) talk in both directions", async () => {
    for (const [from, to] of [
      [current, next],
      [next, current],
    ] as const) {
      const r = await receiver(to);
      const reply = await transport(id("master"), from).heartbeat(r.peer, { master: "m" }, 2000);
      expect(reply).toEqual({ id: r.peer.id, shard: 0, epoch: 3, ended: null });
    }
  });

  it("a receiver with no version in common refuses at the handshake before any handler, and the error names both versions", async () => {
    const r = await receiver(skipped);
    const error = await transport(id("master"), current)
      .heartbeat(r.peer, { master: "m" }, 2000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolMismatchError);
    expect((error as ProtocolMismatchError).code).toBe("protocol_mismatch");
    expect((error as Error).message).toContain(`protocol ${N + 2}`);
    expect((error as Error).message).toContain(`protocol ${N}`);
    expect(r.heartbeat).not.toHaveBeenCalled();
  });

  it("an HTTP message of an SDK before the framed transport (protocol 1) runs no handler and its connection is closed", async () => {
    const r = await receiver(current);
    const body = JSON.stringify({ master: "m" });
    await expect(fetch(`http://${r.peer.address}/_mc/heartbeat`, { method: "POST", body })).rejects.toThrow();
    expect(r.heartbeat).not.toHaveBeenCalled();
  });

  it("testProtocolOverride() reads MULTICONNECT_TEST_PROTOCOL, and refuses a malformed value", () => {
    expect(testProtocolOverride({})).toBeUndefined();
    expect(testProtocolOverride({ MULTICONNECT_TEST_PROTOCOL: "2:1" })).toEqual({ version: 2, min: 1 });
    expect(testProtocolOverride({ MULTICONNECT_TEST_PROTOCOL: "3" })).toEqual({ version: 3, min: 3 });
    expect(() => testProtocolOverride({ MULTICONNECT_TEST_PROTOCOL: "1:2" })).toThrow(ConfigError);
    expect(() => testProtocolOverride({ MULTICONNECT_TEST_PROTOCOL: "x" })).toThrow(/MULTICONNECT_TEST_PROTOCOL/);
  });
});
