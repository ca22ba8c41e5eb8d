/**
 * The error codes the SDK answers with, in the model product's numbering where it has one. Every
 * error body has the shape `{ "errors": [{ "code", "title", "details" }] }`. The table with HTTP
 * statuses and what to do is in docs/operations.md ("Error codes").
 */
export const API_ERRORS = {
  /** 401 / 403: the admin token is missing or wrong (or the admin API is not enabled). */
  ACCESS_DENIED: { code: 1005, title: "Access denied" },
  /** 404: a path the SDK reserves, but no such resource. */
  NOT_FOUND: { code: 1006, title: "Resource not found" },
  /** 503: the cluster's store cannot be reached; retry later. Not an overload. */
  STORE_UNAVAILABLE: { code: 1011, title: "Service not ready: store unavailable" },
  /** 503: this webapp already has `webapp.max_inflight_per_shard` requests in flight to the shard. */
  SYSTEM_OVERLOADED: { code: 1016, title: "System overloaded" },
  /** A master that does not hold the master lease was asked to do the primary master's work. */
  NOT_PRIMARY_MASTER: { code: 1017, title: "Not Primary Master" },
  /** 503: the shard has no serving primary coreapp (failover in progress past the retry window). */
  NOT_PRIMARY_COREAPP: { code: 1018, title: "Not Primary Coreapp" },
  /**
   * 502: the shard's primary acknowledged the request (its handler started) and the connection was
   * lost or the answer did not come within the attempt's deadline: it may have run, so it is not
   * sent again. The client decides (an idempotent request may be retried).
   */
  REQUEST_IN_DOUBT: { code: 1502, title: "Request outcome unknown" },
} as const;

/**
 * The error code of a 500 answered when the application's `handle()` threw. Outside the model
 * product's 10xx codes, so a client never mistakes it for 1018 (which means "nothing ran, retry").
 */
export const APP_ERROR_CODE = 1500;

/** Code of {@link API_ERRORS}.NOT_PRIMARY_MASTER. */
export const NOT_PRIMARY_MASTER = API_ERRORS.NOT_PRIMARY_MASTER.code;
/** Code of {@link API_ERRORS}.NOT_PRIMARY_COREAPP. */
export const NOT_PRIMARY_COREAPP = API_ERRORS.NOT_PRIMARY_COREAPP.code;
