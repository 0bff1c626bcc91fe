/**
 * The gateway's RPC methods: validate params with the validators compiled at start-up, then do
 * the work. Routing lives in src/routing; storage in src/store. Handlers only connect them.
 */
import path from 'node:path';
import { DEFAULT_READ_LIMIT, MAX_SUBSCRIPTIONS_PER_CONNECTION, TRACE_RETENTION_MS } from '../protocol/constants.js';
import { paramPath, RpcError } from '../protocol/errors.js';
import type { Handler } from '../protocol/jsonrpc.js';
import { METHODS, type MethodName, type ParamsOf, type ResultOf } from '../protocol/methods.js';
import type { DiscoverResult, SessionReadResult } from '../protocol/schemas.js';
import { parseSessionKey, sessionKeyError, type ParsedSessionKey } from '../protocol/session-key.js';
import { compileValidator, rejectInvisible } from '../protocol/validate.js';
import { resolveTarget, routeEvent, toStoredEvent } from '../routing/route-event.js';
import { BackupError, StoreClosedError, StoreFullError, StoreUnavailableError } from '../store/errors.js';
import { takeWithinBudget } from '../store/read-budget.js';
import type { EventStore, ReadOptions, ReadResult, SessionListPosition, TraceDetail, TraceEntry, TraceStep } from '../store/types.js';
import { authorize, boundAgent } from './auth.js';
import type { CapDrops } from './cap-drops.js';
import { describeCaller, type CallContext } from './context.js';
import type { DeliveryHub, SubscriptionTarget } from './hub.js';
import type { TokenService } from './tokens.js';

/** What a call that arrives during shutdown is told, whichever way it arrives. */
export const SHUTTING_DOWN_MESSAGE = 'the gateway is shutting down; nothing was done, retry once it is back';

const MS_PER_DAY = 24 * 60 * 60 * 1000;
const TRACE_RETENTION_DAYS = Math.round(TRACE_RETENTION_MS / MS_PER_DAY);

export interface GatewayState {
  store: EventStore;
  hub: DeliveryHub;
  tokens: TokenService;
  version: string;
  dataDir: string;
  startedAt: number;
  maxPendingPerSession: number;
  capDrops: CapDrops;
  /** The OpenRPC document, naming the URL the gateway listens on (known once it listens). */
  openrpc(): DiscoverResult;
  /** Open connections: all, or those whose token is bound to the agent. */
  connectionCount(agentId?: string): number;
  /** True once shutdown began: new calls are refused with SHUTTING_DOWN instead of started. */
  isClosing(): boolean;
}

type Implementation<M extends MethodName> = (params: ParamsOf<M>, context: CallContext) => Promise<ResultOf<M>> | ResultOf<M>;
type Implementations = { [M in MethodName]: Implementation<M> };

