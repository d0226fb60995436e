/**
 * Error classes. One subclass of {@link ServerError} per server error code
 * (protocol.md 5, 13.12, 15.13, 16.10, 17.9) so callers can `catch (e) { if (e instanceof FullError) ... }`;
 * connection-level failures are a separate branch ({@link ConnectionError}).
 */

/** Base of every error this client throws on purpose. */
export class BeussError extends Error {
  override name = "BeussError";
}

/** The server answered with an ERROR frame (protocol.md 4.7). */
export class ServerError extends BeussError {
  override name = "ServerError";
  /** The server's error code (protocol.md 5). */
  readonly code: number;
  /** The server closes the connection after this error (decided by the fatal byte, 4.7). */
  readonly fatal: boolean;
  /** The server's text, for people and logs (clients must not parse it). */
  readonly text: string;
  /** @param code error code; @param fatal fatal byte; @param text the server's text */
  constructor(code: number, fatal: boolean, text: string) {
    super(`${codeName(code)} (${code}${fatal ? ", fatal" : ""}): ${text}`);
    this.code = code;
    this.fatal = fatal;
    this.text = text;
  }
}

/** Code 1: a field ran past the frame or bytes were left over. */
export class MalformedError extends ServerError {
  override name = "MalformedError";
}
/** Code 2: the server does not know the opcode. */
export class UnknownOpcodeError extends ServerError {
  override name = "UnknownOpcodeError";
}
/** Code 3: the queue name is empty or not UTF-8. */
export class BadQueueNameError extends ServerError {
  override name = "BadQueueNameError";
}
/** Code 4: a control frame over its length cap. */
export class FrameTooLargeError extends ServerError {
  override name = "FrameTooLargeError";
}
/** Code 5: the flags byte is not allowed. */
export class BadFlagsError extends ServerError {
  override name = "BadFlagsError";
}
/** Code 6: a field has a value the request does not allow. */
export class BadArgumentError extends ServerError {
  override name = "BadArgumentError";
}
/** Code 7 (not fatal): the server is over BMAXMEMORY; nothing was done. Back-pressure: retry later. */
export class FullError extends ServerError {
  override name = "FullError";
}
/** Code 8: the server holds BMAXCONNECTIONS connections. */
export class TooManyConnectionsError extends ServerError {
  override name = "TooManyConnectionsError";
}
/** Code 9: the server refused the protocol version. */
export class UnsupportedVersionError extends ServerError {
  override name = "UnsupportedVersionError";
}
/** Code 10: the server is stopping; requests without a reply before it were not carried out. */
export class ShuttingDownError extends ServerError {
  override name = "ShuttingDownError";
}
/** Code 11: the journal could not be written or synced (fatal or not, see `fatal`). */
export class StorageError extends ServerError {
  override name = "StorageError";
}
/** Code 12: a subject or pattern breaks the rules of protocol.md 15.1. */
export class BadSubjectError extends ServerError {
  override name = "BadSubjectError";
}
/** Code 13 (not fatal): a request matched no queue and no subscription. */
export class NoRespondersError extends ServerError {
  override name = "NoRespondersError";
}
/** Code 14 (not fatal): fewer queues match than the confirmations asked for; nothing stored. */
export class TooFewCopiesError extends ServerError {
  override name = "TooFewCopiesError";
}
/** Code 15 (not fatal): a per-connection limit (1024 subscriptions) was reached. */
export class LimitError extends ServerError {
  override name = "LimitError";
}

/** Code 16 (fatal): the server requires AUTH before this request (16.1). */
export class AuthRequiredError extends ServerError {
  override name = "AuthRequiredError";
}
/** Code 17 (fatal): the token is not one of the server's (16.2). */
export class AuthFailedError extends ServerError {
  override name = "AuthFailedError";
}
/** Code 18 (not fatal): the connection's token is read-only (16.4). */
export class ForbiddenError extends ServerError {
  override name = "ForbiddenError";
}
/** Code 19 (fatal, unprompted): a partial request, a missing AUTH or an idle connection ran out of time on the server (16.5). */
export class ServerTimeoutError extends ServerError {
  override name = "ServerTimeoutError";
}

