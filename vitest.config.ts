import { defineConfig } from "vitest/config";

/**
 * Two groups: everything that runs in one process (core, config, adapters against the real
 * servers, embedded nodes) in parallel first; then the integration files that start whole
 * clusters of node processes, one file at a time, so the failover times they check against the
 * computed bound are not distorted by another cluster competing for this machine's two cores.
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default", ["json", { outputFile: "test-results.json" }]],
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: ["test/integration/**"],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
