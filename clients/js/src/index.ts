/**
 * beuss: a client for the beuss message-queue server (protocol version 6).
 *
 * ```ts
 * import { connect } from "beuss";
 * const c = await connect();                 // BUNIX, else BHOST/BPORT, default localhost:6552
 * await c.put("jobs", "hello");
 * const [m] = await c.get("jobs", { waitMs: 1000 });
 * console.log(m?.text());
 * await c.close();
 * ```
 */
export { connect, addressFromEnv, parseAddress, readTokenFile, Client } from "./client.js";
export type {
  ConnectOptions,
  ServerInfo,
  PutResult,
  GetOptions,
  LeaseOptions,
  PublishOptions,
  PutOptions,
  ScheduleTarget,
  ScheduleOptions,
} from "./client.js";
export { Message, LeasedMessage } from "./message.js";
export type { NackOptions } from "./message.js";
export { Subscription, Event } from "./subscription.js";
export { Consumer, HandlerTimeoutError, defaultBackoff } from "./consumer.js";
export type { ConsumeOptions, Handler } from "./consumer.js";
export { Reconnector, reconnecting } from "./reconnect.js";
export type { ReconnectOptions } from "./reconnect.js";
export * from "./errors.js";
export {
  Feature,
  MAX_TOKEN,
  MAX_SCHEDULE_FRAME,
  MAX_TTL_MS,
  MAX_UNIQUE_KEY,
  MAX_UNIQUE_WINDOW_MS,
  PROTOCOL_VERSION,
  WAIT_FOREVER,
  NEVER_DEAD,
  CodecError,
} from "./codec.js";
export type {
  Payload,
  LeasePair,
  SettleResult,
  Stats,
  PublishResult,
  DuplicateState,
  ScheduleResult,
  ScheduleInfo,
} from "./codec.js";
/** The wire codec, for tools and tests (encoders and decoders of every frame). */
export * as codec from "./codec.js";
