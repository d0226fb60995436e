// Every frame of clients/testdata/protocol-examples.json (the hex dumps of protocol.md
// sections 10, 13.13, 15.12, 16.9, 17.8, 18.7 and 19.7), checked against this client's own codec: requests are
// encoded and compared byte for byte, replies decoded and compared with what the
// document says. A frame this table does not know fails the test, so a new example in
// protocol.md forces a new check here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AuthRequiredError, BadScheduleError, ForbiddenError, codec, serverError, UnknownOpcodeError } from "beuss";

const file = new URL("../../testdata/protocol-examples.json", import.meta.url);
const { frames } = JSON.parse(readFileSync(file, "utf8"));
const q = (s) => Buffer.from(s, "utf8");
const txt = (ms) => ms.map((m) => m.data.toString("utf8"));
const body = (hex) => {
  const b = Buffer.from(hex, "hex");
  assert.equal(b.readUInt32BE(0), b.length - 4, "length prefix matches the frame");
  return b.subarray(4);
};
const lease1 = { waitMs: 0, max: 1, leaseMs: 30000, maxDeliveries: 0, detached: false };

// Requests: section/index -> the frame this client encodes for it.
const requests = {
  "10.1/0": () => codec.encodePing(),
  "10.2/0": () => codec.encodePut(q("jobs"), q("hello")),
  "10.3/0": () => codec.encodeGet(q("jobs"), 0, 1),
  "10.3/2": () => codec.encodePut(q("jobs"), q("one")),
  "10.3/4": () => codec.encodePut(q("jobs"), q("two!")),
  "10.3/6": () => codec.encodeGet(q("jobs"), 0, 10),
  "10.5/0": () => codec.encodePut(q("jobs"), Buffer.alloc(20000, 0x61)),
  "10.7/0": () => codec.encodeHello(1),
  "10.8/0": () => codec.encodeQuit(),
  "10.8/2": () => codec.encodePurge(q("jobs")),
  "10.8/4": () => codec.encodeStats(),
  "10.8/5": () => codec.encodeStats(q("jobs")),
  "10.8/6": () => codec.encodeGet(q("jobs"), codec.WAIT_FOREVER, 10),
  "13.13/0": () => codec.encodeHello(3),
  "13.13/2": () => codec.encodePut(q("jobs"), q("job"), { delayMs: 0, priority: 2 }),
  "13.13/4": () => codec.encodeLease(q("jobs"), lease1),
  "13.13/6": () => codec.encodeTouch(q("jobs"), 0, [{ id: 1n, attempt: 1 }]),
  "13.13/8": () => codec.encodeAck(q("jobs"), [{ id: 1n, attempt: 1 }, { id: 1n, attempt: 1 }]),
  "13.13/10": () => codec.encodePut(q("jobs"), q("bad"), {}),
  "13.13/12": () => codec.encodeLease(q("jobs"), lease1),
  "13.13/14": () => codec.encodeNack(q("jobs"), 0, codec.NackOption.DEAD, [{ id: 2n, attempt: 1 }]),
  "13.13/16": () => codec.encodePeek(q("jobs.dead"), 10),
  "13.13/18": () => codec.encodeMove(q("jobs.dead"), q("jobs"), 100),
  "15.12/0": () => codec.encodeSub(q("orders.>")),
  "15.12/2": () => codec.encodeBind(q("orders.*.created"), q("audit")),
  "15.12/4": () => codec.encodePub(q("orders.eu.created"), { delayMs: 0, priority: 5, confirm: 1, timeoutMs: 5000 }, q("hi")),
  "15.12/6": () => codec.encodeGet(q("audit"), 0, 10, true),
  "15.12/9": () => codec.encodeSub(q("svc.*")),
  "15.12/11": () => codec.encodeReq(q("svc.time"), 1000, q("now?")),
  "15.12/13": () => codec.encodeReply(1n, q("12:00")),
  "16.9/0": () => codec.encodePut(q("jobs"), q("")),
  "16.9/2": () => codec.encodeAuth(q("0123456789abcdef")),
  "16.9/4": () => codec.encodePurge(q("jobs")),
  "17.8/0": () =>
    codec.encodeSchedule(q("nightly"), { spec: q("0 3 * * *"), toSubject: false, target: q("jobs"), priority: 5, payload: q("backup") }),
  "17.8/2": () => codec.encodePauseSchedule(q("nightly"), true),
  "17.8/4": () => codec.encodeSchedules(),
  "17.8/6": () => codec.encodeUnschedule(q("nightly")),
  "18.7/0": () => codec.encodePut(q("jobs"), q("hi"), undefined, { key: q("order-42"), windowMs: 600000 }),
  "18.7/2": () => codec.encodePut(q("jobs"), q("hi"), undefined, { key: q("order-42"), replace: false, windowMs: 600000 }),
  "18.7/4": () =>
    codec.encodePut(q("jobs"), q("hey"), { delayMs: 0, priority: 2 }, { key: q("order-42"), replace: true, windowMs: 0 }),
  "19.7/0": () => codec.encodePut(q("quotes"), q("hi"), undefined, undefined, { ttlMs: 5000 }),
  "19.7/2": () =>
    codec.encodePut(q("jobs"), q("x"), { delayMs: 0, priority: 5 }, { key: q("k"), windowMs: 0 }, { ttlMs: 60000, deadLetter: true }),
};

