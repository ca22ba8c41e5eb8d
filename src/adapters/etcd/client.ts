import { Etcd3, type ICompare, type IKeyValue, type IOptions, type IRequestOp } from "etcd3";
import { type Compare, Deadline, type EtcdClientOptions, type Kv, type Op, type TxnResult, type WatchHandlers } from "./client-types.js";
import { EtcdDeadlineError, EtcdWatchLostError, describeHosts, isLeaseNotFound, isUnreachable, mapEtcdError } from "./errors.js";

/**
 * The seam around the `etcd3` npm client, which has been unmaintained since 2023: the only file
 * that imports it, exposing just what the adapter needs (txn with compares, get/range, put,
 * lease grant / keep-alive-once / time-to-live / revoke, prefix watch). Replacing the client means
 * rewriting this file alone.
 *
 * Every call runs against a `Deadline`: gRPC gets it as its call deadline, and a client-side timer
 * enforces it too, because etcd3 can otherwise wait for a connection indefinitely. etcd3's own
 * retry and circuit-breaker policies are switched off: a retried write could land after we have
 * given up on it, and retrying is the core's decision. Every error leaves here already mapped to
 * `StoreUnavailableError` / `StoreConfigurationError`.
 */

const buf = (s: string) => Buffer.from(s, "utf8");
const bytes = (b: string | Buffer) => (typeof b === "string" ? Buffer.from(b) : b);

type Policy = NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

/**
 * etcd3's fault policy, replaced: its default retries 3× on any transient error (also after a
 * deadline, when the write may have landed) and opens a 5 s circuit breaker. Ours tries the next
 * host only when this one could not be reached at all, so the request never left us; with one
 * host it runs the call once. The deadline of `call()` bounds all attempts together.
 */
function tryHosts(hostCount: number): Policy {
  return {
    execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal) => {
      const context = { signal: signal ?? new AbortController().signal };
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn(context);
        } catch (error) {
          if (attempt >= hostCount || !isUnreachable(error)) throw error;
        }
      }
    },
    onSuccess: () => ({ dispose() {} }),
    onFailure: () => ({ dispose() {} }),
  } as unknown as Policy;
}

/** The etcd connection of one store handle. */
export class EtcdClient {
  /** How messages name this store: "etcd (host:port)". */
  readonly where: string;
  private readonly etcd: Etcd3;
  private readonly watches = new Set<() => void>();

