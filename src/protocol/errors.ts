/**
 * The one table of error codes. JSON-RPC's own codes come first; application codes live in
 * 1000-1999, outside the range the spec reserves (-32768..-32000). Every error the gateway sends
 * has `data.name` set to the symbolic name below, so clients match on a stable string as well as
 * the number. README.md documents the same table; a test checks they agree.
 */
import { MAX_ECHOED_NAME_LENGTH } from './constants.js';

export const ErrorCode = {
  /** Invalid JSON was received. */
  PARSE_ERROR: -32700,
  /** The JSON is not a valid JSON-RPC 2.0 request object (or the batch is empty / too long). */
  INVALID_REQUEST: -32600,
  /** The method does not exist. */
  METHOD_NOT_FOUND: -32601,
  /** Params failed validation; `data.errors` lists each problem with its JSON pointer path. */
  INVALID_PARAMS: -32602,
  /** A bug or an unexpected failure inside the gateway. Never carries a stack trace. */
  INTERNAL_ERROR: -32603,
  /** An idempotency key was reused with different params. */
  IDEMPOTENCY_CONFLICT: 1001,
  /** The durable store failed to read or commit (disk full, I/O error, a damaged file, its file removed under it); the call changed nothing, or its message says what it did. */
  STORE_UNAVAILABLE: 1002,
  /** The gateway is shutting down and takes no new work; retry against the restarted gateway. */
  SHUTTING_DOWN: 1003,
  /** An ack names a sequence number the session never issued. */
  ACK_OUT_OF_RANGE: 1004,
  /** session.unsubscribe names a subscription this connection does not hold. */
  SUBSCRIPTION_NOT_FOUND: 1005,
  /** A connection asked for more subscriptions than MAX_SUBSCRIPTIONS_PER_CONNECTION. */
  TOO_MANY_SUBSCRIPTIONS: 1006,
  /** event.trace names an event the gateway has no record of. */
  EVENT_NOT_FOUND: 1007,
  /** The token may not do this: wrong agent, or a scope it was not given. */
  FORBIDDEN: 1008,
  /** The method needs a WebSocket (session.subscribe over HTTP has nowhere to push events). */
  TRANSPORT_UNSUPPORTED: 1009,
  // 1010 was TOO_MANY_IN_FLIGHT: a connection at its in-flight limit is now read no further until
  // answers free places, and nothing is refused. The number is not reused.
  /** token.revoke names a token that does not exist. */
  TOKEN_NOT_FOUND: 1011,
  // Refusals at the HTTP level, before any RPC is read: the body of the HTTP error says which
  // (RATE_LIMITED is also an RPC error of rpc.discover, below).
  /** No valid token (HTTP 401). */
  UNAUTHORIZED: 1012,
  /**
   * Too many failed authentications, or open connections, from one address, or open connections
   * of one scoped token (HTTP 429, Retry-After); or rpc.discover asked while the connection's unwritten answers fill its reads' pool.
   */
  RATE_LIMITED: 1013,
  /** A token in the URL's query string (HTTP 400): URLs end up in logs. */
  CREDENTIALS_IN_URL: 1014,
  /** An HTTP body past MAX_HTTP_BODY_BYTES (HTTP 413). */
  BODY_TOO_LARGE: 1015,
  /** An HTTP body that is not JSON by its Content-Type (HTTP 415). */
  UNSUPPORTED_MEDIA_TYPE: 1016,
  /** An HTTP body that did not arrive within HTTP_BODY_TIMEOUT_MS (HTTP 408). */
  BODY_TIMEOUT: 1017,
  /** A verb other than POST on /rpc or /hooks/wake (HTTP 405, Allow: POST), than GET and HEAD on /healthz (Allow: GET, HEAD), or than GET and HEAD on / (Allow: GET, HEAD). */
  METHOD_NOT_ALLOWED: 1018,
  /**
   * session.subscribe's `after` is beyond the last seq the session issued: the events up to it
   * would be skipped unseen (seqs are reissued after a data dir restore or reset).
   */
  AFTER_OUT_OF_RANGE: 1019,
  /**
   * A path with no route (HTTP 404): an upgrade on a path other than /, any other request on one
   * other than /rpc, /hooks/wake and /healthz. POST routes have their paths, upgrades theirs.
   */
  PATH_NOT_FOUND: 1020,
  /**
   * A WebSocket upgrade that breaks RFC 6455 section 4.2.1 (HTTP 400), or asks for a version of
   * the protocol other than 13 (HTTP 426, with Sec-WebSocket-Version: 13).
   */
  BAD_HANDSHAKE: 1021,
  /**
   * A WebSocket upgrade whose Origin names another host than its Host (HTTP 403): a web page of
   * another site. Browsers are not clients of the gateway.
   */
  CROSS_ORIGIN: 1022,
  /**
   * A request Node's HTTP parser refused before any route saw it: not HTTP/1.1 it can read (HTTP
   * 400), headers past its limit (HTTP 431), or headers not complete within the handshake timeout (HTTP 408).
   */
  BAD_HTTP_REQUEST: 1023,
  /**
   * gateway.backup could not write its copy: the file exists already (nothing is overwritten), its
   * directory is missing or not writable, or the disk is full. The store is untouched, and nothing
   * of the copy is left.
   */
  BACKUP_FAILED: 1024,
  /**
   * session.subscribe for a target the connection already subscribes to (the same session, or
   * every session of the same agent): each subscription is pushed every event, so duplicates
   * multiplied what one event costs the gateway (QA: 20 connections of 256 duplicates each stalled
   * it for 5 s on 100 events).
   */
  ALREADY_SUBSCRIBED: 1025,
  /**
   * The gateway holds MAX_UNFINISHED_MESSAGE_BYTES of requests and messages not yet whole, and this
   * one held the most (HTTP 503 with Retry-After; a WebSocket is closed with 1013 instead). Nothing
   * of it was done: send it again.
   */
  GATEWAY_BUSY: 1026,
  /**
   * system.event while the data dir's disk has less free space than the gateway keeps
   * (--min-free-disk): on a disk filled to the last byte acks fail too, and agents could not drain
   * what filled it. Nothing was stored (HTTP 507 on /hooks/wake).
   */
  STORE_FULL: 1027,
  /**
   * A URL query naming a call's parameter or a JSON-RPC member (HTTP 400): `POST
   * /hooks/wake?sessionKey=...` would have sent the event to the main session, since the gateway
   * reads parameters from the body (each message's, over a WebSocket) only (QA).
   */
  PARAMS_IN_URL: 1028,
} as const;

