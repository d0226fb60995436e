/**
 * The beuss wire codec (protocol.md sections 2-6, 13, 15, 16, 17, 18 and 19): request encoders and
 * response decoders. Pure functions over Buffers, no I/O, so the unit tests can check
 * every documented frame byte for byte.
 *
 * Encoders return one Buffer per frame, sized exactly, so that the connection can
 * gather a batch of them into a single socket write.
 */

/** Request opcodes (protocol.md 3, 13.12, 15.13, 16.10, 17.9). */
export const Op = {
  HELLO: 0x01,
  PING: 0x02,
  QUIT: 0x03,
  PUT: 0x10,
  GET: 0x11,
  PURGE: 0x12,
  LEASE: 0x13,
  ACK: 0x14,
  NACK: 0x15,
  TOUCH: 0x16,
  PEEK: 0x17,
  MOVE: 0x18,
  STATS: 0x20,
  BIND: 0x30,
  UNBIND: 0x31,
  PUB: 0x32,
  SUB: 0x33,
  UNSUB: 0x34,
  REQ: 0x35,
  REPLY: 0x36,
  AUTH: 0x40,
  SCHEDULE: 0x50,
  UNSCHEDULE: 0x51,
  PAUSE_SCHEDULE: 0x52,
  SCHEDULES: 0x53,
} as const;

/** Response statuses (protocol.md 4, 13.12, 15.13, 16.10, 17.9, 18.8). */
export const Status = {
  PONG: 0x01,
  HELLO: 0x02,
  BYE: 0x03,
  AUTHED: 0x04,
  STORED: 0x10,
  TRUNCATED: 0x11,
  MESSAGES: 0x12,
  EMPTY: 0x13,
  PURGED: 0x14,
  LEASED: 0x15,
  SETTLED: 0x16,
  PEEKED: 0x17,
  MOVED: 0x18,
  STATS: 0x20,
  BOUND: 0x30,
  UNBOUND: 0x31,
  PUBLISHED: 0x32,
  SUBSCRIBED: 0x33,
  UNSUBSCRIBED: 0x34,
  REPLY: 0x35,
  REPLIED: 0x36,
  ENVELOPES: 0x37,
  EVENT: 0x3f,
  SCHEDULED: 0x50,
  UNSCHEDULED: 0x51,
  SCHEDULE_PAUSED: 0x52,
  SCHEDULE_LIST: 0x53,
  DUPLICATE: 0x54,
  REPLACED: 0x55,
  ERROR: 0x7f,
} as const;

/** Flag bits (protocol.md 9.3, 18.3, 19.2). */
export const Flag = { PUT_OPTIONS: 0x01, WITH_META: 0x02, PUT_UNIQUE: 0x04, PUT_TTL: 0x08 } as const;

/** `features` bits of a version-2+ HELLO reply (protocol.md 13.1). */
export const Feature = {
  LEASES: 0x01,
  PUT_OPTIONS: 0x02,
  DURABLE: 0x04,
  SYNCED: 0x08,
  FANOUT: 0x10,
  /** The server requires AUTH before anything but HELLO, PING and QUIT (16.3). */
  AUTH_REQUIRED: 0x20,
  /** SCHEDULE, UNSCHEDULE, PAUSE_SCHEDULE and SCHEDULES (17.1); only with version 5+. */
  SCHEDULES: 0x40,
  /** PUT with a unique key (PUT_UNIQUE), DUPLICATE and REPLACED (18.1); only with version 6+. */
  UNIQUE: 0x80,
  /** PUT with a time to live (PUT_TTL) (19.1); only with version 6+. */
  TTL: 0x100,
} as const;

/** Highest protocol version this client speaks. */
export const PROTOCOL_VERSION = 6;
/** Longest token an AUTH frame carries (protocol.md 16.2). */
export const MAX_TOKEN = 1022;
/** `wait_ms` meaning "wait forever" (protocol.md 3.5). */
export const WAIT_FOREVER = 0xffffffff;
/** `max_deliveries` meaning "never dead-letter" (protocol.md 13.5). */
export const NEVER_DEAD = 0xffff;
/** Most `(id, attempt)` pairs one settle request may carry (protocol.md 13.6). */
export const MAX_SETTLE_PAIRS = 4096;
/** Longest declared `length` of a SCHEDULE frame, its payload included (protocol.md 17.3). */
export const MAX_SCHEDULE_FRAME = 65536;
/** Longest dedup window of a unique key: 30 days in ms (protocol.md 18.3). */
export const MAX_UNIQUE_WINDOW_MS = 2_592_000_000;
/** Longest unique key, in bytes (protocol.md 18.5). */
export const MAX_UNIQUE_KEY = 255;
/** `mode` bits of a PUT with a unique key (protocol.md 18.3). */
export const UniqueMode = { REPLACE: 0x01 } as const;
/** Longest time to live of a message: 30 days in ms (protocol.md 19.2). */
export const MAX_TTL_MS = 2_592_000_000;
/** `mode` bits of a PUT with a time to live (protocol.md 19.2). */
export const TtlMode = { DEAD_LETTER: 0x01 } as const;
/** Priority a plain PUT gets (protocol.md 13.3). */
export const DEFAULT_PRIORITY = 5;
/** NACK option bits (protocol.md 13.6). */
export const NackOption = { DEAD: 0x01, NO_CHARGE: 0x02 } as const;
/** Metadata tags (protocol.md 15.7). */
export const MetaTag = { SUBJECT: 1, REPLY_TO: 2, DROPPED: 3 } as const;

