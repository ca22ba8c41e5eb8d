/**
 * Item 6: peers on the same store, same fault, same run. Three candidates each; `kill -9` of the
 * leader; takeover = the kill → the first moment another candidate believes it leads.
 * - etcd: etcd3's own `Election` vs our master election on etcd, with the same lease TTL;
 * - Redis: redis-semaphore's `Mutex` (a leader on a Redis lock library) vs our master election on
 *   Redis, with the same TTL.
 * Peers append a CLOCK_MONOTONIC-stamped line every 5 ms while they believe they lead; our masters
 * log "became primary master" / "no longer primary master" (pino), and a killed one leads no more.
 * Two leaders at once = two processes' leadership intervals overlapping.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../src/config/load.js";
import { SystemClock } from "../src/core/clock.js";
import { MASTER_LEASE } from "../src/core/ports/leases.js";
import { openStore } from "../src/nodes/open-store.js";
import { monoNow, randomDelay, sleep, wallMinusMono, wallToMono } from "./support/clock.js";
import { spawnTs, stopChild, type TsChild } from "./support/child.js";
import { BenchCluster, type Settings } from "./support/cluster.js";
import type { BenchProfile } from "./support/profiles.js";
import { table, type Headline, type ItemReport } from "./support/report.js";
import { ms, spreadMs, summarize, type Summary } from "./support/stats.js";
import { deleteEtcdPrefix, deleteRedisKeys } from "../test/support/store-cleanup.js";
import { benchStore, namespace, SERVERS } from "./support/stores.js";

interface Interval {
  pid: string;
  from: number;
  to: number;
}

interface VariantResult {
  name: string;
  store: "etcd" | "redis";
  takeovers: number[];
  errors: string[];
  /** Overlapping leadership intervals of two processes, with how long they overlapped (ms). */
  overlaps: string[];
  /**
   * How far the wall clock stepped against the monotonic one during the variant (ms), when it did
   * (more than {@link CLOCK_STEP_MS}): our masters' log stamps are wall-clock, so leadership
   * intervals read from them cannot be placed across a step and the overlap check is not judged.
   */
  clockStepMs: number | null;
  note: string;
}

/** A change of wall minus monotonic time beyond this (ms) is a step of the wall clock, not noise. */
const CLOCK_STEP_MS = 20;

/** Leadership intervals from a peer's 5 ms log: consecutive lines of one pid less than 100 ms apart. */
function intervalsFromLog(file: string): Interval[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { t: number; pid: number })
    .sort((a, b) => a.t - b.t);
  const open = new Map<number, Interval>();
  const out: Interval[] = [];
  for (const l of lines) {
    const cur = open.get(l.pid);
    if (cur && l.t - cur.to < 100) cur.to = l.t;
    else {
      if (cur) out.push(cur);
      open.set(l.pid, { pid: String(l.pid), from: l.t, to: l.t });
    }
  }
  out.push(...open.values());
  return out;
}

function overlaps(intervals: Interval[]): string[] {
  const out: string[] = [];
  const s = [...intervals].sort((a, b) => a.from - b.from);
  for (let i = 0; i < s.length; i++) {
    for (let j = i + 1; j < s.length && s[j]!.from <= s[i]!.to; j++) {
      if (s[j]!.pid !== s[i]!.pid)
        out.push(`${s[i]!.pid} and ${s[j]!.pid} both led for ${(Math.min(s[i]!.to, s[j]!.to) - s[j]!.from).toFixed(1)} ms`);
    }
  }
  return out;
}

