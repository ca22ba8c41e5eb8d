import { randomBytes } from "node:crypto";
import type { ClusterDocumentFollower } from "../core/cluster-document-follower.js";
import { ConfigError } from "../core/errors.js";
import type { Clock } from "../core/ports/clock.js";
import type { Logger } from "../core/ports/logger.js";
import type { Store } from "../core/ports/store.js";
import type { Transport } from "../core/ports/transport.js";
import type { Timing } from "../core/timing.js";
import type { NodeMetrics, Readiness } from "./metrics.js";

/** What every node is built from; the composition root (compose.ts) provides it. */
export interface NodeDeps {
  /** The cluster's store: leases, liveness and the shard map. */
  readonly store: Store;
  /** How nodes talk to each other (heartbeats, forwarded requests, switchover). */
  readonly transport: Transport;
  /** The time source; tests inject a manual one. */
  readonly clock: Clock;
  /** Every interval and timeout, derived from the cluster settings. */
  readonly timing: Timing;
  /** Where the node logs. */
  readonly log: Logger;
  /** Where the node's metrics go (the composition root's); default: a detached set nobody scrapes. */
  readonly metrics?: NodeMetrics;
}

/** Who a node is and where it listens. */
export interface NodeIdentity {
  /** Unique per process: `name.<random>`, so a restarted process is a new node to the cluster. */
  readonly id: string;
  /** The name it was given (several processes may share one over time). */
  readonly name: string;
  /** The address to listen on. */
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

/** Options of a node's `start()`. */
export interface StartOptions {
  /**
   * Aborts the start-up: `start()` retries while the store is unreachable (a node may be started
   * before its store), and without a signal it waits for as long as that takes. Aborting makes
   * `start()` reject with the signal's reason; call `stop()` afterwards to close what was opened.
   * Only the start-up listens to it: once started, a node runs until `stop()`.
   */
  readonly signal?: AbortSignal;
}

/** The lifecycle every node class has. */
export interface MulticonnectNode extends AsyncDisposable {
  /** Unique per process: `name.<random>`. */
  readonly id: string;
  /** The name the node was given. */
  readonly name: string;
  /** Joins the cluster; retries while the store is unreachable, until `options.signal` aborts. */
  start(options?: StartOptions): Promise<void>;
  /** Whether the node is started and able to do its role's job now (`GET /readyz`); no store call. */
  readiness(): Readiness;
  /** Leaves gracefully: stops serving, releases leases, removes its liveness record. */
  stop(): Promise<void>;
}

/** The signal a start-up runs under: the node's own stop, and the caller's signal if any. */
export function startSignal(stop: AbortSignal, caller: AbortSignal | undefined): AbortSignal {
  return caller ? AbortSignal.any([stop, caller]) : stop;
}

/**
 * Runs `step` every `intervalMs()` (read again each time: settings change at run time) until
 * `signal` aborts, logging (not throwing) its failures.
 * The one place where the nodes' periodic loops are written. A failed step is tried again soon
 * (a tenth of the interval, at most 1 s), not a whole interval later: a liveness beat lost to a
 * short store blip must not leave the record a full extra interval old, or a healthy primary
 * would look dead to the store-based detector (`db_unhealthy_interval` is only 2 beats).
 */
export async function every(
  clock: Clock,
  intervalMs: () => number,
  signal: AbortSignal,
  log: Logger,
  what: string,
  step: () => Promise<void>,
): Promise<void> {
  while (!signal.aborted) {
    let wait = intervalMs();
    try {
      await step();
    } catch (error) {
      wait = Math.min(wait / 10, 1000);
      log.warn({ err: String(error), retryInMs: wait }, `${what} failed; will retry`);
    }
    await clock.sleep(wait, signal);
  }
}

/**
 * Starts following the cluster document (live settings, pauses) and, when the cluster has written
 * one, refuses a node whose shard count disagrees: routing by `hash % shards` with two different
 * counts would send one key to two shards. Throws `ConfigError` naming both values.
 */
export async function startFollowing(follower: ClusterDocumentFollower, shards: number | null): Promise<void> {
  await follower.start();
  const stored = follower.document?.document.shardCount;
  if (shards !== null && stored !== undefined && stored !== shards) {
    await follower.close();
    throw new ConfigError(
      "shards",
      `the cluster has ${stored} shards (stored in its cluster document) but this node's config says ${shards}`,
    );
  }
}

/**
 * Retries `fn` with backoff until it succeeds or `signal` aborts (then it rejects with the
 * signal's reason); used for start-up store access.
 */
export async function withRetry<T>(clock: Clock, signal: AbortSignal, log: Logger, what: string, fn: () => Promise<T>): Promise<T> {
  for (let backoff = 100; ; backoff = Math.min(backoff * 2, 5000)) {
    signal.throwIfAborted();
    try {
      return await fn();
    } catch (error) {
      const retryable = (error as { retryable?: boolean }).retryable === true;
      if (!retryable) throw error;
      signal.throwIfAborted();
      log.warn({ err: String(error), retryInMs: backoff }, `${what}: store unavailable; retrying`);
      await clock.sleep(backoff, signal);
    }
  }
}

/** How often a node waiting for the primary master's schema upgrade looks again, and says so. */
const SCHEMA_WAIT_POLL_MS = 1000;
const SCHEMA_WAIT_LOG_EVERY_MS = 30_000;

/**
 * Makes the store's schema usable by this node at start.
 * - No schema yet (the cluster's first start): any node creates it; creation is idempotent and
 *   safe when several nodes do it at once, and waiting for a master would only slow a first start.
 * - The same version: `migrate()` again (idempotent; on SQLite it also clears a previous boot's leases).
 * - Newer than this SDK: `migrate()` throws `SchemaTooNewError`, naming both versions.
 * - Older: only the primary master upgrades it (`Master` does, once it holds the lease), so an
 *   upgrade happens once, under the lease, not in a race of every restarted node. A master returns
 *   at once; any other role waits, saying so, until the recorded version is this SDK's.
 */
export async function prepareSchema(
  store: Store,
  clock: Clock,
  signal: AbortSignal,
  log: Logger,
  role: "master" | "coreapp" | "webapp",
): Promise<void> {
  let lastSaid = -Infinity;
  for (;;) {
    const recorded = await withRetry(clock, signal, log, "schema version", () => store.recordedSchemaVersion());
    if (recorded === null || recorded >= store.schemaVersion) {
      await withRetry(clock, signal, log, "schema migration", () => store.migrate());
      return;
    }
    if (role === "master") return;
    if (clock.now() - lastSaid >= SCHEMA_WAIT_LOG_EVERY_MS) {
      lastSaid = clock.now();
      log.info(
        { recorded, supported: store.schemaVersion },
        `the store's schema version ${recorded} is older than this SDK's ${store.schemaVersion}; waiting for the primary master to upgrade it`,
      );
    }
    await clock.sleep(SCHEMA_WAIT_POLL_MS, signal);
    if (signal.aborted) throw new Error("stopped while waiting for the schema upgrade");
  }
}
