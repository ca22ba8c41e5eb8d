/**
 * Item 3: what the webapp's forwarding costs on the hot path. The same load (POST of a small body,
 * keep-alive; autocannon at 50 connections, a self-timed sequential loop at 1) against:
 * - **direct**: a plain node:http server running the example app's echo handler (a coreapp's own
 *   listener accepts only authenticated transport messages, so this is "straight to a coreapp");
 * - **webapp**: client → webapp → (the framed node-to-node transport) → coreapp running that same handler;
 * - **embedded**: a webapp, its shard's owner (that same handler) and a master in one process, the
 *   webapp reaching the coreapp through the in-process shortcut (no socket);
 * - **caller**: a Node process that calls the cluster itself through a webapp embedded in it
 *   (`webapp.request()`): client → coreapp over the framed transport, no HTTP hop; measured by
 *   that process against **caller-direct**, the same loop in the same process sending HTTP to the
 *   plain server (routing-client.ts);
 * - the anchors, in front of the same plain server: **nginx** (one worker, upstream keep-alive) and
 *   **http-proxy** (a Node proxy library); and **node-pipe**, a Node process copying bytes both
 *   ways (no HTTP, no authentication): the least a hop through a Node process costs.
 * Targets are alternated round by round, at 1 and at 50 connections, in one run. Besides req/s and
 * latency, each run records the CPU time every process spent per request (client, proxy, server),
 * which on 2 cores is what bounds throughput; the full profile also CPU-profiles the webapp and the
 * coreapp under load and reports where their time goes.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import autocannon from "autocannon";
import { Pool } from "undici";
import { monoNow, sleep } from "./support/clock.js";
import { spawnTs, stopChild, tell, treeCpuMs, type TsChild } from "./support/child.js";
import { BenchCluster } from "./support/cluster.js";
import { summarizeProfile, type ProfileSummary } from "./support/cpu-profile.js";
import { findNginx, startNginx, type Nginx } from "./support/nginx.js";
import type { BenchProfile } from "./support/profiles.js";
import { table, verdict, type Headline, type ItemReport } from "./support/report.js";
import { median, num, summarize } from "./support/stats.js";
import { benchStore } from "./support/stores.js";

/**
 * Issue 12's targets: the webapp keeps at least this share of direct throughput at 50 connections,
 * and adds at most this much p50 latency at one connection (nginx, in the same run, is the anchor).
 */
const TARGET_RATIO = 0.6;
const TARGET_ADDED_US = 100;

/** The anchors' figures from earlier runs on this machine, shown beside this run's. */
const ANCHORS = {
  nginx: { ratio: "0.71–0.76", added: "~55 µs" },
  "http-proxy": { ratio: "0.17–0.23", added: "230–310 µs" },
} as const;

/** Settings of the cluster behind the webapp: quiet background (the store is not on the hot path). */
const QUIET = { heartbeat_interval: "1s", unhealthy_interval: "6s", db_heartbeat_interval: "2s", db_unhealthy_interval: "12s" };

type TargetKey = "direct" | "webapp" | "embedded" | "caller" | "caller-direct" | "nginx" | "http-proxy" | "node-pipe";

/** The target whose figures a target's ratio and added latency are taken against, within a round. */
function baselineOf(k: TargetKey): TargetKey {
  return k === "caller" ? "caller-direct" : "direct";
}

/**
 * A target's throughput ratio and added p50 latency against its baseline, at `c` connections:
 * taken round by round (targets alternate, so each pair ran minutes apart at most), then the median.
 */
function againstBaseline(get: (k: TargetKey, c: number) => LoadRun[]) {
  const paired = (k: TargetKey, c: number, f: (r: LoadRun, base: LoadRun | undefined) => number) =>
    median(get(k, c).map((r, i) => f(r, get(baselineOf(k), c)[i])));
  return {
    ratio: (k: TargetKey, c: number) => paired(k, c, (r, base) => r.rps / (base?.rps ?? Number.NaN)),
    added: (k: TargetKey, c: number) => paired(k, c, (r, base) => r.p50Us - (base?.p50Us ?? Number.NaN)),
  };
}

