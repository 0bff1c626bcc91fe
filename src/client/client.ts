/**
 * The typed client shared by the CLI, agents and IDE plugins. One socket, calls correlated by
 * id, a timeout and an AbortSignal per call; on close every pending call is rejected with a
 * ConnectionError, never left hanging. With `reconnect`, a lost connection is re-opened with
 * backoff and every subscription resumes after the last event it saw, so none is seen twice.
 */
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS, MAX_CALL_TIMEOUT_MS, MAX_FRAME_BYTES, TOKEN_REVOKED_CLOSE } from '../protocol/constants.js';
import type { ErrorName } from '../protocol/errors.js';
import type { MethodName, NotificationArgs, NotificationName, NotificationParams, ParamsOf, ResultOf } from '../protocol/methods.js';
import type { AgentWakeNotification, StoredEvent } from '../protocol/wire-types.js';
import { notificationProblem, resultOf, unexpectedAnswer } from './answer.js';
import { canonicalKey, SubscriptionCursors } from './cursors.js';
import { ConnectionError, errnoCode, RpcCallError } from './errors.js';
import { EventQueue } from './event-queue.js';
import { onAbort, wait } from './abort.js';
import { localGatewayUrl } from './local-gateway.js';
import { durationOption, silenceFoundWithinMs, subscribeOptions, subscribeTargetOption, tokenOption } from './options.js';
import type { OpenOptions, Socket } from './transport.js';

/**
 * Reconnect backoff: the first retry comes quickly (a restarting gateway is back within a
 * second), later ones at most every 5 s so a long outage costs the gateway little on return.
 */
const RECONNECT_DEFAULTS: Required<ReconnectOptions> = { initialDelayMs: 100, maxDelayMs: 5_000, waitAtStart: true };

export interface ReconnectOptions {
  /** First delay before reconnecting, doubled after each failure. @default 100 */
  initialDelayMs?: number | undefined;
  /** Longest delay between attempts; not below initialDelayMs. @default 5000 */
  maxDelayMs?: number | undefined;
  /**
   * Whether connect() itself waits, within its timeoutMs, for a gateway not up yet (see
   * ConnectOptions.reconnect); false fails at once, as a person at a terminal wants to hear.
   * @default true
   */
  waitAtStart?: boolean | undefined;
}

export interface ConnectOptions {
  /**
   * ws://host:port (or wss://, http://, https://), or unix:/path/to/gateway.sock for the socket a
   * gateway serves in its data dir. @default localGatewayUrl(): the socket of the platform's
   * default data dir, not a TCP port any local user could hold (Windows: DEFAULT_URL)
   */
  url?: string | undefined;
  /** The gateway's token, sent as `Authorization: Bearer <token>`. */
  token: string;
  /**
   * Default timeout of each call, and of connecting, in ms; with `reconnect`, an ack's is longer
   * (see reconnect). @default DEFAULT_CALL_TIMEOUT_MS (10 s)
   */
  timeoutMs?: number | undefined;
  /** Aborts connecting. */
  signal?: AbortSignal | undefined;
  /**
   * Re-open a lost connection (gateway restart, network) and resume subscriptions. The first
   * connection, too, is tried again within timeoutMs while the gateway is not up yet (no socket
   * file, refused, reset, 503 shutting down), unless `waitAtStart` is false. Calls made
   * while reconnecting wait for the new connection, within their timeout. Calls in flight when it
   * is lost are rejected (ConnectionError `closed`), except those safe to send twice (ack and the
   * reads: peek, listSessions, trace, status, discover), which are sent again once it is back, as
   * they are when a gateway shutting down refuses them (SHUTTING_DOWN). A read whose gateway is not
   * back within its timeout fails with ConnectionError `timeout`, saying why it was to be sent again
   * (its `cause`: the refusal or the lost connection). An ack waits out an outage the client
   * notices (a connection closed, or lost: see heartbeatTimeoutMs), however long, its timeout
   * counting on an open connection only, and by default the client's timeoutMs plus
   * heartbeatTimeoutMs and a tenth, from the last frame received if later (its answer may wait
   * behind pushes): a link that goes dead under it (no close, no error) is found by the heartbeat
   * first, and the ack sent again. An ack refused because the gateway's store failed
   * (STORE_UNAVAILABLE: a full disk; it changed nothing) is sent again every second until it goes
   * through, or, when the ack was given a timeoutMs, until that has passed. An agent loop's ack
   * must not fail, leaving its event pending where the loop, which has moved on, will not see it
   * again. Its signal, or close(), ends the wait. @default false
   */
  reconnect?: boolean | ReconnectOptions | undefined;
  /**
   * With `reconnect`: told when a lost connection starts being re-opened (with what closed it) and
   * when it is open again with every subscription resumed, so a long-lived agent can say why it
   * went quiet. Calls and subscriptions need nothing from it.
   */
  onReconnect?: ((change: ReconnectChange) => void) | undefined;
  /**
   * How long the client waits without hearing from the gateway (it pings every 30 s) before it
   * takes the connection for dead and closes it (1006), reconnecting with `reconnect`: a stopped
   * gateway, or a connection cut without a word (sleep, a NAT), is noticed. 0: never.
   * @default DEFAULT_HEARTBEAT_TIMEOUT_MS (90 s)
   */
  heartbeatTimeoutMs?: number | undefined;
}

/** What onNotification calls: narrow the params by comparing the method (see NotificationArgs). */
export type NotificationListener = (...notification: NotificationArgs) => void;

export type ReconnectChange = { state: 'reconnecting'; reason: string } | { state: 'reconnected' };

