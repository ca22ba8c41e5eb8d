import { describe, expect, it } from "vitest";
import {
  decodeForwardReply,
  decodeForwardRequest,
  encodeForwardRequest,
  encodeForwardResponse,
  encodeNotServing,
  MalformedMessage,
} from "../../src/adapters/transport/messages.js";

/** The parts a sender writes, as the one payload the receiver reads. */
const payload = (parts: Uint8Array[]) => Buffer.concat(parts);

describe("forward metadata on the wire (binary)", () => {
  it("carries a request's shard, epoch, method, path, headers and body unchanged, including non-ASCII values and the largest epoch", () => {
    const request = {
      shard: 4095,
      epoch: Number.MAX_SAFE_INTEGER,
      method: "PATCH",
      path: "/v1/messages?to=%2B49&x=ä",
      headers: { "content-type": "text/plain; charset=utf-8", "x-name": "Zoë 😀", empty: "" },
      body: Buffer.from([0, 1, 2, 255]),
    };
    expect(() => decodeForwardRequest(payload(encodeForwardRequest(request)))).toThrow(MalformedMessage); // the path is not visible ASCII
    const ok = { ...request, path: "/v1/messages?to=%2B49" };
    const back = decodeForwardRequest(payload(encodeForwardRequest(ok)));
    expect({ ...back, body: Buffer.from(back.body) }).toEqual(ok);
  });

  it("carries each kind of reply", () => {
    const response = { status: 201, headers: { "x-multiconnect-node": "coreapp-1", etag: '"a"' }, body: Buffer.from("done") };
    const served = decodeForwardReply(payload(encodeForwardResponse("served", response)));
    expect(served).toEqual({ outcome: "served", response });
    expect(decodeForwardReply(payload(encodeForwardResponse("failed", { ...response, status: 500 })))).toMatchObject({
      outcome: "failed",
      response: { status: 500 },
    });
    expect(decodeForwardReply(payload(encodeNotServing(3, 2 ** 40, "coreapp-2\n")))).toEqual({
      outcome: "not-serving",
      shard: 3,
      epoch: 2 ** 40,
      node: "coreapp-2?",
    });
  });

  it("refuses malformed metadata with MalformedMessage, naming the problem", () => {
    const good = payload(
      encodeForwardRequest({ shard: 0, epoch: 1, method: "GET", path: "/", headers: { a: "b" }, body: new Uint8Array() }),
    );
    // Every cut inside the metadata is refused (the body is what follows it, here nothing).
    for (let cut = 0; cut < good.length; cut++)
      expect(() => decodeForwardRequest(good.subarray(0, cut)), `cut at ${cut}`).toThrow(/truncated/);

    const withHeaders = (h: Record<string, string>) =>
      payload(encodeForwardRequest({ shard: 0, epoch: 1, method: "GET", path: "/", headers: h, body: new Uint8Array() }));
    expect(() => decodeForwardRequest(withHeaders({ "bad name": "x" }))).toThrow(/invalid name/);
    expect(() => decodeForwardRequest(withHeaders(JSON.parse('{"__proto__": "x"}') as Record<string, string>))).toThrow(/invalid name/);
    expect(() => decodeForwardRequest(withHeaders({ a: "line\r\nbreak" }))).toThrow(/not a valid value/);
    const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`h${i}`, "v"]));
    expect(() => decodeForwardRequest(withHeaders(many))).toThrow(/more than 256 headers/);

    const past53 = Buffer.from(good);
    past53.writeUInt32BE(0x20_0000, 8); // the epoch's high word
    expect(() => decodeForwardRequest(past53)).toThrow(/past 2\^53/);

    const reply = payload(encodeForwardResponse("served", { status: 200, headers: {}, body: new Uint8Array() }));
    reply.writeUInt16BE(600, 1);
    expect(() => decodeForwardReply(reply)).toThrow(/not an HTTP status/);
    expect(() => decodeForwardReply(Buffer.of(9))).toThrow(/unknown outcome/);
    expect(() => decodeForwardReply(Buffer.alloc(0))).toThrow(/truncated/);
  });
});