interface Target {
  readonly key: TargetKey;
  readonly port: number;
  /** The processes on the request's path besides the client, by role ("proxy", "server"). */
  readonly pids: Readonly<Record<string, number>>;
  /** Runs the load from its own client process (the caller targets); without it the load goes from this process to `port`. */
  readonly run?: (connections: number, seconds: number) => Promise<LoadRun>;
}

interface LoadRun {
  readonly rps: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly failed: number;
  /** CPU µs per request, by process role (client = this process, running the load). */
  readonly cpuUsPerRequest: Readonly<Record<string, number>>;
}

/**
 * One connection: a sequential loop (undici, keep-alive) timing every request itself. autocannon is
 * not used here: its per-response times disagree with its own request rate behind nginx (at one
 * connection rate × mean latency came out near 4, which Little's law forbids), while a sequential
 * loop is exact by construction.
 */
async function sequential(t: Target, seconds: number): Promise<LoadRun> {
  const before = Object.fromEntries(Object.entries(t.pids).map(([k, pid]) => [k, treeCpuMs(pid)]));
  const self = process.cpuUsage();
  const pool = new Pool(`http://127.0.0.1:${t.port}`, { connections: 1, pipelining: 1 });
  const latencies: number[] = [];
  let failed = 0;
  const start = monoNow();
  const end = start + seconds * 1000;
  try {
    while (monoNow() < end) {
      const s = monoNow();
      const r = await pool.request({
        path: "/v1/messages",
        method: "POST",
        headers: { "x-shard-key": "bench", "content-type": "text/plain" },
        body: "hello",
      });
      await r.body.text();
      if (r.statusCode >= 200 && r.statusCode < 300) latencies.push((monoNow() - s) * 1000);
      else failed++;
    }
  } finally {
    await pool.close();
  }
  const elapsed = (monoNow() - start) / 1000;
  const used = process.cpuUsage(self);
  const total = Math.max(1, latencies.length + failed);
  const cpu: Record<string, number> = { client: (used.user + used.system) / total };
  for (const [k, pid] of Object.entries(t.pids)) cpu[k] = ((treeCpuMs(pid) - before[k]!) * 1000) / total;
  const lat = summarize(latencies);
  return { rps: total / elapsed, p50Us: lat?.median ?? Number.NaN, p99Us: lat?.p99 ?? Number.NaN, failed, cpuUsPerRequest: cpu };
}

/** Many connections: autocannon, whose request count the servers confirm; latency by Little's law (connections ÷ rate). */
async function load(t: Target, connections: number, seconds: number): Promise<LoadRun> {
  if (t.run) return t.run(connections, seconds);
  if (connections === 1) return sequential(t, seconds);
  const before = Object.fromEntries(Object.entries(t.pids).map(([k, pid]) => [k, treeCpuMs(pid)]));
  const self = process.cpuUsage();
  const instance = autocannon({
    url: `http://127.0.0.1:${t.port}/v1/messages`,
    method: "POST",
    headers: { "x-shard-key": "bench", "content-type": "text/plain" },
    body: "hello",
    connections,
    pipelining: 1,
    duration: seconds,
    timeout: 10,
  });
  const result = await instance;
  const used = process.cpuUsage(self);
  const total = Math.max(1, result.requests.total);
  const cpu: Record<string, number> = { client: (used.user + used.system) / total };
  for (const [k, pid] of Object.entries(t.pids)) cpu[k] = ((treeCpuMs(pid) - before[k]!) * 1000) / total;
  const rps = result.requests.total / result.duration;
  return {
    rps,
    p50Us: (connections / rps) * 1e6, // the mean, by Little's law: what 50 waiting clients see on average
    p99Us: Number.NaN,
    failed: result.errors + result.timeouts + result.non2xx,
    cpuUsPerRequest: cpu,
  };
}