/** A peer library's leader election, candidates as separate processes. */
async function peerVariant(mode: "etcd" | "redis", p: BenchProfile, dir: string, say: (m: string) => void): Promise<VariantResult> {
  const ns = namespace();
  const key = mode === "etcd" ? `mc-bench/${ns}/election` : `mc-bench:${ns}:leader`;
  const log = join(dir, `peer-${mode}-${ns}.jsonl`);
  const args = JSON.stringify({ mode, ttlS: p.peers.ttlS, key, log, hosts: SERVERS.etcd, url: SERVERS.redis });
  const candidates: TsChild[] = [];
  const start = async () => {
    const c = spawnTs("peer-leader.ts", [args]);
    candidates.push(c);
    await c.ready;
    return c;
  };
  const result: VariantResult = {
    name: mode === "etcd" ? "etcd3 `Election`" : "redis-semaphore `Mutex`",
    store: mode,
    takeovers: [],
    errors: [],
    overlaps: [],
    clockStepMs: null,
    note:
      mode === "etcd"
        ? `lease TTL ${p.peers.ttlS} s, keep-alive every TTL/3 (the library's), new leader on the watch of the deleted key`
        : `lockTimeout ${p.peers.ttlS} s, refresh every 0.8 × lockTimeout (the library's default), retry every 10 ms`,
  };
  const lastLine = (): { t: number; pid: number } | null => {
    if (!existsSync(log)) return null;
    const lines = readFileSync(log, "utf8").trimEnd().split("\n");
    return lines.length && lines[lines.length - 1] ? (JSON.parse(lines[lines.length - 1]!) as { t: number; pid: number }) : null;
  };
  try {
    await Promise.all([start(), start(), start()]);
    for (let run = 0; run < p.peers.runs; run++) {
      try {
        // Steady: someone leads now (a line in the last 50 ms).
        let leader: { t: number; pid: number } | null = null;
        for (const end = monoNow() + 3 * p.peers.ttlS * 1000 + 5000; monoNow() < end; await sleep(20)) {
          leader = lastLine();
          if (leader && monoNow() - leader.t < 50) break;
        }
        if (!leader || monoNow() - leader.t >= 50) throw new Error("no leader");
        await sleep(randomDelay((p.peers.ttlS * 1000) / 3));
        const victim = candidates.find((c) => c.child.pid === lastLine()!.pid);
        if (!victim) throw new Error("the leader is not one of our candidates");
        const killedAt = monoNow();
        victim.child.kill("SIGKILL");
        let next: number | null = null;
        for (const end = killedAt + 3 * p.peers.ttlS * 1000 + 5000; monoNow() < end && next === null; await sleep(5)) {
          const l = lastLine();
          if (l && l.pid !== victim.child.pid && l.t > killedAt) next = l.t;
        }
        if (next === null) throw new Error("no new leader in 3 × TTL + 5 s");
        result.takeovers.push(next - killedAt);
        say(`peers ${mode} ${result.name}: takeover ${(next - killedAt).toFixed(0)} ms`);
        candidates.splice(candidates.indexOf(victim), 1);
        if (run < p.peers.runs - 1) await start();
      } catch (error) {
        result.errors.push(String((error as Error).message));
      }
    }
    result.overlaps = overlaps(intervalsFromLog(log));
    return result;
  } finally {
    for (const c of candidates) await stopChild(c);
    if (mode === "etcd") await deleteEtcdPrefix(SERVERS.etcd.split(","), `mc-bench/${ns}/`).catch(() => {});
    else await deleteRedisKeys(SERVERS.redis, "", `mc-bench:${ns}:*`).catch(() => {});
  }
}

