import { InvalidArgumentError } from "commander";
import { formatMs, parseDuration } from "../config/duration.js";
import { parseSettingsPatch } from "../config/settings-patch.js";
import { loadConfigFile } from "../config/load.js";
import { ConfigError } from "../core/errors.js";
import { DEFAULT_PAUSE_MS, pauseLengthProblem, toKeys } from "../core/master/control-plane.js";
import type { AdminCommand, AdminReply, SettingKey } from "../core/ports/transport.js";
import { deriveTiming, failoverBoundMs } from "../core/timing.js";
import { openClusterAccess, primaryMaster, type ClusterAccess } from "./cluster-access.js";

/**
 * The operator commands on the cluster document, the history and the node list: `settings
 * get|set`, `pause`, `resume`, `clear-hold`, `history`, `forget`. Reads come straight from the
 * store; every change goes to the primary master, the only writer (a command it refuses exits 1
 * with its code and reason).
 */

/** Who an operator command says asked, for the history: `--by`, else the login name. */
export function operator(by: string | undefined): string {
  return by ?? process.env["USER"] ?? "operator";
}

async function withAccess<T>(file: string, fn: (access: ClusterAccess) => Promise<T>): Promise<T> {
  const access = await openClusterAccess(loadConfigFile(file));
  try {
    return await fn(access);
  } finally {
    await access.close();
  }
}

/** Sends `command` to the primary master; prints the outcome (`done`); false when it was refused. */
async function send(access: ClusterAccess, command: AdminCommand, done: string | ((reply: AdminReply) => string)): Promise<boolean> {
  const reply = await access.transport.admin(await primaryMaster(access), command, 10_000);
  if (!reply.ok) {
    process.stderr.write(`${command.op} refused: ${reply.error?.code} ${reply.error?.message}\n`);
    return false;
  }
  const said = typeof done === "string" ? done : done(reply);
  process.stdout.write(`${said}${reply.version === undefined ? "" : ` (cluster document version ${reply.version})`}\n`);
  return true;
}

/** `multiconnect settings get`: the cluster's live settings, their version and the failover bound. */
export async function settingsGetCommand(o: { config: string; json?: boolean }): Promise<void> {
  await withAccess(o.config, async (access) => {
    const doc = await access.store.clusterDocument.read();
    const settings = doc?.document.settings ?? access.timing;
    const masters = (await access.store.liveness.list()).filter((n) => n.role === "master").length;
    const bound = failoverBoundMs(deriveTiming(settings, access.store.capabilities), Math.max(masters, 1), access.store.capabilities);
    const out = { version: doc?.version ?? 0, settings: toKeys(settings), failover_bound_ms: bound };
    if (o.json) return void process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    const lines = Object.entries(out.settings).map(([k, v]) => `${k.padEnd(22)} ${k === "heartbeat_quorum" ? v : formatMs(v)}`);
    const source = doc ? `version ${doc.version}` : "no cluster document yet: the config file's values";
    process.stdout.write(`${lines.join("\n")}\n\n${source}; failover bound ${formatMs(bound)} with ${masters} master(s)\n`);
  });
}

/**
 * Parses `key=value` pairs of `settings set` (see `parseSettingsPatch`). Throws commander's
 * `InvalidArgumentError` naming the key: a bad argument, not a bad config file (exit 1, not 2).
 */
export function parseSettingPairs(pairs: readonly string[]): Partial<Record<SettingKey, number>> {
  const input: Record<string, string> = {};
  for (const pair of pairs) {
    const [key, value, extra] = pair.split("=");
    if (!key || value === undefined || extra !== undefined)
      throw new InvalidArgumentError("expected key=value, e.g. unhealthy_interval=10s");
    input[key] = value;
  }
  try {
    return parseSettingsPatch(input);
  } catch (error) {
    // The patch's checks are the config file's, so their errors say "config: settings.<key>: …".
    if (error instanceof ConfigError) throw new InvalidArgumentError(error.message.replace(/^config: /, ""));
    throw error;
  }
}

