import { get, createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStorage, MemoryStore } from "../../src/adapters/memory/index.js";
import { detectedAfterMs, type ConsoleRoutes } from "../../src/console/feed.js";
import { mountConsole, parseSwitchover } from "../../src/console/routes.js";
import type { ConsolePatch, ConsoleState } from "../../src/console/types.js";
import type { ShardAssignment } from "../../src/core/ports/shard-map.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { deriveTiming, DEFAULT_SETTINGS } from "../../src/core/timing.js";
import { ReservedRoutes } from "../../src/nodes/webapp-admin.js";

/** A shard map held in memory, as a webapp's router holds it. */
class FakeRoutes implements ConsoleRoutes {
  readonly map = new Map<number, ShardAssignment>();
  private readonly listeners = new Set<(c: readonly ShardAssignment[]) => void>();
  constructor(readonly shards: number) {}
  route(shard: number) {
    return this.map.get(shard) ?? null;
  }
  onChange(l: (c: readonly ShardAssignment[]) => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  move(a: ShardAssignment) {
    this.map.set(a.shard, a);
    for (const l of this.listeners) l([a]);
  }
}

/** Counts the store reads the console makes. */
function counting(store: MemoryStore) {
  const counts = { liveness: 0, history: 0, shardMap: 0 };
  const { liveness, history, shardMap } = store;
  const list = liveness.list.bind(liveness);
  const hist = history.list.bind(history);
  const read = shardMap.read.bind(shardMap);
  liveness.list = () => (counts.liveness++, list());
  history.list = (q) => (counts.history++, hist(q));
  shardMap.read = () => (counts.shardMap++, read());
  return counts;
}

/** One browser's event stream: the events it got, parsed. */
class Stream {
  readonly events: { event: string; data: unknown }[] = [];
  private buffer = "";
  private constructor(readonly res: IncomingMessage) {
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      this.buffer += chunk;
      let end: number;
      while ((end = this.buffer.indexOf("\n\n")) >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) this.events.push({ event, data: JSON.parse(data) });
      }
    });
  }
  static open(url: string): Promise<Stream> {
    return new Promise((resolve, reject) => get(url, (res) => resolve(new Stream(res))).once("error", reject));
  }
  state(): ConsoleState | undefined {
    return this.events.find((e) => e.event === "state")?.data as ConsoleState | undefined;
  }
  patches(): ConsolePatch[] {
    return this.events.filter((e) => e.event === "patch").map((e) => e.data as ConsolePatch);
  }
  close(): void {
    this.res.destroy();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not reached within ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

let server: Server | null = null;
const streams: Stream[] = [];

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server!.close(r));
    server = null;
  }
});

async function serve(shards: number, refreshMs: number) {
  const store = new MemoryStore(new MemoryStorage());
  const counts = counting(store);
  const routes = new FakeRoutes(shards);
  const reserved = new ReservedRoutes(undefined);
  const feed = mountConsole(reserved, {
    store,
    timing: deriveTiming(DEFAULT_SETTINGS),
    routes,
    servedBy: "test",
    actionsEnabled: false,
    log: silentLogger,
    refreshMs,
  });
  server = createServer((req, res) => void reserved.handle(req, res));
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const open = async () => {
    const s = await Stream.open(`${base}/console/events`);
    streams.push(s);
    return s;
  };
  return { store, counts, routes, feed, base, open };
}

