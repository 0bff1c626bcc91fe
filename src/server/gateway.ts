/**
 * The gateway: one HTTP server whose upgrades become JSON-RPC connections and whose POST routes
 * are the HTTP ingress. The only module that imports `ws`. Owns start-up (data dir, token, store),
 * admission (token, rate limit, per-address connections) and graceful shutdown.
 */
import { createServer, maxHeaderSize, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIPv4, type AddressInfo, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  databasePath,
  ensureAdminToken,
  ensureDataDir,
  hasDatabase,
  MIN_ADMIN_TOKEN_LENGTH,
  readToken,
  removeWrittenToken,
  socketPath,
  tokenPath,
} from '../config/data-dir.js';
import { exposedFiles, replaceableDir } from '../config/private-files.js';
import {
  ANSWER_HIGH_WATER_BYTES,
  AUTH_FAILURE_WINDOW_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HOST,
  DEFAULT_IDEMPOTENCY_RETENTION_MS,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  DEFAULT_MAX_CONNECTIONS_PER_TOKEN,
  DEFAULT_MAX_PENDING_PER_SESSION,
  DEFAULT_MAX_UNAUTHENTICATED_SOCKETS,
  DEFAULT_PORT,
  ENV,
  HANDSHAKE_TIMEOUT_MS,
  MAX_AUTH_FAILURES_PER_WINDOW,
  MAX_FRAGMENTS_PER_MESSAGE,
  MAX_UNFINISHED_MESSAGE_BYTES,
  MAX_FRAME_BYTES,
  MAX_IN_FLIGHT_PER_CONNECTION,
  MAX_SUBSCRIBER_BUFFER_BYTES,
  PING_INTERVAL_MS,
  TOKEN_REVOKED_CLOSE,
} from '../protocol/constants.js';
import { echoed, mebibytes, type ErrorName, type RpcError } from '../protocol/errors.js';
import { printable } from '../protocol/printable.js';
import { RpcDispatcher } from '../protocol/jsonrpc.js';
import { METHODS } from '../protocol/methods.js';
import { buildOpenRpcDocument } from '../protocol/openrpc.js';
import { HAS_UNIX_SOCKETS } from '../protocol/socket-path.js';
import { credentialInQuery, paramNameKey, paramsInQuery } from '../protocol/url-query.js';
import { corruptStoreError, isCorruption, StoreFullError, StoreUnavailableError } from '../store/errors.js';
import { describeShortage } from '../store/free-space.js';
import { openStore } from '../store/index.js';
import { fitAnswerFrame } from '../store/read-budget.js';
import { VERSION } from '../version.js';
import { Authenticator, boundAgent } from './auth.js';
import { CapDrops } from './cap-drops.js';
import { CloseCode, Connection, type ConnectionOptions } from './connection.js';
import type { CallContext } from './context.js';
import { createHandlers, SHUTTING_DOWN_MESSAGE, toRpcError } from './handlers.js';
import { ambiguousHeaders, createHttpHandler, errorBody, refuseExpectation, requestPath, type Admission } from './http-ingress.js';
import { DeliveryHub } from './hub.js';
import { KEEP_ALIVE_LINGER_MS, KeptAliveConnections } from './kept-alive.js';
import { listenLocal, LOCAL_PEER, peerAddress, type LocalSocket } from './local-socket.js';
import { AuthFailureLimiter } from './rate-limit.js';
import { countedLog } from './counted-log.js';
import { FILES_KEPT_FROM_TCP, openFileLimit, tcpConnectionLimit } from './open-file-limit.js';
import { createTokenService, toScopedToken } from './tokens.js';
import { UnauthenticatedSockets } from './unauthenticated-sockets.js';
import { backgroundFailureLog, diskFullLog, storeFailureLog } from './store-failure-log.js';
import { UnfinishedMessages } from './unfinished-messages.js';

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
  /** Open WebSocket connections per remote address. @default DEFAULT_MAX_CONNECTIONS_PER_ADDRESS (1024) */
  maxConnectionsPerAddress?: number;
  /** Open WebSocket connections per scoped token, from all addresses; the admin token has no such bound. @default DEFAULT_MAX_CONNECTIONS_PER_TOKEN (256) */
  maxConnectionsPerToken?: number;
  /**
   * TCP connections open at once, from all addresses, HTTP ones included; past it a new one is
   * closed as it comes. The data dir's socket is not bounded by it. @default the open-file limit
   * less FILES_KEPT_FROM_TCP (256) where the system tells it (Linux), else none
   */
  maxTcpConnections?: number;
  /**
   * Sockets open without an authenticated request, from all addresses: connected but silent or
   * slow, refused, or idle between HTTP keep-alive requests. Past it the oldest of them is closed
   * for each new one (see unauthenticated-sockets.ts); authenticated WebSocket connections,
   * requests being served and the Unix socket's connections do not count. A whole number, at least 1, or startGateway throws a
   * RangeError. @default DEFAULT_MAX_UNAUTHENTICATED_SOCKETS (2048)
   */
  maxUnauthenticatedSockets?: number;
  /** Frames one connection may have unanswered; at it, the connection is read no further until one is answered. @default MAX_IN_FLIGHT_PER_CONNECTION (1024) */
  maxInFlightPerConnection?: number;
  /** What WebSocket messages and HTTP bodies not yet whole may hold, all together; past it, the holder of the most is closed with 1013 or answered 503 GATEWAY_BUSY. @default MAX_UNFINISHED_MESSAGE_BYTES (64 MiB) */
  maxUnfinishedMessageBytes?: number;
  /** How long idempotency keys answer repeats. @default DEFAULT_IDEMPOTENCY_RETENTION_MS (24 h) */
  idempotencyRetentionMs?: number;
  /** Bytes kept free on the data dir's disk: with less, system.event is refused with STORE_FULL; 0 refuses none. @default DEFAULT_MIN_FREE_DISK_BYTES (64 MiB) */
  minFreeDiskBytes?: number;
  /** How long an HTTP body may take to arrive. @default HTTP_BODY_TIMEOUT_MS (10 s) */
  httpBodyTimeoutMs?: number;
  /**
   * How long a client has after connecting to send its request headers, upgrade included: with
   * maxUnauthenticatedSockets, which bounds how many may wait, the bound on connections that never
   * authenticate. @default HANDSHAKE_TIMEOUT_MS (10 s)
   */
  handshakeTimeoutMs?: number;
  /**
   * The Unix socket to serve besides the TCP port; false for none (Windows has none). The CLI uses
   * the data dir's when it is given no URL. @default <dataDir>/gateway.sock
   */
  socketPath?: string | false;
  /** Where operational messages go; the gateway never writes to stdout itself. */
  log?: (line: string) => void;
}

