import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mapEtcdError } from "../../src/adapters/etcd/errors.js";
import { EtcdStore } from "../../src/adapters/etcd/index.js";
import { MysqlStore } from "../../src/adapters/mysql/index.js";
import { PostgresStore } from "../../src/adapters/postgres/index.js";
import { RedisStore } from "../../src/adapters/redis/index.js";
import { loadConfigFile, parseConfig } from "../../src/config/load.js";
import { ConfigError, StoreUnavailableError } from "../../src/core/errors.js";

/** docs/configuration.md: "Values are never echoed in errors". Each case puts PW where a secret goes. */
const PW = "pw-that-must-not-leak-0123";
const SECRET = "s3cr3t-value-that-must-not-leak";

/** The ConfigError `make` throws, checked not to carry PW or SECRET. */
function configError(make: () => unknown): ConfigError {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).not.toContain(PW);
    expect((error as Error).message).not.toContain(SECRET);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("store options: credentials in host entries are never echoed", () => {
  it("new EtcdStore() names a hosts entry holding a password by position and shows only what follows the last @", () => {
    const e = configError(() => new EtcdStore({ hosts: ["http://127.0.0.1:2379", `root:${PW}@10.0.0.1:2379`] }));
    expect(e.key).toBe("store.hosts");
    expect(e.message).toContain('entry [1] ("…@10.0.0.1:2379") holds a user or password');
    expect(e.message).not.toContain("root");
    // A `/` in the password used to stop the masking of a URL with a scheme.
    const slash = configError(() => new EtcdStore({ hosts: `https://root:a/${PW}@10.0.0.1:2379` }));
    expect(slash.message).toContain('entry [0] ("https://…@10.0.0.1:2379")');
  });

  it("new EtcdStore() still shows an entry without an @, which cannot hold a login", () => {
    expect(configError(() => new EtcdStore({ hosts: "http://127.0.0.1:2379/v3" })).message).toContain(
      'entry [0] ("http://127.0.0.1:2379/v3") is not an etcd client URL',
    );
  });

  it("new PostgresStore() names a hosts entry holding a password by position, never its login", () => {
    const e = configError(() => new PostgresStore({ hosts: ["db1:5432", `app:${PW}@db2:5432`] }));
    expect(e.key).toBe("store.hosts");
    expect(e.message).toContain('entry [1] ("…@db2:5432") holds a user or password: give them in store.user and store.password');
    expect(configError(() => new PostgresStore({ hosts: "db1:5432,db2:99999" })).message).toContain(
      'entry [1] ("db2:99999") must be host or host:port',
    );
  });

  it("new PostgresStore() refuses a url or host that would carry the password into messages", () => {
    // No scheme: node-postgres would read the database name as the rest of the password.
    expect(configError(() => new PostgresStore({ url: `app:${PW}@db:5432/x` })).key).toBe("store.url");
    // An unencoded `/` in the password: the part after it would become the database name.
    expect(configError(() => new PostgresStore({ url: `postgres://app:123/${PW}@db:5432/x` })).message).toMatch(/percent-encode/);
    expect(configError(() => new PostgresStore({ host: `app:${PW}@db` })).key).toBe("store.host");
  });

  it("new RedisStore() names a sentinels entry holding a password by position, never its login", () => {
    const e = configError(() => new RedisStore({ sentinels: `s1:26379, admin:${PW}@s2:26379`, sentinelName: "mymaster" }));
    expect(e.key).toBe("store.sentinels");
    expect(e.message).toContain('entry [1] ("…@s2:26379") holds a user or password');
    expect(configError(() => new RedisStore({ host: `admin:${PW}@cache` })).key).toBe("store.host");
  });

  it("new RedisStore() and new MysqlStore() do not take the user of a url without a scheme for its scheme", () => {
    const redis = configError(() => new RedisStore({ url: `admin:${PW}@cache:6379` }));
    expect(redis.message).toBe("config: store.url: must start with redis:// or rediss://");
    const mysql = configError(() => new MysqlStore({ url: `admin:${PW}@db:3306/x` }));
    expect(mysql.message).toBe("config: store.url: must start with mysql:// or mariadb://");
    expect(configError(() => new MysqlStore({ url: `mysql://app:123/${PW}@db:3306/x` })).message).toMatch(/percent-encode/);
  });
});

