import { pino, type DestinationStream } from "pino";
import type { Logger } from "../core/ports/logger.js";

/**
 * JSON-lines logs on stderr through pino. Secrets never reach a log call (configs are not logged);
 * the redaction below is a second guard for fields that might carry one. An Error logged as `err`
 * (or `error`) keeps its type, message, stack and `cause` chain: `log.error({ err }, "…")`.
 */
export function createLogger(
  level: "debug" | "info" | "warn" | "error" | "silent",
  base: Record<string, unknown> = {},
  /** Where the lines go (default: stderr). */
  destination: DestinationStream = pino.destination(2),
): Logger {
  return pino(
    {
      level,
      base,
      serializers: { err: pino.stdSerializers.errWithCause, error: pino.stdSerializers.errWithCause },
      redact: { paths: ["secret", "password", "*.secret", "*.password", "config"], censor: "[redacted]" },
    },
    destination,
  );
}
