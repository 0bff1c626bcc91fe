/**
 * routeEvent with a stand-in store and delivery: the routing result writes its own JSON
 * (RESULT_JSON), which must be what JSON.stringify writes of it, byte for byte, for every kind of
 * key, queue outcome and wake; and keys remembered once parsed are routed as a fresh parse would.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode, RpcError } from '../../src/protocol/errors.js';
import { RESULT_JSON, type OwnJson } from '../../src/protocol/own-json.js';
import type { TObject } from 'typebox';
import {
  QueueOutcome as QueueOutcomeSchema,
  Route as RouteSchema,
  RoutingResult as RoutingResultSchema,
  WakeOutcome as WakeOutcomeSchema,
  type QueueOutcome,
  type RoutingResult,
  type SystemEventParams,
  type WakeOutcome,
} from '../../src/protocol/schemas.js';
import { routeEvent, type Caller, type Delivery } from '../../src/routing/route-event.js';
import type { AppendOutcome, AppendRequest, AppendResult, EventStore } from '../../src/store/types.js';

const test = suite('routing/route-event');

const CALLER: Caller = { ingress: { ingress: 'test' }, defaultAgentId: undefined, mayPublishTo: () => undefined };

let nextEvent = 1;

/** A store that stores everything, with the queue outcome given. */
function storing(queue: Partial<QueueOutcome> = {}): EventStore {
  const store: Pick<EventStore, 'append'> = {
    append: async <R>(request: AppendRequest<R>): Promise<AppendResult<R>> => {
      // A millisecond of its own for every second event: storedAt's text is reused within one.
      const outcome: AppendOutcome = {
        eventId: `evt_${nextEvent++}`,
        storedAt: Date.UTC(2026, 10, 27, 19, 30, 0, (nextEvent >> 1) % 1000),
        status: 'queued',
        seq: nextEvent,
        depth: 1,
        replaced: null,
        dropped: [],
        ...queue,
      };
      const result = request.complete(outcome);
      assert.is((result as RoutingResult).storedAt, new Date(outcome.storedAt).toISOString());
      request.storedDetail?.(result);
      return { status: 'stored', result, outcome };
    },
  };
  return store as EventStore;
}

function delivering(wake: WakeOutcome, receivers = 0): Delivery {
  return { plan: () => ({ wake, receivers }), deliver: () => undefined };
}

const NOBODY: WakeOutcome = { status: 'no-agent-connected', message: 'no connection subscribes to agent "main"; the event waits' };

async function route(params: SystemEventParams, store = storing(), delivery = delivering(NOBODY)): Promise<RoutingResult> {
  return routeEvent(params, store, delivery, CALLER);
}

/**
 * The answer's own text, checked against JSON.stringify of the same fields, and those fields
 * against the schema's, in its order: a field the schema gains must not go missing from both.
 */
function ownJson(result: RoutingResult): string {
  const own = (result as RoutingResult & Partial<OwnJson>)[RESULT_JSON];
  assert.type(own, 'function', 'a stored event writes its own JSON');
  const text = own!.call(result);
  assert.is(text, JSON.stringify({ ...result }));
  const written = JSON.parse(text) as RoutingResult;
  const shapes: Array<[object, TObject]> = [
    [written, RoutingResultSchema],
    [written.route, RouteSchema],
    [written.queue, QueueOutcomeSchema],
    [written.wake, WakeOutcomeSchema],
  ];
  for (const [value, schema] of shapes) assert.equal(Object.keys(value), Object.keys(schema.properties));
  return text;
}

const KEYS = [
  'main',
  'agent:main:main',
  // Written otherwise than its canonical form: the key as given is answered as given.
  'agent:Main:SLACK:Channel:C1:thread:T1',
  'agent:main:telegram:group:-100123:topic:7',
  'agent:ops:discord:acct:direct:U42',
  // What JSON escapes, and what it writes as it is.
  'agent:main:slack:channel:C"1\\x:thread:Tü😀',
];