/** A caller target: routing-client.ts runs the load in its own process; the server's CPU is read here. */
function callerTarget(key: "caller" | "caller-direct", client: TsChild, serverPid: number): Target {
  const run = async (connections: number, seconds: number): Promise<LoadRun> => {
    const before = treeCpuMs(serverPid);
    const answered = new Promise<unknown>((resolve, reject) => {
      client.onMessage = resolve;
      void client.exited.then(() => reject(new Error(`bench: routing-client.ts exited during a run: ${client.stderr().slice(-1500)}`)));
    });
    tell(client, { target: key, connections, seconds });
    // JSON has no NaN: a figure without data (every request failed) arrives as null.
    const r = (await answered) as {
      rps: number;
      p50Us: number | null;
      p99Us: number | null;
      failed: number;
      cpuUs: number;
      requests: number;
    };
    const server = ((treeCpuMs(serverPid) - before) * 1000) / Math.max(1, r.requests);
    return {
      rps: r.rps,
      p50Us: r.p50Us ?? Number.NaN,
      p99Us: r.p99Us ?? Number.NaN,
      failed: r.failed,
      cpuUsPerRequest: { client: r.cpuUs, server },
    };
  };
  return { key, port: 0, pids: { server: serverPid }, run };
}

/** Item 3. */
export async function forwardingItem(p: BenchProfile, dir: string, say: (m: string) => void): Promise<ItemReport> {
  const o = p.forwarding;
  const children: TsChild[] = [];
  let nginx: Nginx | null = null;
  const store = benchStore("sqlite", dir);
  const cluster = new BenchCluster({ store, settings: QUIET, parentDir: dir, eventLog: false, masters: 1, coreapps: 1, logLevel: "warn" });
  const notes: string[] = [];
  try {
    const echo = spawnTs("echo-server.ts", []);
    children.push(echo);
    const echoPort = ((await echo.ready) as { port: number }).port;
    const proxy = spawnTs("proxy-server.ts", [String(echoPort)]);
    children.push(proxy);
    const proxyPort = ((await proxy.ready) as { port: number }).port;
    const pipe = spawnTs("tcp-pipe.ts", [String(echoPort)]);
    children.push(pipe);
    const pipePort = ((await pipe.ready) as { port: number }).port;
    const embedded = spawnTs("embedded-cluster.ts", [dir]);
    children.push(embedded);
    const embeddedPort = ((await embedded.ready) as { port: number }).port;
    await cluster.start();
    await cluster.waitSteady(60_000);
    const webapp = cluster.live("webapp")[0]!;
    const coreapp = cluster.live("coreapp")[0]!;
    const caller = spawnTs("routing-client.ts", [cluster.config, String(echoPort)]);
    children.push(caller);
    await caller.ready;
    const targets: Target[] = [
      { key: "direct", port: echoPort, pids: { server: echo.child.pid! } },
      { key: "webapp", port: cluster.webappPort, pids: { proxy: webapp.child.pid!, server: coreapp.child.pid! } },
      { key: "embedded", port: embeddedPort, pids: { server: embedded.child.pid! } },
      callerTarget("caller-direct", caller, echo.child.pid!),
      callerTarget("caller", caller, coreapp.child.pid!),
      { key: "http-proxy", port: proxyPort, pids: { proxy: proxy.child.pid!, server: echo.child.pid! } },
      { key: "node-pipe", port: pipePort, pids: { proxy: pipe.child.pid!, server: echo.child.pid! } },
    ];
    const ng = findNginx(p.name === "full", say);
    if (ng.path) {
      nginx = await startNginx(ng.path, dir, echoPort);
      targets.push({ key: "nginx", port: nginx.port, pids: { proxy: nginx.child.pid!, server: echo.child.pid! } });
    } else notes.push(`- nginx anchor skipped: ${ng.why}.`);

    say(`forwarding: warming up ${targets.map((t) => t.key).join(", ")}`);
    // V8 needs tens of thousands of requests before the hot paths are optimized (the webapp path
    // is twice as slow before): warm every target at both concurrencies before measuring.
    for (const t of targets) {
      await load(t, 50, p.name === "full" ? 3 : 0.5);
      await load(t, 1, p.name === "full" ? 1 : 0.2);
    }
    const runs = new Map<string, LoadRun[]>();
    for (let round = 0; round < o.rounds; round++) {
      for (const c of o.connections) {
        // Rotate the order each round so no target always runs first (or right after the heaviest).
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const t of order) {
          const r = await load(t, c, o.seconds);
          const key = `${t.key}/${c}`;
          runs.set(key, [...(runs.get(key) ?? []), r]);
          say(`forwarding round ${round + 1} ${t.key} c=${c}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Us.toFixed(0)} µs, failed ${r.failed}`);
        }
      }
    }

    let profiles: { role: string; summary: ProfileSummary; requests: number }[] = [];
    if (o.profile) profiles = await profileWebappPath(dir, o.seconds, say);
    return report(
      p,
      targets.map((t) => t.key),
      runs,
      profiles,
      notes,
    );
  } finally {
    await nginx?.stop();
    for (const c of children) await stopChild(c);
    await cluster.stop();
    await store.cleanup();
  }
}

