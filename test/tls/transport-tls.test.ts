import { randomBytes, X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  deriveTransportKey,
  FramedTransport,
  type FramedTransportOptions,
  type TransportTlsOptions,
} from "../../src/adapters/transport/index.js";
import { PROTOCOL } from "../../src/adapters/transport/messages.js";
import { startServer } from "../../src/adapters/transport/server.js";
import { TransportTls } from "../../src/adapters/transport/tls.js";
import { silentLogger } from "../../src/core/silent-logger.js";
import { openClusterAccess } from "../../src/cli/cluster-access.js";
import { parseConfig, type Config } from "../../src/config/load.js";
import { MASTER_LEASE } from "../../src/core/ports/leases.js";
import type { AppRequest } from "../../src/core/coreapp/application.js";
import { ConfigError, TransportUnavailableError } from "../../src/core/errors.js";
import type { Peer } from "../../src/core/ports/transport.js";
import type { ClusterStatus } from "../../src/nodes/cluster-status.js";
import { createNode, type AnyNode } from "../../src/nodes/compose.js";
import { createLogger } from "../../src/nodes/logger.js";
import type { Webapp } from "../../src/nodes/webapp.js";
import { makeCa, type CertFiles, type TestCa } from "../support/certs.js";

/**
 * Mutual TLS on the node-to-node transport, with certificates made by `openssl` for this run:
 * calls between two transports, every kind of stranger refused before any handler runs,
 * certificate rotation without a restart, the config's checks, and a whole embedded cluster.
 */
