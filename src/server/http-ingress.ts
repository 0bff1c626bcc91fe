/**
 * Plain HTTP on the gateway's port, for callers that cannot hold a socket (webhooks, curl):
 *   POST /rpc         JSON-RPC 2.0, single or batch, through the same dispatcher as WebSocket
 *   POST /hooks/wake  a system.event body, answered with the same routing result
 *   GET  /healthz     liveness for supervisors, no auth, no details
 * Both POST routes call the same method handlers, so routing and refusals cannot differ by ingress.
 * Their HTTP-level refusals (401, 405, 413, ...) carry the same kind of JSON error, with a stable
 * code, as everything else: a JSON-RPC error response on /rpc, `{ error }` on the hook. So do a
 * verb /healthz does not take (405) and a path with no route (404), as `{ error }`.
 */
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HTTP_BODY_TIMEOUT_MS, MAX_HTTP_BODY_BYTES } from '../protocol/constants.js';
import { echoed, ErrorCode, type ErrorData, type ErrorName } from '../protocol/errors.js';
import { errorResponse, type RpcDispatcher } from '../protocol/jsonrpc.js';
import { readBudget } from '../store/read-budget.js';
import type { Principal } from './auth.js';
import type { CallContext, Ingress } from './context.js';
import { peerAddress } from './local-socket.js';
import { BUFFER_OVERHEAD_BYTES, type UnfinishedHolder, type UnfinishedMessages } from './unfinished-messages.js';

/** Whether a request may proceed, decided the same way for HTTP routes and WebSocket upgrades. */
export type Admission =
  | { admitted: true; principal: Principal }
  | { admitted: false; status: 400 | 401 | 429 | 503; error: ErrorName; message: string; headers?: Record<string, string> };

export interface HttpIngressOptions {
  dispatcher: RpcDispatcher<CallContext>;
  /** Decides the request; `response` is the one it will be answered with. */
  admit(request: IncomingMessage, response: ServerResponse): Admission;
  /** Whether an admitted principal still holds once the body is read: its token may have been revoked meanwhile. */
  isCurrent(principal: Principal): boolean;
  /**
   * The refusal for a request admitted before the gateway began to shut down and read after, or
   * undefined: it is refused as one that came after (503), not answered 200 with an error inside.
   */
  shuttingDown(): Extract<Admission, { admitted: false }> | undefined;
  /** What bodies being read hold counts here, with the WebSocket messages not yet whole. */
  unfinished: UnfinishedMessages;
  /** @default HTTP_BODY_TIMEOUT_MS */
  bodyTimeoutMs?: number;
}

const ROUTES: Record<string, Ingress> = { '/rpc': 'http-rpc', '/hooks/wake': 'http-hook' };

/** HTTP status for a JSON-RPC error answered on /hooks/wake, where the status is the signal. */
const HOOK_STATUS: Partial<Record<number, number>> = {
  [ErrorCode.PARSE_ERROR]: 400,
  [ErrorCode.INVALID_REQUEST]: 400,
  [ErrorCode.INVALID_PARAMS]: 400,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.IDEMPOTENCY_CONFLICT]: 409,
  [ErrorCode.STORE_UNAVAILABLE]: 503,
  [ErrorCode.SHUTTING_DOWN]: 503,
  // RFC 4918's Insufficient Storage: the one status that says why, and that it passes.
  [ErrorCode.STORE_FULL]: 507,
};

/**
 * Answers one request. `expectsContinue`: Node emitted it as 'checkContinue', which it does only for
 * an HTTP/1.1 request with "Expect: 100-continue"; an HTTP/1.0 client must get no 100 (RFC 9110
 * sections 10.1.1 and 15.2), whatever its Expect says, so the header alone does not decide.
 */
export type HttpHandler = (request: IncomingMessage, response: ServerResponse, expectsContinue?: boolean) => void;

