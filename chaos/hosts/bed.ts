import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The multi-host test bed's network: one Linux network namespace per host, each with a veth pair
 * whose outer end is on one bridge in the machine's own namespace. Layout (10.77.0.0/24):
 *
 * - 10.77.0.1 — the bridge itself, in the machine's namespace: the "internet". The upstream oracle
 *   and the load-generating client live here, and a host cut from the cluster still reaches it.
 * - 10.77.0.2 — the store host: also an address of the bridge, where the harness's store proxy
 *   listens and relays to the machine's own store server (docs/reliability.md, "The multi-host bed", says why).
 * - 10.77.0.11… — one address per host namespace (`mch-<host>`), the interface inside is `eth0`.
 *
 * Every name the bed creates starts with `mch` (namespaces `mch-*`, bridge `mchbr0`, veths
 * `mchv<n>`, /etc/netns/mch-*), so `destroy()` can remove a crashed run's leftovers without
 * touching anything else. Partitions are iptables rules inside the host namespaces only (a chain
 * `mch` jumped to from INPUT and OUTPUT for `eth0`): the machine's own firewall is never touched.
 */

/** The bridge's address: the upstream (internet) side of every host. */
export const INTERNET = "10.77.0.1";
/** The store host's address. */
export const STORE_HOST = "10.77.0.2";
const BRIDGE = "mchbr0";
const PREFIX = "mch-";
const SUBNET = "10.77.0.0/24";

/** One host of the bed. */
export interface Host {
  /** Host name (EXTERNAL_HOSTNAME; every host's /etc/hosts knows every other one's). */
  readonly name: string;
  /** Network namespace name. */
  readonly netns: string;
  readonly ip: string;
}

/** Runs `cmd`; throws with its output when it fails (unless `allowFail`). */
export function sh(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.error?.message ?? ""}${r.stderr}`);
  return r.stdout ?? "";
}

/** Installs Debian's iptables when it is missing; returns why the bed cannot run, or null. */
export function ensureTools(): string | null {
  if (process.getuid?.() !== 0) return "the multi-host bed needs root (network namespaces and iptables)";
  if (spawnSync("ip", ["netns", "list"]).status !== 0) return "`ip netns` does not work here (iproute2 missing?)";
  if (spawnSync("iptables", ["-V"]).status !== 0) {
    spawnSync("sh", ["-c", "apt-get install -y -qq iptables || (apt-get update -qq && apt-get install -y -qq iptables)"], {
      stdio: "ignore",
    });
    if (spawnSync("iptables", ["-V"]).status !== 0) return "iptables is not installed and `apt-get install iptables` failed";
  }
  return null;
}

/** Removes everything a bed (this one or a crashed earlier run's) created. Synchronous: safe in an exit handler. */
export function destroy(): void {
  for (const line of sh("ip", ["netns", "list"], true).split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    if (ns.startsWith(PREFIX)) sh("ip", ["netns", "delete", ns], true); // takes the veth pair with it
  }
  if (spawnSync("ip", ["link", "show", BRIDGE], { stdio: "ignore" }).status === 0) sh("ip", ["link", "delete", BRIDGE], true);
  if (existsSync("/etc/netns"))
    for (const d of readdirSync("/etc/netns")) if (d.startsWith(PREFIX)) rmSync(join("/etc/netns", d), { recursive: true, force: true });
}

/**
 * Creates the bridge and one namespace per host name (after removing any leftovers). Host i gets
 * 10.77.0.(11 + i). Each namespace gets an /etc/hosts naming every host, so EXTERNAL_HOSTNAME can be
 * a host name that the other hosts resolve, as on real machines.
 */
export function create(names: readonly string[]): Host[] {
  destroy();
  sh("ip", ["link", "add", BRIDGE, "type", "bridge"]);
  sh("ip", ["addr", "add", `${INTERNET}/24`, "dev", BRIDGE]);
  sh("ip", ["addr", "add", `${STORE_HOST}/24`, "dev", BRIDGE]);
  sh("ip", ["link", "set", BRIDGE, "up"]);
  const hosts = names.map((name, i): Host => ({ name, netns: `${PREFIX}${name}`, ip: `10.77.0.${11 + i}` }));
  const etcHosts = ["127.0.0.1 localhost", `${INTERNET} internet`, `${STORE_HOST} store`, ...hosts.map((h) => `${h.ip} ${h.name}`)].join(
    "\n",
  );
  hosts.forEach((h, i) => {
    const veth = `mchv${11 + i}`;
    sh("ip", ["netns", "add", h.netns]);
    sh("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns]);
    sh("ip", ["link", "set", veth, "master", BRIDGE, "up"]);
    sh("ip", ["-n", h.netns, "addr", "add", `${h.ip}/24`, "dev", "eth0"]);
    sh("ip", ["-n", h.netns, "link", "set", "eth0", "up"]);
    sh("ip", ["-n", h.netns, "link", "set", "lo", "up"]);
    const ipt = (...a: string[]) => sh("ip", ["netns", "exec", h.netns, "iptables", ...a]);
    ipt("-N", "mch");
    ipt("-A", "INPUT", "-i", "eth0", "-j", "mch");
    ipt("-A", "OUTPUT", "-o", "eth0", "-j", "mch");
    mkdirSync(`/etc/netns/${h.netns}`, { recursive: true });
    writeFileSync(`/etc/netns/${h.netns}/hosts`, `${etcHosts}\n`);
  });
  return hosts;
}

/**
 * Runs `cmd` in `host`'s namespace without blocking this process: the harness's store proxy and the
 * upstream oracle live in this process, and a synchronous `spawnSync` under load stalled every store
 * connection for long enough to cost a coreapp its lease (a false failover the first trial showed).
 */
function inHost(host: Host, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", host.netns, ...args], { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${args.join(" ")} in ${host.netns} failed (${code}): ${err}`)),
    );
    if (input !== undefined) child.stdin!.on("error", () => {}).end(input); // an error shows in the exit code
  });
}