/** CPU-profiles the webapp and the coreapp of a fresh cluster under 50 connections (full profile only). */
async function profileWebappPath(
  dir: string,
  seconds: number,
  say: (m: string) => void,
): Promise<{ role: string; summary: ProfileSummary; requests: number }[]> {
  const profDir = join(dir, "cpu-profiles");
  const flags = ["--cpu-prof", `--cpu-prof-dir=${profDir}`];
  const store = benchStore("sqlite", dir);
  const c = new BenchCluster({
    store,
    settings: QUIET,
    parentDir: dir,
    eventLog: false,
    masters: 1,
    coreapps: 1,
    logLevel: "warn",
    execArgv: { webapp: flags, coreapp: flags },
  });
  try {
    await c.start();
    await c.waitSteady(60_000);
    say("forwarding: CPU-profiling the webapp and the coreapp at 50 connections");
    const pids = { webapp: c.live("webapp")[0]!.child.pid!, coreapp: c.live("coreapp")[0]!.child.pid! };
    const from = monoNow();
    const r = await load({ key: "webapp", port: c.webappPort, pids: {} }, 50, seconds);
    const to = monoNow();
    await c.stop();
    await sleep(200);
    const requests = Math.round(r.rps * seconds);
    const files = readdirSync(profDir).filter((f) => f.endsWith(".cpuprofile"));
    return Object.entries(pids).flatMap(([role, pid]) => {
      const f = files.find((x) => x.includes(`.${pid}.0.`)); // the main thread's profile
      return f ? [{ role, summary: summarizeProfile(join(profDir, f), 12, { from, to }), requests }] : [];
    });
  } finally {
    await c.stop();
    await store.cleanup();
  }
}

/**
 * Why a target is missed and what would close the gap, from this run's figures: a paragraph for
 * each target missed (throughput at many connections, added latency at one).
 */
