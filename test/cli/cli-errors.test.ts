import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadConfigFile } from "../../src/config/load.js";
import { SystemClock } from "../../src/core/clock.js";
import { openStore } from "../../src/nodes/open-store.js";
import { CLI } from "../support/process-cluster.js";

/**
 * A user's mistake gets one line saying what is wrong and exit code 1 — never a stack trace, and
 * never exit code 2, which says the config file cannot work. Runs the built CLI (`npm test` builds it).
 */
let dir: string;
/** A valid config whose store holds no cluster: no node has ever started on it. */
let config: string;
/** A valid config whose store has the schema but no master. */
let noMaster: string;

function writeConfig(name: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    stringify({ cluster_name: "errors", secret: "s".repeat(32), store: { backend: "sqlite", path: join(dir, `${name}.db`) } }),
  );
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mc-cli-errors-"));
  config = writeConfig("empty");
  noMaster = writeConfig("no-master");
  const store = await openStore(loadConfigFile(noMaster).store, new SystemClock());
  await store.migrate();
  await store.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]): { status: number | null; first: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 20_000 });
  return { status: r.status, first: r.stderr.split("\n")[0] ?? "", stderr: r.stderr };
}

function expectUserError(r: ReturnType<typeof run>, message: RegExp): void {
  expect(r.status, r.stderr).toBe(1);
  expect(r.first).toMatch(message);
  expect(r.stderr).not.toMatch(/^ {4}at /m);
}

describe("multiconnect: bad arguments and refusals", () => {
  it("start --role foo exits 1 naming the allowed roles", () => {
    expectUserError(run("start", "--config", config, "--role", "foo"), /'foo' is invalid\. Allowed choices are master, coreapp, webapp/);
  });

  it("pause --for abc, 0s or 200h exits 1 naming --for and the rule", () => {
    expectUserError(run("pause", "--config", config, "--for", "abc"), /'abc' is invalid\. --for must be a duration such as 30m or 1h$/);
    expectUserError(run("pause", "--config", config, "--for", "0s"), /--for must be at least 1 ms$/);
    expectUserError(run("pause", "--config", config, "--for", "200h"), /--for must be at most 168h \(7 days\)/);
  });

  it("settings set foo=1 exits 1 naming the key and the known settings, not as a config file error", () => {
    const r = run("settings", "set", "foo=1", "--config", config);
    expectUserError(r, /'foo=1' is invalid.* settings\.foo: unknown; the settings are heartbeat_interval,/);
    expect(r.first).not.toMatch(/config:/);
    expectUserError(
      run("settings", "set", "unhealthy_interval=soon", "--config", config),
      /settings\.unhealthy_interval: must be a duration/,
    );
    expectUserError(run("settings", "set", "unhealthy_interval", "--config", config), /expected key=value/);
  });

  it("pause, settings set and switchover without a primary master exit 1 with one line", () => {
    for (const r of [
      run("pause", "--config", noMaster, "--for", "10m"),
      run("settings", "set", "unhealthy_interval=10s", "--config", noMaster),
      run("switchover", "--config", noMaster, "--shard", "0"),
    ]) {
      expectUserError(r, /^multiconnect: no primary master holds the lease right now/);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    const empty = run("resume", "--config", config);
    expectUserError(empty, /^multiconnect: no primary master: the store holds no cluster \(never started, or reset\)$/);
    expect(empty.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("support-bundle --out into a missing folder exits 1 with the system's one line", () => {
    const r = run("support-bundle", "--config", config, "--out", join(dir, "missing", "b.tar.gz"));
    expectUserError(r, /^multiconnect: ENOENT: no such file or directory, open .*b\.tar\.gz/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("an error of no known kind (here the --app module's own) still prints its stack", () => {
    const app = join(dir, "broken-app.mjs");
    writeFileSync(app, 'throw new Error("broken app");\n');
    const r = run("start", "--config", config, "--role", "coreapp", "--no-supervise", "--app", app);
    expect(r.status, r.stderr).toBe(1);
    expect(r.first).toBe("multiconnect: Error: broken app");
    expect(r.stderr).toMatch(/^ {4}at .*broken-app\.mjs/m);
  });

  it("start --help says --watchdog-deadline requires --watchdog, and start refuses it alone (a flag of the config's kind: exit 2)", () => {
    const r = spawnSync(process.execPath, [CLI, "start", "--help"], { encoding: "utf8", timeout: 20_000 });
    expect(r.stdout).toMatch(/--watchdog-deadline <ms>\s+the watchdog's deadline; requires\s+--watchdog/);
    const alone = run("start", "--config", config, "--role", "master", "--watchdog-deadline", "500");
    expect(alone.status, alone.stderr).toBe(2);
    expect(alone.first).toBe("multiconnect: config: --watchdog-deadline: is the watchdog's: give --watchdog too");
  });
});
