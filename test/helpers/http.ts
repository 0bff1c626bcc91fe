/**
 * HTTP helpers for end-to-end suites: well-formed requests through node:http, and a raw TCP
 * client for what node:http will not send (a body that stalls or trickles, a body that goes on
 * past the size limit), and one system.event sent through any ingress. Every wait has a timeout, and every socket opened here is tracked so
 * `closeHttpSockets()` in a suite's `after` hook leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import * as assert from 'uvu/assert';
import { errorOf, resultOf, runCli, type JsonRpcResponse, type Peer } from './gateway.js';
import type { Route, RoutingResult } from '../../src/protocol/schemas.js';

export type { Route, RoutingResult };

const RESPONSE_TIMEOUT_MS = 5_000;

const open = new Set<net.Socket>();

/** Destroys every raw socket this module opened (node:http requests use no keep-alive agent). */
export function closeHttpSockets(): void {
  for (const socket of open) socket.destroy();
  open.clear();
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | number>;
  /** A string or a Buffer is sent as is; anything else as its JSON. */
  body?: unknown;
}

/** One request on its own connection (no agent, no keep-alive); resolves with the whole answer. */
export function httpRequest(port: number, request: HttpRequest): Promise<HttpResponse> {
  const body =
    request.body === undefined ? undefined : typeof request.body === 'string' || Buffer.isBuffer(request.body) ? request.body : JSON.stringify(request.body);
  return new Promise<HttpResponse>((resolve, reject) => {
    const timer = setTimeout(() => {
      outgoing.destroy();
      reject(new Error(`no answer to ${request.method ?? 'GET'} ${request.path} within ${RESPONSE_TIMEOUT_MS} ms`));
    }, RESPONSE_TIMEOUT_MS);
    const outgoing = http.request(
      {
        host: '127.0.0.1',
        port,
        method: request.method ?? 'GET',
        path: request.path,
        agent: false,
        headers: { ...(body === undefined ? {} : { 'content-length': Buffer.byteLength(body) }), ...request.headers },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          clearTimeout(timer);
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
        response.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      },
    );
    outgoing.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    outgoing.end(body);
  });
}

/** Headers that carry a token the documented way. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

export const JSON_TYPE = { 'content-type': 'application/json' } as const;

/** POST with `Content-Type: application/json` and `Authorization: Bearer <token>` (when given). */
export function postJson(port: number, path: string, body: unknown, token?: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return httpRequest(port, { method: 'POST', path, body, headers: { ...JSON_TYPE, ...(token === undefined ? {} : bearer(token)), ...headers } });
}

/** The body parsed as JSON; fails with the body shown when it is not. */
export function jsonOf<T = unknown>(response: HttpResponse): T {
  try {
    return JSON.parse(response.body) as T;
  } catch {
    throw new Error(`expected a JSON body, got HTTP ${response.status}: ${response.body.slice(0, 500)}`);
  }
}

// ---------------------------------------------------------------- raw TCP

export interface RawHttpResponse extends HttpResponse {
  /** Every byte the server sent, as text. */
  raw: string;
}

export interface RawHttpConnection {
  socket: net.Socket;
  /** Writes bytes as they are; errors (the server closed first) are ignored and reported by `closed`. */
  write(data: string | Buffer): void;
  /** True once the server closed or reset the connection. */
  readonly closed: boolean;
  /** Every byte the server sent so far, as text. */
  readonly received: string;
  /** Resolves with the answer once the server has sent a complete response or closed the socket. */
  response(timeoutMs?: number): Promise<RawHttpResponse>;
}

/** A TCP connection to the gateway that sends exactly the bytes a test gives it, when it gives them. */
export function openRawHttp(port: number): Promise<RawHttpConnection> {
  const socket = net.connect({ host: '127.0.0.1', port });
  open.add(socket);
  const chunks: Buffer[] = [];
  let closed = false;
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const listener of [...listeners]) listener();
  };
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    changed();
  });
  // A reset after the answer (the server closes without reading the rest) is expected here.
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
    open.delete(socket);
    changed();
  });

  const connection: RawHttpConnection = {
    socket,
    write(data) {
      if (!socket.destroyed && socket.writable) socket.write(data, () => {});
    },
    get closed() {
      return closed;
    },
    get received() {
      return Buffer.concat(chunks).toString('utf8');
    },
    response(timeoutMs = RESPONSE_TIMEOUT_MS) {
      return new Promise<RawHttpResponse>((resolve, reject) => {
        const check = () => {
          const parsed = parseRawResponse(Buffer.concat(chunks).toString('utf8'), closed);
          if (!parsed) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(parsed);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no complete HTTP response within ${timeoutMs} ms; got: ${Buffer.concat(chunks).toString('utf8').slice(0, 500)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(connection));
    socket.once('error', reject);
  });
}

/** A complete response (by Content-Length, or everything up to the close), or undefined for "not yet". */
function parseRawResponse(raw: string, closed: boolean): RawHttpResponse | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) {
    if (closed) throw new Error(`the connection closed before a complete response head; got: ${raw.slice(0, 500)}`);
    return undefined;
  }
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
  const headers: IncomingHttpHeaders = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = raw.slice(end + 4);
  const length = Number(headers['content-length']);
  if (Number.isFinite(length) && Buffer.byteLength(body) >= length) return { status, headers, body: body.slice(0, length), raw };
  return closed ? { status, headers, body, raw } : undefined;
}