export interface Gateway {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** The Unix socket it serves too; undefined when it has none (see GatewayOptions.socketPath). */
  readonly socketPath: string | undefined;
  /**
   * Stops accepting, answers in-flight calls, closes sockets (1001 going away, or 1012 when the
   * gateway is about to come back, so clients know to reconnect), checkpoints and closes the store.
   */
  close(options?: { restarting?: boolean }): Promise<void>;
}

/**
 * How long shutdown waits for peers to answer the close handshake (and HTTP clients to finish)
 * before cutting them: in-flight calls were already answered, so this only bounds politeness.
 */
const CLOSE_HANDSHAKE_GRACE_MS = 2_000;

/** Agents a slow consumer's log line names at most: an admin connection may subscribe to thousands. */
const SLOW_CONSUMER_AGENTS_NAMED = 5;

/** The path WebSocket upgrades are taken at; HTTP routes have the others (see http-ingress.ts). */
const WEBSOCKET_PATH = '/';

/** Each method's parameter names, which a request gives in its params and nowhere else. */
const PARAM_NAMES: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  Object.entries(METHODS).map(([method, { params }]) => [method, Object.keys(params.properties)]),
);

/**
 * What a request's body (or a WebSocket message) carries and its URL must not: every method's
 * params, and the JSON-RPC members that name the call. Not `id`, which proxies and client
 * libraries put in queries of their own.
 */
const BODY_MEMBER_KEYS: ReadonlySet<string> = new Set(
  [...Object.values(PARAM_NAMES).flat(), 'jsonrpc', 'method', 'params'].map(paramNameKey),
);

/**
 * The refusal of a request whose URL query names what the gateway reads from the body only, or
 * undefined. Told only to a request with a valid token, as the token is checked first.
 */
