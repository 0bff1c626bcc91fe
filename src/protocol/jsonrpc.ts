/**
 * JSON-RPC 2.0 framing, transport-agnostic: text in, text (or nothing) out.
 *
 * The wire models (the request and response shapes and their constructors) are json-rpc-2.0's;
 * the dispatch is this module's. It does what the library's JSONRPCServer gets wrong or leaves
 * loose against the spec: that server answers a one-element batch with a bare object instead of
 * an array, accepts params that are neither object nor array, answers internal errors with the
 * thrown message (leaking internals), has no batch length bound, and answers an id beyond 2^53
 * rounded (JSON.parse cannot hold it; here the answer carries the id's source text). It also
 * calls each method itself: JSONRPCServer#receive (built for ES5, its async code runs as
 * generators) allocated ~16% of all a call allocates, and with the direct call the gateway
 * answered 15-20% more durable system.event calls per second (bench/README.md, round 4).
 */
import {
  createJSONRPCErrorResponse,
  createJSONRPCSuccessResponse,
  type JSONRPCErrorResponse,
  type JSONRPCID,
  type JSONRPCRequest,
  type JSONRPCResponse,
} from 'json-rpc-2.0';
import { MAX_BATCH_LENGTH, MAX_FRAME_BYTES } from './constants.js';
import { echoed, ErrorCode, RpcError, type ErrorData, type ErrorName } from './errors.js';
import { RESULT_JSON, type OwnJson } from './own-json.js';
import { paramNameKey } from './url-query.js';

export type Handler<C> = (params: unknown, context: C) => unknown;

export interface DispatcherOptions<C> {
  /**
   * Turns what a handler threw into the error to answer with: an RpcError to send, anything else
   * an internal error. In one place, so handlers need no wrapper of their own (an async layer per
   * call).
   * @default the error as thrown
   */
  mapError?: (error: unknown) => unknown;
  /** Called with every error that becomes INTERNAL_ERROR, so it can be logged; never sent. */
  onInternalError?: (error: unknown, method: string) => void;
  /**
   * Called with every error of a notification, which the spec lets no one answer (section 4.1): a
   * refused system.event sent without an id vanished without a word (QA), so it can be logged.
   */
  onUnansweredError?: (error: RpcError, method: string, context: C) => void;
  /**
   * Called once a message is parsed, before any of its requests runs, with how many it holds (1
   * for a lone request): for limits of the whole frame, such as the room its answer has.
   */
  onMessage?: (context: C, requests: number) => void;
  /**
   * Each method's parameter names: a request that gives one of them as a member of its own, beside
   * params (`{"method": "system.event", "sessionKey": ..., "params": {...}}`, or `session_key`:
   * compared as paramNameKey makes them, as a URL query's are), is INVALID_PARAMS, not run without
   * it. The spec lets a request carry other members, so only these are refused.
   */
  paramNames?: Readonly<Record<string, readonly string[]>>;
}

/** The members JSON-RPC 2.0 section 4 gives a Request object. */
const ENVELOPE_MEMBERS: ReadonlySet<string> = new Set(['jsonrpc', 'method', 'params', 'id']);

const INTERNAL_MESSAGE = 'Internal error: the gateway log has the details';

/** The answer to one frame: one response, a batch's, or nothing (notifications only). */
export type Answer = JSONRPCResponse | JSONRPCResponse[] | undefined;

export class RpcDispatcher<C> {
  readonly #handlers: ReadonlyMap<string, Handler<C>>;
  readonly #mapError: (error: unknown) => unknown;
  readonly #onInternalError: (error: unknown, method: string) => void;
  readonly #onMessage: (context: C, requests: number) => void;
  readonly #onUnansweredError: (error: RpcError, method: string, context: C) => void;
  readonly #paramNames: ReadonlyMap<string, ReadonlySet<string>>;

