import { describe, expect, it } from "vitest";
import { HeartbeatMonitor } from "../../src/core/master/heartbeat-monitor.js";
import type { Clock } from "../../src/core/ports/clock.js";
import type { HeartbeatReply, Transport } from "../../src/core/ports/transport.js";
import { silentLogger } from "../../src/core/silent-logger.js";

/** A clock the test moves by hand; sleeps never end on their own. */
class ManualClock implements Clock {
  t = 0;
  now() {
    return this.t;
  }
  sleep(_ms: number, signal?: AbortSignal) {
    return new Promise<void>((resolve) => signal?.addEventListener("abort", () => resolve(), { once: true }));
  }
}

/** A transport whose heartbeat answers the test releases one by one, in any order. */
function heldTransport() {
  const pending: ((r: HeartbeatReply) => void)[] = [];
  const transport = { heartbeat: () => new Promise<HeartbeatReply>((r) => pending.push(r)) } as unknown as Transport;
  return { transport, pending };
}

const coreapp = { id: "c1.x", name: "c1", role: "coreapp" as const, address: "h:1", meta: {}, ageMs: 0 };
const reply = (epoch: number): HeartbeatReply => ({ id: "c1.x", shard: 0, epoch, ended: null });

describe("HeartbeatMonitor", () => {
  it("counts silence from when the answered heartbeat was sent, not from when this (busy) process handled the answer", async () => {
    const clock = new ManualClock();
    const { transport, pending } = heldTransport();
    const monitor = new HeartbeatMonitor("m1.x", transport, clock, { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 500 }, silentLogger);
    monitor.updatePeers([coreapp]);
    clock.t = 1000;
    const probe = monitor.probe("c1.x"); // sent at 1000
    clock.t = 1400; // the answer is handled 400 ms later: this master's event loop was busy
    pending[0]!(reply(1));
    await probe;
    clock.t = 3000;
    expect(monitor.silenceMs("c1.x")).toBe(2000);
  });

  it("an older heartbeat's late answer neither moves the last answer back nor replaces the newer reply", async () => {
    const clock = new ManualClock();
    const { transport, pending } = heldTransport();
    const monitor = new HeartbeatMonitor("m1.x", transport, clock, { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 500 }, silentLogger);
    monitor.updatePeers([coreapp]);
    clock.t = 100;
    const older = monitor.probe("c1.x");
    clock.t = 200;
    const newer = monitor.probe("c1.x");
    pending[1]!(reply(2));
    await newer;
    pending[0]!(reply(1));
    await older;
    clock.t = 300;
    expect(monitor.silenceMs("c1.x")).toBe(100);
    expect(monitor.lastReply("c1.x")?.epoch).toBe(2);
  });
});
