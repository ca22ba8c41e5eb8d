import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, openSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { afterAll, expect, it } from "vitest";
import { EtcdClient } from "../../src/adapters/etcd/client.js";
import { EtcdStore } from "../../src/adapters/etcd/index.js";
import { StoreConfigurationError, StoreUnavailableError } from "../../src/core/errors.js";
import { type AcquireResult, type Lease, MASTER_LEASE, shardLeaseName } from "../../src/core/ports/leases.js";
import type { AssignResult, ShardAssignment } from "../../src/core/ports/shard-map.js";

/**
 * Tests that need an etcd of their own, started here as a child process on free loopback ports:
 * - killed with SIGKILL and restarted on the same data directory while a store holds leases, owns
 *   shards and watches the map: epochs must only grow, a lease held before the crash must be
 *   honoured afterwards or lapse cleanly, and every failure must be a typed `StoreUnavailableError`;
 * - with authentication enabled: a wrong password must be a `StoreConfigurationError` that names
 *   etcd and the host but not the password.
 * Needs the `etcd` binary (scripts/services.sh installs it); MC_SKIP_ETCD=1 skips this file.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const OP_TIMEOUT_MS = 1000;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One etcd member on loopback; `start()` again after `kill()` reuses its data directory and ports. */
class EtcdProcess {
  private child: ChildProcess | null = null;
  constructor(
    readonly dir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  async start(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const log = openSync(join(this.dir, "etcd.log"), "a");
    this.child = spawn(
      "etcd",
      [
        "--name",
        "restart-test",
        "--data-dir",
        join(this.dir, "data"),
        "--listen-client-urls",
        this.url,
        "--advertise-client-urls",
        this.url,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        `restart-test=${peer}`,
      ],
      { stdio: ["ignore", log, log] },
    );
    const client = new EtcdClient({ hosts: [this.url], operationTimeoutMs: 500, connectTimeoutMs: 200 });
    try {
      for (const end = performance.now() + 20_000; performance.now() < end; await sleep(100)) {
        if (
          await client.get("probe", client.deadline()).then(
            () => true,
            () => false,
          )
        )
          return;
      }
      throw new Error(`etcd did not start; see ${join(this.dir, "etcd.log")}`);
    } finally {
      client.close();
    }
  }

  /** SIGKILL to our own child, by its pid. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
}

/** The call's result, or the StoreUnavailableError it threw; any other error fails the test. */
async function typed<T>(call: () => Promise<T>): Promise<T | StoreUnavailableError> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof StoreUnavailableError) return error;
    throw error;
  }
}

/** Retries a call that may fail (typed) while the client reconnects, until it answers. */
async function answered<T>(call: () => Promise<T>, withinMs = 10_000): Promise<T> {
  const end = performance.now() + withinMs;
  for (;;) {
    const r = await typed(call);
    if (!(r instanceof StoreUnavailableError)) return r;
    if (performance.now() > end) throw r;
    await sleep(100);
  }
}

const held = (r: AcquireResult): Lease => {
  if (!r.acquired) throw new Error(`not acquired: held by ${r.holder}`);
  return r.lease;
};
const ok = (r: AssignResult): ShardAssignment => {
  if (!r.ok) throw new Error(`assign: ${r.reason}`);
  return r.assignment;
};

const hasEtcd = spawnSync("etcd", ["--version"]).status === 0;
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** A private etcd in a fresh temporary directory, removed (and the process killed) after the file. */
async function ownEtcd(): Promise<EtcdProcess> {
  const dir = mkdtempSync(join(tmpdir(), "mc-etcd-"));
  const etcd = new EtcdProcess(dir, await freePort(), await freePort());
  cleanups.push(
    async () => rmSync(dir, { recursive: true, force: true }),
    () => etcd.kill(),
  );
  await etcd.start();
  return etcd;
}

