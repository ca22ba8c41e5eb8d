/**
 * multiconnect/fastify — mounts a webapp into a Fastify 5 application as an encapsulated plugin.
 *
 * ```ts
 * await app.register(multiconnect, { prefix: "/api", webapp });
 * ```
 *
 * Inside the plugin's own scope every content type is read as raw bytes (so `text/plain`,
 * `application/octet-stream`, JSON and anything else are forwarded exactly as sent, never 415),
 * while the host's routes keep Fastify's usual parsers. The coreapp receives the original path,
 * prefix included. The webapp's own paths (`GET /v1/health`, `GET /metrics`, the admin API) answer
 * below the prefix; the admin API reads its JSON body from the bytes Fastify read.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { originForm } from "../nodes/webapp-http.js";
import type { Webapp } from "../nodes/webapp.js";

/** Options of the {@link multiconnect} Fastify plugin (besides Fastify's own `prefix`). */
export interface MulticonnectFastifyOptions {
  readonly webapp: Webapp;
}

/**
 * The Fastify plugin. Register it with a `prefix`; do not wrap it in fastify-plugin, or its
 * raw-bytes parser would replace the host's parsers.
 */
export const multiconnect: FastifyPluginAsync<MulticonnectFastifyOptions> = async (instance, { webapp }) => {
  instance.removeAllContentTypeParsers();
  instance.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: webapp.maxBodyBytes }, (_req, body, done) => done(null, body));
  // Fastify refuses a body over the limit (413) or a malformed request while reading it, before
  // the webapp runs: answer those in the webapp's error shape, as the webapp itself would.
  instance.setErrorHandler((error: { statusCode?: number; message: string }, _request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    const title = status === 413 ? "Request too large" : status === 500 ? "Internal Error" : "Bad request";
    const details =
      status === 413 ? `the body exceeds ${webapp.maxBodyBytes} bytes` : status === 500 ? "the request could not be read" : error.message;
    void reply.code(status).send({ errors: [{ code: status, title, details }] });
  });
  const prefix = instance.prefix;
  const serve = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    // The webapp writes the answer on the raw response itself; Fastify must not send one too.
    reply.hijack();
    const raw = request.raw;
    // Fastify read the body into request.body (nothing there for a request without one): the
    // stream has ended, so the webapp must take these bytes, for forwarding and its own routes.
    const body = request.body instanceof Uint8Array ? request.body : undefined;
    // An absolute-form target (`GET http://host/api/...`) is judged by its path, as the webapp does.
    const url = originForm(raw.url ?? "/") ?? raw.url ?? "/";
    const localPath = url.startsWith(prefix) ? url.slice(prefix.length) || "/" : url;
    await webapp.serve(raw, reply.raw, { ...(body ? { body } : {}), localPath });
  };
  instance.all("/", serve);
  instance.all("/*", serve);
};