/** The head of a POST request, ready to write on a raw connection. */
export function postHead(path: string, headers: Record<string, string | number>): string {
  const lines = Object.entries({ host: '127.0.0.1', ...headers }).map(([name, value]) => `${name}: ${value}`);
  return `POST ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------- raw WebSocket over TCP

/** A frame the gateway sent: opcode 1 text, 8 close (with its code and reason), 9 ping, 10 pong. */
export interface ServerFrame {
  opcode: number;
  payload: Buffer;
  /** For a close frame. */
  code?: number;
  reason?: string;
}

export interface RawWebSocket {
  /** Every frame received so far, in order. */
  readonly frames: readonly ServerFrame[];
  /** Sends one masked text frame, whatever state the connection is in (a `ws` client would refuse once closing). */
  sendText(text: string): void;
  /** Resolves with the first frame `check` accepts, re-checked as frames arrive; rejects after `timeoutMs`. */
  waitFor(check: (frame: ServerFrame) => boolean, what: string, timeoutMs?: number): Promise<ServerFrame>;
  /** Whether the connection has closed (the gateway cut it, or destroy()). */
  readonly closed: boolean;
  destroy(): void;
}

/**
 * A WebSocket client written on a bare TCP socket: it never answers a close frame and keeps
 * sending after one, as a misbehaving or malicious peer may. Rejects if the upgrade is refused.
 */
export async function openRawWebSocket(port: number, token: string): Promise<RawWebSocket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  open.add(socket);
  socket.on('error', () => {});
  socket.on('close', () => open.delete(socket));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  socket.write(
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
  );
  let buffer = Buffer.alloc(0);
  let upgraded = false;
  const frames: ServerFrame[] = [];
  const listeners = new Set<() => void>();
  const handshake = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to the upgrade within ${RESPONSE_TIMEOUT_MS} ms`)), RESPONSE_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const status = buffer.subarray(0, end).toString('latin1').split('\r\n', 1)[0]!;
        clearTimeout(timer);
        if (!status.startsWith('HTTP/1.1 101')) return reject(new Error(`upgrade refused: ${status}`));
        upgraded = true;
        buffer = buffer.subarray(end + 4);
        resolve();
      }
      for (let frame = takeFrame(); frame; frame = takeFrame()) frames.push(frame);
      for (const listener of [...listeners]) listener();
    });
  });
  const takeFrame = (): ServerFrame | undefined => {
    if (buffer.length < 2) return undefined;
    const opcode = buffer[0]! & 0x0f;
    let length = buffer[1]! & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (buffer.length < 4) return undefined;
      length = buffer.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (buffer.length < 10) return undefined;
      length = Number(buffer.readBigUInt64BE(2));
      offset = 10;
    }
    if (buffer.length < offset + length) return undefined;
    const payload = Buffer.from(buffer.subarray(offset, offset + length));
    buffer = buffer.subarray(offset + length);
    return opcode === 8
      ? { opcode, payload, code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString('utf8') }
      : { opcode, payload };
  };
  await handshake;
  return {
    frames,
    sendText(text) {
      const payload = Buffer.from(text, 'utf8');
      const mask = randomBytes(4);
      const head =
        payload.length < 126
          ? Buffer.from([0x81, 0x80 | payload.length])
          : payload.length < 65_536
            ? Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
            : (() => {
                const long = Buffer.alloc(10);
                long[0] = 0x81;
                long[1] = 0x80 | 127;
                long.writeBigUInt64BE(BigInt(payload.length), 2);
                return long;
              })();
      const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
      if (!socket.destroyed) socket.write(Buffer.concat([head, mask, masked]), () => {});
    },
    waitFor(check, what, timeoutMs = RESPONSE_TIMEOUT_MS) {
      return new Promise<ServerFrame>((resolve, reject) => {
        const listener = () => {
          const found = frames.find(check);
          if (!found) return;
          listeners.delete(listener);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${frames.length} frames received`));
        }, timeoutMs);
        listeners.add(listener);
        listener();
      });
    },
    get closed() {
      return socket.closed;
    },
    destroy: () => socket.destroy(),
  };
}

/** The JSON-RPC answer with `id` among a raw socket's text frames, if it came. */
export function answerIn(frames: readonly ServerFrame[], id: number | string): JsonRpcResponse | undefined {
  for (const frame of frames) {
    if (frame.opcode !== 1) continue;
    const message = JSON.parse(frame.payload.toString('utf8')) as JsonRpcResponse;
    if (message.id === id) return message;
  }
  return undefined;
}

// ---------------------------------------------------------------- one call, any ingress

export interface RpcErrorBody {
  code: number;
  message: string;
  data?: { name?: string; errors?: { path: string; message: string }[]; [key: string]: unknown };
}

/** The ways an event reaches the gateway; the CLI is a WebSocket client of its own. */
export type Ingress = 'websocket' | 'http-hook' | 'http-rpc' | 'cli';
export const INGRESSES: readonly Ingress[] = ['websocket', 'http-hook', 'http-rpc', 'cli'];

/** What event.trace's "accepted" step names for each ingress. The CLI's one-shot calls go over POST /rpc. */
export const TRACED_AS: Record<Ingress, string> = { websocket: 'websocket', 'http-hook': 'http-hook', 'http-rpc': 'http-rpc', cli: 'http-rpc' };

export function rpcBody(method: string, params: unknown, id: number | string = 1): unknown {
  return { jsonrpc: '2.0', id, method, params };
}

interface Target {
  url: string;
  port: number;
}

/**
 * Sends system.event through `ingress` with `token` and resolves with the routing result. For
 * 'websocket' the call goes over `peer`, which must have been opened with the same token.
 */
export async function publishVia(gw: Target, peer: Peer, ingress: Ingress, params: Record<string, string>, token: string): Promise<RoutingResult> {
  switch (ingress) {
    case 'websocket':
      return resultOf<RoutingResult>(await peer.call('system.event', params));
    case 'http-hook': {
      const response = await postJson(gw.port, '/hooks/wake', params, token);
      assert.is(response.status, 200, `hook answered ${response.status}: ${response.body}`);
      return jsonOf<RoutingResult>(response);
    }
    case 'http-rpc': {
      const response = await postJson(gw.port, '/rpc', rpcBody('system.event', params), token);
      assert.is(response.status, 200, response.body);
      return resultOf<RoutingResult>(jsonOf<JsonRpcResponse>(response));
    }
    case 'cli': {
      const result = await runCli(['system', 'event', '--json', ...cliFlags(params), '--url', gw.url, '--token', token]);
      assert.is(result.code, 0, `cli exited ${result.code}: ${result.stderr}`);
      return JSON.parse(result.stdout) as RoutingResult;
    }
  }
}

/**
 * A system.event refused through `ingress`: the JSON-RPC error's code and message, after checking
 * how the transport carried it (WebSocket and /rpc: a JSON-RPC error; hook: `hookStatus` with
 * `{ error }`; CLI with --json: exit 1, `{ error }` on stdout, the same message and code on stderr).
 */
export async function refusalVia(
  gw: Target,
  peer: Peer,
  ingress: Ingress,
  params: Record<string, string>,
  hookStatus: number,
  token: string,
): Promise<{ code: number; message: string }> {
  switch (ingress) {
    case 'websocket': {
      const error = errorOf(await peer.call('system.event', params));
      return { code: error.code, message: error.message };
    }
    case 'http-hook': {
      const response = await postJson(gw.port, '/hooks/wake', params, token);
      assert.is(response.status, hookStatus, `hook answered ${response.status}: ${response.body}`);
      assert.match(String(response.headers['content-type']), /^application\/json/);
      const { error } = jsonOf<{ error: RpcErrorBody }>(response);
      return { code: error.code, message: error.message };
    }
    case 'http-rpc': {
      const response = await postJson(gw.port, '/rpc', rpcBody('system.event', params), token);
      assert.is(response.status, 200, 'JSON-RPC errors over /rpc are HTTP 200');
      const error = errorOf(jsonOf<JsonRpcResponse>(response));
      return { code: error.code, message: error.message };
    }
    case 'cli': {
      const result = await runCli(['system', 'event', '--json', ...cliFlags(params), '--url', gw.url, '--token', token]);
      assert.is(result.code, 1, `the CLI exits 1 when the gateway answers with an error; stderr: ${result.stderr}`);
      const { error } = JSON.parse(result.stdout) as { error: RpcErrorBody };
      const refusal = cliRefusal(result.stderr);
      assert.equal({ code: error.code, message: error.message }, refusal, '--json prints on stdout the error stderr names');
      return refusal;
    }
  }
}

/** The code and message of the gateway's refusal as the CLI prints it on stderr. */
export function cliRefusal(stderr: string): { code: number; message: string } {
  const match = /^switchboard: the gateway refused: ([\s\S]*) \(code (-?\d+)\)\n$/.exec(stderr);
  assert.ok(match, `stderr names the gateway's message and code: ${stderr}`);
  return { code: Number(match![2]), message: match![1]! };
}

const CLI_FLAGS: Record<string, string> = {
  text: '--text',
  sessionKey: '--session-key',
  agentId: '--agent',
  mode: '--mode',
  contextKey: '--context-key',
  idempotencyKey: '--idempotency-key',
};

function cliFlags(params: Record<string, string>): string[] {
  return Object.entries(params).flatMap(([name, value]) => [CLI_FLAGS[name]!, value]);
}
