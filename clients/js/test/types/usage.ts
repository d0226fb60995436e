// Compiled (not run) by `npm test`: the shipped declarations resolve through the
// package's "exports" and give the types the README promises.
import {
  BadScheduleError,
  connect,
  type DuplicateState,
  Feature,
  FullError,
  type LeasedMessage,
  MAX_TTL_MS,
  type Message,
  type PutOptions,
  type PutResult,
  type ScheduleInfo,
  type ScheduleResult,
  type ScheduleTarget,
  type Stats,
  type Subscription,
} from "beuss";

export async function usage(): Promise<void> {
  const c = await connect({ host: "127.0.0.1", port: 6552, timeoutMs: 5000 });
  const put = await c.put("jobs", new Uint8Array([1, 2]), { delayMs: 0, priority: 2 });
  const id: bigint | undefined = put.id;
  const ms: Message[] = await c.get("jobs", { waitMs: 1000, max: 10 });
  const text: string | undefined = ms[0]?.text();
  const obj = ms[0]?.json<{ n: number }>();
  const leased: LeasedMessage[] = await c.lease("jobs", { leaseMs: 30_000 });
  const ok: boolean | undefined = await leased[0]?.ack();
  const stats: Stats = await c.stats("jobs");
  const ready: bigint | undefined = stats.queues.get("jobs")?.get("ready");
  const sub: Subscription = await c.subscribe("orders.>");
  for await (const ev of sub) {
    const s: string = ev.subject;
    const to: bigint | undefined = ev.replyTo;
    void [s, to];
    break;
  }
  const worker = c.consume("jobs", { concurrency: 4, handlerTimeoutMs: 1000 });
  void worker.run(async (m: LeasedMessage, signal: AbortSignal) => {
    void [m.attempt satisfies number, signal.aborted];
  });
  await worker.close();
  try {
    await c.publish("orders.x", "hi", { confirm: 1, timeoutMs: 100 });
  } catch (e) {
    if (e instanceof FullError) void e.code;
  }
  const target: ScheduleTarget = { queue: "jobs" };
  const made: ScheduleResult = await c.schedule("nightly", "0 3 * * *", target, { payload: "backup", priority: 1 });
  const first: bigint = made.nextRunMs;
  await c.schedule("ticks", "@every 10s", { subject: "clock.tick" });
  const next: bigint | null = await c.resumeSchedule("nightly");
  const paused: bigint | null = await c.pauseSchedule("nightly");
  const list: ScheduleInfo[] = await c.schedules();
  const runs: bigint | undefined = list[0]?.runs;
  const removed: boolean = await c.unschedule("nightly");
  try {
    await c.schedule("bad", "61 * * * *", target);
  } catch (e) {
    if (e instanceof BadScheduleError) void e.text;
  }
  const once: PutOptions = { unique: "order-42", uniqueFor: 600_000 };
  const u: PutResult = await c.put("jobs", "hi", once);
  const dup: DuplicateState | undefined = u.duplicate;
  const latest = await c.put("prices", "1.08", { unique: new Uint8Array([1]), replace: true, priority: 1, delayMs: 0 });
  const replaced: boolean | undefined = latest.replaced;
  const brief: PutOptions = { ttlMs: 5000, ttlDeadLetter: true };
  const e: PutResult = await c.put("quotes", "hi", brief);
  await c.putMany("cache", ["a", "b"], { ttlMs: 0, unique: "k", priority: 1 });
  const longest: number = MAX_TTL_MS;
  const hasTtl: boolean = c.server.has(Feature.TTL);
  void [id, text, obj, ok, ready, first, next, paused, runs, removed, dup, replaced, e.id, longest, hasTtl];
  await c.close();
}

// A duplicate state is one of the four of protocol.md 18.3.
// @ts-expect-error not a state
export const state: DuplicateState = "leased";
// A key is a string or bytes.
// @ts-expect-error a number is not a key
export const numKey: PutOptions = { unique: 42 };
// A time to live is a number of ms.
// @ts-expect-error a string is not a time to live
export const strTtl: PutOptions = { ttlMs: "5s" };

// A target is a queue or a subject, not both.
// @ts-expect-error both queue and subject
export const both: import("beuss").ScheduleTarget = { queue: "q", subject: "s" };
