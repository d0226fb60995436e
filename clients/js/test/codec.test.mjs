// Codec edge cases beyond the documented examples: bounds checks, metadata rules,
// error classes, name checks, and frame reassembly over a real socket.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import * as beuss from "beuss";
const { codec } = beuss;

test("a short frame raises CodecError, not garbage", () => {
  assert.throws(() => codec.decodeMessages(Buffer.from([0x12, 0, 0, 0, 1, 0, 0, 0, 9, 1])), codec.CodecError);
  assert.throws(() => codec.decodeCount64(Buffer.from([0x14, 0, 0])), codec.CodecError);
  assert.throws(() => codec.decodeSettled(Buffer.from([0x16, 0, 1, 7])), codec.CodecError);
});

test("trailing reply bytes are ignored (protocol.md 9.2)", () => {
  assert.equal(codec.decodeCount64(Buffer.from([0x14, 0, 0, 0, 0, 0, 0, 0, 3, 0xaa, 0xbb])), 3n);
  const h = codec.decodeHello(Buffer.from("020001001000000000ffff", "hex"));
  assert.equal(h.version, 1);
  assert.equal(h.server, "");
});

test("metadata: unknown tags skipped, first of a repeated tag wins, overruns refused", () => {
  // sid 7, meta: tag 9 (unknown) len 1, SUBJECT "a", SUBJECT "b", DROPPED 5; payload "x"
  const meta = Buffer.from([9, 1, 0, 1, 1, 0x61, 1, 1, 0x62, 3, 4, 0, 0, 0, 5]);
  const b = Buffer.concat([Buffer.from([0x3f, 0, 0, 0, 7, 0, meta.length]), meta, Buffer.from("x")]);
  assert.deepEqual(codec.decodeEvent(b), { sid: 7, subject: "a", dropped: 5, data: Buffer.from("x") });
  const bad = Buffer.from([0x3f, 0, 0, 0, 7, 0, 3, 1, 5, 0x61]);
  assert.throws(() => codec.decodeEvent(bad), codec.CodecError);
  const past = Buffer.from([0x3f, 0, 0, 0, 7, 0, 9, 1, 1, 0x61]);
  assert.throws(() => codec.decodeEvent(past), codec.CodecError);
});

test("every server error code has its own class; unknown codes are generic", () => {
  const names = Object.entries(beuss.ErrorCode);
  assert.equal(names.length, 19);
  const seen = new Set();
  for (const [name, code] of names) {
    const e = beuss.serverError(code, true, "t");
    assert.ok(e instanceof beuss.ServerError && e instanceof beuss.BeussError);
    assert.equal(e.code, code);
    assert.ok(e.message.startsWith(name));
    assert.notEqual(e.constructor, beuss.ServerError, name);
    seen.add(e.constructor);
  }
  assert.equal(seen.size, 19);
  const u = beuss.serverError(99, false, "new");
  assert.equal(u.constructor, beuss.ServerError);
  assert.equal(u.fatal, false);
  assert.ok(beuss.serverError(7, false, "") instanceof beuss.FullError);
  assert.ok(beuss.serverError(13, false, "") instanceof beuss.NoRespondersError);
});

test("names are checked for 1..255 bytes before anything is sent", () => {
  assert.throws(() => codec.nameBytes(""), RangeError);
  assert.throws(() => codec.nameBytes("é".repeat(128)), RangeError); // 256 bytes
  assert.equal(codec.nameBytes("é".repeat(127)).length, 254);
  assert.throws(() => codec.encodeGet(codec.nameBytes("q"), 0, 0), RangeError);
  assert.throws(() => codec.encodePut(codec.nameBytes("q"), Buffer.alloc(0), { priority: 10 }), RangeError);
  assert.throws(() => codec.encodeAck(codec.nameBytes("q"), []), RangeError);
});

test("settle frames carry up to 4096 pairs", () => {
  const pairs = Array.from({ length: 4096 }, (_, i) => ({ id: BigInt(i + 1), attempt: 1 }));
  const f = codec.encodeAck(codec.nameBytes("q"), pairs);
  assert.equal(f.readUInt32BE(0), 2 + 2 + 2 + 12 * 4096);
  assert.throws(() => codec.encodeAck(codec.nameBytes("q"), [...pairs, pairs[0]]), RangeError);
});

test("u64 ids round-trip as bigint", () => {
  const id = 0xfffffffffffffffen;
  const f = codec.encodeAck(codec.nameBytes("q"), [{ id, attempt: 4294967295 }]);
  assert.equal(f.readBigUInt64BE(10), id);
  assert.equal(f.readUInt32BE(18), 4294967295);
});

// A fake server that answers HELLO, then splits its replies byte by byte and also packs
// several in one write, with EVENTs between them: the client must reassemble frames
// from the length prefix and route EVENTs away from the FIFO of replies.
test("replies split across reads or packed together are matched in order; EVENTs are routed", async () => {
  const hello = Buffer.from("00000025020003001000000b626575737320302e312e300000001300007530029 32e009a7ec8000014".replace(/ /g, ""), "hex");
  const subscribed = Buffer.from("000000053300000001", "hex");
  const event = Buffer.from("0000001c3f00000001001301116f72646572732e65752e6372656174656468 69".replace(/ /g, ""), "hex");
  const pong = Buffer.from("0000000101", "hex");
  const purged = Buffer.from("00000009140000000000000003", "hex");
  const srv = net.createServer((s) => {
    let got = 0;
    s.on("data", async (d) => {
      got += d.length;
      if (got === 8) s.write(hello);
      else if (got >= 8 + 15 + 6 + 11) {
        got = -1e9;
        const all = Buffer.concat([subscribed, event, pong, event, purged, event]);
        for (let i = 0; i < all.length; i++) {
          s.write(all.subarray(i, i + 1));
          if (i % 7 === 0) await new Promise((r) => setImmediate(r));
        }
      }
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const c = await beuss.connect({ host: "127.0.0.1", port: srv.address().port });
  assert.equal(c.server.version, 3);
  assert.ok(c.server.has(beuss.Feature.FANOUT));
  const subP = c.subscribe("orders.>");
  const pingP = c.ping();
  const purgeP = c.purge("jobs");
  const sub = await subP;
  await pingP;
  assert.equal(await purgeP, 3n);
  const evs = [];
  // next(), not for-await: leaving a for-await loop sends UNSUB, which this fake ignores.
  for (let i = 0; i < 3; i++) evs.push(await sub.next());
  assert.deepEqual(evs.map((e) => [e.sid, e.subject, e.text()]), Array(3).fill([1, "orders.eu.created", "hi"]));
  c.destroy();
  srv.close();
});

test("an unprompted fatal error (TOO_MANY_CONNECTIONS) fails connect with its class", async () => {
  const srv = net.createServer((s) => {
    const t = Buffer.from("full");
    const b = Buffer.alloc(8 + t.length);
    b.writeUInt32BE(4 + t.length, 0);
    b[4] = 0x7f;
    b.writeUInt16BE(8, 5);
    b[7] = 1;
    t.copy(b, 8);
    s.end(b);
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  await assert.rejects(beuss.connect({ host: "127.0.0.1", port: srv.address().port }), beuss.TooManyConnectionsError);
  srv.close();
});
