/**
 * End-to-end harness: real gateways (as a child process running the CLI binary, or in-process),
 * the real CLI binary, and a raw WebSocket that sends exactly the bytes a test gives it.
 *
 * Everything started here is tracked, so `cleanup()` in a suite's `after` hook stops every
 * gateway and removes every temp dir even when a test failed half-way; a process 'exit' hook is
 * the last safety net. Every wait has a timeout: uvu has none, and a hung test would hang CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { RoutingResult } from '../../src/protocol/schemas.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';

/** The compiled CLI: this file runs from dist/test/helpers/, the binary is the bundle dist/bin/switchboard.cjs. */
export const CLI_PATH = fileURLToPath(new URL('../../bin/switchboard.cjs', import.meta.url));

/** Generous for a loaded CI box, short enough that a broken gateway fails the test, not the run. */
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const CLI_TIMEOUT_MS = 20_000;
const NEXT_TIMEOUT_MS = 5_000;

const LISTENING_RE = /^switchboard gateway listening on (ws:\/\/(\S+):(\d+)) \(/m;

// ---------------------------------------------------------------- tracking and cleanup

const tempDirs = new Set<string>();
const children = new Set<ChildProcess>();
const inProcess = new Set<Gateway>();
const sockets = new Set<WebSocket>();

/** A fresh, empty directory under the OS temp dir; removed by cleanup(). */
export function makeTempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-e2e-'));
  tempDirs.add(dir);
  return dir;
}

/** Stops every gateway and socket this module started, then removes every temp dir. */
export async function cleanup(): Promise<void> {
  for (const socket of sockets) socket.terminate();
  sockets.clear();
  await Promise.allSettled([...inProcess].map((gateway) => gateway.close()));
  inProcess.clear();
  await Promise.allSettled([...children].map((child) => killAndWait(child)));
  children.clear();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** The environment for a child: no SWITCHBOARD_* from the caller, and no real user data dir. */
function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SWITCHBOARD_')) env[name] = value;
  // Node warns on stderr when both are set (uvu sets FORCE_COLOR): the CLI's stderr is asserted.
  delete env['NO_COLOR'];
  delete env['FORCE_COLOR'];
  // Without --data-dir the CLI falls back to $XDG_DATA_HOME/switchboard: point it at an empty dir.
  env['XDG_DATA_HOME'] = isolatedHome();
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

let emptyHome: string | undefined;
function isolatedHome(): string {
  if (!emptyHome || !fs.existsSync(emptyHome)) emptyHome = makeTempDir();
  return emptyHome;
}

// ---------------------------------------------------------------- gateway as a child process

export interface GatewayProcess {
  url: string;
  port: number;
  host: string;
  dataDir: string;
  token: string;
  process: ChildProcess;
  /** Everything the gateway wrote to stdout / stderr so far; stderr without its log lines' timestamps. */
  stdout(): string;
  stderr(): string;
  /** stderr as written, each log line starting with its timestamp. */
  rawStderr(): string;
  /** Sends `signal` and resolves with the exit code (null when the signal killed it). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL: no shutdown code runs, like a power cut for the process. */
  kill9(): Promise<void>;
}

export interface StartOptions {
  /** @default a new temp dir */
  dataDir?: string;
  /** Extra CLI arguments after `gateway --port 0 --data-dir <dir>`. */
  args?: string[];
  env?: Record<string, string | undefined>;
}

export async function startGatewayProcess(options: StartOptions = {}): Promise<GatewayProcess> {
  const dataDir = options.dataDir ?? makeTempDir();
  const child = spawn(process.execPath, [CLI_PATH, 'gateway', '--port', '0', '--data-dir', dataDir, ...(options.args ?? [])], {
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return superviseGateway(child, dataDir);
}

/** The timestamp (ISO 8601, UTC, ms) that starts each line of a gateway's log. */
export const LOG_TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?=switchboard gateway: )/gm;

/** Tracks a spawned gateway, waits for its listening line, and wraps it as a GatewayProcess. */
async function superviseGateway(child: ChildProcess, dataDir: string): Promise<GatewayProcess> {
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<RegExpExecArray>((resolve, reject) => {
    const onData = () => {
      const found = LISTENING_RE.exec(out);
      if (!found) return;
      child.stdout!.off('data', onData);
      resolve(found);
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`gateway exited with ${code} before listening\nstdout: ${out}\nstderr: ${err}`)));
  });
  const match = await withTimeout(listening, START_TIMEOUT_MS, () => {
    child.kill('SIGKILL');
    return `gateway did not report listening within ${START_TIMEOUT_MS} ms\nstdout: ${out}\nstderr: ${err}`;
  });
  const [, url, host, port] = match as unknown as [string, string, string, string];
  return {
    url,
    host,
    port: Number(port),
    dataDir,
    token: fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim(),
    process: child,
    stdout: () => out,
    stderr: () => err.replace(LOG_TIME_RE, ''),
    rawStderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return withTimeout(exited, STOP_TIMEOUT_MS, () => {
        child.kill('SIGKILL');
        return `gateway did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}\nstderr: ${err}`;
      });
    },
    async kill9() {
      await killAndWait(child);
    },
  };
}

