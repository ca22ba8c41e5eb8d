/**
 * Item 1: failover time after `kill -9` of a shard's primary coreapp, from the kill to the first
 * request through the webapp that the new primary answers, split into where the time went.
 *
 * The split comes from stamps the nodes already write, all converted to CLOCK_MONOTONIC:
 *   kill ─detection→ map written ─notify→ new owner named ─lease→ lease acquired ─promote→ serving ─route→ client answered
 * - "map written": the primary master's `promoted` log line (pino, wall ms), after its compare-and-set;
 * - "new owner named": the coreapp's `named primary by the shard map` line (its watch delivered it);
 * - "lease acquired": the example app's `promote` event (onPromote runs right after the acquire);
 * - "serving": the coreapp's `promoted: serving as primary` line;
 * - "client answered": the bench's own client loop.
 */
import { deriveTiming, type Timing } from "../src/core/timing.js";
import { monoNow, randomDelay, sleep, wallMinusMono, wallToMono } from "./support/clock.js";
import type { BenchCluster } from "./support/cluster.js";
import { durationMs } from "./support/cluster.js";
import type { ClientLoop, Reply } from "./support/client-loop.js";
import type { PinoLine } from "./support/logs.js";
import type { SettingProfile } from "./support/profiles.js";
import { table, verdict, type Headline, type ItemReport } from "./support/report.js";
import { ms, num, spreadMs, summarize, type Summary } from "./support/stats.js";
import { capabilitiesOf, type Backend } from "./support/stores.js";

/** One failover, with its parts in ms (null where a stamp was missing). */
export interface FailoverRun {
  readonly totalMs: number;
  /** kill → the new primary's app handled the first request (event log; excludes the reply's way back). */
  readonly servedMs: number | null;
  readonly detectionMs: number | null;
  readonly notifyMs: number | null;
  readonly leaseWaitMs: number | null;
  readonly promotionMs: number | null;
  readonly routeMs: number | null;
  /** The primary master's stated reason, and the silence it saw when it decided. */
  readonly reason: string;
  readonly silenceMs: number | null;
  /** Client requests that failed between the kill and the first answer of the new primary. */
  readonly failed: number;
  readonly from: string;
  readonly to: string;
  /** The new assignment's epoch. */
  readonly epoch: number;
}

/** All failovers of one backend at one setting. */
export interface FailoverSession {
  readonly backend: Backend;
  readonly setting: SettingProfile;
  readonly timing: Timing;
  /** The product's own L1 bound (core/timing.ts), as the health API reports it. */
  readonly boundMs: number;
  readonly runs: FailoverRun[];
  /** Runs that did not complete, with why. */
  readonly errors: string[];
  /** Promotions nobody caused (no kill, no switchover): false failovers under this machine's load. */
  spurious: string[];
}

/** Derives the timing the nodes of this backend run with, as the composition root does. */
export async function timingFor(backend: Backend, setting: SettingProfile): Promise<Timing> {
  const s = setting.settings;
  return deriveTiming(
    {
      heartbeatIntervalMs: durationMs(s.heartbeat_interval),
      unhealthyIntervalMs: durationMs(s.unhealthy_interval),
      dbHeartbeatIntervalMs: durationMs(s.db_heartbeat_interval),
      dbUnhealthyIntervalMs: durationMs(s.db_unhealthy_interval),
    },
    await capabilitiesOf(backend),
  );
}

/**
 * How long to let a steady cluster settle before a fault: every master must have listed the newest
 * coreapp (one liveness period) and heard it answer a heartbeat (one heartbeat period).
 */
export function settleMs(t: Timing): number {
  return t.masterBeatIntervalMs + t.heartbeatIntervalMs + 100;
}

/**
 * One failover: waits for a steady cluster, waits a random fraction of the longest timer period
 * (so the kill lands at a random phase of heartbeats and renewals), kills the primary coreapp, waits
 * for the client loop's first answer from another coreapp, then starts a replacement coreapp so the
 * next run has three again.
 */
