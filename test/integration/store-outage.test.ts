import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { refusedPort } from "../../src/testing/net.js";
import { killPrivateRedises, startPrivateRedis } from "../support/private-redis.js";
import { CLI, ProcessCluster, sleep } from "../support/process-cluster.js";

/**
 * Store faults with real node processes: the store stops while a cluster runs on it (typed errors
 * and self-demotion, never a crash or two primaries), and bad credentials at start (a clear error
 * naming the backend and host, never the password). A private redis-server, never the shared one.
 */
let cluster: ProcessCluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
  await killPrivateRedises();
});

describe("store outages with real processes", { timeout: 120_000 }, () => {
  it("redis shutdown nosave under a running cluster: the primary demotes itself, no node crashes, and the cluster recovers when the server is back", async () => {
    const port = await refusedPort();
    await startPrivateRedis(port);
    const c = (cluster = new ProcessCluster({
      store: { backend: "redis", host: "127.0.0.1", port, key_prefix: "outage:", operation_timeout: "300ms" },
    }));
    await c.start();
    const ready = await c.waitReady();
    const primary = ready.nodes.find((n) => n.gateway_status === "connected")!;

    spawnSync("redis-cli", ["-p", String(port), "shutdown", "nosave"]);
    await c.waitFor(async () => (c.events().some((e) => e.type === "demote" && e.node === primary.name) ? true : null), 10_000);
    await sleep(2000);
    expect(c.nodes.filter((n) => n.child.exitCode !== null || n.child.signalCode !== null)).toEqual([]);
    const log = readFileSync(`${c.dir}/${primary.name}.log`, "utf8");
    expect(log).toMatch(new RegExp(`redis 127\\.0\\.0\\.1:${port}`));
    expect(log).toMatch(/confirmation deadline passed/);

    await startPrivateRedis(port);
    const again = await c.waitReady(30_000);
    const served = await c.send();
    expect(served.ok).toBe(true);
    expect(again.shards[0]!.owner).not.toBeNull();
    expect(c.overlaps()).toEqual([]);
  });

  it("multiconnect start with a wrong password exits with an error naming redis and the host, never the password", async () => {
    const port = await refusedPort();
    await startPrivateRedis(port, ["--requirepass", "the-right-one-123"]);
    const c = new ProcessCluster({ store: {} });
    const config = `${c.dir}/wrong.yaml`;
    writeFileSync(
      config,
      stringify({
        cluster_name: "wrong",
        secret: "integration-test-secret-0123456789",
        store: { backend: "redis", host: "127.0.0.1", port, password: "Wr0ng-Passw0rd-XYZ" },
      }),
    );
    const r = spawnSync(process.execPath, [CLI, "start", "--config", config, "--role", "master"], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`redis.*127\\.0\\.0\\.1:${port}`));
    expect(r.stderr + r.stdout).not.toContain("Wr0ng-Passw0rd-XYZ");
  });

  it("multiconnect start with a malformed config exits 2 naming the key, before touching any store", async () => {
    const c = new ProcessCluster({ store: {} });
    const config = `${c.dir}/bad.yaml`;
    writeFileSync(
      config,
      stringify({
        cluster_name: "bad",
        secret: "integration-test-secret-0123456789",
        settings: { unhealthy_interval: "1s", heartbeat_interval: "1s" },
        store: { backend: "sqlite", path: `${c.dir}/never.db` },
      }),
    );
    const r = spawnSync(process.execPath, [CLI, "start", "--config", config, "--role", "master"], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/config: settings\.unhealthy_interval: must be at least twice heartbeat_interval/);
    expect(spawnSync("test", ["-e", `${c.dir}/never.db`]).status).not.toBe(0);
  });
});
