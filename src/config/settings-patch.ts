import { ConfigError } from "../core/errors.js";
import { SETTING_FIELDS } from "../core/master/control-plane.js";
import type { SettingKey } from "../core/ports/transport.js";
import { parseDuration } from "./duration.js";

/**
 * Reads a change of the cluster's settings as an operator gives it — the config file's keys with
 * durations (`"10s"`, or milliseconds as a number) and a count for `heartbeat_quorum` (a whole
 * number, or its decimal digits as text) — for `multiconnect settings set` and
 * `PATCH /v1/settings/application`. Throws `ConfigError` naming the key; whether the new settings
 * are safe together, and within their bounds, is the primary master's check (`validateSettings`).
 */
export function parseSettingsPatch(input: Readonly<Record<string, unknown>>): Partial<Record<SettingKey, number>> {
  const keys = Object.keys(input);
  if (keys.length === 0) throw new ConfigError("settings", `give at least one of ${Object.keys(SETTING_FIELDS).join(", ")}`);
  const out: Partial<Record<SettingKey, number>> = {};
  for (const key of keys) {
    // Own keys only: `in` would take "__proto__" or "toString" from Object.prototype for settings.
    if (!Object.hasOwn(SETTING_FIELDS, key))
      throw new ConfigError(`settings.${key.slice(0, 64)}`, `unknown; the settings are ${Object.keys(SETTING_FIELDS).join(", ")}`);
    const raw = input[key];
    const value = key === "heartbeat_quorum" ? count(raw) : parseDuration(raw);
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

/** A count: a whole number, or its decimal digits as text ("3"); NaN for anything else ("0x10", "1e1", "3.5", ""). */
function count(raw: unknown): number {
  if (typeof raw === "number") return Number.isInteger(raw) ? raw : NaN;
  return typeof raw === "string" && /^\s*\d{1,15}\s*$/.test(raw) ? Number(raw) : NaN;
}