/** Adds rules (each a list of match arguments, target last) to `host`'s `mch` chain, all at once (iptables-restore). */
function rules(host: Host, list: string[][]): Promise<string> {
  const input = ["*filter", ...list.map((r) => `-A mch ${r.join(" ")}`), "COMMIT", ""].join("\n");
  return inHost(host, ["iptables-restore", "--noflush"], input);
}

let droppedSoFar = 0;

/** Packets the partition and loss rules dropped since the bed was created (counted at each `heal`). */
export function droppedPackets(): number {
  return droppedSoFar;
}

/** Removes every partition and loss rule of `host` (counting what they dropped first). */
export async function heal(host: Host): Promise<void> {
  const listed = await inHost(host, ["sh", "-c", "iptables -L mch -v -x -n && iptables -F mch"]);
  droppedSoFar += listed
    .split("\n")
    .filter((l) => /\bDROP\b/.test(l))
    .reduce((sum, l) => sum + (Number(l.trim().split(/\s+/)[0]) || 0), 0);
}

/**
 * Cuts `host` off the bed's network: every packet to or from another host or the store host is
 * dropped. With `keepInternet` (the default) the internet side (the upstream and the client) stays
 * reachable, as for a data-centre partition that leaves the host's uplink alone.
 */
export async function cutHost(host: Host, keepInternet = true): Promise<void> {
  await rules(host, [
    ...(keepInternet
      ? [
          ["-s", INTERNET, "-j", "RETURN"],
          ["-d", INTERNET, "-j", "RETURN"],
        ]
      : []),
    ["-s", SUBNET, "-j", "DROP"],
    ["-d", SUBNET, "-j", "DROP"],
  ]);
}

/** Drops every packet between `host` and each of `peers` (both directions), nothing else. */
export async function cutBetween(host: Host, peers: readonly Host[]): Promise<void> {
  await rules(
    host,
    peers.flatMap((p) => [
      ["-s", p.ip, "-j", "DROP"],
      ["-d", p.ip, "-j", "DROP"],
    ]),
  );
}

/** Drops every packet between `host` and the store host. */
export async function cutStore(host: Host): Promise<void> {
  await rules(host, [
    ["-s", STORE_HOST, "-j", "DROP"],
    ["-d", STORE_HOST, "-j", "DROP"],
  ]);
}

/**
 * Real packet loss on `host`'s store link: each packet to or from the store host is dropped with
 * probability `p`, by the kernel (iptables' statistic match), so TCP retransmits as it would on a
 * lossy link — no netem needed.
 */
export async function lossToStore(host: Host, p: number): Promise<void> {
  const prob = ["-m", "statistic", "--mode", "random", "--probability", String(p)];
  await rules(host, [
    ["-s", STORE_HOST, ...prob, "-j", "DROP"],
    ["-d", STORE_HOST, ...prob, "-j", "DROP"],
  ]);
}