function misplacedParams(target: string): Extract<Admission, { admitted: false }> | undefined {
  const misplaced = paramsInQuery(target, BODY_MEMBER_KEYS);
  if (misplaced.length === 0) return undefined;
  const named = misplaced.map((name) => echoed(name)).join(', ');
  return {
    admitted: false,
    status: 400,
    error: 'PARAMS_IN_URL',
    message: `the URL query names ${named}, which the gateway reads only from the JSON body (a WebSocket's messages), never from the URL, where it would be ignored: move it into the body`,
  };
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const host = options.host ?? DEFAULT_HOST;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const maxPendingPerSession = options.maxPendingPerSession ?? DEFAULT_MAX_PENDING_PER_SESSION;
  const maxBufferedBytes = options.maxSubscriberBufferBytes ?? MAX_SUBSCRIBER_BUFFER_BYTES;
  const maxConnectionsPerAddress = options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  const maxConnectionsPerToken = options.maxConnectionsPerToken ?? DEFAULT_MAX_CONNECTIONS_PER_TOKEN;
  // The open-file limit, when it is what bounds TCP connections.
  const fileLimit = options.maxTcpConnections === undefined ? openFileLimit() : undefined;
  const maxTcpConnections = options.maxTcpConnections ?? tcpConnectionLimit(fileLimit);
  const unauthenticatedLimit = options.maxUnauthenticatedSockets ?? DEFAULT_MAX_UNAUTHENTICATED_SOCKETS;
  // Held to half the TCP connections: past that limit a new connection is dropped as it comes, so
  // silent sockets that filled it would lock every client out instead of being closed oldest
  // first, as the unauthenticated limit is meant to have them (review).
  const unauthenticatedRoom =
    maxTcpConnections === undefined ? unauthenticatedLimit : Math.min(unauthenticatedLimit, Math.max(1, Math.floor(maxTcpConnections / 2)));
  // Before the data dir is touched: a bad limit is the caller's mistake, and should leave nothing behind.
  const unauthenticated = new UnauthenticatedSockets({ limit: unauthenticatedRoom, log });
  ensureDataDir(options.dataDir);
  // A token file that holds no token is refused before the database is touched (a new one is
  // written only once the store is known to open: see below).
  const hadToken = readToken(options.dataDir) !== undefined;
  // A token from an earlier start beside no store: a restore that failed, a volume not mounted.
  const newStoreBesideOldToken = hadToken && !hasDatabase(options.dataDir);
  const backgroundFailures = backgroundFailureLog(log);
  const storeFailures = storeFailureLog(log);
  const diskFullRefusals = diskFullLog(log);
  const store = openStore(options.dataDir, {
    maxPendingPerSession,
    idempotencyRetentionMs: options.idempotencyRetentionMs ?? DEFAULT_IDEMPOTENCY_RETENTION_MS,
    ...(options.minFreeDiskBytes === undefined ? {} : { minFreeDiskBytes: options.minFreeDiskBytes }),
    onBackgroundError: (error) => backgroundFailures.happened(error),
    onWarning: (message) => log(`warning: ${message}`),
    // Both builds may say the same version: the log is where an operator learns why the older one refuses the data dir now (operator QA).
    onMigrated: (from, to) =>
      log(`migrated ${databasePath(options.dataDir)} from store schema ${from} to ${to}: a switchboard that knows only schema ${from} can no longer open it`),
    onRoomAgain: (availableBytes) => {
      // What was held back first, so that the log reads in order; and a refusal after this is told at once.
      diskFullRefusals.restart();
      log(`disk has room again: new events are taken${availableBytes === undefined ? '' : ` (${mebibytes(availableBytes)} free)`}`);
    },
    onWritesRecovered: (failedSince) => {
      // What was held back first, so that the log reads in order; and a failure after this is told at once.
      storeFailures.restart();
      log(`store writes go through again, after failing since ${new Date(failedSince).toISOString()}`);
    },
  });

  /** Open connections by their socket, which is `this` in the socket listeners below. */
  const connections = new Map<WebSocket, Connection>();
  const unfinishedMessages = new UnfinishedMessages(options.maxUnfinishedMessageBytes ?? MAX_UNFINISHED_MESSAGE_BYTES);
  const perAddress = new Map<string, number>();
  /** Open connections of each scoped token, by its id. */
  const perToken = new Map<string, number>();
  const lifecycle = { closing: false };
  const limiter = new AuthFailureLimiter();
  // Someone guessing tokens, or a client left with an old one: the operator hears of it (operator QA: only the client did).
  const lockouts = countedLog<string>(
    log,
    (count, last) =>
      `${count === 1 ? `${last} sent` : `${count} addresses (the last ${last}) each sent`} ${MAX_AUTH_FAILURES_PER_WINDOW} wrong or missing tokens within ${AUTH_FAILURE_WINDOW_MS / 1000} s: refused with 429 until those ${AUTH_FAILURE_WINDOW_MS / 1000} s are out (a right token is still let in)`,
  );
  let authenticator: Authenticator;
  let tokenWritten: boolean;
  let adminTokenLength: number;
  try {
    // The first read of the database: pages past the header may be corrupt, and this is where it shows.
    const scopedTokens = (await store.listTokens()).map(toScopedToken);
    // Once the store is known to open: a gateway that cannot (a newer schema, a corrupt file: a
    // backup that cannot be used) leaves no new admin token behind that no log line told of.
    const admin = ensureAdminToken(options.dataDir);
    tokenWritten = admin.written;
    adminTokenLength = admin.token.length;
    authenticator = new Authenticator(admin.token, scopedTokens);
  } catch (error) {
    await store.close().catch(() => {});
    throw asStartupError(error, options.dataDir);
  }
  for (const { file, mode } of exposedFiles([tokenPath(options.dataDir), databasePath(options.dataDir)])) {
    log(`warning: ${file} can be read by other users (mode 0${mode.toString(8)}): \`chmod 600 ${file}\` (the token is the admin key; the database holds every event)`);
  }
  const disk = store.freeDisk();
  if (disk.refusing) {
    log(`warning: ${describeShortage({ availableBytes: disk.availableBytes ?? 0, minFreeBytes: disk.minFreeBytes })}: new events are refused with STORE_FULL until there is room`);
  }
  const replaceable = replaceableDir(options.dataDir);
  if (replaceable !== undefined) {
    log(`warning: the data dir ${options.dataDir} ${replaceable}, who could replace the token or the database: use a dir of your own, mode 700`);
  }
  const hub = new DeliveryHub(store, {
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    // Replay pauses well before the cut-off, so a large backlog never gets its reader cut.
    replayHighWaterBytes: Math.floor(maxBufferedBytes / 4),
  });
  const closeConnectionsOf = (tokenId: string) => {
    let closed = 0;
    for (const connection of connections.values()) {
      // One closing already (a revoke just before this one) is not closed again, nor counted.
      if (connection.state === 'OPEN' && connection.principal.kind === 'agent' && connection.principal.tokenId === tokenId) {
        void connection.close(CloseCode.POLICY_VIOLATION, TOKEN_REVOKED_CLOSE.reason, { name: 'FORBIDDEN', message: 'this token was revoked; nothing was done' });
        closed++;
      }
    }
    return closed;
  };
  // Built again with the gateway's URL once it listens (--port 0 picks the port), before any call.
  let openrpc = buildOpenRpcDocument(VERSION);
  const capDrops = new CapDrops(log, maxPendingPerSession);
  const handlers = createHandlers({
    store,
    hub,
    tokens: createTokenService(store, authenticator, closeConnectionsOf, log),
    version: VERSION,
    dataDir: options.dataDir,
    startedAt: Date.now(),
    maxPendingPerSession,
    capDrops,
    openrpc: () => openrpc,
    connectionCount: (agentId) => {
      if (agentId === undefined) return connections.size;
      let count = 0;
      for (const connection of connections.values()) if (boundAgent(connection.principal) === agentId) count++;
      return count;
    },
    isClosing: () => lifecycle.closing,
  });
  const refusedNotifications = countedLog<{ error: RpcError; method: string; from: string }>(
    log,
    (count, { error, method, from }) =>
      // printable: the method and the message repeat what a client sent, and must not write lines of their own into the log (review).
      `refused ${count === 1 ? 'a notification' : `${count} notifications`} (requests without an id, which JSON-RPC answers with nothing: give system.event an id to hear its routing result), the last ${printable(echoed(method))} from ${from}: ${printable(error.message)}`,
  );
  const dispatcher = new RpcDispatcher<CallContext>(handlers, {
    paramNames: PARAM_NAMES,
    mapError: (error) => {
      if (error instanceof StoreUnavailableError) storeFailures.happened(error);
      if (error instanceof StoreFullError) diskFullRefusals.happened(error);
      return toRpcError(error);
    },
    onInternalError: (error, method) => log(`internal error in ${method}: ${(error as Error)?.stack ?? String(error)}`),
    onUnansweredError: (error, method, context) => refusedNotifications.happened({ error, method, from: context.remoteAddress }),
    onMessage: (context, requests) => fitAnswerFrame(context.readBudget, context.frameBytes, requests),
  });

  // The connection is closed after the answer (RFC 9112 section 9.6: the server says so first).
  const shuttingDown = (): Extract<Admission, { admitted: false }> | undefined =>
    lifecycle.closing ? { admitted: false, status: 503, error: 'SHUTTING_DOWN', message: SHUTTING_DOWN_MESSAGE, headers: { connection: 'close' } } : undefined;

  /** One decision for every ingress: refused before any RPC is read, or admitted as a principal. */
  const admit = (request: IncomingMessage): Admission => {
    const address = peerAddress(request.socket);
    const closing = shuttingDown();
    if (closing) return closing;
    if (credentialInQuery(request.url ?? '')) {
      return {
        admitted: false,
        status: 400,
        error: 'CREDENTIALS_IN_URL',
        message: 'tokens in the URL query are refused (they end up in logs): send "Authorization: Bearer <token>"',
      };
    }
    const principal = authenticator.authenticate(request.headers);
    if (principal) return misplacedParams(request.url ?? '') ?? { admitted: true, principal };
    const retryAfter = limiter.retryAfterSeconds(address);
    if (retryAfter > 0) {
      return {
        admitted: false,
        status: 429,
        error: 'RATE_LIMITED',
        message: `too many failed authentications from ${address}; retry in ${retryAfter} s`,
        headers: { 'retry-after': String(retryAfter) },
      };
    }
    if (limiter.recordFailure(address)) lockouts.happened(address);
    return {
      admitted: false,
      status: 401,
      error: 'UNAUTHORIZED',
      message: 'missing or invalid token: send "Authorization: Bearer <token>" (the admin token is in <data-dir>/token)',
      headers: { 'www-authenticate': 'Bearer realm="switchboard"' },
    };
  };
  /** An admitted HTTP request's socket is a client's until the request is answered (then IDLE). */
  const admitHttp = (request: IncomingMessage, response: ServerResponse): Admission => {
    const admission = admit(request);
    // 'close' comes once the response is sent, or its connection is gone before that.
    if (admission.admitted) response.once('close', unauthenticated.serve(request.socket));
    return admission;
  };

  // `connections` tracks the sockets: ws's own tracking would cost each one a Set entry and a close listener.
  // A subprotocol is selected only when it names JSON-RPC: ws would echo the first one a client
  // offers ("mqtt", "graphql-ws"), telling it the gateway speaks that (RFC 6455 section 4.2.2).
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    maxFragments: MAX_FRAGMENTS_PER_MESSAGE,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (offered: Set<string>) => [...offered].find((protocol) => JSON_RPC_SUBPROTOCOLS.has(protocol)) ?? false,
  });
  let nextConnectionId = 1;
  // One for all connections: a copy each would cost every idle connection an object.
  const connectionOptions: ConnectionOptions = {
    maxBufferedBytes,
    answerHighWaterBytes: ANSWER_HIGH_WATER_BYTES,
    maxInFlight: options.maxInFlightPerConnection ?? MAX_IN_FLIGHT_PER_CONNECTION,
    onSlowConsumer: (connection, unsentBytes) => {
      // The admin token is bound to no agent: its subscriptions say whose events went unread (operator QA).
      const bound = boundAgent(connection.principal);
      const agents = bound === undefined ? hub.agentsOf(connection.connectionId) : [bound];
      const named = agents.length > SLOW_CONSUMER_AGENTS_NAMED ? `${agents.slice(0, SLOW_CONSUMER_AGENTS_NAMED).join(', ')} and ${agents.length - SLOW_CONSUMER_AGENTS_NAMED} more` : agents.join(', ');
      const ofAgents = agents.length === 0 ? '' : ` (agent${agents.length === 1 ? '' : 's'} ${named})`;
      log(`cut connection ${connection.connectionId} from ${connection.remoteAddress}${ofAgents} as a slow consumer (1008): ${mebibytes(unsentBytes)} of pushes unsent; its events stay pending`);
    },
  };
  const accept = (socket: WebSocket, request: IncomingMessage, admission: Admission & { admitted: true }) => {
    const address = peerAddress(request.socket);
    const connection = new Connection(nextConnectionId++, socket, request.socket, address, admission.principal, dispatcher, connectionOptions);
    connections.set(socket, connection);
    (request.socket as ConnectionStream)[CONNECTION] = connection;
    countIn(perAddress, address, 1);
    if (admission.principal.kind === 'agent') countIn(perToken, admission.principal.tokenId, 1);
    // After ws's own: it has parsed the read when onRead counts what is left unfinished.
    request.socket.on('data', onRead);
    socket.on('message', onMessage);
    socket.on('pong', onPong);
    // ws closes an oversized frame with 1009 itself; the error event only needs swallowing here.
    socket.on('error', ignore);
    socket.on('close', onClose);
  };
  // The socket listeners are shared by every connection (ws calls them with the socket as `this`)
  // rather than closures of each one's own: those and their contexts were ~250 B per connection.
  function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
    connections.get(this)?.receive(data, isBinary);
  }
  function onRead(this: ConnectionStream): void {
    const connection = this[CONNECTION];
    if (connection) unfinishedMessages.set(connection, connection.unfinishedBytes());
  }
  function onPong(this: WebSocket): void {
    connections.get(this)?.pong();
  }
  function onClose(this: WebSocket): void {
    const connection = connections.get(this);
    if (!connection) return;
    connection.markClosed();
    connections.delete(this);
    unfinishedMessages.release(connection);
    countIn(perAddress, connection.remoteAddress, -1);
    if (connection.principal.kind === 'agent') countIn(perToken, connection.principal.tokenId, -1);
    hub.dropConnection(connection.connectionId);
  }
  const pingIntervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
  let lastBeat = performance.now();
  let judgedLast = true;
  const liveness = setInterval(() => {
    // A gateway that stalled (a long commit, a stopped process) gave the pongs to its last pings
    // no time to come: this round pings, and the next one judges, late or not (a gateway always
    // late must still cut the dead). Judged now, every connection would have been cut.
    const now = performance.now();
    const judge = now - lastBeat < pingIntervalMs * LATE_HEARTBEAT_FACTOR || !judgedLast;
    lastBeat = now;
    judgedLast = judge;
    // After the reads waiting: a timer runs first in a turn of the loop, before pongs already here.
    setImmediate(() => {
      if (lifecycle.closing) return;
      for (const connection of connections.values()) connection.heartbeat(judge);
    });
  }, pingIntervalMs);
  liveness.unref();

  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const server = createServer({
    // A client that connects and never finishes its request headers (or its upgrade), or sends
    // nothing at all, is answered 408 and dropped: Node starts the clock when the connection
    // opens, not at its first byte, so no timer per socket is needed (one would outlive the
    // upgrade: ws only clears it). Node checks at this interval, so it bounds how late past the
    // timeout that is.
    headersTimeout: handshakeTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, handshakeTimeoutMs),
    // Refused all the same, in JSON (see ambiguousHeaders).
    requireHostHeader: false,
  });
  // Node closes a connection past it as it is accepted, and says so with 'drop'.
  if (maxTcpConnections !== undefined) server.maxConnections = maxTcpConnections;
  const refusedConnections = countedLog<string | undefined>(
    log,
    (count, address) =>
      `refused ${count === 1 ? 'a TCP connection' : `${count} TCP connections`} (the last from ${address ?? 'an unknown address'}): ${maxTcpConnections} are open, all the gateway takes${fileLimit === undefined ? '' : ` under the open-file limit (${fileLimit}, less ${FILES_KEPT_FROM_TCP} kept for the data dir's socket and the store): raise it (ulimit -n; LimitNOFILE= under systemd)`}, or find who holds them`,
  );
  server.on('drop', (dropped?: { remoteAddress?: string }) => refusedConnections.happened(dropped?.remoteAddress));
  if (fileLimit !== undefined && (maxTcpConnections! < maxConnectionsPerAddress || unauthenticatedRoom < unauthenticatedLimit)) {
    log(
      `warning: the open-file limit (${fileLimit}) leaves room for ${maxTcpConnections} TCP connections (fewer than one address may open, ${maxConnectionsPerAddress}, or twice the sockets without an authenticated request, ${unauthenticatedLimit}, which are held to ${unauthenticatedRoom}): raise it (ulimit -n; LimitNOFILE= under systemd)`,
    );
  }
  // Node's own answer to a request its parser refuses is a bare status line; every other refusal
  // says why, in JSON, and a client told nothing took the gateway for some other server.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node's own handler: an answer already begun on this connection cannot be followed by another.
    const answering = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || answering?.headersSent === true) return void socket.destroy();
    const [status, message] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, `the request's headers are larger than ${maxHeaderSize} bytes: shorten its URL or headers`]
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, `the request's headers did not arrive within ${handshakeTimeoutMs} ms`]
          : [400, `the request is not HTTP/1.1 the gateway can read (${error.code ?? error.message})`];
    rejectRequest(socket, status, 'BAD_HTTP_REQUEST', message);
  });
  // Every socket counts from its accept until a request on it is admitted (see unauthenticated-sockets.ts),
  // but the Unix socket's: only the data dir's owner can connect to it (see local-socket.ts), and
  // a flood on the TCP port must not close the connections of the CLI, which calls over it.
  server.on('connection', (socket: Socket) => {
    if (peerAddress(socket) !== LOCAL_PEER) unauthenticated.accepted(socket);
  });
  const handleHttp = createHttpHandler({
    dispatcher,
    admit: admitHttp,
    isCurrent: (principal) => authenticator.isCurrent(principal),
    shuttingDown,
    unfinished: unfinishedMessages,
    ...(options.httpBodyTimeoutMs ? { bodyTimeoutMs: options.httpBodyTimeoutMs } : {}),
  });
  const keptAlive = new KeptAliveConnections();
  const received = (request: IncomingMessage, response: ServerResponse) => {
    countUnfinished(request, response);
    keptAlive.served(request.socket);
  };
  server.on('request', received);
  server.on('request', handleHttp);
  // Node would answer "Expect: 100-continue" with 100 before the handler runs: a client without a
  // valid token would be told to send its body, only to get 401. The handler says 100 itself, once
  // the request is admitted (RFC 9110 section 10.1.1).
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    received(request, response);
    handleHttp(request, response, true);
  });
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    received(request, response);
    refuseExpectation(request, response);
  });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node hands the socket over without its error listener: a peer that resets the connection
    // (ECONNRESET) while it is refused would be an unhandled 'error' event, and end the process.
    socket.on('error', ignore);
    if (!asksForWebSocket(request)) return replayAsHttp(server, request, socket, head);
    // Node hands over an upgrade pipelined behind requests as soon as it is read: its 101 (or its
    // refusal) would go out before their answers, which would then land in the WebSocket's stream
    // (RFC 9112 section 9.3.2: answers in the order of the requests; QA).
    const pending = unfinished.get(socket);
    if (pending) pending.whenDone.push(() => upgradeToWebSocket(request, socket, head));
    else upgradeToWebSocket(request, socket, head);
  });

  function upgradeToWebSocket(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const malformed = badHandshake(request);
    if (malformed) return rejectRequest(socket, malformed.status, 'BAD_HANDSHAKE', malformed.message, malformed.headers);
    // Before the origin check, which reads the Host (the HTTP handler checks it for the rest).
    const ambiguous = ambiguousHeaders(request);
    if (ambiguous !== undefined) return rejectRequest(socket, 400, 'BAD_HTTP_REQUEST', ambiguous);
    if (!sameOrigin(request)) {
      return rejectRequest(socket, 403, 'CROSS_ORIGIN', `an upgrade from a page of ${printableOrigin(request.headers.origin!)} is refused: browsers are not clients of the gateway`);
    }
    // Upgrades have one path, as POST routes have theirs: a client given a wrong path (--url
    // ws://host:port/sb) must fail for a watch as it does for a one-shot call, not half work.
    const path = requestPath(request);
    if (path !== WEBSOCKET_PATH) {
      return rejectRequest(socket, 404, 'PATH_NOT_FOUND', `no WebSocket endpoint at ${echoed(path)}: connect to ${WEBSOCKET_PATH}, the gateway's root (a query string is fine)`);
    }
    const admission = admit(request);
    if (!admission.admitted) return rejectRequest(socket, admission.status, admission.error, admission.message, admission.headers);
    const address = peerAddress(request.socket);
    const tooMany = (holder: string, limit: number, advice = '') =>
      rejectRequest(socket, 429, 'RATE_LIMITED', `${holder} already has ${limit} connections open; close some first${advice}`, { 'retry-after': '1' });
    if ((perAddress.get(address) ?? 0) >= maxConnectionsPerAddress) return tooMany(address, maxConnectionsPerAddress);
    const { principal } = admission;
    if (principal.kind === 'agent' && (perToken.get(principal.tokenId) ?? 0) >= maxConnectionsPerToken) {
      return tooMany(`token ${principal.tokenId}`, maxConnectionsPerToken, ', or give each agent process a token of its own');
    }
    // RFC 6455 section 4.2.1 asks that Upgrade contain "websocket" (RFC 9110 section 7.8 allows a
    // list, "websocket, h2c"); ws refuses anything but the one word, in plain text.
    request.headers.upgrade = 'websocket';
    wss.handleUpgrade(request, socket, head, (ws) => {
      // From here ws handles the socket's errors: a listener kept on every connection costs heap.
      socket.off('error', ignore);
      unauthenticated.upgraded(request.socket);
      accept(ws, request, admission);
    });
  }

  try {
    await listen(server, options.port ?? DEFAULT_PORT, host);
  } catch (error) {
    clearInterval(liveness);
    unauthenticated.close();
    hub.close();
    // It guarded nothing, and the start that writes the next one says so. Taken back while the
    // store's lock is held: a start waiting for that lock must not read it as its own.
    if (tokenWritten) removeWrittenToken(options.dataDir);
    await store.close();
    throw error;
  }
  // Once listening: a start that fails says why alone.
  // A new admin token refuses every client holding the old one: the log says why they are refused.
  if (tokenWritten) log(`wrote a new admin token to ${tokenPath(options.dataDir)} (no token file was there): clients of this data dir read it there; others need it given`);
  if (adminTokenLength < MIN_ADMIN_TOKEN_LENGTH) {
    log(
      `warning: the admin token in ${tokenPath(options.dataDir)} is ${adminTokenLength} characters long, short enough to be guessed by whoever can reach the gateway: write one of at least ${MIN_ADMIN_TOKEN_LENGTH}, or remove the file and restart to have a random one written`,
    );
  }
  if (newStoreBesideOldToken) {
    log(
      `warning: started with a new, empty store: ${databasePath(options.dataDir)} was missing or empty, though a token file is there; if a gateway ran on this data dir before (it was moved or restored), its events are not here: stop the gateway and put its switchboard.db (and switchboard.db-wal) back`,
    );
  }
  // The address bound, not --host as written: `localhost` and `127.1` are loopback too.
  if (!isLoopback((server.address() as AddressInfo).address)) {
    log(`warning: listening on ${host}, which other machines may reach: the token is all that guards the gateway, and nothing is encrypted; put a TLS proxy in front of it, or keep to ${DEFAULT_HOST}`);
  }
  const local = options.socketPath === false || !HAS_UNIX_SOCKETS ? undefined : await listenLocal(options.socketPath ?? socketPath(options.dataDir), server);
  if (local && 'problem' in local) {
    log(`warning: no Unix socket in the data dir (${local.problem}): the CLI reaches this gateway only when given its URL (--url or ${ENV.url}) and its token (${ENV.token})`);
  }
  const localSocket = local && 'path' in local ? local : undefined;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? DEFAULT_PORT);
  const url = wsUrl(host, port);
  openrpc = buildOpenRpcDocument(VERSION, reachableUrls(url, (address as AddressInfo).address, port));
  // Once listening, as a start that fails must change nothing: a store opened with a lower
  // --max-pending than its events were stored under drops the excess, and the log says so.
  void store.dropOverCap().then(
    ({ events, sessions, finished }) => {
      if (events === 0) return;
      const rest = finished ? '' : '; stopped before the rest, which the next start drops';
      const ofSessions = sessions === 1 ? 'of 1 session' : `of ${sessions} sessions`;
      log(`dropped ${events} event${events === 1 ? '' : 's'} ${ofSessions} past --max-pending ${maxPendingPerSession}, the oldest (event.trace shows each as dropped)${rest}`);
    },
    (error: unknown) => log(`could not drop the events past --max-pending ${maxPendingPerSession}: ${(error as Error)?.message ?? String(error)}; each session's next event drops them`),
  );

  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    host,
    dataDir: options.dataDir,
    socketPath: localSocket?.path,
    close: ({ restarting = false } = {}) =>
      (closed ??= (async () => {
        lifecycle.closing = true;
        clearInterval(liveness);
        hub.close();
        // A backup in flight would hold its connection's close (it waits for calls in flight) for
        // as long as it takes: stopped, it is answered SHUTTING_DOWN, its file removed.
        store.stopBackups();
        try {
          await shutdown(server, localSocket, wss, connections, keptAlive, restarting);
        } finally {
          // Once nothing is accepted: a flood goes on while the shutdown lingers.
          unauthenticated.close();
        }
        try {
          await store.close();
        } finally {
          storeFailures.flush();
          diskFullRefusals.flush();
          backgroundFailures.flush();
          refusedNotifications.flush();
          refusedConnections.flush();
          capDrops.flush();
          lockouts.flush();
        }
      })()),
  };
}

