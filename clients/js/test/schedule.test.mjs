// Schedules (protocol.md 17) against the real server: a schedule that fills a waiting
// GET, one that publishes to a subject, listing, pausing, resuming and deleting, the
// non-fatal BAD_SCHEDULE, and the checks made before anything is sent (an older
// version, a server that does not announce the feature, arguments that cannot be
// encoded).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as beuss from "beuss";
import { fakeServer, serverForFile, startServer, uniq, withFakeClients } from "./helpers/server.mjs";

let srv;
let c;
serverForFile((s, client) => {
  srv = s;
  c = client;
});

test("HELLO version 5 and later announce SCHEDULES", () => {
  assert.ok(beuss.PROTOCOL_VERSION >= 5);
  assert.equal(c.server.version, beuss.PROTOCOL_VERSION);
  assert.ok(c.server.has(beuss.Feature.SCHEDULES));
  assert.equal(beuss.Feature.SCHEDULES, 0x40);
});

test("an '@every 200ms' schedule onto a queue fills a waiting GET", async () => {
  const q = uniq("sched");
  const name = uniq("every");
  const waiter = await srv.connect();
  try {
    const waiting = waiter.get(q, { waitMs: 10_000 });
    // The GET is parked once the server counts a waiter on the queue.
    while ((await c.stats(q)).queues.get(q)?.get("waiters") !== 1n);
    const before = BigInt(Date.now());
    const r = await c.schedule(name, "@every 200ms", { queue: q }, { payload: "tick", priority: 3 });
    assert.equal(r.created, true);
    assert.equal(typeof r.nextRunMs, "bigint");
    // The first run is one interval after the schedule was defined (17.2).
    assert.ok(r.nextRunMs >= before + 150n && r.nextRunMs <= BigInt(Date.now()) + 250n, String(r.nextRunMs - before));
    const [m] = await waiting;
    assert.ok(m, "the schedule's message reached the parked GET");
    assert.equal(m.text(), "tick");
    const [info] = await c.schedules(name);
    assert.ok(info.runs >= 1n);
    assert.ok(info.lastRunMs >= r.nextRunMs);
    assert.equal(info.failures, 0n);
    assert.equal(info.payloadLength, 4);
    assert.equal(info.priority, 3);
  } finally {
    await c.unschedule(name);
    await waiter.close();
  }
  await c.purge(q);
});

test("a schedule onto a subject publishes to the queues bound to it", async () => {
  const q = uniq("bound");
  const subject = `${uniq("clock")}.tick`;
  const name = uniq("pub");
  assert.equal(await c.bind(subject, q), true);
  try {
    const r = await c.schedule(name, "@every 100ms", { subject }, { payload: new Uint8Array([1, 2, 3]) });
    assert.equal(r.created, true);
    const [m] = await c.get(q, { waitMs: 10_000, withMeta: true });
    assert.equal(m.subject, subject);
    assert.deepEqual([...m.data], [1, 2, 3]);
    const [info] = await c.schedules(name);
    assert.equal(info.toSubject, true);
    assert.equal(info.target, subject);
    assert.equal(info.priority, 5, "the default priority");
  } finally {
    await c.unschedule(name);
    await c.unbind(subject, q);
  }
  await c.purge(q);
});

test("list, replace, pause, resume and unschedule", async () => {
  const q = uniq("nightly");
  const [a, b] = [uniq("s-a"), uniq("s-b")];
  const now = Date.now();
  const r = await c.schedule(a, "0 3 * * *", { queue: q }, { payload: "backup", priority: 1 });
  assert.equal(r.created, true);
  const first = new Date(Number(r.nextRunMs));
  assert.ok(first.getTime() > now && first.getTime() <= now + 86_400_000, first.toISOString());
  assert.deepEqual([first.getUTCHours(), first.getUTCMinutes(), first.getUTCSeconds(), first.getUTCMilliseconds()], [3, 0, 0, 0]);
  assert.equal((await c.schedule(b, "@hourly", { queue: q })).created, true);
  // A schedule of the same name is replaced.
  const again = await c.schedule(a, "0 3 * * *", { queue: q }, { payload: "backup!", priority: 1 });
  assert.deepEqual(again, { created: false, nextRunMs: r.nextRunMs });

  const all = (await c.schedules()).filter((s) => s.name === a || s.name === b);
  assert.deepEqual(all.map((s) => s.name), [a, b], "sorted by name");
  assert.deepEqual(all[0], {
    name: a, spec: "0 3 * * *", toSubject: false, target: q, priority: 1, paused: false,
    nextRunMs: r.nextRunMs, lastRunMs: 0n, runs: 0n, misfires: 0n, failures: 0n, payloadLength: 7,
  });
  assert.deepEqual(await c.schedules(""), await c.schedules());
  assert.deepEqual((await c.schedules(b)).map((s) => s.spec), ["@hourly"]);
  assert.deepEqual(await c.schedules(uniq("missing")), []);

  assert.equal(await c.pauseSchedule(a), 0n);
  assert.equal(await c.pauseSchedule(a), 0n, "pausing a paused schedule changes nothing");
  const [paused] = await c.schedules(a);
  assert.equal(paused.paused, true);
  assert.equal(paused.nextRunMs, 0n);
  const next = await c.resumeSchedule(a);
  assert.equal(next, r.nextRunMs);
  assert.equal((await c.schedules(a))[0].paused, false);
  assert.equal(await c.pauseSchedule(uniq("missing")), null);
  assert.equal(await c.resumeSchedule(uniq("missing")), null);

  assert.equal(await c.unschedule(a), true);
  assert.equal(await c.unschedule(a), false);
  assert.equal(await c.unschedule(b), true);
  assert.deepEqual((await c.schedules()).filter((s) => s.name === a || s.name === b), []);
  assert.equal((await c.stats(q)).queues.size, 0, "nothing ran");
});

