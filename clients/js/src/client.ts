/**
 * The client: one method per protocol operation, promises everywhere, pipelined on one
 * connection (call many methods without awaiting; replies are matched in order).
 */
import * as codec from "./codec.js";
import {
  DEFAULT_PRIORITY,
  Feature,
  MAX_SETTLE_PAIRS,
  NackOption,
  NEVER_DEAD,
  PROTOCOL_VERSION,
  Status,
  WAIT_FOREVER,
  nameBytes,
  toBytes,
  type HelloReply,
  type LeasePair,
  type Payload,
  type PublishResult,
  type ScheduleInfo,
  type ScheduleResult,
  type SettleResult,
  type Stats,
} from "./codec.js";
import { readFileSync } from "node:fs";
import { Connection, type ConnectionOptions } from "./connection.js";
import { ConnectionError, RequestTimeoutError, UnsupportedError } from "./errors.js";
import { LeasedMessage, Message, type NackOptions, type Settler } from "./message.js";
import { Subscription } from "./subscription.js";
import { Consumer, type ConsumeOptions, type Handler } from "./consumer.js";

/** How {@link connect} finds and talks to the server. */
export interface ConnectOptions {
  /** Host; default `BHOST`, else `localhost`. */
  host?: string;
  /** Port; default `BPORT`, else 6552. */
  port?: number;
  /**
   * A Unix socket path instead of host and port (protocol.md 16.6); default `BUNIX`
   * when neither host nor port is given.
   */
  path?: string;
  /**
   * A token to present with AUTH right after HELLO, and again on every reconnect
   * (protocol.md 16.2).
   */
  token?: string | Uint8Array;
  /**
   * A token file (the format of the server's BAUTHFILE; its first token is used).
   * Default `BAUTHFILE` when no token is given.
   */
  tokenFile?: string;
  /**
   * Longest connect time, and the margin allowed beyond the wait a request asks for
   * before the connection is given up (ms, default 10000). A GET waiting 5 s may take
   * 5 s + this margin; one waiting forever is never timed out.
   */
  timeoutMs?: number;
  /** Highest protocol version to ask for in HELLO (default 6, the newest this client knows). */
  version?: number;
  /** Largest reply frame accepted, in bytes (default: derived from the server's max_message_size). */
  maxFrameBytes?: number;
  /** Events kept in memory per subscription before newer ones are dropped (default 10000). */
  maxPendingEvents?: number;
}

/** What the server said in its HELLO reply (protocol.md 4.2, 13.1). */
export interface ServerInfo extends HelloReply {
  /** True if the server sets every bit of `feature` (a {@link Feature} value). */
  has(feature: number): boolean;
}

/**
 * Result of a PUT. For a PUT with a unique key, `duplicate` set means nothing was
 * stored (`id` is the message that holds the key), `replaced` means the waiting message
 * `id` was changed; neither set means a new message `id` was stored.
 */
export interface PutResult extends codec.PutReply {}

/** Options of put() and putMany() (protocol.md 13.4, 18.3, 19.2). */
export interface PutOptions extends codec.PutOptions {
  /**
   * A unique key (protocol.md 18), 1..255 bytes (a string as UTF-8): while a message of
   * the queue holds it, another put with it is not stored and resolves with
   * `duplicate` set. Keys belong to their queue. Needs a version-6 server.
   */
  unique?: string | Uint8Array;
  /**
   * With `unique`: how long (ms) the key is still remembered after its message left the
   * queue (acked, taken by get(), purged, moved, dead-lettered), so that a put with it
   * within that time is a `"gone"` duplicate. Default 0 (forgotten at once); at most
   * 30 days (MAX_UNIQUE_WINDOW_MS). Rounded up to a whole millisecond.
   */
  uniqueFor?: number;
  /**
   * With `unique`: when the message holding the key is ready or delayed, change it into
   * this one (payload, priority, delay, window) instead of refusing: it keeps its id
   * and place, and the result says `replaced`. A message in flight is never replaced
   * (the result is an `"inFlight"` duplicate), nor a remembered key.
   */
  replace?: boolean;
  /**
   * A time to live (protocol.md 19), in ms from the put (a delay counts toward it): a
   * message not delivered by then never is; it is dropped, or with `ttlDeadLetter`
   * moved to `<queue>.dead`. A message in flight is left to its lease. 0 means it never
   * expires, even in a queue the server gives a default (BQUEUETTL); undefined sends
   * no time to live, so that default applies. At most 30 days (MAX_TTL_MS); rounded up
   * to a whole millisecond. Needs a version-6 server.
   */
  ttlMs?: number;
  /**
   * With `ttlMs`: an expired message is moved to the dead-letter queue `<queue>.dead`
   * (keeping its id, priority and attempts, without a time to live) instead of dropped.
   */
  ttlDeadLetter?: boolean;
}

/** Options of a GET (protocol.md 3.5). */
export interface GetOptions {
  /** How long to wait for a message when the queue is empty (ms; Infinity = for ever). Default 0. */
  waitMs?: number;
  /** Most messages wanted, 1..65535 (default 1). A parked GET is woken with exactly one. */
  max?: number;
  /** Ask for metadata (WITH_META): id, attempt, subject, replyTo. */
  withMeta?: boolean;
}

