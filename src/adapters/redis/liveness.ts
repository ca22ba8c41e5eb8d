import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { LivenessStore, NodeRecord, NodeRole, NodeStatus, RemovalOutcome } from "../../core/ports/liveness.js";
import type { RedisConnection } from "./connection.js";
import { BEAT, LIST, REMOVE_FENCED, type NamespaceKeys } from "./scripts.js";

/** What the value of a node's hash field holds after the "seen|" stamp. */
interface StoredRecord {
  name: string;
  role: NodeRole;
  address: string;
  meta: Record<string, unknown>;
  /** The beat's `seq`, when it had one: the BEAT script writes only over a lower one. */
  seq?: number;
}

/**
 * Node records in one hash `{prefix}nodes`: field = node id, value = "seen µs|record JSON", where
 * "seen" is the server's `TIME` read inside the `beat()` script. `list()` reads the hash and the
 * server's now in one script, so ages compare two readings of one clock (the store's), never a
 * node's wall clock. Records do not expire by themselves: a dead node stays listed, with its age
 * growing, until `remove()` (the failure detector needs to see it old, not gone).
 */
export class RedisLiveness implements LivenessStore {
  constructor(
    private readonly conn: RedisConnection,
    private readonly keys: NamespaceKeys,
  ) {}

  async beat(r: NodeRecord): Promise<void> {
    const stored: StoredRecord = { name: r.name, role: r.role, address: r.address, meta: { ...r.meta }, seq: r.seq };
    await this.conn.eval(BEAT, [this.keys.nodes], [r.id, JSON.stringify(stored), r.seq === undefined ? "" : String(r.seq)]);
  }

  async list(): Promise<NodeStatus[]> {
    const [nowUs, flat] = (await this.conn.eval(LIST, [this.keys.nodes], [])) as [string, string[]];
    const now = Number(nowUs);
    const nodes: NodeStatus[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const id = flat[i]!;
      const value = flat[i + 1]!;
      const bar = value.indexOf("|");
      const seen = Number(value.slice(0, bar));
      const record = JSON.parse(value.slice(bar + 1)) as StoredRecord;
      nodes.push({
        id,
        name: record.name,
        role: record.role,
        address: record.address,
        meta: record.meta,
        ...(record.seq === undefined ? {} : { seq: record.seq }),
        ageMs: Math.max(0, (now - seen) / 1000),
      });
    }
    // Code-unit order, as the SQL stores' ORDER BY id gives for the ASCII ids nodes use.
    return nodes.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async remove(id: string): Promise<void> {
    await this.conn.run((c) => c.hdel(this.keys.nodes, id));
  }

  async removeFenced(id: string, master: Lease, seq?: number): Promise<RemovalOutcome> {
    const keys = [this.keys.lease(MASTER_LEASE), this.keys.nodes];
    return (await this.conn.eval(REMOVE_FENCED, keys, [
      master.holder,
      String(master.epoch),
      id,
      seq === undefined ? "" : String(seq),
    ])) as RemovalOutcome;
  }
}
