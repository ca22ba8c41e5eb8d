/**
 * Replay protection without clocks: every sender numbers its messages 1, 2, 3, ... for the life of
 * its process (its id is unique per process, so numbering never restarts under the same id), and
 * each receiver remembers, per sender, the highest number accepted and which of the 1024 numbers
 * below it were seen. A number is accepted once; a number older than the window is refused.
 *
 * Messages sent over several pooled connections arrive slightly out of order, which the window
 * absorbs: a sender would need more than 1024 requests in flight to one receiver to lose one.
 */
import type { Clock } from "../../core/ports/clock.js";

/** How far below the highest accepted number a late message is still accepted (once). */
export const REPLAY_WINDOW = 1024;

/**
 * The bitmap is a ring of 32-bit words, one per block of 32 numbers. 33 words rather than 32 so
 * that every number in [highest - 1023, highest] has a word of its own even when `highest` sits at
 * the start of its block (the ring trick of RFC 6479, without its shortened window).
 */
const WORDS = REPLAY_WINDOW / 32 + 1;

/** One sender's accepted numbers. Costs ~150 bytes. */
export class SenderWindow {
  private highest = 0;
  private readonly bits = new Uint32Array(WORDS);
  /** Local monotonic time of the last accepted-or-refused authenticated message; for eviction only. */
  lastSeen = 0;
  /** When the table last moved this sender to its most-recent end. */
  movedAt = 0;

  /** True the first time `seq` (a positive safe integer) is offered; false when seen or too old. */
  accept(seq: number): boolean {
    if (seq > this.highest) {
      // Advancing clears the words of the blocks we move into: they still hold bits of numbers
      // one ring-turn older, which are now outside the window anyway.
      const from = Math.floor(this.highest / 32);
      const to = Math.floor(seq / 32);
      if (to - from >= WORDS) this.bits.fill(0);
      else for (let block = from + 1; block <= to; block++) this.bits[block % WORDS] = 0;
      this.highest = seq;
    } else if (this.highest - seq >= REPLAY_WINDOW) {
      return false;
    }
    const word = Math.floor(seq / 32) % WORDS;
    const mask = (1 << (seq & 31)) >>> 0;
    const current = this.bits[word] ?? 0;
    if ((current & mask) !== 0) return false;
    this.bits[word] = current | mask;
    return true;
  }
}

/** Limits of a {@link ReplayGuard}. */
export interface ReplayGuardOptions {
  /**
   * Most senders remembered at once (default 4096, ~1 MiB). When a new sender arrives at the cap,
   * the least recently seen one is forgotten. Hazard: a forgotten sender's recorded messages to this
   * receiver process would be accepted once more, so keep the cap far above the number of sender
   * processes one receiver sees in its lifetime (every node restart is a new sender id).
   */
  readonly maxSenders?: number;
  /**
   * A sender silent for this long is forgotten when a new sender arrives (default 24 h). Same hazard
   * as the cap: keep it longer than any quiet period of a live sender (a webapp at night).
   */
  readonly idleMs?: number;
  /** Monotonic time for idleness; never a wall clock. */
  readonly clock: Clock;
}

/** Re-inserting a sender on every message would keep exact recency; once a second is close enough. */
const RECENCY_GRANULARITY_MS = 1_000;

/**
 * The per-receiver table of sender windows, bounded in memory. Only messages whose signature has
 * already been verified may reach it: otherwise a forger could push windows forward or fill the table.
 */
export class ReplayGuard {
  private readonly senders = new Map<string, SenderWindow>();
  private readonly maxSenders: number;
  private readonly idleMs: number;
  private readonly clock: Clock;

  constructor(o: ReplayGuardOptions) {
    this.maxSenders = Math.max(1, o.maxSenders ?? 4096);
    this.idleMs = o.idleMs ?? 24 * 60 * 60 * 1000;
    this.clock = o.clock;
  }

  /** How many senders are remembered now. */
  get size(): number {
    return this.senders.size;
  }

  /** True the first time `sender` presents `seq`; false for a replay or a number older than the window. */
  accept(sender: string, seq: number): boolean {
    const now = this.clock.now();
    let window = this.senders.get(sender);
    if (window === undefined) {
      this.evict(now);
      window = new SenderWindow();
      window.movedAt = now;
      this.senders.set(sender, window);
    } else if (now - window.movedAt >= RECENCY_GRANULARITY_MS) {
      // Map iteration order is insertion order: moving the entry to the end keeps the map sorted
      // from least to most recently seen, so eviction only ever looks at the front. Timed from the
      // last move, not the last message, so a sender that never pauses is moved too.
      this.senders.delete(sender);
      this.senders.set(sender, window);
      window.movedAt = now;
    }
    window.lastSeen = now;
    return window.accept(seq);
  }

  /** Makes room for one new sender: drops the idle ones, then the least recently seen while at the cap. */
  private evict(now: number): void {
    for (const [sender, window] of this.senders) {
      const idle = now - window.lastSeen >= this.idleMs;
      if (!idle && this.senders.size < this.maxSenders) return;
      this.senders.delete(sender);
    }
  }
}