/** Options of a LEASE (protocol.md 13.5). */
export interface LeaseOptions extends GetOptions {
  /** Lease length (ms); 0 or absent = the server's default (30 s). */
  leaseMs?: number;
  /** Dead-letter after this many charged deliveries; 0 = the server's default (20); Infinity = never. */
  maxDeliveries?: number;
  /** The lease does not end with the connection (any connection may settle it). */
  detached?: boolean;
}

/** Options of a PUB (protocol.md 15.4, 15.5). */
export interface PublishOptions extends codec.PutOptions {
  /** Wait until this many queue copies are confirmed (ACKed or taken by GET). Default 0. */
  confirm?: number;
  /** With `confirm`: the longest wait (ms, default 5000). */
  timeoutMs?: number;
}

/**
 * Where a schedule's messages go (protocol.md 17.3): `{ queue }` puts them on a queue,
 * `{ subject }` publishes them to a subject (no wildcards), as PUT and PUB would.
 */
export type ScheduleTarget = { queue: string; subject?: never } | { subject: string; queue?: never };

/** What a schedule sends (protocol.md 17.3). */
export interface ScheduleOptions {
  /** The payload of its messages (default empty); the whole SCHEDULE frame is at most 64 KiB. */
  payload?: Payload;
  /** Priority of its messages, 0 (first) .. 9 (last); default 5. */
  priority?: number;
}

/** Port the server and the CLI use when none is given. */
const DEFAULT_PORT = 6552;

function parsePort(p: string, what: string): number {
  const t = p.trim();
  const port = /^[0-9]{1,5}$/.test(t) ? Number(t) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new RangeError(`${what} is not a port number (0-65535): ${p}`);
  return port;
}

/** A host as net.connect takes it: an IPv6 address without its brackets. */
function bareHost(h: string): string {
  const t = h.trim();
  return t.startsWith("[") && t.endsWith("]") ? t.slice(1, -1) : t;
}

/** Which address BHOST/BPORT name, like the CLI (default localhost:6552; blank = unset). */
export function addressFromEnv(): { host: string; port: number } {
  const h = process.env["BHOST"]?.trim();
  const p = process.env["BPORT"]?.trim();
  return { host: h ? bareHost(h) : "localhost", port: p ? parsePort(p, "BPORT") : DEFAULT_PORT };
}

/**
 * Splits "host:port", "[v6]:port", "[v6]", a bare IPv6 address or a host name (the
 * port defaults to 6552). A string with more than one ":" and no brackets is an IPv6
 * address without a port, as the CLI's BHOST=::1 is.
 */
export function parseAddress(address: string): { host: string; port: number } {
  const a = address.trim();
  const close = a.startsWith("[") ? a.indexOf("]") : -1;
  if (close > 0) {
    const host = a.slice(1, close);
    const rest = a.slice(close + 1);
    if (rest === "") return { host, port: DEFAULT_PORT };
    if (!rest.startsWith(":")) throw new RangeError(`not an address: ${address}`);
    return { host, port: parsePort(rest.slice(1), `the port of ${address}`) };
  }
  const i = a.indexOf(":");
  if (i < 0 || a.indexOf(":", i + 1) >= 0) return { host: a, port: DEFAULT_PORT };
  return { host: a.slice(0, i), port: parsePort(a.slice(i + 1), `the port of ${address}`) };
}

/**
 * The PUT_OPTIONS fields of a put that also carries a key or a time to live, or
 * undefined: those flags already bring the id, so the options go only when asked for.
 */
function delayOrPriority(options: PutOptions | undefined): codec.PutOptions | undefined {
  return options?.delayMs !== undefined || options?.priority !== undefined ? options : undefined;
}

function waitField(waitMs: number | undefined): number {
  const w = waitMs ?? 0;
  if (w === Infinity) return WAIT_FOREVER;
  if (!Number.isFinite(w) || w < 0) throw new RangeError(`waitMs must be >= 0 or Infinity, got ${w}`);
  // The longest finite wait is 0xFFFFFFFE (protocol.md 3.5); round up so we never wait less.
  return Math.min(Math.ceil(w), WAIT_FOREVER - 1);
}

function waitBudget(field: number): number {
  return field === WAIT_FOREVER ? Infinity : field;
}

/** A settle request being gathered during the current tick. */
interface SettleBatch {
  kind: "ack" | "nack" | "touch";
  queue: string;
  arg: NackOptions | number;
  pairs: LeasePair[];
  done: { resolve: (r: SettleResult) => void; reject: (e: unknown) => void }[];
}

/**
 * A connection to a beuss server. Create one with {@link connect}. Every method sends
 * one request (putMany several) and may be called without awaiting the previous one:
 * the requests are pipelined on the connection and answered in order.
 *
 * A request that waits (GET or LEASE with waitMs, request(), publish with confirm)
 * holds back the requests behind it on this connection (protocol.md 2.4); give
 * waiting consumers their own client, as {@link Client.consume} does.
 */
export class Client implements Settler {
  /** What the server announced in HELLO. */
  server: ServerInfo;
  private conn: Connection;
  private readonly opts: Required<Omit<ConnectOptions, "maxFrameBytes" | "path" | "token" | "tokenFile">> & {
    maxFrameBytes?: number;
    path?: string;
    token?: Uint8Array;
  };
  /** Whether the token presented is read-only (protocol.md 16.4). */
  readOnly = false;
  private readonly subs = new Map<number, Subscription>();
  private batches = new Map<string, SettleBatch>();
  private batchQueued = false;
  private putWithId: boolean;
  // close(), quit() or destroy() was called: subscriptions end cleanly, not with an error.
  private closing = false;