/** Bytes accepted wherever the protocol carries a payload. */
export type Payload = Uint8Array | string;

/** Thrown by the decoders for a frame that breaks the protocol: the peer cannot be trusted. */
export class CodecError extends Error {
  override name = "CodecError";
}

/** One `(id, attempt)` pair naming a lease (protocol.md 13.6). */
export interface LeasePair {
  /** The message id. */
  readonly id: bigint;
  /** The attempt number of the lease. */
  readonly attempt: number;
}

/** UTF-8 bytes of a string, or the bytes themselves. */
export function toBytes(payload: Payload): Uint8Array {
  return typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
}

/**
 * A queue name, subject or pattern as its UTF-8 bytes, checked for the 1..255 byte
 * range here, because the server answers a bad one with a fatal error that would
 * also cost every other request in flight.
 */
export function nameBytes(name: string, what = "queue name"): Buffer {
  // A client uses a handful of names over and over: encoding each once saves a UTF-8
  // pass per request on the hot path. The buffers are only ever read.
  let b = NAME_CACHE.get(name);
  if (b) return b;
  b = Buffer.from(name, "utf8");
  if (b.length < 1 || b.length > 255) {
    throw new RangeError(`${what} must be 1..255 bytes of UTF-8, got ${b.length} bytes`);
  }
  if (NAME_CACHE.size >= 1024) NAME_CACHE.clear();
  NAME_CACHE.set(name, b);
  return b;
}
const NAME_CACHE = new Map<string, Buffer>();

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} must be a u32, got ${v}`);
  return v;
}

function checkU16(v: number, what: string, min = 0): number {
  if (!Number.isInteger(v) || v < min || v > 0xffff) throw new RangeError(`${what} must be ${min}..65535, got ${v}`);
  return v;
}

/** A header-only request: length 2, opcode, flags 0. */
function bare(op: number): Buffer {
  const b = Buffer.allocUnsafe(6);
  b.writeUInt32BE(2, 0);
  b[4] = op;
  b[5] = 0;
  return b;
}

/**
 * Starts a frame: allocates `6 + bodyLen` bytes and writes length, opcode and flags.
 * Returns the buffer; the body starts at offset 6.
 */
function frame(op: number, flags: number, bodyLen: number): Buffer {
  if (bodyLen + 2 > 0xffffffff) throw new RangeError("frame longer than 2^32 - 1 bytes");
  const b = Buffer.allocUnsafe(6 + bodyLen);
  b.writeUInt32BE(2 + bodyLen, 0);
  b[4] = op;
  b[5] = flags;
  return b;
}

/** HELLO (3.1). */
export function encodeHello(version: number): Buffer {
  const b = frame(Op.HELLO, 0, 2);
  b.writeUInt16BE(checkU16(version, "version", 1), 6);
  return b;
}

/** AUTH (16.2): presents `token`, 1 to 1022 bytes. */
export function encodeAuth(token: Uint8Array): Buffer {
  if (token.length < 1 || token.length > MAX_TOKEN) {
    throw new RangeError(`an AUTH token is 1 to ${MAX_TOKEN} bytes, not ${token.length}`);
  }
  const b = frame(Op.AUTH, 0, token.length);
  b.set(token, 6);
  return b;
}

/** AUTHED (16.2): true when the token is read-only (any access byte but 0). */
export function decodeAuthed(body: Buffer): boolean {
  return new Reader(body, 1).u8() !== 0;
}

/** PING (3.2). */
export function encodePing(): Buffer {
  return bare(Op.PING);
}

/** QUIT (3.3). */
export function encodeQuit(): Buffer {
  return bare(Op.QUIT);
}

/** Options of a PUT with the PUT_OPTIONS flag (13.4). */
export interface PutOptions {
  /** Milliseconds before the message becomes ready; 0 = now. */
  delayMs?: number;
  /** 0 (first) .. 9 (last); 5 is a plain PUT's. */
  priority?: number;
}

/** The unique-key fields of a PUT with the PUT_UNIQUE flag (18.3). */
export interface UniqueKey {
  /** The key, 1..255 bytes, any bytes. */
  key: Uint8Array;
  /** Replace the ready or delayed message that holds the key (mode 0x01) instead of refusing. */
  replace?: boolean;
  /** Milliseconds the key is remembered after its message leaves the queue; 0 = forgotten at once. */
  windowMs?: number;
}

/** The time-to-live fields of a PUT with the PUT_TTL flag (19.2). */
export interface Ttl {
  /**
   * Milliseconds from the PUT after which the message is never delivered, at most
   * 30 days (MAX_TTL_MS); 0 = it never expires, whatever its queue's default.
   */
  ttlMs: number;
  /** Move the expired message to `<queue>.dead` (mode 0x01) instead of dropping it. */
  deadLetter?: boolean;
}

/**
 * PUT (3.4; with `options`, the PUT_OPTIONS form of 13.4 whose reply carries the id;
 * with `unique`, the PUT_UNIQUE form of 18.3, whose fields come after the options';
 * with `ttl`, the PUT_TTL form of 19.2, whose fields come after both).
 * Passing `options` (even `{}`) selects the PUT_OPTIONS form; any of the three flags
 * makes the server answer with the id.
 */
export function encodePut(queue: Uint8Array, payload: Uint8Array, options?: PutOptions, unique?: UniqueKey, ttl?: Ttl): Buffer {
  // Everything is checked before the frame is allocated: a bad field here would be a
  // fatal BAD_ARGUMENT on the server, costing every other request in flight.
  let delay = 0;
  let priority = DEFAULT_PRIORITY;
  if (options) {
    delay = checkU32(options.delayMs ?? 0, "delayMs");
    priority = options.priority ?? DEFAULT_PRIORITY;
    if (!Number.isInteger(priority) || priority < 0 || priority > 9) throw new RangeError(`priority must be 0..9, got ${priority}`);
  }
  let window = 0;
  if (unique) {
    field8(unique.key, "unique key");
    window = unique.windowMs ?? 0;
    if (!Number.isInteger(window) || window < 0 || window > MAX_UNIQUE_WINDOW_MS) {
      throw new RangeError(`a unique key's window must be 0..${MAX_UNIQUE_WINDOW_MS} ms (30 days), got ${window}`);
    }
  }
  if (ttl) {
    const t = ttl.ttlMs;
    if (!Number.isInteger(t) || t < 0 || t > MAX_TTL_MS) {
      throw new RangeError(`a time to live must be 0..${MAX_TTL_MS} ms (30 days), got ${t}`);
    }
  }
  const extra = (options ? 5 : 0) + (unique ? 1 + unique.key.length + 5 : 0) + (ttl ? 5 : 0);
  const flags = (options ? Flag.PUT_OPTIONS : 0) | (unique ? Flag.PUT_UNIQUE : 0) | (ttl ? Flag.PUT_TTL : 0);
  const b = frame(Op.PUT, flags, 1 + queue.length + extra + payload.length);
  b[6] = queue.length;
  b.set(queue, 7);
  let o = 7 + queue.length;
  if (options) {
    b.writeUInt32BE(delay, o);
    b[o + 4] = priority;
    o += 5;
  }
  if (unique) {
    b[o] = unique.key.length;
    b.set(unique.key, o + 1);
    o += 1 + unique.key.length;
    b[o] = unique.replace ? UniqueMode.REPLACE : 0;
    b.writeUInt32BE(window, o + 1);
    o += 5;
  }
  if (ttl) {
    b.writeUInt32BE(ttl.ttlMs, o);
    b[o + 4] = ttl.deadLetter ? TtlMode.DEAD_LETTER : 0;
    o += 5;
  }
  b.set(payload, o);
  return b;
}

