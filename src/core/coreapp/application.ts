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
  onDemote(shard: number, epoch: number): Promise<void> | void;
  handle(request: AppRequest): Promise<AppResponse> | AppResponse;
}

/** A request forwarded to the primary coreapp of `shard`, stamped with the epoch it was routed by. */
export type AppRequest = ForwardRequest;

/** The application's answer; `body` may be a string (sent as UTF-8) or bytes. */
export interface AppResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array | string;
}
