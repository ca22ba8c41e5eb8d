import { openClusterAccess } from "../../src/cli/cluster-access.js";
import { loadConfigFile } from "../../src/config/load.js";
import { failoverReport, measureFailover, timingFor, type FailoverSession } from "../failover.js";
import { measureSwitchover, switchoverReport, type SwitchoverSession } from "../switchover.js";
import { ClientLoop } from "./client-loop.js";
import { BenchCluster } from "./cluster.js";
import type { BenchProfile, SettingProfile } from "./profiles.js";
import type { ItemReport } from "./report.js";
import { BACKENDS, benchStore } from "./stores.js";

/**
 * Items 1 and 2 share their clusters: starting five backends × two settings of six processes each
 * is most of the cost, so one cluster serves every failover run (a replacement coreapp is started
 * after each kill) and the switchover runs of its setting.
 */
export async function runClusterItems(
  p: BenchProfile,
  items: ReadonlySet<number>,
  dir: string,
  say: (m: string) => void,
): Promise<ItemReport[]> {
  const failovers: FailoverSession[] = [];
  const switchovers: SwitchoverSession[] = [];
  for (const backend of BACKENDS) {
    const settings: SettingProfile[] = [];
    if (items.has(1) && p.failover.backends.includes(backend)) settings.push(...p.failover.settings);
    if (items.has(2) && p.switchover.backends.includes(backend) && !settings.includes(p.switchover.setting))
      settings.push(p.switchover.setting);
    for (const setting of settings) {
      const store = benchStore(backend, dir);
      const timing = await timingFor(backend, setting);
      const cluster = new BenchCluster({ store, settings: setting.settings, parentDir: dir, eventLog: true });
      say(`${backend} ${setting.label}: starting a cluster (${cluster.dir})`);
      await cluster.start();
      const loop = new ClientLoop(cluster.webappPort, { concurrency: 1, paceMs: 10 });
      try {
        const ready = await cluster.waitSteady(60_000);
        // Promotions up to the first steady state are the cluster forming; later ones need a cause.
        const formed = Math.max(...ready.shards.map((s) => s.epoch));
        const explained = new Set<number>();
        if (items.has(2) && setting === p.switchover.setting && p.switchover.backends.includes(backend)) {
          const session: SwitchoverSession = { backend, setting, runs: [], errors: [] };
          const access = await openClusterAccess(loadConfigFile(cluster.config));
          try {
            for (let i = 0; i < p.switchover.runs; i++) {
              try {
                const r = await measureSwitchover(cluster, access, timing);
                explained.add(r.epoch);
                if (r.error) session.errors.push(`the master answered ${r.error}`);
                else session.runs.push(r);
                say(
                  `${backend} switchover ${i + 1}/${p.switchover.runs}: client gap ${r.clientGapMs.toFixed(1)} ms, failed ${r.failed}${r.error ? `; master answered ${r.error}` : ""}`,
                );
              } catch (error) {
                session.errors.push(String((error as Error).message));
                say(`${backend} switchover ${i + 1}: ${String(error)}`);
              }
            }
          } finally {
            await access.close();
          }
          switchovers.push(session);
        }
        if (items.has(1) && p.failover.settings.includes(setting) && p.failover.backends.includes(backend)) {
          const session: FailoverSession = {
            backend,
            setting,
            timing,
            boundMs: ready.failover_bound_ms,
            runs: [],
            errors: [],
            spurious: [],
          };
          loop.start();
          for (let i = 0; i < p.failover.runs; i++) {
            try {
              const r = await measureFailover(cluster, loop, timing);
              session.runs.push(r);
              explained.add(r.epoch);
              say(
                `${backend} ${setting.label} failover ${i + 1}/${p.failover.runs}: ${r.totalMs.toFixed(0)} ms ` +
                  `(detect ${r.detectionMs?.toFixed(0)}, notify ${r.notifyMs?.toFixed(0)}, lease ${r.leaseWaitMs?.toFixed(0)}, ` +
                  `promote ${r.promotionMs?.toFixed(0)}, route ${r.routeMs?.toFixed(0)})`,
              );
            } catch (error) {
              session.errors.push(String((error as Error).message));
              say(`${backend} ${setting.label} failover ${i + 1}: ${String(error)}`);
              await cluster.waitSteady(60_000).catch(() => {});
            }
          }
          await loop.stop();
          for (const m of cluster.nodes.filter((n) => n.role === "master")) m.log.poll();
          session.spurious = cluster.nodes
            .filter((n) => n.role === "master")
            .flatMap((m) => m.log.lines)
            .filter((l) => l.msg === "promoted" && (l["epoch"] as number) > formed && !explained.has(l["epoch"] as number))
            .map((l) => `epoch ${String(l["epoch"])}: ${String(l["reason"])}`);
          failovers.push(session);
        }
      } finally {
        await loop.close();
        await cluster.stop();
        await store.cleanup().catch((e: unknown) => say(`cleanup of ${backend} failed: ${String(e)}`));
      }
    }
  }
  const out: ItemReport[] = [];
  if (items.has(1)) out.push(failoverReport(failovers));
  if (items.has(2)) out.push(switchoverReport(switchovers));
  return out;
}
