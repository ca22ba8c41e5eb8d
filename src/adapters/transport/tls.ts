/**
 * Mutual TLS for the transport: this node's certificate and key, the CA its peers must chain
 * to, and their reload when the files change.
 *
 * Both directions verify: a listener asks every client for a certificate and refuses the handshake
 * unless it chains to the CA; a caller checks the listener's certificate against the CA and the
 * name it dials (or `serverName`). TLS sits under the transport's own handshake and frame MACs, which
 * stay as they are: TLS keeps bodies confidential on the wire and keeps strangers from even opening
 * a connection; the handshake still binds each connection to its sender, receiver and cluster.
 *
 * Reload: the files are read again every `reloadIntervalMs`. When their bytes changed and the new
 * set is valid, listeners switch to it (`setSecureContext`: new handshakes use it) and callers open
 * new connections for new calls (calls in flight finish on the old ones, which then close idle). A set that is not
 * valid — typically a rotation caught half-written — is logged once and skipped; the old
 * material stays in use and the next tick tries again.
 */
import { readFile } from "node:fs/promises";
import { createSecureContext, type SecureContext, type SecureContextOptions } from "node:tls";
import { ConfigError } from "../../core/errors.js";
import type { Logger } from "../../core/ports/logger.js";
import { loadTlsFiles, readTlsFiles, sameTls, type TlsMaterial } from "../tls-files.js";

/** Where the transport's TLS files are, and how often to look for new ones. */
export interface TransportTlsOptions {
  /** PEM file: this node's certificate (chain), shown to peers both when listening and when calling. */
  readonly cert: string;
  /** PEM file: the certificate's unencrypted private key. */
  readonly key: string;
  /**
   * PEM file: the CA certificate(s) every peer's certificate must chain to. During a CA rotation,
   * list the old and the new CA in this file on every node first, then rotate the certificates.
   */
  readonly ca: string;
  /**
   * How often the three files are read again to pick up a rotation (default 30 s). Hazard: a
   * certificate replaced less than this before its predecessor expires leaves a gap.
   */
  readonly reloadIntervalMs?: number;
  /**
   * The name a listener's certificate must carry (default: the host part of the address dialled,
   * DNS name or IP). Set it when every node shares one certificate issued for a service name.
   */
  readonly serverName?: string;
}

/** The config key everything here is reported under. */
const KEY = "transport.tls";
const DEFAULT_RELOAD_MS = 30_000;

/** The current TLS material of one transport, kept fresh from its files. */
export class TransportTls {
  private current: Required<TlsMaterial>;
  /**
   * The callers' context, built once per load: given as files to every connect, Node would parse
   * the CA and the key again for each new connection.
   */
  private context$: SecureContext;
  private readonly listeners = new Set<() => void>();
  private readonly timer: NodeJS.Timeout;
  /** The bytes of the last set refused, so a broken rotation is logged once, not every tick. */
  private refused: TlsMaterial | null = null;
  private reloading = false;

  constructor(
    private readonly o: TransportTlsOptions,
    private readonly logger: Logger,
  ) {
    for (const name of ["cert", "key", "ca"] as const) {
      if (typeof o[name] !== "string" || o[name].length === 0)
        throw new ConfigError(`${KEY}.${name}`, "is required: the path of a PEM file");
    }
    const interval = o.reloadIntervalMs ?? DEFAULT_RELOAD_MS;
    if (!Number.isSafeInteger(interval) || interval <= 0) throw new ConfigError(`${KEY}.reload_interval`, "must be a positive duration");
    this.current = loadTlsFiles(o, KEY) as Required<TlsMaterial>;
    this.context$ = createSecureContext(this.context);
    this.timer = setInterval(() => void this.reload(), interval);
    this.timer.unref();
  }

  /** What a listener's secure context is made of. */
  get context(): SecureContextOptions {
    return { ...this.current, minVersion: "TLSv1.2" };
  }

  /** The context a caller's connections are made with (this node's certificate, the CA to check the peer against). */
  get clientContext(): SecureContext {
    return this.context$;
  }

  /** The name a listener's certificate must carry, when set (else the host dialled). */
  get serverName(): string | undefined {
    return this.o.serverName;
  }

  /** Runs `listener` after each successful reload; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops looking for new files. */
  close(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  /** Reads the files; switches to them when they changed and are valid. Exposed for tests. */
  async reload(): Promise<boolean> {
    if (this.reloading) return false;
    this.reloading = true;
    try {
      const raw = await readRaw(this.o);
      if (sameTls(raw, this.current) || (this.refused !== null && sameTls(raw, this.refused))) return false;
      let next: TlsMaterial;
      try {
        next = await readTlsFiles(this.o, KEY);
      } catch (error) {
        // Remembered by its bytes: the same broken set is reported once, a new one again.
        this.refused = raw;
        this.logger.warn(
          { error: error instanceof Error ? error.message : String(error) },
          "transport: new TLS files not used; keeping the current ones",
        );
        return false;
      }
      this.current = next as Required<TlsMaterial>;
      this.context$ = createSecureContext(this.context);
      this.refused = null;
      for (const listener of this.listeners) listener();
      this.logger.info({ cert: this.o.cert }, "transport: TLS certificate, key or CA reloaded; new connections use them");
      return true;
    } finally {
      this.reloading = false;
    }
  }
}

/** The files' bytes as they are now (an unreadable file as undefined), to tell whether anything changed. */
async function readRaw(o: TransportTlsOptions): Promise<TlsMaterial> {
  const [ca, cert, key] = await Promise.all([o.ca, o.cert, o.key].map((file) => readFile(file).catch(() => undefined)));
  return { ca, cert, key };
}
