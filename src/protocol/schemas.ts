/**
 * Wire shapes, defined once. Each schema is a `const` and its static type has the same name;
 * validators (validate.ts), the JSON Schema / OpenRPC files in schema/ (openrpc.ts), the CLI's
 * help, and the types the library exports with each description as a doc comment (wire-types.ts,
 * generated) all derive from these.
 */
import Type, { type Static } from 'typebox';
import {
  AGENT_ID_PATTERN,
  DEFAULT_READ_LIMIT,
  MAX_AGENT_ID_LENGTH,
  MAX_BACKUP_PATH_LENGTH,
  MAX_CONTEXT_KEY_LENGTH,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  MAX_READ_LIMIT,
  MAX_SESSION_KEY_LENGTH,
  MAX_TEXT_BYTES,
  MAX_ID_LENGTH,
  MAX_WAKE_SESSIONS_BYTES,
  MAX_TOKEN_NAME_LENGTH,
  NOT_BLANK_PATTERN,
} from './constants.js';

const Nullable = <T extends Type.TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const EventMode = Type.Enum(['now', 'next-heartbeat'], {
  description:
    '"now" wakes the agent at once; "next-heartbeat" lets the event wait for the agent\'s next periodic wake.',
});
export type EventMode = Static<typeof EventMode>;

export const SessionKind = Type.Enum(['main', 'direct', 'group', 'channel']);
export type SessionKind = Static<typeof SessionKind>;

export const Route = Type.Object(
  {
    agentId: Type.String({ description: 'Agent that owns the session (lower-case).' }),
    kind: SessionKind,
    channel: Nullable(Type.String({ description: 'Messaging channel, e.g. slack or telegram (lower-case).' })),
    account: Nullable(Type.String({ description: 'Account within the channel, when the key names one.' })),
    peer: Nullable(Type.String({ description: 'Peer of a direct conversation.' })),
    id: Nullable(Type.String({ description: 'Group or channel id.' })),
    thread: Nullable(Type.String({ description: 'Thread within the group or channel.' })),
    topic: Nullable(Type.String({ description: 'Forum topic (Telegram) within the group.' })),
  },
  { additionalProperties: false, description: 'The parsed session key: which conversation the event belongs to.' },
);
export type Route = Static<typeof Route>;

const SESSION_KEY_FORMS =
  'Conversation to deliver to: "main", "agent:<agentId>:main", "agent:<agentId>[:<channel>[:<account>]]:direct:<peer>" or "agent:<agentId>:<channel>[:<account>]:(group|channel):<id>[:thread:<threadId>|:topic:<topicId>]". Keywords, agentId and channel are case-insensitive; agentId and channel are ASCII (^[a-z0-9][a-z0-9_-]{0,63}$); the ids keep their case and hold no ":", whitespace, control or invisible characters.';

function sessionKeyParam(whenAbsent?: string) {
  return Type.String({
    minLength: 1,
    maxLength: MAX_SESSION_KEY_LENGTH,
    description: whenAbsent === undefined ? SESSION_KEY_FORMS : `${SESSION_KEY_FORMS} ${whenAbsent}`,
  });
}

const SessionKeyParam = sessionKeyParam();

const AGENT_ID_DESCRIPTION = 'Agent id, case-insensitive: ^[a-z0-9][a-z0-9_-]{0,63}$.';
const AgentIdParam = Type.String({
  minLength: 1,
  maxLength: MAX_AGENT_ID_LENGTH,
  pattern: AGENT_ID_PATTERN,
  description: AGENT_ID_DESCRIPTION,
});

/**
 * A seq as JSON carries it: past 2^53 a double no longer tells neighbours apart, so an ack of
 * 9007199254740993 would have acked (and been answered as) ...992.
 */