export async function measureFailover(c: BenchCluster, loop: ClientLoop, t: Timing): Promise<FailoverRun> {
  await c.waitSteady();
  await sleep(settleMs(t) + randomDelay(Math.max(t.heartbeatIntervalMs, t.renewIntervalMs)));
  const steady = await c.waitSteady();
  const shard = steady.shards[0]!;
  const owner = steady.nodes.find((n) => n.id === shard.owner)!;
  c.events.poll(); // forget the events before the kill
  loop.drain();
  const offset = wallMinusMono();
  const kill = c.kill9(owner.name);
  try {
    const first = await loop.waitFor((r) => r.ok && r.recv > kill.mono && r.node !== undefined && r.node !== owner.name, 30_000);
    if (!first) throw new Error(`no answer from a new primary within 30 s after killing ${owner.name}; logs in ${c.dir}`);
    return await analyse(c, kill, first, loop.drain(), owner.name, offset);
  } finally {
    c.spawnCoreapp(); // three coreapps again for the next run, whatever happened to this one
  }
}

async function analyse(
  c: BenchCluster,
  kill: { mono: number },
  first: Reply,
  replies: Reply[],
  from: string,
  offset: number,
): Promise<FailoverRun> {
  const to = first.node!;
  const epoch = first.epoch ?? -1;
  const newNode = c.node(to);
  const masters = c.nodes.filter((n) => n.role === "master");
  let promoted: PinoLine | undefined;
  let named: PinoLine | undefined;
  let serving: PinoLine | undefined;
  let promoteEvent: number | undefined;
  let firstRequest: number | undefined;
  // pino and the event log are written by other processes: give them a moment to reach the files.
  for (const end = monoNow() + 3000; monoNow() < end; await sleep(100)) {
    for (const m of masters) m.log.poll();
    newNode.log.poll();
    for (const e of c.events.poll()) {
      if (e.node !== to || e.epoch !== epoch) continue;
      if (e.type === "promote") promoteEvent ??= e.t;
      if (e.type === "request") firstRequest ??= e.t;
    }
    promoted ??= masters.flatMap((m) => m.log.lines).find((l) => l.msg === "promoted" && l["shard"] === 0 && l["epoch"] === epoch);
    named ??= newNode.log.lines.find((l) => l.msg === "named primary by the shard map" && l["epoch"] === epoch);
    serving ??= newNode.log.lines.find((l) => l.msg === "promoted: serving as primary" && l["epoch"] === epoch);
    if (promoted && named && serving && promoteEvent !== undefined && firstRequest !== undefined) break;
  }
  const T0 = kill.mono;
  const T1 = promoted ? wallToMono(promoted.time, offset) : null;
  const T2 = named ? wallToMono(named.time, offset) : null;
  const T3 = promoteEvent ?? null;
  const T4 = serving ? wallToMono(serving.time, offset) : null;
  const T6 = first.recv;
  const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : b - a);
  const reason = typeof promoted?.["reason"] === "string" ? (promoted["reason"] as string) : "(no promoted line found)";
  const silence = /silent (\d+) ms/.exec(reason);
  return {
    totalMs: T6 - T0,
    servedMs: firstRequest === undefined ? null : firstRequest - T0,
    detectionMs: diff(T0, T1),
    notifyMs: diff(T1, T2),
    leaseWaitMs: diff(T2, T3),
    promotionMs: diff(T3, T4),
    routeMs: diff(T4, T6),
    reason,
    silenceMs: silence ? Number(silence[1]) : null,
    failed: replies.filter((r) => !r.ok && r.recv > T0 && r.recv <= T6).length,
    from,
    to,
    epoch,
  };
}

/** The failover target of issue 5 for a setting: p99 ≤ 1.05 × unhealthy + 200 ms, or under 1 s when aggressive. */
export function failoverTargetMs(setting: SettingProfile): number {
  return setting.key === "aggressive" ? 1000 : 1.05 * durationMs(setting.settings.unhealthy_interval) + 200;
}

