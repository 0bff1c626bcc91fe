/**
 * One call over the gateway's HTTP ingress (POST /rpc): no WebSocket to open and close, and no
 * WebSocket library to load. The CLI's one-shot commands use it, as can any caller that makes a
 * single call. The request itself is http1.ts's. Errors are the same types the WebSocket client
 * throws.
 */
import { DEFAULT_CALL_TIMEOUT_MS, MAX_CLIENT_FRAME_BYTES } from '../protocol/constants.js';
import type { MethodName, ParamsOf, ResultOf } from '../protocol/methods.js';
import { resultOf } from './answer.js';
import { ConnectionError, refusalError, tlsError } from './errors.js';
import { gatewayUrlProblem, HTTP_PROTOCOLS, invalidGatewayUrl, UNIX_SOCKET_HOST, unixSocketPath } from './gateway-url.js';
import { abortError, exchange, ExchangeError, type HttpResponse } from './http1.js';
import { unixSocketRefusal } from './local-gateway.js';
import { durationOption, tokenOption } from './options.js';
import { CallStop, onAbort, wait } from './abort.js';
import { retryWhileBusy } from './busy-socket.js';

export interface HttpCallOptions {
  /**
   * The gateway URL, ws:// or http:// (wss:// or https://), or unix:/path/to/gateway.sock; the
   * call goes to its /rpc, after its path if it has one.
   */
  url: string;
  token: string;
  /** @default DEFAULT_CALL_TIMEOUT_MS (10 s) */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * The /rpc endpoint of a gateway URL: ws://h:p becomes http://h:p/rpc. Its path is kept, as a
 * prefix, because the WebSocket connects to the URL as given: both then reach a gateway that a
 * reverse proxy serves under that path (wss://example.com/switchboard posts to
 * https://example.com/switchboard/rpc). Its query is kept too, as the WebSocket sends it.
 */
function rpcEndpoint(url: string): URL {
  const problem = gatewayUrlProblem(url);
  if (problem !== undefined) throw invalidGatewayUrl(url, problem);
  if (unixSocketPath(url) !== undefined) return new URL(`http://${UNIX_SOCKET_HOST}/rpc`);
  const endpoint = new URL(url);
  endpoint.protocol = HTTP_PROTOCOLS[endpoint.protocol]!;
  endpoint.pathname += endpoint.pathname.endsWith('/') ? 'rpc' : '/rpc';
  return endpoint;
}

/** The POST /rpc body of one call: a request with id 1, the only one on its connection. */
export function rpcRequestBody(method: MethodName, params: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', id: 1, method, params });
}

export async function callOverHttp<M extends MethodName>(options: HttpCallOptions, method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
  const { url, signal } = options;
  // The types require it; a caller in plain JavaScript gets a reason, not a TypeError from inside.
  if (typeof url !== 'string') throw new TypeError(`callOverHttp: options.url is required (the gateway's URL, e.g. localGatewayUrl()), got ${typeof url}`);
  const endpoint = rpcEndpoint(url);
  const refusal = unixSocketRefusal(url);
  if (refusal !== undefined) throw refusal;
  const timeoutMs = durationOption('timeoutMs', options.timeoutMs, DEFAULT_CALL_TIMEOUT_MS);
  const token = tokenOption(options.token);
  // One stop for the exchange: the caller's signal, or the timeout's (a timer cleared when the call
  // ends; AbortSignal.timeout would leave one pending in a library caller's process).
  const stop = new CallStop();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // As AbortSignal.timeout says it, for whoever follows the error's causes.
    stop.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'));
  }, timeoutMs);
  const onCallerAbort = () => stop.abort(signal!.reason);
  if (signal?.aborted) onCallerAbort();
  const stopListening = onAbort(signal, onCallerAbort);
  let response: HttpResponse;
  try {
    const socketPath = unixSocketPath(url);
    const request = {
      url: endpoint,
      ...(socketPath === undefined ? {} : { socketPath }),
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: rpcRequestBody(method, params),
      signal: stop,
      maxBodyBytes: MAX_CLIENT_FRAME_BYTES,
    };
    response = await retryWhileBusy(() => exchange(request), {
      notConnected: (error) => error instanceof ExchangeError && error.failure === 'unreachable',
      // Timed out while the socket still refused: nothing was sent, which "unreachable" says and "timeout" would not.
      pause: async (ms, busy) => {
        if (!(await wait(ms, stop))) throw timedOut ? busy : abortError(stop);
      },
    });
  } catch (error) {
    if (!(error instanceof ExchangeError)) throw error;
    throw connectionError(error, url, method, timedOut, timeoutMs);
  } finally {
    clearTimeout(timer);
    stopListening();
  }
  return answerOf(response, url, method) as ResultOf<M>;
}

function connectionError(error: ExchangeError, url: string, method: string, timedOut: boolean, timeoutMs: number): ConnectionError {
  const cause = { cause: error };
  switch (error.failure) {
    case 'aborted':
      return timedOut
        ? new ConnectionError('timeout', url, `no answer to ${method} from ${url} within ${timeoutMs} ms`, cause)
        : new ConnectionError('aborted', url, `${method} was aborted by the caller`, cause);
    case 'unreachable':
      return tlsError(url, error.cause) ?? new ConnectionError('unreachable', url, `gateway not reachable at ${url} (${error.message})`, cause);
    case 'closed':
      return new ConnectionError('closed', url, `the connection to ${url} broke before the answer was complete`, cause);
    case 'malformed':
      return new ConnectionError('rejected', url, `the answer from ${url} is ${error.message}: is it a switchboard gateway?`, cause);
    case 'too-large':
      return new ConnectionError('rejected', url, `the answer from ${url} is larger than any gateway answer (${MAX_CLIENT_FRAME_BYTES} bytes): is it a switchboard gateway?`, cause);
  }
}

function answerOf({ status, headers, body }: HttpResponse, url: string, method: string): unknown {
  const text = body.toString('utf8');
  if (status !== 200) throw refusalError(url, { status, body: text, retryAfter: headers.get('retry-after') }, 'the call');
  let response: unknown;
  try {
    response = JSON.parse(text);
  } catch (error) {
    throw new ConnectionError('rejected', url, `the answer from ${url} is not JSON: is it a switchboard gateway?`, { cause: error });
  }
  return resultOf(response, method, url);
}