export type ErrorName = keyof typeof ErrorCode;

/** One-line descriptions, used by the OpenRPC document and the README table. */
export const ERROR_DESCRIPTIONS: Record<ErrorName, string> = {
  PARSE_ERROR: 'The request (a WebSocket frame, a POST /rpc body) is not valid JSON. Answered with id null.',
  INVALID_REQUEST: 'Not a JSON-RPC 2.0 request object, or an empty batch (one error, not in an array); each request of a batch longer than the limit (100) is answered it, in an array, and none of them is run (its notifications get no answer); one of more than 1000 requests, or whose answers would pass 1 MiB, gets the one error.',
  METHOD_NOT_FOUND: 'No such method. `rpc.discover` lists them all.',
  INVALID_PARAMS: 'Params failed validation; data.errors lists each problem with its path.',
  INTERNAL_ERROR: 'Unexpected failure inside the gateway; details are in the gateway log, never in the response.',
  IDEMPOTENCY_CONFLICT: 'The idempotency key was already used for a different event (another sessionKey, text or contextKey).',
  STORE_UNAVAILABLE: 'The durable store failed to read or commit (disk full, I/O error, a damaged file, its file removed under it). The call changed nothing (an ack of more than a thousand events may have consumed its oldest: the message says up to which seq); retry later.',
  SHUTTING_DOWN: 'The gateway is shutting down. Nothing was stored; retry once it is back.',
  ACK_OUT_OF_RANGE: 'The ack names a seq beyond the last one the session issued.',
  SUBSCRIPTION_NOT_FOUND: 'This connection holds no subscription with that id.',
  TOO_MANY_SUBSCRIPTIONS: 'The connection holds the maximum number of subscriptions; unsubscribe first.',
  STORE_FULL:
    "The event was not stored: the gateway's disk has less free space than it keeps for acks and traces (--min-free-disk, 64 MiB by default); data has availableBytes and minFreeBytes. Events already stored are still delivered and acked; send it again once there is room. HTTP 507 on /hooks/wake.",
  GATEWAY_BUSY:
    'HTTP 503 with Retry-After: the gateway holds too much of requests and messages not yet whole (64 MiB, all connections together), and this body held the most; nothing of it was done: send it again. (A WebSocket message is closed with 1013 instead.)',
  ALREADY_SUBSCRIBED:
    'The connection already subscribes to this session (or to every session of this agent): data.subscriptionId names that subscription; unsubscribe it first to subscribe again, or subscribe on another connection.',
  EVENT_NOT_FOUND: 'No event with that id is known to the gateway.',
  FORBIDDEN: "The token may not do this: another agent's session, or a scope it was not given.",
  TRANSPORT_UNSUPPORTED: 'The method needs a WebSocket connection (subscriptions push notifications).',
  TOKEN_NOT_FOUND: 'No token with that id exists.',
  UNAUTHORIZED: 'HTTP 401: no valid token. Send "Authorization: Bearer <token>".',
  RATE_LIMITED:
    "HTTP 429: too many failed authentications, or open connections, from this address, or open connections of this scoped token; retry after Retry-After seconds. Over a WebSocket: rpc.discover while the connection's answers not yet written hold what reads may carry (3 MiB; in one frame, what its answer has room for in 1 MiB); read them, then ask again.",
  CREDENTIALS_IN_URL: 'HTTP 400: a token in the URL query is refused (URLs end up in logs); send it in a header.',
  BODY_TOO_LARGE: 'HTTP 413: the body is larger than the HTTP body limit; send big events over WebSocket.',
  UNSUPPORTED_MEDIA_TYPE: 'HTTP 415: the body must be JSON ("Content-Type: application/json") and not compressed.',
  BODY_TIMEOUT: 'HTTP 408: the body did not arrive within the time limit.',
  METHOD_NOT_ALLOWED: 'HTTP 405: /rpc and /hooks/wake take POST, /healthz GET or HEAD, / GET (WebSocket upgrades) or HEAD; the Allow header names them.',
  AFTER_OUT_OF_RANGE: "The subscribe's after is beyond the last seq the session issued; resubscribe with after <= data.lastSeq (0 replays every pending event).",
  PATH_NOT_FOUND:
    'HTTP 404: no route at that path. WebSocket upgrades are taken at / only (a query string is fine), POST at /rpc and /hooks/wake, GET at /healthz; behind a proxy, map its path to the root.',
  BAD_HANDSHAKE:
    'HTTP 400: the WebSocket upgrade is not one RFC 6455 allows (not a GET over HTTP/1.1, no Host, no valid Sec-WebSocket-Key, a Sec-WebSocket-Protocol that is not a list of distinct names); HTTP 426 (Sec-WebSocket-Version: 13) for a protocol version other than 13.',
  CROSS_ORIGIN:
    'HTTP 403: the WebSocket upgrade comes from a web page of another origin (its Origin names another host than its Host); browsers are not clients of the gateway.',
  BAD_HTTP_REQUEST:
    "HTTP 400: the request is not HTTP/1.1 the gateway can read, or says too little or two things at once (no Host header or two, the token given twice); HTTP 417: an Expect other than 100-continue; HTTP 431: its headers are past Node.js's limit (16 KiB by default: a long URL or cookie); HTTP 408: its headers did not arrive within the handshake timeout.",
  PARAMS_IN_URL:
    'HTTP 400: the URL query names what the gateway reads only from the JSON body (a parameter such as sessionKey or text, or method or params), on POST /rpc, POST /hooks/wake or a WebSocket upgrade; there it would be ignored (an event sent to the main session): put it in the body. Other query parameters are not read.',
  BACKUP_FAILED: 'gateway.backup could not write its copy: the file exists already (nothing is overwritten), its path ends with whitespace, its directory is missing, not writable, or one other users may rename files in (it, or one above it: links in the path are followed once, when the backup begins), or the disk is full; the store is untouched, and nothing of the copy is left.',
};

