/**
 * The consumer: takes messages from a queue under leases and settles them by the
 * outcome of the work, as BullMQ's Worker and nats.js's consumers do:
 *
 * - acks when the handler returns (or, with `for await`, when the loop asks for the
 *   next message), nacks with an exponential backoff when it throws or times out;
 * - touches every held message at lease/2, so long work never loses its lease;
 * - holds at most `concurrency` (run) or `prefetch` (for await) messages, so it never
 *   takes more than it is working on;
 * - close() gives back what it has not started with NACK count=false (no attempt
 *   charged), waits for the handlers running, then closes.
 *
 * It uses two connections of its own: one whose LEASE may park waiting for work, and
 * one for ACK/NACK/TOUCH, whose replies would otherwise wait behind the parked LEASE
 * (protocol.md 13.7). Leases are not detached, so if the consumer dies the server
 * returns its messages at once.
 */
import { performance } from "node:perf_hooks";
import type { Client } from "./client.js";
import { nameBytes, type LeasePair, type SettleResult } from "./codec.js";
import { ConnectionError } from "./errors.js";
import type { LeasedMessage, NackOptions, Settler } from "./message.js";

/** Runs the work for one message; may settle it itself. The signal aborts on timeout or close. */
export type Handler = (message: LeasedMessage, signal: AbortSignal) => unknown;

/** How a {@link Consumer} takes and settles messages. */
export interface ConsumeOptions {
  /** Lease length (ms, default 30000); messages are touched at half of it. */
  leaseMs?: number;
  /** Handlers run at once by run() (default 10). */
  concurrency?: number;
  /** Messages held at once while iterating with `for await` (default 16). */
  prefetch?: number;
  /** How long one LEASE waits for work on an empty queue (ms, default 5000). */
  waitMs?: number;
  /** A handler running longer fails (its signal aborts) and its message is nacked with backoff. */
  handlerTimeoutMs?: number;
  /** Delay (ms) of the NACK after a failed attempt; default min(60000, 1000 x 2^(attempt-1)). */
  backoff?: (attempt: number) => number;
  /** Dead-letter after this many charged deliveries (0 = the server's default, 20). */
  maxDeliveries?: number;
  /** Receive metadata (subject, replyTo) with each message. */
  withMeta?: boolean;
  /** Called with errors of handlers and of the connection (which is reconnected). */
  onError?: (error: unknown, message?: LeasedMessage) => void;
}

/** The default backoff: 1 s, 2 s, 4 s ... up to a minute. */
export function defaultBackoff(attempt: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, attempt - 1));
}

interface Held {
  touchedAt: number;
  started: boolean;
}

/**
 * A consumer of one queue; get one from {@link Client.consume}. Either iterate it
 * (`for await (const m of consumer)`: each message is acked when the loop body
 * finishes unless the body settled it) or call run(handler).
 */
export class Consumer implements AsyncIterable<LeasedMessage> {
  /** The queue consumed. */
  readonly queue: string;
  private readonly open: () => Promise<Client>;
  private readonly o: Required<Omit<ConsumeOptions, "handlerTimeoutMs" | "onError">> & ConsumeOptions;
  private leaser: Client | undefined;
  private settler: Client | undefined;
  private readonly held = new Map<LeasedMessage, Held>();
  private readonly settles = new Set<Promise<unknown>>();
  private readonly running = new Set<Promise<void>>();
  private closing = false;
  // Set once close() is done: nothing may open a connection after that.
  private finished = false;
  private settlerOpening: Promise<Client> | undefined;
  // What every leased message settles through: the settle connection of the moment,
  // reopened if it was lost, so a message leased before a loss can still be acked.
  private readonly via: Settler = { settle: (k, q, p, a) => this.settleOn(k, q, p, a) };
  private started = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private wakeBackOff: (() => void) | undefined;
  private touchTimer: NodeJS.Timeout | undefined;
  // Iteration mode: leased messages not yet handed out, and a waiting next().
  private readonly buffer: LeasedMessage[] = [];
  private waiter: ((m: LeasedMessage | undefined) => void) | undefined;
  private current: LeasedMessage | undefined;
  private handler: Handler | undefined;
  private capacity = 1;

  /** @internal */
  constructor(open: () => Promise<Client>, queue: string, options: ConsumeOptions) {
    // A bad name would otherwise fail every LEASE of the loop: refuse it here.
    nameBytes(queue);
    this.open = open;
    this.queue = queue;
    this.o = {
      leaseMs: 30_000,
      concurrency: 10,
      prefetch: 16,
      waitMs: 5000,
      backoff: defaultBackoff,
      maxDeliveries: 0,
      withMeta: false,
      ...options,
    };
  }

