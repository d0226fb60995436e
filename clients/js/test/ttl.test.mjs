// Message expiry (protocol.md 19) against the real server: a message not delivered
// within its time to live is dropped or dead-lettered, never delivered; delayed, keyed
// and replaced messages; a lease outliving the time to live; a queue's default
// (BQUEUETTL) and ttlMs 0 opting out of it; the expired and expiring STATS figures;
// truncation; and the checks made before anything is sent (an older version, a server
// that does not announce the feature, arguments that cannot be encoded, a reply a put
// with a time to live cannot get).
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
const figures = async (client = c) => (await client.stats()).server;
const queueFigure = async (q, name, client = c) => (await client.stats(q)).queues.get(q)?.get(name) ?? 0n;
const texts = (ms) => ms.map((m) => m.text());

/**
 * Polls the server's `expired` figure until it is `n` more than in `before` (a STATS
 * snapshot), for at most 5 s: the server expires on its own clock, and a slow machine
 * may need longer than the time to live, never less. Resolves the figures then.
 */
async function expiredSince(before, n, client = c) {
  let now;
  for (let i = 0; i < 200; i++) {
    now = await figures(client);
    if (now.get("expired") - before.get("expired") >= n) break;
    await sleep(25);
  }
  assert.equal(now.get("expired") - before.get("expired"), BigInt(n), "expired within 5 s, and no more");
  return now;
}

test("HELLO version 6 announces TTL", () => {
  assert.equal(c.server.version, 6);
  assert.equal(beuss.Feature.TTL, 0x100);
  assert.ok(c.server.has(beuss.Feature.TTL));
  assert.equal(beuss.MAX_TTL_MS, 2592000000);
});

test("a message not delivered within its time to live is dropped and never delivered", async () => {
  const q = uniq("drop");
  const before = await figures();
  const start = Date.now();
  const old = await c.put(q, "old", { ttlMs: 200 });
  const fresh = await c.put(q, "fresh", { ttlMs: 600_000 });
  // Answered as a put with options: STORED with the id.
  assert.deepEqual(old, { truncated: false, id: old.id });
  assert.equal(typeof old.id, "bigint");
  assert.ok(fresh.id > old.id);
  assert.equal((await figures()).get("expiring") - before.get("expiring"), 2n);
  const after = await expiredSince(before, 1);
  assert.ok(Date.now() - start >= 195, `expired after ${Date.now() - start} ms, before its 200 ms`);
  assert.equal(after.get("expiring") - before.get("expiring"), 1n, "the fresh one still has its time to live");
  assert.equal(await queueFigure(q, "expired"), 1n);
  assert.equal(await queueFigure(q, "dead_lettered"), 0n);
  assert.deepEqual(texts(await c.get(q, { max: 10 })), ["fresh"]);
  assert.deepEqual(await c.get(q), [], "the expired one is never delivered");
  assert.deepEqual(await c.peek(`${q}.dead`), [], "dropped, not dead-lettered");
  assert.equal((await figures()).get("expiring") - before.get("expiring"), 0n);
});

test("ttlDeadLetter: an expired message goes to <queue>.dead with its id and priority, without a time to live", async () => {
  const q = uniq("dead");
  const before = await figures();
  const low = await c.put(q, "low", { ttlMs: 200, ttlDeadLetter: true, priority: 7 });
  const high = await c.put(q, "high", { ttlMs: 250, ttlDeadLetter: true, priority: 1 });
  await expiredSince(before, 2);
  assert.deepEqual(await c.get(q), []);
  // "low" expired first, yet "high" comes first: they kept their priorities.
  const dead = await c.peek(`${q}.dead`, { max: 10 });
  assert.deepEqual(dead.map((m) => [m.id, m.text()]), [[high.id, "high"], [low.id, "low"]]);
  assert.equal(await queueFigure(q, "expired"), 2n);
  assert.equal(await queueFigure(q, "dead_lettered"), 2n);
  const now = await figures();
  assert.equal(now.get("dead_lettered") - before.get("dead_lettered"), 2n);
  assert.equal(now.get("expiring") - before.get("expiring"), 0n, "a dead letter waits for a person");
  assert.equal(await c.purge(`${q}.dead`), 2n);
});

