/**
 * Transport: messages between nodes. Master → coreapp heartbeats, webapp → coreapp forwarded API
 * requests, and operator commands to the primary master (switchover, admin).
 *
 * Every message is authenticated with the cluster secret and bound to its receiver's node id and
 * its position on an authenticated connection, so a message cannot be forged, redirected to
 * another node, or replayed; the receiver refuses such a message before any handler runs, and the
 * caller sees `AuthenticationError`. No wall clock takes part in authentication.
 */

import type { NodeRole } from "./liveness.js";

/** Where a node listens: its id (receivers reject messages addressed to another id) and `host:port`. */
export interface Peer {
  /** The node id the message is addressed to. */
  readonly id: string;
  /** `host:port` of its listener. */
  readonly address: string;
}

/** A master's heartbeat to a coreapp. */
export interface HeartbeatMessage {
  /** The sending master's node id. */
  readonly master: string;
  /**
   * Set by the primary master right after it wrote a shard-map entry that names this coreapp or
   * stops naming it, and on each probe of a switchover's new owner: read the map now and retry the
   * shard's lease now, instead of at the next poll. A store that only polls (MySQL, SQLite) would
   * otherwise add up to a poll interval on each side of a switchover. A hint only: the coreapp acts
   * on the map and the lease as the store returns them.
   */
  readonly mapChanged?: boolean;
}

/**
 * An assignment a coreapp has given up: its tenure at `shard`/`epoch` ended (the lease's deadline
 * passed, the store refused a renewal, the map moved away, `onPromote` failed). A coreapp acts at
 * most once per assignment, so it never serves that epoch again; only a new assignment (a new
 * epoch, written by the primary master) makes it serve the shard again.
 */
export interface EndedTenure {
  /** The shard of the assignment given up. */
  readonly shard: number;
  /** Its epoch. */
  readonly epoch: number;
  /** Why it ended, for logs and the history: short printable text. */
  readonly reason: string;
  /**
   * True when its application refused the promotion (`onPromote` threw). The primary master then
   * does not hand the shard straight back to it; after any other ending (a lapsed lease, a store
   * outage) it may, when no other standby exists.
   */
  readonly refused: boolean;
}

/** A coreapp's answer: what it is doing right now. */
export interface HeartbeatReply {
  /** The coreapp's node id. */
  readonly id: string;
  /** The shard it serves as primary, or null. */
  readonly shard: number | null;
  /** The epoch it serves that shard at, or null. */
  readonly epoch: number | null;
  /**
   * The last assignment it gave up, or null. The primary master replaces an owner at once when
   * the map still names it at exactly that assignment: the owner has said it will not serve it.
   * Absent in answers from SDK versions before this field existed (read as null).
   */
  readonly ended?: EndedTenure | null;
}

/** The most headers a forwarded request carries; its receiver refuses more. */
export const MAX_FORWARD_HEADERS = 256;

const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/**
 * True for what a forwarded request may carry as a method (`max` 32) or a header name (`max` 256):
 * an HTTP token (RFC 9110 §5.6.2) of 1 to `max` characters, as node:http accepts one. The sender
 * checks its requests with it; the receiver refuses any other.
 */
export function isForwardToken(value: string, max: 32 | 256): boolean {
  return value.length >= 1 && value.length <= max && TOKEN.test(value);
}

/** An API request forwarded by a webapp to the shard's primary coreapp, stamped with the epoch it expects. */
export interface ForwardRequest {
  /** The request's shard. */
  readonly shard: number;
  /** The epoch the webapp routed by; a coreapp serving another epoch refuses the request. */
  readonly epoch: number;
  /** The HTTP method. */
  readonly method: string;
  /** Path and query of the original request. */
  readonly path: string;
  /** The request headers that are forwarded (hop-by-hop headers are not). */
  readonly headers: Readonly<Record<string, string>>;
  /** The whole request body. */
  readonly body: Uint8Array;
}

/** The coreapp's answer to a forwarded request, passed back to the client. */
export interface ForwardResponse {
  /** The HTTP status. */
  readonly status: number;
  /** The response headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** The whole response body. */
  readonly body: Uint8Array;
}

/**
 * What a forward came to. `served`: the coreapp's application answered (any status, its own
 * headers untouched). `failed`: the application's handler threw; it ran, so the request must not
 * be sent again; `response` is the SDK's 500 answer. `not-serving`: the receiver is not the
 * primary of `shard` at `epoch` (demoted, not yet promoted, another epoch); nothing ran, so the
 * caller may send it to the current owner.
 */
export type ForwardResult =
  | {
      /** The application answered. */
      readonly outcome: "served";
      /** Its response, headers untouched. */
      readonly response: ForwardResponse;
    }
  | {
      /** The application's handler threw: it ran. */
      readonly outcome: "failed";
      /** The SDK's 500 answer (code 1500). */
      readonly response: ForwardResponse;
    }
  | {
      /** Not the primary of `shard` at `epoch`: nothing ran. */
      readonly outcome: "not-serving";
      /** The shard asked for. */
      readonly shard: number;
      /** The epoch asked for. */
      readonly epoch: number;
      /** The refusing coreapp's name, for messages. */
      readonly node: string;
    };