  private constructor(conn: Connection, server: ServerInfo, opts: Client["opts"]) {
    this.conn = conn;
    this.server = server;
    this.opts = opts;
    this.putWithId = server.has(Feature.PUT_OPTIONS);
    this.attach();
  }

  /** @internal Opens the connection and says HELLO; use {@link connect}. */
  static async open(options: ConnectOptions = {}): Promise<Client> {
    const env = addressFromEnv();
    const tcpGiven = options.host !== undefined || options.port !== undefined;
    const envPath = process.env["BUNIX"]?.trim();
    const path = options.path ?? (!tcpGiven && envPath ? envPath : undefined);
    const token = resolveToken(options);
    const opts = {
      host: options.host !== undefined ? bareHost(options.host) : env.host,
      port: options.port ?? env.port,
      timeoutMs: options.timeoutMs ?? 10_000,
      version: options.version ?? PROTOCOL_VERSION,
      maxPendingEvents: options.maxPendingEvents ?? 10_000,
      ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
      ...(path !== undefined ? { path } : {}),
      ...(token !== undefined ? { token } : {}),
    };
    const [conn, server, readOnly] = await Client.handshake(opts);
    const client = new Client(conn, server, opts);
    client.readOnly = readOnly;
    return client;
  }

  /**
   * Authenticates with `token` (protocol.md 16.2); resolves true when it is read-only.
   * The token is kept for reconnects. A wrong one rejects with AuthFailedError and the
   * server closes the connection; a server that requires none accepts any.
   */
  async auth(token: string | Uint8Array): Promise<boolean> {
    const bytes = typeof token === "string" ? Buffer.from(token, "utf8") : token;
    this.readOnly = await this.conn.request(codec.encodeAuth(bytes), expect(Status.AUTHED, codec.decodeAuthed));
    this.opts.token = bytes;
    return this.readOnly;
  }

  private static async handshake(opts: Client["opts"]): Promise<[Connection, ServerInfo, boolean]> {
    const copts: ConnectionOptions = {
      host: opts.host,
      port: opts.port,
      ...(opts.path !== undefined ? { path: opts.path } : {}),
      timeoutMs: opts.timeoutMs,
      // Until HELLO says max_message_size, accept what a HELLO or an ERROR can be.
      maxFrameBytes: 64 * 1024,
    };
    const conn = await Connection.open(copts);
    let hello: HelloReply;
    let readOnly = false;
    try {
      hello = await conn.request(codec.encodeHello(opts.version), expect(Status.HELLO, codec.decodeHello));
      if (opts.token !== undefined) {
        readOnly = await conn.request(codec.encodeAuth(opts.token), expect(Status.AUTHED, codec.decodeAuthed));
      }
    } catch (e) {
      conn.destroy();
      throw e;
    }
    // Section 8: the largest reply is an ENVELOPES of 65535 messages, or a STATS of
    // many queues; allow that plus room, unless the caller capped it.
    copts.maxFrameBytes =
      opts.maxFrameBytes ?? Math.min(0xffffffff, 5 + 285 * 65535 + Math.max(1 << 20, hello.maxMessageSize) + (64 << 20));
    const server: ServerInfo = { ...hello, has: (f: number) => (hello.features & f) === f };
    return [conn, server, readOnly];
  }

  private attach(): void {
    const conn = this.conn;
    conn.onEvent = (ev) => this.subs.get(ev.sid)?.push(ev);
    conn.onClose((e) => {
      // Subscriptions live on the connection (15.6): they end with it.
      if (this.conn !== conn) return;
      for (const s of this.subs.values()) s.end(this.closing ? undefined : e);
      this.subs.clear();
    });
  }

  /** The error that closed the connection, or undefined while it is open. */
  get closed(): Error | undefined {
    return this.conn.closed;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.conn.inFlight;
  }

  /**
   * Replaces a lost (or any) connection with a new one to the same server, with a new
   * HELLO. Nothing is replayed: requests that were in flight have already failed with
   * ConnectionError (their outcome is unknown: a PUT may have been stored).
   * Subscriptions end with the old connection; messages leased on it are stale, and
   * settling them answers false with `result` "stale" (or "not_found"), never an ack of
   * another delivery (the server requeued them with a new attempt number).
   */
  async reconnect(): Promise<void> {
    const old = this.conn;
    const [conn, server, readOnly] = await Client.handshake(this.opts);
    this.readOnly = readOnly;
    this.closing = false;
    this.conn = conn;
    this.server = server;
    this.putWithId = server.has(Feature.PUT_OPTIONS);
    this.attach();
    for (const s of this.subs.values()) s.end(new ConnectionError("reconnected: subscription ended"));
    this.subs.clear();
    old.destroy("replaced by reconnect()");
  }

  /** Throws UnsupportedError unless the negotiated version is at least `version` (9.1). */
  private need(version: number, what: string): void {
    if (this.server.version < version) {
      throw new UnsupportedError(`${what} needs protocol version ${version}; this connection speaks ${this.server.version}`);
    }
  }

