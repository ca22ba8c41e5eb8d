import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sleep } from "../../chaos/cluster.js";
import { FaultProxy } from "../../src/testing/fault-proxy.js";

/**
 * The chaos harness's TCP fault proxy against a real echo server on loopback. Timing is asserted
 * only from below (a delay is at least N ms; bytes held for a while were not delivered yet): an
 * upper bound would fail on a loaded machine without telling anything about the proxy.
 */

/** A client socket and everything it has received so far. */
interface Conn {
  readonly socket: net.Socket;
  received(): string;
  readonly closed: Promise<void>;
}

async function dial(port: number): Promise<Conn> {
  const socket = net.connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  let data = "";
  socket.on("data", (d: Buffer) => (data += d.toString()));
  socket.on("error", () => {});
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  return { socket, received: () => data, closed };
}

/** Polls `probe` every 5 ms until it is true; throws after `ms`. */
async function until(probe: () => boolean, ms = 2000): Promise<void> {
  for (const end = performance.now() + ms; !probe(); await sleep(5)) {
    if (performance.now() > end) throw new Error(`condition not reached in ${ms} ms`);
  }
}

let echo: net.Server;
let echoSockets: net.Socket[];
let proxy: FaultProxy;
const conns: Conn[] = [];

beforeEach(async () => {
  echoSockets = [];
  echo = net.createServer((s) => {
    echoSockets.push(s);
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  proxy = new FaultProxy("127.0.0.1", (echo.address() as net.AddressInfo).port, "test");
  await proxy.start();
});

afterEach(async () => {
  for (const c of conns.splice(0)) c.socket.destroy();
  await proxy.close();
  for (const s of echoSockets) s.destroy();
  await new Promise<void>((r) => echo.close(() => r()));
});

async function connect(port = proxy.port): Promise<Conn> {
  const c = await dial(port);
  conns.push(c);
  return c;
}

describe("FaultProxy", () => {
  it("pass forwards bytes both ways", async () => {
    const c = await connect();
    c.socket.write("hello");
    await until(() => c.received() === "hello");
    expect(proxy.faults).toBe(0);
  });

  it("blackhole holds bytes both ways and delivers them in order after heal", async () => {
    const c = await connect();
    c.socket.write("0");
    await until(() => c.received() === "0");
    proxy.set({ kind: "blackhole" });
    for (const part of ["a", "b", "c"]) {
      c.socket.write(part);
      await sleep(20);
    }
    await sleep(150);
    expect(c.received()).toBe("0");
    expect(echoSockets[0]!.bytesRead).toBe(1);
    proxy.set({ kind: "pass" });
    await until(() => c.received() === "0abc");
    expect(proxy.faults).toBe(1);
  });

  it("blackhole holds a connection made during the cut and forwards it after heal", async () => {
    proxy.set({ kind: "blackhole" });
    const c = await connect();
    c.socket.write("late");
    await sleep(150);
    expect(echoSockets).toHaveLength(0);
    proxy.set({ kind: "pass" });
    await until(() => c.received() === "late");
  });

  it("delay N ms delays each direction by at least N ms, in order", async () => {
    const c = await connect();
    proxy.set({ kind: "delay", delayMs: 100 });
    const t = performance.now();
    c.socket.write("x");
    c.socket.write("y");
    await until(() => c.received() === "xy");
    // Out through the proxy and back through it: two delays.
    expect(performance.now() - t).toBeGreaterThanOrEqual(195);
  });

  it("delay with jitter delays each chunk by at least delay − jitter and never reorders the stream", async () => {
    const c = await connect();
    proxy.set({ kind: "delay", delayMs: 60, jitterMs: 40 });
    const t = performance.now();
    const parts = Array.from({ length: 30 }, (_, i) => `${String(i).padStart(2, "0")};`);
    for (const part of parts) {
      c.socket.write(part);
      await sleep(2); // separate chunks, each drawing its own delay
    }
    await until(() => c.received().length === parts.join("").length, 5000);
    expect(c.received()).toBe(parts.join(""));
    // Two directions, each at least 60 − 40 ms.
    expect(performance.now() - t).toBeGreaterThanOrEqual(39);
  });

  it("listens on the host given to start()", async () => {
    const other = new FaultProxy("127.0.0.1", (echo.address() as net.AddressInfo).port, "test");
    await other.start(0, "127.0.0.2");
    try {
      const socket = net.connect(other.port, "127.0.0.2");
      let data = "";
      socket.on("data", (d: Buffer) => (data += d.toString()));
      await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      socket.write("via 127.0.0.2");
      await until(() => data === "via 127.0.0.2");
      socket.destroy();
      // Not on 127.0.0.1: the port is bound to the given address only.
      await expect(dial(other.port)).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await other.close();
    }
  });

  it("resetAll() resets every open connection, and new ones still pass", async () => {
    const a = await connect();
    const b = await connect();
    await until(() => echoSockets.length === 2);
    const errors: string[] = [];
    a.socket.on("error", (e: NodeJS.ErrnoException) => errors.push(e.code ?? ""));
    proxy.resetAll();
    await Promise.all([a.closed, b.closed]);
    expect(errors).toEqual(["ECONNRESET"]);
    await until(() => echoSockets.every((s) => s.destroyed));
    const c = await connect();
    c.socket.write("again");
    await until(() => c.received() === "again");
  });

  it("refuse() refuses new connections while open ones go on; reopen() accepts on the same port", async () => {
    const open = await connect();
    const port = proxy.port;
    await proxy.refuse();
    await expect(dial(port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    open.socket.write("still");
    await until(() => open.received() === "still");
    await proxy.reopen();
    expect(proxy.port).toBe(port);
    const c = await connect(port);
    c.socket.write("back");
    await until(() => c.received() === "back");
  });

  describe("set(mode, { from })", () => {
    let child: ChildProcess | null = null;
    afterEach(() => {
      child?.kill("SIGKILL");
      child = null;
    });

    /**
     * A child process that dials the proxy at start ("a", opened before the cut as a pooled
     * connection would be) and again when told ("b", opened during the cut); stdin lines
     * `a:text` / `b:text` write text on that connection; everything received goes to stdout.
     */
    async function spawnDialer(port: number): Promise<{ out(): string; send(line: string): void }> {
      const script = `
        const net = require("node:net");
        const conns = {};
        const open = (k) => { const s = net.connect(${port}, "127.0.0.1"); s.on("data", (d) => process.stdout.write(k + "=" + d + ";")); s.on("connect", () => process.stdout.write(k + "-connected;")); return (conns[k] = s); };
        open("a");
        require("node:readline").createInterface({ input: process.stdin }).on("line", (l) => {
          const [k, text] = l.split(":");
          (conns[k] ?? open(k)).write(text);
        });`;
      const c = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "inherit"] });
      child = c;
      let out = "";
      c.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      await until(() => out.includes("a-connected;"), 4000);
      return { out: () => out, send: (line) => c.stdin!.write(`${line}\n`) };
    }

    it("cuts only the connections dialled by the given pids, open ones and new ones", async () => {
      const dialer = await spawnDialer(proxy.port);
      const mine = await connect();
      await until(() => echoSockets.length === 2);

      proxy.set({ kind: "blackhole" }, { from: [child!.pid!] });
      expect(proxy.mode.kind).toBe("pass");
      mine.socket.write("mine");
      dialer.send("a:held");
      dialer.send("b:new");
      await until(() => mine.received() === "mine");
      await until(() => dialer.out().includes("b-connected;"));
      await sleep(150);
      expect(dialer.out()).not.toContain("=");
      expect(echoSockets).toHaveLength(2); // b was accepted by the proxy but not forwarded

      proxy.set({ kind: "pass" });
      await until(() => dialer.out().includes("a=held;") && dialer.out().includes("b=new;"));
    });

    it("a pid with no connection through the proxy cuts nothing", async () => {
      const dialer = await spawnDialer(proxy.port);
      proxy.set({ kind: "blackhole" }, { from: [process.pid] });
      dialer.send("a:free");
      await until(() => dialer.out().includes("a=free;"));
    });
  });
});