/** GET (3.5); `withMeta` sets WITH_META (15.9). */
export function encodeGet(queue: Uint8Array, waitMs: number, max: number, withMeta = false): Buffer {
  const b = frame(Op.GET, withMeta ? Flag.WITH_META : 0, 1 + queue.length + 6);
  b[6] = queue.length;
  b.set(queue, 7);
  const o = 7 + queue.length;
  b.writeUInt32BE(checkU32(waitMs, "waitMs"), o);
  b.writeUInt16BE(checkU16(max, "max", 1), o + 4);
  return b;
}

/** A request whose body is one name: PURGE (3.6), SUB (15.6), UNSCHEDULE (17.4), SCHEDULES (17.6). */
function oneName(op: number, name: Uint8Array): Buffer {
  const b = frame(op, 0, 1 + name.length);
  b[6] = name.length;
  b.set(name, 7);
  return b;
}

/** PURGE (3.6). */
export function encodePurge(queue: Uint8Array): Buffer {
  return oneName(Op.PURGE, queue);
}

/** STATS (3.7); no queue (or an empty one) asks for every queue. */
export function encodeStats(queue?: Uint8Array): Buffer {
  const q = queue ?? new Uint8Array(0);
  const b = frame(Op.STATS, 0, 1 + q.length);
  b[6] = q.length;
  b.set(q, 7);
  return b;
}

/** Fields of a LEASE (13.5). */
export interface LeaseRequest {
  /** Milliseconds to wait for a message; WAIT_FOREVER for ever. */
  waitMs: number;
  /** Most messages wanted, 1..65535. */
  max: number;
  /** Lease length; 0 = the server's default. */
  leaseMs: number;
  /** Dead-letter after this many charged deliveries; 0 = default, NEVER_DEAD = never. */
  maxDeliveries: number;
  /** The lease does not end with the connection. */
  detached: boolean;
}

/** LEASE (13.5); `withMeta` sets WITH_META (15.9). */
export function encodeLease(queue: Uint8Array, r: LeaseRequest, withMeta = false): Buffer {
  const b = frame(Op.LEASE, withMeta ? Flag.WITH_META : 0, 1 + queue.length + 13);
  b[6] = queue.length;
  b.set(queue, 7);
  const o = 7 + queue.length;
  b.writeUInt32BE(checkU32(r.waitMs, "waitMs"), o);
  b.writeUInt16BE(checkU16(r.max, "max", 1), o + 4);
  b.writeUInt32BE(checkU32(r.leaseMs, "leaseMs"), o + 6);
  b.writeUInt16BE(checkU16(r.maxDeliveries, "maxDeliveries"), o + 10);
  b[o + 12] = r.detached ? 1 : 0;
  return b;
}

/**
 * ACK, NACK or TOUCH (13.6): `fixed` is the bytes between the queue and the count
 * (NACK: delay_ms and options; TOUCH: lease_ms; ACK: none).
 */
