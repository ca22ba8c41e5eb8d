import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { SystemClock } from "../../src/core/clock.js";
import { ConfigError } from "../../src/core/errors.js";
import { openStore } from "../../src/nodes/open-store.js";
import { makeCa } from "../support/certs.js";

/** `store.tls` as the config file gives it: one shape on every networked backend, checked before anything connects. */
const file = (store: Record<string, unknown>) => parseConfig({ cluster_name: "c", secret: "store-tls-secret-0123456789", store });
const dir = mkdtempSync(join(tmpdir(), "mc-tls-config-"));
const ca = makeCa("config-ca", dir);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("store.tls in the config", () => {
  it.each(["postgres", "mysql", "redis", "etcd"])("parseConfig() takes store.tls as true, false or { ca, cert, key } for %s", (backend) => {
    const files = ca.issue("client");
    expect(file({ backend }).store).toMatchObject({ tls: false });
    expect(file({ backend, tls: true }).store).toMatchObject({ tls: true });
    expect(file({ backend, tls: { ...files } }).store).toMatchObject({ tls: files });
  });

  it("parseConfig() refuses anything else, naming store.tls", () => {
    expect(() => file({ backend: "redis", tls: "yes" })).toThrow(
      "config: store.tls: must be true, false or a mapping of file paths { ca, cert, key }",
    );
    expect(() => file({ backend: "redis", tls: { ca: "/x", passphrase: "p" } })).toThrow("config: store.tls.passphrase: unknown key");
  });

  it("parseConfig() refuses the former `ssl` key of postgres and mysql with a pointer to `tls`", () => {
    for (const backend of ["postgres", "mysql"]) {
      expect(() => file({ backend, ssl: true })).toThrow("config: store.ssl: was renamed to tls");
    }
  });

  it("openStore() with a cert but no key throws ConfigError naming store.tls.key, before connecting", async () => {
    const c = file({ backend: "postgres", host: "127.0.0.1", port: 1, tls: { cert: ca.issue("client").cert } });
    await expect(openStore(c.store, new SystemClock())).rejects.toThrow("config: store.tls.key: cert and key must be given together");
  });

  it("openStore() for etcd with store.tls and an http:// host throws ConfigError naming store.hosts", async () => {
    const c = file({ backend: "etcd", hosts: "http://127.0.0.1:2379", tls: { ca: ca.cert } });
    const error = await openStore(c.store, new SystemClock()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(String(error)).toContain("config: store.hosts: must all be https:// URLs when store.tls is set");
  });
});
