import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { newEventId, uuidV7Generator } from '../../src/store/ids.js';

const test = suite('store/ids');

/** RFC 9562 text form, version 7, variant 10xx. */
const UUID_V7_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const timeOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
const counterOf = (id: string) => parseInt(id.slice(15, 18), 16);

function assertIncreasing(ids: string[]): void {
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1]! < ids[i]!, `id ${i} sorts after id ${i - 1}: ${ids[i - 1]} < ${ids[i]}`);
  }
}

test('ids are RFC 9562 UUIDs of version 7 and variant 10, carrying the time in ms', () => {
  const before = Date.now();
  const ids = Array.from({ length: 1000 }, () => newEventId());
  const after = Date.now();
  for (const id of ids) {
    assert.match(id, UUID_V7_RE);
    const time = timeOf(id);
    // The counter may carry a busy millisecond into the next one; 1000 ids carry it at most once.
    assert.ok(time >= before && time <= after + 1, `${time} within [${before}, ${after + 1}]`);
  }
  assert.is(new Set(ids).size, ids.length);
});

test('within one millisecond the counter in rand_a orders ids; rand_b is random', () => {
  const next = uuidV7Generator(() => 1_700_000_000_000);
  const ids = Array.from({ length: 1500 }, () => next());
  assertIncreasing(ids);
  assert.ok(ids.every((id) => timeOf(id) === 1_700_000_000_000));
  assert.ok(counterOf(ids[0]!) < 0x800, 'a millisecond starts its counter in the lower half');
  for (let i = 1; i < ids.length; i++) assert.is(counterOf(ids[i]!), counterOf(ids[i - 1]!) + 1);
  const tails = new Set(ids.map((id) => id.slice(19)));
  assert.is(tails.size, ids.length, 'random bits differ from id to id');
});

test('a counter that runs out carries into the next millisecond; the order holds', () => {
  const ms = 1_700_000_000_000;
  const next = uuidV7Generator(() => ms);
  const ids = Array.from({ length: 5000 }, () => next());
  assertIncreasing(ids);
  assert.ok(timeOf(ids.at(-1)!) > ms, 'the timestamp moved on');
  for (const id of ids) assert.match(id, UUID_V7_RE);
});

test('a clock that steps back does not make ids go back', () => {
  let now = 1_700_000_000_500;
  const next = uuidV7Generator(() => now);
  const ids = [next(), next()];
  now -= 400;
  ids.push(next(), next());
  now += 1000;
  ids.push(next());
  assertIncreasing(ids);
  assert.is(timeOf(ids[2]!), 1_700_000_000_500, 'kept the later time');
  assert.is(timeOf(ids[4]!), 1_700_000_001_100);
});

test.run();
