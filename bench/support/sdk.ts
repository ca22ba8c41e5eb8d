/**
 * The built SDK (dist/), typed by its sources. Processes whose CPU or latency the benchmark measures
 * run the code users run — the tsc output that the CLI runs too — rather than tsx's on-the-fly
 * transpilation of src/, which also keeps function names and line numbers right in CPU profiles.
 * `npm run bench` builds first.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

async function fromDist<M>(path: string): Promise<M> {
  return (await import(pathToFileURL(resolve("dist", path)).href)) as M;
}

/** Runtime classes and functions of the built SDK. */
export const sdk = {
  ...(await fromDist<typeof import("../../src/adapters/transport/index.js")>("adapters/transport/index.js")),
  ...(await fromDist<typeof import("../../src/adapters/memory/index.js")>("adapters/memory/index.js")),
  ...(await fromDist<typeof import("../../src/core/clock.js")>("core/clock.js")),
  ...(await fromDist<typeof import("../../src/core/silent-logger.js")>("core/silent-logger.js")),
  ...(await fromDist<typeof import("../../src/core/timing.js")>("core/timing.js")),
  ...(await fromDist<typeof import("../../src/nodes/coreapp.js")>("nodes/coreapp.js")),
  ...(await fromDist<typeof import("../../src/nodes/master.js")>("nodes/master.js")),
  ...(await fromDist<typeof import("../../src/nodes/webapp.js")>("nodes/webapp.js")),
  ...(await fromDist<typeof import("../../src/nodes/open-store.js")>("nodes/open-store.js")),
  ...(await fromDist<typeof import("../../src/example/echo-app.js")>("example/echo-app.js")),
  ...(await fromDist<typeof import("../../src/nodes/compose.js")>("nodes/compose.js")),
  ...(await fromDist<typeof import("../../src/config/load.js")>("config/load.js")),
};
