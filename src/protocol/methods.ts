/**
 * The method registry: every RPC method's name, params, result, documentation and the
 * application errors it can answer with. The server's dispatch table, the typed client, the
 * OpenRPC document and the CLI's help all derive from this one object.
 */
import type { TSchema } from 'typebox';
import type { ErrorName } from './errors.js';
import type { MethodParams, MethodResults, NotificationParamsByName } from './wire-types.js';
import {
  AgentWakeNotification,
  DiscoverResult,
  GatewayBackupParams,
  GatewayBackupResult,
  EventTraceParams,
  EventTraceResult,
  SessionAckParams,
  SessionAckResult,
  SessionEventNotification,
  SessionSubscribeParams,
  SessionSubscribeResult,
  SessionUnsubscribeParams,
  SessionUnsubscribeResult,
  TokenCreateParams,
  TokenCreateResult,
  TokenListParams,
  TokenListResult,
  TokenRevokeParams,
  TokenRevokeResult,
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
  /** Application errors besides the generic ones every method can answer with (GENERIC_ERRORS in openrpc.ts). */
  errors: readonly ErrorName[];
}

export const METHODS = {
  'system.event': {
    params: SystemEventParams,
    result: RoutingResult,
    summary: 'Tell an agent that something happened, in the conversation named by sessionKey.',
    description:
      'Routes the event to its session (the main session of agentId when no sessionKey is given), stores it durably, and answers with the routing result: where it went, why, its place in the queue and what was done to wake the agent. A malformed sessionKey is an error, never a silent fallback to main.',
    errors: ['FORBIDDEN', 'IDEMPOTENCY_CONFLICT', 'STORE_FULL', 'STORE_UNAVAILABLE'],
  },
  'session.peek': {
    params: SessionReadParams,
    result: SessionReadResult,
    summary: 'Pending events of a session, oldest first, without consuming them.',
    errors: ['FORBIDDEN', 'STORE_UNAVAILABLE'],
  },
  'session.drain': {
    params: SessionReadParams,
    result: SessionReadResult,
    summary: 'Pending events of a session, oldest first, consumed durably before the answer is sent.',
    errors: ['FORBIDDEN', 'STORE_UNAVAILABLE'],
  },
  'session.list': {
    params: SessionListParams,
    result: SessionListResult,
    summary: 'Sessions with pending events and their counts, most pending first.',
    description:
      'A page holds at most `limit` sessions, and fewer when they outgrow what one answer carries; `more` says that others follow: ask again with `after` set to `next`. Pages follow the counts as they are when each is read: a session whose count changed between two pages may be listed in both, or in neither.',
    errors: ['FORBIDDEN', 'STORE_UNAVAILABLE'],
  },
  'session.subscribe': {
    params: SessionSubscribeParams,
    result: SessionSubscribeResult,
    summary: 'Receive the events of a session (sessionKey) or of all sessions of an agent (agentId) as session.event notifications.',
    description:
      'Answers with a subscription id, then replays every pending event after the cursor (`after`), in order, then pushes new events live. Within a session delivery is in seq order, without duplicates, and skips only events the session no longer holds: consumed (acked, drained), replaced by contextKey, or dropped at the pending cap (the publisher was told in queue.replaced / queue.dropped). The connection also receives agent.wake for the agent. Events stay pending until acked (session.ack) and are replayed on the next subscribe.',
    errors: ['FORBIDDEN', 'TOO_MANY_SUBSCRIPTIONS', 'ALREADY_SUBSCRIBED', 'TRANSPORT_UNSUPPORTED', 'AFTER_OUT_OF_RANGE', 'STORE_UNAVAILABLE'],
  },
  'session.unsubscribe': {
    params: SessionUnsubscribeParams,
    result: SessionUnsubscribeResult,
    summary: 'End a subscription of this connection. Closing the socket ends all of them.',
    errors: ['SUBSCRIPTION_NOT_FOUND'],
  },
  'session.ack': {
    params: SessionAckParams,
    result: SessionAckResult,
    summary: 'Consume every pending event of a session up to and including seq: it is never replayed again.',
    errors: ['FORBIDDEN', 'ACK_OUT_OF_RANGE', 'STORE_UNAVAILABLE'],
  },
  'event.trace': {
    params: EventTraceParams,
    result: EventTraceResult,
    summary: 'The life of an event: accepted, stored, wake, delivered (to which connection), acked.',
    description:
      "Every step recorded for the event, oldest first. The accepted step's detail says who handed the event in: ingress (websocket, http-rpc, http-hook), connectionId (null over HTTP) and remoteAddress; a deduplicated step's says the same of the repeat. A token scoped to an agent needs its subscribe scope (a publish-only token is FORBIDDEN: what became of events is the subscribers' side) and traces only that agent's events (another agent's is EVENT_NOT_FOUND) and gets those two steps without connectionId and remoteAddress, which are shown to the admin token alone: so a scoped token sees what happened to its agent's events, not where their publishers are on the network.",
    errors: ['FORBIDDEN', 'EVENT_NOT_FOUND', 'STORE_UNAVAILABLE'],
  },
  'token.create': {
    params: TokenCreateParams,
    result: TokenCreateResult,
    summary: "Create a token scoped to one agent's sessions (admin token only). The secret is shown once.",
    errors: ['FORBIDDEN', 'STORE_UNAVAILABLE'],
  },
  'token.list': {
    params: TokenListParams,
    result: TokenListResult,
    summary: 'List scoped tokens, revoked ones included, without their secrets (admin token only), oldest first, a page at a time.',
    description:
      'A page holds at most `limit` tokens, and fewer when they outgrow what one answer carries (as session.list); `more` says that others follow: ask again with `after` set to the last tokenId listed.',
    errors: ['FORBIDDEN', 'TOKEN_NOT_FOUND', 'STORE_UNAVAILABLE'],
  },
  'token.revoke': {
    params: TokenRevokeParams,
    result: TokenRevokeResult,
    summary: 'Revoke a scoped token (admin token only): it stops working at once, and its connections are closed.',
    errors: ['FORBIDDEN', 'TOKEN_NOT_FOUND', 'STORE_UNAVAILABLE'],
  },
  'gateway.status': {
    params: EmptyParams,
    result: GatewayStatusResult,
    summary: "Version, uptime, data dir, and pending totals of the gateway; for a scoped token, its agent's totals and no data dir.",
    errors: ['STORE_UNAVAILABLE'],
  },
  'gateway.backup': {
    params: GatewayBackupParams,
    result: GatewayBackupResult,
    summary:
      "Copy the whole store into a new file on the gateway's machine while the gateway runs (admin token only): a database of its own, what switchboard.db of the stopped gateway would be. Restore it as switchboard.db in a data dir of its own. Copying the data dir's files while the gateway runs is no backup: a checkpoint during the copy tears it.",
    errors: ['FORBIDDEN', 'BACKUP_FAILED'],
  },
  'rpc.discover': {
    params: EmptyParams,
    result: DiscoverResult,
    summary: 'The OpenRPC document describing this gateway.',
    errors: ['RATE_LIMITED'],
  },
} as const satisfies Record<string, MethodSpec>;

