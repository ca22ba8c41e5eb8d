import { FramedTransport, testProtocolOverride } from "../adapters/transport/index.js";
import type { Config } from "../config/load.js";
import { SystemClock } from "../core/clock.js";
import { MASTER_LEASE } from "../core/ports/leases.js";
import type { Logger } from "../core/ports/logger.js";
import type { Store } from "../core/ports/store.js";
import type { Transport } from "../core/ports/transport.js";
import { silentLogger } from "../core/silent-logger.js";
import { newNodeId } from "./deps.js";
import type { NodeTokens } from "./held-leases.js";
import { openStore } from "./open-store.js";

/** What `releaseExitedNode` did. */
export interface ExitRelease {
  /** The leases given back (compare-and-delete by holder and epoch: a lease that had moved on was left alone). */
  readonly released: string[];
  /** The leases that could not be given back (the store did not answer in time): they lapse at their expiry. */
  readonly failed: string[];
  /** True when the node's liveness record was removed. */
  readonly recordRemoved: boolean;
  /** The masters that acknowledged the exit notice. */
  readonly notified: string[];
  /** How long the steps took, for logs. */
  readonly ms: ExitReleaseTimings;
}

/** Milliseconds from the call of `releaseExitedNode` to the end of each step. */
export interface ExitReleaseTimings {
  /** The leases released (or given up on). */
  readonly released: number;
  /** Every master acknowledged the notice, or timed out. */
  readonly notified: number;
}

/** Options of `releaseExitedNode`. */
export interface ExitReleaseOptions {
  /** How long to keep retrying a store that does not answer (default 2000 ms); past it the leases lapse by themselves. */
  readonly storeDeadlineMs?: number;
  /** How long each master may take to acknowledge the notice (default 1000 ms). */
  readonly notifyTimeoutMs?: number;
  /** Where to log (default: nowhere). */
  readonly log?: Logger;
}

/**
 * Crash failover (docs/safety.md, L3): call ONLY once the node's process is known dead — its
 * parent reaped it (the kernel's exit notice), so it holds no socket and no upstream session.
 * Gives back exactly what `tokens` lists: each lease by compare-and-delete on its holder and epoch
 * (a lease another holder has taken since, or a later tenure, is untouched; a late or repeated call
 * is harmless), then the liveness record; then tells every registered master, over the
 * authenticated transport, so that the primary master promotes a standby for the node's shard at
 * once (a new epoch, as always) and a secondary master takes a released master lease at once.
 * Never call it for a process that is only silent (frozen, starved, cut off): it may still act,
 * and only the timeout path is safe for it. Never throws: what failed is in the result.
 */
export async function releaseExitedNode(
  deps: { readonly store: Store; readonly transport: Transport },
  tokens: NodeTokens,
  cause: string,
  o: ExitReleaseOptions = {},
): Promise<ExitRelease> {
  const log = o.log ?? silentLogger;
  const t0 = performance.now();
  const deadline = t0 + (o.storeDeadlineMs ?? 2000);
  // Who to tell does not depend on the release: read it meanwhile (one store round trip less).
  const listing = deps.store.liveness.list().catch(() => []);
  const released: string[] = [];
  const failed: string[] = [];
  for (const lease of tokens.leases) {
    if (await retrying(deadline, () => deps.store.leases.release(lease))) released.push(lease.name);
    else failed.push(lease.name);
  }
  const releasedMs = performance.now() - t0;
  // The record's removal and the notice do not depend on each other: the notice is what a standby waits for.
  const removal = retrying(deadline, () => deps.store.liveness.remove(tokens.node));
  const notified: string[] = [];
  const masters = await listing;
  const notice = { node: tokens.node, role: tokens.role, cause: cause.slice(0, 200), released };
  await Promise.all(
    masters
      .filter((m) => m.role === "master" && m.id !== tokens.node && m.address !== "")
      .map(async (m) => {
        try {
          const r = await deps.transport.exited({ id: m.id, address: m.address }, notice, o.notifyTimeoutMs ?? 1000);
          if (r.ok) notified.push(m.id);
        } catch (error) {
          log.debug({ master: m.id, err: String(error) }, "exit notice not delivered");
        }
      }),
  );
  const notifiedMs = performance.now() - t0;
  const recordRemoved = await removal;
  return { released, failed, recordRemoved, notified, ms: { released: Math.round(releasedMs), notified: Math.round(notifiedMs) } };
}

/** Runs `step` until it succeeds or `deadline` (performance.now()) passes; true if it succeeded. */
async function retrying(deadline: number, step: () => Promise<void>): Promise<boolean> {
  for (let backoff = 20; ; backoff = Math.min(backoff * 2, 200)) {
    try {
      await step();
      return true;
    } catch {
      if (performance.now() + backoff > deadline) return false;
      await new Promise((r) => setTimeout(r, backoff));
    }
  }
}

/**
 * The store and transport connections `releaseExitedNode` needs, opened ahead of time from the
 * cluster's config, so that a release after a crash pays no connection set-up (an etcd client
 * takes hundreds of milliseconds to load). The supervisor of `multiconnect start` keeps one for its
 * child; a host that runs nodes under its own process manager keeps one per host (docs/embedding.md).
 */
export class ExitReleaser {
  private constructor(
    private readonly store: Store,
    private readonly transport: Transport,
    private readonly log: Logger,
  ) {}

  /**
   * Opens the config's store and a sending-only transport under an id of its own (`name`, default
   * "supervisor", plus a random suffix). Throws what `openStore` throws (a missing driver).
   */
  static async open(config: Config, options: { readonly name?: string; readonly log?: Logger } = {}): Promise<ExitReleaser> {
    const log = options.log ?? silentLogger;
    const store = await openStore(config.store, new SystemClock());
    const transport = new FramedTransport({
      nodeId: newNodeId(options.name ?? "supervisor"),
      secret: config.secret,
      clusterName: config.clusterName,
      maxBodyBytes: config.webapp.maxBodyBytes,
      tls: config.transport.tls,
      logger: log,
      protocol: testProtocolOverride(),
    });
    // Connect now rather than after a crash (a pooled driver connects on its first query).
    await store.leases.current(MASTER_LEASE).catch(() => null);
    return new ExitReleaser(store, transport, log);
  }

  /** `releaseExitedNode` with these connections. */
  release(tokens: NodeTokens, cause: string, o: Omit<ExitReleaseOptions, "log"> = {}): Promise<ExitRelease> {
    return releaseExitedNode({ store: this.store, transport: this.transport }, tokens, cause, { ...o, log: this.log });
  }

  /** Closes the connections. */
  async close(): Promise<void> {
    await this.transport.close();
    await this.store.close();
  }
}