/**
 * Code 20 (not fatal): a SCHEDULE whose spec the server cannot read, or whose payload is
 * longer than its max_message_size (17.3); nothing was changed, and `text` says what is wrong.
 */
export class BadScheduleError extends ServerError {
  override name = "BadScheduleError";
}

/** Error code numbers (protocol.md 5). */
export const ErrorCode = {
  MALFORMED: 1,
  UNKNOWN_OPCODE: 2,
  BAD_QUEUE_NAME: 3,
  FRAME_TOO_LARGE: 4,
  BAD_FLAGS: 5,
  BAD_ARGUMENT: 6,
  FULL: 7,
  TOO_MANY_CONNECTIONS: 8,
  UNSUPPORTED_VERSION: 9,
  SHUTTING_DOWN: 10,
  STORAGE: 11,
  BAD_SUBJECT: 12,
  NO_RESPONDERS: 13,
  TOO_FEW_COPIES: 14,
  LIMIT: 15,
  AUTH_REQUIRED: 16,
  AUTH_FAILED: 17,
  FORBIDDEN: 18,
  TIMEOUT: 19,
  BAD_SCHEDULE: 20,
} as const;

type ServerErrorClass = new (code: number, fatal: boolean, text: string) => ServerError;

const CLASSES: Record<number, ServerErrorClass> = {
  1: MalformedError,
  2: UnknownOpcodeError,
  3: BadQueueNameError,
  4: FrameTooLargeError,
  5: BadFlagsError,
  6: BadArgumentError,
  7: FullError,
  8: TooManyConnectionsError,
  9: UnsupportedVersionError,
  10: ShuttingDownError,
  11: StorageError,
  12: BadSubjectError,
  13: NoRespondersError,
  14: TooFewCopiesError,
  15: LimitError,
  16: AuthRequiredError,
  17: AuthFailedError,
  18: ForbiddenError,
  19: ServerTimeoutError,
  20: BadScheduleError,
};

/** The protocol name of an error code, or `ERROR_<n>` for a code this client does not know. */
export function codeName(code: number): string {
  for (const [k, v] of Object.entries(ErrorCode)) if (v === code) return k;
  return `ERROR_${code}`;
}

/**
 * The error object for an ERROR frame: the class of its code, or plain ServerError for
 * a code this client does not know (protocol.md 5: unknown codes are generic errors).
 */
export function serverError(code: number, fatal: boolean, text: string): ServerError {
  const C = CLASSES[code] ?? ServerError;
  return new C(code, fatal, text);
}

/**
 * The connection failed or closed: requests without a reply have an unknown outcome
 * (a PUT may or may not have been stored, protocol.md 2.8), unless `notCarriedOut`.
 */
export class ConnectionError extends BeussError {
  override name = "ConnectionError";
  /** True when the server said these requests were not carried out (after a fatal ERROR). */
  readonly notCarriedOut: boolean;
  /** @param message what happened; @param options cause and whether requests were carried out */
  constructor(message: string, options?: { cause?: unknown; notCarriedOut?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.notCarriedOut = options?.notCarriedOut ?? false;
  }
}

/**
 * No reply came within the wait asked for plus the client's margin. The connection is
 * closed, since a late reply could no longer be matched to its request.
 */
export class TimeoutError extends ConnectionError {
  override name = "TimeoutError";
}

/** The server sent a frame this client cannot decode: the connection cannot be trusted and is closed. */
export class ProtocolError extends ConnectionError {
  override name = "ProtocolError";
}

/** A REQ got no reply within its timeout (the server answered EMPTY, protocol.md 15.8). */
export class RequestTimeoutError extends BeussError {
  override name = "RequestTimeoutError";
}

/**
 * The request needs a protocol version the connection did not negotiate (protocol.md
 * 9.1), or a feature the server did not announce in HELLO (17.1, 18.1, 19.1): refused
 * before anything is sent, since an older server would answer it with a
 * fatal error that costs every other request in flight.
 */
export class UnsupportedError extends BeussError {
  override name = "UnsupportedError";
}