if (process.env.MC_SKIP_ETCD === "1") {
  console.warn("etcd server tests: skipped because MC_SKIP_ETCD=1");
  it.skip("etcd on its own server (skipped: MC_SKIP_ETCD=1)", () => {});
} else if (!hasEtcd) {
  throw new Error("etcd server tests: no `etcd` binary on PATH. Run `bash scripts/services.sh start` or set MC_SKIP_ETCD=1.");
} else {
  it(
    "etcd: after kill -9 and a restart, epochs only grow, leases are honoured or lapse cleanly, and errors are typed",
    { timeout: 90_000 },
    async () => {
      const etcd = await ownEtcd();
      const store = new EtcdStore({ hosts: etcd.url, keyPrefix: "mc/", operationTimeoutMs: OP_TIMEOUT_MS, connectTimeoutMs: 500 });
      cleanups.push(() => store.close());
      await store.migrate();

      const master = held(await store.leases.acquire(MASTER_LEASE, "m1", 60_000));
      const long = held(await store.leases.acquire(shardLeaseName(0), "c1", 60_000));
      const short = held(await store.leases.acquire(shardLeaseName(1), "c2", 2000));
      const s0 = ok(await store.shardMap.assign(0, 0, "c1", master));
      const s1 = ok(await store.shardMap.assign(1, 0, "c2", master));
      const mapBefore = await store.shardMap.read();
      const epochsBefore = [master.epoch, long.epoch, short.epoch];
      const seen: ShardAssignment[] = [];
      const watch = await store.shardMap.watch(
        (changed) => seen.push(...changed),
        () => {},
      );
      cleanups.push(() => watch.close());

      await etcd.kill();
      // While etcd is down, every kind of call fails typed and within its budget.
      const calls: (() => Promise<unknown>)[] = [
        () => store.leases.renew(long, 60_000),
        () => store.leases.acquire("other", "n9", 2000),
        () => store.leases.current(shardLeaseName(0)),
        () => store.shardMap.assign(0, s0.epoch, "c9", master),
        () => store.liveness.beat({ id: "c1.x", name: "c1", role: "coreapp", address: "", meta: {} }),
      ];
      for (const call of calls) {
        const started = performance.now();
        expect(await typed(call)).toBeInstanceOf(StoreUnavailableError);
        expect(performance.now() - started).toBeLessThan(OP_TIMEOUT_MS + 500);
      }
      await sleep(2500); // longer than the short lease's TTL, all of it with etcd down

      await etcd.start();
      // Honoured: etcd restores every lease with its full TTL, so the 60 s lease is still ours.
      expect(await answered(() => store.leases.renew(long, 60_000))).toBe(true);
      expect(await store.leases.current(shardLeaseName(0))).toEqual(long);
      // The map survived exactly, and a write under the restored master lease continues its epochs.
      expect(await store.shardMap.read()).toEqual(mapBefore);
      const s0next = ok(await store.shardMap.assign(0, s0.epoch, "c3", master));
      expect(s0next.epoch).toBeGreaterThan(s0.epoch);
      expect(await store.shardMap.assign(1, 0, "c9", master)).toEqual({ ok: false, reason: "conflict", current: s1 });

      // Lapses cleanly: the unrenewed 2 s lease is gone within its TTL (+ etcd's sweep) of the restart,
      // and its next tenure gets an epoch above every epoch handed out before the crash.
      const lapsed = await answered(async () => {
        for (const end = performance.now() + 4000; performance.now() < end; await sleep(100)) {
          if ((await store.leases.current(shardLeaseName(1))) === null) return true;
        }
        return false;
      });
      expect(lapsed).toBe(true);
      expect(await store.leases.renew(short, 2000)).toBe(false);
      const next = held(await store.leases.acquire(shardLeaseName(1), "c4", 2000));
      expect(next.epoch).toBeGreaterThan(Math.max(...epochsBefore));

      // The watch lost its stream with the crash, resubscribed, and delivered the change.
      for (const end = performance.now() + 5000; performance.now() < end && !seen.some((s) => s.owner === "c3");) await sleep(50);
      expect(seen.filter((s) => s.shard === 0).map((s) => s.epoch)).toEqual([s0.epoch, s0next.epoch]);
    },
  );

  it("etcd: a wrong password is a StoreConfigurationError naming etcd and the host, never the password", { timeout: 60_000 }, async () => {
    const etcd = await ownEtcd();
    // etcd's JSON gateway, so the test needs neither etcdctl nor the etcd3 client.
    const admin = async (path: string, body: object) => {
      const r = await fetch(`${etcd.url}/v3/auth/${path}`, { method: "POST", body: JSON.stringify(body) });
      if (!r.ok) throw new Error(`auth/${path}: ${r.status} ${await r.text()}`);
    };
    await admin("role/add", { name: "root" });
    await admin("user/add", { name: "root", password: "right-horse" });
    await admin("user/grant", { user: "root", role: "root" });
    await admin("enable", {});

    const wrong = new EtcdStore({ hosts: etcd.url, username: "root", password: "s3cret-wrong", keyPrefix: "mc/" });
    cleanups.push(() => wrong.close());
    const error = await wrong.migrate().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreConfigurationError);
    const message = String((error as Error).message);
    expect(message).toContain("etcd");
    expect(message).toContain(`127.0.0.1:${etcd.clientPort}`);
    expect(message).not.toContain("s3cret-wrong");

    const anonymous = new EtcdStore({ hosts: etcd.url, keyPrefix: "mc/" });
    cleanups.push(() => anonymous.close());
    expect(await anonymous.leases.acquire("l", "n1", 2000).catch((e: unknown) => e)).toBeInstanceOf(StoreConfigurationError);

    const right = new EtcdStore({ hosts: etcd.url, username: "root", password: "right-horse", keyPrefix: "mc/" });
    cleanups.push(() => right.close());
    await right.migrate();
    expect((await right.leases.acquire("l", "n1", 2000)).acquired).toBe(true);
  });
}