  constructor(handlers: Record<string, Handler<C>>, options: DispatcherOptions<C> = {}) {
    this.#mapError = options.mapError ?? ((error) => error);
    this.#onInternalError = options.onInternalError ?? (() => {});
    this.#onMessage = options.onMessage ?? (() => {});
    this.#onUnansweredError = options.onUnansweredError ?? (() => {});
    this.#handlers = new Map(Object.entries(handlers));
    this.#paramNames = new Map(Object.entries(options.paramNames ?? {}).map(([method, names]) => [method, new Set(names.map(paramNameKey))]));
  }

  /**
   * Handles one frame. Resolves with the response text, or undefined when the spec says nothing
   * is sent back (a notification, or a batch of only notifications).
   */
  async handleFrame(text: string, context: C): Promise<string | undefined> {
    const frame = parseFrame(text);
    if (typeof frame === 'string') return frame;
    return serialize(await this.handleMessage(frame.message, context, frame.idTexts));
  }

  /**
   * Handles an already parsed message: one request object, or a batch. `idTexts`: the source text
   * of each request's id where JSON.parse could not hold its value (see numericIdTexts).
   */
  handleMessage(message: unknown, context: C, idTexts?: IdTexts): Promise<Answer> {
    if (!Array.isArray(message)) {
      this.#onMessage(context, 1);
      // The common case, one request without an id to rewrite: no layer of its own.
      const idText = idTexts?.[0];
      const response = this.#handleOne(message, context);
      return idText === undefined ? response : response.then((answer) => withIdText(answer, idText));
    }
    return this.#handleBatch(message, context, idTexts);
  }

  async #handleBatch(message: unknown[], context: C, idTexts: IdTexts | undefined): Promise<Answer> {
    if (message.length === 0) return EMPTY_BATCH;
    if (message.length > MAX_BATCH_LENGTH) {
      const refusal = batchTooLong(message.length);
      // A frame of thousands of tiny requests (`[0,0,...]`) would cost what as many calls do to
      // answer, for 2 bytes each, and megabytes past what a client takes in a frame (security QA:
      // 500,000 of them held the event loop 0.5 s): past MAX_ANSWERED_BATCH_LENGTH, one error.
      if (message.length > MAX_ANSWERED_BATCH_LENGTH) return toErrorResponse(null, refusal);
      const told = (request: JSONRPCRequest) => this.#onUnansweredError(refusal, request.method, context);
      const responses = answered(message.map((item, i) => withIdText(refuseUnrun(item, refusal, told), idTexts?.[i])));
      // Long ids can still make the answers pass a frame: then one error too, unmatched.
      const fits = responses === undefined || Buffer.byteLength(JSON.stringify(responses)) <= MAX_FRAME_BYTES;
      return fits ? responses : toErrorResponse(null, refusal);
    }
    this.#onMessage(context, message.length);
    const responses = await Promise.all(
      message.map((item, i) => {
        const response = this.#handleOne(item, context);
        return idTexts === undefined ? response : response.then((answer) => withIdText(answer, idTexts[i]));
      }),
    );
    return answered(responses);
  }

  async #handleOne(item: unknown, context: C): Promise<JSONRPCResponse | undefined> {
    const checked = checkEnvelope(item);
    if ('error' in checked) return checked.error;
    const { request } = checked;
    const isNotification = !('id' in request);
    const handler = this.#handlers.get(request.method);
    if (!handler) {
      const method = echoed(request.method);
      return this.#refuse(request, context, new RpcError('METHOD_NOT_FOUND', `Method not found: ${method}`, { method }));
    }
    // Checked once the method is known to exist: "invalid params" of a method that does not would
    // send a client to fix its params first. An error in handling a valid Request, so a
    // notification gets no answer.
    if (checked.byPosition) {
      return this.#refuse(
        request,
        context,
        new RpcError('INVALID_PARAMS', 'Invalid params: params are by name; send an object, not an array', { errors: [{ path: '', message: 'must be an object (by-name params)' }] }),
      );
    }
    const beside = this.#paramsBeside(item as Record<string, unknown>, request.method);
    if (beside !== undefined) {
      const named = beside.map((name) => echoed(name));
      return this.#refuse(
        request,
        context,
        new RpcError('INVALID_PARAMS', `Invalid params: ${named.join(', ')} given beside params, where ${beside.length === 1 ? 'it is' : 'they are'} not read: move ${beside.length === 1 ? 'it' : 'them'} into params`, {
          errors: named.map((name) => ({ path: '', message: `${name} is a member of the request object: it belongs in params` })),
        }),
      );
    }
    let result: unknown;
    try {
      result = await handler(request.params ?? {}, context);
    } catch (thrown) {
      const error = this.#mapError(thrown);
      if (!(error instanceof RpcError)) this.#onInternalError(error, request.method);
      return this.#refuse(request, context, error);
    }
    return isNotification ? undefined : createJSONRPCSuccessResponse(request.id ?? null, result);
  }

  /**
   * The members of a request object, other than the spec's four, that name one of its method's
   * params; undefined for none (every call asks: it allocates nothing then).
   */
  #paramsBeside(request: Record<string, unknown>, method: string): string[] | undefined {
    const names = this.#paramNames.get(method);
    if (names === undefined) return undefined;
    let beside: string[] | undefined;
    for (const member in request) {
      if (!ENVELOPE_MEMBERS.has(member) && names.has(paramNameKey(member))) (beside ??= []).push(member);
    }
    return beside;
  }

  /** The error response to a request; for a notification, nothing (JSON-RPC 2.0 section 4.1), but told to onUnansweredError. */
  #refuse(request: JSONRPCRequest, context: C, error: unknown): JSONRPCErrorResponse | undefined {
    if ('id' in request) return toErrorResponse(request.id ?? null, error);
    if (error instanceof RpcError) this.#onUnansweredError(error, request.method, context);
    return undefined;
  }
}

