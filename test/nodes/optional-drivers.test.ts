import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";

/**
 * The store drivers are optional peer dependencies. These tests install the built package into a
 * folder where every dependency is present except the drivers, and run its CLI there: Node's own
 * resolver fails to find the driver, exactly as on a user's machine where it was not installed.
 */
const DRIVERS = { sqlite: "better-sqlite3", postgres: "pg", mysql: "mysql2", redis: "ioredis", etcd: "etcd3" } as const;

let root: string;
let cli: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "mc-drivers-"));
  const modules = join(root, "node_modules");
  const pkg = join(modules, "multiconnect");
  mkdirSync(pkg, { recursive: true });
  // A copy, not a link: Node resolves a linked package from its real path, which would find the
  // repository's node_modules (where every driver is installed).
  cpSync(resolve("dist"), join(pkg, "dist"), { recursive: true });
  cpSync(resolve("package.json"), join(pkg, "package.json"));
  const drivers = new Set<string>(Object.values(DRIVERS));
  for (const entry of readdirSync(resolve("node_modules"))) {
    if (entry.startsWith(".") || entry === "multiconnect" || drivers.has(entry)) continue;
    symlinkSync(resolve("node_modules", entry), join(modules, entry));
  }
  cli = join(pkg, "dist/cli/main.js");
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: "utf8", timeout: 20_000 });
}

describe("optional store drivers", () => {
  it("the installed CLI runs without any driver (multiconnect --version prints package.json's version)", () => {
    const r = run(["--version"]);
    expect(r.status).toBe(0);
    const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    expect(r.stdout.trim()).toBe(version);
  });

  for (const [backend, driver] of Object.entries(DRIVERS)) {
    it(`multiconnect start on ${backend} without "${driver}" exits 2 with one line naming the backend and the package`, () => {
      const config = join(root, `${backend}.yaml`);
      writeFileSync(config, stringify({ cluster_name: "drivers", shards: 1, secret: "s".repeat(32), store: { backend } }));
      const r = run(["start", "--config", config, "--role", "master", "--name", "m1"]);
      expect(r.status).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toEqual([
        `multiconnect: store: the ${backend} backend needs the "${driver}" package, which is not installed: run npm install ${driver}`,
      ]);
    });
  }

  it("multiconnect dev without better-sqlite3 exits 2 with the same line before it writes or spawns anything", () => {
    const dir = join(root, "dev");
    const r = run(["dev", "--dir", dir, "--port", "1"]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(
      'multiconnect: store: the sqlite backend needs the "better-sqlite3" package, which is not installed: run npm install better-sqlite3',
    );
    expect(existsSync(dir)).toBe(false);
  });
});