describe("store errors: the driver's text is copied without the password", () => {
  it("mapEtcdError() takes the store password out of the message and keeps no cause that holds it", () => {
    class GRPCUnavailableError extends Error {}
    const mapped = mapEtcdError(new GRPCUnavailableError(`auth as root:${PW} failed\nsecond line`), "etcd (h:2379)", PW);
    expect(mapped).toBeInstanceOf(StoreUnavailableError);
    expect(mapped.message).toBe("etcd (h:2379): unavailable: auth as root:*** failed");
    expect(String((mapped.cause as Error).message)).not.toContain(PW);
    expect((mapped.cause as Error).stack).not.toContain(PW);
    // Without the password in it, the driver's error stays the cause, as it was.
    const plain = new GRPCUnavailableError("No connection established");
    expect(mapEtcdError(plain, "etcd (h:2379)", PW).cause).toBe(plain);
  });
});

describe("store options: errors name the config keys users write", () => {
  const base = { cluster_name: "c1", secret: SECRET };

  it("a config file with a timeout or poll interval of 0 is refused when it is read, naming the key", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ store: { backend: "mysql", operation_timeout: 0 } }, "store.operation_timeout"],
      [{ store: { backend: "postgres", connect_timeout: "0s" } }, "store.connect_timeout"],
      [{ store: { backend: "sqlite", poll_interval: 0 } }, "store.poll_interval"],
      [{ store: { backend: "sqlite" }, webapp: { forward_timeout: 0 } }, "webapp.forward_timeout"],
      [{ store: { backend: "sqlite" }, webapp: { body_timeout: "0ms" } }, "webapp.body_timeout"],
    ];
    for (const [extra, key] of cases) {
      const e = configError(() => parseConfig({ ...base, ...extra }, {}));
      expect(e.message, key).toContain(`${key}: must be more than 0`);
    }
  });

  it("new PostgresStore(), new MysqlStore() and new RedisStore() name connect_timeout and poll_interval as in the file", () => {
    expect(configError(() => new PostgresStore({ operationTimeoutMs: 0 })).key).toBe("store.operation_timeout");
    expect(configError(() => new PostgresStore({ connectTimeoutMs: 0 })).key).toBe("store.connect_timeout");
    expect(configError(() => new MysqlStore({ host: "db", database: "x", pollIntervalMs: 0 })).key).toBe("store.poll_interval");
    expect(configError(() => new RedisStore({ connectTimeoutMs: 0 })).key).toBe("store.connect_timeout");
    // Options only code can set are named as code writes them.
    expect(configError(() => new RedisStore({ watchResyncMs: 0 })).key).toBe("RedisOptions.watchResyncMs");
  });
});

describe("loadConfigFile(): a malformed file is reported by position, never by its text", () => {
  const dir = mkdtempSync(join(tmpdir(), "mc-secret-errors-"));
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  afterEach(() => vi.restoreAllMocks());

  it("loadConfigFile() names the file and the line and column of a JSON error next to the secret", () => {
    const path = file("bad.json", `{\n  "cluster_name": "c1",\n  "secret": ${SECRET},\n  "store": { "backend": "sqlite" }\n}\n`);
    const e = configError(() => loadConfigFile(path, {}));
    expect(e.message).toBe(`config: (file): ${path} is not valid JSON at line 3, column 13`);
  });

  it("loadConfigFile() finds the position of other JSON errors: a trailing comma, an unterminated string, trailing text", () => {
    expect(configError(() => loadConfigFile(file("comma.json", '{"a": [1, 2,]}'), {})).message).toMatch(/at line 1, column 13$/);
    expect(configError(() => loadConfigFile(file("open.json", `{"secret": "${SECRET}`), {})).message).toMatch(/at line 1, column 12$/);
    expect(configError(() => loadConfigFile(file("tail.json", '{"a": 1}\n x'), {})).message).toMatch(/at line 2, column 2$/);
  });

  it("loadConfigFile() reports a YAML error by line, column and code, and an unresolved alias without its name", () => {
    const bad = configError(() => loadConfigFile(file("bad.yaml", `secret: "${SECRET}\n`), {}));
    expect(bad.message).toMatch(/bad\.yaml is not valid YAML at line \d+, column \d+ \(MISSING_CHAR\)$/);
    // A secret that starts with `*` is a YAML alias; the library's message quotes it.
    const alias = configError(() => loadConfigFile(file("alias.yaml", `cluster_name: c1\nsecret: *${SECRET}\n`), {}));
    expect(alias.message).toMatch(/alias\.yaml is not valid YAML \(an alias \*name cannot be resolved/);
  });

  it("loadConfigFile() does not let the YAML library print a warning that quotes the file", () => {
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    // A secret that starts with `!` is a YAML tag: the library warns, quoting the line.
    const e = configError(() => loadConfigFile(file("tag.yaml", `cluster_name: c1\nsecret: !${SECRET}\nstore: { backend: sqlite }\n`), {}));
    expect(e.key).toBe("secret");
    expect(warn).not.toHaveBeenCalled();
  });
});
