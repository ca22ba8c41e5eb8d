import { appendFileSync } from "node:fs";
import type { AppRequest, AppResponse, CoreappApplication } from "../core/coreapp/application.js";

/**
 * The example application the dev cluster runs on its coreapps, and the embedding example of the
 * README: an echo "send message" handler that answers which node and epoch served it.
 *
 * With `eventLog` set, it appends one JSON line per promotion, demotion and handled request, stamped
 * with this machine's CLOCK_MONOTONIC (shared by all local processes), so a test can prove that
 * no two coreapps ever served one shard at the same time.
 */
export function createEchoApp(o: { name: string; eventLog?: string }): CoreappApplication {
  const record = (event: Record<string, unknown>) => {
    if (!o.eventLog) return;
    const t = Number(process.hrtime.bigint()) / 1e6;
    appendFileSync(o.eventLog, `${JSON.stringify({ t, node: o.name, pid: process.pid, ...event })}\n`);
  };
  return {
    onPromote(shard, epoch) {
      // A real application opens its single upstream connection here, passing `epoch` upstream.
      record({ type: "promote", shard, epoch });
    },
    onDemote(shard, epoch) {
      // ...and closes it here, before the SDK releases the shard to anyone else.
      record({ type: "demote", shard, epoch });
    },
    handle(req: AppRequest): AppResponse {
      record({ type: "request", shard: req.shard, epoch: req.epoch });
      const body = JSON.stringify({
        served_by: o.name,
        shard: req.shard,
        epoch: req.epoch,
        method: req.method,
        path: req.path,
        echo: Buffer.from(req.body).toString("utf8"),
      });
      return { status: 200, headers: { "content-type": "application/json" }, body };
    },
  };
}
