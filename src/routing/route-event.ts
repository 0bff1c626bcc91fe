/**
 * The one routing function. Every ingress (WebSocket RPC, POST /rpc, POST /hooks/wake) hands its
 * `system.event` params here; nothing else decides where an event goes.
 */
import { createHash } from 'node:crypto';
import { DEFAULT_AGENT_ID, MAX_TEXT_BYTES } from '../protocol/constants.js';
import { RpcError } from '../protocol/errors.js';
import { RESULT_JSON, type OwnJson } from '../protocol/own-json.js';
import type { EventMode, Fallback, QueueOutcome, Route, RoutingResult, StoredEvent, SystemEventParams, WakeOutcome } from '../protocol/schemas.js';
import { mainSessionKey, parseSessionKey, sessionKeyError, unpublishableKeyError, unpublishableKeyReason, type ParsedSessionKey } from '../protocol/session-key.js';
import { rejectInvisible, rejectLookalikeKey } from '../protocol/validate.js';
import { StoreFullError } from '../store/errors.js';
import type { AppendOutcome, EventRecord, EventStore, TraceDetail } from '../store/types.js';

export const DEFAULT_MODE: EventMode = 'next-heartbeat';

/** A stored event with its parsed route: what subscribers are sent. */
export interface RoutedEvent extends EventRecord {
  route: Route;
}

export function toStoredEvent(event: RoutedEvent): StoredEvent {
  const { eventId, sessionKey, seq, text, mode, contextKey, route, storedAt } = event;
  return { eventId, sessionKey, seq, text, mode, contextKey, route, storedAt: new Date(storedAt).toISOString() };
}

/**
 * What happens to an event once stored: who is told and whether the agent is woken. `plan` runs
 * inside the store's transaction so the routing result (and its idempotency record) says what
 * will happen; `deliver` runs once the event is durable.
 */
export interface Delivery {
  plan(event: RoutedEvent, outcome: AppendOutcome): { wake: WakeOutcome; receivers: number };
  deliver(event: RoutedEvent, outcome: AppendOutcome): void;
}

export interface Target {
  parsed: ParsedSessionKey;
  fallback: Fallback;
  /** For a key given and found publishable: its parse and the JSON of its parts, shared by every call that gives the same key. */
  known?: KnownKey;
}

/**
 * A session key as given that parsed and may be published to, with the JSON text of what a routing
 * result repeats of it. Frozen: every call that gives the same key shares it.
 */
interface KnownKey {
  readonly given: string;
  readonly parsed: ParsedSessionKey;
  readonly givenJson: string;
  readonly sessionKeyJson: string;
  readonly routeJson: string;
}

/**
 * Keys as given that parsed and may be published to. Parsing is a function of the text alone, so a
 * key seen before is answered from here, with what its parse said; a key that fails is parsed (and
 * refused) every time. Emptied when full (keys are at most 512 characters, so this holds a few MB
 * at worst): a gateway's publishers use a bounded set of keys.
 */
const knownKeys = new Map<string, KnownKey>();
const KNOWN_KEYS_LIMIT = 1024;

function knownKey(sessionKey: string): KnownKey {
  const known = knownKeys.get(sessionKey);
  if (known !== undefined) return known;
  const parsed = parseSessionKey(sessionKey);
  if (!parsed.ok) throw sessionKeyError(sessionKey, parsed.reason);
  const unpublishable = unpublishableKeyReason(parsed.value);
  if (unpublishable !== null) throw unpublishableKeyError(sessionKey, unpublishable);
  const value = Object.freeze({ sessionKey: parsed.value.sessionKey, route: Object.freeze(parsed.value.route) });
  const added: KnownKey = Object.freeze({
    given: sessionKey,
    parsed: value,
    givenJson: JSON.stringify(sessionKey),
    sessionKeyJson: JSON.stringify(value.sessionKey),
    routeJson: JSON.stringify(value.route),
  });
  if (knownKeys.size >= KNOWN_KEYS_LIMIT) knownKeys.clear();
  knownKeys.set(sessionKey, added);
  return added;
}

