/**
 * A leader built on a peer library, for item 6: it campaigns, and while it believes it leads it
 * appends a line stamped with CLOCK_MONOTONIC to a shared log every 5 ms, so the bench can see
 * takeovers and any two leaders at once.
 * - `etcd`: etcd3's own `Election` (campaign → "elected"; a campaign error ends the belief);
 * - `redis`: redis-semaphore's `Mutex` with its defaults except the lock timeout (refresh at 0.8 ×
 *   the timeout; `onLockLost` ends the belief), retrying acquisition every 10 ms forever.
 *
 * Usage: peer-leader.ts '{"mode":"etcd"|"redis","ttlS":3,"key":"...","log":"file","hosts":"...","url":"..."}'.
 * Prints {"ready":true} once campaigning.
 */
import { appendFileSync } from "node:fs";
import { Etcd3 } from "etcd3";
import { Redis } from "ioredis";
import { Mutex } from "redis-semaphore";
import { monoNow, sleep } from "./clock.js";

// tsx turns source-mapped stack traces on; the CLI runs without them, and every Error (undici makes
// one per closed connection) would cost a source-map lookup here that it does not cost in production.
process.setSourceMapsEnabled(false);

const o = JSON.parse(process.argv[2]!) as { mode: "etcd" | "redis"; ttlS: number; key: string; log: string; hosts: string; url: string };
let leading = false;

async function lead(): Promise<void> {
  leading = true;
  while (leading) {
    appendFileSync(o.log, `${JSON.stringify({ t: monoNow(), pid: process.pid })}\n`);
    await sleep(5);
  }
}

if (o.mode === "etcd") {
  const client = new Etcd3({ hosts: o.hosts.split(",") });
  const election = client.election(o.key, o.ttlS);
  const campaign = () => {
    const c = election.campaign(String(process.pid));
    c.on("elected", () => void lead());
    c.on("error", () => {
      leading = false;
      setTimeout(campaign, 100);
    });
  };
  campaign();
} else {
  const redis = new Redis(o.url);
  const loop = async () => {
    for (;;) {
      let lost!: () => void;
      const gone = new Promise<void>((r) => (lost = r));
      const mutex = new Mutex(redis, o.key, {
        lockTimeout: o.ttlS * 1000,
        acquireTimeout: 24 * 3600 * 1000,
        retryInterval: 10,
        onLockLost: () => {
          leading = false;
          lost();
        },
      });
      await mutex.acquire();
      void lead();
      await gone;
    }
  };
  void loop();
}
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.on("SIGTERM", () => process.exit(0));