test("a delayed message expires without ever becoming ready", async () => {
  const q = uniq("delayed");
  const before = await figures();
  await c.put(q, "in a minute, if still wanted", { delayMs: 60_000, ttlMs: 200 });
  await c.put(q, "in a minute", { delayMs: 60_000, ttlMs: 600_000 });
  assert.equal(await queueFigure(q, "delayed"), 2n);
  await expiredSince(before, 1);
  assert.equal(await queueFigure(q, "delayed"), 1n);
  assert.equal(await queueFigure(q, "expired"), 1n);
  assert.equal(await c.purge(q), 1n);
});

test("with a unique key: the key is held until the message expires, then free again", async () => {
  const q = uniq("keyed");
  const before = await figures();
  const a = await c.put(q, "first", { unique: "order-42", ttlMs: 300 });
  assert.deepEqual(a, { truncated: false, id: a.id });
  assert.deepEqual(await c.put(q, "again", { unique: "order-42" }), { truncated: false, id: a.id, duplicate: "ready" });
  await expiredSince(before, 1);
  const b = await c.put(q, "after", { unique: "order-42", ttlMs: 600_000, ttlDeadLetter: true, priority: 1 });
  assert.equal(b.duplicate, undefined, "the expired message released its key");
  assert.ok(b.id > a.id);
  assert.deepEqual(texts(await c.get(q, { max: 10 })), ["after"]);
});

test("a replace gives the waiting message this put's time to live, or none", async () => {
  const q = uniq("replace");
  const before = await figures();
  // Given a time to live by the replace: it expires.
  const a = await c.put(q, "forever", { unique: "a" });
  assert.equal((await c.put(q, "brief", { unique: "a", replace: true, ttlMs: 200 })).replaced, true);
  // Losing its time to live by the replace: it stays, though its first one ends
  // before the marker's, put after it.
  const b = await c.put(q, "brief", { unique: "b", ttlMs: 200 });
  assert.deepEqual(await c.put(q, "kept", { unique: "b", replace: true }), { truncated: false, id: b.id, replaced: true });
  await c.put(q, "marker", { ttlMs: 250 });
  await expiredSince(before, 2);
  const left = await c.peek(q, { max: 10 });
  assert.deepEqual(left.map((m) => [m.id, m.text()]), [[b.id, "kept"]]);
  assert.notEqual(a.id, b.id);
  assert.equal(await c.purge(q), 1n);
});

test("a lease outlives the time to live: an ack deletes as usual, a nack expires the message", async () => {
  const q = uniq("leased");
  const before = await figures();
  await c.putMany(q, ["a", "b"], { ttlMs: 150 });
  const got = await c.lease(q, { max: 2, leaseMs: 30_000 });
  assert.deepEqual(texts(got), ["a", "b"]);
  // Past the time to live (nothing to poll for: the point is that nothing happens).
  await sleep(300);
  assert.equal((await figures()).get("expired") - before.get("expired"), 0n, "in flight, left to its lease");
  assert.equal(await got[0].touch(), true);
  assert.equal(await got[0].ack(), true);
  assert.equal(await got[1].nack(), true);
  await expiredSince(before, 1);
  assert.deepEqual(await c.lease(q, { leaseMs: 30_000 }), [], "not given out again");
  assert.equal(await queueFigure(q, "expired"), 1n);
});

test("MOVE takes a message without its time to live", async () => {
  const q = uniq("move-from");
  const to = uniq("move-to");
  const before = await figures();
  await c.put(q, "moved", { ttlMs: 200 });
  assert.equal(await c.move(q, to), 1n);
  await c.put(q, "marker", { ttlMs: 250 });
  await expiredSince(before, 1);
  assert.deepEqual(texts(await c.get(to, { max: 10 })), ["moved"]);
  assert.deepEqual(await c.get(q), []);
});

test("putMany gives every message the time to live", async () => {
  const q = uniq("many");
  const before = await figures();
  const rs = await c.putMany(q, ["a", "b", "c"], { ttlMs: 200 });
  assert.equal(rs.length, 3);
  for (const r of rs) assert.deepEqual(r, { truncated: false, id: r.id });
  assert.equal((await figures()).get("expiring") - before.get("expiring"), 3n);
  await expiredSince(before, 3);
  assert.deepEqual(await c.get(q, { max: 10 }), []);
});