export function createHandlers(state: GatewayState): Record<MethodName, Handler<CallContext>> {
  const { store, hub, tokens } = state;
  const implementations: Implementations = {
    'system.event': async (params, context) => {
      const result = await routeEvent(params, store, hub, {
        ingress: { ingress: context.ingress, connectionId: context.connectionId, remoteAddress: context.remoteAddress },
        defaultAgentId: boundAgent(context.principal),
        mayPublishTo: (agentId) => authorize(context.principal, { scope: 'publish', agentId }),
      });
      state.capDrops.routed(result);
      return result;
    },
    'session.peek': (params, context) => readSession(params, context, (key, options) => store.peek(key, options)),
    'session.drain': (params, context) =>
      readSession(params, context, (key, options) => store.drain(key, options, { ingress: context.ingress, connectionId: context.connectionId })),
    'session.list': async (params, context) => {
      const agentId = params.agentId?.toLowerCase() ?? boundAgent(context.principal);
      if (agentId !== undefined) authorize(context.principal, { scope: 'subscribe', agentId });
      const listed = await store.listSessions({
        limit: params.limit ?? DEFAULT_READ_LIMIT,
        budget: context.readBudget,
        ...(agentId ? { agentId } : {}),
        ...(params.after === undefined ? {} : { after: listPosition(params.after) }),
      });
      const last = listed.sessions.at(-1);
      return {
        sessions: listed.sessions.map((session) => ({
          ...session,
          oldestPendingAt: session.oldestPendingAt === null ? null : iso(session.oldestPendingAt),
          lastEventAt: iso(session.lastEventAt),
        })),
        more: listed.more,
        // Where none fit, the next page starts where this one was to.
        next: !listed.more ? null : last ? `${last.pending}:${last.sessionKey}` : (params.after ?? null),
      };
    },
    'session.subscribe': async (params, context) => {
      const target = subscriptionTarget(params, context);
      authorize(context.principal, { scope: 'subscribe', agentId: target.agentId });
      const { subscriber } = context;
      if (!subscriber) {
        throw new RpcError('TRANSPORT_UNSUPPORTED', 'session.subscribe needs a WebSocket connection: HTTP has nowhere to push events');
      }
      // Checked first: params a subscription could never take are refused as such, whatever the connection holds.
      const cursor = subscriptionCursor(params.after, target);
      if (hub.subscriptionCount(subscriber.connectionId) >= MAX_SUBSCRIPTIONS_PER_CONNECTION) {
        throw new RpcError(
          'TOO_MANY_SUBSCRIPTIONS',
          `a connection holds at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions; unsubscribe first or subscribe by agentId`,
          { limit: MAX_SUBSCRIPTIONS_PER_CONNECTION },
        );
      }
      const held = hub.subscriptionTo(subscriber.connectionId, target);
      if (held !== undefined) {
        const what = target.sessionKey === null ? `every session of agent ${JSON.stringify(target.agentId)}` : JSON.stringify(target.sessionKey);
        throw new RpcError(
          'ALREADY_SUBSCRIBED',
          `this connection already subscribes to ${what} (subscription ${held}): unsubscribe it first to subscribe again`,
          { subscriptionId: held },
        );
      }
      const subscription = await hub.subscribe(subscriber, target, cursor);
      if ('ahead' in subscription) {
        const { sessionKey, after, lastSeq } = subscription.ahead;
        // An agent subscription's after is a map: the seq to lower is the session's entry.
        const cursor = target.sessionKey === null ? `after[${JSON.stringify(sessionKey)}]` : 'after';
        throw new RpcError(
          'AFTER_OUT_OF_RANGE',
          `after ${after} is beyond the last seq session ${sessionKey} issued (${lastSeq}): its next events would never be sent (seqs start again after a data dir restore or reset); resubscribe with ${cursor} <= ${lastSeq}, or 0 for every pending event of the session`,
          { sessionKey, after, lastSeq },
        );
      }
      context.afterResponse(() => void hub.start(subscription));
      return { subscriptionId: subscription.id, sessionKey: target.sessionKey, agentId: target.agentId };
    },
    'session.unsubscribe': (params, context) => {
      if (context.connectionId === null || !hub.unsubscribe(context.connectionId, params.subscriptionId)) {
        throw new RpcError('SUBSCRIPTION_NOT_FOUND', `this connection holds no subscription "${params.subscriptionId}"`, {
          subscriptionId: params.subscriptionId,
        });
      }
      return { subscriptionId: params.subscriptionId, unsubscribed: true };
    },
    'session.ack': async (params, context) => {
      const { sessionKey, route } = parseKey(params.sessionKey);
      authorize(context.principal, { scope: 'subscribe', agentId: route.agentId });
      const acked = await store.ack(sessionKey, params.seq, { ingress: context.ingress, connectionId: context.connectionId });
      if (acked.status === 'out-of-range') {
        throw new RpcError(
          'ACK_OUT_OF_RANGE',
          `seq ${params.seq} was never issued in session ${sessionKey} (last seq ${acked.lastSeq}); ack a seq you received`,
          { sessionKey, seq: params.seq, lastSeq: acked.lastSeq },
        );
      }
      return { sessionKey, seq: params.seq, acked: acked.acked, depth: acked.depth };
    },
    'event.trace': async (params, context) => {
      // Event ids are UUIDs, issued in lower case; RFC 9562 section 4 reads them in either case.
      const eventId = params.eventId.toLowerCase();
      const { steps: entries, omitted } = await store.trace(eventId, context.readBudget);
      // Another agent's event is "not found" to a scoped token: a refusal would confirm it exists.
      const visible = entries.length > 0 && (context.principal.kind === 'admin' || agentOfTrace(entries) === context.principal.agentId);
      if (!visible) {
        throw new RpcError('EVENT_NOT_FOUND', `no event "${params.eventId}" is known (traces are kept ${TRACE_RETENTION_DAYS} days)`, {
          eventId: params.eventId,
        });
      }
      authorize(context.principal, { scope: 'subscribe', agentId: agentOfTrace(entries) });
      const admin = context.principal.kind === 'admin';
      return {
        eventId,
        steps: entries.map(({ step, at, detail }) => ({ step, at: iso(at), detail: admin ? detail : withoutPublisher(step, detail) })),
        omitted,
      };
    },
    'token.create': async (params, context) => {
      authorize(context.principal, { admin: true });
      // Listed to tell tokens apart: a name that shows nothing tells nothing.
      if (params.name !== undefined) rejectInvisible(params.name.trim(), '/name', '`token list` would show nothing; give a visible name');
      return tokens.create(params, describeCaller(context));
    },
    'token.list': async (params, context) => {
      authorize(context.principal, { admin: true });
      const { after, limit = DEFAULT_READ_LIMIT } = params;
      const page = await tokens.list({ after, limit, budget: context.readBudget });
      if (!page) throw new RpcError('TOKEN_NOT_FOUND', `no token "${after}" to list after; \`switchboard token list\` lists from the first`, { tokenId: after });
      return page;
    },
    'token.revoke': async (params, context) => {
      authorize(context.principal, { admin: true });
      const revoked = await tokens.revoke(params.tokenId, describeCaller(context));
      if (!revoked) throw new RpcError('TOKEN_NOT_FOUND', `no token "${params.tokenId}"; \`switchboard token list\` shows them`, params);
      return revoked;
    },
    'gateway.status': async (_params, context) => {
      // A scoped token sees its own agent's share, as with every other method.
      const agentId = boundAgent(context.principal);
      const stats = await store.stats(agentId);
      const disk = store.freeDisk();
      const health = store.writeHealth();
      const now = Date.now();
      return {
        version: state.version,
        startedAt: iso(state.startedAt),
        uptimeMs: now - state.startedAt,
        dataDir: agentId === undefined ? state.dataDir : null,
        sessions: stats.sessions,
        pending: stats.pending,
        connections: state.connectionCount(agentId),
        maxPendingPerSession: state.maxPendingPerSession,
        eventsDroppedAtCap: state.capDrops.count(agentId),
        freeDiskBytes: agentId === undefined ? (disk.availableBytes ?? null) : null,
        minFreeDiskBytes: disk.minFreeBytes,
        newEventsRefused: disk.refusing,
        writesFailingSince: health.failingSince === undefined ? null : iso(health.failingSince),
        writeFailure: agentId === undefined ? (health.failure ?? null) : null,
      };
    },
    'gateway.backup': async (params, context) => {
      authorize(context.principal, { admin: true });
      // The gateway's working directory is no one's to guess: a relative path would land there.
      if (!path.isAbsolute(params.path)) {
        throw RpcError.invalidParams([{ path: '/path', message: "must be an absolute path (on the gateway's machine)" }]);
      }
      if (params.path.includes('\0')) {
        throw RpcError.invalidParams([{ path: '/path', message: 'must not hold a NUL character (no file name can)' }]);
      }
      const last = params.path.at(-1);
      if (last === '/' || last === path.sep) {
        throw RpcError.invalidParams([{ path: '/path', message: `names a directory (it ends with ${last}): name a new file, in a directory that exists` }]);
      }
      const started = Date.now();
      const { bytes } = await store.backup(params.path);
      return { path: params.path, bytes, durationMs: Date.now() - started };
    },
    'rpc.discover': (_params, context) => {
      const document = state.openrpc();
      // ~40 KB for a request of ~50 bytes: charged to the connection's reads, as the answers that
      // grow with what is stored are, so a client that asks for it a thousand times and reads
      // nothing holds no more of the gateway's memory than its reads may (see read-budget.ts).
      if (takeWithinBudget([document], context.readBudget, documentBytes).length === 0) {
        throw new RpcError('RATE_LIMITED', "this connection's answers not yet written (or this batch's) hold what reads may carry: read them, then ask again");
      }
      return document;
    },
  };
  return bindValidators(implementations, state.isClosing);
}