/**
 * Let each connection answer what it has in flight, then close it, and stop accepting. Until HTTP
 * connections kept alive have closed (or KEEP_ALIVE_LINGER_MS), and WebSocket clients have
 * answered the close (or CLOSE_HANDSHAKE_GRACE_MS), the gateway still accepts, and answers every
 * request 503 SHUTTING_DOWN: a publisher's request already sent over one, or to the listener, was
 * reset when they closed at once (QA); and while a client slow to close held the shutdown, a CLI
 * found no socket, was told no gateway ran, and a new one could not start on the data dir still
 * held (README QA).
 */
async function shutdown(
  server: Server,
  localSocket: LocalSocket | undefined,
  wss: WebSocketServer,
  connections: ReadonlyMap<WebSocket, Connection>,
  keptAlive: KeptAliveConnections,
  restarting: boolean,
): Promise<void> {
  const [code, reason] = restarting ? [CloseCode.SERVICE_RESTART, 'gateway restarting'] : [CloseCode.GOING_AWAY, 'gateway shutting down'];
  const refusal = { name: 'SHUTTING_DOWN', message: SHUTTING_DOWN_MESSAGE } as const;
  await Promise.all([
    ...[...connections.values()].map((connection) => connection.close(code, reason, refusal)),
    keptAlive.closedOrAfter(KEEP_ALIVE_LINGER_MS),
  ]);
  // A peer that never answers the close handshake must not hold shutdown hostage.
  let forced = false;
  const forceAfter = setTimeout(() => {
    forced = true;
    for (const socket of connections.keys()) socket.terminate();
    server.closeAllConnections();
  }, CLOSE_HANDSHAKE_GRACE_MS);
  // A closed one has left the map (onClose).
  await Promise.all([...connections.keys()].map((socket) => new Promise((resolve) => socket.once('close', resolve))));
  // The socket's connections are the HTTP server's too, but its listener counts them for itself.
  // Closing the server closes its idle connections too.
  const stopped = Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), localSocket?.close()]);
  if (forced) server.closeAllConnections();
  await stopped;
  clearTimeout(forceAfter);
  wss.close();
}