const SECRET = "tls-test-secret-0123456789-abcdef";
const CLUSTER = "tls-test";
const id = (name: string) => `${name}.${randomBytes(4).toString("hex")}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let ca: TestCa;
let otherCa: TestCa;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "mc-tls-transport-"));
  ca = makeCa("cluster-ca", dir);
  otherCa = makeCa("other-ca", dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function transport(files: CertFiles | undefined, o: Partial<FramedTransportOptions> = {}): FramedTransport {
  const t = new FramedTransport({
    nodeId: id("node"),
    clusterName: CLUSTER,
    secret: SECRET,
    ...(files ? { tls: { ...files } } : {}),
    ...o,
  });
  cleanups.push(() => t.close());
  return t;
}

/** A listening node with TLS from `files`; returns the peer to call and its heartbeat spy. */
async function listener(files: CertFiles, o: Partial<FramedTransportOptions> = {}) {
  const self = id("core");
  const t = transport(files, { nodeId: self, ...o });
  const heartbeat = vi.fn((_from: string) => ({ id: self, shard: 0, epoch: 3 }));
  const server = await t.listen(self, "127.0.0.1", 0, { heartbeat });
  cleanups.push(() => server.close());
  return { t, heartbeat, port: server.port, peer: { id: self, address: `127.0.0.1:${server.port}` } satisfies Peer };
}

/** The serial number of the certificate a TLS listener presents to a fresh connection. */
function presentedSerial(port: number, client: CertFiles): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, ca: readFileSync(client.ca), cert: readFileSync(client.cert), key: readFileSync(client.key) },
      () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.destroy();
      },
    );
    socket.once("error", reject);
  });
}

const serialOf = (files: CertFiles) => new X509Certificate(readFileSync(files.cert)).serialNumber;

/** What a raw TCP client gets back after sending `bytes`: the bytes the server wrote before closing. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => {});
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
    setTimeout(() => socket.destroy(), 5000).unref();
  });
}

describe("transport over mutual TLS", () => {
  it("heartbeat() between two nodes with certificates from the cluster CA succeeds", async () => {
    const server = await listener(ca.issue("core"));
    const client = transport(ca.issue("master"));
    await expect(client.heartbeat(server.peer, { master: "m1" }, 3000)).resolves.toEqual({
      id: server.peer.id,
      shard: 0,
      epoch: 3,
      ended: null,
    });
    expect(server.heartbeat).toHaveBeenCalledTimes(1);
  });

  it("a caller whose certificate comes from another CA is refused during the handshake; no handler runs", async () => {
    const server = await listener(ca.issue("core"));
    // It trusts the cluster CA (so it accepts the listener) but its own certificate is a stranger's.
    const stranger = transport({ ...otherCa.issue("stranger"), ca: ca.cert });
    const error = await stranger.heartbeat(server.peer, { master: "m1" }, 3000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(String(error)).toContain(server.peer.address);
    expect(server.heartbeat).not.toHaveBeenCalled();
  });

  it("a caller without a client certificate is refused; no handler runs", async () => {
    const server = await listener(ca.issue("core"));
    const outcome = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: "127.0.0.1", port: server.port, ca: readFileSync(ca.cert) }, () => {
        socket.write("POST /_mc/heartbeat HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n");
      });
      const got: Buffer[] = [];
      socket.on("data", (c: Buffer) => got.push(c));
      socket.on("error", (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
      socket.on("close", () => resolve(`closed after ${Buffer.concat(got).length} bytes`));
    });
    expect(outcome).toMatch(/CERTIFICATE_REQUIRED|closed after 0 bytes|ECONNRESET/);
    expect(server.heartbeat).not.toHaveBeenCalled();
  });

  it("a caller that does not trust the listener's CA fails with a TLS error naming the peer", async () => {
    const server = await listener(ca.issue("core"));
    const client = transport({ ...ca.issue("master"), ca: otherCa.cert });
    const error = await client.heartbeat(server.peer, { master: "m1" }, 3000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(String(error)).toMatch(
      new RegExp(
        `connection to ${server.peer.address}: TLS handshake failed \\((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\\)`,
      ),
    );
    expect((error as TransportUnavailableError).notDelivered).toBe(true);
    expect(server.heartbeat).not.toHaveBeenCalled();
  });

  it("a listener whose certificate does not name the address dialled is refused, unless server_name says which name to expect", async () => {
    const server = await listener(ca.issue("core", ["DNS:core.cluster.internal"]));
    const strict = transport(ca.issue("master"));
    expect(String(await strict.heartbeat(server.peer, { master: "m1" }, 3000).catch((e: unknown) => e))).toContain(
      "ERR_TLS_CERT_ALTNAME_INVALID",
    );
    const named = transport(ca.issue("master"), { tls: { ...ca.issue("master"), serverName: "core.cluster.internal" } });
    await expect(named.heartbeat(server.peer, { master: "m1" }, 3000)).resolves.toMatchObject({ epoch: 3 });
  });

  it("plain HTTP is refused: a plain transport cannot call a TLS listener, and a raw HTTP request gets no HTTP answer", async () => {
    const server = await listener(ca.issue("core"));
    const plain = transport(undefined);
    expect(await plain.heartbeat(server.peer, { master: "m1" }, 3000).catch((e: unknown) => e)).toBeInstanceOf(TransportUnavailableError);
    const answer = await rawExchange(server.port, "POST /_mc/heartbeat HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n");
    expect(answer).not.toMatch(/^HTTP\//);
    expect(server.heartbeat).not.toHaveBeenCalled();
  });

  it("a listener counts TCP connections still in the TLS handshake against maxHandshaking: one past it is closed at once", async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (_fields: object, message: string) => void warnings.push(message) };
    const self = id("core");
    const heartbeat = vi.fn((_from: string) => ({ id: self, shard: 0, epoch: 3 }));
    const tlsFiles = new TransportTls({ ...ca.issue("core") }, logger);
    cleanups.push(() => tlsFiles.close());
    const o = {
      key: deriveTransportKey(SECRET, CLUSTER),
      maxBodyBytes: 1024,
      protocol: PROTOCOL,
      logger,
      tls: tlsFiles,
      maxHandshaking: 2,
    };
    const server = await startServer(self, "127.0.0.1", 0, { heartbeat }, o);
    cleanups.push(() => server.close());
    const peer = { id: self, address: `127.0.0.1:${server.port}` };
    const master = transport(ca.issue("master"));
    await master.heartbeat(peer, { master: "m1" }, 3000); // authenticated: no longer counted
    // Two TCP connections that never send a ClientHello, then a third.
    const mute = (): Promise<net.Socket> =>
      new Promise((resolve) => {
        const s = net.connect(server.port, "127.0.0.1", () => resolve(s));
        s.on("error", () => {});
        s.resume();
        cleanups.push(() => void s.destroy());
      });
    const silent = [await mute(), await mute()];
    const third = await mute();
    await vi.waitFor(() => expect(third.readableEnded || third.destroyed).toBe(true), { timeout: 5000 });
    expect(silent.every((s) => !s.readableEnded && !s.destroyed)).toBe(true);
    expect(warnings).toEqual([expect.stringMatching(/closed unread: 2 others are still in the handshake/)]);
    await master.heartbeat(peer, { master: "m1" }, 3000);
    expect(heartbeat).toHaveBeenCalledTimes(2);
  });

  it("rotation: after the files are replaced, new connections use the new certificate and CA, without a restart", async () => {
    const live = mkdtempSync(join(dir, "live-"));
    const install = (files: CertFiles, name: string): CertFiles => {
      const at = { cert: join(live, `${name}.crt`), key: join(live, `${name}.key`), ca: join(live, `${name}-ca.crt`) };
      copyFileSync(files.cert, at.cert);
      copyFileSync(files.key, at.key);
      copyFileSync(files.ca, at.ca);
      return at;
    };
    const serverFiles = install(ca.issue("core"), "core");
    const clientFiles = install(ca.issue("master"), "master");
    const reloadIntervalMs = 100;
    const server = await listener(serverFiles, { tls: { ...serverFiles, reloadIntervalMs } });
    const client = transport(clientFiles, { tls: { ...clientFiles, reloadIntervalMs } });
    await expect(client.heartbeat(server.peer, { master: "m1" }, 3000)).resolves.toMatchObject({ epoch: 3 });
    const oldCaClient = ca.issue("old-member");

    // The whole cluster moves to a new CA: every node's three files are replaced.
    const nextServer = otherCa.issue("core");
    const nextClient = otherCa.issue("master");
    install(nextServer, "core");
    install(nextClient, "master");
    const started = performance.now();
    for (;;) {
      const serial = await presentedSerial(server.port, nextClient).catch(() => "");
      if (serial === serialOf(nextServer)) break;
      if (performance.now() - started > 15_000) throw new Error("the listener never presented the new certificate within 15 s");
      await sleep(50);
    }
    console.info(
      `transport TLS: the listener presented the rotated certificate ${Math.round(performance.now() - started)} ms after the files were replaced (reload every ${reloadIntervalMs} ms)`,
    );
    // The caller must have moved too: the listener now trusts only the new CA.
    await vi.waitFor(() => expect(client.heartbeat(server.peer, { master: "m1" }, 3000)).resolves.toMatchObject({ epoch: 3 }), {
      timeout: 15_000,
    });
    // And a member still holding an old-CA certificate is refused now.
    const stale = transport({ ...oldCaClient, ca: otherCa.cert });
    expect(await stale.heartbeat(server.peer, { master: "m1" }, 3000).catch((e: unknown) => e)).toBeInstanceOf(TransportUnavailableError);
  });

  it("rotation caught half-written (a key that does not match the certificate) is skipped; the old files stay in use", async () => {
    const live = mkdtempSync(join(dir, "half-"));
    const first = ca.issue("core");
    const at = { cert: join(live, "n.crt"), key: join(live, "n.key"), ca: join(live, "ca.crt") };
    copyFileSync(first.cert, at.cert);
    copyFileSync(first.key, at.key);
    copyFileSync(first.ca, at.ca);
    const warnings: string[] = [];
    const logger = {
      ...createLogger("silent"),
      warn: (f: Record<string, unknown>, m: string) => warnings.push(`${m} ${String(f["error"])}`),
    };
    const server = await listener(at, { tls: { ...at, reloadIntervalMs: 60_000 }, logger });
    copyFileSync(ca.issue("core").cert, at.cert); // the new certificate, but still the old key
    expect(await server.t.reloadTls()).toBe(false);
    expect(await server.t.reloadTls()).toBe(false);
    expect(warnings).toHaveLength(1); // logged once, not at every tick
    expect(warnings[0]).toContain(`transport.tls.key: ${at.key} is not the private key of the certificate in ${at.cert}`);
    expect(await presentedSerial(server.port, ca.issue("master"))).toBe(serialOf(first));
  });
});

describe("transport.tls in the config", () => {
  const base = { cluster_name: "c", secret: SECRET, store: { backend: "sqlite", path: ":memory:" } };

  it("parseConfig() takes transport.tls with its defaults", () => {
    const files = ca.issue("node");
    const c = parseConfig({ ...base, transport: { tls: { ...files, server_name: "mc.internal" } } });
    expect(c.transport.tls).toEqual({ ...files, reloadIntervalMs: 30_000, serverName: "mc.internal" });
    expect(parseConfig(base).transport.tls).toBeUndefined();
  });

  it("parseConfig() refuses transport.tls without a key, naming it", () => {
    const files = ca.issue("node");
    expect(() => parseConfig({ ...base, transport: { tls: { cert: files.cert, ca: files.ca } } })).toThrow(
      /config: transport\.tls\.key: is required/,
    );
  });

  it.each([
    ["a missing file", (f: CertFiles) => ({ ...f, ca: join(dir, "nope.crt") }), /transport\.tls\.ca: cannot read .*nope\.crt \(ENOENT\)/],
    [
      "a key of another certificate",
      (f: CertFiles) => ({ ...f, key: ca.issue("x").key }),
      /transport\.tls\.key: .* is not the private key of the certificate in /,
    ],
    ["a key file given as the certificate", (f: CertFiles) => ({ ...f, cert: f.key }), /transport\.tls\.cert: .* holds no PEM certificate/],
    [
      "a certificate given as the key",
      (f: CertFiles) => ({ ...f, key: f.cert }),
      /transport\.tls\.key: .* holds no unencrypted PEM private key/,
    ],
  ])("new FramedTransport() with %s throws ConfigError naming the key and the file, never the key's content", (_what, spoil, message) => {
    const files = ca.issue("node");
    const spoiled: TransportTlsOptions = spoil(files);
    let error: unknown;
    try {
      void new FramedTransport({ nodeId: id("n"), clusterName: CLUSTER, secret: SECRET, tls: spoiled }).close();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(String(error)).toMatch(message);
    const keyBody = readFileSync(files.key, "utf8").split("\n")[1]!;
    expect(String(error)).not.toContain(keyBody);
    expect(String(error)).not.toContain("PRIVATE KEY");
  });
});

describe("an embedded cluster over mutual TLS", () => {
  const nodes: AnyNode[] = [];
  const handled: AppRequest[] = [];
  let webapp: Webapp;
  let configFor: (files: CertFiles) => Config;

  beforeAll(async () => {
    const clusterDir = mkdtempSync(join(dir, "cluster-"));
    // One certificate per node, as a deployment would do; the config file names each node's own.
    configFor = (files: CertFiles) =>
      parseConfig({
        cluster_name: "tls-cluster",
        shards: 2,
        secret: SECRET,
        settings: { heartbeat_interval: "100ms", unhealthy_interval: "600ms", db_heartbeat_interval: "200ms", db_unhealthy_interval: "1s" },
        store: { backend: "sqlite", path: join(clusterDir, "cluster.db") },
        node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
        transport: { tls: files },
      });
    const logger = createLogger("silent");
    const app = (name: string) => ({
      onPromote() {},
      onDemote() {},
      handle(req: AppRequest) {
        handled.push(req);
        return { status: 200, headers: {}, body: `secret reply from ${name}` };
      },
    });
    for (const name of ["m1", "m2"])
      nodes.push(await createNode({ config: configFor(ca.issue(name)), role: "master", name, port: 0, logger }));
    for (const name of ["c1", "c2", "c3"]) {
      nodes.push(await createNode({ config: configFor(ca.issue(name)), role: "coreapp", name, port: 0, app: app(name), logger }));
    }
    webapp = (await createNode({ config: configFor(ca.issue("w1")), role: "webapp", port: 0, logger })) as Webapp;
    nodes.push(webapp);
    for (const n of nodes) await n.start();
  }, 30_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("elects, promotes a primary per shard and routes requests, every node-to-node message over mTLS", async () => {
    const base = `http://127.0.0.1:${webapp.port}`;
    const started = performance.now();
    await vi.waitFor(
      async () => {
        const h = (await (await fetch(`${base}/v1/health`)).json()) as ClusterStatus;
        expect(
          h.nodes
            .filter((n) => n.gateway_status === "connected")
            .map((n) => n.shard)
            .sort(),
        ).toEqual([0, 1]);
      },
      { timeout: 20_000, interval: 50 },
    );
    console.info(`transport TLS: embedded 2-shard cluster over mTLS ready in ${Math.round(performance.now() - started)} ms after start()`);
    for (const key of ["+1555000", "+1555001", "+1555002", "+1555003"]) {
      const r = await fetch(`${base}/v1/messages`, { method: "POST", headers: { "x-shard-key": key }, body: `body for ${key}` });
      expect(r.status).toBe(200);
      expect(await r.text()).toMatch(/^secret reply from c[123]$/);
    }
    expect(handled.map((r) => Buffer.from(r.body).toString())).toEqual(expect.arrayContaining(["body for +1555000", "body for +1555003"]));
  });

  it("an operator command (switchover) reaches the primary master over mTLS with the certificate its config names", async () => {
    const access = await openClusterAccess(configFor(ca.issue("operator")));
    try {
      const master = await access.store.leases.current(MASTER_LEASE);
      const record = (await access.store.liveness.list()).find((n) => n.id === master?.holder);
      const reply = await access.transport.switchover({ id: record!.id, address: record!.address! }, { shard: 0 }, 10_000);
      expect(reply).toMatchObject({ ok: true, shard: 0 });
    } finally {
      await access.close();
    }
  });
});