const documentSizes = new WeakMap<object, number>();

/** The OpenRPC document's size as JSON, measured once per document (it is built again only once the gateway listens). */
function documentBytes(document: object): number {
  let bytes = documentSizes.get(document);
  if (bytes === undefined) documentSizes.set(document, (bytes = Buffer.byteLength(JSON.stringify(document))));
  return bytes;
}

/** Pairs each implementation with its params validator, compiled here once. */
function bindValidators(implementations: Implementations, isClosing: () => boolean): Record<MethodName, Handler<CallContext>> {
  const handlers = {} as Record<MethodName, Handler<CallContext>>;
  for (const name of Object.keys(METHODS) as MethodName[]) {
    const validator = compileValidator(METHODS[name].params);
    const implementation = implementations[name] as (params: unknown, context: CallContext) => unknown;
    handlers[name] = (params, context) => {
      if (isClosing()) throw new RpcError('SHUTTING_DOWN', SHUTTING_DOWN_MESSAGE);
      return implementation(validator.parse(params), context);
    };
  }
  return handlers;
}

async function readSession(
  params: ParamsOf<'session.peek'>,
  context: CallContext,
  read: (sessionKey: string, options: ReadOptions) => Promise<ReadResult>,
): Promise<SessionReadResult> {
  const parsed = params.sessionKey === undefined ? ownMainSession(context) : parseKey(params.sessionKey);
  authorize(context.principal, { scope: 'subscribe', agentId: parsed.route.agentId });
  const result = await read(parsed.sessionKey, {
    limit: params.limit ?? DEFAULT_READ_LIMIT,
    budget: context.readBudget,
    ...(params.after === undefined ? {} : { after: params.after }),
  });
  return {
    sessionKey: parsed.sessionKey,
    events: result.events.map((record) => toStoredEvent({ ...record, route: parsed.route })),
    depth: result.depth,
    more: result.more,
  };
}

