// Every operation against the real beuss-server (started per file on a free port).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as beuss from "beuss";
import { serverForFile, uniq } from "./helpers/server.mjs";

const { codec } = beuss;
let srv;
let c;
serverForFile((s, client) => {
  srv = s;
  c = client;
});

test("HELLO negotiates version 6 and announces the features", () => {
  assert.equal(c.server.version, 6);
  assert.ok(
    c.server.has(
      beuss.Feature.LEASES | beuss.Feature.PUT_OPTIONS | beuss.Feature.FANOUT | beuss.Feature.SCHEDULES | beuss.Feature.UNIQUE | beuss.Feature.TTL,
    ),
  );
  assert.equal(c.server.maxMessageSize, 1048576);
  assert.equal(c.server.defaultLeaseMs, 30000);
});

test("connect() takes BHOST/BPORT and 'host:port' strings", async () => {
  const saved = { h: process.env.BHOST, p: process.env.BPORT };
  process.env.BHOST = srv.host;
  process.env.BPORT = String(srv.port);
  try {
    const a = await beuss.connect();
    await a.ping();
    await a.quit();
  } finally {
    if (saved.h === undefined) delete process.env.BHOST;
    else process.env.BHOST = saved.h;
    if (saved.p === undefined) delete process.env.BPORT;
    else process.env.BPORT = saved.p;
  }
  const b = await beuss.connect(`${srv.host}:${srv.port}`);
  await b.ping();
  await b.close();
});

test("PUT then GET: bigint ids, Uint8Array payloads with text() and json()", async () => {
  const q = uniq();
  const r1 = await c.put(q, "hello");
  const r2 = await c.put(q, new TextEncoder().encode(JSON.stringify({ a: 1 })));
  assert.equal(typeof r1.id, "bigint");
  assert.ok(r2.id > r1.id);
  assert.equal(r1.truncated, false);
  const [m] = await c.get(q);
  assert.ok(m.data instanceof Uint8Array);
  assert.equal(m.text(), "hello");
  assert.deepEqual((await c.getOne(q)).json(), { a: 1 });
  assert.equal(await c.getOne(q), null);
  assert.deepEqual(await c.get(q, { max: 5 }), []);
});

test("batches: putMany is pipelined, get max>1 returns them in order", async () => {
  const q = uniq();
  const payloads = Array.from({ length: 500 }, (_, i) => `m${i}`);
  const rs = await c.putMany(q, payloads);
  assert.equal(rs.length, 500);
  for (let i = 1; i < rs.length; i++) assert.ok(rs[i].id > rs[i - 1].id);
  const ms = await c.get(q, { max: 1000 });
  assert.deepEqual(ms.map((m) => m.text()), payloads);
});

test("pipelining: many requests in flight, answered in order", async () => {
  const q = uniq();
  const ps = [];
  for (let i = 0; i < 200; i++) {
    ps.push(c.put(q, String(i)));
    if (i % 50 === 49) ps.push(c.get(q, { max: 50 }));
  }
  const out = await Promise.all(ps);
  const got = out.filter(Array.isArray).flat().map((m) => m.text());
  assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => String(i)));
});

test("a waiting GET is answered by a later PUT from another client", async () => {
  const q = uniq();
  const other = await srv.connect();
  const waiting = c.get(q, { waitMs: 10_000 });
  // The GET is parked once the server counts a waiter on the queue.
  for (;;) {
    const s = await other.stats(q);
    if (s.queues.get(q)?.get("waiters") === 1n) break;
  }
  await other.put(q, "late");
  const [m] = await waiting;
  assert.equal(m.text(), "late");
  await other.close();
});

test("the socket timeout is derived from the wait asked for", async () => {
  // A margin far below the wait: the GET must still be allowed its whole wait.
  const short = await srv.connect({ timeoutMs: 50 });
  assert.deepEqual(await short.get(uniq(), { waitMs: 300 }), []);
  await short.ping();
  await short.close();
});

test("purge drops every message and says how many", async () => {
  const q = uniq();
  await c.putMany(q, ["a", "b", "c"]);
  assert.equal(await c.purge(q), 3n);
  assert.equal(await c.purge(q), 0n);
});