/**
 * Answers a frame without running anything in it: each request in it is answered `refusal`. Every
 * other rule is handleFrame's (JSON-RPC 2.0 sections 5 to 7): a frame that is not JSON is still a
 * parse error, an invalid request or batch still INVALID_REQUEST, and a notification still gets
 * nothing. For a connection that is closing.
 */
export function refuseFrame(text: string, refusal: RpcError): string | undefined {
  const frame = parseFrame(text);
  if (typeof frame === 'string') return frame;
  const { message, idTexts } = frame;
  const refuse = (item: unknown, idText: string | undefined) => withIdText(refuseUnrun(item, refusal), idText);
  if (!Array.isArray(message)) return serialize(refuse(message, idTexts?.[0]));
  return serialize(message.length === 0 ? EMPTY_BATCH : answered(message.map((item, i) => refuse(item, idTexts?.[i]))));
}

/**
 * The answer to one request that is not run: `refusal`, unless it is no valid request at all; for
 * a notification nothing, and `onNotification` is told of it.
 */
function refuseUnrun(item: unknown, refusal: RpcError, onNotification: (request: JSONRPCRequest) => void = () => {}): JSONRPCErrorResponse | undefined {
  const checked = checkEnvelope(item);
  if ('error' in checked) return checked.error;
  if ('id' in checked.request) return toErrorResponse(checked.request.id ?? null, refusal);
  onNotification(checked.request);
  return undefined;
}

const PARSE_ERROR_TEXT = JSON.stringify(errorResponse(null, 'PARSE_ERROR', 'Parse error: the request is not valid JSON'));

/** Per request of a frame (one, or one per batch element): its id's source text, if needed. */
type IdTexts = ReadonlyArray<string | undefined>;

/** The parsed frame, or the parse error's response text. */
function parseFrame(text: string): { message: unknown; idTexts: IdTexts | undefined } | string {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return PARSE_ERROR_TEXT;
  }
  return { message, idTexts: hasInexactId(message) ? numericIdTexts(text) : undefined };
}

/**
 * True when a request's id is a number JSON.parse may not hold exactly: an integer beyond 2^53
 * (a 64-bit or snowflake id) comes back rounded, one beyond the range of a double (1e400) comes
 * back as Infinity, which JSON.stringify would write as null, and the spec wants the id answered
 * "the same" (JSON-RPC 2.0 section 5). Fractions are included, echoed as written. One written
 * with more digits than a double holds that reads as a whole number (1.0000000000000000001,
 * 1e-400) is answered as that number: the spec says ids SHOULD NOT have fractions (section 4), and
 * telling those apart would mean scanning the text of every frame whose id is a number.
 */
