// The consumer against the real server: ack on return, nack with backoff on throw or
// timeout, touch while work runs long, uncharged give-back on close, and 10 async
// consumers sharing 10,000 messages exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as beuss from "beuss";
import { serverForFile, uniq } from "./helpers/server.mjs";

let srv;
let c;
serverForFile((s, client) => {
  srv = s;
  c = client;
});

/** A promise and its resolver. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

async function queueFigures(q) {
  return (await c.stats(q)).queues.get(q);
}

test("10 async consumers x 1,000 messages: each message handled exactly once", async () => {
  const q = uniq("conc");
  const total = 10_000;
  const payloads = Array.from({ length: total }, (_, i) => String(i));
  for (let i = 0; i < total; i += 1000) await c.putMany(q, payloads.slice(i, i + 1000));
  const seen = new Map();
  const done = deferred();
  const consumers = [];
  for (let k = 0; k < 10; k++) {
    const cons = c.consume(q, { concurrency: 8, waitMs: 1000 });
    consumers.push(cons);
    void cons.run(async (m) => {
      const key = m.text();
      seen.set(key, (seen.get(key) ?? 0) + 1);
      await Promise.resolve();
      if (seen.size === total) done.resolve();
    });
  }
  await done.promise;
  await Promise.all(consumers.map((x) => x.close()));
  assert.equal(seen.size, total);
  assert.ok([...seen.values()].every((n) => n === 1), "a message was handled twice");
  const f = await queueFigures(q);
  assert.equal(f.get("messages"), 0n);
  assert.equal(f.get("acks"), BigInt(total));
  assert.equal(f.get("redeliveries"), 0n);
});

test("for await: each message is acked when the loop body finishes", async () => {
  const q = uniq();
  await c.putMany(q, ["a", "b", "c"]);
  const got = [];
  for await (const m of c.consume(q, { prefetch: 2 })) {
    got.push(m.text());
    if (got.length === 3) {
      assert.equal(await m.ack(), true);
      break;
    }
  }
  assert.deepEqual(got, ["a", "b", "c"]);
  const f = await queueFigures(q);
  assert.equal(f.get("acks"), 3n);
  assert.equal(f.get("messages"), 0n);
});

test("leaving a for-await loop gives back unfinished messages without charging them", async () => {
  const q = uniq();
  await c.putMany(q, ["a", "b", "c", "d"]);
  const cons = c.consume(q, { prefetch: 4, maxDeliveries: 1 });
  for await (const m of cons) {
    assert.equal(m.text(), "a");
    break; // "a" was not settled: it goes back uncharged, like b, c and d
  }
  const ms = await c.lease(q, { max: 10, maxDeliveries: 1 });
  assert.deepEqual(ms.map((m) => m.text()), ["a", "b", "c", "d"]);
  assert.ok(ms.every((m) => m.attempt === 2), "leased again, not dead-lettered");
  await Promise.all(ms.map((m) => m.ack()));
  assert.equal((await queueFigures(q)).get("dead"), 0n);
});

test("a handler that throws is nacked with backoff and retried", async () => {
  const q = uniq();
  await c.put(q, "flaky");
  const attempts = [];
  const done = deferred();
  const errors = [];
  const cons = c.consume(q, { backoff: (n) => (n === 1 ? 20 : 0), onError: (e) => errors.push(e) });
  void cons.run((m) => {
    attempts.push(m.attempt);
    if (m.attempt === 1) throw new Error("boom");
    done.resolve();
  });
  await done.promise;
  await cons.close();
  assert.deepEqual(attempts, [1, 2]);
  assert.equal(errors[0].message, "boom");
  const f = await queueFigures(q);
  assert.equal(f.get("nacks"), 1n);
  assert.equal(f.get("acks"), 1n);
});

test("a handler past handlerTimeoutMs is aborted and nacked", async () => {
  const q = uniq();
  await c.put(q, "slow");
  const done = deferred();
  const seen = [];
  const cons = c.consume(q, { handlerTimeoutMs: 100, backoff: () => 0 });
  void cons.run(async (m, signal) => {
    seen.push(m.attempt);
    if (m.attempt === 1) {
      await new Promise((r) => signal.addEventListener("abort", r));
      assert.ok(signal.reason instanceof beuss.HandlerTimeoutError);
      return;
    }
    done.resolve();
  });
  await done.promise;
  await cons.close();
  assert.deepEqual(seen, [1, 2]);
});

test("long work keeps its lease: the consumer touches at lease/2", async () => {
  const q = uniq();
  await c.put(q, "long");
  const done = deferred();
  const cons = c.consume(q, { leaseMs: 300 });
  let msg;
  void cons.run(async (m) => {
    msg = m;
    // Work for several lease lengths; without touches the lease would expire.
    await new Promise((r) => setTimeout(r, 1200));
    done.resolve();
  });
  await done.promise;
  await cons.close();
  assert.equal(msg.result, "ok", "the ack found its lease still held");
  const f = await queueFigures(q);
  assert.equal(f.get("expired_leases"), 0n);
  assert.equal(f.get("acks"), 1n);
});

test("close() waits for running handlers and gives back what was not started", async () => {
  const q = uniq();
  await c.putMany(q, ["a", "b"]);
  const started = deferred();
  const release = deferred();
  const cons = c.consume(q, { concurrency: 1, maxDeliveries: 1 });
  void cons.run(async (m) => {
    started.resolve(m.text());
    await release.promise;
  });
  assert.equal(await started.promise, "a");
  const closing = cons.close();
  release.resolve();
  await closing;
  const f = await queueFigures(q);
  assert.equal(f.get("acks"), 1n);
  const [b] = await c.get(q, { max: 10 });
  assert.equal(b.text(), "b");
});

test("the settle connection lost while a handler runs: its ack goes through a new one", { timeout: 20_000 }, async () => {
  const q = uniq();
  await c.put(q, "x");
  const started = deferred();
  const release = deferred();
  const errors = [];
  const cons = c.consume(q, { leaseMs: 60_000, onError: (e) => errors.push(e) });
  const done = deferred();
  void cons.run(async () => {
    started.resolve();
    await release.promise;
    done.resolve();
  });
  await started.promise;
  // Reaching into the consumer: its settle connection drops (the leases live on the other).
  cons.settler.destroy();
  release.resolve();
  await done.promise;
  // Without a new settle connection the ack fails and the message stays leased a minute.
  while ((await queueFigures(q)).get("acks") !== 1n);
  await cons.close();
  assert.deepEqual(errors, []);
  assert.equal((await queueFigures(q)).get("redeliveries"), 0n);
});
