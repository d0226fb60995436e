/**
 * Messages as the client hands them out: the payload as bytes with text/JSON helpers,
 * and, for leased ones, the settle methods.
 */
import type { LeasePair, RawMessage, SettleResult } from "./codec.js";

/** A message taken from a queue (GET, LEASE, PEEK) or pushed to a subscription. */
export class Message {
  /** The payload bytes. */
  readonly data: Uint8Array;
  /** The message id (LEASE, PEEK, and any receive with `withMeta`); undefined for a plain GET. */
  readonly id: bigint | undefined;
  /** Times the message has been leased, this lease included (LEASE, PEEK, `withMeta`). */
  readonly attempt: number | undefined;
  /** The subject it was published to (receives with `withMeta`, events). */
  readonly subject: string | undefined;
  /** The reply address of the REQ that sent it (receives with `withMeta`, events). */
  readonly replyTo: bigint | undefined;

  /** @internal */
  constructor(raw: RawMessage) {
    this.data = raw.data;
    this.id = raw.id;
    this.attempt = raw.attempt;
    this.subject = raw.subject;
    this.replyTo = raw.replyTo;
  }

  /** The payload decoded as UTF-8. */
  text(): string {
    return Buffer.from(this.data.buffer, this.data.byteOffset, this.data.byteLength).toString("utf8");
  }

  /** The payload parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

/** Options of a NACK (protocol.md 13.6). */
export interface NackOptions {
  /** Return the message after this long (ms); 0 = at once, in its place. */
  delayMs?: number;
  /** Send it to the dead-letter queue `<queue>.dead` now. */
  dead?: boolean;
  /**
   * Charge this delivery toward max_deliveries (default true). False gives a message
   * back without costing it an attempt, as on a graceful shutdown.
   */
  count?: boolean;
}

/** What a leased message calls to settle itself; implemented by the client. @internal */
export interface Settler {
  /** Sends the settle request (batched with others of the same tick). */
  settle(kind: "ack" | "nack" | "touch", queue: string, pair: LeasePair, arg: NackOptions | number): Promise<SettleResult>;
}

/**
 * A message held under a lease (protocol.md 13.5). Settle it once with ack() or
 * nack(); touch() extends the lease. A second settle is a no-op returning false, and
 * after the lease has ended (it expired, or the connection was lost and the server
 * returned the message) the server's "stale" answer comes back as false with
 * `result` set, so a settle can never ack another delivery of the same message.
 */
export class LeasedMessage extends Message implements LeasePair {
  /** The message id. */
  declare readonly id: bigint;
  /** The attempt number of this lease (1 on first delivery). */
  declare readonly attempt: number;
  /** The queue it was leased from. */
  readonly queue: string;
  /** The server's answer to the settle that ended this lease, once one did. */
  result: SettleResult | undefined;
  private settled = false;
  /** @internal Where settles go: the client that leased it, or a consumer's settle connection. */
  settler: Settler;

  /** @internal */
  constructor(raw: RawMessage, queue: string, settler: Settler) {
    super(raw);
    this.queue = queue;
    this.settler = settler;
  }

  /** True once ack() or nack() was called. */
  get isSettled(): boolean {
    return this.settled;
  }

  /**
   * Acknowledges the message: the server deletes it. Resolves true if the server said
   * OK; false if it was settled already (no request sent) or the lease had ended.
   */
  async ack(): Promise<boolean> {
    if (this.settled) return false;
    this.settled = true;
    this.result = await this.settler.settle("ack", this.queue, this, 0);
    return this.result === "ok";
  }

  /**
   * Ends the lease now, returning the message (after `delayMs`) or dead-lettering it.
   * Resolves like ack().
   */
  async nack(options: NackOptions = {}): Promise<boolean> {
    if (this.settled) return false;
    this.settled = true;
    this.result = await this.settler.settle("nack", this.queue, this, options);
    return this.result === "ok";
  }

  /**
   * Extends the lease to `leaseMs` from now (0 = the length the lease asked for).
   * Resolves true if the lease is still held; false once settled or expired.
   */
  async touch(leaseMs = 0): Promise<boolean> {
    if (this.settled) return false;
    const r = await this.settler.settle("touch", this.queue, this, leaseMs);
    return r === "ok";
  }
}
