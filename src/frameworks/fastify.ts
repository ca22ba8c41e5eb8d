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
 * prefix included. The webapp's own `GET /v1/health` and `GET /metrics` answer below the prefix.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
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
  // One byte over the webapp's limit, so the webapp, not Fastify, answers 413 in its own format.
  instance.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: webapp.maxBodyBytes + 1 }, (_req, body, done) => done(null, body));
  const prefix = instance.prefix;
  const serve = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    // The webapp writes the answer on the raw response itself; Fastify must not send one too.
    reply.hijack();
    const raw = request.raw;
    // Fastify read the body into request.body; a body-less request may have had its empty stream read too.
    const body = request.body instanceof Uint8Array ? request.body : raw.readableEnded ? Buffer.alloc(0) : undefined;
    const url = raw.url ?? "/";
    const localPath = url.startsWith(prefix) ? url.slice(prefix.length) || "/" : url;
    await webapp.serve(raw, reply.raw, { ...(body ? { body } : {}), localPath });
  };
  instance.all("/", serve);
  instance.all("/*", serve);
};
