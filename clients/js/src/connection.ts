/**
 * One TCP connection to a beuss server with pipelining: requests are written as they
 * come (gathered into one socket write per tick), replies are matched to requests in
 * order (protocol.md 2.4: the n-th reply answers the n-th request), and EVENT frames
 * (15.6), which answer nothing, are handed to a listener instead.
 */
import * as net from "node:net";
import { performance } from "node:perf_hooks";
import { CodecError, Status, decodeError, decodeEvent, type RawEvent } from "./codec.js";
import { ConnectionError, ProtocolError, ServerError, TimeoutError, serverError } from "./errors.js";

/** Turns a reply frame (status first, no length) into a value, or throws. */
export type Decoder<T> = (body: Buffer) => T;

interface Pending {
  decode: Decoder<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** How long this request may take once it is the oldest in flight (ms; Infinity = no limit). */
  budget: number;
}

/** Where and how to connect. */
export interface ConnectionOptions {
  /** Host name or address. */
  host: string;
  /** TCP port. */
  port: number;
  /** A Unix socket path instead of host and port (protocol.md 16.6). */
  path?: string;
  /** Longest connect time, and the margin added to every wait (ms). */
  timeoutMs: number;
  /** Largest reply frame accepted (bytes after the length prefix). */
  maxFrameBytes: number;
}

/** Writes smaller than this are copied into the tick's batch; larger ones go out as they are. */
const COPY_LIMIT = 64 * 1024;
/** Large frames are handed to the socket in slices of this size. */
const SLICE = 256 * 1024;

/**
 * A pipelined connection. Not exported from the package: {@link Client} wraps it.
 */
export class Connection {
  private readonly socket: net.Socket;
  private readonly opts: ConnectionOptions;
  // FIFO of requests without a reply: an array with a head index, so that a deep
  // pipeline does not pay Array.shift's copying.
  private pending: (Pending | undefined)[] = [];
  private head = 0;
  // Receive side: chunks of an incomplete frame, gathered until `need` bytes are in,
  // so that a large frame is copied once instead of once per chunk.
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private need = 4;
  // Send side: frames of this tick, flushed in one write.
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushQueued = false;
  // The oldest request's deadline (performance.now() ms) and the timer that checks it.
  private deadline = Infinity;
  private timer: NodeJS.Timeout | undefined;
  // When `timer` fires (performance.now() ms).
  private timerAt = Infinity;
  // Bytes the socket had handed to the OS when the timer last found the deadline passed,
  // and whether some were still queued then.
  private sentMark = 0;
  private sending = false;
  private closedError: Error | undefined;
  private readonly closeListeners: ((e: Error) => void)[] = [];
  /** Receives every EVENT frame. */
  onEvent: ((e: RawEvent) => void) | undefined;

  private constructor(socket: net.Socket, opts: ConnectionOptions) {
    this.socket = socket;
    this.opts = opts;
    socket.on("data", (c: Buffer) => this.onData(c));
    socket.on("error", (e) => this.fail(new ConnectionError(`connection error: ${e.message}`, { cause: e })));
    socket.on("close", () => this.fail(new ConnectionError("connection closed by the server")));
  }

