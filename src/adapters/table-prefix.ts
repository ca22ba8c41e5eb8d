import { ConfigError } from "../core/errors.js";

const PREFIX = /^[A-Za-z_][A-Za-z0-9_]{0,30}$/;

/**
 * Checks the table prefix of a SQL store (the model product's `WA_DB_NAME_PREFIX`, so several
 * clusters can share one database). It is spliced into SQL, so only identifier characters pass.
 */
export function checkTablePrefix(prefix: string, key = "store.table_prefix"): string {
  if (!PREFIX.test(prefix)) throw new ConfigError(key, `must be letters, digits or _ (at most 31), got ${JSON.stringify(prefix)}`);
  return prefix;
}