// ---------------------------------------------------------------- gateway in-process

export interface InProcessGateway {
  url: string;
  port: number;
  dataDir: string;
  token: string;
  gateway: Gateway;
  /** Lines the gateway logged. */
  log: string[];
}

/** The same gateway as the binary runs, without a process start: for suites that only speak RPC. */
export async function startInProcessGateway(options: { dataDir?: string; maxPendingPerSession?: number } = {}): Promise<InProcessGateway> {
  const dataDir = options.dataDir ?? makeTempDir();
  const log: string[] = [];
  const gateway = await startGateway({
    dataDir,
    port: 0,
    log: (line) => log.push(line),
    ...(options.maxPendingPerSession === undefined ? {} : { maxPendingPerSession: options.maxPendingPerSession }),
  });
  inProcess.add(gateway);
  return {
    url: gateway.url,
    port: gateway.port,
    dataDir,
    token: fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim(),
    gateway,
    log,
  };
}

// ---------------------------------------------------------------- the CLI binary

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  /** A file descriptor for the CLI's stdout (one of /dev/full, say) instead of a pipe read into `stdout`. */
  stdout?: number;
  /** What the CLI reads on stdin, then end of file; none (ignored) when not given. */
  stdin?: string | Buffer;
  /** The CLI's working directory (default: this process's). */
  cwd?: string;
  /** The user (and group) to run it as, for a root that runs the tests (default: this process's). */
  uid?: number;
}

/** Runs `switchboard <args>`; SWITCHBOARD_* of this process never leak in, only `env` does. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const stdin = options.stdin === undefined ? 'ignore' : 'pipe';
  const user = options.uid === undefined ? {} : { uid: options.uid, gid: options.uid };
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: childEnv(options.env), cwd: options.cwd, stdio: [stdin, options.stdout ?? 'pipe', 'pipe'], ...user });
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    // 'close', not 'exit': both pipes are drained by then.
    child.once('close', (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
  return withTimeout(done, CLI_TIMEOUT_MS, () => {
    child.kill('SIGKILL');
    return `switchboard ${args.join(' ')} did not exit within ${CLI_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`;
  });
}

// ---------------------------------------------------------------- raw WebSocket

export interface JsonRpcResponse {
  jsonrpc: string;
  id: string | number | null;
  result?: unknown;
  error?: { code: number; message: string; data?: { name?: string; errors?: { path: string; message: string }[]; [k: string]: unknown } };
}

export interface RawSocket {
  ws: WebSocket;
  /** Sends exactly this text as one text frame. */
  send(text: string): void;
  /** The next message the gateway sends, as text; rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<string>;
  /** The next message, parsed. */
  nextJson<T = unknown>(timeoutMs?: number): Promise<T>;
  /** Resolves if nothing arrives for `ms`; rejects with what arrived otherwise. */
  expectSilence(ms: number): Promise<void>;
  /** Sends a well-formed request with a fresh numeric id and resolves with its response. */
  call(method: string, params?: unknown): Promise<JsonRpcResponse>;
  /** Resolves with the close code and reason once the socket closes; rejects after `timeoutMs`. */
  closed(timeoutMs?: number): Promise<{ code: number; reason: string }>;
  /**
   * Resolves once the gateway has read everything sent before: it answers a ping in order.
   * Rejects if the socket closes first, or after `timeoutMs`.
   */
  readUpTo(timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Opens a WebSocket with `Authorization: Bearer <token>`; rejects if the upgrade is refused. */
export function openRaw(url: string, token: string): Promise<RawSocket> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
  sockets.add(ws);
  const queue: string[] = [];
  const waiters: Array<(text: string) => void> = [];
  let closeInfo: { code: number; reason: string } | undefined;
  const closeWaiters: Array<(info: { code: number; reason: string }) => void> = [];
  let nextId = 1_000_000;

  ws.on('message', (data: WebSocket.RawData) => {
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8');
    const waiter = waiters.shift();
    if (waiter) waiter(text);
    else queue.push(text);
  });
  ws.on('close', (code: number, reason: Buffer) => {
    sockets.delete(ws);
    closeInfo = { code, reason: reason.toString() };
    for (const waiter of closeWaiters.splice(0)) waiter(closeInfo);
  });
  ws.on('error', () => {});

  const next = (timeoutMs = NEXT_TIMEOUT_MS) => {
    const queued = queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise<string>((resolve, reject) => {
      const waiter = (text: string) => {
        clearTimeout(timer);
        resolve(text);
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no message from the gateway within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.push(waiter);
    });
  };

  const raw: RawSocket = {
    ws,
    send: (text) => ws.send(text),
    next,
    nextJson: async <T>(timeoutMs?: number) => JSON.parse(await next(timeoutMs)) as T,
    async expectSilence(ms) {
      const arrived = await next(ms).then(
        (text) => text,
        () => undefined,
      );
      if (arrived !== undefined) throw new Error(`expected no message for ${ms} ms, got: ${arrived.slice(0, 500)}`);
    },
    async call(method, params) {
      const id = nextId++;
      ws.send(JSON.stringify(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params }));
      const response = JSON.parse(await next()) as JsonRpcResponse;
      if (response.id !== id) throw new Error(`expected the response to id ${id}, got: ${JSON.stringify(response).slice(0, 500)}`);
      return response;
    },
    closed(timeoutMs = NEXT_TIMEOUT_MS) {
      if (closeInfo) return Promise.resolve(closeInfo);
      return withTimeout(new Promise((resolve) => closeWaiters.push(resolve)), timeoutMs, () => `socket not closed within ${timeoutMs} ms`);
    },
    readUpTo(timeoutMs = NEXT_TIMEOUT_MS) {
      if (closeInfo) return Promise.reject(new Error(`socket already closed (${closeInfo.code})`));
      // Its own payload: the pongs to pings sent before this one come first.
      const payload = `read-up-to ${nextId++}`;
      const pong = new Promise<void>((resolve, reject) => {
        const onPong = (data: Buffer) => {
          if (data.toString() !== payload) return;
          ws.off('pong', onPong);
          resolve();
        };
        ws.on('pong', onPong);
        closeWaiters.push(({ code, reason }) => reject(new Error(`socket closed (${code} ${reason}) before the pong`)));
      });
      ws.ping(payload);
      return withTimeout(pong, timeoutMs, () => `no pong within ${timeoutMs} ms`);
    },
    close: () => ws.close(1000),
  };

  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(raw));
    ws.once('unexpected-response', (_request, response) => {
      response.resume();
      reject(new Error(`upgrade refused with HTTP ${response.statusCode}`));
    });
    ws.once('error', (error) => reject(error));
  });
}