/** Our master election: three masters of a cluster with no coreapps, the same lease TTL. */
async function oursVariant(backend: "etcd" | "redis", p: BenchProfile, dir: string, say: (m: string) => void): Promise<VariantResult> {
  const ttl = p.peers.ttlS;
  // unhealthy = ttl and db_unhealthy = 2 × ttl make the lease TTL (their minimum) exactly ttl.
  const settings: Settings = {
    heartbeat_interval: `${Math.round((ttl * 1000) / 6)}ms`,
    unhealthy_interval: `${ttl}s`,
    db_heartbeat_interval: `${Math.round((ttl * 1000) / 3)}ms`,
    db_unhealthy_interval: `${2 * ttl}s`,
  };
  const bs = benchStore(backend, dir);
  const cluster = new BenchCluster({ store: bs, settings, parentDir: dir, eventLog: false, masters: 3, coreapps: 0, webapp: false });
  const config = parseConfig({ cluster_name: "bench", secret: "benchmark-secret-0123456789abcdef", store: bs.section });
  const store = await openStore(config.store, new SystemClock());
  const result: VariantResult = {
    name: "multiconnect master election",
    store: backend,
    takeovers: [],
    errors: [],
    overlaps: [],
    clockStepMs: null,
    note: `lease TTL ${ttl} s, renewed every TTL/3; a standby retries when the store says the lease lapses (at most every TTL/3)`,
  };
  const offsets = [wallMinusMono()];
  try {
    await cluster.start();
    for (let run = 0; run < p.peers.runs; run++) {
      try {
        const holder = await cluster.waitFor(
          async () => (await store.leases.current(MASTER_LEASE).catch(() => null))?.holder ?? null,
          30_000,
        );
        const name = holder.split(".")[0]!;
        // Every candidate must be campaigning before the kill; then a random phase of the renewals.
        await cluster.waitFor(
          async () => (cluster.live("master").every((m) => readFileSync(m.logPath, "utf8").includes("started as master")) ? true : null),
          30_000,
        );
        await sleep(randomDelay((ttl * 1000) / 3));
        const offset = wallMinusMono();
        const kill = cluster.kill9(name);
        const became = await cluster.waitFor(
          async () => {
            for (const m of cluster.nodes.filter((n) => n.role === "master")) m.log.poll();
            const l = cluster.nodes
              .filter((n) => n.role === "master" && n.name !== name)
              .flatMap((n) => n.log.lines)
              .find((x) => x.msg === "became primary master" && x.time >= kill.wall);
            return l ?? null;
          },
          3 * ttl * 1000 + 5000,
          5,
        );
        const t = wallToMono(became.time, offset) - kill.mono;
        const step = wallMinusMono() - offset;
        offsets.push(offset + step);
        if (Math.abs(step) > CLOCK_STEP_MS) {
          // Seen once (2026-12-03): a 6029 ms "takeover" that took 2 s of monotonic time.
          result.errors.push(
            `the wall clock stepped by ${step.toFixed(0)} ms during the takeover (${t.toFixed(0)} ms by the log): not measured`,
          );
          say(`peers ${backend} ours: the wall clock stepped by ${step.toFixed(0)} ms during this takeover; not measured`);
        } else {
          result.takeovers.push(t);
          say(`peers ${backend} ours: takeover ${t.toFixed(0)} ms`);
        }
        if (run < p.peers.runs - 1) cluster.spawnNode("master");
      } catch (error) {
        result.errors.push(String((error as Error).message));
      }
    }
    // Tenures from the logs: "became" → "no longer" (or the kill); any overlap would be two leaders.
    const offset = wallMinusMono();
    offsets.push(offset);
    const stepMs = Math.max(...offsets) - Math.min(...offsets);
    if (stepMs > CLOCK_STEP_MS) {
      result.clockStepMs = stepMs;
      return result;
    }
    const intervals: Interval[] = [];
    for (const m of cluster.nodes.filter((n) => n.role === "master")) {
      m.log.poll();
      let from: number | null = null;
      for (const l of m.log.lines) {
        if (l.msg === "became primary master") from = wallToMono(l.time, offset);
        if (l.msg === "no longer primary master" && from !== null) {
          intervals.push({ pid: m.name, from, to: wallToMono(l.time, offset) });
          from = null;
        }
      }
      if (from !== null) intervals.push({ pid: m.name, from, to: m.killed?.mono ?? monoNow() });
    }
    result.overlaps = overlaps(intervals);
    return result;
  } finally {
    await cluster.stop();
    await store.close();
    await bs.cleanup().catch(() => {});
  }
}

/** The "two leaders at once" cell: never, yes (with the first overlaps), or not judged. */
function twoLeaders(r: VariantResult, detail: boolean): string {
  if (r.clockStepMs !== null) return `not judged: the wall clock stepped by ${r.clockStepMs.toFixed(0)} ms during the runs`;
  if (r.overlaps.length === 0) return "never";
  return detail ? `**yes**: ${r.overlaps.slice(0, 3).join("; ")}` : `yes (${r.overlaps.length})`;
}

