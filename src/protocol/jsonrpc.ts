/**
 * JSON-RPC 2.0 framing, transport-agnostic: text in, text (or nothing) out.
 *
 * The wire models (the request and response shapes and their constructors) are json-rpc-2.0's;
 * the dispatch is this module's. It does what the library's JSONRPCServer gets wrong or leaves
 * loose against the spec: that server answers a one-element batch with a bare object instead of
 * an array, accepts params that are neither object nor array, answers internal errors with the
 * thrown message (leaking internals), and has no batch length bound. It also calls each method
 * itself: JSONRPCServer#receive (built for ES5, its async code runs as generators) allocated ~16%
 * of all a call allocates, and with the direct call the gateway answered 15-20% more durable
 * system.event calls per second (bench/README.md, round 4).
 */
import {
  createJSONRPCErrorResponse,
  createJSONRPCSuccessResponse,
  type JSONRPCErrorResponse,
  type JSONRPCID,
  type JSONRPCRequest,
  type JSONRPCResponse,
} from 'json-rpc-2.0';
import { MAX_BATCH_LENGTH } from './constants.js';
import { ErrorCode, RpcError, type ErrorData, type ErrorName } from './errors.js';

export type Handler<C> = (params: unknown, context: C) => unknown;

export interface DispatcherOptions {
  /** Called with every error that becomes INTERNAL_ERROR, so it can be logged; never sent. */
  onInternalError?: (error: unknown, method: string) => void;
}

const INTERNAL_MESSAGE = 'Internal error: the gateway log has the details';

export class RpcDispatcher<C> {
  readonly #handlers: ReadonlyMap<string, Handler<C>>;
  readonly #onInternalError: (error: unknown, method: string) => void;

  constructor(handlers: Record<string, Handler<C>>, options: DispatcherOptions = {}) {
    this.#onInternalError = options.onInternalError ?? (() => {});
    this.#handlers = new Map(Object.entries(handlers));
  }

  /**
   * Handles one frame. Resolves with the response text, or undefined when the spec says nothing
   * is sent back (a notification, or a batch of only notifications).
   */
  async handleFrame(text: string, context: C): Promise<string | undefined> {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return JSON.stringify(errorResponse(null, 'PARSE_ERROR', 'Parse error: the frame is not valid JSON'));
    }
    const response = await this.handleMessage(message, context);
    return response === undefined ? undefined : JSON.stringify(response);
  }

  /** Handles an already parsed message: one request object, or a batch. */
  async handleMessage(message: unknown, context: C): Promise<JSONRPCResponse | JSONRPCResponse[] | undefined> {
    if (!Array.isArray(message)) return this.#handleOne(message, context);
    if (message.length === 0) return errorResponse(null, 'INVALID_REQUEST', 'Invalid Request: empty batch');
    if (message.length > MAX_BATCH_LENGTH) {
      return errorResponse(null, 'INVALID_REQUEST', `Invalid Request: a batch holds at most ${MAX_BATCH_LENGTH} requests`, {
        limit: MAX_BATCH_LENGTH,
      });
    }
    const responses = await Promise.all(message.map((item) => this.#handleOne(item, context)));
    const answered = responses.filter((r): r is JSONRPCResponse => r !== undefined);
    return answered.length > 0 ? answered : undefined;
  }

  async #handleOne(item: unknown, context: C): Promise<JSONRPCResponse | undefined> {
    const checked = checkEnvelope(item);
    if ('error' in checked) return checked.error;
    const { request } = checked;
    const isNotification = !('id' in request);
    const handler = this.#handlers.get(request.method);
    if (!handler) {
      if (isNotification) return undefined;
      return errorResponse(request.id ?? null, 'METHOD_NOT_FOUND', `Method not found: ${request.method}`, {
        method: request.method,
      });
    }
    let result: unknown;
    try {
      result = await handler(request.params ?? {}, context);
    } catch (error) {
      if (!(error instanceof RpcError)) this.#onInternalError(error, request.method);
      // A notification is never answered, not even with its error (JSON-RPC 2.0 section 4.1).
      return isNotification ? undefined : this.#toErrorResponse(request.id ?? null, error);
    }
    return isNotification ? undefined : createJSONRPCSuccessResponse(request.id ?? null, result);
  }

  // Anything but an RpcError is a bug; its message may hold paths or SQL, so it is never sent.
  #toErrorResponse(id: JSONRPCID, error: unknown): JSONRPCErrorResponse {
    if (error instanceof RpcError) return createJSONRPCErrorResponse(id, error.code, error.message, error.data);
    return errorResponse(id, 'INTERNAL_ERROR', INTERNAL_MESSAGE);
  }
}

/** `error: undefined` is a notification whose error the spec says goes unanswered (JSON-RPC 2.0 §4.1). */
type EnvelopeCheck = { request: JSONRPCRequest } | { error: JSONRPCErrorResponse | undefined };

function checkEnvelope(item: unknown): EnvelopeCheck {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return { error: errorResponse(null, 'INVALID_REQUEST', 'Invalid Request: expected a JSON-RPC 2.0 request object') };
  }
  const candidate = item as Record<string, unknown>;
  const hasId = Object.prototype.hasOwnProperty.call(candidate, 'id');
  const id = candidate['id'];
  const idIsValid = !hasId || id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
  const answerId = hasId && idIsValid ? (id as JSONRPCID) : null;
  const invalid = (why: string) => ({ error: errorResponse(answerId, 'INVALID_REQUEST', `Invalid Request: ${why}`) });
  if (candidate['jsonrpc'] !== '2.0') return invalid('"jsonrpc" must be exactly "2.0"');
  if (typeof candidate['method'] !== 'string') return invalid('"method" must be a string');
  if (!idIsValid) return invalid('"id" must be a string, a number or null');
  const params = candidate['params'];
  if (params !== undefined && (typeof params !== 'object' || params === null)) {
    return invalid('"params" must be an object or an array');
  }
  // An empty array names no params by position either: clients such as @open-rpc/client-js send
  // `params: []` for "no params", and it means the same as an absent or empty object.
  if (Array.isArray(params) && params.length > 0) {
    // A valid Request with positional params: an error in handling it, so a notification gets no answer.
    if (!hasId) return { error: undefined };
    return {
      error: errorResponse(answerId, 'INVALID_PARAMS', 'Invalid params: params are by name; send an object, not an array', {
        errors: [{ path: '', message: 'must be an object (by-name params)' }],
      }),
    };
  }
  const named = Array.isArray(params) ? undefined : (params as JSONRPCRequest['params']);
  const request: JSONRPCRequest = { jsonrpc: '2.0', method: candidate['method'], params: named };
  if (hasId) request.id = id as JSONRPCID;
  return { request };
}

export function errorResponse(
  id: JSONRPCID,
  name: ErrorName,
  message: string,
  details: Omit<ErrorData, 'name'> = {},
): JSONRPCErrorResponse {
  return createJSONRPCErrorResponse(id, ErrorCode[name], message, { name, ...details });
}
