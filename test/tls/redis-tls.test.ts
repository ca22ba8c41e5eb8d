import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { makeCa } from "../support/certs.js";
import { killPrivateRedises, startPrivateRedis } from "../support/private-redis.js";
import { freePort } from "../../src/testing/net.js";
import { storeTlsSuite } from "./store-tls.suite.js";

/**
 * Redis over TLS: a private redis-server of this file's own with only a TLS port
 * (`--tls-port`, `--port 0`) that requires client certificates, on a free port, killed after.
 * Debian's redis-server is built with TLS; if it were not, the server would not start and this
 * file fails in its setup, saying so.
 */
const dir = mkdtempSync(join(tmpdir(), "mc-tls-redis-"));
const ca = makeCa("redis-ca", dir);
const otherCa = makeCa("other-ca", dir);
const port = await freePort();
await startPrivateRedis(port, [], ca.issue("redis"));
// A server that just started may have lost data: the adapter quarantines new leases until 1 s past
// its start (uptime is in whole seconds) plus the TTL asked for, and the suite's longest TTL is the
// master lease's 20 × 300 ms. Let that pass before the suite runs.
const TTL_MS = 300;
await new Promise((r) => setTimeout(r, 1000 + 20 * TTL_MS + 500));
afterAll(async () => {
  await killPrivateRedises();
  rmSync(dir, { recursive: true, force: true });
});

storeTlsSuite({
  backend: "redis",
  address: `127.0.0.1:${port}`,
  storeSection: (ns) => ({ backend: "redis", host: "127.0.0.1", port, key_prefix: `mc-tls:${ns}:` }),
  ca,
  client: ca.issue("client"),
  otherCa,
  requiresClientCert: true,
  capabilities: { ttlMs: TTL_MS },
});