test("a spec the server cannot read rejects with BadScheduleError; the connection goes on", async () => {
  const name = uniq("bad");
  for (const spec of ["61 * * * *", "TZ=Europe/Paris 0 3 * * *", "@every 10ms", "0 0 30 2 *"]) {
    const e = await c.schedule(name, spec, { queue: uniq() }).then(
      () => assert.fail(`${spec} was accepted`),
      (err) => err,
    );
    assert.ok(e instanceof beuss.BadScheduleError, `${spec}: ${e}`);
    assert.ok(e instanceof beuss.ServerError);
    assert.equal(e.code, beuss.ErrorCode.BAD_SCHEDULE);
    assert.equal(e.fatal, false);
    assert.ok(e.text.length > 0);
  }
  await c.ping();
  assert.equal(c.closed, undefined);
  assert.deepEqual(await c.schedules(name), [], "nothing was defined");
});

test("a payload over the server's max_message_size is BAD_SCHEDULE; one at the 64 KiB frame limit is taken", async () => {
  const small = await startServer({ BMAXMESSAGESIZE: "1K" });
  const s = await small.connect();
  try {
    assert.equal(s.server.maxMessageSize, 1024);
    await assert.rejects(s.schedule("big", "@daily", { queue: "q" }, { payload: Buffer.alloc(1025) }), beuss.BadScheduleError);
    assert.equal((await s.schedule("fits", "@daily", { queue: "q" }, { payload: Buffer.alloc(1024) })).created, true);
    await s.ping();
  } finally {
    await s.close();
    await small.stop();
  }
  // The largest payload a SCHEDULE frame can carry: all of its 65536 bytes but the
  // opcode, flags, name, the 6-byte spec, target_kind, the queue and the priority.
  const name = uniq("max");
  const q = uniq();
  const payload = Buffer.alloc(beuss.MAX_SCHEDULE_FRAME - (2 + 1 + name.length + 1 + 6 + 1 + 1 + q.length + 1), 0x70);
  assert.equal((await c.schedule(name, "@daily", { queue: q }, { payload })).created, true);
  assert.equal((await c.schedules(name))[0].payloadLength, payload.length);
  assert.equal(await c.unschedule(name), true);
});

test("arguments that cannot be encoded throw before anything is sent", async () => {
  const ok = { queue: "q" };
  assert.throws(() => c.schedule("", "@daily", ok), RangeError);
  assert.throws(() => c.schedule("n".repeat(256), "@daily", ok), RangeError);
  assert.throws(() => c.schedule("n", "", ok), RangeError);
  assert.throws(() => c.schedule("n", " ".repeat(256), ok), RangeError);
  assert.throws(() => c.schedule("n", "@daily", { queue: "" }), RangeError);
  assert.throws(() => c.schedule("n", "@daily", { subject: "a.*" }), RangeError);
  assert.throws(() => c.schedule("n", "@daily", { subject: ">" }), RangeError);
  assert.throws(() => c.schedule("n", "@daily", {}), RangeError);
  assert.throws(() => c.schedule("n", "@daily", { queue: "q", subject: "s" }), RangeError);
  assert.throws(() => c.schedule("n", "@daily", ok, { priority: 10 }), RangeError);
  assert.throws(() => c.schedule("n", "@daily", ok, { payload: Buffer.alloc(beuss.MAX_SCHEDULE_FRAME) }), RangeError);
  assert.throws(() => c.unschedule(""), RangeError);
  assert.throws(() => c.pauseSchedule("n".repeat(256)), RangeError);
  assert.throws(() => c.schedules("n".repeat(256)), RangeError);
  await c.ping();
  assert.equal(c.inFlight, 0);
});

test("on a version-4 connection, schedule calls are refused client-side", async () => {
  const v4 = await srv.connect({ version: 4 });
  try {
    assert.equal(v4.server.version, 4);
    assert.equal(v4.server.has(beuss.Feature.SCHEDULES), false, "the bit comes only with version 5");
    assert.throws(() => v4.schedule("n", "@daily", { queue: "q" }), beuss.UnsupportedError);
    assert.throws(() => v4.unschedule("n"), beuss.UnsupportedError);
    assert.throws(() => v4.pauseSchedule("n"), beuss.UnsupportedError);
    assert.throws(() => v4.resumeSchedule("n"), beuss.UnsupportedError);
    assert.throws(() => v4.schedules(), beuss.UnsupportedError);
    await v4.ping();
  } finally {
    await v4.close();
  }
});

test("a version-5 server that does not announce SCHEDULES: refused client-side", async () => {
  // A scripted peer: HELLO version 5 with every feature bit but SCHEDULES, then PONGs.
  const fake = await fakeServer(0x3f & ~beuss.Feature.AUTH_REQUIRED, undefined, { version: 5 });
  await withFakeClients(fake, async (open) => {
    const f = await open();
    assert.equal(f.server.version, 5);
    assert.equal(f.server.has(beuss.Feature.SCHEDULES), false);
    assert.throws(() => f.schedule("n", "@daily", { queue: "q" }), (e) => e instanceof beuss.UnsupportedError && /0x40/.test(e.message));
    assert.throws(() => f.unschedule("n"), beuss.UnsupportedError);
    assert.throws(() => f.pauseSchedule("n"), beuss.UnsupportedError);
    assert.throws(() => f.schedules(), beuss.UnsupportedError);
    await f.ping();
    assert.deepEqual(fake.seen, [0x01, 0x02], "only HELLO and PING were sent");
  });
});
