/**
 * The method registry: every RPC method's name, params, result, documentation and the
 * application errors it can answer with. The server's dispatch table, the typed client, the
 * OpenRPC document and the CLI's help all derive from this one object.
 */
import type { Static, TSchema } from 'typebox';
import type { ErrorName } from './errors.js';
import {
  DiscoverResult,
  EmptyParams,
  GatewayStatusResult,
  RoutingResult,
  SessionListParams,
  SessionListResult,
  SessionReadParams,
  SessionReadResult,
  SystemEventParams,
} from './schemas.js';

export interface MethodSpec {
  params: TSchema;
  result: TSchema;
  summary: string;
  description?: string;
  /** Application errors besides the generic JSON-RPC ones every method can answer with. */
  errors: readonly ErrorName[];
}

export const METHODS = {
  'system.event': {
    params: SystemEventParams,
    result: RoutingResult,
    summary: 'Tell an agent that something happened, in the conversation named by sessionKey.',
    description:
      'Routes the event to its session (the main session of agentId when no sessionKey is given), stores it durably, and answers with the routing result: where it went, why, its place in the queue and what was done to wake the agent. A malformed sessionKey is an error, never a silent fallback to main.',
    errors: ['IDEMPOTENCY_CONFLICT', 'STORE_UNAVAILABLE', 'SHUTTING_DOWN'],
  },
  'session.peek': {
    params: SessionReadParams,
    result: SessionReadResult,
    summary: 'Pending events of a session, oldest first, without consuming them.',
    errors: ['STORE_UNAVAILABLE', 'SHUTTING_DOWN'],
  },
  'session.drain': {
    params: SessionReadParams,
    result: SessionReadResult,
    summary: 'Pending events of a session, oldest first, consumed durably before the answer is sent.',
    errors: ['STORE_UNAVAILABLE', 'SHUTTING_DOWN'],
  },
  'session.list': {
    params: SessionListParams,
    result: SessionListResult,
    summary: 'Sessions with pending events and their counts, most pending first.',
    errors: ['STORE_UNAVAILABLE', 'SHUTTING_DOWN'],
  },
  'gateway.status': {
    params: EmptyParams,
    result: GatewayStatusResult,
    summary: 'Version, uptime, data dir, and pending totals of the gateway.',
    errors: ['STORE_UNAVAILABLE', 'SHUTTING_DOWN'],
  },
  'rpc.discover': {
    params: EmptyParams,
    result: DiscoverResult,
    summary: 'The OpenRPC document describing this gateway.',
    errors: [],
  },
} as const satisfies Record<string, MethodSpec>;

export type MethodName = keyof typeof METHODS;
export type ParamsOf<M extends MethodName> = Static<(typeof METHODS)[M]['params']>;
export type ResultOf<M extends MethodName> = Static<(typeof METHODS)[M]['result']>;

export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

export function isMethodName(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(METHODS, name);
}
