import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import type { AppRequest } from "../../src/core/coreapp/application.js";
import { createCoreapp, createMaster, createWebapp, type AnyNode } from "../../src/nodes/compose.js";
import { createLogger } from "../../src/nodes/logger.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { freePort } from "../../src/testing/net.js";

/** The admin token of the fuzz cluster. */
export const ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef";
/** The response header the application sets: a response carrying it came from the application. */
export const APP_MARKER = "x-fuzz-app";
/** The response header in which the application echoes the request's shard key. */
export const KEY_ECHO = "x-fuzz-key";
const CLI = resolve("dist/cli/main.js");

/**
 * The system under test for the fuzz suite: a master and two coreapps in this process (SQLite, the
 * real HTTP transport) whose application records every request it receives, and a webapp as a
 * separate process started from the built CLI, as a user runs it — so that "no process dies" and
 * its memory can be observed from outside, and nothing the test process does inflates them.
 */
export class FuzzCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "mc-fuzz-"));
  /** Every request the application received, in order. */
  readonly handled: AppRequest[] = [];
  readonly nodes: AnyNode[] = [];
  private readonly children: { name: string; child: ChildProcess }[] = [];
  readonly input: ConfigInput;

  constructor(
    webapp: ConfigInput["webapp"],
    readonly shards = 2,
  ) {
    this.input = {
      cluster_name: "fuzz",
      shards,
      secret: "fuzz-cluster-secret-0123456789abcdef",
      admin_token: ADMIN_TOKEN,
      settings: { heartbeat_interval: "200ms", unhealthy_interval: "1500ms", db_heartbeat_interval: "500ms", db_unhealthy_interval: "3s" },
      store: { backend: "sqlite", path: join(this.dir, "cluster.db") },
      node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
      log_level: "warn",
      webapp,
    };
  }

  /** Starts the master and the coreapps; their application answers 201 with {@link APP_MARKER} and {@link KEY_ECHO}. */
  async start(): Promise<void> {
    const config = parseConfig(this.input, {});
    const logger = createLogger("silent");
    const app = {
      onPromote() {},
      onDemote() {},
      handle: (req: AppRequest) => {
        this.handled.push(req);
        return { status: 201, headers: { [APP_MARKER]: "1", [KEY_ECHO]: req.headers["x-shard-key"] ?? "" }, body: "app" };
      },
    };
    this.nodes.push(await createMaster({ config, name: "m1", port: 0, logger }));
    const coreapps = await Promise.all(["c1", "c2"].map((name) => createCoreapp({ config, name, port: 0, app, logger })));
    this.nodes.push(...coreapps);
    for (const n of this.nodes) await n.start();
    // Every shard has a serving primary before any webapp starts (generous: the machine may be loaded).
    const end = Date.now() + 60_000;
    while (coreapps.filter((c) => c.state().serving).length < this.shards) {
      if (Date.now() > end) throw new Error(`the fuzz cluster's ${this.shards} shards got no serving primaries within 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A webapp process from the built CLI with `webapp` as its config's webapp section. */
  async spawnWebapp(name: string, webapp: ConfigInput["webapp"] = this.input.webapp): Promise<WebappProcess> {
    const file = join(this.dir, `${name}.yaml`);
    writeFileSync(file, stringify({ ...this.input, webapp }));
    const [port, opsPort] = [await freePort(), await freePort()];
    const log = join(this.dir, `${name}.log`);
    const child = spawn(
      process.execPath,
      [CLI, "start", "--config", file, "--role", "webapp", "--name", name, "--port", String(port), "--ops-port", String(opsPort)],
      { stdio: ["ignore", openSync(log, "a"), openSync(log, "a")] },
    );
    this.children.push({ name, child });
    const w = new WebappProcess(child, port, opsPort, log);
    await w.waitRouting(this.shards);
    return w;
  }

  /** A webapp in this process (for the limit tests, which need no process boundary). */
  async embeddedWebapp(webapp: ConfigInput["webapp"]): Promise<Webapp> {
    const config = parseConfig({ ...this.input, webapp }, {});
    const w = await createWebapp({ config, port: 0, logger: createLogger("silent") });
    this.nodes.push(w);
    await w.start();
    return w;
  }

  async stop(): Promise<void> {
    for (const { child } of this.children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await Promise.all(this.nodes.map((n) => n.stop().catch(() => {})));
  }
}

/** A webapp node running as its own process. */
export class WebappProcess {
  constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly opsPort: number,
    readonly logFile: string,
  ) {}

  /** Whether the process is still running. */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Its log, for failure messages. */
  log(): string {
    return readFileSync(this.logFile, "utf8").slice(-4000);
  }

  /** Waits until a request to each shard reaches the application (a generous deadline: the machine may be loaded). */
  async waitRouting(shards: number, timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    const keys = Array.from({ length: 64 }, (_, i) => `probe-${i}`);
    for (;;) {
      if (!this.alive) throw new Error(`the webapp exited (${this.child.exitCode ?? this.child.signalCode}): ${this.log()}`);
      const answered = await Promise.all(
        keys.map((k) =>
          fetch(`http://127.0.0.1:${this.port}/ready-probe`, { headers: { "x-shard-key": k }, signal: AbortSignal.timeout(2000) })
            .then((r) => r.status === 201)
            .catch(() => false),
        ),
      );
      // 64 keys over `shards` shards: all of them answered means every shard has a primary.
      if (answered.every(Boolean)) return;
      if (Date.now() > end) throw new Error(`the webapp did not route to every shard within ${timeoutMs} ms: ${this.log()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Resident set size in bytes, from /proc. */
  rss(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, "utf8"));
    return Number(m?.[1] ?? 0) * 1024;
  }

  /** V8 heap in use, from the node's own /metrics (prom-client's default metrics). */
  async heapUsed(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.opsPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const m = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text);
    if (!m) throw new Error("nodejs_heap_size_used_bytes missing from /metrics");
    return Number(m[1]);
  }
}
