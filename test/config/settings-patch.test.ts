import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { parseSettingsPatch } from "../../src/config/settings-patch.js";
import { ConfigError } from "../../src/core/errors.js";
import { DEFAULT_SETTINGS, MAX_HEARTBEAT_QUORUM, validateSettings } from "../../src/core/timing.js";

/** Live settings changes meet the config file's rules: one bound, own keys only, decimal counts. */
describe("parseSettingsPatch()", () => {
  it("reads durations and a decimal heartbeat_quorum", () => {
    expect(parseSettingsPatch({ unhealthy_interval: "10s", heartbeat_quorum: "3", heartbeat_interval: 500 })).toEqual({
      unhealthy_interval: 10_000,
      heartbeat_quorum: 3,
      heartbeat_interval: 500,
    });
    expect(parseSettingsPatch({ heartbeat_quorum: 4 })).toEqual({ heartbeat_quorum: 4 });
  });

  it("refuses a heartbeat_quorum that is not a decimal whole number (0x10, 1e1, 2.5, empty)", () => {
    for (const q of ["0x10", "1e1", "2.5", "", " ", 2.5, "0b11"]) {
      expect(() => parseSettingsPatch({ heartbeat_quorum: q }), String(q)).toThrow(/settings\.heartbeat_quorum: must be a whole number/);
    }
  });

  it("refuses keys that only Object.prototype has (__proto__, toString, constructor) as unknown settings", () => {
    for (const text of ['{"__proto__":"1s"}', '{"toString":"1s"}', '{"constructor":"1s"}', '{"hasOwnProperty":"1s"}']) {
      const input = JSON.parse(text) as Record<string, unknown>;
      expect(() => parseSettingsPatch(input), text).toThrow(ConfigError);
      expect(() => parseSettingsPatch(input), text).toThrow(/unknown; the settings are/);
    }
  });
});

describe("validateSettings(): heartbeat_quorum's bound, for the file and for live changes alike", () => {
  it(`accepts 2 to ${MAX_HEARTBEAT_QUORUM} and refuses 1000 or 16, naming the bound`, () => {
    expect(() => validateSettings({ ...DEFAULT_SETTINGS, heartbeatQuorum: MAX_HEARTBEAT_QUORUM })).not.toThrow();
    for (const q of [1000, MAX_HEARTBEAT_QUORUM + 1, 1]) {
      expect(() => validateSettings({ ...DEFAULT_SETTINGS, heartbeatQuorum: q })).toThrow(
        `settings.heartbeat_quorum: must be an integer from 2 (the primary master and one secondary) to ${MAX_HEARTBEAT_QUORUM}, got ${q}`,
      );
    }
  });

  it("the config file refuses the same quorum", () => {
    const base = { cluster_name: "c1", secret: "s3cr3t-value-0123456789", store: { backend: "sqlite", path: "/tmp/x.db" } };
    expect(parseConfig({ ...base, settings: { heartbeat_quorum: MAX_HEARTBEAT_QUORUM } }, {}).settings.heartbeatQuorum).toBe(15);
    expect(() => parseConfig({ ...base, settings: { heartbeat_quorum: MAX_HEARTBEAT_QUORUM + 1 } }, {})).toThrow(ConfigError);
  });
});