const SEQ_RANGE = { minimum: 0, maximum: Number.MAX_SAFE_INTEGER };
const Seq = Type.Integer({ ...SEQ_RANGE, description: 'Sequence number of an event within its session.' });
/** A time as the gateway writes it: ISO 8601, UTC; described as what it is the time of. */
const timestamp = (what: string) => Type.String({ format: 'date-time', description: `${what} (ISO 8601, UTC).` });
const StoredAt = timestamp('When the event was stored');
const EventId = Type.String({ description: 'The event\'s id, given when it was stored: event.trace takes it.' });

/** What rejectLookalikeKey refuses, for the keys it checks. */
const KEY_AS_SENT =
  'Matched as sent, so it may not print like another key: no whitespace or control character at either end, and within no control, invisible or whitespace character other than a space.';

// ---------------------------------------------------------------- system.event

export const SystemEventParams = Type.Object(
  {
    text: Type.String({
      minLength: 1,
      // No maxLength: the limit is in bytes of the trimmed text (checked by the router), and the
      // frame limit already bounds what arrives.
      description: `What happened. Trimmed; must not be empty nor only invisible characters (zero-width spaces, U+FEFF, controls); at most ${MAX_TEXT_BYTES} bytes of UTF-8 after trimming.`,
    }),
    mode: Type.Optional(EventMode),
    sessionKey: Type.Optional(SessionKeyParam),
    agentId: Type.Optional({
      ...AgentIdParam,
      description: `${AGENT_ID_DESCRIPTION} Without sessionKey: that agent's main session. With one, it must be the key's agent, or the call is refused.`,
    }),
    contextKey: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_CONTEXT_KEY_LENGTH,
        pattern: NOT_BLANK_PATTERN,
        description: `A new event with the same contextKey replaces the one still pending in the same session. ${KEY_AS_SENT}`,
      }),
    ),
    idempotencyKey: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern: NOT_BLANK_PATTERN,
        description:
          `A repeat with the same key returns the first call's result with duplicate: true. Keys are the agent's own: another agent's event with the same key is another event. ${KEY_AS_SENT}`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type SystemEventParams = Static<typeof SystemEventParams>;

export const Fallback = Nullable(
  Type.Object(
    {
      reason: Type.Enum(['no-session-key'], { description: 'Why the event went to a main session.' }),
      message: Type.String({ description: 'Why the event went to a main session, in words.' }),
    },
    { additionalProperties: false },
  ),
);
export type Fallback = Static<typeof Fallback>;

export const QueueOutcome = Type.Object(
  {
    status: Type.Enum(['queued', 'replaced', 'deduplicated'], {
      description:
        '"queued": stored as a new event; "replaced": stored, and the pending event with the same contextKey was removed; "deduplicated": the same text and contextKey as the newest pending event, which stands for it.',
    }),
    seq: Seq,
    depth: Type.Integer({ minimum: 0, description: "The session's pending count after this event." }),
    replaced: Nullable(
      Type.Object({ eventId: Type.String(), seq: Seq }, { additionalProperties: false, description: 'Event removed by contextKey.' }),
    ),
    dropped: Type.Array(Type.Object({ eventId: Type.String(), seq: Seq }, { additionalProperties: false }), {
      description: 'Oldest events dropped because the session was at its pending cap.',
    }),
  },
  { additionalProperties: false },
);
export type QueueOutcome = Static<typeof QueueOutcome>;

export const WakeOutcome = Type.Object(
  {
    status: Type.Enum(['sent', 'coalesced', 'next-heartbeat', 'no-agent-connected'], {
      description:
        '"sent": agent.wake goes out now; "coalesced": a wake that names it is already due, at the end of this turn or at the end of the 250 ms that follow the last wake; "next-heartbeat": named in the agent\'s next heartbeat; "no-agent-connected": nobody to wake, the event waits durably, and the agent\'s next subscription wakes it (reason "backlog").',
    }),
    message: Type.String({ description: 'What was done to wake the agent, in words.' }),
  },
  { additionalProperties: false },
);
export type WakeOutcome = Static<typeof WakeOutcome>;