test("stats: server and queue figures as maps of bigint", async () => {
  const q = uniq();
  await c.putMany(q, ["a", "b"]);
  const s = await c.stats(q);
  assert.ok(s.server.get("messages") >= 2n);
  assert.equal(typeof s.server.get("uptime_seconds"), "bigint");
  assert.equal(s.queues.size, 1);
  assert.equal(s.queues.get(q).get("ready"), 2n);
  const all = await c.stats();
  assert.ok(all.queues.has(q));
  assert.equal((await c.stats(uniq())).queues.size, 0);
  await c.purge(q);
});

test("delays and priority", async () => {
  const q = uniq();
  await c.put(q, "later", { delayMs: 200 });
  await c.put(q, "p9", { priority: 9 });
  await c.put(q, "p5");
  await c.put(q, "p0", { priority: 0 });
  assert.deepEqual((await c.get(q, { max: 10 })).map((m) => m.text()), ["p0", "p5", "p9"]);
  const [m] = await c.get(q, { waitMs: 5000 });
  assert.equal(m.text(), "later");
});

test("leases: ack, touch, nack with delay, settle twice is a no-op", async () => {
  const q = uniq();
  const { id } = await c.put(q, "job");
  const [m] = await c.lease(q, { leaseMs: 30_000 });
  assert.ok(m instanceof beuss.LeasedMessage);
  assert.equal(m.id, id);
  assert.equal(m.attempt, 1);
  assert.equal(await m.touch(), true);
  assert.equal(await m.nack({ delayMs: 50 }), true);
  assert.equal(await m.ack(), false, "second settle is a no-op");
  assert.equal(await m.touch(), false);
  const [again] = await c.lease(q, { waitMs: 5000 });
  assert.equal(again.id, id);
  assert.equal(again.attempt, 2);
  assert.equal(await again.ack(), true);
  assert.equal(again.result, "ok");
  assert.deepEqual(await c.ack(q, [again]), ["not_found"]);
  assert.deepEqual(await c.get(q), []);
});

test("many acks made in one tick go out as one ACK frame", async () => {
  const q = uniq();
  await c.putMany(q, Array.from({ length: 300 }, (_, i) => String(i)));
  const ms = await c.lease(q, { max: 300 });
  assert.equal(ms.length, 300);
  const before = (await c.stats(q)).queues.get(q);
  const rs = await Promise.all(ms.map((m) => m.ack()));
  assert.ok(rs.every(Boolean));
  const s = (await c.stats(q)).queues.get(q);
  assert.equal(s.get("acks") - before.get("acks"), 300n);
  assert.equal(s.get("messages"), 0n);
});

test("a settle after the lease expired answers stale, never acks the new delivery", async () => {
  const q = uniq();
  await c.put(q, "x");
  const [old] = await c.lease(q, { leaseMs: 50 });
  // Parks until the expired lease returns the message.
  const [fresh] = await c.lease(q, { waitMs: 10_000, leaseMs: 30_000 });
  assert.equal(fresh.attempt, old.attempt + 1);
  assert.equal(await old.ack(), false);
  assert.equal(old.result, "stale");
  assert.equal(await fresh.ack(), true);
});

test("after reconnect(), messages leased before are stale", async () => {
  const q = uniq();
  const a = await srv.connect();
  await a.put(q, "x");
  const [old] = await a.lease(q, { leaseMs: 30_000 });
  await a.reconnect();
  // The server returned the message when the old connection closed.
  const [fresh] = await a.lease(q, { waitMs: 10_000 });
  assert.equal(fresh.attempt, 2);
  assert.equal(await old.ack(), false);
  assert.equal(old.result, "stale");
  assert.equal(await fresh.ack(), true);
  await a.close();
});

test("a request in flight when the connection drops fails with ConnectionError and is not replayed", async () => {
  const q = uniq();
  const a = await srv.connect();
  const parked = a.get(q, { waitMs: 60_000 });
  a.destroy();
  await assert.rejects(parked, beuss.ConnectionError);
  await assert.rejects(a.ping(), beuss.ConnectionError);
  const r = beuss.reconnecting({ host: srv.host, port: srv.port });
  const got = await r.run((cl) => cl.put(q, "once"));
  assert.equal(typeof got.id, "bigint");
  await r.close();
  assert.deepEqual((await c.get(q, { max: 10 })).map((m) => m.text()), ["once"]);
});

