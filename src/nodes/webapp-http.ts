import type { WebappRequestError } from "../core/errors.js";
import { isForwardToken, MAX_FORWARD_HEADERS } from "../core/ports/transport.js";
import type { IncomingMessage, ServerResponse } from "node:http";

/** Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), plus ones we set. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

/** The request's end-to-end headers as a plain record (repeated headers joined with ", "). */
export function forwardableHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/** A header value as node:http accepts one: tab, visible ASCII, space, obs-text; no CR, LF or NUL. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** `Webapp.request()`'s headers are malformed (400); the message names the header, never its value. */
export class BadHeadersError extends Error {}

/** `Webapp.request()`'s headers are larger than `webapp.max_header_bytes` (431, as the listener answers). */
export class HeadersTooLargeError extends Error {}

/**
 * The headers given to `Webapp.request()` as a forwarded request carries them, checked as the
 * listener's HTTP parser checks a request's: names lower-cased (two that differ only in case are
 * joined with ", ", as node:http joins repeated headers), hop-by-hop ones dropped, each name a token
 * and each value free of control characters, at most 256 of them and `maxBytes` in all (each
 * counted as its HTTP line: name, ": ", value, CRLF). Throws {@link BadHeadersError} or
 * {@link HeadersTooLargeError}.
 */
export function givenHeaders(given: unknown, maxBytes: number): Record<string, string> {
  const proto: unknown = typeof given === "object" && given !== null ? Object.getPrototypeOf(given) : undefined;
  if (proto !== Object.prototype && proto !== null) throw new BadHeadersError("headers must be a plain object of strings");
  const record = given as Record<string, unknown>;
  const names = Object.keys(record);
  if (names.length > MAX_FORWARD_HEADERS) throw new BadHeadersError(`${names.length} headers, more than ${MAX_FORWARD_HEADERS}`);
  const out: Record<string, string> = {};
  let bytes = 0;
  for (const name of names) {
    if (!isForwardToken(name, 256) || name.toLowerCase() === "__proto__") {
      throw new BadHeadersError(`${JSON.stringify(name.slice(0, 64))} is not a header name (an HTTP token of at most 256 characters)`);
    }
    const value = record[name];
    if (typeof value !== "string" || !HEADER_VALUE.test(value)) {
      throw new BadHeadersError(`the value of ${name} is not a string of visible characters (no CR, LF or NUL)`);
    }
    bytes += name.length + value.length + 4;
    if (bytes > maxBytes) throw new HeadersTooLargeError(`the headers exceed ${maxBytes} bytes`);
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) continue;
    const earlier = out[lower];
    out[lower] = earlier === undefined ? value : `${earlier}, ${value}`;
  }
  return out;
}

/** Copies a response's headers except hop-by-hop ones. */
export function responseHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name.toLowerCase())) out[name] = value;
  return out;
}

/** The body passed its size limit (413). */
export class BodyTooLargeError extends Error {}

/** The client did not send the whole body in time (408). */
export class BodyTimeoutError extends Error {}

/**
 * A body parser (express.json(), urlencoded, ...) read the body and kept only its parsed value:
 * the original bytes cannot be forwarded faithfully (re-serializing changes whitespace, number
 * precision and any signature over the body), so the request fails at once instead of hanging.
 */
export class BodyAlreadyParsedError extends Error {}

/** A request as Express, Fastify or other frameworks may leave it after their body parsers ran. */
interface ParsedRequest extends IncomingMessage {
  readonly rawBody?: unknown;
  readonly body?: unknown;
}

/**
 * The body a framework's parser already read, or undefined when the stream is still unread. Raw
 * bytes win (`req.rawBody`, kept by `keepRawBody` from multiconnect/express or other raw-body
 * hooks), then a `Buffer` or UTF-8 string body (express.raw(), express.text()). A stream that
 * someone else consumed with nothing usable left (a parsed value) throws
 * {@link BodyAlreadyParsedError}; one that declared no body counts as empty.
 */