test('the answer writes its own JSON as JSON.stringify would, for every form of key, the fallback to main, and an agent named instead of a key', async () => {
  for (const sessionKey of KEYS) {
    const text = ownJson(await route({ text: 'done', sessionKey }));
    assert.is((JSON.parse(text) as RoutingResult).requestedSessionKey, sessionKey);
  }
  const fallback = ownJson(await route({ text: 'done' }));
  assert.match(fallback, '"requestedSessionKey":null,"fallback":{"reason":"no-session-key",');
  ownJson(await route({ text: 'done', agentId: 'Ops', mode: 'now' }));
});

test('the same for every queue outcome and wake: replaced, dropped at the cap, deduplicated, wakes whose words JSON escapes, receivers', async () => {
  const outcomes: Array<Partial<QueueOutcome>> = [
    { status: 'replaced', replaced: { eventId: 'evt_old', seq: 3 }, depth: 7 },
    { dropped: [{ eventId: 'evt_a', seq: 1 }, { eventId: 'evt_b', seq: 2 }], depth: 1000, seq: 2 ** 40 },
    { status: 'deduplicated', seq: 9, depth: 9 },
  ];
  const wakes: WakeOutcome[] = [
    NOBODY,
    { status: 'sent', message: 'agent.wake sent to 2 connection(s) of agent "main"' },
    { status: 'coalesced', message: 'a wake "due"\n\twith\u2028every\u0001escape \ud83d and ü' },
    { status: 'next-heartbeat', message: 'agent "main" is told at its next heartbeat (every 60 s)' },
  ];
  for (const queue of outcomes) {
    for (const wake of wakes) ownJson(await route({ text: 'done', sessionKey: KEYS[2], contextKey: 'build' }, storing(queue), delivering(wake, 3)));
  }
});

test('a key remembered from an earlier call routes as a fresh parse does: the same answer, another spelling kept as given, an agentId that disagrees refused', async () => {
  const key = 'agent:main:slack:channel:c9:thread:t9';
  const first = await route({ text: 'one', sessionKey: key });
  const again = await route({ text: 'two', sessionKey: key });
  assert.equal([again.sessionKey, again.route, again.requestedSessionKey], [first.sessionKey, first.route, key]);
  // Keywords are read in any case, ids as written: another session.
  const otherwise = await route({ text: 'three', sessionKey: key.toUpperCase() });
  assert.equal([otherwise.sessionKey, otherwise.requestedSessionKey], ['agent:main:slack:channel:C9:thread:T9', key.toUpperCase()]);
  ownJson(otherwise);
  // Unicode spellings that normalise alike are different keys, as the README says.
  const composed = await route({ text: 'five', sessionKey: 'agent:main:slack:channel:caf\u00e9' });
  const decomposed = await route({ text: 'six', sessionKey: 'agent:main:slack:channel:cafe\u0301' });
  assert.not.equal(composed.sessionKey, decomposed.sessionKey);
  for (let i = 0; i < 2; i++) {
    const refused = await route({ text: 'four', sessionKey: key, agentId: 'ops' }).catch((error: unknown) => error);
    assert.instance(refused, RpcError);
    assert.is((refused as RpcError).code, ErrorCode.INVALID_PARAMS);
  }
});

test('a key that does not parse, or that may not be published to, is refused on every call', async () => {
  for (const sessionKey of ['agent:main:slack:channel', 'agent:main:slack:channel:C\u2800', 'agent:main:slack:channel:C1\ufe0f']) {
    for (let i = 0; i < 2; i++) {
      const refused = await route({ text: 'done', sessionKey }).catch((error: unknown) => error);
      assert.instance(refused, RpcError, `${sessionKey}: ${String(refused)}`);
      assert.is((refused as RpcError).code, ErrorCode.INVALID_PARAMS);
    }
  }
});

test('a duplicate (a copy of the first answer) carries no text of its own: JSON.stringify writes it', async () => {
  const first = await route({ text: 'done', sessionKey: KEYS[2] });
  const store: Pick<EventStore, 'append'> = { append: async <R>() => ({ status: 'duplicate', result: first as R }) as AppendResult<R> };
  const duplicate = await routeEvent({ text: 'done', sessionKey: KEYS[2], idempotencyKey: 'k1' }, store as EventStore, delivering(NOBODY), CALLER);
  assert.is(duplicate.duplicate, true);
  assert.is((duplicate as Partial<OwnJson>)[RESULT_JSON], undefined);
  assert.equal({ ...duplicate, duplicate: false }, { ...first });
});

test.run();
