/** onAbort: one listener on the signal however many wait on it, each told once, none after it stops listening; wait() through it; CallStop, the client's own stop. */
import { getEventListeners } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CallStop, onAbort, wait } from '../../src/client/abort.js';

const test = suite('client/abort');

test('twenty waiting on one signal add one listener to it; each is told once on abort, but those that stopped listening', () => {
  const controller = new AbortController();
  const told: number[] = [];
  const stops = Array.from({ length: 20 }, (_, i) => onAbort(controller.signal, () => told.push(i)));
  assert.is(getEventListeners(controller.signal, 'abort').length, 1);
  stops[3]!();
  stops[7]!();
  controller.abort();
  controller.abort();
  assert.equal(told, Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 3 && i !== 7));
});

test('no signal: nothing to listen to, and stopping is harmless', () => {
  onAbort(undefined, () => assert.unreachable('told'))();
});

test('wait: true once its time is up, false at once when the signal aborts; twenty on one signal add one listener to it', async () => {
  assert.is(await wait(5, undefined), true);
  const controller = new AbortController();
  const waits = Array.from({ length: 20 }, () => wait(60_000, controller.signal));
  assert.is(getEventListeners(controller.signal, 'abort').length, 1);
  controller.abort();
  assert.equal(await Promise.all(waits), Array.from({ length: 20 }, () => false));
  assert.is(await wait(60_000, controller.signal), false, 'already aborted');
  assert.is(await wait(5, new AbortController().signal), true);
});

test("CallStop: read as a signal is, each listener told once on the first abort (the same function listening twice, twice), none that stopped listening; wait() through it", async () => {
  const stop = new CallStop();
  const told: string[] = [];
  const record = () => told.push('twice');
  onAbort(stop, record);
  onAbort(stop, record);
  const stopped = onAbort(stop, () => told.push('stopped'));
  onAbort(stop, () => told.push('once'));
  stopped();
  const waiting = wait(60_000, stop);
  assert.equal([stop.aborted, stop.reason], [false, undefined]);
  const reason = new Error('timed out');
  stop.abort(reason);
  stop.abort(new Error('again'));
  assert.equal(told, ['twice', 'twice', 'once']);
  assert.equal([stop.aborted, stop.reason], [true, reason]);
  assert.is(await waiting, false);
  assert.is(await wait(60_000, stop), false, 'already aborted');
  onAbort(stop, () => assert.unreachable('told after the abort'));
  assert.is(await wait(5, new CallStop()), true);
});

test.run();