export function preReadBody(req: IncomingMessage): Buffer | undefined {
  const r = req as ParsedRequest;
  if (r.rawBody instanceof Uint8Array) return Buffer.from(r.rawBody.buffer, r.rawBody.byteOffset, r.rawBody.byteLength);
  if (r.body instanceof Uint8Array) return Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength);
  if (typeof r.body === "string") {
    // express.text() decodes with the request's charset; only UTF-8 encodes back to the same bytes.
    const charset = /;\s*charset=("?)([^";]+)\1/i.exec(req.headers["content-type"] ?? "")?.[2]?.toLowerCase();
    if (charset === undefined || charset === "utf-8" || charset === "utf8" || charset === "us-ascii") return Buffer.from(r.body, "utf8");
    throw new BodyAlreadyParsedError(`a body parser decoded the ${charset} body to text`);
  }
  // A parsed value alone proves nothing (some middleware sets `req.body = {}` on every request);
  // a consumed stream does: someone else read the bytes.
  const consumed = req.readableEnded || (req.complete && !req.readable);
  if (!consumed) return undefined;
  const declared = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? "0") > 0;
  if (!declared) return Buffer.alloc(0);
  throw new BodyAlreadyParsedError("a body parser (such as express.json()) already read and parsed the body");
}

/**
 * The body of `req` when someone already read it, or undefined when the stream is still unread:
 * `given` (the bytes a framework adapter passed to `Webapp.serve`, a string as UTF-8), else what a
 * body parser left ({@link preReadBody}, which throws {@link BodyAlreadyParsedError}).
 */
export function alreadyRead(req: IncomingMessage, given?: Uint8Array | string): Buffer | undefined {
  if (given === undefined) return preReadBody(req);
  return typeof given === "string" ? Buffer.from(given) : Buffer.from(given.buffer, given.byteOffset, given.byteLength);
}

/**
 * The whole body of `req`, at most `limit` bytes: the bytes already read ({@link alreadyRead}),
 * else the stream ({@link readBody}). Reading the stream alone would wait for an `end` that already
 * fired when a framework read the body first (Fastify, express.json()), and answer 408 only after
 * `timeoutMs`. Throws {@link BodyTooLargeError}, {@link BodyTimeoutError}, {@link BodyAlreadyParsedError}.
 */
export async function requestBody(req: IncomingMessage, limit: number, timeoutMs: number, given?: Uint8Array | string): Promise<Buffer> {
  return bodyFrom(req, alreadyRead(req, given), limit, timeoutMs);
}

/** As {@link requestBody}, for a caller that already has what {@link alreadyRead} returned (`read`). */
export async function bodyFrom(req: IncomingMessage, read: Buffer | undefined, limit: number, timeoutMs: number): Promise<Buffer> {
  if (read === undefined) return readBody(req, limit, timeoutMs);
  if (read.byteLength > limit) throw new BodyTooLargeError();
  return read;
}

/**
 * Answers a body that could not be read and returns true: 413 past `limit`, 408 past `timeoutMs`,
 * 500 naming the fix when a body parser kept no bytes. False, with nothing sent, for any other error.
 */
export function sendBodyError(res: ServerResponse, error: unknown, limit: number, timeoutMs: number): boolean {
  if (error instanceof BodyTooLargeError) {
    // No `connection: close`: the answer lingers (below) so the client can read it.
    sendError(res, 413, 413, "Request too large", `the body exceeds ${limit} bytes`);
  } else if (error instanceof BodyTimeoutError) {
    sendError(res, 408, 408, "Request Timeout", `the body did not arrive within ${timeoutMs} ms`, { connection: "close" });
  } else if (error instanceof BodyAlreadyParsedError) {
    const fix =
      `${error.message}, so its original bytes are gone. Mount the webapp before the body parser, ` +
      "use multiconnect/express (or pass keepRawBody from it as the parser's verify option), or use express.raw()";
    sendError(res, 500, 500, "Body already parsed", fix);
  } else return false;
  return true;
}

/**
 * Reads a request body of at most `limit` bytes within `timeoutMs`. Refuses at once when
 * Content-Length says more, and stops keeping bytes as soon as a chunked body passes the limit (the
 * rest is discarded while the answer lingers, see {@link LINGER_MS}); a client that stalls gets
 * {@link BodyTimeoutError} instead of holding the request forever.
 */
