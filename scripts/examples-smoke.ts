/**
 * Smoke-runs examples/ as a user would: typechecks them (strict), then starts a master and two
 * coreapps as separate processes on the real PostgreSQL from examples/cluster.yaml, and each
 * webapp example (node:http, Express 5, Fastify 5) in turn. Checks that a request keeps its full
 * path under the /api prefix, that a throwing handle() gets 500/1500 once with its stack in the
 * coreapp's log, and that every process leaves on SIGTERM with exit code 0; then examples/caller.ts
 * (webapp.request() from a service's own code) against the same cluster. Prints the start-up
 * and shutdown times it measured, and a closing "N passed, N failed" line.
 *
 *   npm run build && npx tsx scripts/examples-smoke.ts
 *
 * DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the database; the run uses
 * its own random table prefix and drops its tables at the end.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { dropTables } from "../test/support/store-cleanup.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const databaseUrl = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const prefix = `ex_${randomBytes(4).toString("hex")}_`;
const env = { ...process.env, DATABASE_URL: databaseUrl, MC_SECRET: randomBytes(16).toString("hex"), MC_TABLE_PREFIX: prefix };

let passed = 0;
let failed = 0;
function check(what: string, ok: boolean, detail = ""): void {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? ` — ${detail}` : ""}`);
}

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  log: string;
  readonly exited: Promise<number | null>;
}

function start(name: string, file: string, extra: Record<string, string> = {}, args: readonly string[] = []): Proc {
  const child = spawn(process.execPath, ["--import", "tsx", join("examples", file), ...args], {
    cwd: root,
    env: { ...env, ...extra },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc: Proc = { name, child, log: "", exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))) };
  child.stdout!.on("data", (d: Buffer) => (proc.log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (proc.log += d.toString()));
  return proc;
}

/** Sends SIGTERM and measures how long the process takes to leave; its exit code should be 0. */
async function terminate(p: Proc): Promise<{ code: number | null; ms: number }> {
  const started = performance.now();
  p.child.kill("SIGTERM");
  const code = await Promise.race([p.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 15_000))]);
  if (code === "timeout") {
    p.child.kill("SIGKILL");
    return { code: null, ms: Infinity };
  }
  return { code, ms: Math.round(performance.now() - started) };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Waits until the webapp at `base` reports a serving primary coreapp for both shards. */
async function ready(base: string, p: Proc): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < 600; i++) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited with ${p.child.exitCode}:\n${p.log}`);
    try {
      const r = await fetch(`${base}/api/v1/health`);
      const h = (await r.json()) as { nodes: { gateway_status?: string }[] };
      if (r.ok && h.nodes.filter((n) => n.gateway_status === "connected").length === 2) return Math.round(performance.now() - started);
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${p.name} did not become ready:\n${p.log}`);
}

const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "examples/tsconfig.json"], {
  cwd: root,
  encoding: "utf8",
});
check("examples/ typecheck under strict tsc", tsc.status === 0, tsc.stdout + tsc.stderr);

const cluster = [
  start("master-1", "master.ts", { MC_NAME: "master-1" }),
  start("coreapp-1", "coreapp.ts", { MC_NAME: "coreapp-1" }),
  start("coreapp-2", "coreapp.ts", { MC_NAME: "coreapp-2" }),
];
const timings: string[] = [];
try {
  for (const example of ["node-http", "express", "fastify"]) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const web = start(example, `${example}.ts`, { PORT: String(port) });
    try {
      const readyMs = await ready(base, web);
      const phone = { "x-phone": "+15550100" };
      const sent = '{ "text": "hello",  "n": 1.50 }';
      const r = await fetch(`${base}/api/v1/messages?to=1`, {
        method: "POST",
        headers: { ...phone, "content-type": "application/json" },
        body: sent,
      });
      const answer = (await r.json()) as { path?: string; bytes?: number };
      check(
        `${example}: a request keeps its path under /api`,
        r.status === 200 && answer.path === "/api/v1/messages?to=1",
        JSON.stringify(answer),
      );
      check(
        `${example}: the body arrives byte for byte`,
        answer.bytes === Buffer.byteLength(sent),
        `${answer.bytes} of ${Buffer.byteLength(sent)} bytes`,
      );
      const crashLines = () => cluster.map((p) => p.log.split('"msg":"application handle() threw"').length - 1).reduce((a, b) => a + b, 0);
      const crashesBefore = crashLines();
      const c = await fetch(`${base}/api/v1/crash`, { method: "POST", headers: phone, body: "x" });
      const crash = (await c.json()) as { errors?: { code: number }[] };
      check(
        `${example}: a throwing handle() gets 500 with code 1500 and no retry-after`,
        c.status === 500 && crash.errors?.[0]?.code === 1500 && !c.headers.has("retry-after"),
        `${c.status} ${JSON.stringify(crash)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 200)); // let the coreapp's log line reach us
      const crashes = crashLines() - crashesBefore;
      check(
        `${example}: the crash ran once and its stack is in the coreapp's log`,
        crashes === 1 && /"stack":"Error: simulated application bug\\n\s+at /.test(cluster.map((p) => p.log).join("")),
        `${crashes} log lines`,
      );
      const stopped = await terminate(web);
      check(`${example}: leaves on SIGTERM with exit code 0`, stopped.code === 0, `code ${stopped.code}`);
      timings.push(`${example}: ready ${readyMs} ms after start (tsx compile included), stopped ${stopped.ms} ms after SIGTERM`);
    } catch (error) {
      check(`${example}: runs`, false, String(error));
      web.child.kill("SIGKILL");
    }
  }
  // A Node service calling the cluster from its own code (webapp.request(), no HTTP hop).
  const phones = ["+15550100", "+15550101"];
  const caller = start("caller", "caller.ts", {}, phones);
  const exit = await Promise.race([caller.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 90_000))]);
  if (exit === "timeout") caller.child.kill("SIGKILL");
  const answers = phones.map((phone) => caller.log.split("\n").find((line) => line.startsWith(`${phone}: `)) ?? "");
  check(
    "caller: webapp.request() gets each shard owner's answer with the path sent, then exits 0",
    exit === 0 && answers.every((a) => / 200 \{.*"path":"\/v1\/messages"/.test(a)),
    `exit ${exit}; ${answers.join(" | ")}${exit === 0 ? "" : `\n${caller.log}`}`,
  );
} finally {
  for (const p of cluster) {
    const stopped = await terminate(p);
    check(`${p.name}: leaves on SIGTERM with exit code 0`, stopped.code === 0, `code ${stopped.code}`);
    timings.push(`${p.name}: stopped ${stopped.ms} ms after SIGTERM`);
    if (failed > 0) console.log(`--- ${p.name} log (tail)\n${p.log.split("\n").slice(-15).join("\n")}`);
  }
  await dropTables("postgres", databaseUrl, prefix);
}
for (const t of timings) console.log(`time ${t}`);
console.log(`examples-smoke: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