test("STATS expiring counts the messages that have a time to live now", async () => {
  const q = uniq("expiring");
  const before = await figures();
  const delta = async () => (await figures()).get("expiring") - before.get("expiring");
  await c.putMany(q, ["a", "b", "c"], { ttlMs: 600_000 });
  await c.put(q, "never", { ttlMs: 0 });
  await c.put(q, "plain");
  await c.put(q, "options", { priority: 9 });
  assert.equal(await delta(), 3n, "ttlMs 0, and no ttlMs without a queue default, give none");
  const [m] = await c.lease(q, { leaseMs: 60_000 });
  assert.equal(m.text(), "a");
  assert.equal(await delta(), 3n, "in flight, it still has its time to live");
  assert.equal(await m.ack(), true);
  assert.equal(await delta(), 2n);
  assert.equal(await c.purge(q), 5n);
  assert.equal(await delta(), 0n);
  assert.equal((await figures()).get("expired"), before.get("expired"), "acked and purged are not expired");
});

test("BQUEUETTL: the queue's default applies to puts without ttlMs; ttlMs 0 opts out", async () => {
  const withDefault = await startServer({ BQUEUETTL: "cache=200ms" });
  const s = await withDefault.connect();
  try {
    const before = await figures(s);
    assert.equal(before.get("expired"), 0n);
    await s.put("cache", "dropped");
    await s.put("cache", "with options", { priority: 5 });
    await s.put("cache", "keyed", { unique: "k" });
    await s.put("cache", "kept", { ttlMs: 0 });
    await s.put("cache", "longer", { ttlMs: 600_000 });
    await s.put("other", "not this queue");
    assert.equal((await figures(s)).get("expiring"), 4n, "the three by default and the longer one");
    await expiredSince(before, 3, s);
    assert.deepEqual(texts(await s.get("cache", { max: 10 })), ["kept", "longer"]);
    assert.deepEqual(texts(await s.get("other", { max: 10 })), ["not this queue"]);
    assert.deepEqual(await s.peek("cache.dead"), [], "expired by the default, a message is dropped");
    assert.equal((await figures(s)).get("expiring"), 0n);
    // The key of a message expired by the default is free again.
    assert.equal((await s.put("cache", "keyed", { unique: "k", ttlMs: 0 })).duplicate, undefined);
  } finally {
    await s.close();
    await withDefault.stop();
  }
});

test("a put with a time to live is truncated to max_message_size like any put", async () => {
  const small = await startServer({ BMAXMESSAGESIZE: "1K" });
  const s = await small.connect();
  try {
    const r = await s.put("t", Buffer.alloc(3000, 0x61), { ttlMs: 600_000 });
    assert.deepEqual(r, { truncated: true, originalLength: 3000, storedLength: 1024, id: r.id });
    assert.equal(typeof r.id, "bigint");
    const [m] = await s.get("t");
    assert.deepEqual(m.data, Buffer.alloc(1024, 0x61));
  } finally {
    await s.close();
    await small.stop();
  }
});

test("arguments that cannot be encoded throw RangeError before anything is sent", async () => {
  const q = uniq("args");
  const bad = [
    { ttlMs: -1 },
    { ttlMs: NaN },
    { ttlMs: Infinity },
    { ttlMs: "1000" },
    { ttlMs: null },
    { ttlMs: beuss.MAX_TTL_MS + 1 },
    { ttlMs: beuss.MAX_TTL_MS + 0.5 }, // rounded up: one ms over
    { ttlDeadLetter: true },
    { ttlDeadLetter: true, unique: "k" },
    { ttlMs: 1000, priority: 10 },
    { ttlMs: 1000, unique: "" },
  ];
  for (const o of bad) assert.throws(() => c.put(q, "x", o), RangeError, JSON.stringify(o));
  await assert.rejects(c.putMany(q, ["x"], { ttlDeadLetter: true }), RangeError);
  assert.equal(c.inFlight, 0);
  await c.ping();
  // The limits themselves are accepted by the server.
  const before = await figures();
  assert.equal(typeof (await c.put(q, "x", { ttlMs: beuss.MAX_TTL_MS, ttlDeadLetter: false })).id, "bigint");
  assert.equal(typeof (await c.put(q, "x", { ttlMs: 0, ttlDeadLetter: true })).id, "bigint");
  assert.equal(typeof (await c.put(q, "x", { ttlDeadLetter: false })).id, "bigint");
  // 0.2 ms is rounded up to 1, not down to 0 ("never expires"): it expires.
  await c.put(q, "x", { ttlMs: 0.2 });
  await expiredSince(before, 1);
  assert.equal(c.closed, undefined);
  assert.equal(await c.purge(q), 3n);
});

