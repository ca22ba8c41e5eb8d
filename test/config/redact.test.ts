import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { tarGz } from "../../src/cli/tar-gz.js";
import { parseConfig } from "../../src/config/load.js";
import { redactConfig, scrub, secretValues } from "../../src/config/redact.js";
import { ConfigError } from "../../src/core/errors.js";

const SECRET = "cluster-secret-0123456789";
const TOKEN = "admin-token-0123456789abc";
const base = { cluster_name: "c1", secret: SECRET, store: { backend: "sqlite", path: "/tmp/x.db" } };

describe("config: operations keys", () => {
  it("parseConfig() defaults node_retention to max(10 × db_unhealthy_interval, 1 h), max_inflight_per_shard to 256, no admin token", () => {
    const c = parseConfig(base, {});
    expect(c.nodeRetentionMs).toBe(3_600_000);
    expect(c.webapp.maxInflightPerShard).toBe(256);
    expect(c.adminToken).toBeUndefined();
    expect(parseConfig({ ...base, settings: { db_heartbeat_interval: "5m", db_unhealthy_interval: "10m" } }, {}).nodeRetentionMs).toBe(
      6_000_000,
    );
  });

  it("parseConfig() refuses a node_retention under 2 × db_unhealthy_interval, and an admin token equal to the secret", () => {
    expect(() => parseConfig({ ...base, node_retention: "3m" }, {})).toThrow(/node_retention: must be at least 2 × db_unhealthy_interval/);
    expect(() => parseConfig({ ...base, admin_token: SECRET }, {})).toThrow(ConfigError);
    expect(() => parseConfig({ ...base, admin_token: "short" }, {})).toThrow(/admin_token/);
    expect(parseConfig({ ...base, admin_token: "${T}" }, { T: TOKEN }).adminToken).toBe(TOKEN);
  });
});

describe("redaction", () => {
  const config = parseConfig(
    {
      ...base,
      admin_token: TOKEN,
      store: { backend: "postgres", url: "postgres://app:p%40ss-url-word@db:5432/x", password: "plain-store-password" },
    },
    {},
  );

  it("redactConfig() hides the secret, the admin token, passwords and a URL's password, and keeps the rest", () => {
    const text = JSON.stringify(redactConfig(config));
    for (const s of [SECRET, TOKEN, "plain-store-password", "p%40ss-url-word", "p@ss-url-word"]) expect(text).not.toContain(s);
    expect(text).toContain("postgres://app:[redacted]@db:5432/x");
    expect(text).toContain('"clusterName":"c1"');
    expect(text).toContain('"shardKeyHeader":"x-shard-key"');
  });

  it("scrub() with secretValues() removes every secret value from free text, decoded URL passwords included", () => {
    const line = `secret=${SECRET} token=${TOKEN} pw=plain-store-password url-pw=p@ss-url-word`;
    expect(scrub(line, secretValues(config))).toBe("secret=[redacted] token=[redacted] pw=[redacted] url-pw=[redacted]");
  });
});

describe("tarGz()", () => {
  it("writes a ustar archive whose headers checksum and whose files read back", () => {
    const tar = gunzipSync(
      tarGz([
        { name: "a.txt", data: "hello" },
        { name: "d/b.json", data: Buffer.alloc(600, 120) },
      ]),
    );
    expect(tar.length % 512).toBe(0);
    const header = tar.subarray(0, 512);
    const stored = parseInt(header.subarray(148, 156).toString().replace(/\0.*$/s, "").trim(), 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
    expect(stored).toBe(sum);
    expect(header.subarray(257, 262).toString()).toBe("ustar");
    expect(tar.subarray(512, 517).toString()).toBe("hello");
    expect(tar.subarray(1024, 1032).toString()).toBe("d/b.json");
    expect(() => tarGz([{ name: "x".repeat(100), data: "" }])).toThrow(/longer than 99/);
  });
});