/** Notifications the gateway sends to clients; listed in the OpenRPC document without a result. */
export const NOTIFICATIONS = {
  'session.event': {
    params: SessionEventNotification,
    summary: 'Gateway to client: an event of a subscribed session (replayed or live).',
  },
  'agent.wake': {
    params: AgentWakeNotification,
    summary: 'Gateway to client: wake up and look at these sessions (mode "now" events, the periodic heartbeat, or the backlog a connection finds when it first subscribes to the agent).',
  },
} as const;

export type NotificationName = keyof typeof NOTIFICATIONS;
export type NotificationParams<N extends NotificationName> = NotificationParamsByName[N];

/**
 * A notification as a listener receives it, method then params: a union of tuples, so that
 * comparing the method narrows the params (`if (method === 'agent.wake') params.sessions`). A
 * gateway newer than the client may send methods this union does not list: a listener's default
 * branch should let them pass.
 */
export type NotificationArgs = { [N in NotificationName]: [method: N, params: NotificationParams<N>] }[NotificationName];

export type MethodName = keyof typeof METHODS;
/**
 * Every method's params and result as TypeScript types: the generated ones (wire-types.ts), which
 * are TypeBox's Static types with each field's description for an editor to show. Looked up in a
 * table, not worked out per call: `Static` of a method picked by a type parameter took one
 * `client.call()` 1.3 million type instantiations, 6 s of an editor's checking on every edit (IDE QA).
 */
export type ParamsOf<M extends MethodName> = MethodParams[M];
export type ResultOf<M extends MethodName> = MethodResults[M];

export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];