  /** Messages leased and not yet settled. */
  get holding(): number {
    return this.held.size;
  }

  /**
   * Runs `handler` for every message, up to `concurrency` at once, until close().
   * Resolves once the consumer has closed.
   */
  run(handler: Handler): Promise<void> {
    if (this.started) throw new Error("consumer already started");
    this.handler = handler;
    this.capacity = this.o.concurrency;
    return this.start();
  }

  private start(): Promise<void> {
    this.started = true;
    const every = Math.max(50, this.o.leaseMs / 4);
    this.touchTimer = setInterval(() => this.touchDue(), every);
    this.touchTimer.unref?.();
    this.loop = this.fetchLoop();
    return this.loop;
  }

  /** Opens (or reopens after a failure) the two connections. */
  private async ensure(): Promise<[Client, Client]> {
    if (!this.leaser || this.leaser.closed) this.leaser = await this.dial();
    const settler = await this.settleClient();
    return [this.leaser, settler];
  }

  /** The open settle connection, or a new one (one at a time), unless close() is done. */
  private settleClient(): Promise<Client> {
    if (this.settler && !this.settler.closed) return Promise.resolve(this.settler);
    if (this.finished) return Promise.reject(new ConnectionError("consumer closed"));
    this.settlerOpening ??= this.open()
      .then((c) => {
        if (this.finished) {
          c.destroy();
          throw new ConnectionError("consumer closed");
        }
        this.settler = c;
        return c;
      })
      .finally(() => (this.settlerOpening = undefined));
    return this.settlerOpening;
  }

  private async settleOn(kind: "ack" | "nack" | "touch", queue: string, pair: LeasePair, arg: NackOptions | number): Promise<SettleResult> {
    // With the connection open, settle() is called before the first await, so the
    // settles of one tick still go out as one request.
    const s = this.settler && !this.settler.closed ? this.settler : await this.settleClient();
    return s.settle(kind, queue, pair, arg);
  }

  /** Opens a connection, unless close() began meanwhile: then nothing is left open. */
  private async dial(): Promise<Client> {
    const c = await this.open();
    if (this.closing) {
      c.destroy();
      throw new Error("consumer closed");
    }
    return c;
  }

  private async fetchLoop(): Promise<void> {
    let retry = 100;
    while (!this.closing) {
      const free = this.capacity - this.held.size;
      if (free <= 0) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      let got: LeasedMessage[];
      try {
        const [leaser] = await this.ensure();
        if (this.closing) break;
        got = await leaser.lease(this.queue, {
          waitMs: this.o.waitMs,
          max: Math.min(free, 65535),
          leaseMs: this.o.leaseMs,
          maxDeliveries: this.o.maxDeliveries,
          withMeta: this.o.withMeta,
        });
        retry = 100;
      } catch (e) {
        if (this.closing) break;
        // No connection, FULL (leasing past twice the memory cap) or a lost connection,
        // after which the server has returned what we held (our copies are stale): back
        // off; ensure() reconnects.
        this.o.onError?.(e);
        await this.backOff(retry);
        retry = Math.min(5000, retry * 2);
        continue;
      }
      const now = performance.now();
      for (const m of got) {
        // Settle through the connection that never parks.
        m.settler = this.via;
        this.held.set(m, { touchedAt: now, started: false });
        if (this.closing) continue;
        if (this.handler) this.startHandler(m, this.handler);
        else this.offer(m);
      }
      if (this.closing) this.giveBack();
    }
  }

