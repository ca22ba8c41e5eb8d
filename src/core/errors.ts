/**
 * The SDK's errors. Every error has a stable string `code` and may carry the underlying `cause`.
 * Losing a race is never an error: ports return it as a value (`{ acquired: false, ... }`).
 */
export class MulticonnectError extends Error {
  /** A stable, machine-readable name for the failure, e.g. `"store_unavailable"`. */
  readonly code: string;
  /** True when the same call may succeed if tried again later. */
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/**
 * The store could not be reached or did not answer within its operation timeout. Retryable.
 * Callers must treat the outcome of the operation as unknown, and "unknown" as "not the owner".
 * The message names the backend and host, never a password.
 */
export class StoreUnavailableError extends MulticonnectError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("store_unavailable", message, { ...options, retryable: true });
  }
}

/** The store refused us for a reason that retrying will not fix (bad credentials, missing database). */
export class StoreConfigurationError extends MulticonnectError {
  constructor(message: string, options: { cause?: unknown; code?: string } = {}) {
    super(options.code ?? "store_misconfigured", message, { cause: options.cause });
  }
}

/**
 * The store holds a schema written by a newer SDK than this one. Nothing was written: an older node
 * must never act on rows whose meaning it does not know. Upgrade this node (see docs/operations.md).
 */
export class SchemaTooNewError extends StoreConfigurationError {
  /** The version the store records. */
  readonly found: number;
  /** The newest version this SDK knows. */
  readonly supported: number;
  constructor(where: string, found: number, supported: number) {
    super(
      `${where}: the store's schema version is ${found}, newer than this SDK's ${supported}; ` +
        "upgrade this node to an SDK that knows schema " +
        found +
        " (see docs/operations.md, rolling upgrade)",
      { code: "schema_too_new" },
    );
    this.found = found;
    this.supported = supported;
  }
}

/** A configuration value is missing, malformed or unsafe. `key` is the dotted path of the offending key. */
export class ConfigError extends MulticonnectError {
  /** The dotted path of the offending key, e.g. `store.url`. */
  readonly key: string;
  constructor(key: string, problem: string) {
    super("config_invalid", `config: ${key}: ${problem}`);
    this.key = key;
  }
}

/** A message between nodes failed authentication (bad signature, wrong receiver, replayed). */
export class AuthenticationError extends MulticonnectError {
  /**
   * True when the receiver refused the message before running any handler, so sending it again
   * cannot make it run twice. False when it was the *reply* that failed authentication: the
   * receiver may have acted on the message.
   */
  readonly refusedByReceiver: boolean;
  constructor(message: string, options: { refusedByReceiver?: boolean } = {}) {
    super("unauthenticated", `transport: ${message}`);
    this.refusedByReceiver = options.refusedByReceiver ?? false;
  }
}

/** A node could not be reached over the transport, or did not answer in time. Retryable. */
export class TransportUnavailableError extends MulticonnectError {
  /**
   * True when the message certainly did not run at the receiver: the connection was refused or
   * could not be opened, the handshake failed, or (a forward) the receiver closed the connection
   * before acknowledging the request. Sending it again cannot make it run twice.
   */
  readonly notDelivered: boolean;
  constructor(message: string, options: { cause?: unknown; notDelivered?: boolean } = {}) {
    super("transport_unavailable", message, { cause: options.cause, retryable: true });
    this.notDelivered = options.notDelivered ?? false;
  }
}

/**
 * The stored cluster document is malformed or its settings fail validation, or a document offered
 * for writing is. Not retryable: the primary master must write a valid document (from its config
 * file's values) to repair it. The message names the version and the offending key.
 */
export class ClusterDocumentError extends MulticonnectError {
  constructor(message: string) {
    super("cluster_document_invalid", `cluster document: ${message}`);
  }
}

/**
 * `Webapp.request()` got no answer from the shard's owner. `status` and `apiCode` are what the
 * webapp's HTTP listener answers for the same request (docs/operations.md, "Error codes"), so a host
 * service can pass them on as they are. `retryable`: nothing ran and a later attempt may succeed
 * (1016 overloaded, 1018 no primary coreapp). `mayHaveRun`: the owner acknowledged the request and
 * its answer was lost (1502): sending it again may run it twice.
 */
export class WebappRequestError extends MulticonnectError {
  /** The HTTP status the webapp's listener answers in this case (400, 413, 431, 502, 503). */
  readonly status: number;
  /** The error code in the answer's body (400, 413, 431, 1016, 1018, 1502). */
  readonly apiCode: number;
  /** The code's title, e.g. "Not Primary Coreapp". */
  readonly title: string;
  /** What happened, e.g. which shard has no primary; never a secret. */
  readonly details: string;
  /** True only when the owner started the request and its outcome is unknown. */
  readonly mayHaveRun: boolean;
  constructor(e: { status: number; apiCode: number; title: string; details: string; retryable?: boolean; mayHaveRun?: boolean }) {
    super(
      e.mayHaveRun ? "request_in_doubt" : e.retryable ? "not_served" : "request_refused",
      `webapp: ${e.title} (${e.apiCode}): ${e.details}`,
      {
        retryable: e.retryable ?? false,
      },
    );
    this.status = e.status;
    this.apiCode = e.apiCode;
    this.title = e.title;
    this.details = e.details;
    this.mayHaveRun = e.mayHaveRun ?? false;
  }
}