/** An operator command to the primary master. */
export interface SwitchoverCommand {
  /** The shard to move. */
  readonly shard: number;
  /** The coreapp node id or name to move the shard to; any healthy standby when absent. */
  readonly to?: string;
  /** Allows `to` to name a coreapp marked `nofailover`. */
  readonly force?: boolean;
}

/** The primary master's answer to a switchover command. */
export interface SwitchoverReply {
  /** True when the shard moved. */
  readonly ok: boolean;
  /** The shard. */
  readonly shard: number;
  /** The previous owner's node id, or null. */
  readonly from: string | null;
  /** The new owner's node id, or null. */
  readonly to: string | null;
  /** The shard's epoch after the command. */
  readonly epoch: number;
  /** On failure, why (e.g. 1017 Not Primary Master, no healthy standby). */
  readonly error?: {
    /** The model product's error code. */
    readonly code: number;
    /** What went wrong, for people. */
    readonly message: string;
  };
  /** Milliseconds from the map write to the new owner serving, as the master observed it. */
  readonly gapMs?: number;
}

/** A cluster setting's name in the config file's words (`unhealthy_interval`, …). */
export type SettingKey =
  "heartbeat_interval" | "unhealthy_interval" | "db_heartbeat_interval" | "db_unhealthy_interval" | "heartbeat_quorum" | "failsafe_max";

/**
 * An operator command to the primary master (other than a switchover): new settings (the given
 * keys, in ms or a count; the others unchanged), a pause of automatic failover for the whole
 * cluster (`shard` null) or one shard, its end, the end of a coreapp's hold-out, or the removal of
 * a node's record. `by` says who asked, for the history.
 */
export type AdminCommand =
  | {
      /** Change settings. */
      readonly op: "settings";
      /** The keys to change, in ms (a count for heartbeat_quorum); the others stay. */
      readonly settings: Readonly<Partial<Record<SettingKey, number>>>;
      /** Who asked. */
      readonly by: string;
    }
  | {
      /** Pause automatic failover. */
      readonly op: "pause";
      /** The shard, or null for the whole cluster. */
      readonly shard: number | null;
      /** Why, for status and the history. */
      readonly reason: string;
      /** How long until it ends by itself. */
      readonly durationMs: number;
      /** Who asked. */
      readonly by: string;
    }
  | {
      /** End a pause. */
      readonly op: "resume";
      /** The paused shard, or null for the cluster-wide pause. */
      readonly shard: number | null;
      /** Who asked. */
      readonly by: string;
    }
  | {
      /** Let a held-out coreapp be promoted again. */
      readonly op: "clear-hold";
      /** The coreapp's name. */
      readonly node: string;
      /** Who asked. */
      readonly by: string;
    }
  | {
      /**
       * Remove a node's liveness record at once (`multiconnect forget`). The primary master does
       * it, so that no promotion to that node is on its way while the record goes.
       */
      readonly op: "forget";
      /** The node's id, or a name only one record has. */
      readonly node: string;
      /** Remove it even when it is live (it registers again at its next beat). */
      readonly force: boolean;
      /** Who asked. */
      readonly by: string;
    };

/** The record a `forget` removed. */
export interface RemovedNode {
  /** Its node id. */
  readonly id: string;
  /** Its name from its configuration. */
  readonly name: string;
  /** Its role. */
  readonly role: NodeRole;
  /** How long the node had been silent, by the store's clock. */
  readonly silentMs: number;
}

/** The primary master's answer: the document's new version, or why not (1017 Not Primary Master, 400 invalid, …). */
export interface AdminReply {
  /** True when the command was carried out. */
  readonly ok: boolean;
  /** The cluster document's version after the change, when it changed the document. */
  readonly version?: number;
  /** The record a `forget` removed. */
  readonly removed?: RemovedNode;
  /** Why not. */
  readonly error?: {
    /**
     * 1017 Not Primary Master, 1011 the store did not answer the master (nothing was changed), or
     * an HTTP-like status (400 invalid, 404 nothing to resume, 409 refused).
     */
    readonly code: number;
    /** For people. */
    readonly message: string;
  };
}

/**
 * A supervisor's word to a master that a node's process has exited (kill -9, OOM kill, crash) and
 * that the leases it held were given back (docs/safety.md, "Crash failover"). The primary master
 * replaces the node as its shard's owner at once; a secondary master tries the master lease at once.
 * Safe to act on even if untrue: the next owner still has to take the shard's lease, which a live
 * owner holds until it lets go or it lapses (S4).
 */