/** A corrupt database found on the first read is an open failure, and says what to do about it. */
function asStartupError(error: unknown, dataDir: string): unknown {
  if (!(error instanceof StoreUnavailableError) || !isCorruption(error.sqliteCode)) return error;
  return corruptStoreError(databasePath(dataDir), error.sqliteCode, error);
}

function wsUrl(host: string, port: number): string {
  return `ws://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Where clients can reach the gateway, for rpc.discover: `url` as listened on, or, listening on
 * every address (0.0.0.0, or :: which takes IPv4 too), the machine's own addresses, loopback ones
 * last: OpenRPC tools take the first server's URL for where to connect, and neither
 * `ws://0.0.0.0` nor `ws://127.0.0.1` is that for another machine. Link-local IPv6 addresses are
 * left out: they mean nothing without the client's zone. Read once, when the gateway starts.
 */
function reachableUrls(url: string, bound: string, port: number): string[] {
  if (bound !== '0.0.0.0' && bound !== '::') return [url];
  const addresses = Object.values(networkInterfaces())
    .flatMap((entries) => entries ?? [])
    .filter(({ family, address }) => family === 'IPv4' || (bound === '::' && !/^fe[89ab]/i.test(address)))
    .map(({ address }) => address)
    .sort((a, b) => Number(isLoopback(a)) - Number(isLoopback(b)));
  return addresses.length > 0 ? addresses.map((address) => wsUrl(address, port)) : [url];
}

/** Whether a bound address is this machine's alone to reach: a loopback one. */
function isLoopback(address: string): boolean {
  if (isIPv4(address)) return address.startsWith('127.');
  return address === '::1' || /^::ffff:127\./i.test(address);
}

/**
 * Subprotocol names clients use for JSON-RPC over WebSocket: one that asks for it gets it back, and
 * a browser (which fails a handshake whose offered protocols all go unanswered) can connect.
 */
const JSON_RPC_SUBPROTOCOLS: ReadonlySet<string> = new Set(['jsonrpc-2.0', 'jsonrpc', 'json-rpc', 'jsonrpc2']);

/** Whether an upgrade request asks for WebSocket; ws refuses one that names it among others. */
function asksForWebSocket(request: IncomingMessage): boolean {
  return /(^|,)\s*websocket\s*(,|$)/i.test(request.headers.upgrade ?? '');
}

/**
 * Hop-by-hop headers of an upgrade to another protocol, left out when the request is read again as
 * plain HTTP: without Upgrade, the server reads it as any request.
 */
const UPGRADE_HEADERS = new Set(['connection', 'upgrade', 'http2-settings']);

/**
 * Responses of a connection not finished yet (HTTP/1.1 pipelining), and what waits for the last
 * of them: a request replayed by replayAsHttp gets a parser of its own, whose answer Node would
 * queue behind a response of the old parser's forever.
 */
const unfinished = new WeakMap<Duplex, { count: number; whenDone: Array<() => void> }>();

function countUnfinished(request: IncomingMessage, response: ServerResponse): void {
  const socket = request.socket;
  const entry = unfinished.get(socket) ?? { count: 0, whenDone: [] };
  entry.count++;
  unfinished.set(socket, entry);
  // 'close' as well as 'finish': a response cut short by its connection never finishes.
  let counted = true;
  const done = () => {
    if (!counted) return;
    counted = false;
    if (--entry.count > 0) return;
    unfinished.delete(socket);
    for (const resume of entry.whenDone) resume();
  };
  response.once('finish', done);
  response.once('close', done);
}

/**
 * A request that asks to upgrade to another protocol than WebSocket (h2c: curl --http2 and Java's
 * HttpClient ask for it on every http:// request) is a plain HTTP request whose Upgrade the server
 * may ignore (RFC 9110 section 7.8). Node hands every upgrade to the 'upgrade' listener, so the
 * request is put back on its socket without those headers, and the server reads it again, with
 * what follows it (its body, and requests pipelined behind it), once the answers before it are out.
 */
function replayAsHttp(server: Server, request: IncomingMessage, socket: Duplex, head: Buffer): void {
  const lines = [`${request.method} ${request.url} HTTP/${request.httpVersion}`];
  const raw = request.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!UPGRADE_HEADERS.has(raw[i]!.toLowerCase())) lines.push(`${raw[i]}: ${raw[i + 1]}`);
  }
  // Node decodes header bytes as latin1: encoded the same way, they are the bytes that came.
  const replay = () => {
    socket.unshift(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]));
    server.emit('connection', socket);
  };
  // Meanwhile bytes that arrive wait in the socket, behind the request (Node leaves an upgraded
  // socket with no reader), and the replayed request goes back in front of them.
  const pending = unfinished.get(socket);
  if (pending) pending.whenDone.push(replay);
  else replay();
}