/**
 * Resolves where an event goes. A given key must parse: a malformed key is an error, never a
 * fallback to main. Only the absence of a key routes to a main session, and the result says so.
 */
export function resolveTarget(sessionKey: string | undefined, agentId: string | undefined, defaultAgentId = DEFAULT_AGENT_ID): Target {
  if (sessionKey !== undefined) {
    const known = knownKey(sessionKey);
    const keyAgent = known.parsed.route.agentId;
    if (agentId !== undefined && agentId.toLowerCase() !== keyAgent) {
      throw RpcError.invalidParams([
        {
          path: '/agentId',
          message: `agentId "${agentId}" does not match the agent of sessionKey ("${keyAgent}"); drop agentId or make them agree`,
        },
      ]);
    }
    return { parsed: known.parsed, fallback: null, known };
  }
  const agent = (agentId ?? defaultAgentId).toLowerCase();
  return {
    parsed: mainSessionKey(agent),
    fallback: { reason: 'no-session-key', message: `no sessionKey given: routed to the main session of agent "${agent}"` },
  };
}

/** Trims and bounds the text in bytes; the schema can only bound characters. */
export function normalizeText(text: string): string {
  const trimmed = text.trim();
  rejectInvisible(trimmed, '/text', 'the event would show nothing; send visible text');
  const bytes = Buffer.byteLength(trimmed, 'utf8');
  if (bytes > MAX_TEXT_BYTES) {
    throw RpcError.invalidParams([{ path: '/text', message: `must be at most ${MAX_TEXT_BYTES} bytes of UTF-8 (got ${bytes})` }], {
      limit: MAX_TEXT_BYTES,
    });
  }
  return trimmed;
}

/** Who is sending, as far as routing cares: recorded in the trace, and allowed where? */
export interface Caller {
  ingress: TraceDetail;
  /** Agent whose main session gets an event with neither sessionKey nor agentId (a scoped token's own). */
  defaultAgentId: string | undefined;
  /** Throws when the caller may not publish to the agent's sessions; the target is never changed instead. */
  mayPublishTo(agentId: string): void;
}

/** The last time formatted as storedAt, and its text: the events of a batch mostly share their millisecond. */
let isoAt = Number.NaN;
let isoText = '';

function isoTime(ms: number): string {
  if (ms !== isoAt) {
    isoText = new Date(ms).toISOString();
    isoAt = ms;
  }
  return isoText;
}

/**
 * The routing result of a stored event, which writes its own JSON (RESULT_JSON): the same text
 * JSON.stringify writes of it, with what repeats between calls to the same key written once
 * (KnownKey): the shared text only where the field holds what it was made of.
 */
class RoutingAnswer implements RoutingResult, OwnJson {
  // In the answer's order: JSON.stringify writes a class's fields in the order they are declared.
  readonly eventId: string;
  readonly sessionKey: string;
  readonly requestedSessionKey: string | null;
  readonly fallback: Fallback;
  readonly route: Route;
  readonly mode: EventMode;
  readonly queue: QueueOutcome;
  readonly wake: WakeOutcome;
  readonly receivers: number;
  readonly duplicate: boolean;
  readonly storedAt: string;
  readonly #known: KnownKey | undefined;

  constructor(result: RoutingResult, known: KnownKey | undefined) {
    this.eventId = result.eventId;
    this.sessionKey = result.sessionKey;
    this.requestedSessionKey = result.requestedSessionKey;
    this.fallback = result.fallback;
    this.route = result.route;
    this.mode = result.mode;
    this.queue = result.queue;
    this.wake = result.wake;
    this.receivers = result.receivers;
    this.duplicate = result.duplicate;
    this.storedAt = result.storedAt;
    this.#known = known;
  }