export const RoutingResult = Type.Object(
  {
    eventId: EventId,
    sessionKey: Type.String({ description: 'Canonical session key the event went to.' }),
    requestedSessionKey: Nullable(Type.String({ description: 'The session key as given, or null.' })),
    fallback: Fallback,
    route: Route,
    mode: EventMode,
    queue: QueueOutcome,
    wake: WakeOutcome,
    receivers: Type.Integer({ minimum: 0, description: 'Live subscribers that were sent the event.' }),
    duplicate: Type.Boolean({ description: 'True when this answers a repeat of an earlier idempotencyKey.' }),
    storedAt: StoredAt,
  },
  { additionalProperties: false, description: 'Where the event went and why: the routing result.' },
);
export type RoutingResult = Static<typeof RoutingResult>;

// ---------------------------------------------------------------- sessions

export const StoredEvent = Type.Object(
  {
    eventId: EventId,
    sessionKey: Type.String({ description: 'Canonical key of the session the event belongs to.' }),
    seq: Seq,
    text: Type.String({ description: 'What happened, as sent, trimmed.' }),
    mode: EventMode,
    contextKey: Nullable(Type.String({ description: 'The contextKey it was sent with: a later event with the same one replaces it while it is pending.' })),
    route: Route,
    storedAt: StoredAt,
  },
  { additionalProperties: false, description: 'A pending event, as stored.' },
);
export type StoredEvent = Static<typeof StoredEvent>;

const readLimit = (what: string) =>
  Type.Integer({
    minimum: 1,
    maximum: MAX_READ_LIMIT,
    description: `Most ${what} to return (default ${DEFAULT_READ_LIMIT}, at most ${MAX_READ_LIMIT}).`,
  });

export const SessionReadParams = Type.Object(
  {
    sessionKey: Type.Optional(
      sessionKeyParam(`Absent: the main session of the token's agent (of "main" for the admin token), where system.event routes an event without one.`),
    ),
    limit: Type.Optional(readLimit('events')),
    after: Type.Optional(Type.Integer({ ...SEQ_RANGE, description: 'Only events with seq greater than this.' })),
  },
  { additionalProperties: false },
);
export type SessionReadParams = Static<typeof SessionReadParams>;

export const SessionReadResult = Type.Object(
  {
    sessionKey: Type.String({ description: 'Canonical session key.' }),
    events: Type.Array(StoredEvent, { description: 'Pending events, oldest first.' }),
    depth: Type.Integer({ minimum: 0, description: 'Pending events left in the session after this call.' }),
    more: Type.Boolean({ description: 'True when more events match than were returned.' }),
  },
  { additionalProperties: false },
);
export type SessionReadResult = Static<typeof SessionReadResult>;

