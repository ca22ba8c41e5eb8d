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
} as const;

/** Code of {@link API_ERRORS}.NOT_PRIMARY_MASTER. */
export const NOT_PRIMARY_MASTER = API_ERRORS.NOT_PRIMARY_MASTER.code;
/** Code of {@link API_ERRORS}.NOT_PRIMARY_COREAPP. */
export const NOT_PRIMARY_COREAPP = API_ERRORS.NOT_PRIMARY_COREAPP.code;