const S = codec.Status;
const status = (b, s) => assert.equal(b[0], s);
// Replies: section/index -> a check of what this client decodes from it.
const replies = {
  "10.1/1": (b) => status(b, S.PONG),
  "10.2/1": (b) => assert.deepEqual(codec.decodePut(b, false), { truncated: false }),
  "10.3/1": (b) => assert.deepEqual(txt(codec.decodeMessages(b)), ["hello"]),
  "10.3/3": (b) => assert.deepEqual(codec.decodePut(b, false), { truncated: false }),
  "10.3/5": (b) => assert.deepEqual(codec.decodePut(b, false), { truncated: false }),
  "10.3/7": (b) => assert.deepEqual(txt(codec.decodeMessages(b)), ["one", "two!"]),
  "10.4/0": (b) => assert.deepEqual(codec.decodeMessages(b), []),
  "10.5/1": (b) => assert.deepEqual(codec.decodePut(b, false), { truncated: true, originalLength: 20000, storedLength: 10240 }),
  "10.6/0": (b) => {
    assert.deepEqual(codec.decodeError(b), { code: 2, fatal: true, text: "unknown opcode 0x2f" });
    assert.ok(serverError(2, true, "x") instanceof UnknownOpcodeError);
  },
  "10.7/1": (b) => assert.deepEqual(codec.decodeHello(b), { version: 1, maxMessageSize: 1048576, server: "beuss 0.1.0", features: 0 }),
  "10.8/1": (b) => status(b, S.BYE),
  "10.8/3": (b) => assert.equal(codec.decodeCount64(b), 3n),
  "10.8/7": (b) => {
    const s = codec.decodeStats(b);
    assert.deepEqual([...s.server], [["uptime_seconds", 42n], ["queues", 1n]]);
    assert.deepEqual([...s.queues.keys()], ["jobs"]);
    assert.deepEqual([...s.queues.get("jobs")], [["messages", 2n]]);
  },
  "13.13/1": (b) =>
    assert.deepEqual(codec.decodeHello(b), {
      version: 3, maxMessageSize: 1048576, server: "beuss 0.1.0", features: 0x13,
      defaultLeaseMs: 30000, maxLeaseMs: 43200000, maxDelayMs: 2592000000, maxDeliveries: 20,
    }),
  "13.13/3": (b) => assert.deepEqual(codec.decodePut(b, true), { truncated: false, id: 1n }),
  "13.13/5": (b) => assert.deepEqual(codec.decodeLeased(b), [{ id: 1n, attempt: 1, data: q("job") }]),
  "13.13/7": (b) => assert.deepEqual(codec.decodeSettled(b), ["ok"]),
  "13.13/9": (b) => assert.deepEqual(codec.decodeSettled(b), ["ok", "not_found"]),
  "13.13/11": (b) => assert.deepEqual(codec.decodePut(b, true), { truncated: false, id: 2n }),
  "13.13/13": (b) => assert.deepEqual(codec.decodeLeased(b), [{ id: 2n, attempt: 1, data: q("bad") }]),
  "13.13/15": (b) => assert.deepEqual(codec.decodeSettled(b), ["ok"]),
  "13.13/17": (b) => {
    status(b, S.PEEKED);
    assert.deepEqual(codec.decodeLeased(b), [{ id: 2n, attempt: 1, data: q("bad") }]);
  },
  "13.13/19": (b) => {
    status(b, S.MOVED);
    assert.equal(codec.decodeCount64(b), 1n);
  },
  "15.12/1": (b) => assert.equal(codec.decodeSubscribed(b), 1),
  "15.12/3": (b) => {
    status(b, S.BOUND);
    assert.equal(codec.decodeFlag(b), true);
  },
  "15.12/5": (b) => assert.deepEqual(codec.decodeEvent(b), { sid: 1, subject: "orders.eu.created", data: q("hi") }),
  "15.12/7": (b) =>
    assert.deepEqual(codec.decodeEnvelopes(b), [{ id: 1n, attempt: 0, subject: "orders.eu.created", data: q("hi") }]),
  "15.12/8": (b) =>
    assert.deepEqual(codec.decodePublished(b), {
      queues: 1, subscribers: 1, originalLength: 2, storedLength: 2, truncated: false, acked: 1, failed: 0,
    }),
  "15.12/10": (b) => assert.equal(codec.decodeSubscribed(b), 2),
  "15.12/12": (b) =>
    assert.deepEqual(codec.decodeEvent(b), { sid: 2, subject: "svc.time", replyTo: 1n, data: q("now?") }),
  "15.12/14": (b) => {
    status(b, S.REPLIED);
    assert.equal(codec.decodeFlag(b), true);
  },
  "15.12/15": (b) => assert.deepEqual(codec.decodeReplyPayload(b), q("12:00")),
  "16.9/1": (b) => {
    assert.deepEqual(codec.decodeError(b), { code: 16, fatal: true, text: "authentication required" });
    assert.ok(serverError(16, true, "x") instanceof AuthRequiredError);
  },
  "16.9/3": (b) => {
    status(b, S.AUTHED);
    assert.equal(codec.decodeAuthed(b), false);
  },
  "16.9/5": (b) => {
    assert.deepEqual(codec.decodeError(b), { code: 18, fatal: false, text: "this connection's token is read-only" });
    assert.ok(serverError(18, false, "x") instanceof ForbiddenError);
  },
  "17.8/1": (b) => {
    status(b, S.SCHEDULED);
    assert.deepEqual(codec.decodeScheduled(b), { created: true, nextRunMs: 1796353200000n });
    assert.equal(new Date(Number(codec.decodeScheduled(b).nextRunMs)).toISOString(), "2026-12-04T03:00:00.000Z");
    assert.ok(serverError(20, false, "x") instanceof BadScheduleError);
  },
  "17.8/3": (b) => {
    status(b, S.SCHEDULE_PAUSED);
    assert.equal(codec.decodeSchedulePaused(b), 0n);
  },
  "17.8/5": (b) => {
    status(b, S.SCHEDULE_LIST);
    assert.deepEqual(codec.decodeScheduleList(b), [
      {
        name: "nightly", spec: "0 3 * * *", toSubject: false, target: "jobs", priority: 5, paused: true,
        nextRunMs: 0n, lastRunMs: 0n, runs: 0n, misfires: 0n, failures: 0n, payloadLength: 6,
      },
    ]);
  },
  "17.8/7": (b) => {
    status(b, S.UNSCHEDULED);
    assert.equal(codec.decodeFlag(b), true);
  },
  "18.7/1": (b) => {
    status(b, S.STORED);
    assert.deepEqual(codec.decodePut(b, true), { truncated: false, id: 1n });
  },
  "18.7/3": (b) => {
    status(b, S.DUPLICATE);
    assert.deepEqual(codec.decodeDuplicate(b), { truncated: false, id: 1n, duplicate: "ready" });
    assert.deepEqual(codec.decodePut(b, true), codec.decodeDuplicate(b));
  },
  "18.7/5": (b) => {
    status(b, S.REPLACED);
    // original_len 3 = stored_len 3: not cut, so no lengths, as for STORED.
    assert.deepEqual(codec.decodeReplaced(b), { truncated: false, id: 1n, replaced: true });
    assert.deepEqual(codec.decodePut(b, true), codec.decodeReplaced(b));
  },
  // A PUT with a time to live is answered as one with options: STORED with the id.
  "19.7/1": (b) => {
    status(b, S.STORED);
    assert.deepEqual(codec.decodePut(b, true), { truncated: false, id: 1n });
  },
  "19.7/3": (b) => {
    status(b, S.STORED);
    assert.deepEqual(codec.decodePut(b, true), { truncated: false, id: 2n });
  },
};

