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
  assert.equal(names.length, 20);
  const seen = new Set();
  for (const [name, code] of names) {
    const e = beuss.serverError(code, true, "t");
    assert.ok(e instanceof beuss.ServerError && e instanceof beuss.BeussError);
    assert.equal(e.code, code);
    assert.ok(e.message.startsWith(name));
    assert.notEqual(e.constructor, beuss.ServerError, name);
    seen.add(e.constructor);
  }
  assert.equal(seen.size, 20);
  const u = beuss.serverError(99, false, "new");
  assert.equal(u.constructor, beuss.ServerError);
  assert.equal(u.fatal, false);
  assert.ok(beuss.serverError(7, false, "") instanceof beuss.FullError);
  assert.ok(beuss.serverError(13, false, "") instanceof beuss.NoRespondersError);
  const bs = beuss.serverError(20, false, "cannot read the spec");
  assert.ok(bs instanceof beuss.BadScheduleError);
  assert.equal(bs.fatal, false);
  assert.ok(bs.message.startsWith("BAD_SCHEDULE (20): "));
});

const b8 = (s) => Buffer.from(s, "utf8");
const sched = (over = {}) => ({ spec: b8("@every 1s"), toSubject: false, target: b8("jobs"), priority: 5, payload: b8(""), ...over });

test("SCHEDULE: fields are checked before anything is sent", () => {
  const ok = codec.encodeSchedule(b8("n"), sched());
  assert.equal(ok.toString("hex"), "000000155000016e0940657665727920317300046a6f627305");
  assert.throws(() => codec.encodeSchedule(b8(""), sched()), RangeError);
  assert.throws(() => codec.encodeSchedule(Buffer.alloc(256, 0x61), sched()), RangeError);
  assert.equal(codec.encodeSchedule(Buffer.alloc(255, 0x61), sched())[6], 255);
  assert.throws(() => codec.encodeSchedule(b8("n"), sched({ spec: b8("") })), RangeError);
  assert.throws(() => codec.encodeSchedule(b8("n"), sched({ spec: Buffer.alloc(256, 0x20) })), RangeError);
  assert.throws(() => codec.encodeSchedule(b8("n"), sched({ target: b8("") })), RangeError);
  assert.throws(() => codec.encodeSchedule(b8("n"), sched({ target: Buffer.alloc(256, 0x61) })), RangeError);
  for (const priority of [-1, 10, 1.5, NaN]) {
    assert.throws(() => codec.encodeSchedule(b8("n"), sched({ priority })), RangeError, String(priority));
  }
  assert.equal(codec.encodeSchedule(b8("n"), sched({ priority: 0 })).at(-1), 0);
  assert.equal(codec.encodeSchedule(b8("n"), sched({ priority: 9 })).at(-1), 9);
});

test("SCHEDULE to a subject: target_kind 1, and no wildcard in the subject", () => {
  const f = codec.encodeSchedule(b8("t"), sched({ toSubject: true, target: b8("clock.tick"), priority: 2, payload: b8("x") }));
  // length, 0x50, flags, "t", spec, kind, target, priority, payload
  const o = 6 + 2 + 1 + 9;
  assert.equal(f[o], 1);
  assert.equal(f.toString("utf8", o + 2, o + 2 + f[o + 1]), "clock.tick");
  assert.deepEqual([...f.subarray(-2)], [2, 0x78]);
  for (const bad of ["clock.*", ">", "a.>", "a*", "a.b>c"]) {
    assert.throws(() => codec.encodeSchedule(b8("t"), sched({ toSubject: true, target: b8(bad) })), RangeError, bad);
  }
  // A queue name may hold any UTF-8: '*' and '>' are only a subject's wildcards.
  assert.equal(codec.encodeSchedule(b8("t"), sched({ target: b8("q*>") }))[6 + 2 + 1 + 9], 0);
});