  /**
   * Throws UnsupportedError unless the negotiated version is at least `version` and the
   * server announced every bit of `feature` in HELLO (17.1).
   */
  private needFeature(version: number, feature: number, what: string): void {
    this.need(version, what);
    if (!this.server.has(feature)) {
      throw new UnsupportedError(`${what} needs feature 0x${feature.toString(16)}, which ${this.server.server || "the server"} does not announce`);
    }
  }

  private req<T>(frame: Buffer, decode: (b: Buffer) => T, waitMs = 0): Promise<T> {
    // Settles gathered this tick were asked for first: they go out first, so that a
    // request made after msg.nack() sees the message back.
    if (this.batches.size > 0) this.flushSettles();
    return this.conn.request(frame, decode, waitMs);
  }

  /**
   * Sends a frame the caller encoded (see the `codec` export) and resolves with its
   * reply frame, status byte first; an ERROR reply rejects as usual. For tools and tests.
   */
  raw(frame: Buffer, waitMs = 0): Promise<Buffer> {
    return this.req(frame, (b) => Buffer.from(b), waitMs);
  }

  /** PING: resolves when the server answers PONG. */
  ping(): Promise<void> {
    return this.req(codec.encodePing(), expect(Status.PONG, () => undefined));
  }

  /**
   * Appends a message to `queue`. Against a version-2+ server the reply carries the new
   * message's `id`; `truncated` says the server kept only `storedLength` bytes.
   * Rejects with FullError (not fatal) when the server is over its memory cap.
   *
   * With `options.unique` (protocol.md 18), a message already holding that key means
   * nothing is stored: the result has `duplicate` (where that message stands) and its
   * `id`; this is an answer, not an error. With `replace`, a ready or delayed holder is
   * changed instead and the result has `replaced: true`. Against a server without
   * version 6 a key throws UnsupportedError before anything is sent.
   *
   * With `options.ttlMs` (protocol.md 19), the message expires if it was not delivered
   * within that time: dropped, or with `ttlDeadLetter` moved to `<queue>.dead`; 0 opts
   * it out of its queue's default time to live. Against a server that does not
   * announce Feature.TTL it throws UnsupportedError before anything is sent.
   */
  put(queue: string, payload: Payload, options?: PutOptions): Promise<PutResult> {
    const ttl = this.ttlOf(options);
    if (options?.unique !== undefined) {
      this.needFeature(6, Feature.UNIQUE, "PUT with a unique key");
      return this.putUnique(queue, payload, options, options.unique, ttl);
    }
    if (options?.replace || options?.uniqueFor !== undefined) {
      throw new RangeError("replace and uniqueFor apply to a put with a unique key: give options.unique");
    }
    if (ttl !== undefined) {
      // The TTL fields alone (flag 0x08) make the server answer with the id, so
      // PUT_OPTIONS is sent only when a delay or priority was asked for.
      const frame = codec.encodePut(nameBytes(queue), toBytes(payload), delayOrPriority(options), undefined, ttl);
      return this.req(frame, expect2(Status.STORED, Status.TRUNCATED, (b) => codec.decodePut(b, true)));
    }
    if (options !== undefined) this.need(2, "PUT with options");
    const withId = this.putWithId || options !== undefined;
    const frame = codec.encodePut(nameBytes(queue), toBytes(payload), withId ? (options ?? {}) : undefined);
    return this.req(frame, expect2(Status.STORED, Status.TRUNCATED, (b) => codec.decodePut(b, withId)));
  }

  /**
   * The PUT_TTL fields `options` asks for, or undefined; throws UnsupportedError when
   * the server cannot take them, RangeError when they cannot be encoded.
   */
  private ttlOf(options: PutOptions | undefined): codec.Ttl | undefined {
    if (options?.ttlMs === undefined) {
      if (options?.ttlDeadLetter) throw new RangeError("ttlDeadLetter applies to a put with a time to live: give options.ttlMs");
      return undefined;
    }
    this.needFeature(6, Feature.TTL, "PUT with a time to live");
    const t = options.ttlMs;
    if (typeof t !== "number" || !Number.isFinite(t) || t < 0) {
      throw new RangeError(`ttlMs must be a number of ms from 0 to 30 days, got ${String(t)}`);
    }
    // Rounded up, never down: 0.5 ms must not become 0, which means "never expires".
    // Over 30 days is the codec's RangeError.
    return { ttlMs: Math.ceil(t), deadLetter: options.ttlDeadLetter ?? false };
  }

  private putUnique(
    queue: string,
    payload: Payload,
    options: PutOptions,
    unique: string | Uint8Array,
    ttl: codec.Ttl | undefined,
  ): Promise<PutResult> {
    let key: Uint8Array;
    if (typeof unique === "string") key = Buffer.from(unique, "utf8");
    else if (unique instanceof Uint8Array) key = unique;
    else throw new RangeError(`unique must be a string or a Uint8Array, got ${typeof unique}`);
    const w = options.uniqueFor ?? 0;
    if (!Number.isFinite(w) || w < 0) {
      throw new RangeError(`uniqueFor must be a number of ms from 0 to 30 days, got ${String(w)}`);
    }
    const replace = options.replace ?? false;
    // The key fields alone (flag 0x04) make the server answer with the id, so
    // PUT_OPTIONS is sent only when a delay or priority was asked for.
    const fields = { key, replace, windowMs: Math.ceil(w) };
    const frame = codec.encodePut(nameBytes(queue), toBytes(payload), delayOrPriority(options), fields, ttl);
    return this.req(frame, (b) => {
      const s = b[0];
      // REPLACED answers only a put that asked to replace; anything else is a broken peer.
      if (s === Status.STORED || s === Status.TRUNCATED || s === Status.DUPLICATE || (replace && s === Status.REPLACED)) {
        return codec.decodePut(b, true);
      }
      throw unexpected(b);
    });
  }

