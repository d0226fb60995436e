// The connection layer against scripted peers (fake servers and a fake socket): reply
// deadlines, frame reassembly byte by byte, addresses, and what the client leaves
// behind when it closes. The real server is used where its behaviour is the point.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { EventEmitter } from "node:events";
import * as beuss from "beuss";
import { Connection } from "../dist/esm/connection.js";
import { startServer, uniq } from "./helpers/server.mjs";

const { codec } = beuss;

// A version-3 HELLO reply (protocol.md 10.7 / 15.12): max_message_size 1 MiB.
const HELLO = Buffer.from("00000025020003001000000b626575737320302e312e300000001300007530029" + "32e009a7ec8000014", "hex");

function reply(status, body = Buffer.alloc(0)) {
  const b = Buffer.alloc(5 + body.length);
  b.writeUInt32BE(1 + body.length, 0);
  b[4] = status;
  body.copy(b, 5);
  return b;
}

function errorFrame(code, fatal, text) {
  const t = Buffer.from(text);
  const body = Buffer.alloc(3 + t.length);
  body.writeUInt16BE(code, 0);
  body[2] = fatal ? 1 : 0;
  t.copy(body, 3);
  return reply(0x7f, body);
}

/**
 * A fake server: answers HELLO, then calls `answer(opcode, frame, socket)` for every
 * later request frame (reassembled), which writes what it wants (or nothing).
 */
async function fakeServer(answer) {
  const sockets = new Set();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    let buf = Buffer.alloc(0);
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const f = buf.subarray(0, 4 + buf.readUInt32BE(0));
        buf = buf.subarray(f.length);
        if (f[4] === 0x01) s.write(HELLO);
        else answer(f[4], f, s);
      }
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    port: srv.address().port,
    sockets,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => srv.close(r));
    },
  };
}

test("after a client-side timeout, a late reply is never matched to the next request", async (t) => {
  // The server answers the first PING late (after the client gave up) and the second at
  // once: without closing, the second PING would take the first one's PONG.
  let pings = 0;
  let late;
  const srv = await fakeServer((op, f, s) => {
    if (op !== 0x02) return;
    pings++;
    if (pings === 1) late = () => s.write(reply(0x01));
    else s.write(reply(0x01));
  });
  t.after(() => srv.close());
  const c = await beuss.connect({ host: "127.0.0.1", port: srv.port, timeoutMs: 100 });
  await assert.rejects(c.ping(), beuss.TimeoutError);
  late?.();
  await assert.rejects(c.ping(), beuss.ConnectionError);
});

test("a non-fatal ERROR with no request in flight is a protocol error, not silently dropped", { timeout: 10_000 }, async (t) => {
  const srv = await fakeServer((op, f, s) => {
    if (op === 0x02) s.write(Buffer.concat([reply(0x01), errorFrame(7, false, "full")]));
  });
  t.after(() => srv.close());
  const c = await beuss.connect({ host: "127.0.0.1", port: srv.port });
  t.after(() => c.destroy());
  await c.ping();
  const closed = new Promise((r) => {
    const t = setInterval(() => {
      if (c.closed) {
        clearInterval(t);
        r(c.closed);
      }
    }, 5);
  });
  assert.ok((await closed) instanceof beuss.ProtocolError);
});

/** A stand-in for net.Socket, so that a test can hand the connection any chunking. */
class FakeSocket extends EventEmitter {
  written = [];
  write(b) {
    this.written.push(b);
    return true;
  }
  destroy() {
    this.destroyed = true;
  }
  end() {}
  setNoDelay() {}
}

function fakeConnection(maxFrameBytes = 8 << 20, timeoutMs = 10_000) {
  const s = new FakeSocket();
  const conn = new Connection(s, { host: "x", port: 1, timeoutMs, maxFrameBytes });
  return { s, conn };
}

