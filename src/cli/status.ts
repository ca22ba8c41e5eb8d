import { loadConfigFile } from "../config/load.js";
import { formatMs } from "../config/duration.js";
import { readClusterStatus, type ClusterStatus } from "../nodes/cluster-status.js";
import { openClusterAccess } from "./cluster-access.js";

/** `multiconnect status`: nodes, roles, the shard map and epochs, read from the store. */
export async function statusCommand(o: { config: string; json?: boolean }): Promise<void> {
  const config = loadConfigFile(o.config);
  const access = await openClusterAccess(config);
  try {
    const status = await readClusterStatus(access.store, access.timing, config.shards);
    process.stdout.write(o.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status));
  } finally {
    await access.close();
  }
}

/** Renders a cluster status as text tables (shared with the dev cluster's live view). */
export function renderStatus(s: ClusterStatus): string {
  const rows = s.nodes.map((n) => [
    n.name,
    n.role,
    n.state,
    // A coreapp serving on failsafe promises, or that did in its current tenure, says so.
    (n.gateway_status ?? "") +
      (n.failsafe === "serving" ? " (failsafe)" : n.failsafe_served_ms ? ` (failsafe ${formatMs(n.failsafe_served_ms)})` : ""),
    n.shard === undefined ? "" : String(n.shard),
    n.epoch === undefined ? "" : String(n.epoch),
    n.address,
    formatMs(n.last_seen_ms),
  ]);
  const shards = s.shards.map((a) => [String(a.shard), a.owner_name ?? a.owner ?? "(none)", String(a.epoch)]);
  return [
    table(["NODE", "ROLE", "STATE", "GATEWAY", "SHARD", "EPOCH", "ADDRESS", "LAST SEEN"], rows),
    "",
    table(["SHARD", "PRIMARY COREAPP", "EPOCH"], shards),
    "",
    `settings (version ${s.settings.version}): ${Object.entries(s.settings)
      .filter(([k]) => k !== "version")
      .map(([k, v]) => `${k}=${k === "heartbeat_quorum" ? v : k === "failsafe_max" && v === 0 ? "off" : formatMs(v)}`)
      .join(" ")}`,
    `failover bound: ${formatMs(s.failover_bound_ms)}`,
    ...s.pauses.map(
      (p) =>
        `PAUSED ${p.shard === null ? "(whole cluster)" : `shard ${p.shard}`} by ${p.by} at ${p.paused_at}${p.reason ? `: ${p.reason}` : ""}; ends in ${formatMs(p.ends_in_ms)}`,
    ),
    ...(s.held_out.length ? [`held out of automatic promotion: ${s.held_out.join(", ")} (multiconnect clear-hold NODE)`] : []),
    ...s.unserved.flatMap((u) => [
      `NO PRIMARY for shard ${u.shard} for ${formatMs(u.waiting_ms)} (${u.reason}); ${u.passed_over.length ? "passed over:" : "no coreapp is registered"}`,
      ...u.passed_over.map((p) => `  ${p.name}: ${p.reason}`),
    ]),
    "",
  ].join("\n");
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}