test("SCHEDULE frames declare at most 65536 bytes, payload included", () => {
  // 2 + 1 + 1 + 1 + 9 + 1 + 1 + 4 + 1 = 21 bytes besides the payload.
  const max = codec.encodeSchedule(b8("n"), sched({ payload: Buffer.alloc(65536 - 21) }));
  assert.equal(max.readUInt32BE(0), 65536);
  assert.equal(max.length, 65540);
  assert.equal(codec.MAX_SCHEDULE_FRAME, 65536);
  assert.throws(() => codec.encodeSchedule(b8("n"), sched({ payload: Buffer.alloc(65536 - 20) })), RangeError);
});

test("UNSCHEDULE, PAUSE_SCHEDULE and SCHEDULES frames", () => {
  assert.equal(codec.encodeUnschedule(b8("ab")).toString("hex"), "0000000551000" + "26162");
  assert.equal(codec.encodePauseSchedule(b8("ab"), false).toString("hex"), "000000065200026162" + "00");
  assert.equal(codec.encodePauseSchedule(b8("ab"), true).toString("hex"), "000000065200026162" + "01");
  assert.equal(codec.encodeSchedules(b8("ab")).toString("hex"), "00000005530002" + "6162");
  assert.equal(codec.encodeSchedules(new Uint8Array(0)).toString("hex"), "00000003530000");
  assert.throws(() => codec.encodeUnschedule(b8("")), RangeError);
  assert.throws(() => codec.encodePauseSchedule(Buffer.alloc(256, 0x61), true), RangeError);
  assert.throws(() => codec.encodeSchedules(Buffer.alloc(256, 0x61)), RangeError);
});

test("SCHEDULED and SCHEDULE_PAUSED: u64 times as bigint, not found as null, trailing bytes ignored", () => {
  const big = 0xfffffffffffffffen;
  const scheduled = Buffer.alloc(10 + 3);
  scheduled[0] = 0x50;
  scheduled[1] = 0;
  scheduled.writeBigUInt64BE(big, 2);
  assert.deepEqual(codec.decodeScheduled(scheduled), { created: false, nextRunMs: big });
  assert.throws(() => codec.decodeScheduled(scheduled.subarray(0, 9)), codec.CodecError);
  const paused = Buffer.from("52010000019a2b3c4d5eff", "hex");
  assert.equal(codec.decodeSchedulePaused(paused), 0x19a2b3c4d5en);
  assert.equal(codec.decodeSchedulePaused(Buffer.from("52000000000000000000", "hex")), null);
  assert.throws(() => codec.decodeSchedulePaused(Buffer.from("5201", "hex")), codec.CodecError);
  assert.equal(codec.decodeFlag(Buffer.from("5100", "hex")), false);
});

/** One SCHEDULE_LIST entry with its u16 entry_len, `extra` bytes appended after its fields. */
function entry({ name, spec, kind, target, priority, paused, times, payloadLength }, extra = Buffer.alloc(0)) {
  const str8 = (s) => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), b8(s)]);
  const u64s = Buffer.alloc(40);
  times.forEach((t, i) => u64s.writeBigUInt64BE(t, 8 * i));
  const pl = Buffer.alloc(4);
  pl.writeUInt32BE(payloadLength);
  const body = Buffer.concat([str8(name), str8(spec), Buffer.from([kind]), str8(target), Buffer.from([priority, paused]), u64s, pl, extra]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([len, body]);
}
function list(...entries) {
  const head = Buffer.alloc(5);
  head[0] = 0x53;
  head.writeUInt32BE(entries.length, 1);
  return Buffer.concat([head, ...entries]);
}