/**
 * What a handler threw, as the dispatcher answers it (its `mapError`): store failures the caller
 * can act on become documented errors; anything else stays what it was (a bug, if not an RpcError).
 */
export function toRpcError(error: unknown): unknown {
  if (error instanceof StoreUnavailableError) return new RpcError('STORE_UNAVAILABLE', error.message, { sqliteCode: error.sqliteCode ?? null });
  if (error instanceof StoreFullError) return new RpcError('STORE_FULL', error.message, { ...error.shortage });
  if (error instanceof BackupError) return new RpcError('BACKUP_FAILED', error.message, { path: error.path });
  if (error instanceof StoreClosedError) return new RpcError('SHUTTING_DOWN', error.message);
  return error;
}

/**
 * The session a call that names none is about: the main session of the token's agent, or of
 * `main` for the admin token. As system.event routes an event without one, so that what a scoped
 * token sends with no key it also reads with none.
 */
function ownMainSession(context: CallContext): ParsedSessionKey {
  return resolveTarget(undefined, undefined, boundAgent(context.principal)).parsed;
}

function subscriptionTarget(params: ParamsOf<'session.subscribe'>, context: CallContext): SubscriptionTarget {
  const { sessionKey, agentId } = params;
  if (sessionKey !== undefined && agentId !== undefined) {
    throw RpcError.invalidParams([{ path: '/agentId', message: 'give one of sessionKey (one session) and agentId (all sessions of an agent), not both' }]);
  }
  // Neither: every session of the token's agent, or of `main` for the admin token.
  if (sessionKey === undefined && agentId === undefined) return { sessionKey: null, agentId: ownMainSession(context).route.agentId };
  if (sessionKey !== undefined) {
    const parsed = parseKey(sessionKey);
    return { sessionKey: parsed.sessionKey, agentId: parsed.route.agentId };
  }
  return { sessionKey: null, agentId: agentId!.toLowerCase() };
}