function missedText(
  get: (k: TargetKey, c: number) => LoadRun[],
  many: number,
  one: number,
  webProfile: ProfileSummary | null,
  missed: { ratio: boolean; latency: boolean },
): string {
  const cpu = (k: TargetKey, c: number, role: string) => median(get(k, c).map((r) => r.cpuUsPerRequest[role] ?? Number.NaN));
  const vs = againstBaseline(get);
  const added = (k: TargetKey) => vs.added(k, one);
  const ratioOf = (k: TargetKey) => vs.ratio(k, many);
  const paragraphs: string[] = [];
  if (missed.ratio) {
    const share = (pred: (bucket: string) => boolean) =>
      webProfile ? `${num((100 * webProfile.byFile.filter(([b]) => pred(b)).reduce((a, [, t]) => a + t, 0)) / webProfile.busyMs)} %` : "?";
    const where = webProfile
      ? `in the webapp's profile socket writes take ${share((b) => b === "native writev" || b === "native writeBuffer")}, ` +
        `frame MACs ${share((b) => b.includes("crypto"))} and the SDK's own code ${share((b) => b.startsWith("SDK"))}`
      : "see the profiles";
    const direct = cpu("direct", many, "client") + cpu("direct", many, "server");
    const web = cpu("webapp", many, "proxy");
    const core = cpu("webapp", many, "server");
    const client = cpu("webapp", many, "client");
    const budget = direct / TARGET_RATIO - client;
    paragraphs.push(
      [
        `**Throughput at ${many} connections.** It is CPU-bound: on 2 cores every request costs the sum of the CPU of every process`,
        `on its path. Direct costs ${num(direct)} µs (client + server); through the webapp ${num(client + web + core)} µs: the webapp`,
        `${num(web)} µs (an HTTP server for the client, and a framed-transport client), the coreapp ${num(core)} µs, the client ${num(client)} µs.`,
        `Keeping ${num(TARGET_RATIO, 2)} of direct throughput needs the webapp and the coreapp together under ~${num(budget)} µs; one plain`,
        `Node HTTP server costs ${num(cpu("direct", many, "server"))} µs per request here, and the Node proxy library ${num(cpu("http-proxy", many, "proxy"))} µs for its hop alone.`,
        `Where the webapp's time goes: ${where}.`,
        get("node-pipe", many).length
          ? `The floor of any process on the hop: a Node process that only copies bytes costs ${num(cpu("node-pipe", many, "proxy"))} µs per request and keeps ${num(ratioOf("node-pipe"), 2)} of direct here.`
          : "",
      ]
        .filter((line) => line !== "")
        .join("\n"),
    );
  }
  if (missed.latency) {
    const pipe = get("node-pipe", one).length ? num(added("node-pipe")) : "?";
    paragraphs.push(
      [
        `**Added latency at ${one} connection.** Every request then wakes each process on its path from idle. A Node process that`,
        `only copies bytes adds ${pipe} µs (the node-pipe row: a wake-up, a read and a write each way)${
          get("nginx", one).length ? `, nginx, which also parses HTTP, ${num(added("nginx"))} µs` : ""
        }. What a proxy adds beyond that is the work it does`,
        `while the request waits: the Node proxy library adds ${num(added("http-proxy"))} µs, the webapp ${num(added("webapp"))} µs. At ${one} connection the webapp`,
        `spends ${num(cpu("webapp", one, "proxy"))} µs of CPU per request (${num(cpu("webapp", many, "proxy"))} µs under load), the byte pipe ${num(cpu("node-pipe", one, "proxy"))} µs and the plain server`,
        `${num(cpu("direct", one, "server"))} µs: the webapp terminates the client's HTTP as the plain server does, then seals the request, wakes for the`,
        "coreapp's acknowledgement and again for its answer, and checks the MAC of each. What meets the target is no webapp hop:",
        `a webapp in the caller's own process (\`webapp.request()\`, docs/embedding.md; the "caller" row, ${num(added("caller"))} µs added against the`,
        `same process's direct HTTP), or in its shard owner's process (the in-process shortcut; the "embedded" row, ${num(added("embedded"))} µs).`,
        'docs/architecture.md, "What a forward costs", has the breakdown and what was tried.',
      ].join("\n"),
    );
  }
  return paragraphs.join("\n\n");
}

