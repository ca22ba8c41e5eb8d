import { StoreConfigurationError, StoreUnavailableError } from "../../core/errors.js";

/**
 * The one place that looks at the etcd client's and gRPC's errors and turns them into ours.
 *
 * `client.ts` is the only file that imports `etcd3`, so errors are recognised here by the class
 * names etcd3 gives them (it casts every gRPC status to a class named after it) and, for the raw
 * gRPC errors that streams emit, by their numeric status code. Messages name "etcd" and the hosts,
 * never a password. Anything that is not recognisably a client or server error (a bug in this
 * adapter, a TypeError) is passed through unchanged, so it is not mistaken for an outage.
 */

/** A client-side deadline ran out before etcd answered (the etcd3 client itself may retry or hang). */
export class EtcdDeadlineError extends Error {
  constructor(what: string, budgetMs: number) {
    super(`${what}: no answer within ${budgetMs} ms`);
    this.name = "EtcdDeadlineError";
  }
}

/** A watch stream ended or was cancelled by the server while we were still watching. */
export class EtcdWatchLostError extends Error {
  constructor(reason: string) {
    super(`watch lost: ${reason}`);
    this.name = "EtcdWatchLostError";
  }
}

/** Network, overload and leader-election failures: the same call may succeed later. */
const UNAVAILABLE = new Set([
  "GRPCUnavailableError",
  "GRPCDeadlineExceededError",
  "GRPCCancelledError",
  "GRPCInternalError",
  "GRPCUnknownError",
  "GRPCResourceExhastedError", // sic: etcd3's spelling
  "GRPCAbortedError",
  "GRPCGenericError",
  "GRPCProtocolError",
  "ClientRuntimeError",
  "ClientClosedError",
  "EtcdError", // "etcdserver: no leader", "too many requests", "request timed out", …
  "EtcdWatchStreamEnded",
  "EtcdDeadlineError",
  "EtcdWatchLostError",
]);

/** Refusals that retrying will not fix: credentials, permissions, a server that is not etcd v3. */
const MISCONFIGURED = new Set([
  "EtcdAuthenticationFailedError",
  "EtcdInvalidAuthTokenError",
  "EtcdPermissionDeniedError",
  "GRPCUnauthenticatedError",
  "GRPCNotImplementedError",
  "GRPCInvalidArgumentError",
  "GRPCFailedPreconditionError",
]);

/** gRPC status codes of raw (uncast) errors, as streams emit them. */
const UNAVAILABLE_CODES = new Set([1, 2, 4, 8, 10, 13, 14]);
const MISCONFIGURED_CODES = new Set([3, 7, 9, 12, 16]);

/**
 * gRPC's text for a TLS handshake that failed (it keeps no error code): an untrusted, misnamed or
 * expired certificate on either side, or a server that does not speak TLS.
 */
const TLS_FAILURE = /No connection established\. Last error: .*(certificate|SSL routines|wrong version number|altnames)/i;

const className = (error: object): string => (error.constructor as { name?: string } | undefined)?.name ?? "";

/**
 * Maps anything the etcd client threw to `StoreUnavailableError` / `StoreConfigurationError`. The
 * client's text is copied into the message with `password` (the store's, when it has one) taken
 * out, whatever put it there; an error whose text held it is not kept as the cause either.
 */
export function mapEtcdError(error: unknown, where: string, password?: string): Error {
  if (error instanceof StoreUnavailableError || error instanceof StoreConfigurationError) return error;
  const hide = (text: string) => (password ? text.split(password).join("***") : text);
  if (!(error instanceof Error)) return new StoreUnavailableError(`${where}: ${hide(String(error))}`);
  const name = className(error);
  const code = (error as { code?: unknown }).code;
  const detail = hide(oneLine(error.message));
  const cause = password && `${error.message}${error.stack ?? ""}`.includes(password) ? scrubbedCopy(error, hide) : error;
  if (MISCONFIGURED.has(name) || (name === "Error" && typeof code === "number" && MISCONFIGURED_CODES.has(code))) {
    return new StoreConfigurationError(`${where}: refused: ${detail}`, { cause });
  }
  if (TLS_FAILURE.test(detail) && (name === "GRPCUnavailableError" || code === 14)) {
    // gRPC reports a failed handshake as UNAVAILABLE and would retry it forever; only a change of
    // certificates or CA fixes it.
    return new StoreConfigurationError(`${where}: TLS handshake failed: ${detail}`, { cause });
  }
  if (UNAVAILABLE.has(name) || (typeof code === "number" && UNAVAILABLE_CODES.has(code))) {
    return new StoreUnavailableError(`${where}: unavailable: ${detail}`, { cause });
  }
  // Any other error of the client's own (a class it names Etcd… or GRPC…) is still the store's
  // doing, not ours: report it as an outage, whose outcome is unknown, rather than leak it untyped.
  if (/^(Etcd|GRPC)/.test(name)) return new StoreUnavailableError(`${where}: ${name}: ${detail}`, { cause });
  return cause;
}

/** True when etcd says a lease does not exist (expired, revoked, or never granted). */
export function isLeaseNotFound(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return className(error) === "EtcdLeaseInvalidError" || error.message.includes("requested lease not found");
}

/**
 * True when a call never reached a server (connection refused, no connection established), so it
 * cannot have been applied and another host may be tried. A reset or a deadline does not qualify.
 */
export function isUnreachable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const unavailable = className(error) === "GRPCUnavailableError" || (error as { code?: unknown }).code === 14;
  return unavailable && /No connection established|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH/.test(error.message);
}

/** "etcd (host1,host2)": how messages name the store; strips any `user:password@` from the URLs. */
export function describeHosts(hosts: readonly string[]): string {
  const bare = hosts.map((h) => h.replace(/^[a-z]+:\/\//i, "").replace(/^[^@/]*@/, ""));
  return `etcd (${bare.join(",")})`;
}

/** `error` as a plain error of the same name and code, with `hide` applied to its message. */
function scrubbedCopy(error: Error, hide: (text: string) => string): Error {
  const copy = new Error(hide(error.message));
  copy.name = error.name;
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) (copy as Error & { code?: unknown }).code = code;
  return copy;
}

/** gRPC messages can span lines and repeat the status; keep the first line. */
function oneLine(message: string): string {
  return message.split("\n")[0]!.trim();
}
