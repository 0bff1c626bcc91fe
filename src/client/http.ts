/**
 * One call over the gateway's HTTP ingress (POST /rpc): no socket to open and close, and no
 * WebSocket library to load. The CLI's one-shot commands use it, as can any caller that makes a
 * single call. Errors are the same types the WebSocket client throws.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { DEFAULT_CALL_TIMEOUT_MS } from '../protocol/constants.js';
import type { MethodName, ParamsOf, ResultOf } from '../protocol/methods.js';
import { ConnectionError, RpcCallError } from './errors.js';

export interface HttpCallOptions {
  /** The gateway URL, ws:// or http:// (wss:// or https://); the call goes to its /rpc. */
  url: string;
  token: string;
  /** @default DEFAULT_CALL_TIMEOUT_MS (10 s) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The /rpc endpoint of a gateway URL: ws://h:p becomes http://h:p/rpc. */
export function rpcEndpoint(url: string): URL {
  let endpoint: URL;
  try {
    endpoint = new URL(url);
  } catch (error) {
    throw new ConnectionError('unreachable', url, `invalid gateway URL ${JSON.stringify(url)}: expected ws://host:port`, { cause: error });
  }
  const protocols: Record<string, string> = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' };
  const protocol = protocols[endpoint.protocol];
  if (!protocol) throw new ConnectionError('unreachable', url, `unsupported gateway URL ${JSON.stringify(url)}: expected ws://host:port`);
  endpoint.protocol = protocol;
  endpoint.pathname = '/rpc';
  return endpoint;
}

type Send = (url: URL, options: RequestOptions) => ClientRequest;

export async function callOverHttp<M extends MethodName>(options: HttpCallOptions, method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
  const endpoint = rpcEndpoint(options.url);
  // node:https pulls in TLS, which costs start-up time a local ws:// gateway never needs.
  const send: Send = endpoint.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  return post(send, endpoint, options, method, params);
}

function post<M extends MethodName>(send: Send, endpoint: URL, options: HttpCallOptions, method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
  const { url } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params });
  return new Promise((resolve, reject) => {
    const request = send(endpoint, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${options.token}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
      signal: options.signal,
    });
    const timer = setTimeout(() => {
      request.destroy();
      reject(new ConnectionError('timeout', url, `no answer to ${method} from ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error.name === 'AbortError') reject(new ConnectionError('aborted', url, `${method} was aborted by the caller`, { cause: error }));
      else reject(new ConnectionError('unreachable', url, `gateway not reachable at ${url} (${error.code ?? error.message})`, { cause: error }));
    });
    request.on('response', (response) => {
      readAll(response).then(
        (text) => {
          clearTimeout(timer);
          try {
            resolve(answerOf(response.statusCode ?? 0, text, url) as ResultOf<M>);
          } catch (error) {
            reject(error);
          }
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(new ConnectionError('closed', url, `the connection to ${url} broke before the answer was complete`, { cause: error }));
        },
      );
    });
    request.end(body);
  });
}

function answerOf(status: number, text: string, url: string): unknown {
  if (status === 401) throw new ConnectionError('unauthorized', url, `the gateway at ${url} refused the token (HTTP 401)`);
  if (status !== 200) throw new ConnectionError('rejected', url, `the gateway at ${url} refused the call (HTTP ${status}: ${refusalOf(text)})`);
  let message: { result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } };
  try {
    message = JSON.parse(text) as typeof message;
  } catch (error) {
    throw new ConnectionError('rejected', url, `the answer from ${url} is not JSON: is it a switchboard gateway?`, { cause: error });
  }
  if (message.error) throw new RpcCallError(Number(message.error.code), String(message.error.message ?? 'error'), message.error.data);
  return message.result;
}

/** What an HTTP-level refusal says: the gateway's JSON error, or the body as it came (a proxy's page, say). */
function refusalOf(text: string): string {
  try {
    const { error } = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; data?: { name?: unknown } } };
    if (error && typeof error.message === 'string') return `${error.message} (${String(error.data?.name)} ${String(error.code)})`;
  } catch {
    // Not JSON: shown as it is.
  }
  return text.trim();
}

function readAll(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.once('error', reject);
    response.once('aborted', () => reject(new Error('aborted')));
  });
}
