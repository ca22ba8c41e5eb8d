import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { failoverScenarios } from "./failover.suite.js";

const dir = mkdtempSync(join(tmpdir(), "mc-sqlite-failover-"));

failoverScenarios("sqlite", (namespace) => ({ backend: "sqlite", path: join(dir, `${namespace}.db`) }));