function settle(op: number, queue: Uint8Array, fixed: Buffer | null, pairs: readonly LeasePair[]): Buffer {
  if (pairs.length < 1 || pairs.length > MAX_SETTLE_PAIRS) {
    throw new RangeError(`a settle request carries 1..${MAX_SETTLE_PAIRS} pairs, got ${pairs.length}`);
  }
  const fl = fixed ? fixed.length : 0;
  const b = frame(op, 0, 1 + queue.length + fl + 2 + 12 * pairs.length);
  b[6] = queue.length;
  b.set(queue, 7);
  let o = 7 + queue.length;
  if (fixed) {
    b.set(fixed, o);
    o += fl;
  }
  b.writeUInt16BE(pairs.length, o);
  o += 2;
  for (const p of pairs) {
    b.writeBigUInt64BE(p.id, o);
    b.writeUInt32BE(checkU32(p.attempt, "attempt"), o + 8);
    o += 12;
  }
  return b;
}

/** ACK (13.6). */
export function encodeAck(queue: Uint8Array, pairs: readonly LeasePair[]): Buffer {
  return settle(Op.ACK, queue, null, pairs);
}

/** NACK (13.6); `options` holds NackOption bits. */
export function encodeNack(queue: Uint8Array, delayMs: number, options: number, pairs: readonly LeasePair[]): Buffer {
  const f = Buffer.allocUnsafe(5);
  f.writeUInt32BE(checkU32(delayMs, "delayMs"), 0);
  f[4] = options;
  return settle(Op.NACK, queue, f, pairs);
}

/** TOUCH (13.6); `leaseMs` 0 = the length the LEASE asked for. */
export function encodeTouch(queue: Uint8Array, leaseMs: number, pairs: readonly LeasePair[]): Buffer {
  const f = Buffer.allocUnsafe(4);
  f.writeUInt32BE(checkU32(leaseMs, "leaseMs"), 0);
  return settle(Op.TOUCH, queue, f, pairs);
}

/** PEEK (13.8); `withMeta` sets WITH_META (15.9). */
export function encodePeek(queue: Uint8Array, max: number, withMeta = false): Buffer {
  const b = frame(Op.PEEK, withMeta ? Flag.WITH_META : 0, 1 + queue.length + 2);
  b[6] = queue.length;
  b.set(queue, 7);
  b.writeUInt16BE(checkU16(max, "max", 1), 7 + queue.length);
  return b;
}

/** MOVE (13.9). */
export function encodeMove(from: Uint8Array, to: Uint8Array, max: number): Buffer {
  const b = frame(Op.MOVE, 0, 2 + from.length + to.length + 4);
  b[6] = from.length;
  b.set(from, 7);
  let o = 7 + from.length;
  b[o] = to.length;
  b.set(to, o + 1);
  o += 1 + to.length;
  b.writeUInt32BE(checkU32(max, "max"), o);
  return b;
}

/** BIND or UNBIND (15.3). */
export function encodeBind(pattern: Uint8Array, queue: Uint8Array, unbind = false): Buffer {
  const b = frame(unbind ? Op.UNBIND : Op.BIND, 0, 2 + pattern.length + queue.length);
  b[6] = pattern.length;
  b.set(pattern, 7);
  const o = 7 + pattern.length;
  b[o] = queue.length;
  b.set(queue, o + 1);
  return b;
}

/** Fields of a PUB (15.4). */
export interface PubRequest {
  /** Delay of the queue copies. */
  delayMs: number;
  /** Priority of the queue copies, 0..9. */
  priority: number;
  /** Copies to be confirmed before the reply; 0 = answer at once. */
  confirm: number;
  /** With confirm > 0: longest wait for the confirmations. */
  timeoutMs: number;
}

/** PUB (15.4). */
export function encodePub(subject: Uint8Array, r: PubRequest, payload: Uint8Array): Buffer {
  const b = frame(Op.PUB, 0, 1 + subject.length + 13 + payload.length);
  b[6] = subject.length;
  b.set(subject, 7);
  const o = 7 + subject.length;
  b.writeUInt32BE(checkU32(r.delayMs, "delayMs"), o);
  if (!Number.isInteger(r.priority) || r.priority < 0 || r.priority > 9) {
    throw new RangeError(`priority must be 0..9, got ${r.priority}`);
  }
  b[o + 4] = r.priority;
  b.writeUInt32BE(checkU32(r.confirm, "confirm"), o + 5);
  b.writeUInt32BE(checkU32(r.timeoutMs, "timeoutMs"), o + 9);
  b.set(payload, o + 13);
  return b;
}

/** SUB (15.6). */
export function encodeSub(pattern: Uint8Array): Buffer {
  return oneName(Op.SUB, pattern);
}

/** UNSUB (15.6). */
export function encodeUnsub(sid: number): Buffer {
  const b = frame(Op.UNSUB, 0, 4);
  b.writeUInt32BE(checkU32(sid, "sid"), 6);
  return b;
}

/** REQ (15.8). */
export function encodeReq(subject: Uint8Array, timeoutMs: number, payload: Uint8Array): Buffer {
  const b = frame(Op.REQ, 0, 1 + subject.length + 4 + payload.length);
  b[6] = subject.length;
  b.set(subject, 7);
  b.writeUInt32BE(checkU32(timeoutMs, "timeoutMs"), 7 + subject.length);
  b.set(payload, 11 + subject.length);
  return b;
}