describe("console feed", () => {
  it("a hundred browsers cost the store what one does: one shared read per period, none while nobody watches", async () => {
    const refreshMs = 100;
    const c = await serve(4, refreshMs);
    await c.store.liveness.beat({ id: "coreapp-1.a", name: "coreapp-1", role: "coreapp", address: "h:1", meta: { shard: null } });

    const one = await c.open();
    await until(() => one.state(), "the first browser's state");
    const start1 = c.counts.history;
    let t = Date.now();
    await sleep(1000);
    const rounds1 = c.counts.history - start1;
    const ms1 = Date.now() - t;
    one.close();
    await until(() => c.feed.clientCount === 0, "the browser to leave");

    await sleep(3 * refreshMs);
    const idle = c.counts.history;
    await sleep(5 * refreshMs);
    expect(c.counts.history, "store reads while no browser watches").toBe(idle);

    const many = await Promise.all(Array.from({ length: 100 }, () => c.open()));
    await until(() => many.every((s) => s.state()), "every browser's state");
    const start100 = c.counts.history;
    t = Date.now();
    await sleep(1000);
    const rounds100 = c.counts.history - start100;
    const ms100 = Date.now() - t;
    console.log(
      `console feed: 1 browser ${rounds1} store rounds in ${ms1} ms; 100 browsers ${rounds100} rounds in ${ms100} ms (period ${refreshMs} ms)`,
    );
    // Bounded by time (one round per period, plus a little for timers), never by the number of browsers.
    expect(rounds100).toBeLessThanOrEqual(Math.ceil(ms100 / refreshMs) + 2);
    expect(rounds100).toBeGreaterThan(0);
    // Every read of the round is shared: as many liveness lists as history lists (two each: status and meta).
    expect(c.counts.liveness).toBe(2 * c.counts.history);
    expect(many.every((s) => s.state()!.shards.length === 4)).toBe(true);
  });

  it("a promotion reaches every browser from the in-memory map, also while the store is unreachable", async () => {
    const c = await serve(2, 60_000);
    const a = await c.open();
    const b = await c.open();
    await until(() => a.state() && b.state(), "both states");
    expect(a.state()!.shards[1]).toMatchObject({ shard: 1, owner: null, epoch: 0 });
    c.store.unavailable = true;
    c.routes.move({ shard: 1, owner: "coreapp-2.xyz", epoch: 7 });
    for (const s of [a, b]) {
      const patch = await until(() => s.patches().find((p) => p.shards?.some((x) => x.shard === 1)), "the shard patch");
      // Only the shard that moved is sent, with the owner's name from its id.
      expect(patch.shards).toEqual([{ shard: 1, owner: "coreapp-2.xyz", ownerName: "coreapp-2", epoch: 7, serving: false }]);
    }
    const error = await until(() => a.patches().find((p) => p.storeError), "the store error");
    expect(error.storeError).toMatch(/could not read the store/);
  });

  it("a browser that connects later gets the whole current state first", async () => {
    const c = await serve(3, 60_000);
    c.routes.move({ shard: 2, owner: "coreapp-3.q", epoch: 4 });
    const s = await c.open();
    const state = await until(() => s.state(), "state");
    expect(state.shards.map((x) => x.epoch)).toEqual([0, 0, 4]);
    expect(state.shardCount).toBe(3);
    expect(state.actionsEnabled).toBe(false);
  });

  it("GET /console serves the page with a strict content security policy; GET /console/state the same state as JSON", async () => {
    const c = await serve(1, 60_000);
    const page = await fetch(`${c.base}/console`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toMatch(/default-src 'none'; script-src 'self'/);
    const html = await page.text();
    expect(html).toContain('src="console/app.js"');
    expect(html).not.toMatch(/https?:\/\//);
    const css = await fetch(`${c.base}/console/app.css`);
    expect(css.headers.get("content-type")).toMatch(/text\/css/);
    const state = (await (await fetch(`${c.base}/console/state`)).json()) as ConsoleState;
    expect(state.shards).toEqual([{ shard: 0, owner: null, ownerName: null, epoch: 0, serving: false }]);
    const slash = await fetch(`${c.base}/console/`, { redirect: "manual" });
    expect(slash.status).toBe(301);
  });
});

describe("detectedAfterMs()", () => {
  it("is the deciding detector's figure: heartbeat silence, record age, or time not serving; null without a detector", () => {
    const evidence = { ownSilenceMs: 1523, secondarySilencesMs: [1600], recordAgeMs: 1836, notServingForMs: 40 };
    expect(detectedAfterMs("heartbeat detector: silent 1523 ms to the primary master and to 1 secondary master(s)", evidence)).toBe(1523);
    expect(detectedAfterMs("store detector: liveness record 1836 ms old", evidence)).toBe(1836);
    expect(detectedAfterMs("not serving its assignment for 40 ms", evidence)).toBe(40);
    expect(detectedAfterMs("the owner gave up this assignment: lease lost", { ...evidence, ended: "lease lost" })).toBe(40);
    expect(detectedAfterMs("shard has no owner", {})).toBeNull();
    expect(detectedAfterMs("heartbeat detector: silent", { ownSilenceMs: "x" })).toBeNull();
  });
});

describe("parseSwitchover()", () => {
  it("accepts a shard with an optional target and force; names the problem otherwise", () => {
    expect(parseSwitchover(Buffer.from('{"shard": 3}'))).toEqual({ shard: 3 });
    expect(parseSwitchover(Buffer.from('{"shard": 0, "to": "coreapp-2", "force": true}'))).toEqual({
      shard: 0,
      to: "coreapp-2",
      force: true,
    });
    expect(() => parseSwitchover(Buffer.from("nope"))).toThrow(/not JSON/);
    expect(() => parseSwitchover(Buffer.from("[]"))).toThrow(/JSON object/);
    expect(() => parseSwitchover(Buffer.from('{"shard": -1}'))).toThrow(/shard must be/);
    expect(() => parseSwitchover(Buffer.from('{"shard": 1.5}'))).toThrow(/shard must be/);
    expect(() => parseSwitchover(Buffer.from('{"shard": 1, "to": ""}'))).toThrow(/to must be/);
    expect(() => parseSwitchover(Buffer.from('{"shard": 1, "force": "yes"}'))).toThrow(/force must be/);
  });
});