test("SCHEDULE_LIST: entries read by entry_len, bytes a later version appends are skipped", () => {
  const a = { name: "a", spec: "@every 1s", kind: 1, target: "clock.tick", priority: 0, paused: 0, times: [1n, 2n, 3n, 4n, 5n], payloadLength: 7 };
  const b = { name: "é", spec: "TZ=+02:00 0 3 * * *", kind: 0, target: "jobs", priority: 9, paused: 1, times: [0n, 2n ** 64n - 1n, 10n, 0n, 1n], payloadLength: 65000 };
  const got = codec.decodeScheduleList(list(entry(a, Buffer.from("future fields")), entry(b), entry(a, Buffer.alloc(1))));
  const want = (e) => ({
    name: e.name, spec: e.spec, toSubject: e.kind === 1, target: e.target, priority: e.priority, paused: e.paused === 1,
    nextRunMs: e.times[0], lastRunMs: e.times[1], runs: e.times[2], misfires: e.times[3], failures: e.times[4], payloadLength: e.payloadLength,
  });
  assert.deepEqual(got, [want(a), want(b), want(a)]);
  assert.equal(typeof got[1].lastRunMs, "bigint");
  assert.deepEqual(codec.decodeScheduleList(list()), []);
  // Trailing bytes after the last entry are ignored too (9.2).
  assert.deepEqual(codec.decodeScheduleList(Buffer.concat([list(entry(b)), Buffer.from([1, 2, 3])])), [want(b)]);
});

test("SCHEDULE_LIST: an entry shorter than its fields, or past the frame, is a CodecError", () => {
  const e = entry({ name: "a", spec: "@hourly", kind: 0, target: "q", priority: 5, paused: 0, times: [0n, 0n, 0n, 0n, 0n], payloadLength: 0 });
  const short = Buffer.from(e);
  short.writeUInt16BE(short.readUInt16BE(0) - 1, 0); // payload_len runs past entry_len
  assert.throws(() => codec.decodeScheduleList(list(short, e)), codec.CodecError);
  const long = Buffer.from(e);
  long.writeUInt16BE(long.readUInt16BE(0) + 1, 0); // entry_len runs past the frame
  assert.throws(() => codec.decodeScheduleList(list(long)), /runs past the frame/);
  const twoCounted = list(e);
  twoCounted.writeUInt32BE(2, 1); // count says 2, one entry there
  assert.throws(() => codec.decodeScheduleList(twoCounted), codec.CodecError);
  const kind = Buffer.from(e);
  kind[2 + 2 + 8] = 2; // after entry_len, name "a" and spec "@hourly": target_kind 2
  assert.throws(() => codec.decodeScheduleList(list(kind)), /target_kind 2/);
});

test("PUT with a key: flags 0x04 alone, 0x05 with options, the key fields after the options'", () => {
  const k = (key, over = {}) => ({ key: b8(key), ...over });
  // flags 0x04: length 14 = 2 + 1 + 1 + 1 + 2 + 1 + 4 + 2; name, key_len, key, mode, window_ms, payload.
  const plain = codec.encodePut(b8("q"), b8("pl"), undefined, k("ab", { windowMs: 0x01020304 }));
  assert.equal(plain.toString("hex"), "0000000e" + "10" + "04" + "0171" + "026162" + "00" + "01020304" + "706c");
  assert.equal(codec.Flag.PUT_UNIQUE, 0x04);
  // flags 0x05, length 16: delay and priority come first, then the key fields.
  const both = codec.encodePut(b8("q"), b8(""), { delayMs: 7, priority: 0 }, k("x", { replace: true }));
  assert.equal(both.toString("hex"), "00000010" + "10" + "05" + "0171" + "00000007" + "00" + "0178" + "01" + "00000000");
  // Defaults: refuse a duplicate, no window, and the options' defaults (delay 0, priority 5).
  assert.equal(codec.encodePut(b8("q"), b8(""), {}, k("x")).toString("hex"), "00000010100501710000000005017800" + "00000000");
  // A key is any bytes, not only UTF-8.
  const bin = codec.encodePut(b8("q"), b8(""), undefined, { key: new Uint8Array([0, 0xff]) });
  assert.deepEqual([...bin.subarray(9, 11)], [0, 0xff]);
  // Without a key the frame is what it always was.
  assert.equal(codec.encodePut(b8("q"), b8("pl"))[5], 0);
  assert.equal(codec.encodePut(b8("q"), b8("pl"), {})[5], 0x01);
});