export interface CallOptions {
  /** Overrides the client's default timeout for this call. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * A session, every session of an agent, or (`{}`) every session of the token's own agent: a
 * scoped token's, `main` for the admin token.
 */
export type SubscribeTarget = { sessionKey: string; agentId?: never } | { agentId: string; sessionKey?: never } | { sessionKey?: never; agentId?: never };

/**
 * Where a subscription resumes: a seq for a session subscription, a map of session key to seq for
 * an agent one (the gateway refuses the other way round).
 */
export type AfterFor<T extends SubscribeTarget> = T extends { sessionKey: string } ? number : Record<string, number>;

export interface SubscribeOptions<T extends SubscribeTarget = SubscribeTarget> {
  /** Resume point: a seq for a session subscription, a map of session key to seq for an agent one. */
  after?: AfterFor<T> | undefined;
  /**
   * Called once per event, in seq order within a session, across reconnects too. What it throws is
   * an uncaught exception of its own, as an EventEmitter listener's is: the event counts as
   * delivered, and the subscription goes on.
   */
  onEvent: (event: StoredEvent) => void;
}

export interface EventsOptions<T extends SubscribeTarget = SubscribeTarget> {
  /** Resume point, as SubscribeOptions' after. */
  after?: AfterFor<T> | undefined;
  /** Ends the loop, and before it starts, the subscribe. */
  signal?: AbortSignal | undefined;
}

/** A subscription that outlives reconnects: its cursors say what was seen in each session. */
export interface Subscription {
  /**
   * Last seq seen per (canonical) session key. An agent subscription drops a session once this
   * client has acked or drained all it saw of it (nothing of it is pending at or below the cursor
   * any more), and those a resubscribe has no room for (past ~1 MiB of cursors: see onEvent).
   */
  readonly cursors: ReadonlyMap<string, number>;
  unsubscribe(): Promise<void>;
}

type ClientState = 'open' | 'reconnecting' | 'closed';

interface Pending {
  /** What was called: its answer is read as that method's (see resultOf). */
  readonly method: string;
  resolve(result: unknown): void;
  reject(error: Error): void;
}

interface SubscriptionState extends Subscription {
  readonly target: SubscribeTarget;
  /** What the subscription has seen, and where it resumes; `cursors` is its map of seqs. */
  readonly position: SubscriptionCursors;
  readonly onEvent: (event: StoredEvent) => void;
  serverId: string | undefined;
  active: boolean;
  /** Why the gateway refused it for good while its subscribe() call still waited (see #resubscribe). */
  refusal: RpcCallError | undefined;
}

/**
 * The WebSocket library is loaded on first connect, not at import: a caller that only makes HTTP
 * calls (callOverHttp, the CLI's one-shot commands) never pays for it.
 */
async function openSocket(url: string, token: string, options: OpenOptions): Promise<Socket> {
  const transport = await import('./transport.js');
  return transport.openSocket(url, token, options);
}

/**
 * The reconnect option with its defaults filled in, or undefined when off; a RangeError for a delay
 * no timer holds, and for a longest delay below the first (QA: it was taken as a first wait of
 * seconds, where the longest was meant to bound it).
 */
function reconnectSettings(reconnect: ConnectOptions['reconnect']): Required<ReconnectOptions> | undefined {
  const chosen = reconnect === true ? {} : reconnect || undefined;
  if (!chosen) return undefined;
  const initialDelayMs = durationOption('reconnect.initialDelayMs', chosen.initialDelayMs, RECONNECT_DEFAULTS.initialDelayMs, 0);
  const maxDelayMs = durationOption('reconnect.maxDelayMs', chosen.maxDelayMs, Math.max(RECONNECT_DEFAULTS.maxDelayMs, initialDelayMs), 0);
  if (maxDelayMs < initialDelayMs) {
    throw new RangeError(`reconnect.maxDelayMs (${maxDelayMs}) is below reconnect.initialDelayMs (${initialDelayMs}): the longest delay between attempts cannot be shorter than the first`);
  }
  return { initialDelayMs, maxDelayMs, waitAtStart: chosen.waitAtStart ?? RECONNECT_DEFAULTS.waitAtStart };
}

/** The options as connect() has checked them, with their defaults filled in. */
interface ClientSettings extends Omit<ConnectOptions, 'url' | 'timeoutMs' | 'reconnect' | 'heartbeatTimeoutMs'> {
  url: string;
  timeoutMs: number;
  reconnect: Required<ReconnectOptions> | undefined;
  heartbeatTimeoutMs: number;
}

/**
 * Opens a WebSocket to the gateway (`options.url`, by default the local gateway of the data dir)
 * with `options.token`, and resolves once it is open. Rejects with a ConnectionError saying why it
 * could not (unreachable, refused token, not a gateway), or a TypeError for an option that cannot
 * work. With `reconnect`, a connection lost later is opened again and subscriptions resumed.
 */
export async function connect(options: ConnectOptions): Promise<SwitchboardClient> {
  const url = options.url ?? localGatewayUrl();
  const timeoutMs = durationOption('timeoutMs', options.timeoutMs, DEFAULT_CALL_TIMEOUT_MS);
  // Checked before connecting: a bad option is the caller's to fix, whatever the gateway says.
  const reconnect = reconnectSettings(options.reconnect);
  const token = tokenOption(options.token);
  const heartbeatTimeoutMs = durationOption('heartbeatTimeoutMs', options.heartbeatTimeoutMs, DEFAULT_HEARTBEAT_TIMEOUT_MS, 0);
  const socket = await openFirstSocket(url, token, { timeoutMs, heartbeatTimeoutMs, ...(options.signal ? { signal: options.signal } : {}) }, reconnect);
  return new SwitchboardClient(socket, { ...options, url, token, timeoutMs, reconnect, heartbeatTimeoutMs });
}

/** What a gateway not up yet, or restarting, answers a connect with: no socket file, refused, reset. */
const NOT_UP_YET_ERRNOS = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE']);

/**
 * The first connection. With `reconnect`, one that a gateway not up yet or shutting down refuses
 * (no socket file, refused, reset, 503) is tried again with the reconnect's delays, within
 * `timeoutMs`: agents started beside their gateway, or while it restarted, died at once, where a
 * connection lost later is waited out (QA). A wrong token, or anything else, fails at once.
 */
async function openFirstSocket(url: string, token: string, options: OpenOptions & { timeoutMs: number }, reconnect: Required<ReconnectOptions> | undefined): Promise<Socket> {
  if (reconnect?.waitAtStart !== true) return openSocket(url, token, options);
  const deadline = Date.now() + options.timeoutMs;
  let delay = reconnect.initialDelayMs;
  for (;;) {
    try {
      return await openSocket(url, token, { ...options, timeoutMs: Math.max(1, deadline - Date.now()) });
    } catch (error) {
      // The attempt had what was left of the caller's timeout: the caller's is what passed.
      if (error instanceof ConnectionError && error.failure === 'timeout') {
        throw new ConnectionError('timeout', url, `no answer from ${url} within ${options.timeoutMs} ms`, { cause: error });
      }
      const left = deadline - Date.now();
      if (!isNotUpYet(error) || left < MIN_FIRST_CONNECT_ATTEMPT_MS) throw error;
      // Cut short by the signal, the next attempt fails at once as aborted.
      await wait(Math.min(delay * (0.5 + Math.random() / 2), left - MIN_FIRST_CONNECT_ATTEMPT_MS), options.signal);
      delay = Math.min(delay * 2, reconnect.maxDelayMs);
    }
  }
}

/**
 * The least time left worth another attempt at a first connect. Given a millisecond (the wait
 * before it ended just short of the deadline), an attempt timed out before the refusal it would
 * have met came: a gateway down all along was now and then a timeout "within 1 ms" (QA).
 */
const MIN_FIRST_CONNECT_ATTEMPT_MS = 100;

function isNotUpYet(error: unknown): boolean {
  if (!(error instanceof ConnectionError)) return false;
  if (error.refusal !== undefined) return error.refusal.status === 503;
  return error.failure === 'unreachable' && NOT_UP_YET_ERRNOS.has(errnoCode(error) ?? '');
}

export class SwitchboardClient {
  readonly url: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #heartbeatTimeoutMs: number;
  readonly #reconnect: Required<ReconnectOptions> | undefined;
  readonly #onReconnect: (change: ReconnectChange) => void;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<NotificationListener>();
  readonly #subscriptions = new Set<SubscriptionState>();
  readonly #byServerId = new Map<string, SubscriptionState>();
  readonly #reopened = new Set<() => void>();
  /** Told when the open connection closes or is lost (see #whenLeft). */
  readonly #left = new Set<() => void>();
  /** Told once the client is closed for good: the events() loops running (see #finish). */
  readonly #ending = new Set<() => void>();
  readonly #closed: Promise<ConnectionError | RpcCallError | undefined>;
  #resolveClosed!: (why: ConnectionError | RpcCallError | undefined) => void;
  #socket: Socket;
  #state: ClientState = 'open';
  #reconnecting = false;
  #closedError: ConnectionError | RpcCallError | undefined;
  #closedByCaller = false;
  /** Aborted once the client is closed: ends a reconnect's wait and the connection attempt under way. */
  readonly #closing = new AbortController();
  #nextId = 1;
  /** When the open connection last brought a frame (Date.now()). */
  #lastFrameAt = 0;

