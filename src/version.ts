import { readFileSync } from "node:fs";

/**
 * The SDK's version, from its package.json (one directory above both `src/` and `dist/`), for
 * `multiconnect --version`, support bundles and logs.
 */
export const SDK_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
})();