/**
 * Attempts an upgrade with the given headers; resolves with the HTTP status the gateway answered
 * (101 when the upgrade succeeded) and the body of a refusal.
 */
export function tryUpgrade(url: string, headers: Record<string, string>): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  ws.on('error', () => {});
  const attempt = new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
    ws.once('open', () => {
      ws.close(1000);
      resolve({ status: 101, body: '', headers: {} });
    });
    ws.once('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body, headers: { ...response.headers } }));
      response.on('error', () => resolve({ status: response.statusCode ?? 0, body, headers: { ...response.headers } }));
    });
    ws.once('error', reject);
  });
  return withTimeout(attempt, NEXT_TIMEOUT_MS, () => `no answer to the upgrade within ${NEXT_TIMEOUT_MS} ms`);
}

// ---------------------------------------------------------------- small utilities

/** The promise's outcome, or a rejection with `onTimeout()`'s message after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(onTimeout())), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Asserts a value is a JSON-RPC success and returns its result typed as the caller says. */
export function resultOf<T>(response: JsonRpcResponse): T {
  if (response.error !== undefined || !('result' in response)) {
    throw new Error(`expected a result, got: ${JSON.stringify(response).slice(0, 1000)}`);
  }
  return response.result as T;
}

/** Asserts a value is a JSON-RPC error and returns it. */
export function errorOf(response: JsonRpcResponse): NonNullable<JsonRpcResponse['error']> {
  if (response.error === undefined) throw new Error(`expected an error, got: ${JSON.stringify(response).slice(0, 1000)}`);
  return response.error;
}

export const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------- subscriptions, wake, tuned gateways

/** A gateway in-process with every option of startGateway (short heartbeats, pings, buffers). */
export async function startTunedGateway(
  options: Omit<Parameters<typeof startGateway>[0], 'dataDir' | 'log'> & { dataDir?: string } = {},
): Promise<InProcessGateway> {
  const dataDir = options.dataDir ?? makeTempDir();
  const log: string[] = [];
  const gateway = await startGateway({ port: 0, ...options, dataDir, log: (line) => log.push(line) });
  inProcess.add(gateway);
  return { url: gateway.url, port: gateway.port, dataDir, token: fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim(), gateway, log };
}

