import { access, constants, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "../core/errors.js";

/**
 * Checks that the shared media directory (the model product mounts one NFS share on every node)
 * is readable and writable by writing and removing a probe file. Throws `ConfigError` otherwise.
 */
export async function checkMediaDir(dir: string): Promise<void> {
  const probe = join(dir, `.multiconnect-probe-${process.pid}`);
  try {
    await access(dir, constants.R_OK | constants.W_OK);
    await writeFile(probe, "ok");
    await rm(probe);
  } catch (error) {
    throw new ConfigError("media_dir", `${dir} is not readable and writable: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}
