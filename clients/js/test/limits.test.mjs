// Server limits: truncation warning (BMAXMESSAGESIZE) and FULL (BMAXMEMORY), each on a
// server started with a small limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as beuss from "beuss";
import { startServer } from "./helpers/server.mjs";

test("a PUT over BMAXMESSAGESIZE is truncated, and says so", async () => {
  const srv = await startServer({ BMAXMESSAGESIZE: "1K" });
  const c = await srv.connect();
  try {
    assert.equal(c.server.maxMessageSize, 1024);
    const r = await c.put("q", Buffer.alloc(3000, 1));
    assert.deepEqual([r.truncated, r.originalLength, r.storedLength], [true, 3000, 1024]);
    assert.equal(typeof r.id, "bigint");
    const [m] = await c.get("q");
    assert.equal(m.data.length, 1024);
    const p = await c.publish("s", Buffer.alloc(2000));
    assert.deepEqual([p.truncated, p.storedLength], [true, 1024]);
  } finally {
    await c.close();
    await srv.stop();
  }
});

test("FULL is not fatal: the connection goes on", async () => {
  const srv = await startServer({ BMAXMEMORY: "64K", BMAXMESSAGESIZE: "8K" });
  const c = await srv.connect();
  try {
    let full;
    for (let i = 0; i < 100 && !full; i++) {
      full = await c.put("q", Buffer.alloc(8000)).then(() => undefined, (e) => e);
    }
    assert.ok(full instanceof beuss.FullError, String(full));
    assert.equal(full.fatal, false);
    await c.ping();
    await assert.rejects(c.putMany("q", [Buffer.alloc(8000), Buffer.alloc(8000)]), beuss.FullError);
    assert.ok((await c.purge("q")) > 0n);
    await c.put("q", "fits again");
  } finally {
    await c.close();
    await srv.stop();
  }
});

test("SHUTTING_DOWN answers a parked GET when the server stops", async () => {
  const srv = await startServer();
  const c = await srv.connect();
  // Caught at once: the error may come before the assertion below looks at it.
  const parked = c.get("q", { waitMs: 60_000 }).catch((e) => e);
  // Wait until the server counts the waiter (readiness, not a sleep).
  const probe = await srv.connect();
  while ((await probe.stats("q")).queues.get("q")?.get("waiters") !== 1n);
  await srv.stop("SIGTERM");
  const e = await parked;
  assert.ok(e instanceof beuss.ShuttingDownError, String(e));
  assert.equal(e.fatal, true);
  probe.destroy();
});

test("after a server restart, the Reconnector and the consumer connect again by themselves", async () => {
  const srv1 = await startServer();
  const port = srv1.port;
  const r = beuss.reconnecting({ host: srv1.host, port }, { minDelayMs: 20, maxDelayMs: 200 });
  const c1 = await r.client();
  await c1.put("q", "before");
  const seen = [];
  let wake;
  const handled = () => new Promise((res) => (wake = res));
  let next = handled();
  const cons = c1.consume("q", { waitMs: 200, onError: () => undefined });
  void cons.run((m) => {
    seen.push(m.text());
    wake();
  });
  await next;
  next = handled();
  await srv1.stop();
  await assert.rejects(c1.ping(), beuss.ConnectionError);
  const srv2 = await startServer({ BPORT: String(port) });
  try {
    const c2 = await r.client();
    assert.notEqual(c2, c1);
    await c2.put("q", "after");
    await next;
    assert.deepEqual(seen, ["before", "after"]);
    await cons.close();
    await r.close();
  } finally {
    await srv2.stop();
  }
});

test("Reconnector.run with retry repeats a request the server stopped under (SHUTTING_DOWN)", async () => {
  const srv1 = await startServer();
  const port = srv1.port;
  const r = beuss.reconnecting({ host: srv1.host, port }, { minDelayMs: 20, maxDelayMs: 200 });
  let tries = 0;
  const got = r.run(
    (cl) => {
      tries++;
      return cl.get("q", { waitMs: 60_000 });
    },
    { retry: true },
  );
  const probe = await srv1.connect();
  while ((await probe.stats("q")).queues.get("q")?.get("waiters") !== 1n);
  probe.destroy();
  await srv1.stop("SIGTERM");
  const srv2 = await startServer({ BPORT: String(port) });
  try {
    const p = await srv2.connect();
    while ((await p.stats("q")).queues.get("q")?.get("waiters") !== 1n);
    await p.put("q", "again");
    const [m] = await got;
    assert.equal(m.text(), "again");
    assert.equal(tries, 2);
    await p.close();
    await r.close();
  } finally {
    await srv2.stop();
  }
});