  /**
   * Puts every payload, pipelined (all sent before the first reply is awaited).
   * Resolves with the results in order; if any PUT failed, rejects with the first
   * error once all have been answered (the others may have been stored).
   */
  async putMany(queue: string, payloads: Iterable<Payload>, options?: PutOptions): Promise<PutResult[]> {
    const ps: Promise<PutResult>[] = [];
    for (const p of payloads) ps.push(this.put(queue, p, options));
    const rs = await Promise.allSettled(ps);
    const bad = rs.find((r) => r.status === "rejected");
    if (bad) throw (bad as PromiseRejectedResult).reason;
    return rs.map((r) => (r as PromiseFulfilledResult<PutResult>).value);
  }

  /**
   * Takes (removes) up to `max` messages from `queue`, waiting up to `waitMs` if it is
   * empty. Resolves [] when nothing came. At-most-once: use lease() for at-least-once.
   */
  get(queue: string, options: GetOptions = {}): Promise<Message[]> {
    if (options.withMeta) this.need(3, "withMeta");
    const w = waitField(options.waitMs);
    const meta = options.withMeta ?? false;
    const frame = codec.encodeGet(nameBytes(queue), w, options.max ?? 1, meta);
    const decode = receive(meta, codec.decodeMessages, Status.MESSAGES);
    return this.req(frame, (b) => decode(b).map((m) => new Message(m)), waitBudget(w));
  }

  /** get() of one message: resolves it, or null when none came within `waitMs`. */
  async getOne(queue: string, options: Omit<GetOptions, "max"> = {}): Promise<Message | null> {
    const ms = await this.get(queue, { ...options, max: 1 });
    return ms[0] ?? null;
  }

  /** Drops every message of `queue`; resolves how many. */
  purge(queue: string): Promise<bigint> {
    return this.req(codec.encodePurge(nameBytes(queue)), expect(Status.PURGED, codec.decodeCount64));
  }

  /** Server figures and those of every queue, or of `queue` only. */
  stats(queue?: string): Promise<Stats> {
    const q = queue === undefined || queue === "" ? undefined : nameBytes(queue);
    return this.req(codec.encodeStats(q), expect(Status.STATS, codec.decodeStats));
  }

  /**
   * Takes up to `max` messages under a lease (protocol.md 13.5): they stay on the
   * server until acked, and come back (attempt + 1) if the lease ends first.
   * Resolves [] when nothing came within `waitMs`, and also early, even when waiting
   * for ever, once 256 KiB of settle replies wait behind it on this connection (13.7):
   * lease again.
   */
  lease(queue: string, options: LeaseOptions = {}): Promise<LeasedMessage[]> {
    this.need(options.withMeta ? 3 : 2, options.withMeta ? "LEASE withMeta" : "LEASE");
    const w = waitField(options.waitMs);
    const meta = options.withMeta ?? false;
    const md = options.maxDeliveries ?? 0;
    const frame = codec.encodeLease(
      nameBytes(queue),
      {
        waitMs: w,
        max: options.max ?? 1,
        leaseMs: options.leaseMs ?? 0,
        maxDeliveries: md === Infinity ? NEVER_DEAD : md,
        detached: options.detached ?? false,
      },
      meta,
    );
    const decode = receive(meta, codec.decodeLeased, Status.LEASED);
    return this.req(frame, (b) => decode(b).map((m) => new LeasedMessage(m, queue, this)), waitBudget(w));
  }

  /** Acknowledges leases by `(id, attempt)`; one result per pair, in order. */
  ack(queue: string, pairs: readonly LeasePair[]): Promise<SettleResult[]> {
    return this.settleMany(pairs, (ch) => codec.encodeAck(nameBytes(queue), ch));
  }

  /** Ends leases now (returning or dead-lettering the messages); one result per pair. */
  nack(queue: string, pairs: readonly LeasePair[], options: NackOptions = {}): Promise<SettleResult[]> {
    const opt = (options.dead ? NackOption.DEAD : 0) | (options.count === false ? NackOption.NO_CHARGE : 0);
    const delay = Math.ceil(options.delayMs ?? 0);
    return this.settleMany(pairs, (ch) => codec.encodeNack(nameBytes(queue), delay, opt, ch));
  }

  /** Extends leases to `leaseMs` from now (0 = their original length); one result per pair. */
  touch(queue: string, pairs: readonly LeasePair[], leaseMs = 0): Promise<SettleResult[]> {
    return this.settleMany(pairs, (ch) => codec.encodeTouch(nameBytes(queue), Math.ceil(leaseMs), ch));
  }

