import { appendFileSync } from "node:fs";
import type { AppRequest, AppResponse, CoreappApplication } from "../core/coreapp/application.js";
import { UpstreamSession } from "../testing/upstream-session.js";

/** Options of the example application. */
export interface EchoAppOptions {
  /** The node's name, reported in answers and logs. */
  readonly name: string;
  /** A file to append the JSON event log to (see below); no log when absent. */
  readonly eventLog?: string | undefined;
  /**
   * `host:port` of an exclusive upstream (the chaos harness's oracle) to hold one session with per
   * served shard, opened in `onPromote` with the epoch as fencing token and closed in `onDemote`;
   * every handled request is reported to it as an action. No upstream when absent.
   */
  readonly upstream?: string | undefined;
}

/** How long the example waits for the upstream to connect or answer. */
const UPSTREAM_TIMEOUT_MS = 2000;

/**
 * The example application the dev cluster runs on its coreapps, and the embedding example of the
 * README: an echo "send message" handler that answers which node and epoch served it.
 *
 * With `eventLog` set, it appends one JSON line per promotion, demotion and handled request, stamped
 * with this machine's CLOCK_MONOTONIC (shared by all local processes), so a test can prove that
 * no two coreapps ever served one shard at the same time.
 *
 * With `upstream` set, it behaves like a real single-connection client: the session is the thing
 * that must never exist twice for one shard.
 */
export function createEchoApp(o: EchoAppOptions): CoreappApplication {
  const sessions = new Map<number, UpstreamSession>();
  const record = (event: Record<string, unknown>) => {
    if (!o.eventLog) return;
    const t = Number(process.hrtime.bigint()) / 1e6;
    appendFileSync(o.eventLog, `${JSON.stringify({ t, node: o.name, pid: process.pid, ...event })}\n`);
  };
  return {
    async onPromote(shard, epoch) {
      // A real application opens its single upstream connection here, passing `epoch` upstream.
      // A refused session throws, which makes the SDK give the shard back instead of serving
      // without an upstream.
      if (o.upstream) sessions.set(shard, await UpstreamSession.open(o.upstream, { shard, epoch, node: o.name }, UPSTREAM_TIMEOUT_MS));
      record({ type: "promote", shard, epoch });
    },
    async onDemote(shard, epoch) {
      // ...and closes it here, before the SDK releases the shard to anyone else.
      const session = sessions.get(shard);
      sessions.delete(shard);
      await session?.close();
      record({ type: "demote", shard, epoch });
    },
    async handle(req: AppRequest): Promise<AppResponse> {
      record({ type: "request", shard: req.shard, epoch: req.epoch });
      if (o.upstream) {
        const session = sessions.get(req.shard);
        // With no session this still reports the action on a connection of its own, so that the
        // upstream can see (and the harness count) an action outside any session.
        const via = session ?? (await UpstreamSession.connect(o.upstream, UPSTREAM_TIMEOUT_MS));
        const r = await via.action(req.shard, req.epoch, UPSTREAM_TIMEOUT_MS);
        if (!session) await via.close();
        if (!r.ok) {
          const body = JSON.stringify({ errors: [{ code: 1014, title: "Upstream refused", details: r.error }] });
          return { status: 502, headers: { "content-type": "application/json" }, body };
        }
      }
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