test("PUT with a key: key, window and options are checked before anything is sent", () => {
  const enc = (u, o) => codec.encodePut(b8("q"), b8("p"), o, u);
  assert.throws(() => enc({ key: b8("") }), /unique key must be 1..255 bytes/);
  assert.throws(() => enc({ key: Buffer.alloc(256, 0x61) }), RangeError);
  assert.equal(enc({ key: Buffer.alloc(255, 0x61) })[8], 255);
  assert.equal(codec.MAX_UNIQUE_KEY, 255);
  assert.equal(codec.MAX_UNIQUE_WINDOW_MS, 2592000000);
  const max = enc({ key: b8("k"), windowMs: codec.MAX_UNIQUE_WINDOW_MS });
  assert.equal(max.readUInt32BE(6 + 2 + 2 + 1), 2592000000);
  for (const windowMs of [codec.MAX_UNIQUE_WINDOW_MS + 1, -1, 1.5, NaN, Infinity]) {
    assert.throws(() => enc({ key: b8("k"), windowMs }), RangeError, String(windowMs));
  }
  assert.throws(() => enc({ key: b8("k") }, { priority: 10 }), RangeError);
  assert.throws(() => enc({ key: b8("k") }, { delayMs: -1 }), RangeError);
});

test("DUPLICATE: the holder's id and its state; an unknown state or a short frame is a CodecError", () => {
  const dup = (state, extra = "") => Buffer.from("54" + "fffffffffffffffe" + state + extra, "hex");
  const want = (duplicate) => ({ truncated: false, id: 0xfffffffffffffffen, duplicate });
  assert.deepEqual(codec.decodeDuplicate(dup("01")), want("ready"));
  assert.deepEqual(codec.decodeDuplicate(dup("02")), want("delayed"));
  assert.deepEqual(codec.decodeDuplicate(dup("03")), want("inFlight"));
  assert.deepEqual(codec.decodeDuplicate(dup("04")), want("gone"));
  // Bytes a later version appends are ignored (9.2).
  assert.deepEqual(codec.decodeDuplicate(dup("04", "aabbcc")), want("gone"));
  assert.deepEqual(codec.decodePut(dup("03"), true), want("inFlight"));
  for (const bad of ["00", "05", "ff"]) assert.throws(() => codec.decodeDuplicate(dup(bad)), /unknown DUPLICATE state/, bad);
  assert.throws(() => codec.decodeDuplicate(dup("")), codec.CodecError);
  assert.throws(() => codec.decodeDuplicate(Buffer.from("540000", "hex")), codec.CodecError);
});

test("REPLACED: the id, and the lengths only when the payload was cut", () => {
  const rep = (orig, stored, extra = "") => {
    const b = Buffer.alloc(17);
    b[0] = 0x55;
    b.writeBigUInt64BE(42n, 1);
    b.writeUInt32BE(orig, 9);
    b.writeUInt32BE(stored, 13);
    return Buffer.concat([b, Buffer.from(extra, "hex")]);
  };
  assert.deepEqual(codec.decodeReplaced(rep(3, 3)), { truncated: false, id: 42n, replaced: true });
  assert.deepEqual(codec.decodeReplaced(rep(20000, 10240, "ee")), {
    truncated: true, originalLength: 20000, storedLength: 10240, id: 42n, replaced: true,
  });
  assert.deepEqual(codec.decodePut(rep(0, 0), false), { truncated: false, id: 42n, replaced: true });
  assert.throws(() => codec.decodeReplaced(rep(3, 3).subarray(0, 16)), codec.CodecError);
});

