import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

/**
 * The TypeScript blocks of README.md and docs/embedding.md compile under strict tsc as a user's code
 * would: each block is a module of its own that imports "multiconnect" (the built package, through
 * its exports map).
 */
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsBlocks = (file: string) => [...readFileSync(join(root, file), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const blocks = [...tsBlocks("README.md"), ...tsBlocks("docs/embedding.md")];
// Inside the repository, so that "multiconnect" resolves to this package and express/fastify to its dev dependencies.
const dir = mkdtempSync(join(root, ".readme-check-"));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("README.md and docs/embedding.md", () => {
  it("has TypeScript blocks, and every one compiles under strict tsc", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    blocks.forEach((code, i) => writeFileSync(join(dir, `block-${i + 1}.ts`), code));
    const tsconfig = {
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2023"],
        types: ["node"],
        strict: true,
        noUncheckedIndexedAccess: true,
        noEmit: true,
        skipLibCheck: true,
      },
      include: ["*.ts"],
    };
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
    const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", dir], { encoding: "utf8" });
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.status).toBe(0);
  }, 60_000);
});