/** A session subscription resumes from a seq; an agent subscription from a seq per session. */
function subscriptionCursor(after: ParamsOf<'session.subscribe'>['after'], target: SubscriptionTarget): number | Record<string, number> {
  if (after === undefined) return 0;
  if (target.sessionKey !== null) {
    if (typeof after === 'number') return after;
    throw RpcError.invalidParams([{ path: '/after', message: 'must be a seq (a number) when subscribing to one sessionKey' }]);
  }
  if (typeof after === 'number') {
    throw RpcError.invalidParams([{ path: '/after', message: 'must map session keys to seqs when subscribing by agentId' }]);
  }
  const cursor: Record<string, number> = {};
  /** The key as given that set each session's cursor, to name it when another spelling contradicts it. */
  const givenAs = new Map<string, string>();
  for (const [key, seq] of Object.entries(after)) {
    const path = paramPath('after', key);
    const parsed = parseKey(key, path);
    // Only the agent's own sessions: each cursor is checked against its session's last seq, and
    // the check's answer must not tell a token scoped to one agent anything about another's.
    if (parsed.route.agentId !== target.agentId) {
      throw RpcError.invalidParams([
        { path, message: `is a session of agent "${parsed.route.agentId}": an agent subscription resumes sessions of agent "${target.agentId}" only` },
      ]);
    }
    // Two spellings of one key (keywords are case-insensitive) with two seqs: whichever came last
    // would win, and the other's events would be skipped or replayed again unasked.
    const earlier = givenAs.get(parsed.sessionKey);
    if (earlier !== undefined && cursor[parsed.sessionKey] !== seq) {
      throw RpcError.invalidParams([
        { path, message: `names session ${parsed.sessionKey}, as ${paramPath('after', earlier)} does, with another seq (${seq}, not ${cursor[parsed.sessionKey]}): give one seq per session` },
      ]);
    }
    if (earlier === undefined) givenAs.set(parsed.sessionKey, key);
    cursor[parsed.sessionKey] = seq;
  }
  return cursor;
}

/**
 * The steps whose detail is a system.event call's ingress (`{ ingress, connectionId, remoteAddress }`):
 * the call that stored the event, and a repeat of it that was deduplicated into it.
 */
const PUBLISHER_STEPS: ReadonlySet<TraceStep> = new Set(['accepted', 'deduplicated']);

/**
 * A publisher's step as a scoped token sees it: how the event came in (`ingress`), not from which
 * address or connection. What happened to an agent's events is for its tokens to see; where their
 * publishers are on the network (the admin token on a CI host, say) is not.
 */
function withoutPublisher(step: TraceStep, detail: TraceDetail): TraceDetail {
  if (!PUBLISHER_STEPS.has(step)) return detail;
  const { remoteAddress: _address, connectionId: _connection, ...rest } = detail;
  return rest;
}

/** The agent an event belongs to, from its "stored" (or "accepted"-era) trace entries. */
function agentOfTrace(entries: readonly TraceEntry[]): string {
  for (const entry of entries) {
    const sessionKey = entry.detail['sessionKey'];
    if (typeof sessionKey !== 'string') continue;
    const parsed = parseSessionKey(sessionKey);
    if (parsed.ok) return parsed.value.route.agentId;
  }
  return '';
}

function parseKey(sessionKey: string, path = '/sessionKey'): ParsedSessionKey {
  const parsed = parseSessionKey(sessionKey);
  if (!parsed.ok) throw sessionKeyError(sessionKey, parsed.reason, path);
  return parsed.value;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A session.list `after`: the `next` of a page, `<pending>:<sessionKey>`. */
function listPosition(after: string): SessionListPosition {
  const match = /^([1-9]\d{0,15}):(.+)$/s.exec(after);
  const pending = Number(match?.[1]);
  if (!match || !Number.isSafeInteger(pending)) {
    throw RpcError.invalidParams([{ path: '/after', message: 'must be the `next` of an earlier session.list, as given' }]);
  }
  return { pending, sessionKey: match[2]! };
}
