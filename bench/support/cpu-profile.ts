import { readFileSync } from "node:fs";

/** Where a V8 CPU profile's busy time went: by source file (or library), and by function. */
export interface ProfileSummary {
  /** Sampled time not idle, ms. */
  readonly busyMs: number;
  /** Every bucket, largest first (tables show the first `top`; shares are summed over all). */
  readonly byFile: [string, number][];
  readonly byFunction: [string, number][];
  /** How many rows a table of this summary shows. */
  readonly top: number;
}

/** A readable bucket for a frame: the SDK file, the library, Node's internals, or the native side. */
function bucket(url: string, fn: string): string {
  if (fn === "(garbage collector)") return "garbage collection";
  if (fn === "(program)") return "V8/native, unattributed";
  const sdk = /\/dist\/(.+)$/.exec(url);
  if (sdk) return `SDK ${sdk[1]}`;
  const lib = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (lib) return `library ${lib[1]}`;
  if (url.startsWith("node:internal/")) return `Node internal/${url.slice(14).split("/")[0]}`;
  if (url.startsWith("node:")) return `Node ${url.slice(5).split("/")[0]}`;
  if (url === "") return `native ${fn || "(anonymous)"}`;
  return url.replace(/^file:\/\//, "");
}

/**
 * Reads a `.cpuprofile` (node --cpu-prof) and sums self time per bucket and per function. With
 * `window` (CLOCK_MONOTONIC ms — V8 stamps samples on that clock, in µs) only the samples inside it
 * count, so start-up (module loading, compilation) does not blur the picture of the load.
 */
export function summarizeProfile(file: string, top = 12, window?: { from: number; to: number }): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    startTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const delta = p.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at / 1000 < window.from || at / 1000 > window.to)) continue;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + delta / 1000);
  }
  const files = new Map<string, number>();
  const fns = new Map<string, number>();
  let busy = 0;
  for (const [id, t] of self) {
    const cf = byId.get(id)?.callFrame;
    if (!cf || cf.functionName === "(idle)" || cf.functionName === "(root)") continue;
    busy += t;
    const b = bucket(cf.url, cf.functionName);
    files.set(b, (files.get(b) ?? 0) + t);
    const where = cf.url ? `${b.replace(/^(SDK|library|Node) /, "")}:${cf.lineNumber + 1}` : "native";
    const key = `${cf.functionName || "(anonymous)"} (${where})`;
    fns.set(key, (fns.get(key) ?? 0) + t);
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return { busyMs: busy, byFile: sorted(files), byFunction: sorted(fns), top };
}
