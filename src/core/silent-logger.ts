import type { Logger } from "./ports/logger.js";

/** A logger that drops everything: the default where none is given. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