test("dead letters: max deliveries and nack dead; peek and move", async () => {
  const q = uniq();
  await c.putMany(q, ["a", "b"]);
  const [a] = await c.lease(q, { maxDeliveries: 1 });
  assert.equal(await a.nack(), true); // charged: 1 of 1 -> dead
  const [b] = await c.lease(q);
  assert.equal(await b.nack({ dead: true }), true);
  const dead = await c.peek(`${q}.dead`, { max: 10 });
  assert.deepEqual(dead.map((m) => [m.text(), m.attempt]), [["a", 1], ["b", 1]]);
  assert.equal((await c.stats(q)).queues.get(q).get("dead"), 2n);
  assert.equal(await c.move(`${q}.dead`, q), 2n);
  assert.deepEqual((await c.get(q, { max: 10 })).map((m) => m.text()), ["a", "b"]);
});

test("nack count=false gives a message back without charging it", async () => {
  const q = uniq();
  await c.put(q, "x");
  const [m] = await c.lease(q, { maxDeliveries: 1 });
  assert.equal(await m.nack({ count: false }), true);
  const [m2] = await c.lease(q, { maxDeliveries: 1 });
  assert.equal(m2.attempt, 2, "not dead-lettered: that delivery was not charged");
  await m2.ack();
});

test("publish and bind: one copy per bound queue; unbind", async () => {
  const a = uniq("audit");
  const b = uniq("all");
  assert.equal(await c.bind("orders.*.created", a), true);
  assert.equal(await c.bind("orders.*.created", a), false);
  assert.equal(await c.bind("orders.>", b), true);
  const r = await c.publish("orders.eu.created", "hi");
  assert.equal(r.queues, 2);
  assert.equal(r.acked, 0);
  assert.equal((await c.getOne(a)).text(), "hi");
  assert.equal((await c.getOne(b)).text(), "hi");
  assert.equal(await c.unbind("orders.*.created", a), true);
  assert.equal(await c.unbind("orders.*.created", a), false);
  assert.equal(await c.unbind("orders.>", b), true);
  assert.equal((await c.publish("orders.eu.created", "x")).queues, 0);
});

test("WITH_META: get, lease and peek carry subject, id, attempt and replyTo", async () => {
  const q = uniq();
  await c.bind("meta.test", q);
  await c.publish("meta.test", "one");
  const [p] = await c.peek(q, { withMeta: true });
  assert.equal(p.subject, "meta.test");
  const [l] = await c.lease(q, { withMeta: true });
  assert.equal(l.subject, "meta.test");
  assert.equal(l.attempt, 1);
  await l.nack({ count: false });
  const [g] = await c.get(q, { withMeta: true });
  assert.equal(g.subject, "meta.test");
  assert.equal(typeof g.id, "bigint");
  assert.equal(g.attempt, 1);
  assert.equal(g.replyTo, undefined);
  // A REQ's copy in a queue carries its reply address.
  const requester = await srv.connect();
  const pending = requester.request("meta.test", "ping?", { timeoutMs: 10_000 });
  const [w] = await c.get(q, { withMeta: true, waitMs: 10_000 });
  assert.equal(typeof w.replyTo, "bigint");
  assert.equal(await c.reply(w.replyTo, "pong"), true);
  assert.equal((await pending).text(), "pong");
  await c.unbind("meta.test", q);
  await requester.close();
});

test("subscribe: events are async iterables, routed apart from replies", async () => {
  const sub = await c.subscribe("news.>");
  const pub = await srv.connect();
  // Requests on the subscriber's own connection while events arrive.
  const r = await Promise.all([pub.publish("news.a", "1"), c.ping(), pub.publish("news.b", "2"), c.publish("news.c", "3")]);
  assert.equal(r[0].subscribers, 1);
  const got = [];
  for await (const e of sub) {
    assert.ok(e instanceof beuss.Event);
    assert.equal(e.sid, sub.sid);
    got.push([e.subject, e.text()]);
    if (got.length === 3) break; // leaving the loop unsubscribes
  }
  assert.deepEqual(got, [["news.a", "1"], ["news.b", "2"], ["news.c", "3"]]);
  assert.equal((await pub.publish("news.d", "4")).subscribers, 0);
  assert.equal(await c.unsubscribe(sub.sid), false);
  await pub.close();
});