/**
 * The gateway binary on a given port (0 for a free one): to restart a killed gateway at the same
 * URL, so a client that reconnects finds it again.
 */
export async function startGatewayProcessAt(options: { dataDir?: string; port: number }): Promise<GatewayProcess> {
  const dataDir = options.dataDir ?? makeTempDir();
  const child = spawn(process.execPath, [CLI_PATH, 'gateway', '--port', String(options.port), '--data-dir', dataDir], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return superviseGateway(child, dataDir);
}

/** A long-running CLI command (`session watch`): read its output while it runs, then signal it. */
export interface CliProcess {
  process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Complete lines written to stdout so far. */
  lines(): string[];
  /** Resolves with the first `count` stdout lines once they are written; rejects after `timeoutMs`. */
  waitForLines(count: number, timeoutMs?: number): Promise<string[]>;
  /** Sends `signal` and resolves with the exit code once the process has exited and its pipes are drained. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code once the process has exited by itself and its pipes are drained; rejects after `timeoutMs`. */
  exited(what: string, timeoutMs?: number): Promise<number | null>;
}

export function spawnCli(args: readonly string[], options: CliOptions = {}): CliProcess {
  return spawnScript(CLI_PATH, args, options);
}

/** Any Node.js script of this package (an example, say), run and read as spawnCli runs the CLI. */
export function spawnScript(script: string, args: readonly string[], options: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, [script, ...args], { env: childEnv(options.env), stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const listener of listeners) listener();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const lines = () => out.split('\n').slice(0, -1);
  return {
    process: child,
    stdout: () => out,
    stderr: () => err,
    lines,
    waitForLines(count, timeoutMs = NEXT_TIMEOUT_MS) {
      let listener: () => void = () => {};
      const enough = new Promise<string[]>((resolve) => {
        listener = () => {
          if (lines().length >= count) resolve(lines().slice(0, count));
        };
        listeners.add(listener);
        listener();
      });
      return withTimeout(enough, timeoutMs, () => `expected ${count} lines within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`).finally(() =>
        listeners.delete(listener),
      );
    },
    exited(what, timeoutMs = NEXT_TIMEOUT_MS) {
      return withTimeout(closed, timeoutMs, () => `expected ${what} within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`);
    },
    async stop(signal: NodeJS.Signals = 'SIGINT') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return withTimeout(closed, STOP_TIMEOUT_MS, () => {
        child.kill('SIGKILL');
        return `${path.basename(script)} ${args.join(' ')} did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}\nstderr: ${err}`;
      });
    },
  };
}

/** A notification the gateway pushed (session.event, agent.wake). */
export interface PushedNotification<P = unknown> {
  jsonrpc: '2.0';
  method: string;
  params: P;
}

/**
 * A raw WebSocket that tells answers from pushed notifications: `call` waits for the response
 * with its id whatever arrives in between, and every frame is kept, parsed, in arrival order, so
 * a test can assert the order of answers and notifications.
 */
export interface Peer {
  ws: WebSocket;
  /** Every frame received so far, parsed, in arrival order. */
  readonly frames: readonly unknown[];
  send(text: string): void;
  call(method: string, params?: unknown, timeoutMs?: number): Promise<JsonRpcResponse>;
  /** Sends the requests as one batch frame and resolves with the gateway's array answer. */
  batch(requests: readonly { method: string; params?: unknown }[], timeoutMs?: number): Promise<JsonRpcResponse[]>;
  /** Notifications received so far, optionally of one method, in arrival order. */
  notifications<P = unknown>(method?: string): PushedNotification<P>[];
  /** Resolves with `check()`'s first non-undefined value, re-checked on every frame and on close. */
  waitFor<T>(check: () => T | undefined, what: string, timeoutMs?: number): Promise<T>;
  /** The close code and reason, once closed. */
  closed(timeoutMs?: number): Promise<{ code: number; reason: string }>;
  readonly isClosed: boolean;
  close(): void;
}

export function isNotification(frame: unknown): frame is PushedNotification {
  return typeof frame === 'object' && frame !== null && !Array.isArray(frame) && typeof (frame as { method?: unknown }).method === 'string';
}

/**
 * Opens a Peer with `Authorization: Bearer <token>`; `autoPong: false` makes it ignore pings,
 * `maxPayload` closes it (1009) on a larger frame, as clients with a smaller limit than ws's do.
 */
