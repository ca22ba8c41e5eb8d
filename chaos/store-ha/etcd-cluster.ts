import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePort, type Endpoint, type PrivateServer } from "../backends.js";
import { StoreProcess, until } from "./process.js";

/** One member's view from `POST /v3/maintenance/status` (etcd's JSON gateway). */
interface MemberStatus {
  readonly header: { readonly member_id: string };
  readonly leader: string;
}

/**
 * A three-member etcd cluster of the harness's own (free ports, data under the run's directory).
 * The nodes get all three client URLs in `store.hosts`; the faults kill the leader and freeze a
 * member, and the client must move on to the members that still answer.
 */
export class EtcdCluster implements PrivateServer {
  readonly members: StoreProcess[] = [];

  private constructor(private readonly dir: string) {}

  /** Starts three members and waits until they have elected a leader. */
  static async start(dir: string): Promise<EtcdCluster> {
    const c = new EtcdCluster(dir);
    const ports = [];
    for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), peer: await freePort() });
    const initial = ports.map((p, i) => `m${i + 1}=http://127.0.0.1:${p.peer}`).join(",");
    const token = `mc-chaos-${Math.random().toString(36).slice(2, 8)}`;
    for (const [i, p] of ports.entries()) {
      const name = `m${i + 1}`;
      const data = join(dir, `etcd-${name}`);
      mkdirSync(data, { recursive: true });
      const client = `http://127.0.0.1:${p.client}`;
      const peer = `http://127.0.0.1:${p.peer}`;
      const args = [
        ...["--name", name, "--data-dir", data, "--listen-client-urls", client, "--advertise-client-urls", client],
        ...["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", initial],
        ...["--initial-cluster-state", "new", "--initial-cluster-token", token, "--logger", "zap"],
      ];
      c.members.push(new StoreProcess(`etcd ${name}`, p.client, "etcd", args, join(dir, `etcd-${name}.log`)));
    }
    try {
      // The first member waits for a quorum before it serves: start all three before waiting.
      await Promise.all(c.members.map((m) => m.start()));
      await until("an etcd leader", () => c.leader(), 30_000);
    } catch (error) {
      await c.stop();
      throw error;
    }
    return c;
  }

  get endpoint(): Endpoint {
    return { host: "127.0.0.1", port: this.members[0]!.port };
  }

  get pid(): number | null {
    return null;
  }

  /** The config's `store:` section: every member's client URL. */
  storeSection(ns: string): Record<string, unknown> {
    return { backend: "etcd", hosts: this.members.map((m) => `http://127.0.0.1:${m.port}`), key_prefix: `mc/${ns}/` };
  }

  /** The member that is leader, as a running member reports it; null while there is none. */
  async leader(): Promise<StoreProcess | null> {
    const statuses = await Promise.all(this.members.map((m) => (m.running && m.pid !== null ? status(m.port) : Promise.resolve(null))));
    const ids = statuses.map((s) => s?.header.member_id ?? null);
    const leaderId = statuses.find((s) => s && s.leader !== "0")?.leader;
    const i = leaderId ? ids.indexOf(leaderId) : -1;
    return i >= 0 ? this.members[i]! : null;
  }

  async kill9(): Promise<void> {
    for (const m of this.members) await m.kill9();
  }

  async start(): Promise<void> {
    for (const m of this.members) if (!m.running) await m.start();
  }

  async stop(): Promise<void> {
    for (const m of this.members) await m.kill9();
    for (let i = 1; i <= 3; i++) rmSync(join(this.dir, `etcd-m${i}`), { recursive: true, force: true });
  }
}

async function status(port: number): Promise<MemberStatus | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v3/maintenance/status`, {
      method: "POST",
      body: "{}",
      signal: AbortSignal.timeout(500),
    });
    return r.ok ? ((await r.json()) as MemberStatus) : null;
  } catch {
    return null;
  }
}