test("a reply deadline sooner than the armed timer re-arms it (no late timeout)", { timeout: 20_000 }, async (t) => {
  // The first request may wait an hour and is answered at once; the PING behind it gets
  // no answer, so it must time out after the margin, not after the hour.
  const { s, conn } = fakeConnection(1 << 20, 100);
  // The connection's timer is unref'd (a real socket keeps the process alive): hold it here.
  const alive = setInterval(() => undefined, 60_000);
  t.after(() => clearInterval(alive));
  const got = conn.request(codec.encodeGet(Buffer.from("q"), 3_600_000, 1), codec.decodeMessages, 3_600_000);
  const ping = conn.request(codec.encodePing(), (b) => b[0]);
  s.emit("data", reply(0x13));
  assert.deepEqual(await got, []);
  await assert.rejects(ping, beuss.TimeoutError);
  // The connection is gone: nothing later can be matched to the unanswered PING's reply.
  assert.ok(s.destroyed);
  await assert.rejects(conn.request(codec.encodePing(), (b) => b[0]), beuss.TimeoutError);
});

test("frames split at every byte, with an EVENT and a 1 MiB payload between replies", async () => {
  const { s, conn } = fakeConnection();
  const events = [];
  conn.onEvent = (e) => events.push(e);
  const big = Buffer.alloc(1 << 20, 0xab);
  big[0] = 1;
  big[big.length - 1] = 2;
  const msgs = Buffer.alloc(4 + 4 + big.length);
  msgs.writeUInt32BE(1, 0);
  msgs.writeUInt32BE(big.length, 4);
  big.copy(msgs, 8);
  const evBody = Buffer.from("00000001001301116f72646572732e65752e637265617465646869", "hex");
  const stream = Buffer.concat([
    reply(0x01),
    reply(0x3f, evBody),
    reply(0x12, msgs),
    reply(0x3f, evBody),
    reply(0x14, Buffer.from("ffffffffffffffff", "hex")),
  ]);
  const pong = conn.request(codec.encodePing(), (b) => b[0]);
  const get = conn.request(codec.encodeGet(Buffer.from("q"), 0, 1), codec.decodeMessages);
  const purge = conn.request(codec.encodePurge(Buffer.from("q")), codec.decodeCount64);
  for (let i = 0; i < stream.length; i++) s.emit("data", stream.subarray(i, i + 1));
  assert.equal(await pong, 0x01);
  const [m] = await get;
  assert.equal(m.data.length, big.length);
  assert.ok(m.data.equals(big));
  assert.equal(await purge, 0xffffffffffffffffn);
  assert.equal(events.length, 2);
  assert.equal(conn.inFlight, 0);
});

test("a reply frame over the cap closes the connection before its body is read", async () => {
  const { s, conn } = fakeConnection(1024);
  const p = conn.request(codec.encodePing(), (b) => b[0]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1025, 0);
  head[4] = 0x12;
  for (const b of head) s.emit("data", Buffer.from([b]));
  await assert.rejects(p, beuss.ProtocolError);
  assert.ok(s.destroyed);
});