  private async settleMany(pairs: readonly LeasePair[], enc: (ch: readonly LeasePair[]) => Buffer): Promise<SettleResult[]> {
    this.need(2, "ACK, NACK and TOUCH");
    if (pairs.length === 0) return [];
    const ps: Promise<SettleResult[]>[] = [];
    for (let i = 0; i < pairs.length; i += MAX_SETTLE_PAIRS) {
      ps.push(this.req(enc(pairs.slice(i, i + MAX_SETTLE_PAIRS)), expect(Status.SETTLED, codec.decodeSettled)));
    }
    return (await Promise.all(ps)).flat();
  }

  /**
   * @internal The settle of one leased message. Settles of the same kind and queue
   * made in one tick go out as one request (a consumer acking 100 messages sends one ACK).
   */
  settle(kind: "ack" | "nack" | "touch", queue: string, pair: LeasePair, arg: NackOptions | number): Promise<SettleResult> {
    let key: string;
    if (kind === "nack") {
      const o = arg as NackOptions;
      key = `nack\0${o.delayMs ?? 0}\0${o.dead ? 1 : 0}\0${o.count === false ? 0 : 1}\0${queue}`;
    } else {
      key = `${kind}\0${kind === "touch" ? (arg as number) : 0}\0${queue}`;
    }
    let b = this.batches.get(key);
    if (!b) {
      b = { kind, queue, arg, pairs: [], done: [] };
      this.batches.set(key, b);
    }
    b.pairs.push({ id: pair.id, attempt: pair.attempt });
    const p = new Promise<SettleResult>((resolve, reject) => b.done.push({ resolve, reject }));
    if (!this.batchQueued) {
      this.batchQueued = true;
      queueMicrotask(() => this.flushSettles());
    }
    if (b.pairs.length >= MAX_SETTLE_PAIRS) this.flushSettles();
    return p;
  }

  /** @internal Sends the settles gathered so far. */
  flushSettles(): void {
    this.batchQueued = false;
    const batches = this.batches;
    if (batches.size === 0) return;
    this.batches = new Map();
    for (const b of batches.values()) {
      let p: Promise<SettleResult[]>;
      if (b.kind === "ack") p = this.ack(b.queue, b.pairs);
      else if (b.kind === "touch") p = this.touch(b.queue, b.pairs, b.arg as number);
      else p = this.nack(b.queue, b.pairs, b.arg as NackOptions);
      p.then(
        (rs) => b.done.forEach((d, i) => d.resolve(rs[i] ?? "not_found")),
        (e) => b.done.forEach((d) => d.reject(e)),
      );
    }
  }

  /** Copies of the ready messages at the front of `queue`, without changing anything. */
  peek(queue: string, options: { max?: number; withMeta?: boolean } = {}): Promise<Message[]> {
    this.need(options.withMeta ? 3 : 2, options.withMeta ? "PEEK withMeta" : "PEEK");
    const meta = options.withMeta ?? false;
    const frame = codec.encodePeek(nameBytes(queue), options.max ?? 1, meta);
    const decode = receive(meta, codec.decodeLeased, Status.PEEKED);
    return this.req(frame, (b) => decode(b).map((m) => new Message(m)));
  }

  /** Moves up to `max` ready messages from `from` to the end of `to`; resolves how many. */
  move(from: string, to: string, max = 0xffffffff): Promise<bigint> {
    this.need(2, "MOVE");
    return this.req(codec.encodeMove(nameBytes(from), nameBytes(to), max), expect(Status.MOVED, codec.decodeCount64));
  }

  /** Binds `pattern` onto `queue` (15.3); resolves true if the binding is new. */
  bind(pattern: string, queue: string): Promise<boolean> {
    this.need(3, "BIND");
    return this.req(codec.encodeBind(nameBytes(pattern, "pattern"), nameBytes(queue)), expect(Status.BOUND, codec.decodeFlag));
  }

  /** Removes the binding of `pattern` onto `queue`; resolves true if there was one. */
  unbind(pattern: string, queue: string): Promise<boolean> {
    this.need(3, "UNBIND");
    return this.req(codec.encodeBind(nameBytes(pattern, "pattern"), nameBytes(queue), true), expect(Status.UNBOUND, codec.decodeFlag));
  }

  /**
   * Publishes to `subject` (15.4): a copy into every bound queue, an event to every
   * matching subscription. With `confirm` N, resolves once N copies are confirmed or
   * `timeoutMs` passed (check `acked`); rejects with TooFewCopiesError when fewer than N
   * queues match.
   */
  publish(subject: string, payload: Payload, options: PublishOptions = {}): Promise<PublishResult> {
    this.need(3, "PUB");
    const confirm = options.confirm ?? 0;
    const timeoutMs = confirm > 0 ? Math.ceil(options.timeoutMs ?? 5000) : 0;
    const frame = codec.encodePub(
      nameBytes(subject, "subject"),
      { delayMs: Math.ceil(options.delayMs ?? 0), priority: options.priority ?? 5, confirm, timeoutMs },
      toBytes(payload),
    );
    return this.req(frame, expect(Status.PUBLISHED, codec.decodePublished), timeoutMs);
  }