  [RESULT_JSON](): string {
    const known = this.#known;
    // Guards: routeEvent builds these fields from `known`, but a text is shared only for what it was made of.
    const sessionKey = known !== undefined && this.sessionKey === known.parsed.sessionKey ? known.sessionKeyJson : JSON.stringify(this.sessionKey);
    const requested = known !== undefined && this.requestedSessionKey === known.given ? known.givenJson : JSON.stringify(this.requestedSessionKey);
    const route = known !== undefined && this.route === known.parsed.route ? known.routeJson : JSON.stringify(this.route);
    return (
      `{"eventId":${JSON.stringify(this.eventId)},"sessionKey":${sessionKey},"requestedSessionKey":${requested},` +
      `"fallback":${JSON.stringify(this.fallback)},"route":${route},"mode":${JSON.stringify(this.mode)},"queue":${JSON.stringify(this.queue)},` +
      `"wake":${JSON.stringify(this.wake)},"receivers":${JSON.stringify(this.receivers)},"duplicate":${JSON.stringify(this.duplicate)},"storedAt":${JSON.stringify(this.storedAt)}}`
    );
  }
}

export async function routeEvent(
  params: SystemEventParams,
  store: EventStore,
  delivery: Delivery,
  caller: Caller,
): Promise<RoutingResult> {
  const text = normalizeText(params.text);
  if (params.contextKey !== undefined) rejectLookalikeKey(params.contextKey, '/contextKey');
  if (params.idempotencyKey !== undefined) rejectLookalikeKey(params.idempotencyKey, '/idempotencyKey');
  const { parsed, fallback, known } = resolveTarget(params.sessionKey, params.agentId, caller.defaultAgentId);
  const { sessionKey, route } = parsed;
  caller.mayPublishTo(route.agentId);
  const mode = params.mode ?? DEFAULT_MODE;
  const contextKey = params.contextKey ?? null;
  const event = { sessionKey, agentId: route.agentId, text, mode, contextKey };
  let routed: RoutedEvent | undefined;

  const appended = await store.append<RoutingResult>({
    event,
    ingress: caller.ingress,
    ...(params.idempotencyKey === undefined
      ? {}
      : { idempotency: { key: idempotencyScope(route.agentId, params.idempotencyKey), fingerprint: fingerprint(sessionKey, text, contextKey) } }),
    complete: (outcome) => {
      routed = { eventId: outcome.eventId, sessionKey, seq: outcome.seq, text, mode, contextKey, route, storedAt: outcome.storedAt };
      const { wake, receivers } = delivery.plan(routed, outcome);
      return new RoutingAnswer(
        {
          eventId: outcome.eventId,
          sessionKey,
          requestedSessionKey: params.sessionKey ?? null,
          fallback,
          route,
          mode,
          queue: { status: outcome.status, seq: outcome.seq, depth: outcome.depth, replaced: outcome.replaced, dropped: outcome.dropped },
          wake,
          receivers,
          duplicate: false,
          storedAt: isoTime(outcome.storedAt),
        },
        known,
      );
    },
    // The trace's answer to "why did the agent not react?" when no wake step follows.
    storedDetail: (result) => ({ wake: result.wake.status }),
  });

  switch (appended.status) {
    case 'stored':
      if (routed) delivery.deliver(routed, appended.outcome);
      return appended.result;
    case 'duplicate':
      return { ...appended.result, duplicate: true };
    case 'conflict':
      throw new RpcError(
        'IDEMPOTENCY_CONFLICT',
        `idempotencyKey "${params.idempotencyKey}" was already used for a different event; use a new key for a new event`,
        { idempotencyKey: params.idempotencyKey },
      );
    case 'disk-full':
      throw new StoreFullError({ availableBytes: appended.availableBytes, minFreeBytes: appended.minFreeBytes });
  }
}

/**
 * What makes two calls "the same event" for idempotency: where it goes and what it says. Not the
 * mode: its default differs by ingress (a hook means "now"), and a retry through another ingress
 * is still the same event.
 */
function fingerprint(sessionKey: string, text: string, contextKey: string | null): string {
  return createHash('sha256').update(JSON.stringify([sessionKey, text, contextKey])).digest('base64url');
}

/**
 * Idempotency keys live per agent: one agent's keys neither block nor reveal another's (scoped
 * tokens publish to one agent only). NUL cannot occur in an agent id, so scopes cannot collide.
 */
function idempotencyScope(agentId: string, key: string): string {
  return `${agentId}\u0000${key}`;
}