test("addresses: 'host:port', '[v6]:port', bare v6, BHOST with brackets or spaces, bad BPORT", () => {
  const { parseAddress, addressFromEnv } = beuss;
  assert.deepEqual(parseAddress("localhost:7000"), { host: "localhost", port: 7000 });
  assert.deepEqual(parseAddress("[::1]:6552"), { host: "::1", port: 6552 });
  assert.deepEqual(parseAddress("[::1]"), { host: "::1", port: 6552 });
  assert.deepEqual(parseAddress("::1"), { host: "::1", port: 6552 });
  assert.deepEqual(parseAddress("fe80::1:2"), { host: "fe80::1:2", port: 6552 });
  assert.deepEqual(parseAddress("example.org"), { host: "example.org", port: 6552 });
  assert.throws(() => parseAddress("localhost:70000"), RangeError);
  assert.throws(() => parseAddress("localhost:65x"), RangeError);
  const saved = { h: process.env.BHOST, p: process.env.BPORT };
  try {
    process.env.BHOST = "[::1]";
    process.env.BPORT = " 7001 ";
    assert.deepEqual(addressFromEnv(), { host: "::1", port: 7001 });
    process.env.BHOST = "  ";
    process.env.BPORT = "";
    assert.deepEqual(addressFromEnv(), { host: "localhost", port: 6552 });
    process.env.BPORT = "12ab";
    assert.throws(() => addressFromEnv(), RangeError);
  } finally {
    for (const [k, v] of [["BHOST", saved.h], ["BPORT", saved.p]]) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test("connect() reaches an IPv6 loopback server as '[::1]:port' and through BHOST=[::1]", async (t) => {
  const srv = net.createServer((s) => s.on("data", () => s.write(HELLO)));
  try {
    await new Promise((r, j) => srv.once("error", j).listen(0, "::1", r));
  } catch {
    t.skip("no IPv6 loopback here");
    return;
  }
  const port = srv.address().port;
  const a = await beuss.connect(`[::1]:${port}`);
  a.destroy();
  const a2 = await beuss.connect({ host: "[::1]", port });
  a2.destroy();
  const saved = { h: process.env.BHOST, p: process.env.BPORT };
  process.env.BHOST = "[::1]";
  process.env.BPORT = String(port);
  try {
    const b = await beuss.connect();
    b.destroy();
  } finally {
    for (const [k, v] of [["BHOST", saved.h], ["BPORT", saved.p]]) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await new Promise((r) => srv.close(r));
  }
});

test("a settle made before another request goes out before it (nack then get sees the message)", { timeout: 20_000 }, async () => {
  const srv = await startServer();
  const c = await srv.connect();
  try {
    const q = uniq();
    await c.put(q, "x");
    const [m] = await c.lease(q);
    const nacked = m.nack({ count: false });
    const [again] = await c.get(q);
    assert.equal(again?.text(), "x");
    assert.equal(await nacked, true);
  } finally {
    await c.close();
    await srv.stop();
  }
});

test("Reconnector.close() while it is dialling leaves no connection open", { timeout: 20_000 }, async () => {
  const srv = await startServer();
  const made = [];
  let calls = 0;
  let firstFailed;
  const failed = new Promise((r) => (firstFailed = r));
  const r = new beuss.Reconnector(
    async () => {
      calls++;
      if (calls === 1) {
        firstFailed();
        throw new beuss.ConnectionError("refused");
      }
      const c = await srv.connect();
      made.push(c);
      return c;
    },
    { minDelayMs: 20, maxDelayMs: 20 },
  );
  const p = r.client();
  await failed;
  await r.close();
  await assert.rejects(p, beuss.ConnectionError);
  for (const c of made) assert.ok(c.closed, "a client made after close() was left open");
  await srv.stop();
});

test("a process exits by itself once its clients, consumer and reconnector are closed", { timeout: 30_000 }, async () => {
  const { spawn } = await import("node:child_process");
  const srv = await startServer();
  try {
    const child = spawn(process.execPath, [new URL("./helpers/exit-after-close.mjs", import.meta.url).pathname, srv.host, String(srv.port)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const [code] = await new Promise((r) => child.once("exit", (...a) => r(a)));
    assert.equal(code, 0);
    assert.match(out, /closed/);
  } finally {
    await srv.stop();
  }
});

test("HELLO negotiation: newer requests are refused client-side on an older version, the connection goes on", async () => {
  const srv = await startServer();
  try {
    const v1 = await srv.connect({ version: 1 });
    assert.equal(v1.server.version, 1);
    assert.throws(() => v1.lease("q"), beuss.UnsupportedError);
    assert.throws(() => v1.put("q", "x", { priority: 1 }), beuss.UnsupportedError);
    assert.throws(() => v1.subscribe("a.b"), beuss.UnsupportedError);
    assert.throws(() => v1.get("q", { withMeta: true }), beuss.UnsupportedError);
    assert.throws(() => v1.put("q", "x", { unique: "k" }), beuss.UnsupportedError);
    assert.throws(() => v1.put("q", "x", { ttlMs: 1000 }), beuss.UnsupportedError);
    assert.deepEqual(await v1.put("q", "x"), { truncated: false });
    await v1.ping();
    await v1.close();
    const v2 = await srv.connect({ version: 2 });
    assert.equal(v2.server.version, 2);
    assert.equal(typeof (await v2.put("q", "y")).id, "bigint");
    assert.equal((await v2.lease("q", { max: 5 })).length, 2);
    assert.throws(() => v2.publish("a.b", "x"), beuss.UnsupportedError);
    assert.throws(() => v2.schedules(), beuss.UnsupportedError);
    assert.throws(() => v2.put("q", "x", { unique: "k" }), beuss.UnsupportedError);
    assert.throws(() => v2.put("q", "x", { ttlMs: 0 }), beuss.UnsupportedError);
    await v2.close();
    const v9 = await srv.connect({ version: 9 });
    assert.equal(v9.server.version, 6);
    await v9.close();
  } finally {
    await srv.stop();
  }
});

test("256 KiB of settle replies behind a parked LEASE end it with EMPTY; every reply still matches (13.7)", { timeout: 60_000 }, async () => {
  const srv = await startServer();
  const c = await srv.connect();
  try {
    const q = uniq();
    const parked = c.lease(q, { waitMs: Infinity });
    // One ACK request each (not batched): SETTLED of one pair is 8 bytes, so 33,000 of
    // them pass 256 KiB while the LEASE is parked.
    const acks = [];
    for (let i = 0; i < 33_000; i++) acks.push(c.ack(q, [{ id: BigInt(i + 1) << 40n, attempt: 1 }]));
    assert.deepEqual(await parked, []);
    const rs = await Promise.all(acks);
    assert.ok(rs.every((r) => r.length === 1 && r[0] === "not_found"));
    await c.ping();
  } finally {
    await c.close();
    await srv.stop();
  }
});

test("a large PUT to a peer that reads slowly but steadily is not timed out while its bytes still go out", { timeout: 60_000 }, async (t) => {
  // The peer stops 40 ms after every MiB, so 64 MiB take well over the 1.5 s margin; the
  // bytes queued in the client keep going out, which must count as life: only a
  // budget without any progress times out.
  const size = 64 << 20;
  const srv = net.createServer((s) => {
    s.on("error", () => undefined);
    let buf = Buffer.alloc(0);
    let helloDone = false;
    let got = 0;
    let nextPause = 1 << 20;
    s.on("data", (d) => {
      if (!helloDone) {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 8) return;
        helloDone = true;
        s.write(HELLO);
        d = buf.subarray(8);
      }
      got += d.length;
      if (got >= 6 + 1 + 1 + size) {
        s.write(reply(0x10, Buffer.alloc(8)));
        return;
      }
      if (got >= nextPause) {
        nextPause += 1 << 20;
        s.pause();
        setTimeout(() => s.resume(), 40);
      }
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  let c;
  t.after(() => {
    c?.destroy();
    srv.closeAllConnections?.();
    return new Promise((res) => srv.close(res));
  });
  c = await beuss.connect({ host: "127.0.0.1", port: srv.address().port, timeoutMs: 1500 });
  const r = await c.put("q", Buffer.alloc(size, 1));
  assert.equal(r.truncated, false);
});

test("close(), quit() and destroy() end subscription loops cleanly; a lost connection ends them with its error", async () => {
  const srv = await startServer();
  try {
    for (const how of ["close", "quit", "destroy"]) {
      const c = await srv.connect();
      const sub = await c.subscribe("s.>");
      const loop = (async () => {
        const got = [];
        for await (const e of sub) got.push(e.text());
        return got;
      })();
      await c.publish("s.a", "one");
      await c.ping();
      await c[how]();
      assert.deepEqual(await loop, ["one"], how);
    }
    const c = await srv.connect();
    const sub = await c.subscribe("s.>");
    const next = assert.rejects(sub.next(), beuss.ConnectionError);
    await srv.stop();
    await next;
  } finally {
    await srv.stop();
  }
});

test("a large PUT to a peer that stops reading still times out once nothing moves", { timeout: 30_000 }, async (t) => {
  const srv = await fakeServer(() => undefined);
  let c;
  t.after(() => {
    c?.destroy();
    return srv.close();
  });
  c = await beuss.connect({ host: "127.0.0.1", port: srv.port, timeoutMs: 300 });
  for (const s of srv.sockets) s.pause();
  await assert.rejects(c.put("q", Buffer.alloc(64 << 20)), beuss.TimeoutError);
});