/** Parses `pause --for`: a duration such as 30m or 1h, whole milliseconds, within the master's bounds. */
export function parsePauseDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new InvalidArgumentError("--for must be a duration such as 30m or 1h");
  const problem = pauseLengthProblem(Math.round(ms));
  if (problem) throw new InvalidArgumentError(`--for ${problem}`);
  return Math.round(ms);
}

/** `multiconnect settings set key=value …`: through the primary master. */
export async function settingsSetCommand(o: { config: string; pairs: string[]; by?: string }): Promise<boolean> {
  const settings = parseSettingPairs(o.pairs);
  return withAccess(o.config, (access) => send(access, { op: "settings", settings, by: operator(o.by) }, "settings changed"));
}

/**
 * `multiconnect pause [--shard N] [--for D] [--reason R]`: no automatic failover until resumed or D
 * has passed. `durationMs` (from `parsePauseDuration`) defaults to one hour.
 */
export async function pauseCommand(o: {
  config: string;
  shard?: number;
  durationMs?: number;
  reason?: string;
  by?: string;
}): Promise<boolean> {
  const durationMs = o.durationMs ?? DEFAULT_PAUSE_MS;
  const shard = o.shard ?? null;
  const what = shard === null ? "automatic failover paused for the whole cluster" : `automatic failover paused for shard ${shard}`;
  return withAccess(o.config, (access) =>
    send(access, { op: "pause", shard, durationMs, reason: o.reason ?? "", by: operator(o.by) }, `${what} for ${formatMs(durationMs)}`),
  );
}

/** `multiconnect resume [--shard N]`. */
export async function resumeCommand(o: { config: string; shard?: number; by?: string }): Promise<boolean> {
  const shard = o.shard ?? null;
  return withAccess(o.config, (access) =>
    send(
      access,
      { op: "resume", shard, by: operator(o.by) },
      shard === null ? "automatic failover resumed" : `automatic failover resumed for shard ${shard}`,
    ),
  );
}

/**
 * `multiconnect forget NODE`: removes one node's record at once (by id, or by a name only one
 * record has). Refused for a shard's named owner, and for a live node unless `force`. The primary
 * master removes it, so that no promotion to the node is on its way meanwhile (`Membership.forget`).
 */
export async function forgetCommand(o: { config: string; node: string; force?: boolean; by?: string }): Promise<boolean> {
  const command = { op: "forget", node: o.node, force: o.force === true, by: operator(o.by) } as const;
  return withAccess(o.config, (access) =>
    send(access, command, ({ removed: n }) => (n ? `removed ${n.id} (${n.role} ${n.name}, last seen ${n.silentMs} ms ago)` : "removed")),
  );
}

/** `multiconnect clear-hold NODE`: lets the primary master promote a held-out coreapp again. */
export async function clearHoldCommand(o: { config: string; node: string; by?: string }): Promise<boolean> {
  return withAccess(o.config, (access) =>
    send(access, { op: "clear-hold", node: o.node, by: operator(o.by) }, `${o.node} may be promoted again`),
  );
}

/** `multiconnect history [--shard N] [--limit N] [--json]`: newest first. */
export async function historyCommand(o: { config: string; shard?: number; limit?: number; json?: boolean }): Promise<void> {
  await withAccess(o.config, async (access) => {
    const events = await access.store.history.list({ ...(o.shard === undefined ? {} : { shard: o.shard }), limit: o.limit ?? 50 });
    if (o.json) return void process.stdout.write(`${JSON.stringify(events, null, 2)}\n`);
    const lines = events.map((e) => {
      const when = new Date(e.atMs).toISOString();
      const shard = e.shard === null ? "cluster" : `shard ${e.shard}`;
      const epochs = Object.entries(e.epochs)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ");
      return `${when}  ${e.type.padEnd(16)} ${shard.padEnd(9)} ${e.cause}${epochs ? `  [${epochs}]` : ""}\n    ${JSON.stringify(e.evidence)}`;
    });
    process.stdout.write(lines.length ? `${lines.join("\n")}\n` : "no history yet\n");
  });
}
