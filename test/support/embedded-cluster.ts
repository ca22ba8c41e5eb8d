import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type Config } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import type { AppRequest, CoreappApplication } from "../../src/core/coreapp/application.js";
import type { Logger } from "../../src/core/ports/logger.js";
import { createCoreapp, createMaster, type AnyNode } from "../../src/nodes/compose.js";
import { createLogger } from "../../src/nodes/logger.js";

/** A cluster of masters and coreapps embedded in the test process: SQLite store, real HTTP transport. */
export interface EmbeddedCluster {
  readonly config: Config;
  /** Every request the coreapps' application handled, in order. */
  readonly handled: AppRequest[];
  readonly nodes: AnyNode[];
  /** Resolves once every shard has a serving primary coreapp. */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

/** What each coreapp does with a request; the default answers 201 "ok from <name>". */
export type Handle = (req: AppRequest, coreapp: string) => ReturnType<CoreappApplication["handle"]>;

/**
 * Starts 2 masters and 3 coreapps on a fresh SQLite file with short intervals; the caller adds
 * webapps (or framework adapters) from `config`. `webapp` overrides the config's webapp section.
 */
export async function startEmbeddedCluster(
  o: { shards?: number; handle?: Handle; logger?: Logger; webapp?: ConfigInput["webapp"] } = {},
): Promise<EmbeddedCluster> {
  const dir = mkdtempSync(join(tmpdir(), "mc-embed-"));
  const config = parseConfig(
    {
      cluster_name: "embedded",
      shards: o.shards ?? 2,
      secret: "embedded-test-secret-0123456789",
      settings: { heartbeat_interval: "100ms", unhealthy_interval: "600ms", db_heartbeat_interval: "200ms", db_unhealthy_interval: "1s" },
      store: { backend: "sqlite", path: join(dir, "cluster.db") },
      node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
      ...(o.webapp ? { webapp: o.webapp } : {}),
    } satisfies ConfigInput,
    {},
  );
  const logger = o.logger ?? createLogger("silent");
  const handled: AppRequest[] = [];
  const handle: Handle = o.handle ?? ((_req, name) => ({ status: 201, headers: { "x-app": name }, body: `ok from ${name}` }));
  const app = (name: string): CoreappApplication => ({
    onPromote() {},
    onDemote() {},
    handle(req) {
      handled.push(req);
      return handle(req, name);
    },
  });
  const nodes: AnyNode[] = [];
  for (const name of ["m1", "m2"]) nodes.push(await createMaster({ config, name, port: 0, logger }));
  const coreapps = await Promise.all(["c1", "c2", "c3"].map((name) => createCoreapp({ config, name, port: 0, app: app(name), logger })));
  nodes.push(...coreapps);
  for (const n of nodes) await n.start();
  const shards = config.shards;
  return {
    config,
    handled,
    nodes,
    async ready() {
      for (let i = 0; i < 400; i++) {
        if (coreapps.filter((c) => c.state().serving).length === shards) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error("the embedded cluster did not become ready");
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
