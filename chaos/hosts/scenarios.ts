import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import type { FaultProxy } from "../../src/testing/fault-proxy.js";
import type { Oracle } from "../../src/testing/oracle.js";
import type { Backend } from "../backends.js";
import { sleep } from "../cluster.js";
import type { Primary } from "../scenarios.js";
import { cutBetween, cutHost, cutStore, heal, lossToStore, type Host } from "./bed.js";
import type { HostCluster } from "./cluster.js";

/** What a multi-host scenario gets to inject its faults with. */
export interface HostRunContext {
  readonly backend: Backend;
  readonly cluster: HostCluster;
  readonly oracle: Oracle;
  readonly ready: ClusterStatus;
  readonly primary: Primary;
  /** The store host's proxy: every host's store connections go through it. */
  readonly storeProxy: FaultProxy;
  /** Every host of the bed. */
  readonly hosts: readonly Host[];
  readonly rng: () => number;
  /** Records one injected fault (its time is the run's t0 when it is the first). */
  fault(what: string): void;
}

/**
 * A multi-host scenario, judged as chaos/scenarios.ts judges its own: `expect` "failover" (a newer
 * epoch serves; within `failover_bound_ms` when `bounded`), "none" (any promotion is false), "any"
 * (only safety is judged). `servedThrough` names a webapp that must keep serving during the fault.
 */
export interface HostScenario {
  readonly name: string;
  readonly summary: string;
  readonly expect: "failover" | "none" | "any";
  readonly bounded?: boolean;
  readonly hazard?: string;
  /** The client sends through these webapps (first that is listed; default webapp-1). */
  readonly clientWebapps?: readonly string[];
  /** A webapp whose answers must not stop for longer than `maxGapMs` during the fault. */
  readonly servedThrough?: { readonly webapp: string; readonly maxGapMs: number };
  inject(ctx: HostRunContext): Promise<void>;
}

/** How long a partition lasts: past unhealthy_interval (3 s) + the lease TTL (2.5 s), so a standby must take over. */
const CUT_MS = 6000;

function primaryHost(ctx: HostRunContext): Host {
  return ctx.cluster.host(ctx.primary.name);
}

function primaryMasterName(ctx: HostRunContext): string {
  const id = ctx.ready.primary_master?.id;
  const name = ctx.ready.nodes.find((n) => n.id === id)?.name;
  if (!name) throw new Error("no primary master in the health report");
  return name;
}

/** Applies `cut` to `hosts`, waits `ms`, and heals them. */
async function partition(
  ctx: HostRunContext,
  what: string,
  hosts: readonly Host[],
  cut: (h: Host) => Promise<void>,
  ms: number,
): Promise<void> {
  ctx.fault(what);
  try {
    await Promise.all(hosts.map(cut));
    await sleep(ms);
  } finally {
    await Promise.all(hosts.map(heal));
  }
}

/** The multi-host scenarios, in the order the table prints them. */
export const HOST_SCENARIOS: HostScenario[] = [
  {
    name: "coreapp-host-cut",
    summary: `the primary coreapp's host cut from every other host and the store for ${CUT_MS} ms; it still reaches the upstream`,
    expect: "failover",
    bounded: true,
    async inject(ctx) {
      await partition(ctx, `cut host ${primaryHost(ctx).name} (upstream kept)`, [primaryHost(ctx)], (h) => cutHost(h), CUT_MS);
    },
  },
  {
    name: "master-host-cut",
    summary: `the primary master's host cut from every other host and the store for ${CUT_MS} ms (no coreapp failover expected)`,
    expect: "none",
    async inject(ctx) {
      const host = ctx.cluster.host(primaryMasterName(ctx));
      await partition(ctx, `cut host ${host.name}`, [host], (h) => cutHost(h), CUT_MS);
    },
  },
  {
    name: "asymmetric",
    summary: `the masters cannot reach the primary coreapp's host (nor it them) for ${CUT_MS} ms; it still reaches the store and the webapps`,
    expect: "failover",
    bounded: true,
    async inject(ctx) {
      const masters = ctx.cluster.running("master").map((m) => m.host);
      await partition(ctx, `cut ${primaryHost(ctx).name} from the masters`, [primaryHost(ctx)], (h) => cutBetween(h, masters), CUT_MS);
    },
  },
  {
    name: "store-delay",
    summary: "the store host's link delayed 300 ± 100 ms each way (every host) for 6 s, through the harness's proxy",
    expect: "none",
    async inject(ctx) {
      ctx.fault("store link delay 300 ± 100 ms");
      ctx.storeProxy.set({ kind: "delay", delayMs: 300, jitterMs: 100 });
      await sleep(6000);
      ctx.storeProxy.set({ kind: "pass" });
    },
  },
  {
    name: "store-loss",
    summary: "5 % packet loss each way on every host's store link for 8 s (iptables statistic match: real loss, TCP retransmits)",
    expect: "none",
    async inject(ctx) {
      await partition(
        ctx,
        "store link loss 5 %",
        ctx.cluster.running().map((n) => n.host),
        (h) => lossToStore(h, 0.05),
        8000,
      );
    },
  },
  {
    name: "store-host-cut",
    summary: `the store host cut from every host for ${CUT_MS} ms (longer than the lease), then healed`,
    expect: "any",
    async inject(ctx) {
      await partition(
        ctx,
        "cut the store host",
        ctx.cluster.running().map((n) => n.host),
        cutStore,
        CUT_MS,
      );
    },
  },
  {
    name: "webapp-host-cut",
    summary: `webapp-1's host cut from everything (the client too) for ${CUT_MS} ms; the client sends through webapp-2, which must keep serving`,
    expect: "none",
    clientWebapps: ["webapp-2"],
    servedThrough: { webapp: "webapp-2", maxGapMs: 2000 },
    async inject(ctx) {
      await partition(ctx, "cut host of webapp-1 (client too)", [ctx.cluster.host("webapp-1")], (h) => cutHost(h, false), CUT_MS);
    },
  },
];

/**
 * The scenarios of the CI profile (chaos/ci.sh): the four partitions, about 20 s a run on a quiet
 * machine. Not the store-link delay and loss: whether they stay below the thresholds depends on the
 * machine's load as much as on the SDK (docs/reliability.md, "Measured on the bed").
 */
export const HOST_CI_SCENARIOS = ["coreapp-host-cut", "master-host-cut", "asymmetric", "webapp-host-cut"];