export function openPeer(url: string, token: string, options: { autoPong?: boolean; maxPayload?: number } = {}): Promise<Peer> {
  const ws = new WebSocket(url, {
    headers: { authorization: `Bearer ${token}` },
    perMessageDeflate: false,
    ...(options.autoPong === undefined ? {} : { autoPong: options.autoPong }),
    ...(options.maxPayload === undefined ? {} : { maxPayload: options.maxPayload }),
  });
  sockets.add(ws);
  const frames: unknown[] = [];
  /** Answers by id, so a call finds its own in O(1) however many are in flight. */
  const answers = new Map<unknown, JsonRpcResponse | JsonRpcResponse[]>();
  const listeners = new Set<() => void>();
  let closeInfo: { code: number; reason: string } | undefined;
  let nextId = 2_000_000;
  const changed = () => {
    for (const listener of [...listeners]) listener();
  };
  ws.on('message', (data: WebSocket.RawData) => {
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8');
    const frame: unknown = JSON.parse(text);
    frames.push(frame);
    if (Array.isArray(frame)) for (const item of frame) answers.set((item as JsonRpcResponse).id, frame as JsonRpcResponse[]);
    else if (!isNotification(frame)) answers.set((frame as JsonRpcResponse).id, frame as JsonRpcResponse);
    changed();
  });
  ws.on('close', (code: number, reason: Buffer) => {
    sockets.delete(ws);
    closeInfo = { code, reason: reason.toString() };
    changed();
  });
  ws.on('error', () => {});

  const waitFor = <T>(check: () => T | undefined, what: string, timeoutMs = NEXT_TIMEOUT_MS): Promise<T> => {
    let listener: () => void = () => {};
    const found = new Promise<T>((resolve) => {
      listener = () => {
        const value = check();
        if (value !== undefined) resolve(value);
      };
      listeners.add(listener);
      listener();
    });
    return withTimeout(found, timeoutMs, () => `timed out after ${timeoutMs} ms waiting for ${what}; ${frames.length} frames received`).finally(
      () => listeners.delete(listener),
    );
  };
  const responseTo = (id: number) => () => {
    const answer = answers.get(id);
    return answer === undefined || Array.isArray(answer) ? undefined : answer;
  };

  const peer: Peer = {
    ws,
    frames,
    send: (text) => ws.send(text),
    async call(method, params, timeoutMs) {
      const id = nextId++;
      ws.send(JSON.stringify(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params }));
      return waitFor(responseTo(id), `the answer to ${method} (id ${id})`, timeoutMs);
    },
    async batch(requests, timeoutMs) {
      const ids = requests.map(() => nextId++);
      ws.send(JSON.stringify(requests.map((request, i) => ({ jsonrpc: '2.0', id: ids[i], ...request }))));
      return waitFor(
        () => {
          const answer = answers.get(ids[0]);
          return Array.isArray(answer) ? answer : undefined;
        },
        `the answer to a batch of ${requests.length}`,
        timeoutMs,
      );
    },
    notifications<P>(method?: string) {
      return frames.filter((frame) => isNotification(frame) && (method === undefined || frame.method === method)) as PushedNotification<P>[];
    },
    waitFor,
    closed: (timeoutMs) => waitFor(() => closeInfo, 'the socket to close', timeoutMs),
    get isClosed() {
      return closeInfo !== undefined;
    },
    close: () => ws.close(1000),
  };

  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(peer));
    ws.once('unexpected-response', (_request, response) => {
      response.resume();
      reject(new Error(`upgrade refused with HTTP ${response.statusCode}`));
    });
    ws.once('error', (error) => reject(error));
  });
}

/** Polls `condition` every 10 ms until it holds; rejects with `what` after `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = NEXT_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---------------------------------------------------------------- calls on a socket that may die (crash tests)

/** How one call ended: answered (with a result or an error), or cut off by the socket closing first. */
export type CallOutcome =
  | { kind: 'answered'; response: JsonRpcResponse }
  /** `sent` is false when the socket was already closed, so the request never left this process. */
  | { kind: 'closed'; sent: boolean; code: number };

/**
 * A raw WebSocket for crash tests: many calls in flight, answers matched by id, and every call
 * still pending when the socket closes (the gateway was killed) settles at once as 'closed'
 * instead of timing out. Calls never reject.
 */
export interface CallSocket {
  call(method: string, params?: unknown): Promise<CallOutcome>;
  readonly inFlight: number;
  readonly isClosed: boolean;
  /** Resolves once the socket is closed. */
  readonly closed: Promise<number>;
  close(): void;
}

