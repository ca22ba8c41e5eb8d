/**
 * Which healthy standby the primary master promotes, when it has a choice. Health decides who may
 * be promoted at all (`ShardManager`); placement only orders the healthy ones:
 *
 * 1. `nofailover` coreapps are never promoted automatically (an operator may still switch a shard
 *    to one, with `force`);
 * 2. a coreapp that was recently replaced for being unhealthy is cooling down for
 *    `2 × unhealthy_interval`, and one replaced `HOLD_AFTER_REPLACEMENTS` times within
 *    `HOLD_WINDOW_MS` is held out until an operator clears it (or switches a shard to it). Both are
 *    last resorts, not exclusions: a shard is never left without a primary while a healthy standby
 *    that may be promoted exists;
 * 3. then higher `priority` first; then the one that answered heartbeats most recently; then by id,
 *    so that every master would choose the same.
 *
 * The memory of replacements is the primary master's own and is keyed by node *name*, which a
 * restarted process keeps (ids are per process): a node that crashes after every promotion is
 * caught too. A new primary master starts with an empty memory; that only makes it less cautious.
 */

/** A coreapp's placement preferences, from its config (`node.priority`, `node.nofailover`). */
export interface Placement {
  /** Higher is preferred (default 0). */
  readonly priority: number;
  /** Never promoted automatically (default false). */
  readonly nofailover: boolean;
}

export const DEFAULT_PLACEMENT: Placement = { priority: 0, nofailover: false };

/** A healthy standby as placement sees it. */
export interface StandbyCandidate extends Placement {
  readonly id: string;
  readonly name: string;
  /** Milliseconds since it last answered the primary master. */
  readonly silenceMs: number;
}

/** How many replacements within `HOLD_WINDOW_MS` hold a coreapp out until an operator clears it. */
export const HOLD_AFTER_REPLACEMENTS = 3;
/** The window in which replacements are counted for the hold-out: one hour. */
export const HOLD_WINDOW_MS = 3_600_000;

/** Reads a coreapp's placement from its liveness record's meta (absent or malformed: the default). */
export function placementOf(meta: Readonly<Record<string, unknown>>): Placement {
  const priority = meta["priority"];
  return {
    priority: typeof priority === "number" && Number.isFinite(priority) ? priority : DEFAULT_PLACEMENT.priority,
    nofailover: meta["nofailover"] === true,
  };
}

/** The primary master's memory of which coreapps it replaced for being unhealthy, and when. */
export class ReplacementMemory {
  private readonly replacedAt = new Map<string, number[]>();
  private readonly cleared = new Map<string, number>();

  /** Records that the coreapp named `name` was replaced for being unhealthy at `now`; true if that holds it out now. */
  replaced(name: string, now: number): boolean {
    const was = this.heldOut(name, now);
    const recent = (this.replacedAt.get(name) ?? []).filter((t) => now - t < HOLD_WINDOW_MS);
    recent.push(now);
    this.replacedAt.set(name, recent);
    return !was && this.heldOut(name, now);
  }

  /** True if `name` has replacements on record (so a hold-out can be cleared). */
  knows(name: string): boolean {
    return this.replacedAt.has(name);
  }

  /** Forgets the hold-out of `name` (an operator's decision); the cooldown of its last replacement stays. */
  clear(name: string, now: number): void {
    this.cleared.set(name, now);
  }

  /** True while `name` is within `cooldownMs` of its last replacement. */
  cooling(name: string, now: number, cooldownMs: number): boolean {
    const last = this.replacedAt.get(name)?.at(-1);
    return last !== undefined && now - last < cooldownMs;
  }

  /** True if `name` was replaced `HOLD_AFTER_REPLACEMENTS` times within the window since it was last cleared. */
  heldOut(name: string, now: number): boolean {
    const since = this.cleared.get(name) ?? -Infinity;
    const counted = (this.replacedAt.get(name) ?? []).filter((t) => t > since && now - t < HOLD_WINDOW_MS);
    return counted.length >= HOLD_AFTER_REPLACEMENTS;
  }

  /** Names currently held out, for status and health. */
  heldOutNames(now: number): string[] {
    return [...this.replacedAt.keys()].filter((name) => this.heldOut(name, now)).sort();
  }
}

/**
 * The standby to promote among healthy `candidates`, by the rules above; null if none may be.
 * `cooldownMs` is 2 × `unhealthy_interval`.
 */
export function chooseStandby(
  candidates: readonly StandbyCandidate[],
  memory: ReplacementMemory,
  now: number,
  cooldownMs: number,
): StandbyCandidate | null {
  const rank = (c: StandbyCandidate) => (memory.heldOut(c.name, now) ? 2 : memory.cooling(c.name, now, cooldownMs) ? 1 : 0);
  const eligible = candidates.filter((c) => !c.nofailover);
  eligible.sort((a, b) => rank(a) - rank(b) || b.priority - a.priority || a.silenceMs - b.silenceMs || a.id.localeCompare(b.id));
  return eligible[0] ?? null;
}
