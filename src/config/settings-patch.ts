import { ConfigError } from "../core/errors.js";
import { SETTING_FIELDS } from "../core/master/control-plane.js";
import type { SettingKey } from "../core/ports/transport.js";
import { parseDuration } from "./duration.js";

/**
 * Reads a change of the cluster's settings as an operator gives it — the config file's keys with
 * durations (`"10s"`, or milliseconds as a number) and a count for `heartbeat_quorum` — for
 * `multiconnect settings set` and `PATCH /v1/settings/application`. Throws `ConfigError` naming the
 * key; whether the new settings are safe together is the primary master's check (`validateSettings`).
 */
export function parseSettingsPatch(input: Readonly<Record<string, unknown>>): Partial<Record<SettingKey, number>> {
  const keys = Object.keys(input);
  if (keys.length === 0) throw new ConfigError("settings", `give at least one of ${Object.keys(SETTING_FIELDS).join(", ")}`);
  const out: Partial<Record<SettingKey, number>> = {};
  for (const key of keys) {
    if (!(key in SETTING_FIELDS))
      throw new ConfigError(`settings.${key.slice(0, 64)}`, `unknown; the settings are ${Object.keys(SETTING_FIELDS).join(", ")}`);
    const raw = input[key];
    const value = key === "heartbeat_quorum" ? (typeof raw === "string" ? Number(raw) : raw) : parseDuration(raw);
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new ConfigError(
        `settings.${key}`,
        key === "heartbeat_quorum" ? "must be a whole number" : "must be a duration such as 500ms, 5s or 2m",
      );
    }
    out[key as SettingKey] = value;
  }
  return out;
}