/** REPLY, the request a responder sends (15.8). */
export function encodeReply(replyTo: bigint, payload: Uint8Array): Buffer {
  const b = frame(Op.REPLY, 0, 8 + payload.length);
  b.writeBigUInt64BE(replyTo, 6);
  b.set(payload, 14);
  return b;
}

/** A u8-prefixed field's bytes (2.1), checked for 1..255 bytes: a longer one cannot be encoded. */
function field8(bytes: Uint8Array, what: string): Uint8Array {
  if (bytes.length < 1 || bytes.length > 255) throw new RangeError(`${what} must be 1..255 bytes, got ${bytes.length} bytes`);
  return bytes;
}

/**
 * Checks that `subject` names one subject, as a schedule's must (17.3): no `*` or `>`
 * byte, since those are wildcards as a whole token and invalid inside one (15.1); the
 * server would answer either with a fatal BAD_SUBJECT. The other subject rules are the
 * server's to check.
 */
export function checkNoWildcard(subject: Uint8Array): Uint8Array {
  const i = subject.findIndex((c) => c === 0x2a || c === 0x3e);
  if (i >= 0) throw new RangeError(`a schedule's subject has no wildcard, got '${String.fromCharCode(subject[i]!)}' at byte ${i}`);
  return subject;
}

/** Fields of a SCHEDULE (17.3) besides its name. */
export interface ScheduleRequest {
  /** When it runs (17.2), 1..255 bytes of UTF-8. */
  spec: Uint8Array;
  /** The target is a subject (target_kind 1), not a queue (0). */
  toSubject: boolean;
  /** The queue name, or the subject without wildcards. */
  target: Uint8Array;
  /** Priority of its messages, 0..9. */
  priority: number;
  /** The payload of its messages. */
  payload: Uint8Array;
}

/**
 * SCHEDULE (17.3). Its whole frame may declare a length of at most 65536
 * (MAX_SCHEDULE_FRAME): a longer one would be a fatal FRAME_TOO_LARGE.
 */
export function encodeSchedule(name: Uint8Array, r: ScheduleRequest): Buffer {
  field8(name, "schedule name");
  field8(r.spec, "spec");
  field8(r.target, r.toSubject ? "subject" : "queue name");
  if (r.toSubject) checkNoWildcard(r.target);
  if (!Number.isInteger(r.priority) || r.priority < 0 || r.priority > 9) {
    throw new RangeError(`priority must be 0..9, got ${r.priority}`);
  }
  const bodyLen = 1 + name.length + 1 + r.spec.length + 1 + 1 + r.target.length + 1 + r.payload.length;
  if (2 + bodyLen > MAX_SCHEDULE_FRAME) {
    throw new RangeError(`a SCHEDULE frame declares at most ${MAX_SCHEDULE_FRAME} bytes, this one ${2 + bodyLen} (payload of ${r.payload.length})`);
  }
  const b = frame(Op.SCHEDULE, 0, bodyLen);
  let o = 6;
  for (const f of [name, r.spec]) {
    b[o] = f.length;
    b.set(f, o + 1);
    o += 1 + f.length;
  }
  b[o] = r.toSubject ? 1 : 0;
  b[o + 1] = r.target.length;
  b.set(r.target, o + 2);
  o += 2 + r.target.length;
  b[o] = r.priority;
  b.set(r.payload, o + 1);
  return b;
}

/** UNSCHEDULE (17.4). */
export function encodeUnschedule(name: Uint8Array): Buffer {
  return oneName(Op.UNSCHEDULE, field8(name, "schedule name"));
}

/** PAUSE_SCHEDULE (17.5): `paused` true pauses, false resumes. */
export function encodePauseSchedule(name: Uint8Array, paused: boolean): Buffer {
  field8(name, "schedule name");
  const b = frame(Op.PAUSE_SCHEDULE, 0, 1 + name.length + 1);
  b[6] = name.length;
  b.set(name, 7);
  b[7 + name.length] = paused ? 1 : 0;
  return b;
}

/** SCHEDULES (17.6); no name (or an empty one) asks for every schedule. */
export function encodeSchedules(name?: Uint8Array): Buffer {
  const n = name ?? new Uint8Array(0);
  if (n.length > 255) throw new RangeError(`schedule name must be 1..255 bytes, got ${n.length} bytes`);
  return oneName(Op.SCHEDULES, n);
}

// ---------------------------------------------------------------------------
// Decoding. `body` is a response frame without its 4-byte length: status first.

/**
 * A bounds-checked reader over one frame, so that a short or lying frame from a
 * broken peer raises CodecError instead of reading garbage.
 */
export class Reader {
  /** Offset of the next byte to read. */
  pos: number;
  /** @param buf the frame; @param pos where reading starts */
  constructor(
    readonly buf: Buffer,
    pos = 0,
  ) {
    this.pos = pos;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new CodecError(`frame too short: need ${n} bytes at offset ${this.pos}, frame has ${this.buf.length}`);
    }
  }
  /** Reads a u8. */
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  /** Reads a big-endian u16. */
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  /** Reads a big-endian u32. */
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  /** Reads a big-endian u64. */
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  /** Reads `n` bytes as a copy, so that the result does not pin the receive buffer. */
  bytes(n: number): Buffer {
    this.need(n);
    const v = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return v;
  }
  /** Reads `n` bytes as UTF-8 text. */
  text(n: number): string {
    this.need(n);
    const v = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** Reads a u8-prefixed string (2.1). */
  str8(): string {
    return this.text(this.u8());
  }
  /** The rest of the frame, copied. */
  rest(): Buffer {
    const v = Buffer.from(this.buf.subarray(this.pos));
    this.pos = this.buf.length;
    return v;
  }
}