  /** Not for direct use: connect() opens the socket, checks the options and makes the client. */
  constructor(socket: Socket, options: ClientSettings) {
    this.url = options.url;
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs;
    this.#heartbeatTimeoutMs = options.heartbeatTimeoutMs;
    this.#reconnect = options.reconnect;
    const onReconnect = options.onReconnect;
    this.#onReconnect = onReconnect ? (change) => runCallback(() => onReconnect(change)) : () => {};
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#socket = socket;
    this.#attach(socket);
  }

  /**
   * Resolves once the client is closed for good: with why (the token revoked, a resubscribe refused
   * for good, a connection lost without `reconnect`), or with undefined when close() closed it. A
   * consumer that only subscribes learns here why its events stopped.
   */
  get closed(): Promise<ConnectionError | RpcCallError | undefined> {
    return this.#closed;
  }

  /** Calls any method by name, typed by the method registry. */
  async call<M extends MethodName>(method: M, params: ParamsOf<M>, options: CallOptions = {}): Promise<ResultOf<M>> {
    const outlastsOutages = this.#reconnect !== undefined && method === 'session.ack';
    // Long enough, by default, for the heartbeat to find a link that went dead under the ack: it is
    // then sent again, where it would have failed (QA: a 15 s stall ended the README's loop). And
    // counted from the last frame the gateway sent: on a slow link the answer waits behind the
    // pushes sent before it (QA: a backlog at 4 KB/s held an answer for 115 s).
    const byDefault = outlastsOutages && options.timeoutMs === undefined;
    const defaultTimeoutMs = byDefault ? Math.min(this.#timeoutMs + silenceFoundWithinMs(this.#heartbeatTimeoutMs), MAX_CALL_TIMEOUT_MS) : this.#timeoutMs;
    const timeoutMs = durationOption('timeoutMs', options.timeoutMs, defaultTimeoutMs);
    let timing: CallTiming = { timeoutMs, deadline: Date.now() + timeoutMs, whileReceiving: byDefault };
    // Why the call is being sent again, if it is: a timeout while it waits says so.
    let resending: ConnectionError | RpcCallError | undefined;
    // An ack's timeout counts on an open connection only: it starts again on each one, and on each
    // resend after a store failure unless the caller gave a timeout, which then bounds them all (review).
    let timeoutStartsAgain = true;
    let sentOn: unknown;
    for (;;) {
      // Checked again after every wait, and sent with no await in between: a close (or a lost
      // connection) in that gap has already rejected what was pending, and a call sent after it
      // would go nowhere and wait out its whole timeout.
      do {
        await this.#untilOpen(method, outlastsOutages ? undefined : timing, options.signal).catch((error: unknown) => {
          throw withResendReason(error, resending, false);
        });
        if (options.signal?.aborted) throw aborted(this.url, method, options.signal);
      } while (this.#state !== 'open');
      const socket = this.#socket;
      if (outlastsOutages && (timeoutStartsAgain || socket !== sentOn)) timing = { ...timing, deadline: Date.now() + timeoutMs };
      timeoutStartsAgain = true;
      sentOn = socket;
      // What the client had seen of a drained session before the drain was sent: stored before it
      // ran. A drain that names no session (the token's agent's main) is known by its answer only.
      const drained = method === 'session.drain' ? (params as ParamsOf<'session.drain'>).sessionKey : undefined;
      const seenBeforeDrain = drained === undefined ? 0 : this.#seen(drained);
      try {
        const result = (await this.#send(method, params, timing, options.signal)) as ResultOf<M>;
        if (method === 'session.ack') this.#noteAck(result as ResultOf<'session.ack'>);
        if (method === 'session.drain') this.#noteDrain(params as ParamsOf<'session.drain'>, result as ResultOf<'session.drain'>, seenBeforeDrain);
        return result;
      } catch (error) {
        if (!this.#reconnect || !RESENT_AFTER_RECONNECT.has(method)) throw error;
        // The state as it is now, not as the loop above left it (TypeScript narrows across the await).
        const lostMidCall = error instanceof ConnectionError && error.failure === 'closed' && (this.#state as ClientState) === 'reconnecting';
        // A gateway shutting down refuses calls (nothing done) until it closes the connection, which
        // the reconnect then re-opens: wait for that close, and send it again once it is back.
        const refusedByShutdown = error instanceof RpcCallError && error.errorName === 'SHUTTING_DOWN';
        // A store that failed (a full disk, an I/O error) changed nothing: an ack is sent again a
        // little later, however long the store takes, as it is across an outage (QA: the README's
        // loop died of it, and a supervisor restarting it had the same event handled 7 times in 10 s).
        const ackMetStoreFailure = outlastsOutages && error instanceof RpcCallError && error.errorName === 'STORE_UNAVAILABLE';
        if (!lostMidCall && !refusedByShutdown && !ackMetStoreFailure) throw withResendReason(error, resending, true);
        resending = error as ConnectionError | RpcCallError;
        if (refusedByShutdown && this.#socket === socket && this.#state === 'open') {
          await this.#whenLeft(method, timing, options.signal).catch((waitError: unknown) => {
            throw withResendReason(waitError, resending, false);
          });
        }
        if (ackMetStoreFailure) {
          timeoutStartsAgain = byDefault;
          await this.#pauseBeforeResend(method, options.signal);
        }
      }
    }
  }

  /**
   * Stores an event for an agent's session (`sessionKey`; without one, the agent's main session)
   * and resolves with the routing result: where it went and why, its place in the queue, and
   * whether the agent was woken. Resolved only once the event is durable.
   */
  systemEvent(params: ParamsOf<'system.event'>, options?: CallOptions): Promise<ResultOf<'system.event'>> {
    return this.call('system.event', params, options);
  }

  /** Pending events of a session, oldest first, left pending; `after` a seq reads on, `more` says others follow. */
  peek(params: ParamsOf<'session.peek'>, options?: CallOptions): Promise<ResultOf<'session.peek'>> {
    return this.call('session.peek', params, options);
  }

  /** Pending events of a session, oldest first, consumed (durably, before the answer); `more` says others remain. */
  drain(params: ParamsOf<'session.drain'>, options?: CallOptions): Promise<ResultOf<'session.drain'>> {
    return this.call('session.drain', params, options);
  }

  /** Sessions with pending events, most pending first; with `more`, the next page is `after: next`. */
  listSessions(params: ParamsOf<'session.list'> = {}, options?: CallOptions): Promise<ResultOf<'session.list'>> {
    return this.call('session.list', params, options);
  }

  /**
   * Consumes a session's pending events up to and including `seq`, as a subscriber that handled
   * them. With `reconnect`, it waits out an outage the client notices, however long (see
   * ConnectOptions.reconnect).
   */
  ack(params: ParamsOf<'session.ack'>, options?: CallOptions): Promise<ResultOf<'session.ack'>> {
    return this.call('session.ack', params, options);
  }

  /** Every step recorded for an event, oldest first: accepted, stored, wake, delivered, acked... */
  trace(eventId: string, options?: CallOptions): Promise<ResultOf<'event.trace'>> {
    return this.call('event.trace', { eventId }, options);
  }

  /** The gateway's version, uptime, pending counts and connections (a scoped token's agent's only). */
  status(options?: CallOptions): Promise<ResultOf<'gateway.status'>> {
    return this.call('gateway.status', {}, options);
  }

  /** Copies the gateway's whole store into `path`, a new file on the gateway's machine (admin token only). */
  backup(path: string, options?: CallOptions): Promise<ResultOf<'gateway.backup'>> {
    return this.call('gateway.backup', { path }, options);
  }

  /** The gateway's OpenRPC document: every method, its params, result and errors, and the notifications. */
  discover(options?: CallOptions): Promise<ResultOf<'rpc.discover'>> {
    return this.call('rpc.discover', {}, options);
  }

  /**
   * Subscribes to a session or to all sessions of an agent. Events arrive through `onEvent`, once
   * each: after a reconnect the subscription resumes after the last event it saw.
   */
  async subscribe<T extends SubscribeTarget>(target: T, options: SubscribeOptions<T>, callOptions?: CallOptions): Promise<Subscription> {
    subscribeTargetOption(target);
    subscribeOptions(options);
    const position = new SubscriptionCursors(target.sessionKey, options.after);
    const state: SubscriptionState = {
      target,
      position,
      cursors: position.seqs,
      onEvent: options.onEvent,
      serverId: undefined,
      active: true,
      refusal: undefined,
      unsubscribe: () => this.#unsubscribe(state),
    };
    const timeoutMs = durationOption('timeoutMs', callOptions?.timeoutMs, this.#timeoutMs);
    const deadline = Date.now() + timeoutMs;
    // Registered before the call: with reconnect, a connection lost before the gateway answers is
    // re-opened with every subscription resubscribed, this one too, and the call waits for that
    // rather than fail an agent that subscribed while its gateway restarted.
    this.#subscriptions.add(state);
    try {
      for (;;) {
        await this.#untilOpen('session.subscribe', { timeoutMs, deadline }, callOptions?.signal);
        if (state.refusal) throw state.refusal;
        if (state.serverId !== undefined) return state;
        try {
          await this.#subscribeOnServer(state, { timeoutMs, deadline }, callOptions?.signal);
          return state;
        } catch (error) {
          const lostMidCall = error instanceof ConnectionError && error.failure === 'closed' && this.#state === 'reconnecting';
          if (!lostMidCall) throw error;
        }
      }
    } catch (error) {
      // Failed for the caller, so never live: a resubscribe still under way for it is taken back
      // when it is answered (see #subscribeOnServer).
      await this.#unsubscribe(state).catch(() => {});
      throw error;
    }
  }

  /**
   * Events of a session or an agent as an async iterable: `for await (const event of
   * client.events({ agentId: 'main' }))`. Ack what you have handled with `client.ack`.
   */
  async *events<T extends SubscribeTarget>(target: T, options: EventsOptions<T> = {}) {
    const queue = new EventQueue<StoredEvent>();
    // The signal ends the loop, and before it starts, the subscribe: the caller stops waiting either way.
    let subscription: Subscription;
    try {
      subscription = await this.subscribe(
        target,
        { onEvent: (event) => queue.push(event), ...(options.after === undefined ? {} : { after: options.after }) },
        options.signal ? { signal: options.signal } : {},
      );
    } catch (error) {
      // Closing the client, or the signal, is an end, also while the subscribe is on its way (or
      // waits for a reconnect): the same end as once the loop runs.
      if (this.#closedByCaller || options.signal?.aborted) return;
      throw error;
    }
    // The caller's stop is at once: events already queued are not yielded (they stay pending on
    // the gateway until acked, and come again to the next subscription).
    const stopListening = onAbort(options.signal, () => queue.stop());
    // Aborted after the subscribe was answered and before the line above: 'abort' has fired already.
    if (options.signal?.aborted) queue.stop();
    // A connection lost for good (token revoked, reconnect off) is an error for the loop, not an
    // end: an agent must not mistake it for "no more events". Closing the client is an end.
    // Taken off when the loop ends: a handler left on the client's close held every finished loop's queue.
    const ended = () => (this.#closedByCaller ? queue.stop() : queue.end(this.#closedError));
    if (this.#state === 'closed') ended();
    else this.#ending.add(ended);
    try {
      for await (const event of queue) {
        // Stopped while the loop's body ran (close() not awaited, say): not one more event.
        if (this.#closedByCaller || options.signal?.aborted) return;
        yield event;
      }
    } finally {
      stopListening();
      this.#ending.delete(ended);
      if (this.#state !== 'closed') await subscription.unsubscribe().catch(() => {});
    }
  }

  /** Listens to agent.wake notifications; returns a function that stops listening. */
  onWake(listener: (wake: AgentWakeNotification) => void): () => void {
    return this.onNotification((method, params) => {
      if (method === 'agent.wake') listener(params);
    });
  }

  /**
   * Listens to every notification the gateway pushes; returns a function that stops listening.
   * The params are typed by the method: compare it first (`if (method === 'agent.wake')`).
   */
  onNotification(listener: NotificationListener): () => void;
  // A listener of the method alone: TypeScript does not take one of fewer parameters for a rest
  // parameter typed as a union of tuples.
  onNotification(listener: (method: NotificationName) => void): () => void;
  onNotification(listener: NotificationListener | ((method: NotificationName) => void)): () => void {
    // One that takes the method alone takes the params too, ignored.
    const taking = listener as NotificationListener;
    this.#listeners.add(taking);
    return () => this.#listeners.delete(taking);
  }

  /** Closes the connection (1000) for good; pending calls are rejected. */
  close(): Promise<void> {
    if (this.#state !== 'closed') {
      this.#finish(new ConnectionError('closed', this.url, 'the client was closed'), true);
      this.#socket.close(1000, 'client closing');
    }
    return this.#closed.then(() => undefined);
  }

  // ------------------------------------------------------------------ calls

  /**
   * Sends one call. `onAnswer` runs synchronously when the answer is read, before any later frame
   * of the same socket read is dispatched: a subscription must know its id before its events. It
   * runs for an answer that comes after the call timed out or was aborted, too: a subscribe the
   * gateway took after its caller gave up must still be taken back (see #subscribeOnServer).
   */
  #send(
    method: string,
    params: unknown,
    { timeoutMs, deadline, whileReceiving }: CallTiming,
    signal: AbortSignal | undefined,
    onAnswer?: (result: unknown) => void,
  ): Promise<unknown> {
    const id = this.#nextId++;
    const frame = JSON.stringify({ jsonrpc: '2.0', id, method, params });
    return new Promise((resolve, reject) => {
      // The gateway closes a connection on a frame past its limit (1009), and every call and
      // subscription on it with it; resent after a reconnect, such a call would close each new one.
      // A UTF-16 unit is at most 3 bytes of UTF-8: only a long frame needs counting.
      const bytes = frame.length * 3 > MAX_FRAME_BYTES ? Buffer.byteLength(frame) : 0;
      if (bytes > MAX_FRAME_BYTES) {
        reject(new RangeError(`${method}: the request is ${bytes} bytes as JSON, past the gateway's frame limit of ${MAX_FRAME_BYTES} bytes; nothing was sent`));
        return;
      }
      // An AbortSignal fires 'abort' once: one aborted before the call would never be heard.
      if (signal?.aborted) {
        reject(aborted(this.url, method, signal));
        return;
      }
      // Not on a socket the client has left: nothing would answer or reject the call but its timer.
      if (this.#state !== 'open') {
        reject(this.#closedError ?? new ConnectionError('closed', this.url, `connection to ${this.url} was lost before ${method} was sent`));
        return;
      }
      const settle = () => {
        clearTimeout(timer);
        stopListening();
        this.#pending.delete(id);
      };
      // Given up on, the call may still be answered: until then (or until the socket is left), the
      // answer goes to onAnswer alone, if it comes on the socket the call went out on while that is
      // the open one. One from a socket being left (a resubscribe that timed out, to be sent again
      // on the next) would name a subscription that ends with that socket.
      const sentOn = this.#socket;
      const giveUp = (error: ConnectionError) => {
        settle();
        if (onAnswer) {
          const late = (result: unknown) => {
            this.#pending.delete(id);
            if (this.#socket === sentOn && this.#state === 'open') onAnswer(result);
          };
          this.#pending.set(id, { method, resolve: late, reject: () => this.#pending.delete(id) });
        }
        reject(error);
      };
      const expire = () => {
        // Frames still coming on the call's connection: its answer may be queued behind them.
        const lastHeard = whileReceiving && this.#socket === sentOn ? this.#lastFrameAt : Number.NEGATIVE_INFINITY;
        if (lastHeard + timeoutMs > Date.now()) timer = setTimeout(expire, lastHeard + timeoutMs - Date.now());
        else giveUp(new ConnectionError('timeout', this.url, `no answer to ${method} from ${this.url} within ${timeoutMs} ms`));
      };
      let timer = setTimeout(expire, Math.max(0, deadline - Date.now()));
      const stopListening = onAbort(signal, () => giveUp(aborted(this.url, method, signal)));
      this.#pending.set(id, {
        method,
        resolve: (result) => {
          settle();
          onAnswer?.(result);
          resolve(result);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
      this.#socket.send(frame);
    });
  }

  /**
   * Waits out a reconnect, within the call's timeout (none: as long as it takes) and signal;
   * throws why once the client is closed for good.
   */
  async #untilOpen(method: string, timing: CallTiming | undefined, signal: AbortSignal | undefined): Promise<void> {
    if (this.#state === 'reconnecting') await this.#whenOpen(method, timing, signal);
    if (this.#state === 'closed') throw this.#closedError;
  }

  /** Waits for a reconnect to finish, within the call's timeout (if it has one) and signal. */
  #whenOpen(method: string, timing: CallTiming | undefined, signal: AbortSignal | undefined): Promise<void> {
    return this.#until(this.#reopened, method, timing, signal, 'was not back');
  }

  /** Waits for the connection to close or be lost, within the call's timeout and signal. */
  #whenLeft(method: string, timing: CallTiming, signal: AbortSignal | undefined): Promise<void> {
    return this.#until(this.#left, method, timing, signal, 'did not close the connection it is shutting down');
  }

  /** STORE_RETRY_DELAY_MS, or until the connection closes if sooner (close() included); rejects on the signal. */
  async #pauseBeforeResend(method: string, signal: AbortSignal | undefined): Promise<void> {
    const pause: CallTiming = { timeoutMs: STORE_RETRY_DELAY_MS, deadline: Date.now() + STORE_RETRY_DELAY_MS, whileReceiving: false };
    await this.#until(this.#left, method, pause, signal, 'paused').catch((error: unknown) => {
      if (!(error instanceof ConnectionError && error.failure === 'timeout')) throw error;
    });
  }

  /** Waits until `waiters` is told, within the call's timeout (if it has one) and signal. */
  #until(waiters: Set<() => void>, method: string, timing: CallTiming | undefined, signal: AbortSignal | undefined, late: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(aborted(this.url, method, signal));
      const done = () => {
        clearTimeout(timer);
        stopListening();
        waiters.delete(done);
        resolve();
      };
      const timer =
        timing &&
        setTimeout(() => {
          waiters.delete(done);
          stopListening();
          reject(new ConnectionError('timeout', this.url, `${method}: the gateway at ${this.url} ${late} within ${timing.timeoutMs} ms`));
        }, Math.max(0, timing.deadline - Date.now()));
      const stopListening = onAbort(signal, () => {
        waiters.delete(done);
        clearTimeout(timer);
        reject(aborted(this.url, method, signal));
      });
      waiters.add(done);
    });
  }

  // ------------------------------------------------------------------ subscriptions

  /**
   * An agent subscription lets go of a session this client acked up to all it saw of it. Nothing of
   * it is pending at or below the cursor any more, so the cursor would change no replay; kept, the
   * cursors would grow with every session the agent ever heard from, and past what a frame holds
   * (1 MiB, some 15,000 keys) a resubscribe could no longer be sent. Let go, a session whose seqs a
   * data dir restore reissued has its next events delivered rather than taken for ones seen.
   */
  #noteAck({ sessionKey, seq }: ResultOf<'session.ack'>): void {
    this.#letGo(sessionKey, seq);
  }

  /**
   * The same for a drain, which consumes what it answers, after its `after`: a drain from the
   * start consumed everything up to its last event, and one that left nothing pending, everything
   * stored before it ran, which includes what the client had seen when it sent the drain (not
   * what it saw since: an event stored after the drain may be pushed before its answer comes).
   */
  #noteDrain(params: ParamsOf<'session.drain'>, { sessionKey, events, depth }: ResultOf<'session.drain'>, seenBefore: number): void {
    const last = events.at(-1)?.seq ?? 0;
    if (depth === 0) this.#letGo(sessionKey, Math.max(last, seenBefore));
    else if (last > 0 && !params.after) this.#letGo(sessionKey, last);
  }