export function createHttpHandler(options: HttpIngressOptions): HttpHandler {
  const bodyTimeoutMs = options.bodyTimeoutMs ?? HTTP_BODY_TIMEOUT_MS;
  return (request, response, expectsContinue = false) => {
    limitUnreadBody(request, response, bodyTimeoutMs);
    const path = requestPath(request);
    const ambiguous = ambiguousHeaders(request);
    if (ambiguous !== undefined) return sendJson(response, 400, errorBody(ROUTES[path] ?? null, 'BAD_HTTP_REQUEST', ambiguous), { connection: 'close' });
    // Every route while the shutdown lingers (see gateway.ts shutdown), /healthz too: a supervisor
    // or load balancer must not take a gateway that refuses every call for a healthy one, and each
    // answer closes its connection (review).
    const closing = options.shuttingDown();
    if (closing) {
      if (path === '/healthz') return sendText(response, 503, 'shutting down\n', closing.headers);
      return sendJson(response, closing.status, errorBody(ROUTES[path] ?? null, closing.error, closing.message), closing.headers);
    }
    if (path === '/healthz') {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return sendJson(response, 405, errorBody(null, 'METHOD_NOT_ALLOWED', '/healthz takes GET or HEAD'), { allow: 'GET, HEAD' });
      }
      return sendText(response, 200, 'ok\n');
    }
    const ingress = ROUTES[path];
    if (!ingress) {
      // The WebSocket's path: it has a route, for upgrades, which are GET requests.
      if (path === '/' && request.method !== 'GET' && request.method !== 'HEAD') {
        return sendJson(response, 405, errorBody(null, 'METHOD_NOT_ALLOWED', '/ takes WebSocket upgrades (GET); calls over HTTP go to POST /rpc'), { allow: 'GET, HEAD' });
      }
      if (path === '/') {
        return sendText(response, 426, 'switchboard speaks JSON-RPC 2.0 over WebSocket here (Authorization: Bearer <token>), and over HTTP at POST /rpc and POST /hooks/wake.\n', {
          upgrade: 'websocket',
          // RFC 9110 section 7.8 wants "upgrade" in Connection beside Upgrade; Node reads a
          // Connection header set here as keep-alive, so a client's "close" is said again, or the
          // connection would stay open (RFC 9112 section 9.6: the server MUST close it).
          connection: wantsClose(request) ? 'Upgrade, close' : 'Upgrade',
        });
      }
      return sendJson(response, 404, errorBody(null, 'PATH_NOT_FOUND', `no route ${echoed(path)}: use POST /rpc, POST /hooks/wake or GET /healthz`));
    }
    const refuse: Refuse = (status, name, message, headers) => sendJson(response, status, errorBody(ingress, name, message), headers);
    if (request.method !== 'POST') return refuse(405, 'METHOD_NOT_ALLOWED', `${path} takes POST`, { allow: 'POST' });
    const admission = options.admit(request, response);
    if (!admission.admitted) return refuse(admission.status, admission.error, admission.message, admission.headers);
    if (!isJson(request.headers['content-type'])) {
      return refuse(415, 'UNSUPPORTED_MEDIA_TYPE', 'the body must be JSON: send "Content-Type: application/json"');
    }
    // RFC 9110 section 15.5.16: a content coding the server does not decode is 415; read as they
    // are, compressed bytes were answered as JSON that does not parse, which names no fix.
    const coding = contentCoding(request);
    if (coding !== undefined) {
      return refuse(415, 'UNSUPPORTED_MEDIA_TYPE', `the body must not be encoded (Content-Encoding: ${coding}): send it uncompressed`, {
        'accept-encoding': 'identity',
      });
    }
    readBody(request, response, bodyTimeoutMs, expectsContinue, options.unfinished)
      .then((body) => {
        if (body.status === 'not-utf8') return notUtf8(ingress, response);
        if (body.status !== 'ok') return rejectBody(request, response, body.status, refuse);
        const closing = options.shuttingDown();
        if (closing) return refuse(closing.status, closing.error, closing.message, closing.headers);
        if (!options.isCurrent(admission.principal)) {
          return refuse(401, 'UNAUTHORIZED', 'the token was revoked while the request was read: nothing was done', {
            'www-authenticate': 'Bearer realm="switchboard"',
          });
        }
        const context: CallContext = {
          ingress,
          principal: admission.principal,
          remoteAddress: peerAddress(request.socket),
          connectionId: null,
          subscriber: null,
          afterResponse: (task) => response.once('finish', task),
          readBudget: readBudget(),
          frameBytes: body.bytes,
        };
        const answer = ingress === 'http-rpc' ? answerRpc : answerHook;
        return answer(options.dispatcher, body.text, context, response);
      })
      // The dispatcher answers every failure itself; this is the last line against a crash.
      .catch(() => (response.headersSent ? response.destroy() : refuse(500, 'INTERNAL_ERROR', 'Internal error')));
  };
}

async function answerRpc(dispatcher: RpcDispatcher<CallContext>, text: string, context: CallContext, response: ServerResponse): Promise<void> {
  const answer = await dispatcher.handleFrame(text, context);
  // Only notifications: nothing to say, and the spec says nothing may be said.
  if (answer === undefined) return void response.writeHead(204).end();
  sendJson(response, 200, answer);
}

/**
 * The hook body is system.event's params, with mode defaulting to "now" (a webhook means "act on
 * this"). It goes through the dispatcher as a system.event call, so the routing is the same.
 */