function report(
  p: BenchProfile,
  keys: TargetKey[],
  runs: Map<string, LoadRun[]>,
  profiles: { role: string; summary: ProfileSummary; requests: number }[],
  notes: string[],
): ItemReport {
  const get = (k: TargetKey, c: number) => runs.get(`${k}/${c}`) ?? [];
  const many = Math.max(...p.forwarding.connections);
  const one = Math.min(...p.forwarding.connections);
  const { ratio, added } = againstBaseline(get);
  const isBaseline = (k: TargetKey) => k === "direct" || k === "caller-direct";
  const range = (xs: number[], d = 0) => (xs.length > 1 ? ` (${num(Math.min(...xs), d)}–${num(Math.max(...xs), d)})` : "");
  const label: Record<TargetKey, string> = {
    direct: "direct (plain node:http, echo handler)",
    webapp: "**through the webapp** (→ coreapp)",
    embedded: "embedded: webapp and coreapp in one process",
    caller: "**a caller's own webapp** (`webapp.request()` → coreapp)",
    "caller-direct": "direct from the caller's process (undici; the row above's baseline)",
    nginx: "nginx → plain server",
    "http-proxy": "http-proxy → plain server",
    "node-pipe": "Node byte pipe (no HTTP) → plain server",
  };
  const anchors: Record<TargetKey, string> = {
    direct: "",
    webapp: `target ≥ ${num(TARGET_RATIO, 2)}`,
    embedded: "",
    caller: `target ≥ ${num(TARGET_RATIO, 2)}`,
    "caller-direct": "",
    nginx: `anchor ${ANCHORS.nginx.ratio}`,
    "http-proxy": `anchor ${ANCHORS["http-proxy"].ratio}`,
    "node-pipe": "",
  };
  const anchorsLat: Record<TargetKey, string> = {
    direct: "",
    webapp: `target ≤ ${TARGET_ADDED_US} µs`,
    embedded: "",
    caller: `target ≤ ${TARGET_ADDED_US} µs`,
    "caller-direct": "",
    nginx: `anchor ${ANCHORS.nginx.added}`,
    "http-proxy": `anchor ${ANCHORS["http-proxy"].added}`,
    "node-pipe": "floor of a Node hop",
  };

  const thr: string[][] = [];
  const cpu: string[][] = [];
  for (const k of keys) {
    for (const c of p.forwarding.connections) {
      const rs = get(k, c);
      if (rs.length === 0) continue;
      thr.push([
        label[k],
        String(c),
        `${num(median(rs.map((r) => r.rps)))}${range(rs.map((r) => r.rps))}`,
        isBaseline(k) ? "1" : num(ratio(k, c), 2),
        `${num(median(rs.map((r) => r.p50Us)))}${range(rs.map((r) => r.p50Us))}`,
        isBaseline(k) ? "0" : num(added(k, c)),
        num(median(rs.map((r) => r.p99Us))),
        String(rs.reduce((a, r) => a + r.failed, 0)),
        c === many ? anchors[k] : anchorsLat[k],
      ]);
    }
    for (const c of p.forwarding.connections) {
      const rs = get(k, c);
      if (!rs.length) continue;
      const part = (role: string) => median(rs.map((r) => r.cpuUsPerRequest[role] ?? Number.NaN));
      const total = ["client", "proxy", "server"]
        .map(part)
        .filter((x) => Number.isFinite(x))
        .reduce((a, b) => a + b, 0);
      cpu.push([
        label[k],
        String(c),
        num(part("client")),
        Number.isFinite(part("proxy")) ? num(part("proxy")) : "–",
        num(part("server")),
        num(total),
        c === many ? num(2e6 / total) : "–",
      ]);
    }
  }
  const webRatio = ratio("webapp", many);
  const webAdded = added("webapp", one);
  const headlines: Headline[] = [
    {
      item: "3 forwarding",
      figure: `webapp throughput / direct at ${many} connections`,
      measured: num(webRatio, 2),
      target: `≥ ${num(TARGET_RATIO, 2)}`,
      met: webRatio >= TARGET_RATIO,
    },
    {
      item: "3 forwarding",
      figure: `webapp added p50 latency at ${one} connection`,
      measured: `${num(webAdded)} µs`,
      target: `≤ ${TARGET_ADDED_US} µs`,
      met: webAdded <= TARGET_ADDED_US,
    },
  ];
  const callerRatio = ratio("caller", many);
  const callerAdded = added("caller", one);
  headlines.push(
    {
      item: "3 forwarding",
      figure: `a caller's own webapp (\`webapp.request()\`): throughput / direct from that process at ${many} connections`,
      measured: num(callerRatio, 2),
      target: `≥ ${num(TARGET_RATIO, 2)}`,
      met: callerRatio >= TARGET_RATIO,
    },
    {
      item: "3 forwarding",
      figure: `a caller's own webapp (\`webapp.request()\`): added p50 latency at ${one} connection`,
      measured: `${num(callerAdded)} µs`,
      target: `≤ ${TARGET_ADDED_US} µs`,
      met: callerAdded <= TARGET_ADDED_US,
    },
  );
  if (get("embedded", many).length) {
    headlines.push({
      item: "3 forwarding",
      figure: "embedded webapp and coreapp (in-process): throughput ratio; added p50",
      measured: `${num(ratio("embedded", many), 2)}; ${num(added("embedded", one))} µs`,
      target: "–",
      met: null,
    });
  }
  for (const k of ["nginx", "http-proxy", "node-pipe"] as const) {
    if (get(k, many).length) {
      headlines.push({
        item: "3 forwarding",
        figure: `anchor ${k}: throughput ratio; added p50`,
        measured: `${num(ratio(k, many), 2)}; ${num(added(k, one))} µs`,
        target: k === "node-pipe" ? "–" : `${ANCHORS[k].ratio}; ${ANCHORS[k].added}`,
        met: null,
      });
    }
  }
  const prof: string[] = [];
  for (const pr of profiles) {
    const perReq = (pr.summary.busyMs * 1000) / Math.max(1, pr.requests);
    prof.push(
      `**${pr.role}** — ${num(pr.summary.busyMs)} ms busy for ${pr.requests} requests (≈ ${num(perReq)} µs per request):`,
      "",
      table(
        ["where (self time)", "share of busy time"],
        pr.summary.byFile.slice(0, pr.summary.top).map(([c, t]) => [c, `${num((100 * t) / pr.summary.busyMs, 1)} %`]),
      ),
      "",
      table(
        ["top functions (self time)", "share"],
        pr.summary.byFunction.slice(0, pr.summary.top).map(([f, t]) => [f, `${num((100 * t) / pr.summary.busyMs, 1)} %`]),
      ),
      "",
    );
  }
  const body = [
    `POST /v1/messages with a 5-byte body from this process, ${p.forwarding.seconds} s per measurement, ${p.forwarding.rounds} round(s) alternating the`,
    "targets (order rotated each round); medians over rounds, the range in brackets. At 50 connections the load is autocannon's",
    "(its request counts match what the servers see) and the latency shown is the mean by Little's law (50 ÷ rate); at 1",
    "connection a sequential undici loop times every request itself (p50, p99). Ratios and added latency are taken within a",
    "round, then the median. nginx keeps its connections for the whole run (keepalive_requests raised). The webapp's cluster runs on",
    "SQLite with 1 master and 1 coreapp (the store is not on the request path); the embedded target is one process with a master,",
    "a coreapp and a webapp on SQLite, the webapp calling the coreapp in-process. The caller targets send from a process of their",
    "own (bench/support/routing-client.ts): `caller` through a webapp embedded there (`webapp.request()`) to the coreapp of the",
    "webapp's cluster, and its baseline `caller-direct` the same loop sending HTTP to the plain server with undici (at 50",
    "connections, 50 concurrent loops rather than autocannon); their client column is that process. Everything shares the same",
    "2 cores: the client, the proxy and the server compete for them, which is also true of the anchors.",
    "",
    table(
      [
        "path",
        "connections",
        "req/s",
        "ratio to direct",
        "latency µs (1 conn: p50; 50: mean)",
        "added µs",
        "p99 µs (1 conn)",
        "failed",
        "target / anchor",
      ],
      thr,
    ),
    "",
    "CPU time per request, by process (µs; /proc and process.cpuUsage). With 2 cores the throughput ceiling is ≈ 2 s of CPU",
    "per second ÷ the total, so this table explains the throughput column:",
    "",
    table(
      [
        "path",
        "connections",
        "client (autocannon at 50, undici loop at 1)",
        "proxy / webapp",
        "server / coreapp",
        "total",
        "2-core ceiling req/s",
      ],
      cpu,
    ),
    ...(prof.length
      ? [
          "",
          `CPU profiles of the webapp path at ${many} connections (V8 sampling profiler; self time, idle excluded). The profiler samples`,
          "wall time, so a thread descheduled inside a syscall counts there: `writev` (a loopback send, which wakes the receiving",
          "process) shows more time than its CPU share, and the per-request figure exceeds the CPU table's.",
          "",
          ...prof,
        ]
      : []),
    ...(notes.length ? ["", "Notes:", ...notes] : []),
    "",
    `Target check: webapp keeps ${num(webRatio, 2)} of direct throughput (${verdict(webRatio >= TARGET_RATIO)}), adds ${num(webAdded)} µs at p50 with one connection (${verdict(webAdded <= TARGET_ADDED_US)}).`,
    ...(webRatio >= TARGET_RATIO && webAdded <= TARGET_ADDED_US
      ? []
      : [
          "",
          missedText(get, many, one, profiles.find((x) => x.role === "webapp")?.summary ?? null, {
            ratio: !(webRatio >= TARGET_RATIO),
            latency: !(webAdded <= TARGET_ADDED_US),
          }),
        ]),
  ].join("\n");
  return { id: 3, title: "Webapp forwarding cost", headlines, body };
}