  constructor(private readonly o: EtcdClientOptions) {
    this.where = describeHosts(o.hosts);
    this.etcd = new Etcd3({
      hosts: o.hosts,
      auth: o.username === undefined ? undefined : { username: o.username, password: o.password ?? "" },
      credentials: o.tls && {
        // etcd3 types it as required, but gRPC takes undefined as "the system's CAs".
        rootCertificate: o.tls.ca === undefined ? (undefined as unknown as Buffer) : bytes(o.tls.ca),
        certChain: o.tls.cert === undefined ? undefined : bytes(o.tls.cert),
        privateKey: o.tls.key === undefined ? undefined : bytes(o.tls.key),
      },
      // Unary calls without an explicit deadline (etcd3's own auth exchange) get one too.
      defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + o.operationTimeoutMs }),
      faultHandling: { global: tryHosts(o.hosts.length), host: () => tryHosts(1) },
      grpcOptions: {
        // gRPC backs off up to 120 s between reconnects by default: a recovered etcd would stay unused.
        "grpc.initial_reconnect_backoff_ms": Math.min(500, o.connectTimeoutMs),
        "grpc.max_reconnect_backoff_ms": o.connectTimeoutMs,
        // Detects a dead connection under a silent watch; etcd refuses pings more often than every 5 s.
        "grpc.keepalive_time_ms": 10_000,
        "grpc.keepalive_timeout_ms": Math.max(1000, o.operationTimeoutMs),
      },
    });
  }

  /** A fresh budget of `operationTimeoutMs` (or `ms`) for one port operation. */
  deadline(ms = this.o.operationTimeoutMs): Deadline {
    return new Deadline(ms);
  }

  /** The key, or null when it does not exist. */
  async get(key: string, d: Deadline): Promise<Kv | null> {
    return (await this.range(key, false, d))[0] ?? null;
  }

  /** Every key under `prefix` (or just `key`), in key order. */
  async range(key: string, prefix: boolean, d: Deadline): Promise<Kv[]> {
    const r = await this.call("range", d, (options) => this.etcd.kv.range(rangeOf(key, prefix), options));
    return r.kvs.map(toKv);
  }

  /** Runs `success` if every compare holds, else `failure`, atomically. */
  async txn(compare: readonly Compare[], success: readonly Op[], failure: readonly Op[], d: Deadline): Promise<TxnResult> {
    const r = await this.call("txn", d, (options) =>
      this.etcd.kv.txn({ compare: compare.map(toCompare), success: success.map(toOp), failure: failure.map(toOp) }, options),
    );
    return {
      succeeded: r.succeeded,
      revision: Number(r.header.revision),
      results: r.responses.map((op) => (op.response_range ? op.response_range.kvs.map(toKv) : [])),
    };
  }

  /** Puts `key` on `lease` ("0": none); returns the pair it replaced, if any. */
  async put(key: string, value: string, lease: string, d: Deadline): Promise<Kv | null> {
    const r = await this.call("put", d, (options) => this.etcd.kv.put({ key: buf(key), value: buf(value), lease, prev_kv: true }, options));
    return r.prev_kv ? toKv(r.prev_kv) : null;
  }

  /** Grants a lease of `ttlS` seconds; etcd may grant more (its minimum), never less. */
  async grant(ttlS: number, d: Deadline): Promise<{ id: string; ttlS: number }> {
    const r = await this.call("lease grant", d, (options) => this.etcd.leaseClient.leaseGrant({ TTL: ttlS }, options));
    return { id: r.ID, ttlS: Number(r.TTL) };
  }

  /**
   * Refreshes a lease to its granted TTL; returns that TTL, or 0 if the lease is gone. An expired
   * lease whose keys etcd has not yet deleted answers 0 once they are (etcd waits for the revoke).
   * It opens one keep-alive stream per call: callers renew every ttl/3, which is a few calls per
   * lease per TTL, far from the per-call stream storm etcd3's `keepaliveOnce()` invites.
   */
  async keepAliveOnce(lease: string, d: Deadline): Promise<number> {
    const stream = await this.call("keep-alive", d, () => this.etcd.leaseClient.leaseKeepAlive());
    stream.on("error", () => {}); // the rejection below reports it; this only keeps it from escaping
    const answer = new Promise<number>((resolve, reject) => {
      stream.on("data", (r) => resolve(Number(r.TTL)));
      stream.on("error", reject);
      stream.on("end", () => reject(new EtcdWatchLostError("keep-alive stream ended")));
      stream.write({ ID: lease });
    });
    try {
      return await this.call("keep-alive", d, () => answer);
    } finally {
      closeStream(stream);
    }
  }

  /** Remaining and granted TTL of a lease in whole seconds (remaining is truncated), or null if gone. */
  async timeToLive(lease: string, d: Deadline): Promise<{ ttlS: number; grantedS: number } | null> {
    return this.call("lease ttl", d, async (options) => {
      try {
        const r = await this.etcd.leaseClient.leaseTimeToLive({ ID: lease }, options);
        const ttlS = Number(r.TTL);
        return ttlS < 0 ? null : { ttlS, grantedS: Number(r.grantedTTL) };
      } catch (error) {
        if (isLeaseNotFound(error)) return null;
        throw error;
      }
    });
  }

  /** Revokes a lease, deleting its keys; a lease that is already gone is fine. */
  async revoke(lease: string, d: Deadline): Promise<void> {
    await this.call("lease revoke", d, async (options) => {
      try {
        await this.etcd.leaseClient.leaseRevoke({ ID: lease }, options);
      } catch (error) {
        if (!isLeaseNotFound(error)) throw error;
      }
    });
  }

  /**
   * Watches every key under `prefix`. Resolves once etcd has confirmed the watch (so a read made
   * after it misses nothing), with a function that stops it. `events()` runs on every change;
   * `lost()` at most once, when the stream breaks after it was established.
   */
  watchPrefix(prefix: string, on: WatchHandlers, d: Deadline): Promise<() => Promise<void>> {
    return this.watch(prefix, true, on, d);
  }

  /** Watches the one key `key`, as {@link watchPrefix} watches a prefix. */
  watchKey(key: string, on: WatchHandlers, d: Deadline): Promise<() => Promise<void>> {
    return this.watch(key, false, on, d);
  }

  private async watch(key: string, prefix: boolean, on: WatchHandlers, d: Deadline): Promise<() => Promise<void>> {
    const stream = await this.call("watch", d, () => this.etcd.watchClient.watch());
    let state: "creating" | "live" | "done" = "creating";
    const stop = async () => {
      state = "done";
      this.watches.delete(interrupt);
      closeStream(stream);
    };
    const interrupt = () => closeStream(stream);
    this.watches.add(interrupt);
    stream.on("error", () => {});
    const created = new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => {
        if (state === "done") return;
        const was = state;
        void stop();
        if (was === "creating") reject(error);
        else on.lost(mapEtcdError(error, this.where, this.o.password));
      };
      stream.on("data", (r) => {
        if (r.canceled) return fail(new EtcdWatchLostError(r.cancel_reason || "cancelled by etcd"));
        if (r.created && state === "creating") {
          state = "live";
          resolve();
        }
        if (r.events.length > 0 && state === "live") on.events();
      });
      stream.on("error", fail);
      stream.on("end", () => fail(new EtcdWatchLostError("stream ended")));
      stream.write({ create_request: rangeOf(key, prefix) });
    });
    try {
      await this.call("watch", d, () => created);
    } catch (error) {
      await stop();
      throw error;
    }
    return stop;
  }

  /** Breaks every live watch stream as a dropped connection would (for tests and drills). */
  interruptWatches(): void {
    for (const interrupt of [...this.watches]) interrupt();
  }

  /** Closes the connection; later calls fail with `StoreUnavailableError`. */
  close(): void {
    this.etcd.close();
  }

  /** Runs one client call under the deadline: as gRPC's deadline and as a timer of our own. */
  private async call<T>(what: string, d: Deadline, fn: (options: { deadline: number }) => Promise<T>): Promise<T> {
    const left = Math.floor(d.remainingMs());
    if (left <= 0) throw mapEtcdError(new EtcdDeadlineError(what, d.budgetMs), this.where, this.o.password);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EtcdDeadlineError(what, d.budgetMs)), left);
    });
    try {
      return await Promise.race([fn({ deadline: Date.now() + left }), expired]);
    } catch (error) {
      throw mapEtcdError(error, this.where, this.o.password);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Half-closes first so etcd3 does not count our own cancel as a host failure and reset the connection. */
function closeStream(stream: { end(): void; cancel(): void }): void {
  stream.end();
  stream.cancel();
}

/** The smallest key greater than every key that starts with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}

function rangeOf(key: string, prefix: boolean): { key: Buffer; range_end?: Buffer } {
  const k = buf(key);
  return prefix ? { key: k, range_end: prefixEnd(k) } : { key: k };
}

function toKv(kv: IKeyValue): Kv {
  return {
    key: kv.key.toString("utf8"),
    value: kv.value.toString("utf8"),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: String(kv.lease || "0"),
  };
}

function toCompare(c: Compare): ICompare {
  const eq = { key: buf(c.key), result: "Equal" } as const;
  if (c.target === "create") return { ...eq, target: "Create", create_revision: c.equals };
  if (c.target === "mod") return { ...eq, target: "Mod", mod_revision: c.equals };
  if (c.target === "version") return { ...eq, target: "Version", version: c.equals };
  if (c.target === "value") return { ...eq, target: "Value", value: buf(c.equals) };
  return { ...eq, target: "Lease", lease: c.equals };
}

function toOp(op: Op): IRequestOp {
  if ("put" in op) return { request_put: { key: buf(op.put.key), value: buf(op.put.value), lease: op.put.lease ?? "0" } };
  if ("range" in op) return { request_range: rangeOf(op.range, op.prefix ?? false) };
  return { request_delete_range: rangeOf(op.delete, op.prefix ?? false) };
}
