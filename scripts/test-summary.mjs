// Prints what `vitest run` did, per backend and in total, from the JSON report vitest wrote
// (vitest.config.ts): the per-backend counts the issues ask to see, and a closing
// "N passed, N failed" line that CI can read.
import { existsSync, readFileSync } from "node:fs";
import { basename } from "node:path";

const file = "test-results.json";
if (!existsSync(file)) {
  console.error("test summary: no test-results.json (did vitest run?)");
  process.exit(0);
}
const report = JSON.parse(readFileSync(file, "utf8"));
const backends = ["memory", "sqlite", "postgres", "mysql", "redis", "etcd"];
const groups = new Map();
for (const suite of report.testResults) {
  const name = basename(suite.name);
  const backend = backends.find((b) => name.startsWith(`${b}.`) || name.startsWith(`${b}-`)) ?? "core, config, transport, nodes";
  const g = groups.get(backend) ?? { passed: 0, failed: 0, skipped: 0, files: 0 };
  g.files++;
  for (const t of suite.assertionResults) {
    if (t.status === "passed") g.passed++;
    else if (t.status === "failed") g.failed++;
    else g.skipped++;
  }
  groups.set(backend, g);
}
console.log("\ntests per backend:");
for (const [backend, g] of [...groups].sort()) {
  console.log(
    `  ${backend.padEnd(30)} ${String(g.passed).padStart(4)} passed  ${g.failed} failed  ${g.skipped} skipped  (${g.files} files)`,
  );
}
console.log(`\n${report.numPassedTests} passed, ${report.numFailedTests} failed`);