function hasInexactId(message: unknown): boolean {
  const inexact = (item: unknown) =>
    typeof item === 'object' && item !== null && typeof (item as { id?: unknown }).id === 'number' && !Number.isSafeInteger((item as { id: number }).id);
  return Array.isArray(message) ? message.some(inexact) : inexact(message);
}

/** JSON-RPC 2.0 section 6: an empty array is answered with a single error, not an array. */
const EMPTY_BATCH = errorResponse(null, 'INVALID_REQUEST', 'Invalid Request: empty batch');

/**
 * The longest batch whose requests each get their own refusal (see batchTooLong): what ten times
 * the limit costs to answer is what ten batches of it do.
 */
export const MAX_ANSWERED_BATCH_LENGTH = 10 * MAX_BATCH_LENGTH;

/**
 * What each request of a batch longer than MAX_BATCH_LENGTH is answered, none of them run. One
 * error per request, in an array, as section 6 answers any non-empty batch: a single error object
 * there (as for a batch that is not an array) left clients matching answers by id with none, and a
 * batch of notifications must get no answer at all (QA). A batch past MAX_ANSWERED_BATCH_LENGTH,
 * or whose answers would pass MAX_FRAME_BYTES, gets the single error.
 */
function batchTooLong(length: number): RpcError {
  return new RpcError('INVALID_REQUEST', `Invalid Request: a batch holds at most ${MAX_BATCH_LENGTH} requests (this one ${length}): none of them was run`, {
    limit: MAX_BATCH_LENGTH,
  });
}

/** A batch's responses, notifications left out; nothing at all when only notifications were sent. */
function answered(responses: Array<JSONRPCResponse | undefined>): JSONRPCResponse[] | undefined {
  const sent = responses.filter((r): r is JSONRPCResponse => r !== undefined);
  return sent.length > 0 ? sent : undefined;
}

// Anything but an RpcError is a bug; its message may hold paths or SQL, so it is never sent.
function toErrorResponse(id: JSONRPCID, error: unknown): JSONRPCErrorResponse {
  if (error instanceof RpcError) return createJSONRPCErrorResponse(id, error.code, error.message, error.data);
  return errorResponse(id, 'INTERNAL_ERROR', INTERNAL_MESSAGE);
}

/** Where a response carries the source text its id must be written as (see hasInexactId). */
const ID_TEXT = Symbol('idText');

type Marked = JSONRPCResponse & { [ID_TEXT]?: string };

function withIdText<R extends JSONRPCResponse | undefined>(response: R, idText: string | undefined): R {
  if (idText !== undefined && typeof response?.id === 'number') (response as Marked)[ID_TEXT] = idText;
  return response;
}

function serialize(answer: Answer): string | undefined {
  if (answer === undefined) return undefined;
  return Array.isArray(answer) ? `[${answer.map(serializeOne).join(',')}]` : serializeOne(answer);
}

function serializeOne(response: Marked): string {
  const idText = response[ID_TEXT];
  if ('result' in response) {
    const result = response.result as Partial<OwnJson> | null;
    const own = typeof result === 'object' && result !== null ? result[RESULT_JSON] : undefined;
    // json-rpc-2.0's constructor writes jsonrpc, then id, then result, as JSON.stringify would.
    if (own !== undefined) return `{"jsonrpc":"2.0","id":${idText ?? JSON.stringify(response.id)},"result":${own.call(result)}}`;
  }
  const json = JSON.stringify(response);
  if (idText === undefined) return json;
  // json-rpc-2.0's constructors write jsonrpc, then id, then result or error; a symbol key is
  // never serialized.
  const head = `{"jsonrpc":"2.0","id":${JSON.stringify(response.id)}`;
  return json.startsWith(head) ? `{"jsonrpc":"2.0","id":${idText}${json.slice(head.length)}` : json;
}

/**
 * The source text of the numeric "id" of each request in a frame: one entry for a single request,
 * one per element of a batch, undefined where the id is absent or not a number. The last "id"
 * member counts, as it does for JSON.parse. For text JSON.parse accepted: it checks nothing.
 */
