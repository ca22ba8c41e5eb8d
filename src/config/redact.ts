import type { Config } from "./load.js";

/** What replaces a secret in anything the SDK writes out for people (support bundles). */
export const REDACTED = "[redacted]";

/** Keys whose values are secrets wherever they appear. */
const SECRET_KEY = /secret|password|passwd|token|credential|private_?key/i;

/**
 * A copy of `config` safe to hand to someone else: secret-named keys replaced, and the user
 * information of any URL (`redis://user:pw@host`) reduced to the user name.
 */
export function redactConfig(config: Config): unknown {
  return redactValue(config);
}

function redactValue(value: unknown, key = ""): unknown {
  if (value === undefined || value === null) return value;
  if (SECRET_KEY.test(key)) return REDACTED;
  if (typeof value === "string") return redactUrl(value);
  if (Array.isArray(value)) return value.map((v) => redactValue(v));
  if (typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, k)]));
  }
  return value;
}

/** `scheme://user:password@host…` → `scheme://user:[redacted]@host…`; other strings unchanged. */
function redactUrl(s: string): string {
  return s.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@:]*)(:[^/@]*)?@/i, (_m, scheme: string, user: string, pw?: string) =>
    pw ? `${scheme}${user}:${REDACTED}@` : `${scheme}${user}@`,
  );
}

/**
 * Every secret value `config` holds (the cluster secret, the admin token, store passwords, and the
 * passwords inside URLs), for scrubbing text that did not come from the config (log files).
 */
export function secretValues(config: Config): string[] {
  const found = new Set<string>();
  const walk = (value: unknown, key = ""): void => {
    if (typeof value === "string") {
      if (SECRET_KEY.test(key) && value.length > 0) found.add(value);
      const pw = /^[a-z][a-z0-9+.-]*:\/\/[^/@:]*:([^/@]+)@/i.exec(value)?.[1];
      if (pw) {
        found.add(pw);
        found.add(decodeURIComponent(pw));
      }
    } else if (Array.isArray(value)) value.forEach((v) => walk(v));
    else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) walk(v, k);
  };
  walk(config);
  // Longest first, so a secret that contains another is replaced whole.
  return [...found].sort((a, b) => b.length - a.length);
}

/** `text` with every occurrence of each of `secrets` replaced by `[redacted]`. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join(REDACTED);
  return out;
}

/**
 * A host or URL entry with everything up to its last `@` (a user and password) shown as `…@`, its
 * scheme kept: for naming a bad entry in an error without echoing its credentials.
 */
export function withoutCredentials(entry: string): string {
  return entry.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/is, "$1…@");
}
