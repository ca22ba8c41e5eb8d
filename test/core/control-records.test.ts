import { describe, expect, it } from "vitest";
import { decodeClusterDocument, encodeClusterDocument } from "../../src/core/control-records.js";
import { ClusterDocumentError } from "../../src/core/errors.js";
import { DEFAULT_SETTINGS } from "../../src/core/timing.js";

const stored = (over: Record<string, unknown> = {}) => JSON.stringify({ settings: DEFAULT_SETTINGS, shardCount: 2, pauses: [], ...over });

describe("cluster document records", () => {
  it("decodeClusterDocument() reports a stored document with unsafe settings, naming the version and the key", () => {
    const json = stored({ settings: { ...DEFAULT_SETTINGS, unhealthyIntervalMs: 5_000 } });
    expect(() => decodeClusterDocument(json, 7, 0)).toThrow(ClusterDocumentError);
    expect(() => decodeClusterDocument(json, 7, 0)).toThrow(
      /version 7 .*settings\.unhealthy_interval: must be at least twice heartbeat_interval/,
    );
  });

  it("decodeClusterDocument() reports malformed JSON, a missing shard count and a malformed pause", () => {
    expect(() => decodeClusterDocument("{", 1, 0)).toThrow(/version 1 .*not JSON/);
    expect(() => decodeClusterDocument(stored({ shardCount: undefined }), 2, 0)).toThrow(/shard_count/);
    expect(() => decodeClusterDocument(stored({ pauses: [{ shard: "x" }] }), 3, 0)).toThrow(/pauses\[0\]: malformed/);
    expect(() => decodeClusterDocument(stored({ settings: { ...DEFAULT_SETTINGS, heartbeatIntervalMs: "5s" } }), 4, 0)).toThrow(
      /heartbeat_interval: must be a number/,
    );
  });

  it("a pause round-trips with its time left on the store's clock scale, and is dropped once that time has passed", () => {
    const encoded = encodeClusterDocument(
      { settings: DEFAULT_SETTINGS, shardCount: 2, pauses: [{ shard: 1, by: "ops", reason: "r", expiresInMs: 1000 }] },
      50_000,
      1_700_000_000_000,
    );
    expect(encoded.pauses[0]).toEqual({ shard: 1, by: "ops", reason: "r", pausedAtMs: 1_700_000_000_000, expiresAtMs: 51_000 });
    const json = JSON.stringify(encoded);
    expect(decodeClusterDocument(json, 1, 50_400).pauses).toEqual([
      { shard: 1, by: "ops", reason: "r", pausedAtMs: 1_700_000_000_000, expiresInMs: 600 },
    ]);
    expect(decodeClusterDocument(json, 1, 51_000).pauses).toEqual([]);
  });

  it("an unstamped pause takes the write's time given to decodeClusterDocument()", () => {
    const json = JSON.stringify(
      encodeClusterDocument(
        { settings: DEFAULT_SETTINGS, shardCount: 1, pauses: [{ shard: null, by: "ops", reason: "", expiresInMs: 10 }] },
        0,
        null,
      ),
    );
    expect(decodeClusterDocument(json, 1, 5, 1_234).pauses[0]).toMatchObject({ pausedAtMs: 1_234, expiresInMs: 5 });
  });
});
