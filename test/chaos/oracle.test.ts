import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { sleep } from "../../chaos/cluster.js";
import { Oracle, type OracleMode } from "../../src/testing/oracle.js";

/**
 * The chaos oracle driven over real loopback sockets with its wire protocol (newline-delimited JSON,
 * one reply line per request), as the example app's upstream session speaks it: scripted sequences
 * of opens, actions and closes, and the report they must produce.
 */

let oracle: Oracle;
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await oracle.close();
});

async function start(mode: OracleMode = "strict"): Promise<void> {
  oracle = new Oracle(mode);
  await oracle.start();
}

/** One client connection: `send` writes a message and resolves with the oracle's reply. */
interface Client {
  send(m: Record<string, unknown>): Promise<{ ok: boolean; error?: string }>;
  /** Closes the connection and waits until the oracle has recorded the close. */
  close(): Promise<void>;
  readonly closed: Promise<void>;
}

async function client(): Promise<Client> {
  const [host, port] = oracle.address.split(":");
  const socket = net.connect(Number(port), host);
  sockets.push(socket);
  socket.on("error", () => {});
  await new Promise((r) => socket.once("connect", r));
  const replies: ((line: string) => void)[] = [];
  let buffered = "";
  socket.on("data", (d: Buffer) => {
    buffered += d.toString();
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      replies.shift()?.(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  });
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  return {
    send(m) {
      const reply = new Promise<string>((r) => replies.push(r));
      socket.write(`${JSON.stringify(m)}\n`);
      return reply.then((l) => JSON.parse(l) as { ok: boolean; error?: string });
    },
    async close() {
      const before = oracle.sessions.filter((s) => s.closedAt === null).length;
      socket.end();
      for (let i = 0; i < 200 && oracle.sessions.filter((s) => s.closedAt === null).length >= before && before > 0; i++) await sleep(5);
    },
    closed,
  };
}

const open = (shard: number, epoch: number, node: string) => ({ type: "open", shard, epoch, node, pid: 1 });
const action = (shard: number, epoch: number) => ({ type: "action", shard, epoch });

describe("Oracle", () => {
  it("report() counts overlapping sessions of one shard with their total and longest duration", async () => {
    await start();
    const a = await client();
    const b = await client();
    const c = await client();
    const other = await client();
    expect(await a.send(open(0, 1, "a"))).toEqual({ ok: true });
    expect(await other.send(open(1, 1, "other"))).toEqual({ ok: true }); // another shard: never an overlap
    await sleep(20);
    await b.send(open(0, 2, "b"));
    await sleep(120);
    await a.close(); // a and b: about 120 ms
    await c.send(open(0, 3, "c"));
    await sleep(40);
    await b.close(); // b and c: about 40 ms
    await c.close();
    const r = oracle.report();
    expect(r.sessions).toBe(4);
    expect(r.overlaps).toBe(2);
    expect(r.overlapMaxMs).toBeGreaterThanOrEqual(115);
    expect(r.overlapTotalMs).toBeGreaterThanOrEqual(r.overlapMaxMs + 35);
    expect(r.details.filter((d) => d.startsWith("overlap shard 0"))).toHaveLength(2);
    expect(r.staleAccepted + r.epochRegressions + r.outsideSession).toBe(0);
  });

  it("report() counts sessions still open as open until `end`", async () => {
    await start();
    const a = await client();
    const b = await client();
    await a.send(open(0, 1, "a"));
    await b.send(open(0, 2, "b"));
    const from = oracle.sessions[1]!.openedAt;
    expect(oracle.report(from + 500).overlapTotalMs).toBeCloseTo(500, 0);
  });

  it("strict mode accepts and counts an action stamped with an epoch older than the newest open", async () => {
    await start("strict");
    const a = await client();
    const b = await client();
    await a.send(open(0, 1, "a"));
    expect(await a.send(action(0, 1))).toEqual({ ok: true });
    expect(oracle.report().staleAccepted).toBe(0);
    await b.send(open(0, 2, "b"));
    expect(await a.send(action(0, 1))).toEqual({ ok: true });
    const r = oracle.report();
    expect(r.staleAccepted).toBe(1);
    expect(r.staleRejected).toBe(0);
    expect(r.actions).toBe(2);
    expect(oracle.sessions[0]!.actions).toBe(2);
  });

  it("fencing mode drops the older session when a newer epoch opens, and refuses stale opens and actions", async () => {
    await start("fencing");
    const a = await client();
    const b = await client();
    const late = await client();
    await a.send(open(0, 1, "a"));
    await b.send(open(0, 2, "b"));
    await a.closed;
    expect(oracle.sessions[0]!.closedBy).toBe("superseded");
    expect(await late.send(open(0, 1, "late"))).toMatchObject({ ok: false, error: "stale epoch 1 < 2" });
    expect(await late.send(action(0, 1))).toMatchObject({ ok: false });
    const r = oracle.report();
    expect(r.overlaps).toBe(0);
    expect(r.staleAccepted).toBe(0);
    expect(r.staleRejected).toBe(2);
    expect(oracle.sessions).toHaveLength(2);
  });

  it("report() counts an epoch going backwards and an epoch reused, by another node or the same one, as regressions", async () => {
    await start();
    const a = await client();
    await a.send(open(0, 2, "a"));
    await a.close();
    expect(oracle.report().epochRegressions).toBe(0);
    const again = await client();
    await again.send(open(0, 2, "a")); // a second session on the same token: refused by a strict upstream
    await again.close();
    expect(oracle.report().epochRegressions).toBe(1);

    const back = await client();
    await back.send(open(0, 1, "b"));
    await back.close();
    const reuse = await client();
    await reuse.send(open(0, 2, "c"));
    await reuse.close();
    const r = oracle.report();
    expect(r.epochRegressions).toBe(3);
    expect(r.details.filter((d) => d.startsWith("epoch regression"))).toEqual([
      "epoch regression shard 0: a opened epoch 2 after epoch 2 (epoch 2 was opened before by a)",
      "epoch regression shard 0: b opened epoch 1 after epoch 2",
      "epoch regression shard 0: c opened epoch 2 after epoch 2 (epoch 2 was opened before by a)",
    ]);
    expect(r.overlaps).toBe(0);
  });

  it("report() counts an action with no session, or for another shard or epoch than its session", async () => {
    await start();
    const none = await client();
    expect(await none.send(action(0, 1))).toEqual({ ok: true });
    const a = await client();
    await a.send(open(0, 3, "a"));
    await a.send(action(0, 3));
    expect(oracle.report().outsideSession).toBe(1);
    await a.send(action(0, 4));
    await a.send(action(1, 3));
    const r = oracle.report();
    expect(r.outsideSession).toBe(3);
    expect(r.actions).toBe(4);
  });
});
