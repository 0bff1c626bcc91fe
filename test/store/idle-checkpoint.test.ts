import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { IdleCheckpoint } from '../../src/store/idle-checkpoint.js';

const test = suite('store/idle-checkpoint');

const IDLE_MS = 40;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function counted() {
  const runs = { count: 0 };
  return { runs, idle: new IdleCheckpoint(() => runs.count++, IDLE_MS) };
}

test('nothing committed, nothing to fold: no checkpoint', async () => {
  const { runs } = counted();
  await sleep(IDLE_MS * 3);
  assert.is(runs.count, 0);
});

test('once idle after a batch, one checkpoint; the next batch arms the next one', async () => {
  const { runs, idle } = counted();
  idle.batchCommitted();
  idle.batchCommitted();
  await sleep(IDLE_MS * 3);
  assert.is(runs.count, 1);
  idle.batchCommitted();
  await sleep(IDLE_MS * 3);
  assert.is(runs.count, 2);
  idle.stop();
});

/** Batches every IDLE_MS / 4 for `ms`; when each batch and each checkpoint came (performance.now()). */
async function busyFor(ms: number, first: (idle: IdleCheckpoint) => void = () => {}) {
  const times = { batches: [] as number[], checkpoints: [] as number[] };
  const idle = new IdleCheckpoint(() => times.checkpoints.push(performance.now()), IDLE_MS);
  first(idle);
  const end = performance.now() + ms;
  while (performance.now() < end) {
    idle.batchCommitted();
    times.batches.push(performance.now());
    await sleep(IDLE_MS / 4);
  }
  return { idle, times };
}

// Timed by what happened, not by the sleeps: a loaded machine that stalls a sleep past IDLE_MS
// makes the store idle for real, and a checkpoint then is right.
test('batches that keep coming put it off: each checkpoint comes IDLE_MS after the batch before it, and one comes after the last', async () => {
  const { idle, times } = await busyFor(IDLE_MS * 4);
  const lastBatch = times.batches.at(-1)!;
  await sleep(IDLE_MS * 3);
  assert.ok(times.checkpoints.length >= 1);
  for (const at of times.checkpoints) {
    const before = times.batches.filter((batch) => batch <= at).at(-1)!;
    assert.ok(at - before >= IDLE_MS - 1, `a checkpoint ${(at - before).toFixed(1)} ms after a batch`);
  }
  assert.ok(times.checkpoints.at(-1)! >= lastBatch + IDLE_MS - 1, 'the last comes after the last batch');
  idle.stop();
});

test('a batch that failed checkpoints at the next tick, however busy the store (a full disk with clients retrying)', async () => {
  const { idle, times } = await busyFor(IDLE_MS * 10, (first) => first.batchRolledBack());
  assert.ok(times.checkpoints.length >= 1, 'while batches came');
  assert.ok(times.checkpoints[0]! <= times.batches.at(-1)!, 'before they stopped');
  idle.stop();
});

test('stopped: no checkpoint, now or later', async () => {
  const { runs, idle } = counted();
  idle.batchCommitted();
  idle.stop();
  idle.batchCommitted();
  await sleep(IDLE_MS * 3);
  assert.is(runs.count, 0);
});

test.run();
