import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/adapters/memory/index.js";
import { FramedTransport } from "../../src/adapters/transport/index.js";
import { SystemClock } from "../../src/core/clock.js";
import type { ForwardRequest } from "../../src/core/ports/transport.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { Router } from "../../src/core/webapp/router.js";

/**
 * kill -9 of a primary coreapp's process mid-request (a real process, the built transport in
 * dist/): a request it had not acknowledged is served by the new owner, once; one it had
 * acknowledged fails as in doubt and is not sent again. Needs `npm run build`.
 */
const SECRET = "router-kill-secret-0123456789-abcdef";
const CLUSTER = "router-kill";
const DIST = fileURLToPath(new URL("../../dist/adapters/transport/index.js", import.meta.url));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A coreapp process that holds every request: before acknowledging it, or (path /ack) after. */
async function holdingCoreapp(): Promise<{ id: string; port: number; child: ChildProcess; arrivals: string[] }> {
  const id = `old.${randomBytes(3).toString("hex")}`;
  const script = `
    const { FramedTransport } = await import(${JSON.stringify(DIST)});
    const t = new FramedTransport({ nodeId: ${JSON.stringify(id)}, clusterName: ${JSON.stringify(CLUSTER)}, secret: ${JSON.stringify(SECRET)} });
    const server = await t.listen(${JSON.stringify(id)}, "127.0.0.1", 0, {
      forward: async (_f, r, started) => {
        if (r.path === "/ack") await started();
        console.log("arrived " + r.path);
        return new Promise(() => {});
      },
    });
    console.log("port " + server.port);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  cleanups.push(() => void child.kill("SIGKILL"));
  const arrivals: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the coreapp process did not start listening within 30 s")), 30_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.startsWith("port ")) {
        clearTimeout(timer);
        resolve(Number(line.slice(5)));
      } else if (line.startsWith("arrived ")) arrivals.push(line.slice(8));
    });
  });
  return { id, port, child, arrivals };
}

async function setup() {
  const store = new MemoryStore();
  const old = await holdingCoreapp();
  await store.liveness.beat({ id: old.id, name: "old", role: "coreapp", address: `127.0.0.1:${old.port}`, meta: {} });
  const nextId = `next.${randomBytes(3).toString("hex")}`;
  const served: ForwardRequest[] = [];
  const nextT = new FramedTransport({ nodeId: nextId, clusterName: CLUSTER, secret: SECRET });
  const server = await nextT.listen(nextId, "127.0.0.1", 0, {
    forward: async (_f, r, started) => {
      await started();
      served.push(r);
      return { outcome: "served", response: { status: 200, headers: {}, body: Buffer.from("next") } };
    },
  });
  await store.liveness.beat({ id: nextId, name: "next", role: "coreapp", address: `127.0.0.1:${server.port}`, meta: {} });
  const webT = new FramedTransport({
    nodeId: `web.${randomBytes(3).toString("hex")}`,
    clusterName: CLUSTER,
    secret: SECRET,
    inProcessShortcut: false,
  });
  const options = { shards: 1, retryWindowMs: 5000, forwardTimeoutMs: 10_000 };
  const router = new Router(store.shardMap, store.liveness, webT, new SystemClock(), options, silentLogger);
  store.storage.shards.set(0, { shard: 0, owner: old.id, epoch: 1 });
  await router.start();
  cleanups.push(async () => {
    await router.close();
    await webT.close();
    await server.close();
    await nextT.close();
  });
  const failover = () => {
    store.storage.shards.set(0, { shard: 0, owner: nextId, epoch: 2 });
    old.child.kill("SIGKILL");
  };
  return { old, nextId, served, router, failover };
}

const waitFor = async (cond: () => boolean, what: string) => {
  const deadline = performance.now() + 20_000;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`${what} did not happen within 20 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("kill -9 of the primary coreapp's process mid-request", () => {
  it("a request it had not acknowledged is served by the new owner, once", async () => {
    const c = await setup();
    const pending = c.router.forward({ shard: 0, method: "POST", path: "/no-ack", headers: {}, body: Buffer.from("m") });
    await waitFor(() => c.old.arrivals.includes("/no-ack"), "the request reaching the old owner");
    c.failover();
    const result = await pending;
    expect(result).toMatchObject({ ok: true, node: c.nextId, epoch: 2 });
    expect(c.served.map((r) => r.path)).toEqual(["/no-ack"]);
  }, 60_000);

  it("a request it had acknowledged fails as in doubt and is not sent again", async () => {
    const c = await setup();
    const pending = c.router.forward({ shard: 0, method: "POST", path: "/ack", headers: {}, body: Buffer.from("m") });
    await waitFor(() => c.old.arrivals.includes("/ack"), "the old owner starting the request");
    c.failover();
    const result = await pending;
    expect(result).toMatchObject({ ok: false, inDoubt: true });
    expect(c.served).toEqual([]);
  }, 60_000);
});
