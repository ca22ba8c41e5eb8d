import { afterAll, beforeAll, describe, expect, it } from "vitest";
// A user writes `from "multiconnect/testing"`; this repository's tests import the sources.
import { LocalCluster } from "../../src/testing/index.js";

/**
 * The example of docs/testing-kit.md: a local cluster running the application in
 * upstream-app.mjs, its primary killed and then its next primary cut off the network, and the
 * oracle's verdict that no two upstream sessions of the shard were ever open at once. Then the
 * same check on a broken application (its onDemote keeps the session), to show it can fail.
 */
const cluster = new LocalCluster({ app: "test/kit/upstream-app.mjs", masters: 2, coreapps: 3 });

beforeAll(async () => {
  await cluster.start();
  await cluster.waitReady();
}, 120_000);

afterAll(() => cluster.stop());

it("the application never holds two upstream sessions of a shard through a kill and a cut", async () => {
  expect((await cluster.request("/send", { body: "before" })).status).toBe(200);

  const first = await cluster.primary(0);
  await cluster.kill(first);
  await cluster.waitReady();
  const second = await cluster.primary(0);
  expect(second).not.toBe(first);

  cluster.cut(second);
  const third = await cluster.waitFor(async () => {
    const p = await cluster.primary(0);
    return p !== second && cluster.oracle.current(0)?.node === p ? p : null;
  }, 60_000);
  cluster.heal(second);
  await cluster.waitReady();
  expect((await cluster.request("/send", { body: "after" })).status).toBe(200);

  await cluster.stop();
  const report = cluster.oracle.report();
  expect(report.details).toEqual([]);
  expect(report.overlaps).toBe(0);
  expect(report.staleAccepted).toBe(0);
  expect(report.epochRegressions).toBe(0);
  expect(report.sessions).toBeGreaterThanOrEqual(3);
  expect(new Set(cluster.oracle.sessions.map((s) => s.node))).toEqual(new Set([first, second, third]));
}, 180_000);

describe("a broken application", () => {
  const broken = new LocalCluster({ app: "test/kit/upstream-app.mjs", masters: 2, coreapps: 2, env: { MC_KIT_BROKEN: "1" } });
  afterAll(() => broken.stop());

  it("whose onDemote keeps its upstream session is caught by the oracle after a cut", async () => {
    await broken.start();
    await broken.waitReady();
    const first = await broken.primary(0);
    broken.cut(first);
    const next = await broken.primary(0);
    expect(next).not.toBe(first);
    // The cut primary learns from the store that it was replaced and demotes — keeping its session.
    await broken.waitFor(async () => (broken.oracle.report().overlaps > 0 ? true : null), 60_000, "the oracle to see an overlap");
    broken.heal(first);
    expect(broken.oracle.report().details.join("\n")).toMatch(/overlap/i);
  }, 180_000);
});
