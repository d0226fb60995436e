/**
 * Live subscriptions (protocol.md 15.6): the EVENT frames of one sid, as an async
 * iterable.
 */
import type { RawEvent } from "./codec.js";
import { Message } from "./message.js";

/** A message pushed to a subscription. */
export class Event extends Message {
  /** The subscription it matched. */
  readonly sid: number;
  /** Events of this subscription dropped before this one (the server's DROPPED plus local drops). */
  readonly dropped: number;
  declare readonly subject: string;
  private readonly replier: ((to: bigint, p: Uint8Array | string) => Promise<boolean>) | undefined;

  /** @internal */
  constructor(raw: RawEvent, dropped: number, replier?: (to: bigint, p: Uint8Array | string) => Promise<boolean>) {
    super({ data: raw.data, subject: raw.subject ?? "", ...(raw.replyTo !== undefined ? { replyTo: raw.replyTo } : {}) });
    this.sid = raw.sid;
    this.dropped = dropped;
    this.replier = replier;
  }

  /**
   * Answers the request this event carries (it has `replyTo`). Resolves true if the
   * requester got the answer, false if nobody waits on that address any more.
   */
  respond(payload: Uint8Array | string): Promise<boolean> {
    if (this.replyTo === undefined || !this.replier) return Promise.resolve(false);
    return this.replier(this.replyTo, payload);
  }
}

/**
 * One subscription: iterate it with `for await` to get its events. Events are kept in
 * memory until read, up to `maxPending`; past that the newest are dropped and counted
 * in the next event's `dropped`, as the server does for a slow consumer.
 */
export class Subscription implements AsyncIterable<Event> {
  /** The subscription id on its connection. */
  readonly sid: number;
  /** The pattern subscribed to. */
  readonly pattern: string;
  private readonly buffer: Event[] = [];
  private readonly waiters: { resolve: (r: IteratorResult<Event>) => void; reject: (e: unknown) => void }[] = [];
  private done = false;
  private error: unknown;
  private localDrops = 0;
  private readonly maxPending: number;
  private readonly unsubscriber: (s: Subscription) => Promise<boolean>;
  private readonly replier: ((to: bigint, p: Uint8Array | string) => Promise<boolean>) | undefined;

  /** @internal */
  constructor(
    sid: number,
    pattern: string,
    maxPending: number,
    unsubscriber: (s: Subscription) => Promise<boolean>,
    replier?: (to: bigint, p: Uint8Array | string) => Promise<boolean>,
  ) {
    this.sid = sid;
    this.pattern = pattern;
    this.maxPending = maxPending;
    this.unsubscriber = unsubscriber;
    this.replier = replier;
  }

  /** @internal Called by the client for each EVENT of this sid. */
  push(raw: RawEvent): void {
    if (this.done) return;
    const dropped = (raw.dropped ?? 0) + this.localDrops;
    const w = this.waiters.shift();
    if (w) {
      this.localDrops = 0;
      w.resolve({ value: new Event(raw, dropped, this.replier), done: false });
      return;
    }
    if (this.buffer.length >= this.maxPending) {
      this.localDrops += 1 + (raw.dropped ?? 0);
      return;
    }
    this.localDrops = 0;
    this.buffer.push(new Event(raw, dropped, this.replier));
  }

  /** @internal Ends the iteration: normally (unsubscribed) or with the connection's error. */
  end(error?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    for (const w of this.waiters.splice(0)) {
      if (error !== undefined) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  /** Waits for the next event; resolves undefined once the subscription has ended cleanly. */
  async next(): Promise<Event | undefined> {
    const r = await this.nextResult();
    return r.done ? undefined : r.value;
  }

  private nextResult(): Promise<IteratorResult<Event>> {
    const e = this.buffer.shift();
    if (e) return Promise.resolve({ value: e, done: false });
    if (this.done) {
      return this.error !== undefined ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Ends the subscription on the server (UNSUB); buffered events can still be read. */
  async unsubscribe(): Promise<boolean> {
    if (this.done) return false;
    return this.unsubscriber(this);
  }

  /** Iterates the events; leaving the loop early unsubscribes. */
  [Symbol.asyncIterator](): AsyncIterator<Event> {
    return {
      next: () => this.nextResult(),
      return: async () => {
        await this.unsubscribe().catch(() => false);
        return { value: undefined, done: true };
      },
    };
  }
}
