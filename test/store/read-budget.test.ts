/**
 * Read budgets (src/store/read-budget.ts): what one frame's reads take, and what the frames of one
 * connection in flight take together, at their edges.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_READ_TEXT_BYTES, MAX_READ_TEXT_IN_FLIGHT } from '../../src/protocol/constants.js';
import { readBudget, readPool, taken, takeWithinBudget } from '../../src/store/read-budget.js';

const test = suite('store/read-budget');

const SIZE = 64 * 1024;
const PER_FRAME = MAX_READ_TEXT_BYTES / SIZE;
const events = (count: number, size = SIZE) => Array.from({ length: count }, (_, i) => ({ text: String(i).padEnd(size, 'x') }));

test('one frame: reads take up to MAX_READ_TEXT_BYTES together, in whole events', () => {
  const budget = readBudget();
  assert.is(takeWithinBudget(events(PER_FRAME + 1), budget).length, PER_FRAME);
  assert.is(budget.textBytes, 0);
  assert.is(takeWithinBudget(events(1, 1), budget).length, 0, 'nothing left: the next read of the frame gets nothing');
  assert.is(taken(budget), MAX_READ_TEXT_BYTES);

  const partly = readBudget();
  assert.is(takeWithinBudget(events(PER_FRAME - 1), partly).length, PER_FRAME - 1);
  assert.is(takeWithinBudget(events(3), partly).length, 1, 'what is left, in whole events');
});

test('a read alone takes at least one event, even one larger than the budget; one after another read does not', () => {
  const alone = readBudget(readPool());
  assert.is(takeWithinBudget(events(2, MAX_READ_TEXT_BYTES + 1), alone).length, 1);
  const after = readBudget();
  takeWithinBudget(events(1, 10), after);
  assert.is(takeWithinBudget(events(1, MAX_READ_TEXT_BYTES), after).length, 0);
});

test('the frames of one connection take from its pool: past MAX_READ_TEXT_IN_FLIGHT they get nothing until answers give back what they took', () => {
  const pool = readPool();
  const frames = Array.from({ length: MAX_READ_TEXT_IN_FLIGHT / MAX_READ_TEXT_BYTES + 1 }, () => readBudget(pool));
  const read = frames.map((budget) => takeWithinBudget(events(PER_FRAME), budget).length);
  assert.equal(read, [...frames.slice(1).map(() => PER_FRAME), 0], 'the pool holds four frames\' worth');
  assert.is(pool.textBytes, 0);

  pool.textBytes += taken(frames[0]!);
  assert.is(pool.textBytes, MAX_READ_TEXT_BYTES, 'an answered frame gives back what it took');
  const next = readBudget(pool);
  assert.is(takeWithinBudget(events(PER_FRAME + 1), next).length, PER_FRAME);
  for (const budget of [...frames.slice(1), next]) pool.textBytes += taken(budget);
  assert.is(pool.textBytes, MAX_READ_TEXT_IN_FLIGHT, 'all answered: the pool is whole again');
});

test.run();
