import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "./clock.js";
import { freePort } from "./cluster.js";

const CANDIDATES = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"];

/**
 * The nginx binary, installing Debian's `nginx-light` when it is missing and `install` is true
 * (the full profile; the smoke profile skips the anchor rather than spend a minute in apt).
 * Returns null with the reason when nginx cannot be had.
 */
export function findNginx(install: boolean, say: (m: string) => void): { path: string | null; why: string } {
  const found = () => CANDIDATES.find((p) => existsSync(p)) ?? null;
  if (found()) return { path: found(), why: "" };
  if (!install) return { path: null, why: "nginx is not installed (the smoke profile does not install it)" };
  say("installing nginx-light for the reverse-proxy anchor (apt-get)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args: string[]) => spawnSync("apt-get", args, { env, stdio: "ignore", timeout: 300_000 }).status === 0;
  if (!apt(["install", "-y", "-q", "nginx-light"])) {
    apt(["update", "-q"]);
    apt(["install", "-y", "-q", "nginx-light"]);
  }
  return found() ? { path: found(), why: "" } : { path: null, why: "apt-get install nginx-light failed" };
}

/** A running nginx, as a non-daemon child of this process. */
export interface Nginx {
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts nginx in front of 127.0.0.1:`upstreamPort` with a generated config: one worker (the Node
 * proxies it is compared with are one event loop each), upstream keep-alive, no access log.
 */
export async function startNginx(binary: string, dir: string, upstreamPort: number): Promise<Nginx> {
  const root = join(dir, "nginx");
  mkdirSync(join(root, "tmp"), { recursive: true });
  const port = await freePort();
  const conf = join(root, "nginx.conf");
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes 1;
error_log ${root}/error.log warn;
pid ${root}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${root}/tmp/body;
  proxy_temp_path ${root}/tmp/proxy;
  fastcgi_temp_path ${root}/tmp/fastcgi;
  uwsgi_temp_path ${root}/tmp/uwsgi;
  scgi_temp_path ${root}/tmp/scgi;
  upstream echo { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const child = spawn(binary, ["-p", root, "-c", conf, "-e", join(root, "error.log")], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "x", signal: AbortSignal.timeout(1000) });
      await r.text();
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}; see ${root}/error.log`);
    await sleep(50);
  }
  return {
    port,
    child,
    stop: async () => {
      child.kill("SIGQUIT"); // graceful: workers finish, then the master exits
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}