/** Item 6. */
export async function peersItem(p: BenchProfile, dir: string, say: (m: string) => void): Promise<ItemReport> {
  const slots: (VariantResult | null)[] = [];
  const failures: string[] = [];
  const attempt = async (i: number, what: string, fn: () => Promise<VariantResult>) => {
    try {
      slots[i] = await fn();
    } catch (error) {
      failures.push(`- ${what}: ${String((error as Error).message)}`);
    }
  };
  const variants: [string, () => Promise<VariantResult>][] = [
    ["etcd3 Election", () => peerVariant("etcd", p, dir, say)],
    ["ours on etcd", () => oursVariant("etcd", p, dir, say)],
    ["redis-semaphore Mutex", () => peerVariant("redis", p, dir, say)],
    ["ours on Redis", () => oursVariant("redis", p, dir, say)],
  ];
  // The smoke profile only proves that each variant still works: all four at once, to stay within a minute.
  if (p.name === "smoke") await Promise.all(variants.map(([what, fn], i) => attempt(i, what, fn)));
  else for (const [i, [what, fn]] of variants.entries()) await attempt(i, what, fn);
  const results = slots.filter((r): r is VariantResult => !!r);
  const sum = (r: VariantResult): Summary | null => summarize(r.takeovers);
  const headlines: Headline[] = results.map((r) => ({
    item: "6 peers",
    figure: `${r.store}: ${r.name} takeover median (max); two leaders at once`,
    measured: `${ms(sum(r)?.median)} (${ms(sum(r)?.max)}); ${twoLeaders(r, false)}`,
    target: "context (no target)",
    met: null,
  }));
  const rows = results.map((r) => [
    r.store,
    r.name,
    String(r.takeovers.length),
    spreadMs(sum(r)),
    sum(r) ? `${(sum(r)!.median / (p.peers.ttlS * 1000)).toFixed(2)}` : "–",
    twoLeaders(r, true),
    r.note,
  ]);
  const notes = results.flatMap((r) => r.errors.map((e) => `- ${r.store} ${r.name}: a run failed: ${e}`));
  const body = [
    `Three candidates per variant, each a separate process; ${p.peers.runs} kill -9 of the leader each (a replacement candidate is started`,
    `after each kill), at a random phase of the renewals. Lease TTL ${p.peers.ttlS} s everywhere. Takeover = kill → the first moment another`,
    "candidate believes it leads (peers: its first log line; ours: its `became primary master` log line).",
    "",
    table(["store", "leader", "runs", "takeover: median (p10–p90, max)", "median / TTL", "two leaders at once", "how it works"], rows),
    "",
    "Why the figures differ: a takeover waits for the dead leader's lease to lapse, i.e. the TTL minus the time since its",
    "last renewal — so the renewal period sets the spread (etcd3 and ours renew every TTL/3: takeover in [2/3, 1] × TTL;",
    "redis-semaphore refreshes at 0.8 × TTL: takeover in [0.2, 1] × TTL, faster on average but leaving a live leader only",
    "0.2 × TTL of slack before a slow refresh loses the lock) — plus how the standby learns the lease is free: etcd3's",
    "campaign watches the key (etcd deletes expired keys in ~0.5 s sweeps); redis-semaphore retries every 10 ms; our master",
    "retries when the store says the holder's lease lapses, at most every TTL/3 (etcd reports the remaining TTL in whole",
    "seconds, which can cost up to a second there). None of the peers keeps a local deadline: a paused or partitioned peer",
    "leader believes it leads until its next renewal fails, which kill -9 does not exercise (our chaos suite does).",
    ...(notes.length || failures.length ? ["", "Notes:", ...notes, ...failures] : []),
  ].join("\n");
  return { id: 6, title: "Peers: leader takeover after kill -9, same store, same TTL", headlines, body };
}