  /** The newest seq any agent subscription has seen of the session (0 for none), by any spelling of its key. */
  #seen(sessionKey: string): number {
    const canonical = canonicalKey(sessionKey);
    let seen = 0;
    for (const state of this.#subscriptions) seen = Math.max(seen, state.cursors.get(canonical) ?? 0);
    return seen;
  }

  /** Every agent subscription lets go of the session's cursor if it is at or below `consumedUpTo` (see SubscriptionCursors.letGo). */
  #letGo(sessionKey: string, consumedUpTo: number): void {
    for (const state of this.#subscriptions) state.position.letGo(sessionKey, consumedUpTo);
  }

  async #subscribeOnServer(state: SubscriptionState, timing: CallTiming, signal?: AbortSignal): Promise<void> {
    const after = state.position.resumeAfter();
    const params = { ...state.target, ...(after === undefined ? {} : { after }) };
    await this.#send('session.subscribe', params, timing, signal, (result) => {
      const { subscriptionId } = result as ResultOf<'session.subscribe'>;
      if (!state.active) {
        // Its subscribe() failed (or it was unsubscribed) while this call was on its way.
        void this.call('session.unsubscribe', { subscriptionId }).catch(() => {});
        return;
      }
      state.serverId = subscriptionId;
      this.#byServerId.set(subscriptionId, state);
    });
  }

  /**
   * Subscribes `state` again on a re-opened socket. One whose subscribe() call is still waiting
   * (never accepted) and that the gateway refuses for good is that call's failure, not the
   * client's: its caller gets the refusal, and the client goes on with the others.
   */
  async #resubscribe(state: SubscriptionState): Promise<void> {
    const waiting = state.serverId === undefined;
    try {
      await this.#subscribeOnServer(state, { timeoutMs: this.#timeoutMs, deadline: Date.now() + this.#timeoutMs });
    } catch (error) {
      if (!waiting || !isFinalRefusal(error)) throw error;
      state.refusal = error;
    }
  }

  async #unsubscribe(state: SubscriptionState): Promise<void> {
    if (!state.active) return;
    state.active = false;
    this.#subscriptions.delete(state);
    const serverId = state.serverId;
    if (serverId === undefined) return;
    this.#byServerId.delete(serverId);
    if (this.#state === 'open') await this.call('session.unsubscribe', { subscriptionId: serverId });
  }

  #onSessionEvent(params: NotificationParams<'session.event'>): void {
    const state = this.#byServerId.get(params.subscriptionId);
    if (!state?.active) return;
    const { event } = params;
    // The gateway never sends a seq twice on one subscription; the cursor also covers the overlap
    // of a resumed subscription with anything still in flight from the old one.
    if (state.position.take(event)) runCallback(() => state.onEvent(event));
  }

  // ------------------------------------------------------------------ connection

  #attach(socket: Socket): void {
    socket.onMessage((text) => {
      this.#lastFrameAt = Date.now();
      this.#receive(text, socket);
    });
    socket.onClose((code, reason) => {
      if (socket !== this.#socket || this.#state === 'closed') return;
      for (const left of [...this.#left]) left();
      // 1006 is no frame at all (RFC 6455 section 7.1.5): the gateway was killed, or the network cut.
      const why = reason || (code === 1006 ? 'no close frame, the connection was lost' : '');
      const closed = `closed (${code}${why ? `: ${why}` : ''})`;
      // A revoked token is refused on every reconnect: end here, as a refused reconnect would, and
      // without telling onReconnect of an attempt that cannot succeed. Calls in flight get the
      // same error: the gateway did not run them, and a retry with this token cannot succeed.
      if (code === TOKEN_REVOKED_CLOSE.code && reason === TOKEN_REVOKED_CLOSE.reason) {
        this.#finish(new ConnectionError('unauthorized', this.url, `connection to ${this.url} ${closed}: the token was revoked`));
        return;
      }
      const lost = new ConnectionError('closed', this.url, `connection to ${this.url} ${closed} before the gateway answered`);
      this.#rejectPending(lost);
      if (!this.#reconnect) this.#finish(lost);
      else if (this.#reconnecting) this.#state = 'reconnecting';
      else {
        this.#onReconnect({ state: 'reconnecting', reason: closed });
        void this.#reconnectLoop();
      }
    });
  }

  async #reconnectLoop(): Promise<void> {
    this.#reconnecting = true;
    try {
      await this.#reopen(this.#reconnect!);
    } finally {
      this.#reconnecting = false;
    }
  }

  async #reopen(options: Required<ReconnectOptions>): Promise<void> {
    // Closed already, by onReconnect's listener (told of the loss just before this starts).
    if (this.#state === 'closed') return;
    this.#state = 'reconnecting';
    let delay = options.initialDelayMs;
    while (this.#state === 'reconnecting') {
      this.#byServerId.clear();
      await this.#pause(delay * (0.5 + Math.random() / 2));
      if (this.#state !== 'reconnecting') return;
      try {
        const socket = await openSocket(this.url, this.#token, {
          timeoutMs: this.#timeoutMs,
          heartbeatTimeoutMs: this.#heartbeatTimeoutMs,
          signal: this.#closing.signal,
        });
        if (this.#state !== 'reconnecting') {
          socket.close(1000, 'client closing');
          return;
        }
        this.#socket = socket;
        this.#attach(socket);
        this.#state = 'open';
        try {
          await Promise.all([...this.#subscriptions].map((state) => this.#resubscribe(state)));
        } catch (error) {
          // Half resubscribed is no state to leave a socket in: its live subscriptions would
          // still count as receivers. Close it; the next attempt starts clean.
          socket.close(1000, 'resubscribe failed');
          throw error;
        }
        for (const resume of [...this.#reopened]) resume();
        this.#onReconnect({ state: 'reconnected' });
        return;
      } catch (error) {
        if ((error instanceof ConnectionError && error.failure === 'unauthorized') || isFinalRefusal(error)) {
          this.#finish(error);
          return;
        }
        // What no retry changes either: a resubscribe answered unreadably (what answers is not a
        // gateway this client can read), or one too large to send (an agent's after map past a frame).
        if ((error instanceof ConnectionError && error.unreadableAnswer) || error instanceof RangeError) {
          this.#finish(error instanceof RangeError ? new ConnectionError('rejected', this.url, `cannot resubscribe: ${error.message}`, { cause: error }) : error);
          return;
        }
        // Anything else (refused, reset, a resubscribe cut short) is retried after a longer wait.
        if (this.#state === 'open') this.#state = 'reconnecting';
        delay = Math.min(delay * 2, options.maxDelayMs);
      }
    }
  }

  /**
   * Waits `ms`, or until the client is closed: a client closed while it waits to reconnect must not
   * keep its process alive for the rest of the wait (up to maxDelayMs).
   */
  async #pause(ms: number): Promise<void> {
    await wait(ms, this.#closing.signal);
  }

  #finish(error: ConnectionError | RpcCallError, byCaller = false): void {
    this.#state = 'closed';
    this.#closing.abort();
    this.#closedError = error;
    this.#closedByCaller = byCaller;
    this.#rejectPending(error);
    // Calls waiting for a reconnect (or a close) wake up, see the closed state, and reject with the error.
    for (const resume of [...this.#reopened, ...this.#left, ...this.#ending]) resume();
    this.#ending.clear();
    this.#resolveClosed(byCaller ? undefined : error);
  }

  #rejectPending(error: Error): void {
    for (const pending of [...this.#pending.values()]) pending.reject(error);
    this.#pending.clear();
  }

  #receive(text: string, socket: Socket): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    for (const item of Array.isArray(message) ? message : [message]) {
      // Closed (by the caller, or by an unreadable notification of this very frame): nothing more is delivered.
      if (this.#state === 'closed') return;
      this.#dispatch(item, socket);
    }
  }

  #dispatch(item: unknown, socket: Socket): void {
    if (typeof item !== 'object' || item === null) return;
    const message = item as { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: unknown };
    const { method, params } = message;
    if (typeof method === 'string') {
      const problem = notificationProblem(method, params);
      if (problem !== undefined) {
        // Not the gateway this client speaks to (nor one it can read): nothing it sends can be trusted.
        this.#finish(unexpectedAnswer(this.url, `a ${method} notification`, problem));
        // 1008, policy violation (RFC 6455 section 7.4.1): a message the endpoint will not take.
        socket.close(1008, 'unreadable notification');
        return;
      }
      if (method === 'session.event') this.#onSessionEvent(params as NotificationParams<'session.event'>);
      // Checked above against the method's shape when the client knows the method; one it does
      // not know (a newer gateway's) passes as it came, which NotificationArgs's doc warns of.
      const args = [method, params] as NotificationArgs;
      for (const listener of this.#listeners) runCallback(() => listener(...args));
      return;
    }
    const pending = typeof message.id === 'number' ? this.#pending.get(message.id) : undefined;
    if (!pending) return;
    let result: unknown;
    try {
      result = resultOf(message, pending.method, this.url);
    } catch (error) {
      pending.reject(error as Error);
      return;
    }
    pending.resolve(result);
  }
}

/**
 * The error of a call being sent again (see RESENT_AFTER_RECONNECT): a timeout then says why it
 * was resent. "not back within 10000 ms" alone hides that the gateway had refused the call while
 * shutting down, or lost the connection, and has not come back since; "no answer" alone, that the
 * answer awaited is the second send's. Any other error is returned as it is.
 */
function withResendReason(error: unknown, resending: ConnectionError | RpcCallError | undefined, sent: boolean): unknown {
  if (!resending || !(error instanceof ConnectionError) || error.failure !== 'timeout') return error;
  const why = resending instanceof RpcCallError ? `the gateway refused it (${resending.errorName}: ${resending.message})` : resending.message;
  return new ConnectionError('timeout', error.url, `${error.message}; it ${sent ? 'was sent again' : 'was to be sent again'} after ${why}`, {
    cause: resending,
  });
}

/**
 * How long an ack refused with STORE_UNAVAILABLE waits before it is sent again: a full disk is
 * given room by people, or by the gateway folding its write-ahead log back, not in milliseconds.
 */
const STORE_RETRY_DELAY_MS = 1_000;

/**
 * Calls that, with `reconnect`, are sent again once the client is back when their connection is
 * lost before the answer (within their timeout, but an ack: see ConnectOptions.reconnect): done
 * twice they do what they did once (an ack
 * consumes up to its seq, the rest only read). An agent loop's ack in flight when its gateway is
 * killed must not end the loop, and the event it acked must not stay pending. system.event and
 * session.drain are not among them: done twice they store, or consume, twice.
 */
const RESENT_AFTER_RECONNECT: ReadonlySet<string> = new Set<MethodName>([
  'session.ack',
  'session.peek',
  'session.list',
  'event.trace',
  'gateway.status',
  'rpc.discover',
]);

/**
 * Refusals a resubscribe cannot outwait, which end the client with the gateway's reason: a cursor
 * beyond what the session issued (its data dir was restored or reset under the agent), a scope
 * taken away, params it no longer accepts. Retrying would get the same answer for ever, while the
 * caller saw a stream that had merely gone quiet. The rest (a gateway shutting down, a store
 * briefly failing) pass, and are retried.
 */
const PASSING_REFUSALS: ReadonlySet<ErrorName> = new Set<ErrorName>(['SHUTTING_DOWN', 'STORE_UNAVAILABLE']);

function isFinalRefusal(error: unknown): error is RpcCallError {
  return error instanceof RpcCallError && (error.errorName === undefined || !PASSING_REFUSALS.has(error.errorName));
}

/** A call's timeout as its caller gave it (what a timeout says), and when it runs out: waits and a call sent again have less left. */
interface CallTiming {
  timeoutMs: number;
  deadline: number;
  /** The timeout counts from the last frame received as well, if later (see call). */
  whileReceiving?: boolean;
}

/**
 * Runs a caller's callback (onEvent, a notification listener, onReconnect). What it throws is
 * rethrown on its own, an uncaught exception as an EventEmitter listener's is, and not into the
 * socket's frame reader or close handler: there it stalled the connection for good (every later
 * call timed out, no event came) or kept the reconnect from starting.
 */
function runCallback(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

/** Its cause is the signal's reason: AbortSignal.timeout()'s TimeoutError, say. */
function aborted(url: string, method: string, signal: AbortSignal | undefined): ConnectionError {
  return new ConnectionError('aborted', url, `${method} was aborted by the caller`, { cause: signal?.reason });
}