/**
 * Whether the upgrade comes from no web page, or from one of the gateway's own origin: only
 * browsers send Origin (RFC 6455 section 10.2), with the page's origin; clients such as Python's
 * websocket-client send the URL they connect to, which names the Host. A page of another site
 * could otherwise open a socket with whatever credentials its browser would attach (cross-site
 * WebSocket hijacking); none can today, as the gateway never challenges Basic, and this keeps it so.
 * An origin that is no URL (a sandboxed page's "null") is another origin.
 */
function sameOrigin(request: IncomingMessage): boolean {
  const { origin, host } = request.headers;
  if (origin === undefined) return true;
  if (!URL.canParse(origin)) return false;
  const page = new URL(origin);
  // A reverse proxy may put its upstream's address in Host and the public one in X-Forwarded-Host,
  // which no browser page can set on a WebSocket.
  const forwardedHeader = request.headers['x-forwarded-host'];
  const forwarded = (Array.isArray(forwardedHeader) ? forwardedHeader[0] : forwardedHeader)?.split(',', 1)[0]!.trim();
  // The host and port, not the scheme: behind a TLS proxy the gateway's own origin is https. A
  // Host without a port has the page's scheme's default.
  return [host, forwarded].some((name) => name !== undefined && URL.canParse(`${page.protocol}//${name}`) && new URL(`${page.protocol}//${name}`).host === page.host);
}

