import { performance } from "node:perf_hooks";

/**
 * The vocabulary of the etcd client seam (`client.ts`): plain shapes the adapter's port files speak,
 * free of any etcd3 type, so that replacing the client leaves them and their users untouched.
 */

/** A key-value pair as etcd holds it. Revisions are etcd's global, persisted, never-decreasing counter. */
export interface Kv {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  /** Number of puts since the key was (re)created; 0 means absent. */
  readonly version: number;
  /** The etcd lease the key is attached to, "0" for none (an int64, kept as a string). */
  readonly lease: string;
}

/** One predicate of a txn; all of a txn's compares must hold for its `success` branch to run. */
export type Compare =
  | { readonly key: string; readonly target: "create" | "mod" | "version"; readonly equals: number }
  | { readonly key: string; readonly target: "value" | "lease"; readonly equals: string };

/** One operation of a txn branch. `prefix` widens a range or delete to every key under `key`. */
export type Op =
  | { readonly put: { readonly key: string; readonly value: string; readonly lease?: string } }
  | { readonly range: string; readonly prefix?: boolean }
  | { readonly delete: string; readonly prefix?: boolean };

/** The outcome of a txn: which branch ran, the store revision after it, each op's range result. */
export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: number;
  /** Per op of the branch that ran: the keys a range returned ([] for put and delete). */
  readonly results: Kv[][];
}

/** What a prefix watch reports: `events()` on every change, `lost()` once if the stream breaks. */
export interface WatchHandlers {
  events(): void;
  lost(error: Error): void;
}

/** An absolute time budget on this process's monotonic clock, shared by the calls of one operation. */
export class Deadline {
  private readonly at: number;
  constructor(readonly budgetMs: number) {
    this.at = performance.now() + budgetMs;
  }
  /** Milliseconds left, possibly ≤ 0. */
  remainingMs(): number {
    return this.at - performance.now();
  }
}

/** What the seam needs to connect; see `EtcdOptions` for each field's meaning and default. */
export interface EtcdClientOptions {
  hosts: string[];
  username?: string;
  password?: string;
  tls?: { ca?: Buffer | string; cert?: Buffer | string; key?: Buffer | string };
  operationTimeoutMs: number;
  connectTimeoutMs: number;
}