  /**
   * Subscribes this connection to `pattern` (15.6). Iterate the result with
   * `for await`; leaving the loop (or unsubscribe()) ends it.
   */
  subscribe(pattern: string): Promise<Subscription> {
    this.need(3, "SUB");
    const frame = codec.encodeSub(nameBytes(pattern, "pattern"));
    // The subscription is registered while the SUBSCRIBED frame is decoded, before the
    // next frame is read, so that an EVENT right behind it finds it.
    return this.req(
      frame,
      expect(Status.SUBSCRIBED, (b) => {
        const sid = codec.decodeSubscribed(b);
        const s = new Subscription(
          sid,
          pattern,
          this.opts.maxPendingEvents,
          (sub) => this.unsubscribe(sub.sid),
          (to, p) => this.reply(to, p),
        );
        this.subs.set(sid, s);
        return s;
      }),
    );
  }

  /** Ends subscription `sid` (15.6); resolves true if it existed. */
  unsubscribe(sid: number): Promise<boolean> {
    this.need(3, "UNSUB");
    return this.req(
      codec.encodeUnsub(sid),
      expect(Status.UNSUBSCRIBED, (b) => {
        // No EVENT of this sid comes after UNSUBSCRIBED: end the iteration here.
        this.subs.get(sid)?.end();
        this.subs.delete(sid);
        return codec.decodeFlag(b);
      }),
    );
  }

  /**
   * Sends a request to `subject` and resolves with the first reply (15.8). Rejects with
   * NoRespondersError when nothing listens, RequestTimeoutError after `timeoutMs`
   * (default 5000).
   */
  request(subject: string, payload: Payload, options: { timeoutMs?: number } = {}): Promise<Message> {
    this.need(3, "REQ");
    const t = Math.ceil(options.timeoutMs ?? 5000);
    const frame = codec.encodeReq(nameBytes(subject, "subject"), t, toBytes(payload));
    return this.req(
      frame,
      (b) => {
        if (b[0] === Status.REPLY) return new Message({ data: codec.decodeReplyPayload(b) });
        if (b[0] === Status.EMPTY) throw new RequestTimeoutError(`no reply to ${subject} within ${t} ms`);
        throw unexpected(b);
      },
      t,
    );
  }

  /** Answers a request by its reply address; resolves true if the requester got it. */
  reply(replyTo: bigint, payload: Payload): Promise<boolean> {
    this.need(3, "REPLY");
    return this.req(codec.encodeReply(replyTo, toBytes(payload)), expect(Status.REPLIED, codec.decodeFlag));
  }

  /**
   * Defines schedule `name`, or replaces the one of that name (protocol.md 17.3): at the
   * times of `spec` (a cron expression such as `"0 3 * * *"`, read in UTC unless it
   * starts with `TZ=+02:00`; a macro such as `"@daily"`; or `"@every 30s"`, 17.2) the
   * server puts `options.payload` on `target.queue`, or publishes it to
   * `target.subject`, with `options.priority`. Resolves whether the schedule is new and
   * its first run time (ms since 1970, UTC). A spec the server cannot read, or a payload
   * over its max_message_size, rejects with BadScheduleError (not fatal: the connection
   * goes on); over BMAXMEMORY, with FullError.
   */
  schedule(name: string, spec: string, target: ScheduleTarget, options: ScheduleOptions = {}): Promise<ScheduleResult> {
    this.needFeature(5, Feature.SCHEDULES, "SCHEDULE");
    const t = target as { queue?: string; subject?: string };
    if ((t.queue === undefined) === (t.subject === undefined)) {
      throw new RangeError("a schedule's target is { queue } or { subject }, exactly one of them");
    }
    const toSubject = t.subject !== undefined;
    const frame = codec.encodeSchedule(nameBytes(name, "schedule name"), {
      spec: Buffer.from(spec, "utf8"),
      toSubject,
      target: toSubject ? nameBytes(t.subject!, "subject") : nameBytes(t.queue!),
      priority: options.priority ?? DEFAULT_PRIORITY,
      payload: toBytes(options.payload ?? new Uint8Array(0)),
    });
    return this.req(frame, expect(Status.SCHEDULED, codec.decodeScheduled));
  }

  /** Deletes schedule `name` (17.4); resolves true if there was one. Messages it made stay. */
  unschedule(name: string): Promise<boolean> {
    this.needFeature(5, Feature.SCHEDULES, "UNSCHEDULE");
    return this.req(codec.encodeUnschedule(nameBytes(name, "schedule name")), expect(Status.UNSCHEDULED, codec.decodeFlag));
  }

  /**
   * Pauses schedule `name` (17.5): it does not run until resumed. Resolves 0n (a paused
   * schedule has no next run), or null when there is no such schedule.
   */
  pauseSchedule(name: string): Promise<bigint | null> {
    return this.setPaused(name, true);
  }

  /**
   * Resumes schedule `name` (17.5); missed runs are not caught up. Resolves its next run
   * time (ms since 1970, UTC), or null when there is no such schedule.
   */
  resumeSchedule(name: string): Promise<bigint | null> {
    return this.setPaused(name, false);
  }

  private setPaused(name: string, paused: boolean): Promise<bigint | null> {
    this.needFeature(5, Feature.SCHEDULES, "PAUSE_SCHEDULE");
    const frame = codec.encodePauseSchedule(nameBytes(name, "schedule name"), paused);
    return this.req(frame, expect(Status.SCHEDULE_PAUSED, codec.decodeSchedulePaused));
  }

  /**
   * Every schedule with its figures, sorted by name (17.6), or only the one named
   * (`[]` when there is no such schedule).
   */
  schedules(name?: string): Promise<ScheduleInfo[]> {
    this.needFeature(5, Feature.SCHEDULES, "SCHEDULES");
    const n = name === undefined || name === "" ? undefined : nameBytes(name, "schedule name");
    return this.req(codec.encodeSchedules(n), expect(Status.SCHEDULE_LIST, codec.decodeScheduleList));
  }

