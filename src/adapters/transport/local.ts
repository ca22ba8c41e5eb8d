/**
 * The in-process shortcut: a webapp whose shard's owner is a coreapp in the same process (both
 * made with createWebapp / createCoreapp in one service, or `multiconnect dev`) calls the
 * coreapp's forward handler directly instead of over a socket. The handler is the same one the
 * network would reach, so the same epoch check decides whether the request runs; only the
 * authentication is skipped, because nothing crosses a process boundary. Listeners register here
 * under their node id and a tag of their cluster key, so a node of another cluster in the same
 * process (tests do that) is never reached this way.
 */
import { createHash } from "node:crypto";
import type { ForwardRequest, ForwardResult, TransportHandlers } from "../../core/ports/transport.js";
import { TransportUnavailableError } from "../../core/errors.js";

interface LocalListener {
  readonly keyTag: string;
  readonly handlers: TransportHandlers;
}

/** Listeners of this process by node id. Node ids are unique per process (name.randomhex). */
const listeners = new Map<string, LocalListener>();

/** A short public tag of a cluster key: a hash, so the key itself is not shared beyond its transport. */
export function keyTagOf(key: Buffer): string {
  return createHash("sha256").update("mc2 local\n").update(key).digest("base64url").slice(0, 22);
}

/** Makes `handlers` reachable in-process as `id`; returns the function that removes them again. */
export function registerLocal(keyTag: string, id: string, handlers: TransportHandlers): () => void {
  const entry = { keyTag, handlers };
  listeners.set(id, entry);
  return () => {
    if (listeners.get(id) === entry) listeners.delete(id);
  };
}

/**
 * Calls the forward handler of `to` when it listens in this process for the same cluster, else
 * returns undefined (use the network). A handler that throws before it started the request
 * rejects with `notDelivered` (nothing ran), after it with a plain unavailable error (in doubt);
 * one that has not answered within `timeoutMs` rejects as in doubt, as over the network.
 */
export function callLocal(
  keyTag: string,
  from: string,
  to: string,
  request: ForwardRequest,
  timeoutMs: number,
): Promise<ForwardResult> | undefined {
  const target = listeners.get(to);
  if (target?.keyTag !== keyTag || target.handlers.forward === undefined) return undefined;
  const handlers = target.handlers;
  let started = false;
  const start = (): Promise<void> => {
    started = true;
    return Promise.resolve();
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const message = `transport: forward to ${to} (in process): no answer within ${timeoutMs} ms`;
    timer = setTimeout(() => reject(new TransportUnavailableError(message)), timeoutMs);
  });
  const call = handlers.forward!(from, request, start).catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    throw new TransportUnavailableError(`transport: forward to ${to} (in process) failed: ${message}`, {
      cause: error,
      notDelivered: !started,
    });
  });
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}
