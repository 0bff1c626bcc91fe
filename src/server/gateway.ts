/**
 * The gateway: an HTTP server whose upgrades become JSON-RPC connections. The only module that
 * imports `ws`. Owns start-up (data dir, token, store) and graceful shutdown.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ensureDataDir } from '../config/data-dir.js';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HOST,
  DEFAULT_MAX_PENDING_PER_SESSION,
  DEFAULT_PORT,
  MAX_FRAME_BYTES,
  MAX_SUBSCRIBER_BUFFER_BYTES,
  PING_INTERVAL_MS,
} from '../protocol/constants.js';
import { RpcDispatcher } from '../protocol/jsonrpc.js';
import { buildOpenRpcDocument } from '../protocol/openrpc.js';
import { openStore } from '../store/index.js';
import type { EventStore } from '../store/types.js';
import { VERSION } from '../version.js';
import { hasValidToken } from './auth.js';
import { CloseCode, Connection, type ConnectionContext } from './connection.js';
import { createHandlers } from './handlers.js';
import { DeliveryHub } from './hub.js';

export interface GatewayOptions {
  /** @default DEFAULT_HOST (127.0.0.1) */
  host?: string;
  /** 0 picks a free port. @default DEFAULT_PORT (18790) */
  port?: number;
  dataDir: string;
  /** @default DEFAULT_MAX_PENDING_PER_SESSION (1000) */
  maxPendingPerSession?: number;
  /** @default DEFAULT_HEARTBEAT_INTERVAL_MS (60 s) */
  heartbeatIntervalMs?: number;
  /** @default PING_INTERVAL_MS (30 s) */
  pingIntervalMs?: number;
  /** Unsent bytes past which a subscriber is cut with 1008. @default MAX_SUBSCRIBER_BUFFER_BYTES (4 MiB) */
  maxSubscriberBufferBytes?: number;
  /** Where operational messages go; the gateway never writes to stdout itself. */
  log?: (line: string) => void;
}

export interface Gateway {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** Stops accepting, answers in-flight calls, closes sockets with 1001, closes the store. */
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const host = options.host ?? DEFAULT_HOST;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const maxPendingPerSession = options.maxPendingPerSession ?? DEFAULT_MAX_PENDING_PER_SESSION;
  const maxBufferedBytes = options.maxSubscriberBufferBytes ?? MAX_SUBSCRIBER_BUFFER_BYTES;
  const token = ensureDataDir(options.dataDir);
  const store = openStore(options.dataDir, {
    maxPendingPerSession,
    onBackgroundError: (error) => log(`trace write failed: ${(error as Error)?.message ?? String(error)}`),
  });
  const hub = new DeliveryHub(store, {
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    // Replay pauses well before the cut-off, so a large backlog never gets its reader cut.
    replayHighWaterBytes: Math.floor(maxBufferedBytes / 4),
  });

  const connections = new Set<Connection>();
  const lifecycle = { closing: false };
  const handlers = createHandlers({
    store,
    hub,
    version: VERSION,
    dataDir: options.dataDir,
    startedAt: Date.now(),
    maxPendingPerSession,
    openrpc: buildOpenRpcDocument(VERSION),
    connectionCount: () => connections.size,
    isClosing: () => lifecycle.closing,
  });
  const dispatcher = new RpcDispatcher<ConnectionContext>(handlers, {
    onInternalError: (error, method) => log(`internal error in ${method}: ${(error as Error)?.stack ?? String(error)}`),
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  let nextConnectionId = 1;
  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    const connection = new Connection(nextConnectionId++, socket, request.socket.remoteAddress ?? 'unknown', dispatcher, {
      maxBufferedBytes,
    });
    connections.add(connection);
    // ws closes an oversized frame with 1009 itself; the error event only needs swallowing here.
    socket.on('error', () => {});
    socket.on('close', () => {
      connection.markClosed();
      connections.delete(connection);
      hub.dropConnection(connection.connectionId);
    });
  });
  const liveness = setInterval(() => {
    for (const connection of connections) connection.heartbeat();
  }, options.pingIntervalMs ?? PING_INTERVAL_MS);
  liveness.unref();

  const server = createServer((request, response) => {
    if (request.url === '/healthz' && request.method === 'GET') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    response
      .writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'Upgrade' })
      .end('switchboard speaks JSON-RPC 2.0 over WebSocket: connect with a WebSocket client and "Authorization: Bearer <token>".\n');
  });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (lifecycle.closing) return rejectUpgrade(socket, 503, 'gateway is shutting down');
    if (!hasValidToken(request, token)) {
      return rejectUpgrade(socket, 401, 'missing or invalid token: send "Authorization: Bearer <token>" (the token is in <data-dir>/token)');
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  });

  try {
    await listen(server, options.port ?? DEFAULT_PORT, host);
  } catch (error) {
    clearInterval(liveness);
    hub.close();
    await store.close();
    throw error;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? DEFAULT_PORT);
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  return {
    url: `ws://${urlHost}:${port}`,
    port,
    host,
    dataDir: options.dataDir,
    close: () => {
      clearInterval(liveness);
      hub.close();
      return (closed ??= shutdown(server, wss, connections, store, lifecycle));
    },
  };
}

async function shutdown(
  server: Server,
  wss: WebSocketServer,
  connections: Set<Connection>,
  store: EventStore,
  lifecycle: { closing: boolean },
): Promise<void> {
  lifecycle.closing = true;
  const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
  await Promise.all([...connections].map((connection) => connection.close(CloseCode.GOING_AWAY, 'gateway shutting down')));
  // A peer that never answers the close handshake must not hold shutdown hostage.
  const forceAfter = setTimeout(() => {
    for (const client of wss.clients) client.terminate();
    server.closeAllConnections();
  }, 2_000);
  await stopped;
  clearTimeout(forceAfter);
  wss.close();
  await store.close();
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function rejectUpgrade(socket: Duplex, status: 401 | 503, message: string): void {
  const reason = status === 401 ? 'Unauthorized' : 'Service Unavailable';
  const body = `${message}\n`;
  const extra = status === 401 ? 'WWW-Authenticate: Bearer realm="switchboard"\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n${extra}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
