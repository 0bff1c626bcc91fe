/**
 * One server under test per process: `node server.js <kind>`. Kinds:
 *
 * - `switchboard`: the real gateway (startGateway) on a fresh temp data dir, durable store and all.
 * - `echo`: raw `ws`, every frame sent straight back. The ceiling for "frames in, frames out".
 * - `rpcws`: rpc-websockets' Server with an in-memory `system.event` (no validation, no disk).
 * - `relay`: raw `ws` that forwards a system.event frame to the sockets subscribed to its session
 *   or agent (path `/sub/<key>`): the push path with no work in it.
 *
 * Talks to the parent over IPC: "ready" {url, token} once listening; answers "heap" (heap after a
 * full GC; needs --expose-gc), "snapshot" {file} (a heap snapshot, for digging into the heap
 * figure), "metrics" (the store's group-commit counters) and "loop-start" /
 * "loop-stop" (event-loop delay while a load ran: how long the loop was blocked, e.g. by a
 * commit); "stop" closes everything, removes the temp dir and exits (so --cpu-prof gets to write
 * its profile).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Server as RpcWebSocketsServer } from 'rpc-websockets';
import { writeHeapSnapshot } from 'node:v8';
import { WebSocketServer, type WebSocket } from 'ws';
import { startGateway } from '../../src/server/gateway.js';
import { SqliteEventStore } from '../../src/store/sqlite.js';
import { failTo, hear, tell } from '../lib/child.js';
import { agentOf } from '../lib/workload.js';

const HOST = '127.0.0.1';

interface Running {
  url: string;
  token: string;
  /** switchboard's: the CLI finds the token and the gateway's socket there. */
  dataDir?: string;
  metrics(): { commits: number; opsCommitted: number } | null;
  close(): Promise<void>;
}

async function main(kind: string, maxPendingPerSession: number | undefined): Promise<void> {
  const running = await start(kind, maxPendingPerSession);
  let loop: IntervalHistogram | undefined;
  process.on('message', (message: { type: string }) => {
    if (message.type === 'heap') tell({ type: 'heap', ...heap() });
    if (message.type === 'metrics') tell({ type: 'metrics', metrics: running.metrics() });
    if (message.type === 'snapshot') tell({ type: 'snapshot', file: writeHeapSnapshot(String((message as { file?: unknown }).file)) });
    if (message.type === 'loop-start') {
      // 1 ms resolution: blocking shorter than that does not matter to a 5 ms target.
      loop = monitorEventLoopDelay({ resolution: 1 });
      loop.enable();
      tell({ type: 'loop-started' });
    }
    if (message.type === 'loop-stop' && loop) {
      loop.disable();
      const toMs = (ns: number) => ns / 1e6;
      tell({ type: 'loop', p50: toMs(loop.percentile(50)), p99: toMs(loop.percentile(99)), max: toMs(loop.max), mean: toMs(loop.mean) });
      loop = undefined;
    }
  });
  tell({ type: 'ready', url: running.url, token: running.token, dataDir: running.dataDir, pid: process.pid });
  await hear('stop');
  await running.close();
  tell({ type: 'stopped' });
  process.exit(0);
}

function start(kind: string, maxPendingPerSession: number | undefined): Promise<Running> {
  switch (kind) {
    case 'switchboard':
      return startSwitchboard(maxPendingPerSession);
    case 'echo':
      return startRaw((wss) =>
        wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))),
      );
    case 'relay':
      return startRaw(relay);
    case 'rpcws':
      return startRpcWebSockets();
    default:
      throw new Error(`unknown server kind "${kind}": expected switchboard, echo, rpcws or relay`);
  }
}

/** Heap after full collections; a few rounds, since one GC can leave weakly held garbage behind. */
function heap(): { heapUsed: number; rss: number; external: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('start the server with --expose-gc to measure heap');
  for (let i = 0; i < 4; i++) gc();
  const usage = process.memoryUsage();
  return { heapUsed: usage.heapUsed, rss: usage.rss, external: usage.external };
}

// ---------------------------------------------------------------- switchboard