test("PUT with a time to live: flags 0x08, 0x09, 0x0C and 0x0D, the TTL fields after the options' and the key's", () => {
  assert.equal(codec.Flag.PUT_TTL, 0x08);
  assert.equal(codec.TtlMode.DEAD_LETTER, 0x01);
  // flags 0x08, length 11 = 2 + 1 + 1 + 5 + 2: name, ttl_ms, mode, payload.
  const ttl = codec.encodePut(b8("q"), b8("pl"), undefined, undefined, { ttlMs: 0x01020304 });
  assert.equal(ttl.toString("hex"), "0000000b" + "10" + "08" + "0171" + "01020304" + "00" + "706c");
  // flags 0x09, length 14: delay and priority, then ttl_ms 5000 and mode dead-letter.
  const opts = codec.encodePut(b8("q"), b8(""), { delayMs: 7, priority: 0 }, undefined, { ttlMs: 5000, deadLetter: true });
  assert.equal(opts.toString("hex"), "0000000e" + "10" + "09" + "0171" + "00000007" + "00" + "00001388" + "01");
  // flags 0x0C, length 16: the key fields, then ttl_ms 0 (never expires) and mode drop.
  const keyed = codec.encodePut(b8("q"), b8(""), undefined, { key: b8("x") }, { ttlMs: 0, deadLetter: false });
  assert.equal(keyed.toString("hex"), "00000010" + "10" + "0c" + "0171" + "0178" + "00" + "00000000" + "00000000" + "00");
  // flags 0x0D, length 21: options, key, TTL in that order; the longest time to live.
  const all = codec.encodePut(b8("q"), b8("z"), {}, { key: b8("x"), replace: true }, { ttlMs: codec.MAX_TTL_MS, deadLetter: true });
  assert.equal(
    all.toString("hex"),
    "00000016" + "10" + "0d" + "0171" + "00000000" + "05" + "0178" + "01" + "00000000" + "9a7ec800" + "01" + "7a",
  );
  // Every combination: the flags are the fields present, the length counts them all,
  // and the TTL fields are the five bytes just before the payload.
  for (const o of [undefined, { priority: 1 }]) {
    for (const u of [undefined, { key: b8("key") }]) {
      for (const t of [undefined, { ttlMs: 250, deadLetter: true }]) {
        const f = codec.encodePut(b8("qq"), b8("body"), o, u, t);
        const what = JSON.stringify({ o, u: u && "key", t });
        assert.equal(f[5], (o ? 0x01 : 0) | (u ? 0x04 : 0) | (t ? 0x08 : 0), what);
        assert.equal(f.readUInt32BE(0), f.length - 4, what);
        assert.equal(f.length, 4 + 2 + 1 + 2 + (o ? 5 : 0) + (u ? 1 + 3 + 5 : 0) + (t ? 5 : 0) + 4, what);
        assert.equal(f.subarray(-4).toString(), "body", what);
        if (t) assert.equal(f.subarray(-9, -4).toString("hex"), "000000fa01", what);
      }
    }
  }
});

test("PUT with a time to live: ttl_ms is checked for 0..30 days before anything is sent", () => {
  const enc = (t, o, u) => codec.encodePut(b8("q"), b8("p"), o, u, t);
  assert.equal(codec.MAX_TTL_MS, 2592000000);
  assert.equal(enc({ ttlMs: codec.MAX_TTL_MS }).readUInt32BE(8), 2592000000);
  assert.equal(enc({ ttlMs: 0 }).readUInt32BE(8), 0);
  for (const ttlMs of [codec.MAX_TTL_MS + 1, -1, 1.5, NaN, Infinity, undefined, "5", 2 ** 32]) {
    assert.throws(() => enc({ ttlMs }), /time to live must be 0..2592000000 ms/, String(ttlMs));
  }
  // The other fields are still checked when a time to live comes with them.
  assert.throws(() => enc({ ttlMs: 1 }, { priority: 10 }), RangeError);
  assert.throws(() => enc({ ttlMs: 1 }, undefined, { key: b8("") }), RangeError);
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
