/**
 * DeliveryHub with stores that fail: a replay that cannot read its backlog must not go live with
 * a gap the client cannot see (it ends the subscription and closes the connection, 1011), and a
 * wake planned for an event whose batch then failed must not send the agent looking for it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_WAKE_SESSIONS_BYTES, WAKE_COALESCE_MS } from '../../src/protocol/constants.js';
import { AGENT_REPLAYS_AT_ONCE, DeliveryHub, wakeFrames, type CursorAhead, type Subscriber } from '../../src/server/hub.js';
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
    freeDisk: () => ({ availableBytes: undefined, minFreeBytes: 0, refusing: false }),
    writeHealth: () => ({ failingSince: undefined, failure: undefined }),
    ack: fail,
    lastSeqs: fail,
    pendingSessionKeys: fail,
    dropOverCap: fail,
    recordTrace: () => {},
    trace: fail,
    backup: fail,
    stopBackups: () => {},
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

test(`wakeFrames: sessions past ${MAX_WAKE_SESSIONS_BYTES} bytes go in further frames, in order, sharing reason and time; none makes one frame naming none`, () => {
  const sessions = Array.from({ length: 3_000 }, (_, i) => `agent:main:direct:${'\u{1F600}'.repeat(100)}${i}`);
  const frames = wakeFrames('main', 'heartbeat', sessions).map((frame) => JSON.parse(frame) as { method: string; params: { reason: string; sessions: string[]; at: string } });
  assert.ok(frames.length > 1, `${frames.length} frames`);
  for (const { method, params } of frames) {
    assert.equal([method, params.reason, params.at], ['agent.wake', 'heartbeat', frames[0]!.params.at]);
    assert.ok(Buffer.byteLength(JSON.stringify(params.sessions)) <= MAX_WAKE_SESSIONS_BYTES + 1);
  }
  assert.equal(frames.flatMap((frame) => frame.params.sessions), sessions);
  assert.equal(wakeFrames('main', 'heartbeat', []).map((frame) => (JSON.parse(frame) as { params: { sessions: string[] } }).params.sessions), [[]]);
});

test('a connection\'s first subscription of an agent wakes that connection, once replayed, for the agent\'s sessions with pending events (backlog): what it was promised when it left, and what came meanwhile', async () => {
  const traces: TraceEntry[] = [];
  let pending: string[] = ['agent:main:direct:a', 'agent:main:direct:b'];
  const store: EventStore = { ...emptyStore(traces), pendingSessionKeys: () => Promise.resolve(pending) };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: Array<[number, string]> = [];
  const subscribers = new Map<number, Subscriber>();
  // One object per connection, as the gateway's Connection is.
  const subscriber = (connectionId: number): Subscriber => {
    const known = subscribers.get(connectionId);
    if (known) return known;
    const created: Subscriber = { connectionId, bufferedAmount: 0, push: (frame) => (pushed.push([connectionId, frame]), true), close: () => {} };
    subscribers.set(connectionId, created);
    return created;
  };
  type Wake = { method: string; params: { agentId: string; reason: string; sessions: string[] } };
  const wakes = () => {
    const sent = pushed
      .map(([connectionId, frame]) => [connectionId, JSON.parse(frame) as Wake] as const)
      .filter(([, message]) => message.method === 'agent.wake')
      .map(([connectionId, { params }]) => [connectionId, params.reason, params.sessions] as const);
    pushed.length = 0;
    return sent;
  };
  const join = async (connectionId: number, sessionKey: string | null = null) => {
    await hub.start(accepted(await hub.subscribe(subscriber(connectionId), { sessionKey, agentId: 'main' }, 0)));
    await nextTurn();
  };

  // At gateway start, and with a session subscription too: every session of the agent is named.
  await join(1, 'agent:main:direct:a');
  assert.equal(wakes(), [[1, 'backlog', ['agent:main:direct:a', 'agent:main:direct:b']]]);
  await join(1, 'agent:main:direct:b');
  assert.equal(wakes(), [], 'a second subscription of the same connection: it was told already');
  await join(2);
  assert.equal(wakes(), [[2, 'backlog', ['agent:main:direct:a', 'agent:main:direct:b']]], 'another connection: another watcher, told for itself');

  // Promised a wake, then gone before it went out; back with the event still pending.
  const promised = routedEvent('c', 'agent:main:direct:c', 'now');
  assert.is(hub.plan(promised, { status: 'queued' }).wake.status, 'sent');
  hub.deliver(promised, { status: 'queued' });
  hub.dropConnection(1);
  hub.dropConnection(2);
  pending = ['agent:main:direct:c'];
  assert.is(hub.plan(routedEvent('d', 'agent:main:direct:d', 'next-heartbeat'), { status: 'queued' }).wake.status, 'no-agent-connected');
  await nextTurn();
  assert.equal(wakes(), [], 'nobody to wake while it is away');
  await join(3);
  assert.equal(wakes(), [[3, 'backlog', ['agent:main:direct:c']]]);
  assert.equal(traces.filter((trace) => trace.step === 'wake'), [], 'a backlog wake names sessions, not events: no trace step');

  // Nothing pending: no wake.
  hub.dropConnection(3);
  pending = [];
  await join(4);
  assert.equal(wakes(), []);
  hub.close();
});

test('the backlog wake is not lost with the subscription that was to send it while its connection still holds the agent', async () => {
  const store: EventStore = { ...emptyStore([]), pendingSessionKeys: () => Promise.resolve(['agent:main:direct:a']) };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  const wakes = () => pushed.map((frame) => JSON.parse(frame) as { method: string; params: { reason: string } }).filter((m) => m.method === 'agent.wake');

  // Ended before its replay: the connection's other subscription wakes it once replayed.
  const first = accepted(await hub.subscribe(subscriber, { sessionKey: null, agentId: 'main' }, 0));
  const second = accepted(await hub.subscribe(subscriber, { sessionKey: 'agent:main:direct:a', agentId: 'main' }, 0));
  assert.ok(hub.unsubscribe(1, first.id));
  await hub.start(second);
  await nextTurn();
  assert.equal(wakes().map((wake) => wake.params.reason), ['backlog']);

  // Ended while the backlog is read: the wake still goes to the connection that holds the agent.
  assert.ok(hub.unsubscribe(1, second.id));
  pushed.length = 0;
  const third = accepted(await hub.subscribe(subscriber, { sessionKey: null, agentId: 'main' }, 0));
  const fourth = accepted(await hub.subscribe(subscriber, { sessionKey: 'agent:main:direct:b', agentId: 'main' }, 0));
  await hub.start(fourth);
  const replayed = hub.start(third);
  await replayed;
  assert.ok(hub.unsubscribe(1, third.id));
  await nextTurn();
  assert.equal(wakes().map((wake) => wake.params.reason), ['backlog']);
  hub.close();
});

test('a backlog read that outlives its connection\'s hold on the agent sends nothing: a resubscribe owes, and sends, a wake of its own', async () => {
  const reads: Array<(sessions: string[]) => void> = [];
  const store: EventStore = { ...emptyStore([]), pendingSessionKeys: () => new Promise((resolve) => reads.push(resolve)) };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  const target = { sessionKey: 'agent:main:direct:a', agentId: 'main' } as const;

  const first = accepted(await hub.subscribe(subscriber, target, 0));
  await hub.start(first);
  assert.is(reads.length, 1, 'its backlog is being read');
  assert.ok(hub.unsubscribe(1, first.id));
  const again = accepted(await hub.subscribe(subscriber, target, 0));
  await hub.start(again);
  assert.is(reads.length, 2);
  reads[0]!(['agent:main:direct:stale']);
  reads[1]!(['agent:main:direct:a']);
  await nextTurn();
  assert.equal(
    pushed.map((frame) => (JSON.parse(frame) as { params: { sessions: string[] } }).params.sessions),
    [['agent:main:direct:a']],
    'one wake, the resubscription\'s',
  );
  hub.close();
});

test('replays on one connection run one at a time, in the order started; another connection\'s alongside; the backlog wake follows the last', async () => {
  const peeks: Array<{ connection: string; release: () => void }> = [];
  const pending = (sessionKey: string) => ({ ...routedEvent(`in ${sessionKey}`, sessionKey, 'now'), seq: 1 });
  let reading = 0;
  let mostAtOnce = 0;
  const store: EventStore = {
    ...emptyStore([]),
    pendingSessionKeys: () => Promise.resolve(['agent:main:direct:x']),
    // Replays of x are slow: each waits for the test to let it go.
    peek: (sessionKey, { after = 0 }) => {
      if (sessionKey !== 'agent:main:direct:x' || after >= 1) return Promise.resolve({ events: [], depth: 0, more: false });
      mostAtOnce = Math.max(mostAtOnce, ++reading);
      return new Promise((resolve) =>
        peeks.push({
          connection: current,
          release: () => {
            reading--;
            resolve({ events: [pending(sessionKey)], depth: 1, more: false });
          },
        }),
      );
    },
  };
  let current = '';
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  const other: Subscriber = { connectionId: 2, bufferedAmount: 0, push: () => true, close: () => {} };
  const methods = () => pushed.map((frame) => (JSON.parse(frame) as { method: string }).method);
  const x = { sessionKey: 'agent:main:direct:x', agentId: 'main' } as const;

  // A quick replay (a session with nothing pending) started after a slow one waits for it.
  current = 'first';
  const slow = accepted(await hub.subscribe(subscriber, x, 0));
  const slowDone = hub.start(slow);
  const quick = accepted(await hub.subscribe(subscriber, { sessionKey: 'agent:main:direct:s1', agentId: 'main' }, 0));
  let quickEnded = false;
  const quickDone = hub.start(quick).then(() => (quickEnded = true));
  // Another connection's replay runs beside them.
  current = 'second';
  const beside = hub.start(accepted(await hub.subscribe(other, x, 0)));
  while (peeks.length < 2) await nextTurn();
  assert.equal(peeks.map((peek) => peek.connection).sort(), ['first', 'second']);
  await nextTurn();
  assert.not.ok(quickEnded, 'the quick replay waits for the one before it on its connection');
  assert.equal(methods(), [], 'nothing yet: x is still being replayed');
  for (const peek of peeks.splice(0)) peek.release();
  await Promise.all([slowDone, quickDone, beside]);
  await nextTurn();
  assert.equal(methods(), ['session.event', 'agent.wake']);

  // A replay cut short by an unsubscribe ends before the resubscription's begins, which sends the wake.
  assert.ok(hub.unsubscribe(1, slow.id));
  assert.ok(hub.unsubscribe(1, quick.id));
  pushed.length = 0;
  current = 'cut';
  const cut = accepted(await hub.subscribe(subscriber, x, 0));
  const cutDone = hub.start(cut);
  while (peeks.length === 0) await nextTurn();
  assert.ok(hub.unsubscribe(1, cut.id));
  const again = accepted(await hub.subscribe(subscriber, x, 0));
  const againDone = hub.start(again);
  peeks.shift()!.release();
  await cutDone;
  await nextTurn();
  assert.equal(methods(), [], 'the cut replay sends nothing');
  while (peeks.length === 0) await nextTurn();
  peeks.shift()!.release();
  await againDone;
  await nextTurn();
  assert.equal(methods(), ['session.event', 'agent.wake']);
  assert.is(mostAtOnce, 2, 'one read at a time per connection');
  hub.close();
});

test(`at most AGENT_REPLAYS_AT_ONCE (${AGENT_REPLAYS_AT_ONCE}) agent-wide replays of one agent run at once, the others in turn; one ended while waiting reads nothing; another agent's and session replays do not wait (security QA: 48 at once ran out of heap)`, async () => {
  const releases: Array<() => void> = [];
  let listsRead = 0;
  let replaying = 0;
  let mostAtOnce = 0;
  const store: EventStore = {
    ...emptyStore([]),
    pendingSessionKeys: (agentId) => {
      listsRead++;
      return Promise.resolve([`agent:${agentId}:direct:x`]);
    },
    // Every replay's read of x waits for the test to let it go.
    peek: (sessionKey, { after = 0 }) => {
      if (after >= 1 || !sessionKey.endsWith(':direct:x')) return Promise.resolve({ events: [], depth: 0, more: false });
      mostAtOnce = Math.max(mostAtOnce, ++replaying);
      return new Promise((resolve) =>
        releases.push(() => {
          replaying--;
          resolve({ events: [{ ...routedEvent('pending', sessionKey, 'now'), seq: 1 }], depth: 1, more: false });
        }),
      );
    },
  };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed = new Map<number, string[]>();
  const subscriber = (connectionId: number): Subscriber => ({ connectionId, bufferedAmount: 0, push: (frame) => (pushed.get(connectionId)!.push(frame), true), close: () => {} });
  const agentWide = async (connectionId: number, agentId = 'main') => {
    pushed.set(connectionId, []);
    const subscription = accepted(await hub.subscribe(subscriber(connectionId), { sessionKey: null, agentId }, 0));
    return { subscription, done: hub.start(subscription) };
  };
  const started = [];
  for (let connectionId = 1; connectionId <= 4; connectionId++) started.push(await agentWide(connectionId));
  while (releases.length < AGENT_REPLAYS_AT_ONCE) await nextTurn();
  await nextTurn();
  assert.equal([replaying, listsRead], [AGENT_REPLAYS_AT_ONCE, AGENT_REPLAYS_AT_ONCE], 'the others wait, their keys not read');
  // Another agent's, and a session's of this agent, are not held up.
  const other = await agentWide(9, 'ops');
  const session = accepted(await hub.subscribe(subscriber(10), { sessionKey: 'agent:main:direct:y', agentId: 'main' }, 0));
  pushed.set(10, []);
  await hub.start(session);
  while (replaying < AGENT_REPLAYS_AT_ONCE + 1) await nextTurn();
  // The fourth ends while it waits: its turn comes, and it reads nothing.
  assert.ok(hub.unsubscribe(4, started[3]!.subscription.id));
  while (releases.length > 0) {
    releases.shift()!();
    await nextTurn();
    await nextTurn();
    assert.ok(replaying <= AGENT_REPLAYS_AT_ONCE + 1, 'two of main, one of ops');
  }
  await Promise.all([...started.map(({ done }) => done), other.done]);
  await nextTurn();
  assert.is(mostAtOnce, AGENT_REPLAYS_AT_ONCE + 1);
  assert.is(listsRead, 4 + 5, "three replays of main's and one of ops' read the keys, and the backlog wakes of connections 1, 2, 3, 9 and 10");
  for (const connectionId of [1, 2, 3, 9]) {
    assert.equal(pushed.get(connectionId)!.map((frame) => (JSON.parse(frame) as { method: string }).method), ['session.event', 'agent.wake'], `connection ${connectionId}`);
  }
  assert.equal(pushed.get(4), [], 'unsubscribed while waiting');
  hub.close();
});

test('a backlog read that fails leaves the wake owed: the next replay of the agent on the connection reads again', async () => {
  let failures = 1;
  const store: EventStore = {
    ...emptyStore([]),
    pendingSessionKeys: () => (failures-- > 0 ? Promise.reject(new Error('disk on fire')) : Promise.resolve(['agent:main:direct:a'])),
  };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  await hub.start(accepted(await hub.subscribe(subscriber, { sessionKey: 'agent:main:direct:a', agentId: 'main' }, 0)));
  await nextTurn();
  assert.equal(pushed, [], 'the read failed');
  await hub.start(accepted(await hub.subscribe(subscriber, { sessionKey: 'agent:main:direct:b', agentId: 'main' }, 0)));
  await nextTurn();
  assert.equal(pushed.map((frame) => (JSON.parse(frame) as { params: { reason: string } }).params.reason), ['backlog']);
  hub.close();
});

test('the backlog wake comes after the replay has pushed the events it names', async () => {
  const sessionKey = 'agent:main:direct:a';
  const store: EventStore = {
    ...emptyStore([]),
    pendingSessionKeys: () => Promise.resolve([sessionKey]),
    peek: (_key, { after = 0 }) =>
      Promise.resolve({ events: after < 1 ? [{ ...routedEvent('pending', sessionKey, 'now'), seq: 1 }] : [], depth: 1, more: false }),
  };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  await hub.start(accepted(await hub.subscribe(subscriber, { sessionKey: null, agentId: 'main' }, 0)));
  await nextTurn();
  assert.equal(
    pushed.map((frame) => (JSON.parse(frame) as { method: string }).method),
    ['session.event', 'agent.wake'],
  );
  hub.close();
});

test('a connection replaying the agent\'s backlog gets no event wake ahead of the events, but the backlog wake once its replays are done; a live one gets the wake at once (QA: a wake ~100 frames before its event)', async () => {
  const traces: TraceEntry[] = [];
  const releases: Array<() => void> = [];
  const store: EventStore = {
    ...emptyStore(traces),
    pendingSessionKeys: () => Promise.resolve(['agent:main:direct:y', 'agent:main:direct:z']),
    // Replays of y are slow: each waits for the test to let it go.
    peek: (sessionKey, { after = 0 }) =>
      sessionKey === 'agent:main:direct:y' && after < 1
        ? new Promise((resolve) => releases.push(() => resolve({ events: [{ ...routedEvent('in y', sessionKey, 'now'), seq: 1 }], depth: 1, more: false })))
        : Promise.resolve({ events: [], depth: 0, more: false }),
  };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const framesOf = (pushed: string[]) => pushed.map((frame) => JSON.parse(frame) as { method: string; params: { reason?: string; sessions?: string[] } });
  const toReplaying: string[] = [];
  const toLive: string[] = [];
  const replaying: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (toReplaying.push(frame), true), close: () => {} };
  const live: Subscriber = { connectionId: 2, bufferedAmount: 0, push: (frame) => (toLive.push(frame), true), close: () => {} };
  await hub.start(accepted(await hub.subscribe(live, { sessionKey: 'agent:main:direct:x', agentId: 'main' }, 0)));
  await nextTurn();
  toLive.length = 0;
  const publish = (eventId: string) => {
    const event = routedEvent(eventId, 'agent:main:direct:z', 'now');
    assert.is(hub.plan(event, { status: 'queued' }).wake.status, 'sent');
    hub.deliver(event, { status: 'queued' });
  };

  // Its first subscription of the agent, replaying: the event's wake goes to the live connection only.
  const slow = hub.start(accepted(await hub.subscribe(replaying, { sessionKey: 'agent:main:direct:y', agentId: 'main' }, 0)));
  while (releases.length === 0) await nextTurn();
  publish('during the first replay');
  await nextTurn();
  assert.equal(framesOf(toLive).map((frame) => [frame.method, frame.params.reason]), [['agent.wake', 'event']]);
  assert.equal(toReplaying, [], 'nothing before the replay has pushed its events');
  releases.shift()!();
  await slow;
  await nextTurn();
  assert.equal(
    framesOf(toReplaying).map((frame) => [frame.method, frame.params.reason ?? null, frame.params.sessions ?? null]),
    [
      ['session.event', null, null],
      ['agent.wake', 'backlog', ['agent:main:direct:y', 'agent:main:direct:z']],
    ],
  );
  assert.equal(traces.filter((trace) => trace.step === 'wake').map((trace) => trace.detail), [{ reason: 'event', connections: 1, afterReplay: 1 }]);

  // A later replay on the same connection, its backlog wake long sent: the event's wake is owed again.
  toReplaying.length = 0;
  await new Promise((resolve) => setTimeout(resolve, WAKE_COALESCE_MS + 50));
  const again = hub.start(accepted(await hub.subscribe(replaying, { sessionKey: null, agentId: 'main' }, 0)));
  while (releases.length === 0) await nextTurn();
  publish('during a later replay');
  await nextTurn();
  assert.equal(toReplaying, []);
  releases.shift()!();
  await again;
  await nextTurn();
  assert.equal(
    framesOf(toReplaying).map((frame) => [frame.method, frame.params.reason ?? null]),
    [
      ['session.event', null],
      ['agent.wake', 'backlog'],
    ],
  );
  hub.close();
});

test('now events within 250 ms of a wake share one follow-up wake, also for the session the wake named (the agent may have looked there already)', async () => {
  const traces: TraceEntry[] = [];
  const hub = new DeliveryHub(emptyStore(traces), { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  await hub.start(accepted(await hub.subscribe(subscriber, { sessionKey: 'agent:main:direct:other', agentId: 'main' }, 0)));
  const publish = (eventId: string, sessionKey: string) => {
    const event = routedEvent(eventId, sessionKey, 'now');
    const { wake } = hub.plan(event, { status: 'queued' });
    hub.deliver(event, { status: 'queued' });
    return wake.status;
  };
  const wakes = () => pushed.map((frame) => JSON.parse(frame) as { method: string; params: { sessions: string[] } }).filter((m) => m.method === 'agent.wake').map((m) => m.params.sessions);
  assert.is(publish('first', 'agent:main:direct:a'), 'sent');
  await nextTurn();
  assert.equal(wakes(), [['agent:main:direct:a']]);
  // The agent handled it at once; then another event for the same session, and one for another.
  assert.equal([publish('again', 'agent:main:direct:a'), publish('elsewhere', 'agent:main:direct:b')], ['coalesced', 'coalesced']);
  await new Promise((resolve) => setTimeout(resolve, WAKE_COALESCE_MS + 100));
  assert.equal(wakes(), [['agent:main:direct:a'], ['agent:main:direct:a', 'agent:main:direct:b']], 'one follow-up names both');
  assert.equal(
    traces.filter((trace) => trace.step === 'wake').map((trace) => trace.eventId),
    ['first', 'again', 'elsewhere'],
    'every event has its wake step',
  );
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

test('a subscriber whose push fails (cut as a slow consumer), an event\'s or a wake\'s, is dropped at once: no receiver of later events, nor the agent\'s presence (review: after a wake, now events answered sent, to no one)', async () => {
  for (const failing of ['event', 'wake'] as const) {
    const hub = new DeliveryHub({ ...emptyStore([]), lastSeqs: (keys) => Promise.resolve(keys.map(() => 0)) }, {
      heartbeatIntervalMs: 60_000,
      replayHighWaterBytes: 1024,
    });
    let open = true;
    const pushed: string[] = [];
    const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => open && (pushed.push(frame), true), close: () => {} };
    // A session subscription: of the agent's other sessions, it is pushed the wakes alone.
    await hub.start(accepted(await hub.subscribe(subscriber, { sessionKey: 'agent:main:main', agentId: 'main' }, 0)));
    await nextTurn();
    const event = (seq: number) => ({ ...routedEvent(`e${seq}`, failing === 'event' ? 'agent:main:main' : 'agent:main:direct:u1', 'now'), seq });

    assert.is(hub.plan(event(1), { status: 'queued' }).receivers, failing === 'event' ? 1 : 0);
    hub.deliver(event(1), { status: 'queued' });
    open = false;
    hub.plan(event(2), { status: 'queued' });
    hub.deliver(event(2), { status: 'queued' });
    // The wake of event 1 went out at the end of its turn; event 2's wake waits for the window's end.
    if (failing === 'wake') await new Promise((resolve) => setTimeout(resolve, WAKE_COALESCE_MS + 50));
    const after = hub.plan(event(3), { status: 'queued' });
    assert.is(after.receivers, 0, failing);
    assert.is(after.wake.status, 'no-agent-connected', failing);
    assert.is(hub.subscriptionCount(1), 0, failing);
    hub.close();
  }
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
  const events = pushed.map((frame) => JSON.parse(frame) as { method: string; params: { event: { seq: number } } }).filter((message) => message.method === 'session.event');
  assert.equal(events.map((message) => message.params.event.seq), [3, 6]);
  hub.close();
});

test('a live agent subscription holds no cursor per session once its replay has settled: its memory does not grow with every session the agent hears from (review: ~200 B a session, for as long as it stayed connected)', async () => {
  const key = (user: string) => `agent:main:slack:direct:${user}`;
  const replayed = { ...routedEvent('first', key('U1'), 'now'), seq: 1 };
  const store: EventStore = {
    ...emptyStore([]),
    lastSeqs: (keys) => Promise.resolve(keys.map(() => 0)),
    pendingSessionKeys: () => Promise.resolve([key('U1')]),
    peek: (sessionKey, { after = 0 }) => Promise.resolve({ events: sessionKey === key('U1') && after < 1 ? [replayed] : [], depth: 1, more: false }),
  };
  const hub = new DeliveryHub(store, { heartbeatIntervalMs: 60_000, replayHighWaterBytes: 1024 });
  const pushed: string[] = [];
  const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
  const subscription = accepted(await hub.subscribe(subscriber, { sessionKey: null, agentId: 'main' }, 0));
  await hub.start(subscription);
  assert.is(subscription.state, 'live');
  // The replayed event's own delivery settles with the commit its replay read: in the same turn, where the cursor still tells it apart.
  hub.deliver(replayed, { status: 'queued' });
  assert.is(subscription.sessionsTracked, 1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(subscription.sessionsTracked, 0);
  for (let i = 1; i <= 100; i++) hub.deliver({ ...routedEvent(`e${i}`, key(`V${i}`), 'next-heartbeat'), seq: 1 }, { status: 'queued' });
  hub.deliver({ ...routedEvent('second', key('U1'), 'next-heartbeat'), seq: 2 }, { status: 'queued' });
  assert.is(subscription.sessionsTracked, 0);
  const events = pushed.map((frame) => JSON.parse(frame) as { method: string; params: { event: { eventId: string } } }).filter((message) => message.method === 'session.event');
  assert.equal(
    events.map((message) => message.params.event.eventId),
    ['first', ...Array.from({ length: 100 }, (_, i) => `e${i + 1}`), 'second'],
  );
  hub.close();
});

test('a heartbeat names, of the sessions its events went to, those that still hold pending events; all of them when the store cannot say (QA: it named a session whose event was acked a minute before)', async () => {
  for (const storeAnswers of [true, false]) {
    const heartbeatIntervalMs = 50;
    const handled = 'agent:main:direct:handled';
    const waiting = 'agent:main:direct:waiting';
    // The replay reads the agent's sessions too: the store fails only after it.
    let failing = false;
    const store: EventStore = {
      ...emptyStore([]),
      pendingSessionKeys: () => (failing ? Promise.reject(new Error('disk on fire')) : Promise.resolve([waiting, 'agent:main:direct:other'])),
    };
    const hub = new DeliveryHub(store, { heartbeatIntervalMs, replayHighWaterBytes: 1024 });
    const pushed: string[] = [];
    const subscriber: Subscriber = { connectionId: 1, bufferedAmount: 0, push: (frame) => (pushed.push(frame), true), close: () => {} };
    const subscription = accepted(await hub.subscribe(subscriber, { sessionKey: null, agentId: 'main' }, 0));
    await hub.start(subscription);
    failing = !storeAnswers;
    for (const sessionKey of [handled, waiting]) {
      const event = routedEvent(sessionKey, sessionKey, 'next-heartbeat');
      hub.plan(event, { status: 'queued' });
      hub.deliver(event, { status: 'queued' });
    }
    const heartbeats = () =>
      pushed
        .map((frame) => JSON.parse(frame) as { method: string; params: { reason: string; sessions: string[] } })
        .filter((message) => message.method === 'agent.wake' && message.params.reason === 'heartbeat');
    await new Promise((resolve) => setTimeout(resolve, heartbeatIntervalMs * 3));
    assert.equal(heartbeats()[0]!.params.sessions, storeAnswers ? [waiting] : [handled, waiting], `store answers: ${storeAnswers}`);
    hub.close();
  }
});

test('a wake that cuts the agent\'s last connection leaves no window behind: the agent\'s next connection is woken at most once per window (review: the old window\'s timer woke it early)', async () => {
  const hub = new DeliveryHub({ ...emptyStore([]), lastSeqs: (keys) => Promise.resolve(keys.map(() => 0)) }, {
    heartbeatIntervalMs: 60_000,
    replayHighWaterBytes: 1024,
  });
  const key = 'agent:main:direct:u1';
  const slow: Subscriber = { connectionId: 1, bufferedAmount: 0, push: () => false, close: () => {} };
  await hub.start(accepted(await hub.subscribe(slow, { sessionKey: 'agent:main:main', agentId: 'main' }, 0)));
  const event = (id: string) => routedEvent(id, key, 'now');
  hub.plan(event('first'), { status: 'queued' });
  hub.deliver(event('first'), { status: 'queued' });
  await nextTurn();
  assert.is(hub.subscriptionCount(1), 0, 'cut by the wake');
  await new Promise((resolve) => setTimeout(resolve, 150));
  const wokenAt: number[] = [];
  const next: Subscriber = {
    connectionId: 2,
    bufferedAmount: 0,
    push: (frame) => ((JSON.parse(frame) as { params: { reason: string } }).params.reason === 'event' && wokenAt.push(performance.now()), true),
    close: () => {},
  };
  await hub.start(accepted(await hub.subscribe(next, { sessionKey: 'agent:main:main', agentId: 'main' }, 0)));
  for (const id of ['second', 'third']) {
    hub.plan(event(id), { status: 'queued' });
    hub.deliver(event(id), { status: 'queued' });
    await nextTurn();
  }
  await new Promise((resolve) => setTimeout(resolve, WAKE_COALESCE_MS + 100));
  assert.is(wokenAt.length, 2, 'the second event\'s wake, then the window\'s follow-up for the third');
  assert.ok(wokenAt[1]! - wokenAt[0]! >= WAKE_COALESCE_MS - 5, `${wokenAt[1]! - wokenAt[0]!} ms apart`);
  hub.close();
});

test.run();
