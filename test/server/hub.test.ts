/**
 * DeliveryHub with stores that fail: a replay that cannot read its backlog must not go live with
 * a gap the client cannot see (it ends the subscription and closes the connection, 1011), and a
 * wake planned for an event whose batch then failed must not send the agent looking for it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeliveryHub, type CursorAhead, type Subscriber } from '../../src/server/hub.js';
import type { RoutedEvent } from '../../src/routing/route-event.js';
import type { EventStore, TraceEntry } from '../../src/store/types.js';

const test = suite('server/hub');

function failingStore(): EventStore {
  const fail = () => Promise.reject(new Error('disk on fire'));
  return {
    append: fail,
    peek: fail,
    drain: fail,
    listSessions: fail,
    stats: fail,
    ack: fail,
    lastSeqs: fail,
    pendingSessionKeys: fail,
    recordTrace: () => {},
    trace: fail,
    close: () => Promise.resolve(),
  };
}

function accepted<S extends object>(subscribed: S | { ahead: CursorAhead }): S {
  assert.not.ok('ahead' in subscribed, `subscription refused: ${JSON.stringify(subscribed)}`);
  return subscribed as S;
}

test('a replay that fails closes the connection with 1011 and drops the subscription', async () => {
  const hub = new DeliveryHub(failingStore(), { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const closes: Array<[number, string]> = [];
  const pushed: string[] = [];
  const subscriber: Subscriber = {
    connectionId: 1,
    bufferedAmount: 0,
    push: (frame) => (pushed.push(frame), true),
    close: (code, reason) => closes.push([code, reason]),
  };
  for (const target of [
    { sessionKey: 'agent:main:main', agentId: 'main' },
    { sessionKey: null, agentId: 'main' },
  ] as const) {
    const subscription = accepted(await hub.subscribe(subscriber, target, 0));
    assert.is(hub.subscriptionCount(1), 1);
    await hub.start(subscription);
    assert.is(hub.subscriptionCount(1), 0, 'the subscription is gone');
  }
  assert.equal(closes, [
    [1011, 'replay failed; reconnect to resume'],
    [1011, 'replay failed; reconnect to resume'],
  ]);
  assert.equal(pushed, []);
  hub.close();
});

/** A store with nothing pending that keeps the traces it is given. */
function emptyStore(traces: TraceEntry[]): EventStore {
  return {
    ...failingStore(),
    peek: () => Promise.resolve({ events: [], depth: 0, more: false }),
    pendingSessionKeys: () => Promise.resolve([]),
    recordTrace: (entries) => traces.push(...entries),
  };
}