/** The decoded HELLO reply (4.2, 13.1). Version-2 fields are undefined in a version-1 reply. */
export interface HelloReply {
  /** Protocol version the server speaks on this connection. */
  version: number;
  /** The server's BMAXMESSAGESIZE. */
  maxMessageSize: number;
  /** Software name and version, for logs. */
  server: string;
  /** Feature bits (13.1); 0 in a version-1 reply. */
  features: number;
  /** Lease given when a LEASE asks for 0. */
  defaultLeaseMs?: number;
  /** Longest lease. */
  maxLeaseMs?: number;
  /** Longest delay. */
  maxDelayMs?: number;
  /** Default max deliveries. */
  maxDeliveries?: number;
}

/** Decodes a HELLO reply; trailing bytes beyond the known fields are ignored (9.2). */
export function decodeHello(body: Buffer): HelloReply {
  const r = new Reader(body, 1);
  const h: HelloReply = { version: r.u16(), maxMessageSize: r.u32(), server: r.str8(), features: 0 };
  if (h.version >= 2) {
    h.features = r.u32();
    h.defaultLeaseMs = r.u32();
    h.maxLeaseMs = r.u32();
    h.maxDelayMs = r.u32();
    h.maxDeliveries = r.u16();
  }
  return h;
}

/**
 * Where the message holding a unique key stands, from a DUPLICATE reply (18.3):
 * `"ready"` (1), `"delayed"` (2), `"inFlight"` (3, leased), or `"gone"` (4: it left the
 * queue and its key is remembered for its window).
 */
export type DuplicateState = "ready" | "delayed" | "inFlight" | "gone";
// Indexed by the state byte; 0 is not a state.
const DUPLICATE_STATES: readonly (DuplicateState | undefined)[] = [undefined, "ready", "delayed", "inFlight", "gone"];

/**
 * The decoded reply to a PUT: STORED or TRUNCATED (4.3, 13.4), and for a PUT with a
 * unique key also DUPLICATE or REPLACED (18.3).
 */
export interface PutReply {
  /** The payload was cut to `storedLength` bytes (false for a duplicate: nothing was stored). */
  truncated: boolean;
  /** Payload length sent (only when `truncated`). */
  originalLength?: number;
  /** Payload length kept (only when `truncated`). */
  storedLength?: number;
  /**
   * The message id (for a PUT with options or a key). For a duplicate or a replace,
   * the id of the message that holds (or, when `"gone"`, held) the key.
   */
  id?: bigint;
  /**
   * Set when a PUT with a key was not stored because another message holds the key:
   * where that message stands. Not an error; the connection goes on.
   */
  duplicate?: DuplicateState;
  /** True when a PUT with `replace` changed the waiting message that holds the key. */
  replaced?: boolean;
}

/**
 * Decodes a PUT reply by its status: STORED or TRUNCATED (`withId` for the reply to a
 * PUT with options or a key, which carries the id), DUPLICATE or REPLACED (18.3).
 */
export function decodePut(body: Buffer, withId: boolean): PutReply {
  if (body[0] === Status.DUPLICATE) return decodeDuplicate(body);
  if (body[0] === Status.REPLACED) return decodeReplaced(body);
  const r = new Reader(body, 1);
  const out: PutReply = { truncated: body[0] === Status.TRUNCATED };
  if (out.truncated) {
    out.originalLength = r.u32();
    out.storedLength = r.u32();
  }
  if (withId) out.id = r.u64();
  return out;
}

/** Decodes DUPLICATE (18.3): the id of the message holding the key, and its state. */
export function decodeDuplicate(body: Buffer): PutReply {
  const r = new Reader(body, 1);
  const id = r.u64();
  const v = r.u8();
  const duplicate = DUPLICATE_STATES[v];
  // A version-6 server sends only states 1..4; another byte means the frame cannot be trusted.
  if (duplicate === undefined) throw new CodecError(`unknown DUPLICATE state ${v}`);
  return { truncated: false, id, duplicate };
}

/**
 * Decodes REPLACED (18.3). The lengths are reported as for TRUNCATED: only when the
 * payload was cut, so that `truncated` means the same for every PUT reply.
 */
export function decodeReplaced(body: Buffer): PutReply {
  const r = new Reader(body, 1);
  const id = r.u64();
  const originalLength = r.u32();
  const storedLength = r.u32();
  const out: PutReply = { truncated: storedLength < originalLength };
  if (out.truncated) {
    out.originalLength = originalLength;
    out.storedLength = storedLength;
  }
  out.id = id;
  out.replaced = true;
  return out;
}

/** A message as decoded from MESSAGES, LEASED, PEEKED or ENVELOPES. */
export interface RawMessage {
  /** The payload. */
  data: Buffer;
  /** The id (LEASED, PEEKED, ENVELOPES). */
  id?: bigint;
  /** The attempt number (LEASED, PEEKED, ENVELOPES). */
  attempt?: number;
  /** SUBJECT metadata (ENVELOPES). */
  subject?: string;
  /** REPLY_TO metadata (ENVELOPES). */
  replyTo?: bigint;
}

