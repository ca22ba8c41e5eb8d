import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crashFailoverScenarios } from "./crash-failover.suite.js";

const dir = mkdtempSync(join(tmpdir(), "mc-sqlite-crash-"));

crashFailoverScenarios("sqlite", (namespace) => ({ backend: "sqlite", path: join(dir, `${namespace}.db`) }));