export function openCallSocket(url: string, token: string): Promise<CallSocket> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
  sockets.add(ws);
  const pending = new Map<number, (outcome: CallOutcome) => void>();
  let closeCode: number | undefined;
  let nextId = 3_000_000;
  let onClosed: (code: number) => void = () => {};
  const closed = new Promise<number>((resolve) => (onClosed = resolve));
  ws.on('message', (data: WebSocket.RawData) => {
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8');
    const response = JSON.parse(text) as JsonRpcResponse;
    if (typeof response.id !== 'number') return;
    const settle = pending.get(response.id);
    pending.delete(response.id);
    settle?.({ kind: 'answered', response });
  });
  ws.on('close', (code: number) => {
    sockets.delete(ws);
    closeCode = code;
    for (const settle of pending.values()) settle({ kind: 'closed', sent: true, code });
    pending.clear();
    onClosed(code);
  });
  ws.on('error', () => {});
  const socket: CallSocket = {
    call(method, params) {
      if (closeCode !== undefined || ws.readyState !== WebSocket.OPEN) {
        return Promise.resolve({ kind: 'closed', sent: false, code: closeCode ?? 1006 });
      }
      const id = nextId++;
      const outcome = new Promise<CallOutcome>((resolve) => pending.set(id, resolve));
      ws.send(JSON.stringify(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params }));
      return outcome;
    },
    get inFlight() {
      return pending.size;
    },
    get isClosed() {
      return closeCode !== undefined;
    },
    closed,
    close: () => ws.close(1000),
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(socket));
    ws.once('unexpected-response', (_request, response) => {
      response.resume();
      reject(new Error(`upgrade refused with HTTP ${response.statusCode}`));
    });
    ws.once('error', (error) => reject(error));
  });
}

// ---------------------------------------------------------------- crash workload (test/e2e/crash.test.ts, scripts/crash-test.ts)

/** One event of a crash workload: unique text and idempotency key, so its fate can be told apart. */
export interface CrashEvent {
  n: number;
  client: number;
  sessionKey: string;
  text: string;
  idempotencyKey: string;
}

/** Everything that happened to one event, over every attempt. */
export interface EventFate {
  /** Times the request left this process. */
  sends: number;
  /** Results, in arrival order (later ones are idempotent repeats: duplicate true). */
  results: { eventId: string; seq: number; sessionKey: string; duplicate: boolean }[];
  refusals: { code: number; message: string }[];
  /** Sends that got no answer: the gateway died with the call in flight. */
  unanswered: number;
}

export interface CrashCounts {
  /** Events sent at least once. */
  sent: number;
  /** Events answered with a result at least once. */
  answered: number;
  /** Events answered only with an error. */
  refused: number;
  /** Events sent but never answered. */
  unanswered: number;
  /** Events found in the store (once or more). */
  present: number;
  /** Answered, but not in the store: must be 0. */
  lost: number;
  /** In the store more than once: must be 0. */
  duplicated: number;
  /** In the store, but with another eventId or seq than the answer said: must be 0. */
  mismatched: number;
  /** Refused, yet in the store: must be 0. */
  refusedPresent: number;
  /** Never answered, yet in the store (allowed: the commit beat the kill). */
  unansweredPresent: number;
  /** Stored events no request of the workload accounts for: must be 0. */
  unknown: number;
  /** Answers with duplicate: true (a resubmission found the first attempt stored). */
  duplicateAnswers: number;
}

export interface CrashWorkloadOptions {
  events: number;
  clients: number;
  sessions: number;
  /** Calls each client keeps in flight. */
  inFlightPerClient: number;
  /** Session keys are agent:<agent>:slack:channel:S<i>. */
  agent?: string;
}

/**
 * Clients that fire `system.event` at a gateway process, and the ledger of what was answered.
 * A round runs the clients against one gateway until their queues are empty, or until the gateway
 * is killed (`killAtAnswered`): then every call in flight is unanswered. With `resubmit`, those
 * go back to the queue and the next round sends them again with the same idempotency key.
 */
export class CrashWorkload {
  readonly events: CrashEvent[];
  readonly sessionKeys: string[];
  readonly fates = new Map<number, EventFate>();
  readonly #queues: CrashEvent[][];
  readonly #options: CrashWorkloadOptions;
  #answeredCalls = 0;

  constructor(options: CrashWorkloadOptions) {
    this.#options = options;
    const agent = options.agent ?? 'crash';
    this.sessionKeys = Array.from({ length: options.sessions }, (_, i) => `agent:${agent}:slack:channel:S${i}`);
    // Every client writes into every session, interleaved, so sessions see concurrent writers.
    this.events = Array.from({ length: options.events }, (_, n) => ({
      n,
      client: n % options.clients,
      sessionKey: this.sessionKeys[Math.floor(n / options.clients) % options.sessions]!,
      text: `crash event ${n}`,
      idempotencyKey: `crash-${n}`,
    }));
    this.#queues = Array.from({ length: options.clients }, (_, c) => this.events.filter((event) => event.client === c));
    for (const event of this.events) this.fates.set(event.n, { sends: 0, results: [], refusals: [], unanswered: 0 });
  }

