import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { ConfigError } from "../core/errors.js";

/**
 * TLS material from PEM files, read and checked in one place for the transport and every store.
 *
 * Errors name the config key and the file, and say what is wrong with it in our own words: they
 * never quote the file's content or OpenSSL's text about it, so a private key cannot end up in a
 * log through an error message.
 */

/** Paths of PEM files, as the config gives them. `cert` and `key` go together. */
export interface TlsFiles {
  /** The CA certificate(s) a peer's certificate must chain to; unset means the system's CAs. */
  readonly ca?: string;
  /** This side's certificate (chain), for a peer that asks for one (mutual TLS). */
  readonly cert?: string;
  /** The private key of `cert`, unencrypted. */
  readonly key?: string;
}

/** The contents of {@link TlsFiles}, checked: what Node's TLS options take. */
export interface TlsMaterial {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** Reads and checks the files now (at start); throws ConfigError naming `base`.ca/.cert/.key and the file. */
export function loadTlsFiles(files: TlsFiles, base: string, now = new Date()): TlsMaterial {
  return checkTls(files, base, now, {
    ca: files.ca === undefined ? undefined : readSync(files.ca, `${base}.ca`),
    cert: files.cert === undefined ? undefined : readSync(files.cert, `${base}.cert`),
    key: files.key === undefined ? undefined : readSync(files.key, `${base}.key`),
  });
}

/** As {@link loadTlsFiles}, reading without blocking the event loop (for reloads). */
export async function readTlsFiles(files: TlsFiles, base: string, now = new Date()): Promise<TlsMaterial> {
  const [ca, cert, key] = await Promise.all([
    files.ca === undefined ? undefined : readAsync(files.ca, `${base}.ca`),
    files.cert === undefined ? undefined : readAsync(files.cert, `${base}.cert`),
    files.key === undefined ? undefined : readAsync(files.key, `${base}.key`),
  ]);
  return checkTls(files, base, now, { ca, cert, key });
}

/** True when two loads read the same bytes from every file. */
export function sameTls(a: TlsMaterial, b: TlsMaterial): boolean {
  const same = (x?: Buffer, y?: Buffer) => (x === undefined ? y === undefined : y !== undefined && x.equals(y));
  return same(a.ca, b.ca) && same(a.cert, b.cert) && same(a.key, b.key);
}

function readSync(file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw unreadable(file, key, error);
  }
}

async function readAsync(file: string, key: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw unreadable(file, key, error);
  }
}

function unreadable(file: string, key: string, error: unknown): ConfigError {
  return new ConfigError(key, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
}

/** Parses every file and checks that the key belongs to the certificate and that it is in date. */
function checkTls(files: TlsFiles, base: string, now: Date, m: TlsMaterial): TlsMaterial {
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new ConfigError(files.cert === undefined ? `${base}.cert` : `${base}.key`, "cert and key must be given together");
  }
  if (m.ca !== undefined) certificate(m.ca, files.ca!, `${base}.ca`, now);
  if (m.cert !== undefined && m.key !== undefined) {
    const cert = certificate(m.cert, files.cert!, `${base}.cert`, now);
    const key = privateKey(m.key, files.key!, `${base}.key`);
    if (!cert.checkPrivateKey(key))
      throw new ConfigError(`${base}.key`, `${files.key} is not the private key of the certificate in ${files.cert}`);
  }
  try {
    // What the TLS stack will do with them: catches what the checks above do not (a CA file with a
    // bad second certificate, an unsupported key type).
    createSecureContext({ ca: m.ca, cert: m.cert, key: m.key });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const paths = [files.ca, files.cert, files.key].filter((f) => f !== undefined).join(", ");
    throw new ConfigError(base, `the TLS stack refused ${paths} (${typeof code === "string" ? code : "invalid"})`);
  }
  return m;
}

/** The first certificate of a PEM file, which must be valid at `now`. */
function certificate(pem: Buffer, file: string, key: string, now: Date): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    throw new ConfigError(key, `${file} holds no PEM certificate`);
  }
  if (new Date(cert.validTo) < now)
    throw new ConfigError(key, `the certificate in ${file} expired on ${new Date(cert.validTo).toISOString()}`);
  if (new Date(cert.validFrom) > now)
    throw new ConfigError(key, `the certificate in ${file} is not valid before ${new Date(cert.validFrom).toISOString()}`);
  return cert;
}

function privateKey(pem: Buffer, file: string, key: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    // Encrypted keys land here too: nothing in the config could hold their passphrase.
    throw new ConfigError(key, `${file} holds no unencrypted PEM private key`);
  }
}