test("request/reply through a subscription; no responders; timeout", async () => {
  const responder = await srv.connect();
  const sub = await responder.subscribe("svc.*");
  const serving = (async () => {
    for await (const e of sub) await e.respond(`re:${e.text()}`);
  })();
  const r = await c.request("svc.time", "now?", { timeoutMs: 10_000 });
  assert.equal(r.text(), "re:now?");
  await assert.rejects(c.request("nobody.home", "x"), beuss.NoRespondersError);
  await c.ping(); // not fatal
  const silent = await responder.subscribe("quiet.*");
  await assert.rejects(c.request("quiet.x", "x", { timeoutMs: 100 }), beuss.RequestTimeoutError);
  await silent.unsubscribe();
  await sub.unsubscribe();
  await serving;
  await responder.close();
});

test("publish with confirm: resolves once the copy is taken; too few copies", async () => {
  const q = uniq();
  await c.bind("conf.x", q);
  const pub = await srv.connect();
  const pending = pub.publish("conf.x", "hi", { confirm: 1, timeoutMs: 10_000 });
  const [m] = await c.lease(q, { waitMs: 10_000 });
  await m.ack();
  const r = await pending;
  assert.equal(r.acked, 1);
  assert.equal(r.queues, 1);
  await assert.rejects(pub.publish("conf.x", "hi", { confirm: 2 }), beuss.TooFewCopiesError);
  await pub.ping();
  await c.unbind("conf.x", q);
  await pub.close();
});

test("bad names: client-side RangeError; server BadQueueNameError / BadSubjectError are fatal", async () => {
  await assert.rejects(async () => c.put("", "x"), RangeError);
  await assert.rejects(async () => c.get("x".repeat(256)), RangeError);
  const a = await srv.connect();
  const bad = a.raw(codec.encodePut(Buffer.from([0xff, 0xfe]), Buffer.from("x")));
  const behind = a.ping();
  const e = await bad.catch((x) => x);
  assert.ok(e instanceof beuss.BadQueueNameError, String(e));
  assert.equal(e.fatal, true);
  assert.equal(e.code, beuss.ErrorCode.BAD_QUEUE_NAME);
  const e2 = await behind.catch((x) => x);
  assert.ok(e2 instanceof beuss.ConnectionError);
  assert.equal(e2.notCarriedOut, true);
  assert.ok(a.closed);
  const b = await srv.connect();
  await assert.rejects(b.subscribe("a..b"), beuss.BadSubjectError);
  await assert.rejects(b.ping(), beuss.ConnectionError);
});

test("a subscription that is not read drops past maxPendingEvents and says how many", async () => {
  const s = await srv.connect({ maxPendingEvents: 2 });
  const sub = await s.subscribe("drops.*");
  for (let i = 1; i <= 5; i++) await c.publish("drops.x", String(i));
  // The PONG comes after every EVENT the server queued before it on this connection.
  await s.ping();
  const got = [];
  const read = async () => {
    const e = await sub.next();
    got.push([e.text(), e.dropped]);
  };
  await read();
  await read();
  // Room again: the next event comes, counting the three dropped before it.
  await c.publish("drops.x", "6");
  await read();
  assert.deepEqual(got, [["1", 0], ["2", 0], ["6", 3]]);
  await s.close();
});

test("a detached lease outlives its connection and can be settled from another", async () => {
  const q = uniq();
  await c.put(q, "d");
  const a = await srv.connect();
  const [m] = await a.lease(q, { detached: true, leaseMs: 30_000 });
  a.destroy();
  assert.deepEqual(await c.ack(q, [m]), ["ok"]);
  assert.deepEqual(await c.get(q), []);
});

test("queue names are any 1..255 bytes of UTF-8: spaces, NUL, non-ASCII", async () => {
  const q = `a b\u0000ç-${uniq()}`;
  await c.putMany(q, ["x", "y"]);
  const ms = await c.lease(q, { max: 2 });
  assert.deepEqual(await Promise.all(ms.map((m) => m.ack())), [true, true]);
  assert.ok((await c.stats()).queues.has(q));
});
