import { decodeClusterDocument, encodeClusterDocument } from "../../core/control-records.js";
import type {
  ClusterDocumentInput,
  ClusterDocumentStore,
  ClusterDocumentWriteResult,
  VersionedClusterDocument,
} from "../../core/ports/cluster-document.js";
import { MASTER_LEASE, type Lease } from "../../core/ports/leases.js";
import type { RedisConnection } from "./connection.js";
import { parseEpoch } from "./leases.js";
import { CLUSTER_READ, CLUSTER_WRITE, type NamespaceKeys } from "./scripts.js";

/**
 * The cluster document as one hash `{prefix}cluster` (`v`, `doc`, `at`).
 *
 * `write()` is one Lua script that checks the master lease (holder, epoch, liveness: an expired key
 * does not exist) and the version, and writes with the server's `TIME` as `at`; pause expiries and
 * new pauses' start are stored relative to `at`, so the script does not parse JSON. The version is
 * an epoch-like counter (see scripts.ts): after this Redis lost its data the document reads as
 * null, and the primary master's rewrite gets a version re-based on the server's clock, above every
 * version seen before the loss.
 */
export class RedisClusterDocument implements ClusterDocumentStore {
  constructor(
    private readonly conn: RedisConnection,
    private readonly keys: NamespaceKeys,
  ) {}

  async read(): Promise<VersionedClusterDocument | null> {
    const [nowUs, v, doc, atUs] = (await this.conn.eval(CLUSTER_READ, [this.keys.cluster], [])) as [string, string, string, string];
    const version = parseEpoch(v);
    if (version === 0) return null;
    const writtenMs = Number(atUs) / 1000;
    return { version, document: decodeClusterDocument(doc, version, Number(nowUs) / 1000 - writtenMs, writtenMs) };
  }

  async version(): Promise<number> {
    return parseEpoch((await this.conn.run((c) => c.hget(this.keys.cluster, "v"))) ?? "0");
  }

  async write(expectedVersion: number, doc: ClusterDocumentInput, master: Lease): Promise<ClusterDocumentWriteResult> {
    if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0) {
      throw new RangeError(`redis: expectedVersion must be a whole number ≥ 0, got ${expectedVersion}`);
    }
    const json = JSON.stringify(encodeClusterDocument(doc, 0, null));
    const reply = (await this.conn.eval(
      CLUSTER_WRITE,
      [this.keys.lease(MASTER_LEASE), this.keys.cluster, this.keys.clusterVersion],
      [master.holder, String(master.epoch), String(expectedVersion), json],
    )) as [string, string?];
    const [outcome, version] = reply;
    if (outcome === "fenced") return { ok: false, reason: "fenced" };
    if (outcome === "conflict") return { ok: false, reason: "conflict", current: await this.read() };
    if (outcome === "ok" && version) return { ok: true, version: parseEpoch(version) };
    throw new Error(`redis: unexpected reply from the cluster write script: ${JSON.stringify(reply)}`);
  }
}