/** One problem found in params: where it is (a JSON pointer into params) and what is wrong. */
export interface ParamProblem {
  path: string;
  message: string;
}

/**
 * The JSON pointer (RFC 6901) to a member of params: each name's "~" written "~0" and "/" "~1",
 * as TypeBox writes the paths of the problems it finds. A session key may hold "/", and a path
 * read as a pointer must land on the member it names.
 */
export function paramPath(...names: string[]): string {
  return names.map((name) => `/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** The `data` member of every error the gateway sends. */
export interface ErrorData {
  name: ErrorName;
  errors?: ParamProblem[];
  [detail: string]: unknown;
}

/** An error as a value: thrown by handlers, turned into a JSON-RPC error response by dispatch. */
export class RpcError extends Error {
  readonly code: number;
  readonly data: ErrorData;

  constructor(name: ErrorName, message: string, details: Omit<ErrorData, 'name'> = {}) {
    super(message);
    this.name = 'RpcError';
    this.code = ErrorCode[name];
    this.data = { name, ...details };
  }

  static invalidParams(problems: ParamProblem[], details: Record<string, unknown> = {}): RpcError {
    const shown = problems.map((problem) => ({ ...problem, path: echoed(problem.path) }));
    const summary = shown.map((p) => `${p.path || '(params)'}: ${p.message}`).join('; ');
    return new RpcError('INVALID_PARAMS', `Invalid params: ${summary}`, { errors: shown, ...details });
  }
}

/** The symbolic name of a numeric code, if it is one of ours. */
export function errorNameOf(code: number): ErrorName | undefined {
  for (const [name, value] of Object.entries(ErrorCode)) if (value === code) return name as ErrorName;
  return undefined;
}

/** A name taken from a request, as an error repeats it: cut short past MAX_ECHOED_NAME_LENGTH. */
export function echoed(name: string): string {
  if (name.length <= MAX_ECHOED_NAME_LENGTH) return name;
  // Not between the two halves of a surrogate pair: half of one is no character.
  const end = /[\uD800-\uDBFF]/.test(name[MAX_ECHOED_NAME_LENGTH - 1]!) ? MAX_ECHOED_NAME_LENGTH - 1 : MAX_ECHOED_NAME_LENGTH;
  return `${name.slice(0, end)}…`;
}

/** A size as messages and log lines give it. */
export function mebibytes(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MiB`;
}
