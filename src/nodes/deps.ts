import { randomBytes } from "node:crypto";
import type { Clock } from "../core/ports/clock.js";
import type { Logger } from "../core/ports/logger.js";
import type { Store } from "../core/ports/store.js";
import type { Transport } from "../core/ports/transport.js";
import type { Timing } from "../core/timing.js";
import type { NodeMetrics, Readiness } from "./metrics.js";

/** What every node is built from; the composition root (compose.ts) provides it. */
export interface NodeDeps {
  readonly store: Store;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly timing: Timing;
  readonly log: Logger;
  /** Where the node's metrics go (the composition root's); default: a detached set nobody scrapes. */
  readonly metrics?: NodeMetrics;
}

/** Who a node is and where it listens. */
export interface NodeIdentity {
  /** Unique per process: `name.<random>`, so a restarted process is a new node to the cluster. */
  readonly id: string;
  readonly name: string;
  readonly listenHost: string;
  /** Port to listen on (0: any free port). */
  readonly port: number;
  /** Host name other nodes use to reach this one (EXTERNAL_HOSTNAME). */
  readonly externalHostname: string;
  /** Port other nodes use to reach this one, when not the listen port (a proxy or NAT in between). */
  readonly advertisePort?: number | undefined;
}

/** A process-unique node id for `name`. */
export function newNodeId(name: string): string {
  return `${name}.${randomBytes(3).toString("hex")}`;
}

/** The lifecycle every node class has. */
export interface MulticonnectNode {
  readonly id: string;
  readonly name: string;
  start(): Promise<void>;
  /** Whether the node is started and able to do its role's job now (`GET /readyz`); no store call. */
  readiness(): Readiness;
  /** Leaves gracefully: stops serving, releases leases, removes its liveness record. */
  stop(): Promise<void>;
}

/**
 * Runs `step` every `intervalMs` until `signal` aborts, logging (not throwing) its failures.
 * The one place where the nodes' periodic loops are written. A failed step is tried again soon
 * (a tenth of the interval, at most 1 s), not a whole interval later: a liveness beat lost to a
 * short store blip must not leave the record a full extra interval old, or a healthy primary
 * would look dead to the store-based detector (`db_unhealthy_interval` is only 2 beats).
 */
export async function every(
  clock: Clock,
  intervalMs: number,
  signal: AbortSignal,
  log: Logger,
  what: string,
  step: () => Promise<void>,
): Promise<void> {
  while (!signal.aborted) {
    let wait = intervalMs;
    try {
      await step();
    } catch (error) {
      wait = Math.min(intervalMs / 10, 1000);
      log.warn({ err: String(error), retryInMs: wait }, `${what} failed; will retry`);
    }
    await clock.sleep(wait, signal);
  }
}

/** Retries `fn` with backoff until it succeeds or `signal` aborts; used for start-up store access. */
export async function withRetry<T>(clock: Clock, signal: AbortSignal, log: Logger, what: string, fn: () => Promise<T>): Promise<T> {
  for (let backoff = 100; ; backoff = Math.min(backoff * 2, 5000)) {
    try {
      return await fn();
    } catch (error) {
      const retryable = (error as { retryable?: boolean }).retryable === true;
      if (!retryable || signal.aborted) throw error;
      log.warn({ err: String(error), retryInMs: backoff }, `${what}: store unavailable; retrying`);
      await clock.sleep(backoff, signal);
    }
  }
}
