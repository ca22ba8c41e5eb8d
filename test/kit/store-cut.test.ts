import { afterAll, expect, it } from "vitest";
import { LocalCluster, randomNamespace } from "../../src/testing/index.js";
import { dropTables } from "../support/store-cleanup.js";

/**
 * LocalCluster on PostgreSQL (MC_PG_URL, default the local test database; MC_SKIP_POSTGRES=1 skips
 * it): `cut()` also blackholes the primary's own store link, so it can neither renew its shard
 * lease nor learn of its replacement from the store; it must give the shard up by its lease
 * deadline, before the next primary opens its session. The tables of the run's prefix are dropped
 * afterwards.
 */
const url = process.env.MC_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const pgUrl = new URL(url);
const prefix = `kit${randomNamespace()}_`;

if (process.env.MC_SKIP_POSTGRES === "1") {
  it.skip("LocalCluster on postgres: skipped because MC_SKIP_POSTGRES=1", () => {});
} else {
  const cluster = new LocalCluster({
    app: "test/kit/upstream-app.mjs",
    masters: 2,
    coreapps: 2,
    store: {
      backend: "postgres",
      host: pgUrl.hostname || "127.0.0.1",
      port: Number(pgUrl.port || 5432),
      user: decodeURIComponent(pgUrl.username) || "postgres",
      ...(pgUrl.password ? { password: decodeURIComponent(pgUrl.password) } : {}),
      database: decodeURIComponent(pgUrl.pathname.replace(/^\//, "")) || "test",
      table_prefix: prefix,
    },
  });

  afterAll(async () => {
    await cluster.stop();
    await dropTables("postgres", url, prefix);
  });

  it("cut() of the primary, its store link included, hands the shard over with never two sessions open", async () => {
    await cluster.start();
    await cluster.waitReady();
    const first = await cluster.primary(0);
    expect(cluster.node(first).storeLink).not.toBeNull();
    cluster.cut(first);
    const next = await cluster.primary(0);
    expect(next).not.toBe(first);
    // The cut node says what happened to it: renewals that failed, a demotion by its lease deadline.
    const seen = await cluster.metrics(first);
    expect(seen).toMatch(new RegExp(`multiconnect_lease_renewal_failures_total\\{node="${first}",lease="shard",reason="error"\\} [1-9]`));
    expect(seen).toMatch(new RegExp(`multiconnect_demotions_total\\{node="${first}",shard="0",cause="lease_deadline"\\} 1`));
    expect(await cluster.metrics(next)).toMatch(/multiconnect_promotions_total\{node="[^"]+",shard="0",cause="named_by_shard_map"\} 1/);
    cluster.heal(first);
    await cluster.waitReady();
    // Let the healed node resync its shard map before the cluster stops. Stopped at once, the new
    // primary's graceful release can free the shard lease while the healed node still acts on its
    // pre-cut view, and it promotes itself again at its old epoch (an epoch regression the oracle
    // reports; no overlap) until its next map read. docs/testing-kit.md describes it under cut().
    await cluster.waitFor(async () => {
      const h = await cluster.health();
      const record = h?.nodes.find((n) => n.name === first);
      return record && record.last_seen_ms < 500 ? true : null;
    }, 30_000);
    await new Promise((r) => setTimeout(r, 3000));
    await cluster.stop();
    const report = cluster.oracle.report();
    expect(report.details).toEqual([]);
    expect(report.overlaps).toBe(0);
    expect(new Set(cluster.oracle.sessions.map((s) => s.node))).toEqual(new Set([first, next]));
  }, 180_000);
}
