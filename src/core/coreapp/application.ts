import type { ForwardRequest } from "../ports/transport.js";

/**
 * What the application running on a coreapp gives the SDK. The SDK calls `onPromote` when this
 * coreapp becomes a shard's primary (open the exclusive upstream connection here, and pass `epoch`
 * upstream as a fencing token where the upstream accepts one), `handle` for each forwarded request
 * while it is primary, and `onDemote` when it must stop (close the upstream connection here; until
 * it returns, no other coreapp can be given the shard unless this one's lease lapses).
 */
export interface CoreappApplication {
  /**
   * `lost` aborts if this coreapp loses the shard's lease while `onPromote` is still running (its
   * confirmation deadline passed): stop opening the connection then — `onDemote` follows.
   */
  onPromote(shard: number, epoch: number, lost: AbortSignal): Promise<void> | void;
  /** This coreapp must stop serving `shard`: close the upstream connection before returning. */
  onDemote(shard: number, epoch: number): Promise<void> | void;
  /** Serves one request the webapp forwarded to this coreapp while it is the shard's primary. */
  handle(request: AppRequest): Promise<AppResponse> | AppResponse;
}

/** A request forwarded to the primary coreapp of `shard`, stamped with the epoch it was routed by. */
export type AppRequest = ForwardRequest;

/** The application's answer; `body` may be a string (sent as UTF-8) or bytes. */
export interface AppResponse {
  /** The HTTP status the client gets. */
  readonly status: number;
  /** Response headers the client gets (the SDK adds its own `x-multiconnect-*` ones). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The response body (none when absent). */
  readonly body?: Uint8Array | string;
}