test("the examples file has frames from sections 10, 13, 15, 16, 17, 18 and 19", () => {
  assert.ok(frames.length >= 70);
  for (const s of ["10.", "13.", "15.", "16.", "17.", "18.", "19."]) assert.ok(frames.some((f) => f.section.startsWith(s)), s);
});

for (const f of frames) {
  const key = `${f.section}/${f.index}`;
  test(`frame ${key} ${f.dir} ${f.heading.replace(/^#+ /, "")}`, () => {
    if (f.dir === ">") {
      const enc = requests[key];
      assert.ok(enc, `no encoder check for request frame ${key}: add one`);
      const got = enc().toString("hex");
      if (f.elided) {
        // The dump stops before the payload: compare the head it shows, and the length
        // the head declares with the frame encoded.
        assert.equal(got.slice(0, f.hex.length), f.hex);
        assert.equal(Buffer.from(got, "hex").readUInt32BE(0) + 4, got.length / 2);
      } else {
        assert.equal(got, f.hex);
      }
    } else {
      const check = replies[key];
      assert.ok(check, `no decoder check for reply frame ${key}: add one`);
      assert.equal(f.elided, false);
      check(body(f.hex));
    }
  });
}

test("every check in this file matches a frame of the examples", () => {
  const keys = new Set(frames.map((f) => `${f.section}/${f.index}`));
  for (const k of [...Object.keys(requests), ...Object.keys(replies)]) assert.ok(keys.has(k), `stale check ${k}`);
});
