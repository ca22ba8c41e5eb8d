/**
 * `npx tsx bench/scale-point.ts <memory|postgres> <shards>`: one point of item 5's scale
 * measurement (the primary master's CPU with 1.5 simulated coreapps per shard), without the rest of
 * item 5. Prints the point as JSON with the load average before and after. Needs `npm run build`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { PROFILES } from "./support/profiles.js";
import { scalePoint } from "./store-load.js";

const store = process.argv[2] === "postgres" ? "postgres" : "memory";
const shards = Number(process.argv[3] ?? 1024);
const dir = mkdtempSync(join(tmpdir(), "mc-scale-"));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
try {
  const before = load();
  const point = await scalePoint(store, shards, PROFILES.full, dir, null);
  console.log(JSON.stringify({ loadBefore: before, loadAfter: load(), ...point, ops: undefined }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
