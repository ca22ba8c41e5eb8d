import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { stringify } from "yaml";
import { writeDevConfig } from "../../src/cli/dev.js";
import { supportBundleCommand, writeOwnerOnly } from "../../src/cli/support-bundle.js";

/**
 * The support bundle and the dev cluster's config hold secrets. Node's `mode` option applies only
 * when a file is created, so each test leaves a world-readable file of the same name first.
 */
const dir = mkdtempSync(join(tmpdir(), "mc-private-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const modeOf = (path: string) => statSync(path).mode & 0o777;

function worldReadable(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, "old contents\n");
  chmodSync(path, 0o644);
  return path;
}

describe("files that hold secrets", () => {
  it("writeOwnerOnly() leaves an existing 0644 file at 0600 with only the new contents", () => {
    const path = worldReadable("plain.txt");
    writeOwnerOnly(path, "new");
    expect(modeOf(path)).toBe(0o600);
    expect(readFileSync(path, "utf8")).toBe("new");
  });

  it("writeDevConfig() rewrites an existing 0644 cluster.yaml at 0600", () => {
    const devDir = mkdtempSync(join(dir, "dev-"));
    const path = join(devDir, "cluster.yaml");
    writeFileSync(path, "old\n");
    chmodSync(path, 0o644);
    expect(writeDevConfig(devDir, { dir: devDir, shards: 1, defaults: false, webappPort: 9090 })).toBe(path);
    expect(modeOf(path)).toBe(0o600);
    expect(readFileSync(path, "utf8")).toMatch(/^secret: [0-9a-f]{48}$/m);
  });

  it("supportBundleCommand() rewrites an existing 0644 --out file at 0600", async () => {
    const config = join(dir, "cluster.yaml");
    writeFileSync(
      config,
      stringify({ cluster_name: "private", secret: "s".repeat(32), store: { backend: "sqlite", path: join(dir, "cluster.db") } }),
    );
    const out = worldReadable("bundle.tar.gz");
    const print = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      expect(await supportBundleCommand({ config, out })).toBe(out);
    } finally {
      print.mockRestore();
    }
    expect(modeOf(out)).toBe(0o600);
    expect(readFileSync(out).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  });
});
