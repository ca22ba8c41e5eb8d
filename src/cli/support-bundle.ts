import { closeSync, fchmodSync, openSync, readdirSync, readSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadConfigFile } from "../config/load.js";
import { redactConfig, scrub, secretValues } from "../config/redact.js";
import { toKeys } from "../core/master/control-plane.js";
import { readClusterStatus, type ClusterStatus } from "../nodes/cluster-status.js";
import { PROTOCOL, testProtocolOverride } from "../adapters/transport/index.js";
import { SDK_VERSION } from "../version.js";
import { openClusterAccess } from "./cluster-access.js";
import { tarGz, type ArchiveEntry } from "./tar-gz.js";

/** How much of each log file goes into a bundle: its last MiB. */
const LOG_TAIL_BYTES = 1024 * 1024;
/** How long the bundle waits for one webapp's `/metrics`. */
const METRICS_TIMEOUT_MS = 2000;

/**
 * `multiconnect support-bundle`: one .tar.gz to attach to a bug report — the cluster's status,
 * settings, the config with every secret redacted, versions, a metrics snapshot of each live
 * webapp, and the tail of each log file in `logs`. Every file is also scrubbed of the config's
 * secret values, so a secret that reached a log line does not leave with the bundle.
 */
export async function supportBundleCommand(o: { config: string; logs?: string; out?: string }): Promise<string> {
  const config = loadConfigFile(o.config);
  const secrets = secretValues(config);
  const entries: ArchiveEntry[] = [];
  const add = (name: string, text: string) => entries.push({ name, data: scrub(text, secrets) });
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

  const access = await openClusterAccess(config);
  let status: ClusterStatus | null = null;
  try {
    status = await readClusterStatus(access.store, access.timing, config.shards);
    add("status.json", json(status));
  } catch (error) {
    add("status.error.txt", `${String((error as Error).message ?? error)}\n`);
  } finally {
    await access.close();
  }
  add("config.json", json(redactConfig(config)));
  // The live settings are the cluster document's (status.settings); the file's only seeded them.
  add(
    "settings.json",
    json({ live: status?.settings ?? null, config_file: toKeys(config.settings), node_retention_ms: config.nodeRetentionMs }),
  );
  add(
    "versions.json",
    json({
      sdk: SDK_VERSION,
      protocol: testProtocolOverride() ?? PROTOCOL,
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      backend: config.store.backend,
    }),
  );
  for (const w of status?.nodes.filter((n) => n.role === "webapp" && n.state === "up") ?? []) {
    add(`metrics/${safeName(w.name)}-${safeName(w.id)}.txt`, await fetchMetrics(w.address));
  }
  if (o.logs) for (const [name, text] of readLogTails(o.logs)) add(`logs/${safeName(name)}`, text);

  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const out = resolve(o.out ?? `multiconnect-support-${config.clusterName}-${stamp}.tar.gz`);
  writeOwnerOnly(out, tarGz(entries));
  process.stdout.write(`support bundle written: ${out} (${entries.map((e) => e.name).join(", ")})\n`);
  return out;
}

/**
 * Writes `data` to `path` readable by its owner only. `mode` alone applies only when the file is
 * created, and an existing file (an earlier bundle, `--out` naming a file) would keep its
 * permissions: the mode is set on the open file, before the first byte is written.
 */
export function writeOwnerOnly(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, "w", 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

async function fetchMetrics(address: string): Promise<string> {
  try {
    const r = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(METRICS_TIMEOUT_MS) });
    return `# GET http://${address}/metrics -> ${r.status}\n${await r.text()}`;
  } catch (error) {
    return `# GET http://${address}/metrics failed: ${String((error as Error).message ?? error)}\n`;
  }
}

/** The last LOG_TAIL_BYTES of each regular file directly in `dir`. */
function readLogTails(dir: string): [string, string][] {
  const out: [string, string][] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = statSync(path);
    if (!st.isFile()) continue;
    const length = Math.min(st.size, LOG_TAIL_BYTES);
    const buf = Buffer.alloc(length);
    const fd = openSync(path, "r");
    try {
      readSync(fd, buf, 0, length, st.size - length);
    } finally {
      closeSync(fd);
    }
    out.push([name, buf.toString("utf8")]);
  }
  return out;
}

/** A file-name-safe, short form of a node or file name (the archive keeps names under 100 bytes). */
function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 60);
}
