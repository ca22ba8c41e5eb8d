import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Certificates made for a test run with Debian's `openssl` CLI: a certificate authority per call
 * of `makeCa`, and leaf certificates it signs. Every leaf is valid for both server and client use
 * (one certificate per node, as a cluster would deploy them) and names localhost and 127.0.0.1.
 * Keys are unencrypted P-256; everything lives in a fresh temporary directory.
 */

/** The three files a TLS peer is configured with. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
  /** The CA that signed `cert`, which is also the CA a peer trusts. */
  readonly ca: string;
}

/** A certificate authority made by {@link makeCa}. */
export interface TestCa {
  readonly name: string;
  /** The CA's certificate (PEM file). */
  readonly cert: string;
  /** Signs a leaf certificate for `name` in a file pair of its own. */
  issue(name: string, altNames?: readonly string[]): CertFiles;
}

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;

/** Runs openssl, throwing with its output when it fails. */
function openssl(args: string[]): void {
  if (!hasOpenssl) throw new Error("setup: the `openssl` CLI is missing; install it (apt-get install -y openssl)");
  const r = spawnSync("openssl", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`setup: openssl ${args.slice(0, 2).join(" ")} failed: ${r.stderr}`);
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** Makes a CA called `name` in a new temporary directory (or `dir`). */
export function makeCa(name: string, dir = mkdtempSync(join(tmpdir(), "mc-certs-"))): TestCa {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  let serial = 0;
  return {
    name,
    cert,
    issue(leaf, altNames = ["DNS:localhost", "IP:127.0.0.1"]) {
      // Several issues of one name (rotation) get files of their own.
      const base = join(dir, `${name}-${leaf}-${++serial}`);
      const ext = `${base}.ext`;
      writeFileSync(
        ext,
        [
          "basicConstraints=CA:FALSE",
          "keyUsage=critical,digitalSignature,keyEncipherment",
          "extendedKeyUsage=serverAuth,clientAuth",
          `subjectAltName=${altNames.join(",")}`,
        ].join("\n"),
      );
      openssl(["req", ...EC_KEY, "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${leaf}`]);
      openssl([
        "x509",
        "-req",
        "-in",
        `${base}.csr`,
        "-CA",
        cert,
        "-CAkey",
        key,
        "-set_serial",
        String(Date.now() * 1000 + serial),
        "-out",
        `${base}.crt`,
        "-days",
        "2",
        "-extfile",
        ext,
      ]);
      return { cert: `${base}.crt`, key: `${base}.key`, ca: cert };
    },
  };
}