async function answerHook(dispatcher: RpcDispatcher<CallContext>, text: string, context: CallContext, response: ServerResponse): Promise<void> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return sendJson(response, 400, errorBody('http-hook', 'PARSE_ERROR', 'Parse error: the body is not valid JSON'));
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    const problem = { path: '', message: 'must be an object: { text, mode, sessionKey, agentId, contextKey, idempotencyKey }' };
    return sendJson(response, 400, errorBody('http-hook', 'INVALID_PARAMS', `Invalid params: ${problem.message}`, { errors: [problem] }));
  }
  const params = { mode: 'now', ...body };
  const answer = await dispatcher.handleMessage({ jsonrpc: '2.0', id: 0, method: 'system.event', params }, context);
  const single = Array.isArray(answer) ? answer[0] : answer;
  if (single && 'result' in single) return sendJson(response, 200, JSON.stringify(single.result));
  const error = single && 'error' in single ? single.error : errorResponse(null, 'INTERNAL_ERROR', 'Internal error').error;
  sendJson(response, HOOK_STATUS[error.code] ?? 500, JSON.stringify({ error }));
}

type Body = { status: 'ok'; text: string; bytes: number } | { status: 'not-utf8' | 'too-large' | 'timeout' | 'aborted' | 'busy' };

/**
 * Reads the whole body, bounded in size (413) and in time (408), and together with what every
 * other body and WebSocket message not yet whole holds (503): 3,000 authenticated bodies sent
 * slowly held up to 750 MB for their 10 s each (security QA).
 */
function readBody(request: IncomingMessage, response: ServerResponse, timeoutMs: number, expectsContinue: boolean, unfinished: UnfinishedMessages): Promise<Body> {
  return new Promise((resolve) => {
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_HTTP_BODY_BYTES) return resolve({ status: 'too-large' });
    // Asked for only now that the request is admitted and its body not refused by its length
    // (see the gateway's checkContinue).
    if (expectsContinue) response.writeContinue();
    const chunks: Buffer[] = [];
    let size = 0;
    const holder: UnfinishedHolder = { cutForUnfinished: () => finish({ status: 'busy' }) };
    let finished = false;
    const finish = (body: Body) => {
      finished = true;
      clearTimeout(timer);
      request.removeAllListeners('data');
      unfinished.release(holder);
      resolve(body);
    };
    const timer = setTimeout(() => finish({ status: 'timeout' }), timeoutMs);
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_HTTP_BODY_BYTES) return finish({ status: 'too-large' });
      chunks.push(chunk);
      unfinished.set(holder, size + chunks.length * BUFFER_OVERHEAD_BYTES);
    });
    request.once('end', () => {
      // Refused already (too large, too slow, no room): what came is not looked at.
      if (finished) return;
      const bytes = Buffer.concat(chunks);
      // RFC 8259 section 8.1: JSON between systems is UTF-8. Decoding bytes that are not would put
      // U+FFFD in their place and store a text its sender never sent (a text frame that is not
      // UTF-8 is closed with 1007, a binary one answered PARSE_ERROR: see connection.ts).
      finish(isUtf8(bytes) ? { status: 'ok', text: bytes.toString('utf8'), bytes: bytes.length } : { status: 'not-utf8' });
    });
    request.once('aborted', () => finish({ status: 'aborted' }));
  });
}

/** The request's Content-Encoding, unless it is absent or only `identity` (no coding). */
function contentCoding(request: IncomingMessage): string | undefined {
  const header = request.headers['content-encoding'];
  if (header === undefined) return undefined;
  const codings = header.split(',').map((coding) => coding.trim().toLowerCase());
  return codings.every((coding) => coding === '' || coding === 'identity') ? undefined : header.trim();
}

/** Whether the client asked for its connection to close after this request (RFC 9112 section 9.3). */
function wantsClose(request: IncomingMessage): boolean {
  const options = (request.headers.connection ?? '').toLowerCase().split(',').map((option) => option.trim());
  return options.includes('close') || (request.httpVersion === '1.0' && !options.includes('keep-alive'));
}

/** A body that is not UTF-8 is not JSON: answered as one that does not parse, on either route. */
function notUtf8(ingress: Ingress, response: ServerResponse): void {
  // 200 on /rpc, as any parse error there; the hook's status is its signal (HOOK_STATUS).
  sendJson(response, ingress === 'http-rpc' ? 200 : 400, errorBody(ingress, 'PARSE_ERROR', 'Parse error: the body must be UTF-8 encoded JSON'));
}

/** The scheme and authority of a request target in absolute-form (`GET http://host:port/path`). */
const ABSOLUTE_FORM_PREFIX = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * The path of a request's URL, without its query. A target in absolute-form names the same path
 * as its origin-form: RFC 9112 section 3.2.2 says a server must accept it (proxies send it), and
 * an empty path there is "/".
 */