test("on a version-5 connection a put with a time to live is refused client-side; other puts go on", async () => {
  const v5 = await srv.connect({ version: 5 });
  try {
    assert.equal(v5.server.version, 5);
    assert.equal(v5.server.has(beuss.Feature.TTL), false, "the bit comes only with version 6");
    assert.throws(() => v5.put("q5", "x", { ttlMs: 1000 }), (e) => e instanceof beuss.UnsupportedError && /version 6/.test(e.message));
    assert.throws(() => v5.put("q5", "x", { ttlMs: 0 }), beuss.UnsupportedError);
    await assert.rejects(v5.putMany("q5", ["x"], { ttlMs: 1000, ttlDeadLetter: true }), beuss.UnsupportedError);
    assert.throws(() => v5.put("q5", "x", { ttlDeadLetter: true }), RangeError);
    assert.equal(typeof (await v5.put("q5", "x", { priority: 1 })).id, "bigint");
    assert.equal(await v5.purge("q5"), 1n);
  } finally {
    await v5.close();
  }
});

test("a version-6 server that does not announce TTL: refused client-side, with or without a key", async () => {
  // Everything of version 6 but TTL (and AUTH_REQUIRED): UNIQUE is there.
  const fake = await fakeServer(0xff & ~beuss.Feature.AUTH_REQUIRED);
  await withFakeClients(fake, async (open) => {
    const f = await open();
    assert.equal(f.server.version, 6);
    assert.ok(f.server.has(beuss.Feature.UNIQUE));
    assert.equal(f.server.has(beuss.Feature.TTL), false);
    assert.throws(() => f.put("q", "x", { ttlMs: 1000 }), (e) => e instanceof beuss.UnsupportedError && /0x100/.test(e.message));
    assert.throws(() => f.put("q", "x", { ttlMs: 0, unique: "k" }), beuss.UnsupportedError);
    await f.ping();
    assert.deepEqual(fake.seen, [0x01, 0x02], "only HELLO and PING were sent");
  });
});

test("the frames a put with a time to live sends, for flags 0x08, 0x09, 0x0C and 0x0D", async () => {
  const puts = [];
  let id = 0n;
  const fake = await fakeServer(0x1df, (op, frame) => {
    if (op !== 0x10) return undefined;
    puts.push(Buffer.from(frame));
    const stored = Buffer.from("00000009100000000000000000", "hex");
    stored.writeBigUInt64BE(++id, 5);
    return stored;
  });
  const k = Buffer.from("k");
  const cases = [
    // No delay or priority asked for: the TTL fields alone (flag 0x08) bring the id.
    [0x08, { ttlMs: 5000 }, undefined, undefined, { ttlMs: 5000, deadLetter: false }],
    [0x09, { ttlMs: 1.5, ttlDeadLetter: true, priority: 2 }, { priority: 2 }, undefined, { ttlMs: 2, deadLetter: true }],
    [0x0c, { ttlMs: 0, unique: "k", uniqueFor: 10 }, undefined, { key: k, windowMs: 10 }, { ttlMs: 0 }],
    [
      0x0d,
      { ttlMs: 100, ttlDeadLetter: true, unique: "k", replace: true, delayMs: 7 },
      { delayMs: 7 },
      { key: k, replace: true },
      { ttlMs: 100, deadLetter: true },
    ],
  ];
  await withFakeClients(fake, async (open) => {
    const f = await open();
    assert.ok(f.server.has(beuss.Feature.TTL));
    for (const [flags, options, wantOptions, wantKey, wantTtl] of cases) {
      const r = await f.put("q", "x", options);
      assert.deepEqual(r, { truncated: false, id });
      const sent = puts.shift();
      assert.equal(sent[5], flags, JSON.stringify(options));
      const want = beuss.codec.encodePut(Buffer.from("q"), Buffer.from("x"), wantOptions, wantKey, wantTtl);
      assert.deepEqual(sent, want, JSON.stringify(options));
    }
  });
});

test("a DUPLICATE or REPLACED answering a put with a time to live and no key closes the connection with ProtocolError", async () => {
  const replies = [Buffer.from("0000000a54000000000000000101", "hex"), Buffer.from("000000115500000000000000010000000100000001", "hex")];
  const fake = await fakeServer(0x1df, (op) => (op === 0x10 ? replies.shift() : undefined));
  await withFakeClients(fake, async (open) => {
    for (const what of ["DUPLICATE", "REPLACED"]) {
      const f = await open();
      const e = await rejection(f.put("q", "x", { ttlMs: 1000 }), what);
      assert.ok(e instanceof beuss.ProtocolError, `${what}: ${e}`);
      assert.ok(f.closed instanceof beuss.ProtocolError, what);
    }
  });
});
