/** onAbort: one listener on the signal however many wait on it, each told once, none after it stops listening. */
import { getEventListeners } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { onAbort } from '../../src/client/abort.js';

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

test.run();
