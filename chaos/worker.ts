import { BACKENDS, type Backend } from "./backends.js";
import { killClustersOnExit } from "./cluster.js";
import { runOnce, type RunResult } from "./run-once.js";
import { SCENARIOS } from "./scenarios.js";
import { STORE_HA_BACKENDS, STORE_HA_SCENARIOS } from "./store-ha/scenarios.js";

/**
 * One worker process of `npm run chaos -- --workers N`: takes one run at a time from the parent
 * over IPC, runs it, and sends the result back. A separate process per worker, so each run's fault
 * proxies and load generator have an event loop of their own, as they have with one worker.
 */
export interface Job {
  readonly scenario: string;
  readonly backend: Backend["name"];
  readonly seed: number;
}

export type ToWorker = { readonly kind: "run"; readonly job: Job } | { readonly kind: "stop" };
export type FromWorker = { readonly kind: "ready" } | { readonly kind: "result"; readonly result: RunResult };

const tag = `[w${process.env["MC_CHAOS_WORKER"] ?? "?"}]`;
const log = (line: string) => process.stderr.write(`${tag} ${line}\n`);
const send = (m: FromWorker) => process.send!(m);

killClustersOnExit();
process.on("message", (m: ToWorker) => {
  if (m.kind === "stop") process.exit(0);
  const { scenario, backend, seed } = m.job;
  void runOnce(
    [...SCENARIOS, ...STORE_HA_SCENARIOS].find((s) => s.name === scenario)!,
    ({ ...BACKENDS, ...STORE_HA_BACKENDS } as Record<string, Backend>)[backend]!,
    seed,
    log,
  ).then((result) => send({ kind: "result", result }));
});
send({ kind: "ready" });
