/**
 * `npx tsx bench/transport-tls.ts [rounds]`: what mutual TLS costs the node-to-node transport on
 * this machine, against the same transport over plain TCP — one listener and one caller in this
 * process, on loopback, with certificates made by `openssl` for the run (P-256 keys):
 *
 * - a heartbeat round trip on a warm (kept-alive) connection, one at a time;
 * - forwards of a 1 KiB body, 16 in flight, as a webapp under load sends them;
 * - a heartbeat on a new connection each time (the handshake's cost, paid after a rotation or when
 *   a connection is new).
 *
 * Prints medians and p99s; docs/security.md keeps the figures with the machine and the date.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { FramedTransport, type FramedTransportOptions } from "../src/adapters/transport/index.js";
import type { Peer } from "../src/core/ports/transport.js";
import { makeCa } from "../test/support/certs.js";

const rounds = Number(process.argv[2] ?? 2000);
const SECRET = "bench-secret-0123456789-abcdef";
const dir = mkdtempSync(join(tmpdir(), "mc-bench-tls-"));
const ca = makeCa("bench-ca", dir);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  return `p50 ${(percentile(s, 50) * 1000).toFixed(0)} µs, p99 ${(percentile(s, 99) * 1000).toFixed(0)} µs`;
}

async function measure(mode: "plain" | "mtls"): Promise<void> {
  const issued = new Map<string, Partial<FramedTransportOptions>>();
  const tls = (name: string): Partial<FramedTransportOptions> => {
    if (mode === "plain") return {};
    if (!issued.has(name)) issued.set(name, { tls: ca.issue(name) });
    return issued.get(name)!;
  };
  const make = (name: string) =>
    new FramedTransport({
      nodeId: `${name}.${randomBytes(3).toString("hex")}`,
      clusterName: "bench",
      secret: SECRET,
      inProcessShortcut: false, // measure the network path, not the direct call
      ...tls(name),
    });
  const core = make("core");
  const coreId = `core.${randomBytes(3).toString("hex")}`;
  const server = await core.listen(coreId, "127.0.0.1", 0, {
    heartbeat: () => ({ id: coreId, shard: 0, epoch: 1 }),
    forward: async (_from, r, started) => {
      await started();
      return { outcome: "served", response: { status: 200, headers: {}, body: r.body } };
    },
  });
  const peer: Peer = { id: coreId, address: `127.0.0.1:${server.port}` };
  const caller = make("master");
  const body = randomBytes(1024);
  try {
    for (let i = 0; i < 200; i++) await caller.heartbeat(peer, { master: "m" }, 5000); // warm-up
    const warm: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      await caller.heartbeat(peer, { master: "m" }, 5000);
      warm.push(performance.now() - t);
    }

    let next = 0;
    const forwardStarted = performance.now();
    const forwards: number[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next++ < rounds * 2) {
          const t = performance.now();
          await caller.forward(peer, { shard: 0, epoch: 1, method: "POST", path: "/v1/messages", headers: {}, body }, 5000);
          forwards.push(performance.now() - t);
        }
      }),
    );
    const perSecond = Math.round(forwards.length / ((performance.now() - forwardStarted) / 1000));

    const fresh: number[] = [];
    for (let i = 0; i < Math.min(rounds, 300); i++) {
      const once = make("once");
      const t = performance.now();
      await once.heartbeat(peer, { master: "m" }, 5000);
      fresh.push(performance.now() - t);
      await once.close();
    }
    console.log(
      `${mode.padEnd(5)} warm heartbeat: ${summary(warm)} | 1 KiB forwards ×16: ${perSecond}/s, ${summary(forwards)} | new connection: ${summary(fresh)}`,
    );
  } finally {
    await caller.close();
    await server.close();
    await core.close();
  }
}

console.log(
  `transport TLS cost, ${rounds} rounds, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}, ${new Date().toISOString()}`,
);
try {
  for (const mode of ["plain", "mtls", "plain", "mtls"] as const) await measure(mode);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