export function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) return Promise.reject(new BodyTooLargeError());
  // A small body usually arrives with the headers: by now Node has parsed all of it into the
  // stream's buffer, and it can be taken at once, without a timer and listeners.
  if (req.complete && req.readableFlowing !== true && req.readableLength <= limit) {
    return Promise.resolve(req.readableLength === 0 ? Buffer.alloc(0) : (req.read() as Buffer));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (error: Error | null): void => {
      clearTimeout(timer);
      req.off("data", onData).off("end", onEnd).off("error", finish);
      if (error === null) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      else {
        req.resume();
        reject(error);
      }
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) finish(new BodyTooLargeError());
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(null);
    const timer = setTimeout(() => finish(new BodyTimeoutError()), timeoutMs);
    req.on("data", onData).on("end", onEnd).on("error", finish);
  });
}

/** The longest request target the webapp forwards (the transport carries at most 8 KiB of path and query). */
const MAX_TARGET = 8 * 1024;
/** An absolute-form request target (RFC 9112 §3.2.2): `http://host/path?query`. */
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/** What a forwarded path may contain: visible ASCII, as the transport and most routers expect. */
const VISIBLE_ASCII = /^[\x21-\x7e]*$/;

/**
 * The request target as the webapp routes and forwards it: a path and query (origin form), or
 * null when it cannot be one. An absolute-form target (`GET http://host/v1/settings`, which
 * servers must accept) becomes its path and query, so it meets the same reserved-path checks as
 * `/v1/settings` and the application never sees a scheme and host in its path. The asterisk and
 * authority forms (`OPTIONS *`, `CONNECT host:443`), non-ASCII bytes and targets longer than
 * 8 KiB get null: the caller answers 400 rather than failing later in the transport with a
 * misleading 503.
 */
export function originForm(target: string): string | null {
  let t = target;
  if (ABSOLUTE_FORM.test(t)) {
    try {
      const url = new URL(t);
      t = `${url.pathname}${url.search}`;
    } catch {
      return null;
    }
  }
  return t.startsWith("/") && t.length <= MAX_TARGET && VISIBLE_ASCII.test(t) ? t : null;
}

/**
 * How long a connection whose answer went out before its request's body was read keeps reading
 * (and discarding) the rest of that body; then it is closed. See {@link lingerIfUnread}.
 */
export const LINGER_MS = 3000;

/**
 * After an answer given before the request's body arrived (401, 413, 429…): discard the rest of
 * the body for at most {@link LINGER_MS}, then close the connection if the body still has not
 * ended. Closing at once would be wrong both ways: a socket closed with request bytes still
 * arriving makes the kernel send a reset, and a client's TCP stack discards the answer it had not
 * read yet on a reset (the client sees "connection reset" instead of the 413); and keeping the
 * connection until the body ends would let a client trickle a body for as long as
 * `webapp.request_timeout`, and make Node send a second answer (408) when that expires. This is
 * the lingering close of nginx and Apache, with a fixed, short bound.
 */
function lingerIfUnread(res: ServerResponse): void {
  const req = res.req as IncomingMessage | undefined;
  if (req === undefined || req.complete || req.destroyed) return;
  req.resume();
  const timer = setTimeout(() => {
    if (!req.complete) req.socket.destroy();
  }, LINGER_MS);
  timer.unref();
  const done = () => clearTimeout(timer);
  req.once("end", done).once("close", done);
}

/** Writes a JSON error body in the model product's shape: `{ errors: [{ code, title, details }] }`. */
export function sendError(
  res: ServerResponse,
  status: number,
  code: number,
  title: string,
  details: string,
  extra: Record<string, string> = {},
): void {
  const body = JSON.stringify({ errors: [{ code, title, details }] });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...extra });
  res.end(body);
  lingerIfUnread(res);
}

/** Answers a refused request as the webapp's listener does: the error body, `retry-after` when nothing ran and a retry may succeed. */
export function sendRefusal(res: ServerResponse, e: WebappRequestError): void {
  sendError(res, e.status, e.apiCode, e.title, e.details, e.retryable ? { "retry-after": "1" } : {});
}

/** Writes a JSON body. */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
  lingerIfUnread(res);
}