/** An Origin header as it may be shown: at most 100 characters of it, escaped as JSON. */
function printableOrigin(origin: string): string {
  return JSON.stringify(origin.length > 100 ? `${origin.slice(0, 100)}...` : origin);
}

/** Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 section 4.1), as ws checks it. */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

/** A subprotocol name (RFC 6455 section 4.1: a token of RFC 9110 section 5.6.2). */
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Why an upgrade request is not an RFC 6455 handshake (section 4.2.1), if it is not. Checked here,
 * before ws sees it: ws answers what it refuses in plain text, without a code, lets HTTP/1.0 and a
 * missing Host through, and takes version 8 (a 2011 draft) as well as 13. Section 4.4 asks for a
 * 426 naming the versions spoken when the version is not one of them. Section 4.1 has the offered
 * subprotocols non-empty tokens, each named once.
 */
function badHandshake(request: IncomingMessage): { status: 400 | 426; message: string; headers?: Record<string, string> } | undefined {
  const { method, headers } = request;
  if (method !== 'GET') return { status: 400, message: `a WebSocket handshake is a GET request, not ${method}` };
  if (request.httpVersionMajor < 1 || (request.httpVersionMajor === 1 && request.httpVersionMinor < 1)) {
    return { status: 400, message: 'a WebSocket handshake needs HTTP/1.1 or later' };
  }
  if (headers.host === undefined) return { status: 400, message: 'the WebSocket handshake has no Host header' };
  const key = headers['sec-websocket-key'];
  if (key === undefined || !WEBSOCKET_KEY.test(key.trim())) {
    return { status: 400, message: `${key === undefined ? 'no' : 'an invalid'} Sec-WebSocket-Key header: it must be 16 random bytes in base64` };
  }
  const protocols = headers['sec-websocket-protocol'];
  if (protocols !== undefined) {
    // Spaces and tabs around the commas only (RFC 9110 section 5.6.1, as ws reads them): trim()
    // would take an NBSP too, which ws refuses in plain text.
    const names = protocols.split(',').map((name) => name.replace(/^[ \t]+|[ \t]+$/g, ''));
    if (!names.every((name) => HTTP_TOKEN.test(name))) {
      return { status: 400, message: `Sec-WebSocket-Protocol ${JSON.stringify(protocols)} is not a list of protocol names: tokens, separated by commas` };
    }
    if (new Set(names).size < names.length) {
      return { status: 400, message: `Sec-WebSocket-Protocol ${JSON.stringify(protocols)} names a protocol more than once` };
    }
  }
  const version = headers['sec-websocket-version'];
  if (version?.trim() !== '13') {
    return {
      status: 426,
      message: `${version === undefined ? 'no Sec-WebSocket-Version header' : `Sec-WebSocket-Version ${JSON.stringify(version)}`}: this gateway speaks version 13 (RFC 6455)`,
      // RFC 9110 section 15.5.22: a 426 MUST say, in Upgrade, what to upgrade to.
      headers: { 'sec-websocket-version': '13', upgrade: 'websocket' },
    };
  }
  return undefined;
}