function routedEvent(eventId: string, sessionKey: string, mode: RoutedEvent['mode']): RoutedEvent {
  const route = { agentId: 'main', kind: 'main', channel: null, account: null, peer: null, id: null, thread: null, topic: null } as const;
  return { eventId, sessionKey, seq: 1, text: eventId, mode, contextKey: null, route, storedAt: Date.now() };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

test('a wake planned in a batch that then failed names nothing and records nothing; a stored one is named', async () => {
  const traces: TraceEntry[] = [];
  const heartbeatIntervalMs = 50;
  const hub = new DeliveryHub(emptyStore(traces), { heartbeatIntervalMs, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  await hub.start(accepted(await hub.subscribe(subscriber, { sessionKey: null, agentId: 'main' }, 0)));
  const wakes = () => pushed.map((frame) => JSON.parse(frame) as { method: string; params: { reason: string; sessions: string[] } });

  // Planned inside the store's transaction; the commit failed, so deliver() never came.
  const lost = routedEvent('lost', 'agent:main:direct:a', 'now');
  assert.is(hub.plan(lost, { status: 'queued' }).wake.status, 'sent');
  const lostLater = routedEvent('lost-later', 'agent:main:direct:b', 'next-heartbeat');
  assert.is(hub.plan(lostLater, { status: 'queued' }).wake.status, 'next-heartbeat');
  await nextTurn();
  assert.equal(wakes(), [], 'no agent.wake for an event that was never stored');

  await new Promise((resolve) => setTimeout(resolve, heartbeatIntervalMs * 2));
  assert.ok(wakes().length > 0 && wakes().every((wake) => wake.params.reason === 'heartbeat' && wake.params.sessions.length === 0), JSON.stringify(wakes()));
  assert.equal(traces.filter((trace) => trace.step === 'wake'), [], 'no wake trace for them either');

  // Past the coalescing window, a stored event wakes the agent for its session.
  await new Promise((resolve) => setTimeout(resolve, 300));
  pushed.length = 0;
  const stored = routedEvent('stored', 'agent:main:direct:c', 'now');
  assert.is(hub.plan(stored, { status: 'queued' }).wake.status, 'sent');
  hub.deliver(stored, { status: 'queued' });
  await nextTurn();
  const event = wakes().find((wake) => wake.params.reason === 'event');
  assert.equal(event?.params.sessions, ['agent:main:direct:c']);
  assert.equal(
    traces.filter((trace) => trace.step === 'wake').map((trace) => trace.eventId),
    ['stored'],
  );
  hub.close();
});

test('an agent whose connections all dropped is owed what its events were promised: the follow-up wake when it is back, the heartbeat at the first one after', async () => {
  const traces: TraceEntry[] = [];
  const heartbeatIntervalMs = 40;
  const hub = new DeliveryHub(emptyStore(traces), { heartbeatIntervalMs, replayHighWaterBytes: 1024 });
  const pushed: Array<[number, string]> = [];
  const subscriber = (connectionId: number): Subscriber => ({
    connectionId,
    bufferedAmount: 0,
    push: (frame) => (pushed.push([connectionId, frame]), true),
    close: () => {},
  });
  type Wake = { method: string; params: { agentId: string; reason: string; sessions: string[]; at: string } };
  const wakes = () =>
    pushed
      .map(([connectionId, frame]) => [connectionId, JSON.parse(frame) as Wake] as const)
      .filter(([, message]) => message.method === 'agent.wake')
      .map(([connectionId, message]) => [connectionId, message.params] as const);
  const publish = (eventId: string, sessionKey: string, mode: RoutedEvent['mode']) => {
    const event = routedEvent(eventId, sessionKey, mode);
    const { wake } = hub.plan(event, { status: 'queued' });
    hub.deliver(event, { status: 'queued' });
    return wake.status;
  };
  await hub.start(accepted(await hub.subscribe(subscriber(1), { sessionKey: null, agentId: 'main' }, 0)));

  // All in one turn: the first wake has not gone out when the connection drops.
  assert.equal(
    [publish('a', 'agent:main:direct:a', 'now'), publish('b', 'agent:main:direct:b', 'now'), publish('c', 'agent:main:direct:c', 'next-heartbeat')],
    ['sent', 'coalesced', 'next-heartbeat'],
  );
  hub.dropConnection(1);
  assert.is(publish('d', 'agent:main:direct:d', 'next-heartbeat'), 'no-agent-connected', 'away: nothing is promised');
  await new Promise((resolve) => setTimeout(resolve, heartbeatIntervalMs * 3));
  assert.equal(wakes(), [], 'nobody to tell while it is away');

  await hub.start(accepted(await hub.subscribe(subscriber(2), { sessionKey: 'agent:main:direct:a', agentId: 'main' }, 0)));
  await nextTurn();
  assert.equal(wakes(), [[2, { agentId: 'main', reason: 'event', sessions: ['agent:main:direct:a', 'agent:main:direct:b'], at: wakes()[0]![1].at }]]);
  await new Promise((resolve) => setTimeout(resolve, heartbeatIntervalMs * 3));
  const heartbeats = wakes().slice(1).map(([, params]) => params.sessions);
  assert.ok(heartbeats.length >= 2, 'heartbeats go on');
  assert.equal(heartbeats.slice(0, 2), [['agent:main:direct:c'], []], 'the first names what it was owed, once');
  assert.equal(
    traces.filter((trace) => trace.step === 'wake').map((trace) => [trace.eventId, trace.detail['reason'], trace.detail['connections']]),
    [
      ['a', 'event', 1],
      ['b', 'event', 1],
      ['c', 'heartbeat', 1],
    ],
  );

  // Nothing owed: once it leaves, it is simply absent.
  hub.dropConnection(2);
  assert.is(publish('e', 'agent:main:direct:e', 'now'), 'no-agent-connected');
  hub.close();
});

test('an event at or below a live subscription\'s cursor is not sent to it, nor counted as its receiver, nor traced as delivered', async () => {
  const traces: TraceEntry[] = [];
  // Last seq 5, nothing pending: a subscription after 5 is in range and goes live at once.
  const hub = new DeliveryHub({ ...emptyStore(traces), lastSeqs: (keys) => Promise.resolve(keys.map(() => 5)) }, {
    heartbeatIntervalMs: 60_000,
    replayHighWaterBytes: 1024,
  });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  await hub.start(accepted(await hub.subscribe(subscriber, { sessionKey: 'agent:main:main', agentId: 'main' }, 5)));

  // Seq 5 is one the subscriber has (the replay that overlapped its commit sent it, say).
  const had = { ...routedEvent('had', 'agent:main:main', 'next-heartbeat'), seq: 5 };
  assert.is(hub.plan(had, { status: 'queued' }).receivers, 0);
  hub.deliver(had, { status: 'queued' });
  const next = { ...routedEvent('next', 'agent:main:main', 'next-heartbeat'), seq: 6 };
  assert.is(hub.plan(next, { status: 'queued' }).receivers, 1);
  hub.deliver(next, { status: 'queued' });
  assert.equal(pushed.map((frame) => (JSON.parse(frame) as { params: { event: { seq: number } } }).params.event.seq), [6]);
  assert.equal(
    traces.filter((trace) => trace.step === 'delivered').map((trace) => trace.eventId),
    ['next'],
  );
  hub.close();
});

test("an agent subscription holds the caller's cursors only while they can matter: none at 0, only the replayed sessions' during replay, none once live", async () => {
  const key = (user: string) => `agent:main:slack:direct:${user}`;
  const pending = key('U1');
  const heldDuringReplay: unknown[] = [];
  const store: EventStore = {
    ...emptyStore([]),
    lastSeqs: (keys) => Promise.resolve(keys.map(() => 5)),
    pendingSessionKeys: () => Promise.resolve([pending]),
    peek: (sessionKey, { after = 0 }) => {
      heldDuringReplay.push(subscription.after);
      return Promise.resolve({
        events: sessionKey === pending && after < 3 ? [{ ...routedEvent('third', pending, 'now'), seq: 3 }] : [],
        depth: 1,
        more: false,
      });
    },
  };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  const after = { [pending]: 2, [key('U2')]: 5, [key('U3')]: 0 };
  // Read by the store's peek, which runs once the replay starts.
  const subscription = accepted(await hub.subscribe(subscriber, { sessionKey: null, agentId: 'main' }, after));
  assert.equal(subscription.after, { [pending]: 2, [key('U2')]: 5 });
  await hub.start(subscription);
  assert.equal(heldDuringReplay, [{ [pending]: 2 }], 'U2 has nothing pending: its cursor is let go');
  assert.is(subscription.state, 'live');
  assert.is(subscription.after, 0);
  // What the cursors stood for still holds: the replay started after 2, and U2's next event (6) is sent.
  const next = { ...routedEvent('sixth', key('U2'), 'next-heartbeat'), seq: 6 };
  assert.is(hub.plan(next, { status: 'queued' }).receivers, 1);
  hub.deliver(next, { status: 'queued' });
  assert.equal(pushed.map((frame) => (JSON.parse(frame) as { params: { event: { seq: number } } }).params.event.seq), [3, 6]);
  hub.close();
});

test.run();
