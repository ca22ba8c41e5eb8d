import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";

/** One pino JSON line as the nodes write it (wall-clock `time` in ms, `msg`, and the fields). */
export interface PinoLine {
  readonly time: number;
  readonly msg: string;
  readonly level: number;
  readonly [field: string]: unknown;
}

/**
 * Reads a growing file from where the last read stopped, returning whole lines only: the logs and
 * the event log grow for the whole life of a cluster (tens of thousands of lines), and re-reading
 * them from the start after every failover would make a 20-run session quadratic.
 */
export class FileTail {
  private offset = 0;
  private partial = "";

  constructor(readonly path: string) {}

  /** The complete lines appended since the previous call. */
  read(): string[] {
    if (!existsSync(this.path)) return [];
    const size = statSync(this.path).size;
    if (size <= this.offset) return [];
    const fd = openSync(this.path, "r");
    try {
      const buf = Buffer.alloc(size - this.offset);
      const n = readSync(fd, buf, 0, buf.length, this.offset);
      this.offset += n;
      const text = this.partial + buf.subarray(0, n).toString("utf8");
      const lines = text.split("\n");
      this.partial = lines.pop() ?? "";
      return lines.filter((l) => l.length > 0);
    } finally {
      closeSync(fd);
    }
  }
}

/** Parses the JSON lines among `lines` (a node's stderr also carries a few plain-text lines). */
export function parseJsonLines<T>(lines: readonly string[]): T[] {
  const out: T[] = [];
  for (const l of lines) {
    if (!l.startsWith("{")) continue;
    try {
      out.push(JSON.parse(l) as T);
    } catch {
      // A line cut by a kill -9 mid-write: nothing to learn from it.
    }
  }
  return out;
}

/**
 * A FileTail of JSON lines. With `keep` it also keeps every line read, for searches after the fact
 * (node logs: a few lines a minute); without, callers take what each poll returns (the event log,
 * which grows by one line per request).
 */
export class JsonLog<T> {
  private readonly tail: FileTail;
  readonly lines: T[] = [];

  constructor(
    path: string,
    private readonly keep = true,
  ) {
    this.tail = new FileTail(path);
  }

  /** Reads what was appended and returns only the new lines. */
  poll(): T[] {
    const fresh = parseJsonLines<T>(this.tail.read());
    if (this.keep) this.lines.push(...fresh);
    return fresh;
  }
}
