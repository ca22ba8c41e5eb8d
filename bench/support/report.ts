import { execSync } from "node:child_process";
import { cpus, loadavg, release, totalmem } from "node:os";

/** One line of the report's summary table: a figure, its target, and whether it was met. */
export interface Headline {
  readonly item: string;
  readonly figure: string;
  readonly measured: string;
  readonly target: string;
  /** null when the figure has no target (an anchor, or context). */
  readonly met: boolean | null;
}

/** What each benchmark item hands to the report writer. */
export interface ItemReport {
  readonly id: number;
  readonly title: string;
  readonly headlines: Headline[];
  /** The item's section of docs/benchmarks.md (markdown, without its title). */
  readonly body: string;
}

/** A markdown table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** "met" / "**missed**" / "–" for a target check (bold so a miss stands out in the tables). */
export function verdict(met: boolean | null): string {
  return met === null ? "–" : met ? "met" : "**missed**";
}

/** The machine, for the report header: CPU model and count, memory, kernel, Node, and the servers' versions. */
export function machine(): Record<string, string> {
  const cpu = cpus();
  const version = (cmd: string) => {
    try {
      return (
        execSync(cmd, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 })
          .trim()
          .split("\n")[0] ?? "?"
      );
    } catch {
      return "not found";
    }
  };
  return {
    cpu: `${cpu.length} × ${cpu[0]?.model ?? "?"}`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    kernel: release(),
    node: process.version,
    postgres: version("psql --version"),
    mariadb: version("mariadb --version || mysql --version"),
    redis: version("redis-server --version"),
    etcd: version("etcd --version"),
  };
}

/** The 1/5/15-minute load averages, formatted. */
export function loadAverage(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(", ");
}