  /** Waits `ms` before the next try, or less if close() begins meanwhile. */
  private backOff(ms: number): Promise<void> {
    return new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      this.wakeBackOff = () => {
        clearTimeout(t);
        r();
      };
    }).finally(() => (this.wakeBackOff = undefined));
  }

  private startHandler(m: LeasedMessage, handler: Handler): void {
    const h = this.held.get(m);
    if (h) h.started = true;
    const p = this.handle(m, handler);
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  private async handle(m: LeasedMessage, handler: Handler): Promise<void> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    try {
      const work = Promise.resolve().then(() => handler(m, ac.signal));
      if (this.o.handlerTimeoutMs !== undefined) {
        const ms = this.o.handlerTimeoutMs;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new HandlerTimeoutError(`handler took longer than ${ms} ms`)), ms);
        });
        work.catch(() => undefined);
        await Promise.race([work, timeout]);
      } else {
        await work;
      }
      this.track(m.ack());
    } catch (e) {
      ac.abort(e);
      this.o.onError?.(e, m);
      this.track(m.nack({ delayMs: this.o.backoff(m.attempt) }));
    } finally {
      if (timer) clearTimeout(timer);
      this.release(m);
    }
  }

  /** Keeps a settle's promise until it is answered, so close() can wait for it. */
  private track(p: Promise<unknown>): void {
    const q = p.catch((e) => this.o.onError?.(e));
    this.settles.add(q);
    void q.finally(() => this.settles.delete(q));
  }

  private release(m: LeasedMessage): void {
    this.held.delete(m);
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Touches every held message whose lease is half gone. */
  private touchDue(): void {
    const now = performance.now();
    const half = this.o.leaseMs / 2;
    for (const [m, h] of this.held) {
      if (m.isSettled || now - h.touchedAt < half) continue;
      h.touchedAt = now;
      this.track(m.touch(this.o.leaseMs));
    }
  }

  /** Gives back, uncharged, every held message no handler has started. */
  private giveBack(): void {
    for (const m of this.buffer.splice(0)) {
      this.track(m.nack({ count: false }));
      this.held.delete(m);
    }
    for (const [m, h] of this.held) {
      if (!h.started && !m.isSettled) {
        this.track(m.nack({ count: false }));
        this.held.delete(m);
      }
    }
  }

  // ----- iteration ------------------------------------------------------------

  private offer(m: LeasedMessage): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w(m);
    } else {
      this.buffer.push(m);
    }
  }

  private async nextMessage(): Promise<IteratorResult<LeasedMessage>> {
    const prev = this.current;
    this.current = undefined;
    if (prev) {
      // The loop body finished without throwing: that is success.
      if (!prev.isSettled) this.track(prev.ack());
      this.release(prev);
    }
    let m = this.buffer.shift();
    if (!m && !this.closing) m = await new Promise<LeasedMessage | undefined>((r) => (this.waiter = r));
    if (!m) return { value: undefined, done: true };
    const h = this.held.get(m);
    if (h) h.started = true;
    this.current = m;
    return { value: m, done: false };
  }

  /**
   * Iterates the messages. Each one is acked when the loop body finishes (when the next
   * is asked for) unless the body settled it. Leaving the loop (break, return or throw)
   * closes the consumer: the current message, if the body did not settle it, goes back
   * uncharged like the others not started; settle it before leaving if it is done.
   */
  [Symbol.asyncIterator](): AsyncIterator<LeasedMessage> {
    if (this.started) throw new Error("consumer already started");
    this.capacity = this.o.prefetch;
    void this.start();
    return {
      next: () => this.nextMessage(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  /**
   * Stops taking messages, gives back those not started (NACK count=false, no attempt
   * charged), waits for running handlers (bounded by handlerTimeoutMs when set) and
   * for every settle to be answered, then closes the connections.
   */
  async close(): Promise<void> {
    if (this.closing) {
      await this.loop;
      return;
    }
    this.closing = true;
    const cur = this.current;
    this.current = undefined;
    if (cur) {
      if (!cur.isSettled) this.track(cur.nack({ count: false }));
      this.held.delete(cur);
    }
    this.giveBack();
    this.waiter?.(undefined);
    this.waiter = undefined;
    this.wake?.();
    this.wakeBackOff?.();
    if (this.touchTimer) clearInterval(this.touchTimer);
    // Running handlers keep their leases alive until they finish.
    const keepTouching = setInterval(() => this.touchDue(), Math.max(50, this.o.leaseMs / 4));
    await Promise.allSettled([...this.running]);
    clearInterval(keepTouching);
    this.settler?.flushSettles();
    await Promise.allSettled([...this.settles]);
    // Cancels a LEASE parked for new work (a parked receive is cancelled without
    // handing it anything, protocol.md 3.5). Messages it got just before are given back
    // by the loop, so wait for the loop and then for those settles too.
    this.leaser?.destroy();
    await this.loop?.catch(() => undefined);
    // One the loop was opening while close() began.
    this.leaser?.destroy();
    this.settler?.flushSettles();
    await Promise.allSettled([...this.settles]);
    this.finished = true;
    await this.settlerOpening?.catch(() => undefined);
    await this.settler?.close().catch(() => undefined);
  }
}

/** A handler ran past `handlerTimeoutMs`. */
export class HandlerTimeoutError extends Error {
  override name = "HandlerTimeoutError";
}
