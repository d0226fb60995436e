/**
 * A reconnect helper: keeps one live {@link Client}, opening a new connection (with
 * backoff) when the last one was lost.
 *
 * At-least-once, never silently: a request in flight when a connection drops fails
 * with ConnectionError and is NOT replayed, because its outcome is unknown (a PUT may
 * have been stored, protocol.md 2.8). Only run(fn, { retry: true }) replays, for work
 * the caller knows is safe to repeat (a duplicate PUT is then possible: consumers
 * should be idempotent). Messages leased on a lost connection are stale: the server
 * returned them, and settling one answers false with `result` "stale" or "not_found",
 * never an ack of the new delivery.
 */
import { Client, type ConnectOptions } from "./client.js";
import { ConnectionError, ShuttingDownError, TooManyConnectionsError } from "./errors.js";

/**
 * The connection was lost under a request: a ConnectionError, or the two fatal errors
 * that are about the server, not the request (it stopped, or it is full).
 */
function lostConnection(e: unknown): boolean {
  return e instanceof ConnectionError || e instanceof ShuttingDownError || e instanceof TooManyConnectionsError;
}

/** How a {@link Reconnector} retries. */
export interface ReconnectOptions {
  /** First delay between connect attempts (ms, default 100); it doubles each time. */
  minDelayMs?: number;
  /** Longest delay between attempts (ms, default 5000). */
  maxDelayMs?: number;
  /** Give up after this many failed attempts in a row (default Infinity). */
  maxAttempts?: number;
}

/** Keeps a live client; see {@link reconnecting}. */
export class Reconnector {
  private current: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private closed = false;
  // Ends the back-off wait between attempts early when close() is called.
  private wakeDial: (() => void) | undefined;

  /** @param connectFn opens a client; @param options retry policy */
  constructor(
    private readonly connectFn: () => Promise<Client>,
    private readonly options: ReconnectOptions = {},
  ) {}

  /** A connected client: the current one, or a new one if it was lost. */
  client(): Promise<Client> {
    if (this.closed) return Promise.reject(new ConnectionError("reconnector closed"));
    if (this.current && !this.current.closed) return Promise.resolve(this.current);
    this.connecting ??= this.dial().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async dial(): Promise<Client> {
    let delay = this.options.minDelayMs ?? 100;
    const max = this.options.maxDelayMs ?? 5000;
    const attempts = this.options.maxAttempts ?? Infinity;
    for (let i = 1; ; i++) {
      let c: Client;
      try {
        c = await this.connectFn();
      } catch (e) {
        if (i >= attempts || this.closed) throw e;
        await new Promise<void>((r) => {
          const t = setTimeout(r, delay);
          this.wakeDial = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wakeDial = undefined;
        delay = Math.min(max, delay * 2);
        if (this.closed) throw new ConnectionError("reconnector closed");
        continue;
      }
      // close() was called while this connection was being opened: nobody will close it.
      if (this.closed) {
        c.destroy();
        throw new ConnectionError("reconnector closed");
      }
      this.current = c;
      return c;
    }
  }

  /**
   * Runs `fn` with a live client. When the connection fails under it (ConnectionError,
   * or the server stopping or being full), the error is passed on (the outcome may be
   * unknown), unless `retry` is true: then it reconnects and runs `fn` again, up to
   * `maxAttempts` times.
   */
  async run<T>(fn: (c: Client) => Promise<T>, opts: { retry?: boolean } = {}): Promise<T> {
    const attempts = this.options.maxAttempts ?? Infinity;
    for (let i = 1; ; i++) {
      const c = await this.client();
      try {
        return await fn(c);
      } catch (e) {
        if (!opts.retry || !lostConnection(e) || i >= attempts || this.closed) throw e;
      }
    }
  }

  /** Closes the current client and stops reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    this.wakeDial?.();
    // A dial under way gives up (and closes what it opened) once it sees `closed`.
    await this.connecting?.catch(() => undefined);
    await this.current?.close();
  }
}

/** A {@link Reconnector} for the server `options` name (as {@link connect} takes them). */
export function reconnecting(options: ConnectOptions = {}, retry: ReconnectOptions = {}): Reconnector {
  return new Reconnector(() => Client.open(options), retry);
}