export function requestPath(request: IncomingMessage): string {
  const target = (request.url ?? '/').replace(ABSOLUTE_FORM_PREFIX, '');
  return target.split('?', 1)[0] || '/';
}

/**
 * Answers a request whose Expect is not 100-continue, which Node would answer with a bare 417: in
 * the route's JSON, as every refusal (RFC 9110 section 10.1.1: the server MAY answer 417).
 */
export function refuseExpectation(request: IncomingMessage, response: ServerResponse): void {
  const path = requestPath(request);
  const ingress = ROUTES[path] ?? null;
  const message = `the gateway meets no expectation but 100-continue (got Expect: ${echoed(String(request.headers.expect ?? ''))}): send the request without it`;
  sendJson(response, 417, errorBody(ingress, 'BAD_HTTP_REQUEST', message), { connection: 'close' });
}

/**
 * What makes a request say too little or two things at once, or undefined: no Host line in
 * HTTP/1.1, or two (RFC 9112 section 3.2: a server MUST answer 400), or the token given twice (two
 * Authorization or X-Switchboard-Token lines, or one of each), of which Node keeps one and a proxy
 * in front may have checked the other (QA).
 */
export function ambiguousHeaders(request: IncomingMessage): string | undefined {
  const { rawHeaders } = request;
  let hosts = 0;
  let tokens = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'host') hosts++;
    else if (name === 'authorization' || name === 'x-switchboard-token') tokens++;
  }
  // Node refuses it unasked with a bare 400 line; the server turns that off to say why here.
  if (hosts === 0 && request.httpVersion !== '1.0') return 'the request has no Host header, which HTTP/1.1 requires';
  if (hosts > 1) return `the request has ${hosts} Host headers; send one`;
  if (tokens > 1) return `the request gives the token ${tokens} times (Authorization, X-Switchboard-Token); send it once`;
  return undefined;
}

/** Answers with the route's JSON error for `name`. */
type Refuse = (status: number, name: ErrorName, message: string, headers?: Record<string, string>) => void;

function rejectBody(request: IncomingMessage, response: ServerResponse, status: Exclude<Body['status'], 'ok' | 'not-utf8'>, refuse: Refuse): void {
  if (status === 'aborted') return void request.destroy();
  if (status === 'too-large') return refuse(413, 'BODY_TOO_LARGE', `the body is larger than ${MAX_HTTP_BODY_BYTES} bytes`);
  // Its sender is not waited for again: a body that took longer than it may have, or one whose
  // rest the gateway has no room for.
  if (status === 'busy') {
    refuse(503, 'GATEWAY_BUSY', 'the gateway holds too much of requests not yet whole, and this one held the most: nothing of it was done; send it again', {
      connection: 'close',
      'retry-after': '1',
    });
  } else refuse(408, 'BODY_TIMEOUT', 'the body did not arrive in time', { connection: 'close' });
  response.once('finish', () => request.destroy());
}

/**
 * An error as the route answers it: POST /rpc as a JSON-RPC error response (id null: no request
 * was read), the hook and WebSocket upgrades as `{ error }`, the shape of the hook's other errors.
 * `ingress` null: a request that reached no RPC route (/healthz, a path with no route), `{ error }` too.
 */
export function errorBody(ingress: Ingress | null, name: ErrorName, message: string, details: Omit<ErrorData, 'name'> = {}): string {
  const answer = errorResponse(null, name, message, details);
  return JSON.stringify(ingress === 'http-rpc' ? answer : { error: answer.error });
}

/**
 * Media types of a JSON body: application/json, a `+json` type, and the two that the JSON-RPC over
 * HTTP draft names beside it, which some clients send by default (jsonrpc4j's JsonRpcHttpClient:
 * application/json-rpc).
 */
const JSON_RPC_MEDIA_TYPES = new Set(['application/json', 'application/json-rpc', 'application/jsonrequest']);

function isJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return JSON_RPC_MEDIA_TYPES.has(type) || (type.startsWith('application/') && type.endsWith('+json'));
}

function sendText(response: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers }).end(text);
}

function sendJson(response: ServerResponse, status: number, json: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), ...headers }).end(json);
}

/**
 * A request answered before its body was read (a refusal, 401, 404, 405, 413, 415) keeps its
 * connection while Node reads the rest of the body and throws it away, but for no longer than a
 * body may take. Node alone waits for it up to its requestTimeout (300 s), so a client with no
 * token could hold connections open past every 10 s limit. Closing at once instead resets the
 * connection of a client still sending, whose stack then drops the answer before it is read.
 */
function limitUnreadBody(request: IncomingMessage, response: ServerResponse, timeoutMs: number): void {
  response.once('finish', () => {
    if (request.complete) return;
    const timer = setTimeout(() => request.destroy(), timeoutMs);
    request.once('close', () => clearTimeout(timer));
  });
}
