/**
 * The gateway's RPC methods: validate params with the validators compiled at start-up, then do
 * the work. Routing lives in src/routing; storage in src/store. Handlers only connect them.
 */
import { DEFAULT_READ_LIMIT } from '../protocol/constants.js';
import { RpcError } from '../protocol/errors.js';
import type { Handler } from '../protocol/jsonrpc.js';
import { METHODS, type MethodName, type ParamsOf, type ResultOf } from '../protocol/methods.js';
import type { SessionReadResult, StoredEvent } from '../protocol/schemas.js';
import { parseSessionKey, sessionKeyError, type ParsedSessionKey } from '../protocol/session-key.js';
import { compileValidator } from '../protocol/validate.js';
import { routeEvent, type Delivery } from '../routing/route-event.js';
import { StoreClosedError, StoreUnavailableError } from '../store/errors.js';
import type { EventRecord, EventStore, ReadResult } from '../store/types.js';

export interface GatewayState {
  store: EventStore;
  delivery: Delivery;
  version: string;
  dataDir: string;
  startedAt: number;
  maxPendingPerSession: number;
  openrpc: Record<string, unknown>;
  connectionCount(): number;
  /** True once shutdown began: new calls are refused with SHUTTING_DOWN instead of started. */
  isClosing(): boolean;
}

type Implementation<M extends MethodName, C> = (params: ParamsOf<M>, context: C) => Promise<ResultOf<M>> | ResultOf<M>;
type Implementations<C> = { [M in MethodName]: Implementation<M, C> };

export function createHandlers<C>(state: GatewayState): Record<MethodName, Handler<C>> {
  const implementations: Implementations<C> = {
    'system.event': (params) => routeEvent(params, state.store, state.delivery),
    'session.peek': (params) => readSession(params, (key, options) => state.store.peek(key, options)),
    'session.drain': (params) => readSession(params, (key, options) => state.store.drain(key, options)),
    'session.list': async (params) => {
      const agentId = params.agentId?.toLowerCase();
      const listed = await state.store.listSessions({ limit: params.limit ?? DEFAULT_READ_LIMIT, ...(agentId ? { agentId } : {}) });
      return {
        sessions: listed.sessions.map((session) => ({
          ...session,
          oldestPendingAt: session.oldestPendingAt === null ? null : iso(session.oldestPendingAt),
          lastEventAt: iso(session.lastEventAt),
        })),
        more: listed.more,
      };
    },
    'gateway.status': async () => {
      const stats = await state.store.stats();
      const now = Date.now();
      return {
        version: state.version,
        startedAt: iso(state.startedAt),
        uptimeMs: now - state.startedAt,
        dataDir: state.dataDir,
        sessions: stats.sessions,
        pending: stats.pending,
        connections: state.connectionCount(),
        maxPendingPerSession: state.maxPendingPerSession,
      };
    },
    'rpc.discover': () => state.openrpc,
  };
  return bindValidators(implementations, state.isClosing);
}

/** Pairs each implementation with its params validator, compiled here once. */
function bindValidators<C>(implementations: Implementations<C>, isClosing: () => boolean): Record<MethodName, Handler<C>> {
  const handlers = {} as Record<MethodName, Handler<C>>;
  for (const name of Object.keys(METHODS) as MethodName[]) {
    const validator = compileValidator(METHODS[name].params);
    const implementation = implementations[name] as (params: unknown, context: C) => unknown;
    handlers[name] = async (params, context) => {
      if (isClosing()) throw new RpcError('SHUTTING_DOWN', 'the gateway is shutting down; nothing was done, retry once it is back');
      try {
        return await implementation(validator.parse(params), context);
      } catch (error) {
        throw toRpcError(error);
      }
    };
  }
  return handlers;
}

async function readSession(
  params: ParamsOf<'session.peek'>,
  read: (sessionKey: string, options: { after?: number; limit: number }) => Promise<ReadResult>,
): Promise<SessionReadResult> {
  const parsed = parseKey(params.sessionKey);
  const result = await read(parsed.sessionKey, {
    limit: params.limit ?? DEFAULT_READ_LIMIT,
    ...(params.after === undefined ? {} : { after: params.after }),
  });
  return {
    sessionKey: parsed.sessionKey,
    events: result.events.map((record) => toStoredEvent(record, parsed)),
    depth: result.depth,
    more: result.more,
  };
}

/** Store failures the caller can act on become documented errors; anything else stays a bug. */
function toRpcError(error: unknown): unknown {
  if (error instanceof StoreUnavailableError) return new RpcError('STORE_UNAVAILABLE', error.message, { sqliteCode: error.sqliteCode ?? null });
  if (error instanceof StoreClosedError) return new RpcError('SHUTTING_DOWN', error.message);
  return error;
}

function parseKey(sessionKey: string): ParsedSessionKey {
  const parsed = parseSessionKey(sessionKey);
  if (!parsed.ok) throw sessionKeyError(sessionKey, parsed.reason);
  return parsed.value;
}

export function toStoredEvent(record: EventRecord, parsed: ParsedSessionKey): StoredEvent {
  return {
    eventId: record.eventId,
    sessionKey: record.sessionKey,
    seq: record.seq,
    text: record.text,
    mode: record.mode,
    contextKey: record.contextKey,
    route: parsed.route,
    storedAt: iso(record.storedAt),
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