  /**
   * A consumer of `queue` on a connection of its own (so its waiting LEASE holds back
   * nothing of this client): iterate it with `for await`, or give it a handler with
   * run(). See {@link ConsumeOptions}.
   */
  consume(queue: string, options: ConsumeOptions = {}): Consumer {
    return new Consumer(() => Client.open(this.connectOptions()), queue, options);
  }

  /** Shorthand for `consume(queue, options)` then run(handler): returns the running consumer. */
  process(queue: string, handler: Handler, options: ConsumeOptions = {}): Consumer {
    const c = this.consume(queue, options);
    c.run(handler);
    return c;
  }

  /** The options that connect another client to the same server. */
  connectOptions(): ConnectOptions {
    const { maxFrameBytes, ...rest } = this.opts;
    return maxFrameBytes === undefined ? rest : { ...rest, maxFrameBytes };
  }

  /**
   * Says QUIT and waits for BYE, so every earlier request is known to be processed,
   * then closes.
   */
  async quit(): Promise<void> {
    this.closing = true;
    this.flushSettles();
    try {
      await this.req(codec.encodeQuit(), expect(Status.BYE, () => undefined));
    } finally {
      this.conn.destroy("closed by quit()");
    }
  }

  /** Closes the connection at once; requests in flight fail with ConnectionError. */
  destroy(): void {
    this.closing = true;
    this.conn.destroy();
  }

  /**
   * Closes the connection: sends what is queued, half-closes, and waits for the server
   * to answer what was sent and close (protocol.md 2.8), at most `timeoutMs`. Safe to
   * call twice.
   */
  async close(): Promise<void> {
    if (this.conn.closed) return;
    this.closing = true;
    this.flushSettles();
    const conn = this.conn;
    await new Promise<void>((resolve) => {
      // A server that does not close its side within the margin is not waited for.
      const t = setTimeout(() => conn.destroy("closed by close() after the timeout"), this.opts.timeoutMs);
      conn.onClose(() => {
        clearTimeout(t);
        resolve();
      });
      conn.end();
    });
  }
}

/** A decoder that accepts one status. */
function expect<T>(status: number, f: (b: Buffer) => T): (b: Buffer) => T {
  return (b) => {
    if (b[0] !== status) throw unexpected(b);
    return f(b);
  };
}

/** A decoder that accepts either of two statuses. */
function expect2<T>(s1: number, s2: number, f: (b: Buffer) => T): (b: Buffer) => T {
  return (b) => {
    if (b[0] !== s1 && b[0] !== s2) throw unexpected(b);
    return f(b);
  };
}

function unexpected(b: Buffer): codec.CodecError {
  return new codec.CodecError(`unexpected status 0x${(b[0] ?? 0).toString(16)}`);
}

/** Decoder of a receive: EMPTY, the plain status, or ENVELOPES with WITH_META. */
function receive(withMeta: boolean, plain: (b: Buffer) => codec.RawMessage[], status: number): (b: Buffer) => codec.RawMessage[] {
  return (b) => {
    if (b[0] === Status.EMPTY) return [];
    if (withMeta) {
      if (b[0] !== Status.ENVELOPES) throw unexpected(b);
      return codec.decodeEnvelopes(b);
    }
    if (b[0] !== status) throw unexpected(b);
    return plain(b);
  };
}

/**
 * The first token of a token file (protocol.md 16.8): the first line that is not blank
 * or a `#` comment, up to its first blank. The server's own BAUTHFILE will do.
 */
export function readTokenFile(path: string): Uint8Array {
  for (const raw of readFileSync(path, "utf8").split("\n")) {
    const line = raw.trim();
    if (line !== "" && !line.startsWith("#")) return Buffer.from(line.split(/\s+/)[0] ?? "", "utf8");
  }
  throw new RangeError(`the token file ${path} holds no token`);
}

/** The token to present: `token`, else the first of `tokenFile`, else of BAUTHFILE. */
function resolveToken(options: ConnectOptions): Uint8Array | undefined {
  if (options.token !== undefined) {
    return typeof options.token === "string" ? Buffer.from(options.token, "utf8") : options.token;
  }
  const file = options.tokenFile ?? (process.env["BAUTHFILE"]?.trim() || undefined);
  return file !== undefined ? readTokenFile(file) : undefined;
}

/**
 * Connects to a beuss server and says HELLO (asking for version 6). With no options,
 * the address comes from BUNIX, else BHOST and BPORT (default localhost:6552), as for
 * the CLI, and BAUTHFILE gives the token if set. A string is an address as
 * {@link parseAddress} reads it: "host:port", "[::1]:6552", "::1", or "unix:PATH".
 */
export function connect(options?: ConnectOptions | string): Promise<Client> {
  if (typeof options === "string" && options.startsWith("unix:")) {
    return Client.open({ path: options.slice("unix:".length) });
  }
  if (typeof options === "string") {
    let addr: { host: string; port: number };
    try {
      addr = parseAddress(options);
    } catch (e) {
      return Promise.reject(e);
    }
    return Client.open(addr);
  }
  return Client.open(options);
}