export function numericIdTexts(text: string): Array<string | undefined> {
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const skipString = () => {
    for (i++; text[i] !== '"'; i += text[i] === '\\' ? 2 : 1);
    i++;
  };
  const skipValue = () => {
    const first = text[i];
    if (first === '"') return skipString();
    if (first !== '{' && first !== '[') {
      while (i < text.length && !',}] \t\n\r'.includes(text[i]!)) i++;
      return;
    }
    let depth = 0;
    do {
      const c = text[i];
      if (c === '"') {
        skipString();
        continue;
      }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') depth--;
      i++;
    } while (depth > 0);
  };
  /** At a value: the text of its numeric "id" member, if it is an object with one. */
  const idOf = (): string | undefined => {
    if (text[i] !== '{') {
      skipValue();
      return undefined;
    }
    let id: string | undefined;
    i++;
    skipSpace();
    while (text[i] !== '}') {
      const keyStart = i;
      skipString();
      const key = JSON.parse(text.slice(keyStart, i)) as string;
      skipSpace();
      i++; // the colon
      skipSpace();
      const valueStart = i;
      skipValue();
      if (key === 'id') {
        const value = text.slice(valueStart, i);
        id = /^-?[0-9]/.test(value) ? value : undefined;
      }
      skipSpace();
      if (text[i] === ',') i++;
      skipSpace();
    }
    i++;
    return id;
  };
  skipSpace();
  if (text[i] !== '[') return [idOf()];
  const ids: Array<string | undefined> = [];
  i++;
  skipSpace();
  while (text[i] !== ']') {
    ids.push(idOf());
    skipSpace();
    if (text[i] === ',') i++;
    skipSpace();
  }
  return ids;
}

/**
 * A valid Request, and whether its params are by position (which the gateway does not take), or
 * the error response of an invalid one.
 */
type EnvelopeCheck = { request: JSONRPCRequest; byPosition?: true } | { error: JSONRPCErrorResponse };

function checkEnvelope(item: unknown): EnvelopeCheck {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return { error: errorResponse(null, 'INVALID_REQUEST', 'Invalid Request: expected a JSON-RPC 2.0 request object') };
  }
  const candidate = item as Record<string, unknown>;
  const hasId = Object.prototype.hasOwnProperty.call(candidate, 'id');
  const id = candidate['id'];
  // Any number: the spec allows any JSON Number, and JSON.parse makes Infinity only of a literal
  // too large for a double, whose answer carries its text (see hasInexactId).
  const idIsValid = !hasId || id === null || typeof id === 'string' || typeof id === 'number';
  const answerId = hasId && idIsValid ? (id as JSONRPCID) : null;
  const invalid = (why: string) => ({ error: errorResponse(answerId, 'INVALID_REQUEST', `Invalid Request: ${why}`) });
  if (candidate['jsonrpc'] !== '2.0') return invalid('"jsonrpc" must be exactly "2.0"');
  if (typeof candidate['method'] !== 'string') return invalid('"method" must be a string');
  if (!idIsValid) return invalid('"id" must be a string, a number or null');
  const params = candidate['params'];
  if (params !== undefined && (typeof params !== 'object' || params === null)) {
    return invalid('"params" must be an object or an array');
  }
  const named = Array.isArray(params) ? undefined : (params as JSONRPCRequest['params']);
  const request: JSONRPCRequest = { jsonrpc: '2.0', method: candidate['method'], params: named };
  if (hasId) request.id = id as JSONRPCID;
  // An empty array names no params by position either: clients such as @open-rpc/client-js send
  // `params: []` for "no params", and it means the same as an absent or empty object.
  return Array.isArray(params) && params.length > 0 ? { request, byPosition: true } : { request };
}

export function errorResponse(
  id: JSONRPCID,
  name: ErrorName,
  message: string,
  details: Omit<ErrorData, 'name'> = {},
): JSONRPCErrorResponse {
  return createJSONRPCErrorResponse(id, ErrorCode[name], message, { name, ...details });
}