export interface ExitNotice {
  /** The node id of the process that exited. */
  readonly node: string;
  /** Its role. */
  readonly role: "master" | "coreapp" | "webapp";
  /** How it ended, for logs and the history (e.g. "killed by SIGKILL"): short printable text. */
  readonly cause: string;
  /** The names of the leases the supervisor gave back for it (`master`, `shard/<n>`). */
  readonly released: readonly string[];
}

/** A master's answer to an exit notice. */
export interface ExitReply {
  /** True when the notice was recorded. */
  readonly ok: boolean;
}

/**
 * Failsafe (docs/safety.md, "Failsafe"): a primary coreapp that cannot renew its shard lease asks a
 * master to vouch for its assignment while the store is away.
 */
export interface FailsafeRequest {
  /** The shard the coreapp serves. */
  readonly shard: number;
  /** The epoch it serves it at. */
  readonly epoch: number;
}

/**
 * A master's answer to a `FailsafeRequest`. With `ok` it is a promise: this master cannot reach the
 * store, and it will not reassign the shard (while primary, or after becoming primary) until
 * `promiseMs` have passed from when it received the request.
 */
export interface FailsafeReply {
  /** True: a promise of `promiseMs`. False: no promise (`reason` says why). */
  readonly ok: boolean;
  /** With `ok`: how long the promise lasts, counted by the master from when it received the request. */
  readonly promiseMs?: number;
  /** Without `ok`: why not ("failsafe is off", "this master reaches the store", …), for logs. */
  readonly reason?: string;
}

/** What a listening node does with each kind of message. Absent handlers answer "not supported". */
export interface TransportHandlers {
  /** A coreapp answers a master's heartbeat. */
  heartbeat?(from: string, message: HeartbeatMessage): Promise<HeartbeatReply> | HeartbeatReply;
  /**
   * A coreapp serves a request a webapp forwarded. It awaits `started()` the moment it decides to
   * run the application's handler, and not before: `started()` resolves once the acknowledgement
   * is in the kernel's hands, so a caller whose connection closes without one knows nothing ran.
   * A request it will not run (another epoch) is answered `not-serving` without `started()`.
   */
  forward?(from: string, request: ForwardRequest, started: () => Promise<void>): Promise<ForwardResult>;
  /** The primary master moves a shard. */
  switchover?(from: string, command: SwitchoverCommand): Promise<SwitchoverReply>;
  /** An operator command for the primary master (settings, pause, resume, clear-hold). */
  admin?(from: string, command: AdminCommand): Promise<AdminReply>;
  /** A master learns that a node's process exited and its leases were given back. */
  exited?(from: string, notice: ExitNotice): Promise<ExitReply> | ExitReply;
  /** A master answers a primary coreapp's failsafe request (a promise, or why not). */
  failsafe?(from: string, request: FailsafeRequest): Promise<FailsafeReply> | FailsafeReply;
}

/** A running listener. */
export interface TransportServer {
  /** The port actually bound (useful when 0 was asked). */
  readonly port: number;
  /** Stops listening. */
  close(): Promise<void>;
}

/** Authenticated messages between nodes: heartbeats, forwarded requests, switchover commands. */
export interface Transport {
  /**
   * Sends a heartbeat and waits for the reply at most `timeoutMs`.
   * Throws `TransportUnavailableError` on refusal, reset or timeout, and `AuthenticationError`
   * when the receiver rejected the message.
   */
  heartbeat(to: Peer, message: HeartbeatMessage, timeoutMs: number): Promise<HeartbeatReply>;

  /**
   * Forwards an API request and returns what it came to (see {@link ForwardResult}). Throws as
   * `heartbeat()`; a `TransportUnavailableError` has `notDelivered` true when the receiver
   * certainly did not start the request (no connection, or the connection closed before the
   * receiver acknowledged it), so sending it elsewhere cannot run it twice. A receiver in the same
   * process (the in-process shortcut) is called directly.
   */
  forward(to: Peer, request: ForwardRequest, timeoutMs: number): Promise<ForwardResult>;

  /** Sends an operator command to a master. Throws as `heartbeat()`. */
  switchover(to: Peer, command: SwitchoverCommand, timeoutMs: number): Promise<SwitchoverReply>;

  /** Sends a settings, pause, resume or clear-hold command to a master. Throws as `heartbeat()`. */
  admin(to: Peer, command: AdminCommand, timeoutMs: number): Promise<AdminReply>;

  /** Tells a master that a node's process exited (sent by its supervisor). Throws as `heartbeat()`. */
  exited(to: Peer, notice: ExitNotice, timeoutMs: number): Promise<ExitReply>;
  /** Asks a master for a failsafe promise (coreapp → master). Throws as `heartbeat()`. */
  failsafe(to: Peer, request: FailsafeRequest, timeoutMs: number): Promise<FailsafeReply>;

  /** Starts accepting authenticated messages addressed to `self` on `port` (0: any free port). */
  listen(self: string, host: string, port: number, handlers: TransportHandlers): Promise<TransportServer>;

  /** Closes the connections to peers. */
  close(): Promise<void>;
}