const col = (runs: FailoverRun[], f: (r: FailoverRun) => number | null): Summary | null =>
  summarize(runs.map(f).filter((x): x is number => x !== null));

/**
 * Why a session missed its target and what would close the gap, from its own breakdown: each part
 * is compared with what the design allows for it (see core/timing.ts).
 */
function whyMissed(s: FailoverSession, total: Summary, target: number): string {
  const t = s.timing;
  const p90 = (f: (r: FailoverRun) => number | null) => col(s.runs, f)?.p90 ?? 0;
  const over = `p99 ${ms(total.p99)} is ${ms(total.p99 - target)} over the target.`;
  if (s.backend === "etcd" && t.leaseTtlMs > t.unhealthyIntervalMs) {
    return (
      `${over} etcd grants no lease shorter than 2 s (whole seconds), so the killed owner's ownership lease is ${ms(t.leaseTtlMs)}, ` +
      `not ${ms(t.unhealthyIntervalMs)}: detection is done after ~${ms(p90((r) => r.detectionMs))} (p90) but the new owner then waits ` +
      `${ms(p90((r) => r.leaseWaitMs))} (p90) for the old lease to lapse, plus etcd's ~0.5 s expiry sweep. Nothing in the SDK can close this without ` +
      "giving up S4 (a promotion must wait for the previous owner's lease); sub-second failover needs a store with millisecond leases (Redis, PostgreSQL, MySQL, SQLite)."
    );
  }
  const causes: string[] = [];
  if (s.backend === "etcd" && p90((r) => r.detectionMs) > t.unhealthyIntervalMs + t.evaluateTickMs + 50) {
    causes.push(
      `detection (p90 ${ms(p90((r) => r.detectionMs))}) ran past unhealthy + one tick (${ms(t.unhealthyIntervalMs + t.evaluateTickMs)}) because etcd reports liveness ages in whole ` +
        "seconds, rounded down (it has no sub-second server time): the primary master ages a secondary master's published view by how long its own reads have " +
        "shown that beat (src/core/master/cluster-view.ts), which falls short by the time from the secondary's write to the primary's first read of it — up to " +
        `one master beat (${ms(t.masterBeatIntervalMs)}) for a record written before the primary began reading every tick. The product's own bound includes this ` +
        "(ageResolutionMs). Closing it further: watch the masters' records, so that each is seen within milliseconds of its write, or have secondary masters push " +
        "their verdict to the primary over the transport",
    );
  } else if (p90((r) => r.detectionMs) > t.unhealthyIntervalMs + t.evaluateTickMs + 50) {
    causes.push(
      `detection (p90 ${ms(p90((r) => r.detectionMs))}) ran past unhealthy + one tick (${ms(t.unhealthyIntervalMs + t.evaluateTickMs)}): the primary master evaluated late or ` +
        "a secondary master's published view lagged (it is read from its liveness record, refreshed every master beat) — on a loaded machine timers fire late",
    );
  }
  // Why a kill can leave the old owner's lease to outlive detection (both checks below use it).
  const leaseOutlives =
    `the lease lapses up to its TTL (${ms(t.leaseTtlMs)}, renewed every ${ms(t.renewIntervalMs)}) after its last renewal before the kill, ` +
    "while detection counts from the last answered heartbeat" +
    (s.backend === "etcd"
      ? `, and on etcd the TTL is rounded up to whole seconds (from ${ms(Math.min(t.unhealthyIntervalMs - t.heartbeatIntervalMs, t.dbUnhealthyIntervalMs))}) and an expired key goes in etcd's ` +
        "~0.5 s sweep. Rounded down instead, the lease would lapse before detection, and a renewal would have too little time on a slow " +
        "store link: the trade-off deriveTiming (src/core/timing.ts) decided"
      : "");
  if (p90((r) => r.leaseWaitMs) > t.heartbeatIntervalMs + t.handoverPollMs + 20) {
    causes.push(`the wait for the old owner's lease (p90 ${ms(p90((r) => r.leaseWaitMs))}) exceeded heartbeat + poll: ${leaseOutlives}`);
  }
  if (p90((r) => r.routeMs) > 60) {
    causes.push(
      `route + answer (p90 ${ms(p90((r) => r.routeMs))}): the webapp's held request sleeps in its retry backoff (up to 50 ms) and is not woken when the map changes; ` +
        "waking waiting forwards on the watch's delivery would cut this to the notification delay",
    );
  }
  if (p90((r) => r.notifyMs) > (s.backend === "mysql" ? 70 : 25))
    causes.push(`the store's change notification to the new owner was slow (p90 ${ms(p90((r) => r.notifyMs))})`);
  // The parts' p90s can all look ordinary while the few runs over the target share one long part.
  const late = s.runs.filter((r) => r.totalMs > target);
  const lateLeaseWait = Math.max(0, ...late.map((r) => r.leaseWaitMs ?? 0));
  if (causes.length === 0 && lateLeaseWait > t.heartbeatIntervalMs) {
    causes.push(
      `the ${late.length} run(s) over the target waited up to ${ms(lateLeaseWait)} for the old owner's lease (median of all runs ` +
        `${ms(col(s.runs, (r) => r.leaseWaitMs)?.median)}): ${leaseOutlives}`,
    );
  }
  return `${over} ${causes.length ? `Where it went: ${causes.join("; ")}.` : "No single part stands out: the tail is spread over the parts (see the breakdown)."}`;
}

