import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KeptAliveConnections } from '../../src/server/kept-alive.js';

const test = suite('server/kept-alive');

const fakeSocket = () => new EventEmitter() as unknown as Socket;

/** Whether `promise` has settled once pending callbacks have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

test('with no connection, nothing to wait for', async () => {
  assert.ok(await settled(new KeptAliveConnections().closedOrAfter(60_000)));
});

test('waits until every connection served has closed, a connection served twice counting once', async () => {
  const kept = new KeptAliveConnections();
  const [a, b] = [fakeSocket(), fakeSocket()];
  kept.served(a);
  kept.served(a);
  kept.served(b);
  const closed = kept.closedOrAfter(60_000);
  a.emit('close');
  assert.not.ok(await settled(closed), 'b is still open');
  b.emit('close');
  assert.ok(await settled(closed));
  // Closed connections are forgotten: nothing left to wait for.
  assert.ok(await settled(kept.closedOrAfter(60_000)));
  assert.equal([(a as unknown as EventEmitter).listenerCount('close'), (b as unknown as EventEmitter).listenerCount('close')], [0, 0]);
});

test('a connection that never closes is waited for no longer than the linger, and its listener is taken off', async () => {
  const kept = new KeptAliveConnections();
  const idle = fakeSocket();
  kept.served(idle);
  const closed = kept.closedOrAfter(20);
  assert.not.ok(await settled(closed));
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.ok(await settled(closed));
  // The tracking one stays until it closes.
  assert.is((idle as unknown as EventEmitter).listenerCount('close'), 1);
});

test.run();
