import type { NodeTokens } from "../nodes/held-leases.js";
import type { TokensMessage } from "./supervisor.js";

/** A node that reports what it holds in the store (`Master`, `Coreapp`; a `Webapp` holds no lease). */
export interface TokenSource {
  /** What it holds now. */
  tokens(): NodeTokens;
  /** Fires on every change of what it holds. */
  on?(event: "tokens", listener: (tokens: NodeTokens) => void): unknown;
}

/**
 * The child side of crash supervision: sends the supervisor (see `takeSupervision`) the node's
 * tokens now and after every change, over the IPC channel (ordered, and read by the supervisor
 * before it handles the exit). A lease taken in the instant before a crash, whose message never
 * left, is simply not released early: it lapses at its expiry (the timeout path).
 *
 * If the supervisor dies, this process dies too (SIGKILL, as the watchdog's own kill would): a node
 * must never keep running unwatched, and nothing would release its leases after a crash.
 */
export function reportTokensToSupervisor(node: TokenSource): void {
  const send = (tokens: NodeTokens) => process.send?.({ type: "tokens", tokens } satisfies TokensMessage);
  send(node.tokens());
  node.on?.("tokens", send);
  process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
}