/** The report section of item 1. */
export function failoverReport(sessions: FailoverSession[]): ItemReport {
  const headlines: Headline[] = [];
  const rows: string[][] = [];
  const split: string[][] = [];
  const notes: string[] = [];
  for (const s of sessions) {
    const total = col(s.runs, (r) => r.totalMs);
    const unhealthy = s.timing.unhealthyIntervalMs;
    const target = failoverTargetMs(s.setting);
    const etcdFloor = s.backend === "etcd" && s.setting.key === "aggressive";
    const met = total ? total.p99 <= target : false;
    rows.push([
      s.backend,
      s.setting.label,
      `${s.runs.length}${s.errors.length ? ` (+${s.errors.length} failed)` : ""}`,
      spreadMs(total),
      ms(total?.p99),
      total ? `${num(total.median / unhealthy, 2)} / ${num(total.p99 / unhealthy, 2)}` : "–",
      `p99 ≤ ${ms(target)}`,
      etcdFloor && !met ? "missed (store minimum, see below)" : verdict(met),
      ms(s.boundMs),
      String(s.runs.reduce((a, r) => a + r.failed, 0)),
      String(s.spurious.length),
    ]);
    headlines.push({
      item: "1 failover",
      figure: `${s.backend}, ${s.setting.label}: p99 (median)`,
      measured: `${ms(total?.p99)} (${ms(total?.median)})`,
      target: `≤ ${ms(target)}${etcdFloor ? " (etcd: store minimum)" : ""}`,
      met: total ? met : false,
    });
    const med = (f: (r: FailoverRun) => number | null) => {
      const x = col(s.runs, f);
      return x ? `${ms(x.median)} / ${ms(x.p90)}` : "–";
    };
    split.push([
      s.backend,
      s.setting.label,
      med((r) => r.detectionMs),
      med((r) => r.notifyMs),
      med((r) => r.leaseWaitMs),
      med((r) => r.promotionMs),
      med((r) => r.routeMs),
      med((r) => r.totalMs),
      ms(s.timing.leaseTtlMs),
    ]);
    if (total && !met) notes.push(`- ${s.backend} ${s.setting.label}: ${whyMissed(s, total, target)}`);
    for (const e of s.errors) notes.push(`- ${s.backend} ${s.setting.label}: run failed: ${e}`);
    for (const e of s.spurious) notes.push(`- ${s.backend} ${s.setting.label}: promotion without a fault: ${e}`);
  }
  const body = [
    "Kill -9 of the shard's primary coreapp → first request through the webapp answered by the new primary, measured by a",
    "client that keeps sending through the webapp (one request at a time, 10 ms apart; the webapp holds a request and retries",
    "it through the failover). 2 masters, 3 coreapps, 1 webapp, 1 shard, each a separate process started from the built CLI;",
    "after each kill a replacement coreapp is started and the cluster is left to settle, and each kill waits a random fraction",
    "of the longest timer period so that it lands at a random phase of heartbeats and lease renewals.",
    "",
    "Settings: **scaled defaults** = heartbeat 0.5 s, unhealthy 3 s, db_heartbeat 1 s, db_unhealthy 6 s (the store detector is",
    "kept behind the heartbeat detector, as with the product defaults 30 s / 120 s); **aggressive** = 0.1 s / 0.5 s with",
    "db 0.25 s / 1.5 s. Lease TTL = min(unhealthy − heartbeat, db_unhealthy), raised to the store's minimum (etcd: 2 s, whole seconds).",
    "",
    "Anchors: the model product fails over in about `unhealthy_interval` (ratio ≈ 1.0); Kubernetes leader election's worst",
    "case is ≈ 1.13 × its lease; Patroni's ≈ 1.33 × its ttl.",
    "",
    table(
      [
        "backend",
        "setting",
        "runs",
        "median (p10–p90, max)",
        "p99",
        "ratio to unhealthy (median / p99)",
        "target",
        "",
        "product bound (L1)",
        "failed requests",
        "false promotions",
      ],
      rows,
    ),
    "",
    "Where the time goes (median / p90 of each part; the parts add up to the total per run):",
    "",
    table(
      [
        "backend",
        "setting",
        "detection (kill → map written)",
        "notify new owner",
        "wait for old owner's lease",
        "promotion (acquired → serving)",
        "route + answer",
        "total",
        "lease TTL",
      ],
      split,
    ),
    "",
    "- *detection*: from the kill to the primary master's compare-and-set of the shard map (its `promoted` log line). The",
    "  heartbeat detector counts silence from the last answered heartbeat, which came up to one heartbeat interval *before*",
    "  the kill, so detection ≈ unhealthy − (0…heartbeat) + one evaluation tick.",
    "- *notify new owner*: the store's change notification (NOTIFY, pub/sub, etcd watch; a poll on SQLite and MySQL) to",
    "  the standby that was named.",
    "- *wait for old owner's lease*: the new owner's acquire of the shard's ownership lease, which succeeds only once the",
    "  killed owner's lease has lapsed by the store's clock (S4). The lease was last renewed up to ttl/3 before the kill",
    "  while detection counts from the last heartbeat, so the lease can outlive detection by up to one heartbeat interval",
    "  (and on etcd by its 2 s minimum and its ~0.5 s expiry sweep).",
    "- *promotion*: `onPromote` (the echo app only logs) until the coreapp serves.",
    "- *route + answer*: the webapp's retry loop reaching the new owner (it re-reads the map on each failed attempt and",
    "  backs off up to 50 ms between attempts) and the answer's way back to the client.",
    "- Parts that start or end at a pino log line (wall clock, whole ms) are exact to about ±1 ms, hence the occasional",
    "  negative sub-millisecond *promotion*.",
    "- *failed requests*: at most one per run is expected — the request in flight at the kill, whose connection the kill",
    "  reset; the webapp does not retry a request that may have run (by design), so the client gets a 503 for it.",
    "- *false promotions*: promotions with no kill or switchover behind them (a live primary judged silent), read from the",
    "  masters' logs.",
    ...(notes.length ? ["", "Notes:", ...notes] : []),
  ].join("\n");
  return { id: 1, title: "Failover time after kill -9 of the primary coreapp", headlines, body };
}
