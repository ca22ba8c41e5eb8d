import { afterAll, afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import type { StoreConfig } from "../../src/config/schema.js";
import { SystemClock } from "../../src/core/clock.js";
import { ConfigError, StoreConfigurationError } from "../../src/core/errors.js";
import type { Store } from "../../src/core/ports/store.js";
import { createNode } from "../../src/nodes/compose.js";
import { createLogger } from "../../src/nodes/logger.js";
import { openStore } from "../../src/nodes/open-store.js";
import { storeConformance, type ConformanceOptions } from "../../src/testing/store-conformance.js";
import { randomNamespace } from "../../src/testing/net.js";
import type { CertFiles, TestCa } from "../support/certs.js";

/**
 * The tests every store runs over TLS against a private server of its own that speaks only TLS:
 * the conformance suite through the config file's `store.tls` (so the whole path from config to
 * driver is exercised), and the refusals — a server from another CA, a client without a
 * certificate, a TLS file that cannot be read — each a clear, non-retryable error.
 */
export interface StoreTlsOptions {
  /** The backend as it appears in messages ("postgres", "redis", "etcd"). */
  readonly backend: string;
  /** host:port of the private TLS server, as messages name it. */
  readonly address: string;
  /** The config's `store:` section for namespace `ns`, without `tls`. */
  storeSection(ns: string): Record<string, unknown>;
  /** The section a client that does not speak TLS would use (default `storeSection`). */
  plainSection?(ns: string): Record<string, unknown>;
  /** The CA that signed the server's certificate, and a client certificate it issued. */
  readonly ca: TestCa;
  readonly client: CertFiles;
  /** A CA that has nothing to do with the server. */
  readonly otherCa: TestCa;
  /** Whether the server refuses a client that shows no certificate. */
  readonly requiresClientCert: boolean;
  /** Whether the server refuses a plain (non-TLS) client; absent means it does. */
  readonly refusesPlain?: boolean;
  /** Proves that `store`'s connection really is encrypted (asks the server); absent when only the port can tell. */
  encrypted?(store: Store): Promise<boolean>;
  /** Conformance capabilities, as the backend's plain test file declares them. */
  readonly capabilities: ConformanceOptions["capabilities"];
}

/** The config's `store:` section with `tls`, validated as a node would read it. */
function storeConfig(section: Record<string, unknown>, tls: unknown): StoreConfig {
  return parseConfig({ cluster_name: "tls", secret: "tls-test-secret-0123456789", store: { ...section, tls } }).store;
}

/** Opens a store of namespace `ns` with the given `store.tls`. */
function openWithTls(o: StoreTlsOptions, ns: string, tls: unknown): Promise<Store> {
  return openStore(storeConfig(o.storeSection(ns), tls), new SystemClock());
}

/** Registers the conformance suite over TLS and the TLS refusals for one backend's private TLS server. */
export function storeTlsSuite(o: StoreTlsOptions): void {
  const opened: Store[] = [];
  const open = async (ns: string, tls: unknown) => {
    const store = await openWithTls(o, ns, tls);
    opened.push(store);
    return store;
  };
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close().catch(() => {})));
  });
  const good = () => ({ ca: o.client.ca, cert: o.client.cert, key: o.client.key });

  storeConformance({ describe, it, afterEach, expect }, `${o.backend} over TLS`, {
    open: (ns) => openWithTls(o, ns, good()),
    capabilities: o.capabilities,
  });

  describe(`${o.backend} over TLS: refusals`, { timeout: 30_000 }, () => {
    if (o.encrypted) {
      const encrypted = o.encrypted;
      it("the connection the store uses is encrypted (the server says so)", async () => {
        const store = await open(randomNamespace(), good());
        await store.migrate();
        expect(await encrypted(store)).toBe(true);
      });
    }

    it(`a server certificate from another CA fails with StoreConfigurationError naming ${o.backend} and the host, at once`, async () => {
      const store = await open(randomNamespace(), { ...good(), ca: o.otherCa.cert });
      const started = performance.now();
      const error = await store.migrate().catch((e: unknown) => e);
      const ms = Math.round(performance.now() - started);
      expect(error).toBeInstanceOf(StoreConfigurationError);
      expect((error as StoreConfigurationError).retryable).toBe(false);
      expect(String((error as Error).message)).toContain(o.backend);
      expect(String((error as Error).message)).toContain(o.address);
      console.info(`${o.backend} over TLS, wrong CA: failed in ${ms} ms: ${(error as Error).message}`);
      // A second call fails the same way: no retry loop hides it.
      expect(await store.leases.acquire("l", "n1", o.capabilities.ttlMs).catch((e: unknown) => e)).toBeInstanceOf(StoreConfigurationError);
    });

    it("a master started against a server from another CA stops at start() with that error, instead of retrying", async () => {
      const config = parseConfig({
        cluster_name: "tls",
        secret: "tls-test-secret-0123456789",
        store: { ...o.storeSection(randomNamespace()), tls: { ...good(), ca: o.otherCa.cert } },
        node: { listen_host: "127.0.0.1", external_hostname: "127.0.0.1" },
      });
      const node = await createNode({ config, role: "master", port: 0, logger: createLogger("silent") });
      try {
        const error = await node.start().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StoreConfigurationError);
        expect(String((error as Error).message)).toContain(o.address);
      } finally {
        await node.stop().catch(() => {});
      }
    });

    if (o.requiresClientCert) {
      it("a client without a certificate is refused with an error naming the backend and the host", async () => {
        const store = await open(randomNamespace(), { ca: o.client.ca });
        const error = await store.migrate().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(Error);
        expect(String((error as Error).message)).toContain(o.backend);
        expect(String((error as Error).message)).toContain(o.address);
        console.info(`${o.backend} over TLS, no client certificate: ${(error as Error).message}`);
      });
    }

    if (o.refusesPlain !== false)
      it("a client that does not speak TLS gets an error naming the backend and the host, not a hang", async () => {
        const ns = randomNamespace();
        const store = await openStore(storeConfig((o.plainSection ?? o.storeSection)(ns), false), new SystemClock());
        opened.push(store);
        const started = performance.now();
        const error = await store.migrate().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(Error);
        expect(String((error as Error).message)).toContain(o.backend);
        expect(String((error as Error).message)).toContain(o.address);
        console.info(
          `${o.backend} over TLS, plain client: failed in ${Math.round(performance.now() - started)} ms: ${(error as Error).message}`,
        );
      });

    it("an unreadable store.tls file stops the store from opening with ConfigError naming the key and the file", async () => {
      const error = await open(randomNamespace(), { ...good(), cert: "/nonexistent/client.crt" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect(String(error)).toContain("store.tls.cert: cannot read /nonexistent/client.crt (ENOENT)");
    });
  });
}