/** A list reply (MESSAGES, LEASED, PEEKED, ENVELOPES): EMPTY gives [], else u32 count then `one` each. */
function decodeList(body: Buffer, one: (r: Reader) => RawMessage): RawMessage[] {
  if (body[0] === Status.EMPTY) return [];
  const r = new Reader(body, 1);
  const n = r.u32();
  const out: RawMessage[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = one(r);
  return out;
}

/** Decodes MESSAGES (4.4); EMPTY gives []. */
export function decodeMessages(body: Buffer): RawMessage[] {
  return decodeList(body, (r) => ({ data: r.bytes(r.u32()) }));
}

/** Decodes LEASED or PEEKED (13.5, 13.8); EMPTY gives []. */
export function decodeLeased(body: Buffer): RawMessage[] {
  return decodeList(body, (r) => {
    const id = r.u64();
    const attempt = r.u32();
    return { id, attempt, data: r.bytes(r.u32()) };
  });
}

/** Decoded metadata block (15.7). */
export interface Meta {
  /** SUBJECT. */
  subject?: string;
  /** REPLY_TO. */
  replyTo?: bigint;
  /** DROPPED. */
  dropped?: number;
}

/**
 * Decodes a metadata block of `len` bytes at the reader's position (15.7): unknown tags
 * are skipped, the first of a repeated tag wins, an entry past the block is an error.
 */
export function decodeMeta(r: Reader, len: number): Meta {
  const end = r.pos + len;
  if (end > r.buf.length) throw new CodecError("meta_len runs past the frame");
  const m: Meta = {};
  while (r.pos < end) {
    if (r.pos + 2 > end) throw new CodecError("metadata entry runs past meta_len");
    const tag = r.buf[r.pos]!;
    const n = r.buf[r.pos + 1]!;
    r.pos += 2;
    if (r.pos + n > end) throw new CodecError("metadata entry runs past meta_len");
    if (tag === MetaTag.SUBJECT && m.subject === undefined) {
      m.subject = r.buf.toString("utf8", r.pos, r.pos + n);
    } else if (tag === MetaTag.REPLY_TO && m.replyTo === undefined && n === 8) {
      m.replyTo = r.buf.readBigUInt64BE(r.pos);
    } else if (tag === MetaTag.DROPPED && m.dropped === undefined && n === 4) {
      m.dropped = r.buf.readUInt32BE(r.pos);
    }
    r.pos += n;
  }
  return m;
}

/** Decodes ENVELOPES (15.9); EMPTY gives []. */
export function decodeEnvelopes(body: Buffer): RawMessage[] {
  return decodeList(body, (r) => {
    const id = r.u64();
    const attempt = r.u32();
    const meta = decodeMeta(r, r.u16());
    const m: RawMessage = { id, attempt, data: r.bytes(r.u32()) };
    if (meta.subject !== undefined) m.subject = meta.subject;
    if (meta.replyTo !== undefined) m.replyTo = meta.replyTo;
    return m;
  });
}

/** Decodes a reply whose body is one u64: PURGED (4.5), MOVED (13.9). */
export function decodeCount64(body: Buffer): bigint {
  return new Reader(body, 1).u64();
}

/** Decodes a reply whose body is one u8 flag: BOUND, UNBOUND, UNSUBSCRIBED, REPLIED, UNSCHEDULED (17.4). */
export function decodeFlag(body: Buffer): boolean {
  return new Reader(body, 1).u8() !== 0;
}

/** Decodes SUBSCRIBED (15.6): the sid. */
export function decodeSubscribed(body: Buffer): number {
  return new Reader(body, 1).u32();
}

/** Result of one `(id, attempt)` pair in a SETTLED reply (13.6). */
export type SettleResult = "ok" | "stale" | "not_found";
const SETTLE_RESULTS: readonly SettleResult[] = ["ok", "stale", "not_found"];

/** Decodes SETTLED (13.6). An unknown result byte is kept as "not_found"'s neighbour: an error. */
export function decodeSettled(body: Buffer): SettleResult[] {
  const r = new Reader(body, 1);
  const n = r.u16();
  const out: SettleResult[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = r.u8();
    const res = SETTLE_RESULTS[v];
    if (res === undefined) throw new CodecError(`unknown settle result ${v}`);
    out[i] = res;
  }
  return out;
}

/** The STATS reply (6): u64 figures by name, for the server and per queue. */
export interface Stats {
  /** Server-wide figures (6.1, 13.11, 14.3, 15.11, 18.6, 19.5). */
  server: Map<string, bigint>;
  /** Figures of each queue (6.2, 13.11, 15.11, 19.5), by queue name. */
  queues: Map<string, Map<string, bigint>>;
}

function figures(r: Reader, n: number): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (let i = 0; i < n; i++) {
    const name = r.str8();
    const v = r.u64();
    if (!m.has(name)) m.set(name, v);
  }
  return m;
}

/** Decodes STATS (6). */
export function decodeStats(body: Buffer): Stats {
  const r = new Reader(body, 1);
  const server = figures(r, r.u16());
  const nq = r.u32();
  const queues = new Map<string, Map<string, bigint>>();
  for (let i = 0; i < nq; i++) {
    const name = r.str8();
    queues.set(name, figures(r, r.u16()));
  }
  return { server, queues };
}

