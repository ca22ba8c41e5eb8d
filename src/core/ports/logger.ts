/** The logging the core needs: structured fields first, then a message. Never pass secrets. */
export interface Logger {
  /** Detail for diagnosing a problem. */
  debug(fields: Record<string, unknown>, message: string): void;
  /** A state change worth seeing in normal operation (elected, promoted, demoted). */
  info(fields: Record<string, unknown>, message: string): void;
  /** Something failed and will be retried, or is degraded. */
  warn(fields: Record<string, unknown>, message: string): void;
  /** Something failed that needs attention. */
  error(fields: Record<string, unknown>, message: string): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
}