async function startSwitchboard(maxPendingPerSession: number | undefined): Promise<Running> {
  // The gateway does not expose its store; keep a handle on it to read the group-commit counters.
  let store: SqliteEventStore | undefined;
  const open = SqliteEventStore.open.bind(SqliteEventStore);
  SqliteEventStore.open = (file, options) => (store = open(file, options));

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-'));
  const gateway = await startGateway({
    host: HOST,
    port: 0,
    dataDir,
    ...(maxPendingPerSession === undefined ? {} : { maxPendingPerSession }),
    log: (line) => process.stderr.write(`gateway: ${line}\n`),
  });
  const token = fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim();
  return {
    url: gateway.url,
    token,
    dataDir,
    metrics: () => (store && typeof store.storeMetrics === 'function' ? store.storeMetrics() : null),
    close: async () => {
      await gateway.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- raw ws

async function startRaw(setup: (wss: WebSocketServer) => void): Promise<Running> {
  // The same shape as the gateway: an HTTP server whose upgrades become WebSockets.
  const server = createServer((_request, response) => response.writeHead(426).end());
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1024 * 1024 });
  server.on('upgrade', (request: IncomingMessage, socket, head) =>
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request)),
  );
  setup(wss);
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://${HOST}:${port}`,
    token: 'unused',
    metrics: () => null,
    close: () => closeAll(wss, () => new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

/** Forwards each system.event request to the subscribers of its session and of its agent. */
function relay(wss: WebSocketServer): void {
  const subscribers = new Map<string, Set<WebSocket>>();
  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    const url = request.url ?? '/';
    if (url.startsWith('/sub/')) {
      const key = decodeURIComponent(url.slice(5));
      let set = subscribers.get(key);
      if (!set) subscribers.set(key, (set = new Set()));
      set.add(socket);
      socket.on('close', () => set.delete(socket));
      return;
    }
    socket.on('message', (data) => {
      const text = (data as Buffer).toString();
      const { id, params } = JSON.parse(text) as { id: number; params: { sessionKey: string } };
      for (const key of [params.sessionKey, agentOf(params.sessionKey)]) {
        for (const subscriber of subscribers.get(key) ?? []) subscriber.send(text);
      }
      socket.send(`{"jsonrpc":"2.0","id":${id},"result":{"relayed":true}}`);
    });
  });
}

async function closeAll(wss: WebSocketServer, closeServer: () => Promise<void>): Promise<void> {
  for (const client of wss.clients) client.terminate();
  wss.close();
  await closeServer();
}

// ---------------------------------------------------------------- rpc-websockets

interface MemoryEvent {
  eventId: string;
  seq: number;
  text: string;
  storedAt: number;
}

/**
 * rpc-websockets with a `system.event` that does the gateway's work minus validation and
 * durability: route by key, append to an in-memory queue per session, answer a routing result
 * of the same shape.
 */
async function startRpcWebSockets(): Promise<Running> {
  const server = new RpcWebSocketsServer({ host: HOST, port: 0, perMessageDeflate: false, maxPayload: 1024 * 1024 });
  const sessions = new Map<string, { lastSeq: number; events: MemoryEvent[] }>();
  server.register('system.event', (params) => {
    const { text, sessionKey, mode } = params as { text: string; sessionKey: string; mode?: string };
    const parts = sessionKey.split(':');
    let session = sessions.get(sessionKey);
    if (!session) sessions.set(sessionKey, (session = { lastSeq: 0, events: [] }));
    const event: MemoryEvent = { eventId: randomUUID(), seq: ++session.lastSeq, text: text.trim(), storedAt: Date.now() };
    session.events.push(event);
    const agentId = parts[1] ?? 'main';
    return {
      eventId: event.eventId,
      sessionKey,
      requestedSessionKey: sessionKey,
      fallback: null,
      route: { agentId, kind: parts[parts.length - 2] ?? 'main', channel: parts[2] ?? null, account: null, peer: null, id: parts[4] ?? null, thread: null, topic: null },
      mode: mode ?? 'next-heartbeat',
      queue: { status: 'queued', seq: event.seq, depth: session.events.length, replaced: null, dropped: [] },
      wake: { status: 'no-agent-connected', message: `no connection subscribes to agent "${agentId}"; the event waits in the session queue` },
      receivers: 0,
      duplicate: false,
      storedAt: new Date(event.storedAt).toISOString(),
    };
  });
  await new Promise<void>((resolve) => server.on('listening', () => resolve()));
  const { port } = server.wss.address() as AddressInfo;
  return {
    url: `ws://${HOST}:${port}`,
    token: 'unused',
    metrics: () => null,
    close: async () => {
      for (const client of server.wss.clients) client.terminate();
      await server.close();
    },
  };
}

main(process.argv[2] ?? '', process.argv[3] === undefined ? undefined : Number(process.argv[3])).catch(failTo(`bench server ${process.argv[2] ?? ''}`));