/** Shared by every connection's error listener, so none needs a closure of its own. */
function ignore(): void {}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * A heartbeat this many intervals after the last one found the gateway stalled: Node's timers
 * drift by milliseconds, a stall by far more, and half an interval tells the two apart.
 */
const LATE_HEARTBEAT_FACTOR = 1.5;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};

/** Answers a request with an HTTP error and its JSON body (not JSON-RPC's: no call was read), then closes. */
function rejectRequest(socket: Duplex, status: number, name: ErrorName, message: string, headers: Record<string, string> = {}): void {
  const body = errorBody('websocket', name, message);
  // RFC 9110 section 7.8: an Upgrade header goes with "upgrade" in Connection, for proxies not to forward it.
  const connection = 'upgrade' in headers ? 'Upgrade, close' : 'close';
  // Connection is this function's to say: the handshake's connection always closes.
  const extra = Object.entries(headers)
    .filter(([name]) => name !== 'connection')
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  endHandshake(
    socket,
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: ${connection}\r\n\r\n${body}`,
  );
}

/**
 * Answers a refused handshake and closes the connection once the answer is written, as ws does:
 * ended but not destroyed, the socket would stay open for as long as the peer keeps its side open.
 */
function endHandshake(socket: Duplex, response: string): void {
  socket.once('finish', () => socket.destroy());
  socket.end(response);
}

/**
 * The connection on the socket under its WebSocket, for onRead, whose `this` is that socket: a
 * property, not a Map entry or a listener of its own, which every idle connection would pay for.
 */
const CONNECTION = Symbol('switchboard.connection');
type ConnectionStream = Socket & { [CONNECTION]?: Connection };

/** Adds `by` to the count of `key`, which is removed at 0: a map of counts holds only what is open. */
function countIn(counts: Map<string, number>, key: string, by: 1 | -1): void {
  const count = (counts.get(key) ?? 0) + by;
  if (count <= 0) counts.delete(key);
  else counts.set(key, count);
}
