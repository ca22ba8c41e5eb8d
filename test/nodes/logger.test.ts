import { expect, it } from "vitest";
import { createLogger } from "../../src/nodes/logger.js";

it("log.error({ err }) keeps the error's type, message, stack and cause; secrets stay redacted", () => {
  const lines: string[] = [];
  const log = createLogger("info", {}, { write: (line: string) => void lines.push(line) });
  const cause = new Error("connection refused");
  log.error({ err: new TypeError("store call failed", { cause }), secret: "s3cret-value" }, "beat failed");
  const entry = JSON.parse(lines[0]!) as {
    err: { type: string; message: string; stack: string; cause?: { message: string } };
    secret: string;
  };
  expect(entry.err.type).toBe("TypeError");
  expect(entry.err.message).toContain("store call failed");
  expect(entry.err.stack).toMatch(/logger\.test\.ts/);
  expect(JSON.stringify(entry.err)).toContain("connection refused");
  expect(entry.secret).toBe("[redacted]");
  expect(lines[0]).not.toContain("s3cret-value");
});
