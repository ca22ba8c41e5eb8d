import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfigFile, parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/core/errors.js";

const SECRET = "s3cr3t-value-that-must-not-leak";
const base = { cluster_name: "c1", secret: SECRET, store: { backend: "sqlite", path: "/tmp/x.db" } };

function configError(raw: unknown, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseConfig(raw, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).not.toContain(SECRET);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  it("parseConfig() fills the product's defaults", () => {
    const c = parseConfig(base, {});
    expect(c.settings).toEqual({
      heartbeatIntervalMs: 5000,
      unhealthyIntervalMs: 30000,
      dbHeartbeatIntervalMs: 60000,
      dbUnhealthyIntervalMs: 120000,
      heartbeatQuorum: 2,
      failsafeMaxMs: 0,
    });
    expect(c.shards).toBe(1);
    expect(c.webapp.shardKeyHeader).toBe("x-shard-key");
  });

  it("parseConfig() reads durations with units and secrets from the environment", () => {
    const c = parseConfig(
      { ...base, secret: "${MC_SECRET}", settings: { heartbeat_interval: "500ms", unhealthy_interval: "3s" } },
      { MC_SECRET: SECRET, EXTERNAL_HOSTNAME: "node-7.internal" },
    );
    expect(c.secret).toBe(SECRET);
    expect(c.settings.heartbeatIntervalMs).toBe(500);
    expect(c.settings.unhealthyIntervalMs).toBe(3000);
    expect(c.node.externalHostname).toBe("node-7.internal");
  });

  it("parseConfig() names an unset environment variable and the key that uses it", () => {
    const e = configError({ ...base, secret: "${MC_SECRET}" });
    expect(e.key).toBe("secret");
    expect(e.message).toContain("MC_SECRET");
  });

  it("parseConfig() rejects an unknown backend, naming the choices", () => {
    const e = configError({ ...base, store: { backend: "mongodb" } });
    expect(e.key).toBe("store.backend");
    expect(e.message).toMatch(/sqlite, postgres, mysql, redis, etcd/);
  });

  it("parseConfig() rejects unknown keys instead of ignoring a typo", () => {
    expect(configError({ ...base, settings: { heartbeat_intervall: "1s" } }).key).toBe("settings.heartbeat_intervall");
    expect(configError({ ...base, store: { backend: "postgres", passwrod: SECRET } }).key).toBe("store.passwrod");
  });

  it("parseConfig() refuses unhealthy_interval not more than twice heartbeat_interval, with the reason", () => {
    const e = configError({ ...base, settings: { heartbeat_interval: "5s", unhealthy_interval: "5s" } });
    expect(e.key).toBe("settings.unhealthy_interval");
    expect(e.message).toMatch(/heartbeat_interval/);
  });

  it("parseConfig() turns failsafe on with failsafe_mode (failsafe_max 5 min by default) and refuses a cap shorter than db_heartbeat + unhealthy", () => {
    expect(parseConfig({ ...base, settings: { failsafe_mode: true } }, {}).settings.failsafeMaxMs).toBe(300_000);
    expect(parseConfig({ ...base, settings: { failsafe_mode: true, failsafe_max: "2m" } }, {}).settings.failsafeMaxMs).toBe(120_000);
    expect(parseConfig({ ...base, settings: { failsafe_max: "2m" } }, {}).settings.failsafeMaxMs).toBe(0);
    const e = configError({ ...base, settings: { failsafe_mode: true, failsafe_max: "60s" } });
    expect(e.key).toBe("settings.failsafe_max");
    expect(e.message).toMatch(/at least db_heartbeat_interval \+ unhealthy_interval \(90000 ms\)/);
    expect(configError({ ...base, settings: { failsafe_mode: "yes" } }).key).toBe("settings.failsafe_mode");
  });

  it("parseConfig() names malformed values without echoing them", () => {
    expect(configError({ ...base, settings: { heartbeat_interval: "soon" } }).key).toBe("settings.heartbeat_interval");
    expect(configError({ ...base, shards: 0 }).key).toBe("shards");
    expect(configError({ ...base, secret: "short" }).key).toBe("secret");
    expect(configError({ ...base, cluster_name: undefined }).message).toMatch(/cluster_name: is required/);
    expect(configError({ ...base, store: { backend: "postgres", port: "5432" } }).key).toBe("store.port");
    const e = configError({ ...base, store: { backend: "sqlite", table_prefix: "x; DROP TABLE y" } });
    expect(e.key).toBe("store.table_prefix");
  });

  it("parseConfig() reads node.advertise_port (the port others dial, e.g. a proxy's) and leaves it unset by default", () => {
    expect(parseConfig(base, {}).node.advertisePort).toBeUndefined();
    const c = parseConfig({ ...base, node: { port: 6250, external_hostname: "10.0.0.7", advertise_port: 16250 } }, {});
    expect(c.node).toMatchObject({ port: 6250, externalHostname: "10.0.0.7", advertisePort: 16250 });
  });

  it("parseConfig() rejects a node.advertise_port that is not a port, naming the key", () => {
    expect(configError({ ...base, node: { advertise_port: 0 } }).key).toBe("node.advertise_port");
    expect(configError({ ...base, node: { advertise_port: 70000 } }).key).toBe("node.advertise_port");
    expect(configError({ ...base, node: { advertise_port: "6250" } }).key).toBe("node.advertise_port");
  });

  it("parseConfig() reads store.history_limit (default 1000) and rejects a non-positive one, naming the key", () => {
    expect(parseConfig(base, {}).store).toMatchObject({ history_limit: 1000 });
    expect(parseConfig({ ...base, store: { ...base.store, history_limit: 50 } }, {}).store).toMatchObject({ history_limit: 50 });
    expect(configError({ ...base, store: { ...base.store, history_limit: 0 } }).key).toBe("store.history_limit");
  });

  it("loadConfigFile() reports unreadable and malformed files by name", () => {
    const dir = mkdtempSync(join(tmpdir(), "mc-config-"));
    expect(() => loadConfigFile(join(dir, "missing.yaml"), {})).toThrow(/missing\.yaml.*ENOENT/);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "cluster_name: [unclosed\n");
    expect(() => loadConfigFile(bad, {})).toThrow(/bad\.yaml is not valid YAML/);
    const good = join(dir, "good.yaml");
    writeFileSync(good, `cluster_name: c1\nsecret: \${S}\nstore:\n  backend: sqlite\n  path: ${join(dir, "x.db")}\n`);
    expect(loadConfigFile(good, { S: SECRET }).store).toMatchObject({ backend: "sqlite", table_prefix: "mc_" });
  });
});

describe("media_dir", () => {
  it("checkMediaDir() accepts a writable directory and names media_dir for a missing one", async () => {
    const { checkMediaDir } = await import("../../src/nodes/media-dir.js");
    const dir = mkdtempSync(join(tmpdir(), "mc-media-"));
    await expect(checkMediaDir(dir)).resolves.toBeUndefined();
    await expect(checkMediaDir(join(dir, "absent"))).rejects.toThrow(/media_dir: .*absent is not readable and writable: ENOENT/);
  });
});
