import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BodyAlreadyParsedError, preReadBody } from "../../src/nodes/webapp-http.js";

/** preReadBody() on real requests, prepared as a framework's body parser would leave them. */
type Prepare = (req: IncomingMessage & Record<string, unknown>) => Promise<void> | void;
const prepare = new Map<string, Prepare>();
let server: Server;
let base = "";

beforeAll(async () => {
  server = createServer((req, res) => {
    void (async () => {
      await prepare.get(req.url ?? "")!(req as IncomingMessage & Record<string, unknown>);
      let answer: string;
      try {
        const body = preReadBody(req);
        answer = body === undefined ? "unread" : `bytes:${body.toString("hex")}`;
      } catch (error) {
        answer = error instanceof BodyAlreadyParsedError ? "parsed" : `error:${String(error)}`;
      }
      res.end(answer);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => server.close());

/** Reads the stream to its end, as a body parser does. */
const consume = (req: IncomingMessage) => new Promise<void>((resolve) => req.resume().once("end", resolve));

async function check(path: string, p: Prepare, init: RequestInit): Promise<string> {
  prepare.set(path, p);
  return (await fetch(`${base}${path}`, init)).text();
}

describe("preReadBody()", () => {
  it("leaves an unread stream to the webapp even when middleware set req.body = {}", async () => {
    expect(await check("/a", (req) => void (req["body"] = {}), { method: "POST", body: "x" })).toBe("unread");
  });

  it("returns the bytes a parser kept on req.rawBody", async () => {
    const p: Prepare = async (req) => {
      await consume(req);
      req["body"] = { parsed: true };
      req["rawBody"] = Buffer.from("{ }");
    };
    expect(await check("/b", p, { method: "POST", body: "{ }" })).toBe(`bytes:${Buffer.from("{ }").toString("hex")}`);
  });

  it("returns a UTF-8 string body as its bytes, and refuses one decoded from another charset", async () => {
    const text: Prepare = async (req) => {
      await consume(req);
      req["body"] = "hé";
    };
    expect(await check("/c", text, { method: "POST", headers: { "content-type": "text/plain; charset=utf-8" }, body: "hé" })).toBe(
      `bytes:${Buffer.from("hé").toString("hex")}`,
    );
    expect(await check("/d", text, { method: "POST", headers: { "content-type": "text/plain; charset=iso-8859-1" }, body: "h" })).toBe(
      "parsed",
    );
  });

  it("refuses a consumed body kept only as a parsed value, and counts a consumed empty one as empty", async () => {
    const parsed: Prepare = async (req) => {
      await consume(req);
      req["body"] = { a: 1 };
    };
    expect(await check("/e", parsed, { method: "POST", body: '{"a":1}' })).toBe("parsed");
    expect(await check("/f", (req) => consume(req), { method: "GET" })).toBe("bytes:");
  });
});