/** The PUBLISHED reply (15.4). */
export interface PublishResult {
  /** Copies stored: the number of queues that got one. */
  queues: number;
  /** EVENTs queued to subscriptions. */
  subscribers: number;
  /** Payload length sent. */
  originalLength: number;
  /** Payload length kept. */
  storedLength: number;
  /** The payload was cut. */
  truncated: boolean;
  /** Copies confirmed (with confirm). */
  acked: number;
  /** Copies dead-lettered or purged before they were confirmed. */
  failed: number;
}

/** Decodes PUBLISHED (15.4). */
export function decodePublished(body: Buffer): PublishResult {
  const r = new Reader(body, 1);
  const queues = r.u32();
  const subscribers = r.u32();
  const originalLength = r.u32();
  const storedLength = r.u32();
  const acked = r.u32();
  const failed = r.u32();
  return { queues, subscribers, originalLength, storedLength, truncated: storedLength < originalLength, acked, failed };
}

/** A decoded EVENT frame (15.6). */
export interface RawEvent extends Meta {
  /** The subscription it matched. */
  sid: number;
  /** The payload. */
  data: Buffer;
}

/** Decodes EVENT (15.6). */
export function decodeEvent(body: Buffer): RawEvent {
  const r = new Reader(body, 1);
  const sid = r.u32();
  const meta = decodeMeta(r, r.u16());
  return { sid, ...meta, data: r.rest() };
}

/** The SCHEDULED reply (17.3). */
export interface ScheduleResult {
  /** A new schedule; false when one of that name was replaced. */
  created: boolean;
  /** Its first run time, milliseconds since 1970-01-01T00:00:00Z. */
  nextRunMs: bigint;
}

/** Decodes SCHEDULED (17.3). */
export function decodeScheduled(body: Buffer): ScheduleResult {
  const r = new Reader(body, 1);
  const created = r.u8() !== 0;
  return { created, nextRunMs: r.u64() };
}

/**
 * Decodes SCHEDULE_PAUSED (17.5): the schedule's next run time (0n while paused), or
 * null when there is no such schedule.
 */
export function decodeSchedulePaused(body: Buffer): bigint | null {
  const r = new Reader(body, 1);
  const found = r.u8() !== 0;
  const next = r.u64();
  return found ? next : null;
}

/** One schedule as SCHEDULE_LIST describes it (17.6). */
export interface ScheduleInfo {
  /** Its name. */
  name: string;
  /** When it runs, as it was given (17.2). */
  spec: string;
  /** The target is a subject; false for a queue. */
  toSubject: boolean;
  /** The queue name or subject its messages go to. */
  target: string;
  /** Priority of its messages. */
  priority: number;
  /** It is paused. */
  paused: boolean;
  /** Next run time (ms since 1970, UTC); 0n while paused or when none is left. */
  nextRunMs: bigint;
  /** Time of the last run; 0n before the first. */
  lastRunMs: bigint;
  /** Runs so far, refused ones included. */
  runs: bigint;
  /** Late runs that stood for missed run times (17.2). */
  misfires: bigint;
  /** Runs whose message was refused (17.2). */
  failures: bigint;
  /** Bytes of its payload (the payload is not listed). */
  payloadLength: number;
}

/** The fields of one SCHEDULE_LIST entry, read from a reader over that entry alone. */
function scheduleEntry(e: Reader): ScheduleInfo {
  const name = e.str8();
  const spec = e.str8();
  const kind = e.u8();
  if (kind > 1) throw new CodecError(`unknown target_kind ${kind}`);
  const target = e.str8();
  const priority = e.u8();
  const paused = e.u8() !== 0;
  const nextRunMs = e.u64();
  const lastRunMs = e.u64();
  const runs = e.u64();
  const misfires = e.u64();
  const failures = e.u64();
  const payloadLength = e.u32();
  return { name, spec, toSubject: kind === 1, target, priority, paused, nextRunMs, lastRunMs, runs, misfires, failures, payloadLength };
}

/**
 * Decodes SCHEDULE_LIST (17.6). Each entry is read within its `entry_len`: bytes a
 * later version appends to an entry are skipped, a field running past it is an error.
 */
export function decodeScheduleList(body: Buffer): ScheduleInfo[] {
  const r = new Reader(body, 1);
  const n = r.u32();
  const out: ScheduleInfo[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.u16();
    const start = r.pos;
    if (start + len > body.length) throw new CodecError(`schedule entry of ${len} bytes runs past the frame`);
    try {
      out.push(scheduleEntry(new Reader(body.subarray(start, start + len))));
    } catch (err) {
      if (err instanceof CodecError) throw new CodecError(`schedule entry ${i} (entry_len ${len}): ${err.message}`);
      throw err;
    }
    r.pos = start + len;
  }
  return out;
}

/** A decoded ERROR frame (4.7). */
export interface ErrorReply {
  /** Error code (5). */
  code: number;
  /** The server closes the connection after it. */
  fatal: boolean;
  /** Human-readable text; never to be parsed. */
  text: string;
}

/** Decodes ERROR (4.7). */
export function decodeError(body: Buffer): ErrorReply {
  const r = new Reader(body, 1);
  const code = r.u16();
  const fatal = r.u8() !== 0;
  return { code, fatal, text: body.toString("utf8", r.pos) };
}

/** Decodes the status REPLY (15.8): the responder's payload. */
export function decodeReplyPayload(body: Buffer): Buffer {
  return new Reader(body, 1).rest();
}