  /** Opens a connection; TCP_NODELAY is on because every request is small and latency-bound. */
  static open(opts: ConnectionOptions): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket =
        opts.path !== undefined
          ? net.connect({ path: opts.path })
          : net.connect({ host: opts.host, port: opts.port, noDelay: true });
      if (opts.path === undefined) socket.setNoDelay(true);
      const where = opts.path !== undefined ? `unix:${opts.path}` : `${opts.host}:${opts.port}`;
      const t = setTimeout(() => {
        socket.destroy();
        reject(new TimeoutError(`connect to ${where} timed out after ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const onErr = (e: Error): void => {
        clearTimeout(t);
        reject(new ConnectionError(`cannot connect to ${where}: ${e.message}`, { cause: e }));
      };
      socket.once("error", onErr);
      socket.once("connect", () => {
        clearTimeout(t);
        socket.off("error", onErr);
        resolve(new Connection(socket, opts));
      });
    });
  }

  /** The error that closed the connection, or undefined while it is open. */
  get closed(): Error | undefined {
    return this.closedError;
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.pending.length - this.head;
  }

  /** Calls `f` once, when the connection closes, with the reason. */
  onClose(f: (e: Error) => void): void {
    if (this.closedError) f(this.closedError);
    else this.closeListeners.push(f);
  }

  /**
   * Sends one request frame and resolves with its decoded reply. `waitMs` is how long
   * the server may legitimately hold the request (a parked GET, LEASE, REQ or confirm
   * PUB); the client allows that plus its margin once the request is the oldest in
   * flight, and no limit for a wait of Infinity.
   */
  request<T>(frame: Buffer, decode: Decoder<T>, waitMs = 0): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.closedError) {
        reject(this.closedError);
        return;
      }
      const budget = waitMs === Infinity ? Infinity : waitMs + this.opts.timeoutMs;
      const p: Pending = { decode: decode as Decoder<unknown>, resolve: resolve as (v: unknown) => void, reject, budget };
      if (this.pending.length === this.head) this.arm(budget);
      this.pending.push(p);
      this.write(frame);
    });
  }

  /** Queues bytes for this tick's write. */
  private write(frame: Buffer): void {
    if (frame.length >= COPY_LIMIT) {
      // A big payload: send what is gathered, then the payload itself, without copying
      // it, in slices, so that the socket's count of bytes written moves as they go out
      // (the reply timer takes that as life, see check()).
      this.flush();
      for (let i = 0; i < frame.length; i += SLICE) this.socket.write(frame.subarray(i, i + SLICE));
      return;
    }
    this.out.push(frame);
    this.outBytes += frame.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.out.length === 0 || this.closedError) {
      this.out = [];
      this.outBytes = 0;
      return;
    }
    const b = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(b);
  }

  private arm(budget: number): void {
    this.deadline = budget === Infinity ? Infinity : performance.now() + budget;
    // A new oldest request: write progress counts from here (see check()).
    this.sentMark = this.socket.bytesWritten - this.socket.writableLength;
    this.sending = false;
    if (this.deadline === Infinity) return;
    // A timer set for a longer wait (a parked GET answered early) would fire too late
    // for this request: move it forward.
    if (this.timer !== undefined && this.timerAt > this.deadline) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.timer === undefined) this.schedule(budget);
  }

  private schedule(ms: number): void {
    const wait = Math.max(1, Math.ceil(ms));
    this.timerAt = performance.now() + wait;
    this.timer = setTimeout(() => this.check(), wait);
    this.timer.unref?.();
  }

  // One timer per connection, moved lazily: replies only update `deadline`, and the
  // timer, when it fires early, sleeps again for what is left.
  private check(): void {
    this.timer = undefined;
    if (this.inFlight === 0 || this.deadline === Infinity) return;
    const left = this.deadline - performance.now();
    if (left > 0) {
      this.schedule(left);
      return;
    }
    // Bytes of ours still going out (a large PUT to a slow reader) are a live peer: the
    // reply cannot come before the request is in. While they are queued here and for one
    // budget after the last of them left (the OS buffers still have to drain), only a
    // budget without progress fails.
    const sent = this.socket.bytesWritten - this.socket.writableLength;
    const queued = this.socket.writableLength > 0;
    if ((queued || this.sending) && sent > this.sentMark) {
      this.sentMark = sent;
      this.sending = queued;
      this.deadline = performance.now() + this.pending[this.head]!.budget;
      this.schedule(this.pending[this.head]!.budget);
      return;
    }
    this.fail(new TimeoutError(`no reply within the wait asked for plus ${this.opts.timeoutMs} ms; connection closed`));
  }

  private onData(chunk: Buffer): void {
    let buf: Buffer;
    if (this.chunkBytes > 0) {
      this.chunks.push(chunk);
      this.chunkBytes += chunk.length;
      if (this.chunkBytes < this.need) return;
      buf = Buffer.concat(this.chunks, this.chunkBytes);
      this.chunks = [];
      this.chunkBytes = 0;
    } else {
      buf = chunk;
    }
    let off = 0;
    const end = buf.length;
    while (end - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len < 1 || len > this.opts.maxFrameBytes) {
        this.fail(new ProtocolError(`server sent a frame of length ${len} (cap ${this.opts.maxFrameBytes})`));
        return;
      }
      if (end - off - 4 < len) break;
      const body = buf.subarray(off + 4, off + 4 + len);
      off += 4 + len;
      this.dispatch(body);
      if (this.closedError) return;
    }
    if (off < end) {
      const rest = buf.subarray(off);
      this.chunks.push(rest);
      this.chunkBytes = rest.length;
      this.need = rest.length >= 4 ? 4 + rest.readUInt32BE(0) : 4;
    }
  }

  private dispatch(body: Buffer): void {
    const status = body[0];
    if (status === Status.EVENT) {
      let ev: RawEvent;
      try {
        ev = decodeEvent(body);
      } catch (e) {
        this.fail(new ProtocolError(`bad EVENT frame: ${(e as Error).message}`, { cause: e }));
        return;
      }
      this.onEvent?.(ev);
      return;
    }
    const p = this.pending[this.head];
    if (status === Status.ERROR) {
      let err: ServerError;
      try {
        const d = decodeError(body);
        err = serverError(d.code, d.fatal, d.text);
      } catch (e) {
        this.fail(new ProtocolError(`bad ERROR frame: ${(e as Error).message}`, { cause: e }));
        return;
      }
      if (!p && !err.fatal) {
        // Only fatal errors come unprompted (2.8): the peer and this client disagree.
        this.fail(new ProtocolError(`server sent a non-fatal ${err.message} with no request in flight`, { cause: err }));
        return;
      }
      if (p) this.shift();
      if (err.fatal) {
        // 2.8: the error answers the oldest request; every later one was not carried out.
        p?.reject(err);
        this.fail(new ConnectionError(`connection closed after ${err.message}; request not carried out`, { cause: err, notCarriedOut: true }));
      } else if (p) {
        p.reject(err);
      }
      return;
    }
    if (!p) {
      this.fail(new ProtocolError(`server sent status 0x${status?.toString(16)} with no request in flight`));
      return;
    }
    this.shift();
    let v: unknown;
    try {
      v = p.decode(body);
    } catch (e) {
      if (!(e instanceof CodecError)) {
        // A decoder may turn a valid reply into an error of its own (e.g. EMPTY to a REQ).
        p.reject(e);
        return;
      }
      const pe = new ProtocolError(`bad reply frame: ${e.message}`, { cause: e });
      p.reject(pe);
      this.fail(pe);
      return;
    }
    p.resolve(v);
  }

  private shift(): void {
    this.pending[this.head] = undefined;
    this.head++;
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
      this.deadline = Infinity;
    } else {
      if (this.head > 1024 && this.head * 2 > this.pending.length) {
        this.pending = this.pending.slice(this.head);
        this.head = 0;
      }
      this.arm(this.pending[this.head]!.budget);
    }
  }

  /** Closes the connection and rejects every request in flight with `e`. Safe to call more than once. */
  fail(e: Error): void {
    if (this.closedError) return;
    this.closedError = e;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const pend = this.pending.slice(this.head);
    this.pending = [];
    this.head = 0;
    this.socket.destroy();
    for (const p of pend) p?.reject(e);
    for (const f of this.closeListeners.splice(0)) f(this.closedError);
  }

  /**
   * Half-closes: sends what is queued, then end-of-stream. The server carries out every
   * request sent in full before it, then closes (protocol.md 2.8).
   */
  end(): void {
    this.flush();
    if (!this.closedError) this.socket.end();
  }

  /** Closes at once; requests in flight are rejected with ConnectionError. */
  destroy(reason = "connection closed by the client"): void {
    this.fail(new ConnectionError(reason));
  }
}