export const SessionListParams = Type.Object(
  {
    agentId: Type.Optional(AgentIdParam),
    limit: Type.Optional(readLimit('sessions')),
    after: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_SESSION_KEY_LENGTH + 32,
        description: 'Where the page before ended: its `next`, as given. Absent: the first page.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type SessionListParams = Static<typeof SessionListParams>;

export const SessionSummary = Type.Object(
  {
    sessionKey: Type.String({ description: 'Canonical session key.' }),
    agentId: Type.String({ description: 'Agent that owns the session.' }),
    pending: Type.Integer({ minimum: 0, description: 'Events stored and not yet consumed.' }),
    lastSeq: Type.Integer({ ...SEQ_RANGE, description: 'The seq of the newest event the session took.' }),
    oldestPendingAt: Nullable(timestamp('When its oldest pending event was stored')),
    lastEventAt: timestamp('When its newest event was stored'),
  },
  { additionalProperties: false },
);
export type SessionSummary = Static<typeof SessionSummary>;

export const SessionListResult = Type.Object(
  {
    sessions: Type.Array(SessionSummary, { description: 'Sessions with pending events, most pending first (then by key).' }),
    more: Type.Boolean(),
    next: Nullable(
      Type.String({
        description: 'When `more`: the `after` of the next page, where this one ended (null only when a first page had room for no session, as in a batch: ask again alone). Null when nothing follows.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type SessionListResult = Static<typeof SessionListResult>;

// ---------------------------------------------------------------- gateway

export const EmptyParams = Type.Object({}, { additionalProperties: false });
export type EmptyParams = Static<typeof EmptyParams>;

export const GatewayStatusResult = Type.Object(
  {
    version: Type.String({ description: "The gateway's version." }),
    startedAt: timestamp('When this gateway process started'),
    uptimeMs: Type.Integer({ minimum: 0, description: 'Milliseconds since then.' }),
    dataDir: Nullable(Type.String({ description: "The gateway's data dir; null for a scoped token, which has no business with the host's paths." })),
    sessions: Type.Integer({ minimum: 0, description: "Sessions with pending events (a scoped token's agent's only)." }),
    pending: Type.Integer({ minimum: 0, description: "Pending events across those sessions." }),
    connections: Type.Integer({ minimum: 0, description: "Open WebSocket connections (a scoped token: those authenticated for its agent)." }),
    maxPendingPerSession: Type.Integer({ minimum: 1, description: 'The pending cap (--max-pending): an event past it drops its session\'s oldest (queue.dropped).' }),
    eventsDroppedAtCap: Type.Integer({
      minimum: 0,
      description: "Events dropped at that cap since this gateway started, each its session's oldest for a newer one (a scoped token: its agent's): sessions no agent drains fast enough.",
    }),
    freeDiskBytes: Nullable(
      Type.Integer({
        minimum: 0,
        description: "Bytes the gateway may still write on its data dir's disk; null for a scoped token, and when the file system cannot tell.",
      }),
    ),
    minFreeDiskBytes: Type.Integer({
      minimum: 0,
      description: 'Bytes the gateway keeps free on that disk for acks and traces (--min-free-disk): with less, system.event is refused with STORE_FULL. 0: never refused.',
    }),
    newEventsRefused: Type.Boolean({
      description: 'True while system.event is refused with STORE_FULL: the disk has less free space than minFreeDiskBytes. Told to every token: publishers are the ones refused.',
    }),
    writesFailingSince: Nullable(
      Type.String({
        format: 'date-time',
        description: "Since when the store's writes fail (calls that write are answered STORE_UNAVAILABLE: a full disk, an I/O error, its file moved); null while they go through. /healthz does not say: the gateway is alive, and reads are answered.",
      }),
    ),
    writeFailure: Nullable(Type.String({ description: "Why the last write failed, while writes fail; null otherwise, and for a scoped token (it may name the host's paths)." })),
  },
  { additionalProperties: false },
);
export type GatewayStatusResult = Static<typeof GatewayStatusResult>;

export const GatewayBackupParams = Type.Object(
  {
    path: Type.String({
      minLength: 1,
      maxLength: MAX_BACKUP_PATH_LENGTH,
      description: "Absolute path, on the gateway's machine, of a new file for the copy: an existing one is not overwritten. Its directory must exist.",
    }),
  },
  { additionalProperties: false },
);
export type GatewayBackupParams = Static<typeof GatewayBackupParams>;

export const GatewayBackupResult = Type.Object(
  {
    path: Type.String(),
    bytes: Type.Integer({ minimum: 0, description: 'Size of the copy.' }),
    durationMs: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type GatewayBackupResult = Static<typeof GatewayBackupResult>;

/** What every OpenRPC document holds, typed; the rest is read as it comes (QA: typed as {}, `methods` did not compile). */
export const DiscoverResult = Type.Object(
  {
    openrpc: Type.String({ description: 'The version of the OpenRPC specification the document follows.' }),
    info: Type.Object({ title: Type.String(), version: Type.String() }, { additionalProperties: true }),
    methods: Type.Array(Type.Object({ name: Type.String() }, { additionalProperties: true })),
  },
  { additionalProperties: true, description: "The OpenRPC document: schema/openrpc.json's, with this gateway's servers." },
);
export type DiscoverResult = Static<typeof DiscoverResult>;

// ---------------------------------------------------------------- subscriptions

const SubscriptionId = Type.String({ description: 'Names the subscription in its session.event notifications, and to session.unsubscribe.' });

export const SessionSubscribeParams = Type.Object(
  {
    sessionKey: Type.Optional(SessionKeyParam),
    agentId: Type.Optional(AgentIdParam),
    after: Type.Optional(
      Type.Union([Seq, Type.Record(Type.String(), Seq)], {
        description:
          'Resume point: replay only events after this seq. With sessionKey a number; with agentId a map from session key to seq (sessions not named replay from the start).',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: "Give one of sessionKey and agentId, or neither: every session of the token's agent (of \"main\" for the admin token).",
  },
);
export type SessionSubscribeParams = Static<typeof SessionSubscribeParams>;

export const SessionSubscribeResult = Type.Object(
  {
    subscriptionId: SubscriptionId,
    sessionKey: Nullable(Type.String({ description: 'Canonical key, for a session subscription.' })),
    agentId: Type.String({ description: 'Agent whose sessions this subscription covers.' }),
  },
  { additionalProperties: false },
);
export type SessionSubscribeResult = Static<typeof SessionSubscribeResult>;

export const SessionUnsubscribeParams = Type.Object({ subscriptionId: Type.String({ minLength: 1 }) }, { additionalProperties: false });
export type SessionUnsubscribeParams = Static<typeof SessionUnsubscribeParams>;

export const SessionUnsubscribeResult = Type.Object(
  { subscriptionId: Type.String(), unsubscribed: Type.Literal(true) },
  { additionalProperties: false },
);
export type SessionUnsubscribeResult = Static<typeof SessionUnsubscribeResult>;

export const SessionAckParams = Type.Object(
  { sessionKey: SessionKeyParam, seq: Seq },
  { additionalProperties: false, description: 'Consumes every pending event of the session up to and including seq.' },
);
export type SessionAckParams = Static<typeof SessionAckParams>;

export const SessionAckResult = Type.Object(
  {
    sessionKey: Type.String(),
    seq: Seq,
    acked: Type.Integer({ minimum: 0, description: 'Pending events this ack consumed.' }),
    depth: Type.Integer({ minimum: 0, description: 'Pending events left in the session.' }),
  },
  { additionalProperties: false },
);
export type SessionAckResult = Static<typeof SessionAckResult>;

// ---------------------------------------------------------------- notifications (gateway -> client)

export const SessionEventNotification = Type.Object(
  { subscriptionId: SubscriptionId, event: StoredEvent },
  { additionalProperties: false, description: 'Params of the session.event notification.' },
);
export type SessionEventNotification = Static<typeof SessionEventNotification>;

export const AgentWakeNotification = Type.Object(
  {
    agentId: Type.String({ description: 'The agent to wake.' }),
    reason: Type.Enum(['event', 'heartbeat', 'backlog'], {
      description:
        '"event": mode "now" events arrived; "heartbeat": the periodic wake; "backlog": this connection\'s first subscription of the agent has been replayed, or a replay under way when "now" events came (which get no "event" wake ahead of their push) is done: its sessions with pending events.',
    }),
    sessions: Type.Array(Type.String(), {
      description:
        `"event": sessions with mode "now" events since the previous event wake; "heartbeat": with next-heartbeat events since the previous heartbeat; "backlog": every session of the agent with pending events. Past ${MAX_WAKE_SESSIONS_BYTES / 1024} KiB of keys (as JSON), the rest are named by further wakes of the same reason and \`at\`, sent right after.`,
    }),
    at: timestamp('When the wake was sent'),
  },
  { additionalProperties: false, description: 'Params of the agent.wake notification.' },
);
export type AgentWakeNotification = Static<typeof AgentWakeNotification>;

// ---------------------------------------------------------------- trace

export const EventTraceParams = Type.Object({ eventId: Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH }) }, { additionalProperties: false });
export type EventTraceParams = Static<typeof EventTraceParams>;

export const TraceStepEntry = Type.Object(
  {
    step: Type.Enum(['accepted', 'stored', 'deduplicated', 'replaced', 'dropped', 'wake', 'delivered', 'acked', 'drained'], { description: 'What happened to the event.' }),
    at: timestamp('When the step happened'),
    detail: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]), {
      description: "What the gateway recorded of the step (the accepted step's: see event.trace).",
    }),
  },
  { additionalProperties: false },
);
export type TraceStepEntry = Static<typeof TraceStepEntry>;

export const EventTraceResult = Type.Object(
  {
    eventId: Type.String(),
    steps: Type.Array(TraceStepEntry, { description: 'The life of the event, oldest step first; always its first steps and its last.' }),
    omitted: Type.Integer({
      minimum: 0,
      description:
        'Steps left out before the last one listed, oldest first: an event delivered again on every reconnect of an agent that does not ack it gathers thousands. 0 when steps holds them all.',
    }),
  },
  { additionalProperties: false },
);
export type EventTraceResult = Static<typeof EventTraceResult>;

// ---------------------------------------------------------------- tokens

export const TokenScope = Type.Enum(['publish', 'subscribe'], {
  description: '"publish": system.event; "subscribe": session.subscribe, peek, drain, ack, list, trace. Either one reads gateway.status and rpc.discover.',
});
export type TokenScope = Static<typeof TokenScope>;

export const TokenCreateParams = Type.Object(
  {
    agentId: AgentIdParam,
    scopes: Type.Optional(Type.Array(TokenScope, { minItems: 1, uniqueItems: true, description: 'Default: both.' })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOKEN_NAME_LENGTH, description: 'A label for token list; trimmed, and it must show something.' })),
  },
  { additionalProperties: false },
);
export type TokenCreateParams = Static<typeof TokenCreateParams>;

export const TokenInfo = Type.Object(
  {
    tokenId: Type.String({ description: 'Names the token to token.revoke; not the secret.' }),
    name: Nullable(Type.String({ description: 'The label it was created with.' })),
    agentId: Type.String({ description: 'The agent whose sessions it acts on.' }),
    scopes: Type.Array(TokenScope, { description: 'What it may do.' }),
    createdAt: timestamp('When the token was created'),
    revokedAt: Nullable(timestamp('When it was revoked, or null while it works')),
  },
  { additionalProperties: false },
);
export type TokenInfo = Static<typeof TokenInfo>;

export const TokenCreateResult = Type.Object(
  {
    ...TokenInfo.properties,
    token: Type.String({ description: 'The secret. Shown once: the gateway keeps only its hash.' }),
  },
  { additionalProperties: false },
);
export type TokenCreateResult = Static<typeof TokenCreateResult>;

export const TokenListParams = Type.Object(
  {
    limit: Type.Optional(readLimit('tokens')),
    after: Type.Optional(
      Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH, description: 'Resume point: list the tokens after this one (the last tokenId of the page before).' }),
    ),
  },
  { additionalProperties: false },
);
export type TokenListParams = Static<typeof TokenListParams>;

export const TokenListResult = Type.Object(
  {
    tokens: Type.Array(TokenInfo, { description: 'Oldest first.' }),
    more: Type.Boolean({ description: 'More tokens follow: list again with `after` set to the last tokenId.' }),
  },
  { additionalProperties: false },
);
export type TokenListResult = Static<typeof TokenListResult>;

export const TokenRevokeParams = Type.Object({ tokenId: Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH }) }, { additionalProperties: false });
export type TokenRevokeParams = Static<typeof TokenRevokeParams>;

export const TokenRevokeResult = Type.Object(
  {
    tokenId: Type.String(),
    revoked: Type.Literal(true),
    alreadyRevoked: Type.Boolean({ description: 'True when an earlier token.revoke had revoked it: this one changed nothing.' }),
    revokedAt: timestamp('When the token was first revoked'),
    closedConnections: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type TokenRevokeResult = Static<typeof TokenRevokeResult>;