  /** Events still to send (never sent, or, with resubmit, sent without an answer). */
  get remaining(): number {
    return this.#queues.reduce((sum, queue) => sum + queue.length, 0);
  }

  /** Calls answered with a result so far, all rounds. */
  get answeredCalls(): number {
    return this.#answeredCalls;
  }

  /** Puts every event that was sent but never answered back in its client's queue, to resubmit. */
  requeueUnanswered(): number {
    let requeued = 0;
    for (const event of this.events) {
      const fate = this.fates.get(event.n)!;
      const queue = this.#queues[event.client]!;
      if (fate.sends > 0 && fate.results.length === 0 && fate.refusals.length === 0 && !queue.includes(event)) {
        queue.unshift(event);
        requeued++;
      }
    }
    return requeued;
  }

  /**
   * Runs the clients against `gw`. With `killAtAnswered`, SIGKILLs the gateway once that many
   * calls (all rounds) have been answered with a result; resolves with the calls in flight then.
   */
  async round(
    gw: GatewayProcess,
    options: { resubmit: boolean; killAtAnswered?: number },
  ): Promise<{ inFlightAtKill: number | null; answeredAtKill: number | null }> {
    const sockets = await Promise.all(this.#queues.map(() => openCallSocket(gw.url, gw.token)));
    let inFlightAtKill: number | null = null;
    let answeredAtKill: number | null = null;
    let killed: Promise<void> | undefined;
    const maybeKill = () => {
      if (killed || options.killAtAnswered === undefined || this.#answeredCalls < options.killAtAnswered) return;
      // On the next turn of the event loop: the workers whose answers just arrived have sent their
      // next calls by then, so the kill always lands with calls in flight.
      killed = new Promise<void>((resolve) =>
        setImmediate(() => {
          inFlightAtKill = sockets.reduce((sum, socket) => sum + socket.inFlight, 0);
          answeredAtKill = this.#answeredCalls;
          void gw.kill9().then(resolve);
        }),
      );
    };
    const worker = async (socket: CallSocket, queue: CrashEvent[]) => {
      while (!socket.isClosed) {
        const event = queue.shift();
        if (!event) return;
        const fate = this.fates.get(event.n)!;
        const outcome = await socket.call('system.event', {
          text: event.text,
          sessionKey: event.sessionKey,
          idempotencyKey: event.idempotencyKey,
        });
        if (outcome.kind === 'closed') {
          if (outcome.sent) {
            fate.sends++;
            fate.unanswered++;
          }
          if (options.resubmit || !outcome.sent) queue.unshift(event);
          return;
        }
        fate.sends++;
        const { response } = outcome;
        if (response.error) {
          fate.refusals.push({ code: response.error.code, message: response.error.message });
        } else {
          const result = response.result as { eventId: string; sessionKey: string; queue: { seq: number }; duplicate: boolean };
          fate.results.push({ eventId: result.eventId, seq: result.queue.seq, sessionKey: result.sessionKey, duplicate: result.duplicate });
          this.#answeredCalls++;
          maybeKill();
        }
      }
    };
    maybeKill();
    await Promise.all(
      sockets.map((socket, c) => Promise.all(Array.from({ length: this.#options.inFlightPerClient }, () => worker(socket, this.#queues[c]!)))),
    );
    for (const socket of sockets) socket.close();
    await killed;
    return { inFlightAtKill, answeredAtKill };
  }

  /**
   * Reads every session of the workload from `gw` and counts each event's fate against the
   * ledger. `problems` names each event that breaks a rule (lost, duplicated, mismatched, ...).
   */
  async verify(gw: GatewayProcess): Promise<{ counts: CrashCounts; problems: string[]; pending: number }> {
    const socket = await openCallSocket(gw.url, gw.token);
    const call = async <T>(method: string, params: unknown): Promise<T> => {
      const outcome = await socket.call(method, params);
      if (outcome.kind !== 'answered') throw new Error(`${method}: the gateway closed the connection`);
      return resultOf<T>(outcome.response);
    };
    const problems: string[] = [];
    const stored = new Map<string, { eventId: string; seq: number; sessionKey: string }[]>();
    for (const sessionKey of this.sessionKeys) {
      let after = 0;
      let lastSeq = 0;
      for (;;) {
        const page = await call<{ events: { eventId: string; seq: number; text: string }[]; more: boolean }>('session.peek', {
          sessionKey,
          after,
          limit: 1000,
        });
        for (const event of page.events) {
          if (event.seq <= lastSeq) problems.push(`${sessionKey}: seq ${event.seq} after seq ${lastSeq}: not in seq order`);
          lastSeq = event.seq;
          const copies = stored.get(event.text) ?? [];
          copies.push({ eventId: event.eventId, seq: event.seq, sessionKey });
          stored.set(event.text, copies);
        }
        if (!page.more || page.events.length === 0) break;
        after = page.events.at(-1)!.seq;
      }
    }
    const { pending } = await call<{ pending: number }>('gateway.status', {});
    socket.close();

    const counts: CrashCounts = {
      sent: 0,
      answered: 0,
      refused: 0,
      unanswered: 0,
      present: 0,
      lost: 0,
      duplicated: 0,
      mismatched: 0,
      refusedPresent: 0,
      unansweredPresent: 0,
      unknown: 0,
      duplicateAnswers: 0,
    };
    const known = new Set<string>();
    for (const event of this.events) {
      known.add(event.text);
      const fate = this.fates.get(event.n)!;
      const copies = stored.get(event.text) ?? [];
      if (fate.sends > 0) counts.sent++;
      if (copies.length > 0) counts.present++;
      if (copies.length > 1) {
        counts.duplicated++;
        problems.push(`${event.text}: stored ${copies.length} times (${copies.map((c) => `${c.sessionKey} seq ${c.seq}`).join(', ')})`);
      }
      counts.duplicateAnswers += fate.results.filter((r) => r.duplicate).length;
      const first = fate.results[0];
      if (first) {
        counts.answered++;
        if (copies.length === 0) {
          counts.lost++;
          problems.push(`${event.text}: answered (${first.eventId}, seq ${first.seq}) but not stored`);
        } else if (
          fate.results.some((r) => r.eventId !== first.eventId || r.seq !== first.seq || r.sessionKey !== event.sessionKey) ||
          copies[0]!.eventId !== first.eventId ||
          copies[0]!.seq !== first.seq ||
          copies[0]!.sessionKey !== event.sessionKey
        ) {
          counts.mismatched++;
          problems.push(`${event.text}: answered ${JSON.stringify(fate.results)} but stored ${JSON.stringify(copies)}`);
        }
      } else if (fate.refusals.length > 0) {
        counts.refused++;
        if (copies.length > 0) {
          counts.refusedPresent++;
          problems.push(`${event.text}: refused (${JSON.stringify(fate.refusals)}) but stored`);
        }
      } else if (fate.sends > 0) {
        counts.unanswered++;
        if (copies.length > 0) counts.unansweredPresent++;
      } else if (copies.length > 0) {
        problems.push(`${event.text}: never sent, yet stored`);
      }
    }
    for (const [text, copies] of stored) {
      if (known.has(text)) continue;
      counts.unknown++;
      problems.push(`${JSON.stringify(text)}: stored (${copies.length}x) but no request of the workload sent it`);
    }
    const storedTotal = [...stored.values()].reduce((sum, copies) => sum + copies.length, 0);
    if (pending !== storedTotal) problems.push(`gateway.status counts ${pending} pending events, the sessions hold ${storedTotal}`);
    return { counts, problems, pending };
  }
}

/** A small seeded PRNG (mulberry32): crash tests print their seed so a run can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

// ---------------------------------------------------------------- a gateway process with a file-size limit (a full disk without mounting one)

/**
 * The gateway binary under `ulimit -f <blocks>` (POSIX sh: 512-byte blocks): once a file it writes
 * reaches the limit, writes fail (EFBIG; Node ignores SIGXFSZ), which SQLite reports as an I/O
 * error: the same path through the store as a full disk, without root or a mount.
 */
export async function startGatewayProcessWithFileLimit(options: { dataDir?: string; fileSizeBlocks: number }): Promise<GatewayProcess> {
  const dataDir = options.dataDir ?? makeTempDir();
  const child = spawn(
    '/bin/sh',
    ['-c', `ulimit -f ${Math.floor(options.fileSizeBlocks)} && exec "$0" "$@"`, process.execPath, CLI_PATH, 'gateway', '--port', '0', '--data-dir', dataDir],
    { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return superviseGateway(child, dataDir);
}

// ---------------------------------------------------------------- small shared test helpers

let uniqueAgents = 0;
/** An agent id no other test uses, so each test sees only its own events and wakes. */
export function freshAgent(prefix: string): string {
  uniqueAgents++;
  return `${prefix}${uniqueAgents}`;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** system.event through a peer; throws unless it answers with a result. */
export async function publish(peer: Peer, params: Record<string, unknown>): Promise<RoutingResult> {
  return resultOf<RoutingResult>(await peer.call('system.event', params));
}
