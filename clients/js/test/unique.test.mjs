// Unique messages (protocol.md 18) against the real server: duplicates while the holder
// is ready, delayed or in flight, replace, the dedup window, the five STATS figures, the
// BMAXUNIQUEKEYS cap, truncation, and the checks made before anything is sent (an older
// version, a server that does not announce the feature, arguments that cannot be
// encoded, a reply a unique PUT cannot get).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as beuss from "beuss";
import { fakeServer, rejection, serverForFile, startServer, uniq, withFakeClients } from "./helpers/server.mjs";

let srv;
let c;
serverForFile((s, client) => {
  srv = s;
  c = client;
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const figures = async () => (await c.stats()).server;
const readyOf = async (q) => (await c.stats(q)).queues.get(q)?.get("ready") ?? 0n;

test("HELLO version 6 announces UNIQUE", () => {
  assert.equal(beuss.PROTOCOL_VERSION, 6);
  assert.equal(c.server.version, 6);
  assert.equal(beuss.Feature.UNIQUE, 0x80);
  assert.ok(c.server.has(beuss.Feature.UNIQUE));
});

test("a duplicate while the holder is ready is not stored, and is an answer, not an error", async () => {
  const q = uniq("dup");
  const first = await c.put(q, "first", { unique: "order-42" });
  assert.equal(typeof first.id, "bigint");
  assert.equal(first.duplicate, undefined);
  assert.equal(first.replaced, undefined);
  const again = await c.put(q, "second", { unique: "order-42" });
  assert.deepEqual(again, { truncated: false, id: first.id, duplicate: "ready" });
  // The same bytes given as a Uint8Array are the same key.
  assert.equal((await c.put(q, "third", { unique: new TextEncoder().encode("order-42") })).duplicate, "ready");
  // Keys belong to their queue, and another key is another message.
  const other = uniq("dup-other");
  assert.equal((await c.put(other, "x", { unique: "order-42" })).duplicate, undefined);
  assert.equal((await c.put(q, "y", { unique: "order-43" })).duplicate, undefined);
  assert.equal(c.closed, undefined, "the connection goes on");
  const got = await c.get(q, { max: 10 });
  assert.deepEqual(got.map((m) => m.text()), ["first", "y"]);
  await c.purge(other);
});

test("a duplicate while the holder is delayed; a put without a key is never refused", async () => {
  const q = uniq("delayed");
  const held = await c.put(q, "later", { unique: "k", delayMs: 60_000 });
  assert.deepEqual(await c.put(q, "now", { unique: "k" }), { truncated: false, id: held.id, duplicate: "delayed" });
  assert.equal((await c.put(q, "plain")).duplicate, undefined);
  assert.deepEqual((await c.get(q, { max: 10 })).map((m) => m.text()), ["plain"]);
  assert.equal(await c.purge(q), 1n, "the delayed holder was still there");
});

test("replace changes the waiting message's payload and priority, keeping its id", async () => {
  const q = uniq("replace");
  const a = await c.put(q, "price 10", { unique: "EURUSD", priority: 5 });
  const b = await c.put(q, "other", { priority: 3 });
  const r = await c.put(q, new Uint8Array([0x70, 0x20, 0x31, 0x32]), { unique: "EURUSD", replace: true, priority: 1 });
  assert.deepEqual(r, { truncated: false, id: a.id, replaced: true });
  assert.equal(await readyOf(q), 2n, "still two messages");
  // Priority 1 now comes before the priority-3 message put after it.
  const [m1, m2] = await c.peek(q, { max: 10 });
  assert.deepEqual([m1.id, m1.text(), m2.id], [a.id, "p 12", b.id]);
  const [got] = await c.get(q);
  assert.equal(got.text(), "p 12");
  // Taken by get(), the message left the queue and, with no window, its key with it.
  const after = await c.put(q, "price 13", { unique: "EURUSD", replace: true });
  assert.equal(after.replaced, undefined);
  assert.equal(after.duplicate, undefined);
  assert.ok(after.id > a.id, "a new message");
  await c.purge(q);
});

test("replacing a delayed message without a delay makes it ready now", async () => {
  const q = uniq("replace-delay");
  const a = await c.put(q, "in a minute", { unique: "job", delayMs: 60_000 });
  assert.deepEqual(await c.get(q), []);
  assert.equal((await c.put(q, "at once", { unique: "job", replace: true })).id, a.id);
  const [m] = await c.get(q, { withMeta: true });
  assert.equal(m.text(), "at once");
  assert.equal(m.id, a.id);
});

test("a duplicate while the holder is in flight, even with replace; the key is held again after a NACK", async () => {
  const q = uniq("inflight");
  const a = await c.put(q, "work", { unique: "job-7" });
  const [m] = await c.lease(q, { leaseMs: 60_000 });
  assert.equal(m.id, a.id);
  assert.deepEqual(await c.put(q, "again", { unique: "job-7" }), { truncated: false, id: a.id, duplicate: "inFlight" });
  // A message in flight is never replaced.
  assert.deepEqual(await c.put(q, "newer", { unique: "job-7", replace: true }), { truncated: false, id: a.id, duplicate: "inFlight" });
  assert.equal(await m.nack(), true);
  assert.equal((await c.put(q, "again", { unique: "job-7" })).duplicate, "ready", "back in the queue, it holds its key");
  const [m2] = await c.lease(q, { leaseMs: 60_000 });
  assert.equal(m2.text(), "work", "neither put changed it");
  assert.equal(await m2.ack(), true);
  // Acknowledged with no window: the key is free.
  const b = await c.put(q, "next", { unique: "job-7" });
  assert.equal(b.duplicate, undefined);
  assert.notEqual(b.id, a.id);
  await c.purge(q);
});

test("uniqueFor: a key is remembered for its window after its message was taken", async () => {
  const q = uniq("window");
  const a = await c.put(q, "send the mail", { unique: "mail-1", uniqueFor: 600_000 });
  const [m] = await c.get(q);
  assert.equal(m.text(), "send the mail");
  assert.equal(await readyOf(q), 0n);
  // Gone from the queue, but within the window: not stored, and not replaceable.
  assert.deepEqual(await c.put(q, "send it again", { unique: "mail-1", uniqueFor: 600_000 }), {
    truncated: false, id: a.id, duplicate: "gone",
  });
  assert.equal((await c.put(q, "replace?", { unique: "mail-1", replace: true })).duplicate, "gone");
  assert.equal(await readyOf(q), 0n, "nothing was stored");
  // Without a window the key goes with its message.
  await c.put(q, "no window", { unique: "mail-2" });
  await c.get(q);
  assert.equal((await c.put(q, "no window again", { unique: "mail-2" })).duplicate, undefined);
  await c.purge(q);
});

test("uniqueFor: once the window has passed the key is free again", async () => {
  const q = uniq("window-end");
  await c.put(q, "x", { unique: "short", uniqueFor: 150 });
  const taken = Date.now();
  await c.get(q);
  // Poll rather than sleep a fixed time: a slow machine may need longer, never less.
  let r;
  for (let i = 0; i < 100; i++) {
    r = await c.put(q, "y", { unique: "short", uniqueFor: 150 });
    if (r.duplicate === undefined) break;
    assert.equal(r.duplicate, "gone");
    await sleep(50);
  }
  assert.equal(r.duplicate, undefined, "stored once the window ended");
  assert.ok(Date.now() - taken >= 140, `free after ${Date.now() - taken} ms, before its 150 ms window`);
  await c.purge(q);
});

test("putMany with one key: the first is stored, the rest are its duplicates", async () => {
  const q = uniq("many");
  const rs = await c.putMany(q, ["a", "b", "c"], { unique: "once" });
  assert.equal(rs[0].duplicate, undefined);
  assert.deepEqual(rs.slice(1), [
    { truncated: false, id: rs[0].id, duplicate: "ready" },
    { truncated: false, id: rs[0].id, duplicate: "ready" },
  ]);
  assert.deepEqual((await c.get(q, { max: 10 })).map((m) => m.text()), ["a"]);
});

test("STATS: the five unique figures follow held, remembered, duplicate and replaced keys", async () => {
  const q = uniq("stats");
  const names = ["unique_keys", "unique_remembered", "unique_forgotten", "unique_duplicates", "unique_replaced"];
  const before = await figures();
  for (const n of names) assert.equal(typeof before.get(n), "bigint", n);
  await c.put(q, "a", { unique: "s1", uniqueFor: 600_000 });
  await c.put(q, "b", { unique: "s2" });
  await c.put(q, "a2", { unique: "s1" });
  await c.put(q, "b2", { unique: "s2", replace: true });
  const mid = await figures();
  const delta = (f, n) => f.get(n) - before.get(n);
  assert.deepEqual(names.map((n) => delta(mid, n)), [2n, 0n, 0n, 1n, 1n]);
  await c.get(q, { max: 10 });
  // s1 is remembered for its window; s2 had none and is forgotten at once, not counted.
  const end = await figures();
  assert.deepEqual(names.map((n) => delta(end, n)), [0n, 1n, 0n, 1n, 1n]);
});

test("BMAXUNIQUEKEYS: past the cap the key whose window ends first is forgotten, and counted", async () => {
  const small = await startServer({ BMAXUNIQUEKEYS: "1" });
  const s = await small.connect();
  try {
    const q = "capped";
    await s.put(q, "a", { unique: "first", uniqueFor: 60_000 });
    await s.put(q, "b", { unique: "second", uniqueFor: 600_000 });
    await s.get(q, { max: 10 });
    const st = (await s.stats()).server;
    assert.equal(st.get("unique_remembered"), 1n);
    assert.equal(st.get("unique_forgotten"), 1n);
    assert.equal((await s.put(q, "b", { unique: "second" })).duplicate, "gone");
    assert.equal((await s.put(q, "a", { unique: "first" })).duplicate, undefined, "forgotten early by the cap");
  } finally {
    await s.close();
    await small.stop();
  }
});

test("a unique put and a replace are truncated to max_message_size like any put", async () => {
  const small = await startServer({ BMAXMESSAGESIZE: "1K" });
  const s = await small.connect();
  try {
    const big = Buffer.alloc(3000, 0x61);
    const a = await s.put("t", big, { unique: "k" });
    assert.deepEqual(a, { truncated: true, originalLength: 3000, storedLength: 1024, id: a.id });
    const r = await s.put("t", Buffer.alloc(2000, 0x62), { unique: "k", replace: true });
    assert.deepEqual(r, { truncated: true, originalLength: 2000, storedLength: 1024, id: a.id, replaced: true });
    const [m] = await s.get("t");
    assert.deepEqual(m.data, Buffer.alloc(1024, 0x62));
  } finally {
    await s.close();
    await small.stop();
  }
});

test("arguments that cannot be encoded throw RangeError before anything is sent", async () => {
  const q = uniq("args");
  const bad = [
    { unique: "" },
    { unique: new Uint8Array(0) },
    { unique: "k".repeat(256) },
    { unique: "é".repeat(128) }, // 256 bytes of UTF-8
    { unique: 42 },
    { unique: "k", uniqueFor: -1 },
    { unique: "k", uniqueFor: NaN },
    { unique: "k", uniqueFor: Infinity },
    { unique: "k", uniqueFor: beuss.MAX_UNIQUE_WINDOW_MS + 1 },
    { unique: "k", uniqueFor: beuss.MAX_UNIQUE_WINDOW_MS + 0.5 }, // rounded up: one ms over
    { unique: "k", priority: 10 },
    { replace: true },
    { uniqueFor: 1000 },
  ];
  for (const o of bad) assert.throws(() => c.put(q, "x", o), RangeError, JSON.stringify(o));
  assert.equal(c.inFlight, 0);
  await c.ping();
  // The limits themselves are accepted by the server.
  const edge = await c.put(q, "x", { unique: "k".repeat(255), uniqueFor: beuss.MAX_UNIQUE_WINDOW_MS });
  assert.equal(edge.duplicate, undefined);
  assert.equal((await c.put(q, "x", { unique: "k", uniqueFor: 0.2 })).duplicate, undefined);
  assert.equal((await c.put(q, "x", { unique: "n", replace: false })).duplicate, undefined);
  assert.equal(c.closed, undefined);
  await c.purge(q);
});

test("on a version-5 connection a unique put is refused client-side; other puts go on", async () => {
  const v5 = await srv.connect({ version: 5 });
  try {
    assert.equal(v5.server.version, 5);
    assert.equal(v5.server.has(beuss.Feature.UNIQUE), false, "the bit comes only with version 6");
    assert.throws(() => v5.put("q5", "x", { unique: "k" }), (e) => e instanceof beuss.UnsupportedError && /version 6/.test(e.message));
    await assert.rejects(v5.putMany("q5", ["x"], { unique: "k", replace: true }), beuss.UnsupportedError);
    assert.throws(() => v5.put("q5", "x", { replace: true }), RangeError);
    assert.equal(typeof (await v5.put("q5", "x", { priority: 1 })).id, "bigint");
    assert.equal(await v5.purge("q5"), 1n);
  } finally {
    await v5.close();
  }
});

test("a version-6 server that does not announce UNIQUE: refused client-side", async () => {
  const fake = await fakeServer(0x7f & ~beuss.Feature.AUTH_REQUIRED);
  await withFakeClients(fake, async (open) => {
    const f = await open();
    assert.equal(f.server.version, 6);
    assert.equal(f.server.has(beuss.Feature.UNIQUE), false);
    assert.throws(() => f.put("q", "x", { unique: "k" }), (e) => e instanceof beuss.UnsupportedError && /0x80/.test(e.message));
    await f.ping();
    assert.deepEqual(fake.seen, [0x01, 0x02], "only HELLO and PING were sent");
  });
});

test("the frames a unique put sends; a reply it cannot get closes the connection with ProtocolError", async () => {
  // REPLACED to a put that did not ask to replace; then a DUPLICATE with state 9.
  const replies = [Buffer.from("000000115500000000000000010000000300000003", "hex"), Buffer.from("0000000a54000000000000000109", "hex")];
  const puts = [];
  const fake = await fakeServer(0xdf, (op, frame) => {
    if (op !== 0x10) return undefined;
    puts.push(Buffer.from(frame));
    return replies.shift();
  });
  const cases = [
    // No delay or priority asked for: the key fields alone (flag 0x04) bring the id.
    ["REPLACED to a refusing put", { unique: "k", uniqueFor: 1.5 }, undefined, { key: Buffer.from("k"), windowMs: 2 }],
    ["an unknown DUPLICATE state", { unique: "k", priority: 2 }, { priority: 2 }, { key: Buffer.from("k") }],
  ];
  await withFakeClients(fake, async (open) => {
    for (const [what, options, wantOptions, wantKey] of cases) {
      const f = await open();
      assert.ok(f.server.has(beuss.Feature.UNIQUE));
      const e = await rejection(f.put("q", "x", options), what);
      assert.ok(e instanceof beuss.ProtocolError, `${what}: ${e}`);
      assert.ok(f.closed instanceof beuss.ProtocolError, what);
      assert.deepEqual(puts.shift(), beuss.codec.encodePut(Buffer.from("q"), Buffer.from("x"), wantOptions, wantKey), what);
    }
  });
});
