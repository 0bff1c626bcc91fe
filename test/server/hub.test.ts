/**
 * DeliveryHub against a store that fails: a replay that cannot read its backlog must not go live
 * with a gap the client cannot see. It ends the subscription and closes the connection (1011).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeliveryHub, type Subscriber } from '../../src/server/hub.js';
import type { EventStore } from '../../src/store/types.js';

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
    pendingSessionKeys: fail,
    recordTrace: () => {},
    trace: fail,
    close: () => Promise.resolve(),
  };
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
    const subscription = hub.subscribe(subscriber, target, 0);
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

test.run();
