import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { BACKENDS } from "../../chaos/backends.js";
import { etcdCapabilities } from "../../src/adapters/etcd/index.js";
import { makeCa } from "../support/certs.js";
import { storeTlsSuite } from "./store-tls.suite.js";

/**
 * etcd over TLS: a private etcd 3.4 of this file's own serving https only and requiring client
 * certificates (`--client-cert-auth`), started with the chaos harness's private-server code on
 * free ports and stopped after (scripts/services.sh installs the `etcd` binary).
 */
const dir = mkdtempSync(join(tmpdir(), "mc-tls-etcd-"));
const ca = makeCa("etcd-ca", dir);
const otherCa = makeCa("other-ca", dir);
const server = await BACKENDS.etcd.privateServer!(dir, ca.issue("etcd"));
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});
const { host, port } = server.endpoint;

storeTlsSuite({
  backend: "etcd",
  address: `${host}:${port}`,
  storeSection: (ns) => ({ backend: "etcd", hosts: `https://${host}:${port}`, key_prefix: `mc-tls/${ns}/` }),
  plainSection: (ns) => ({ backend: "etcd", hosts: `http://${host}:${port}`, key_prefix: `mc-tls/${ns}/` }),
  ca,
  client: ca.issue("client"),
  otherCa,
  requiresClientCert: true,
  capabilities: { ...etcdCapabilities, ttlMs: 2000 },
});
