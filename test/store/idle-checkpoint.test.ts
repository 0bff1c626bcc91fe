import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { IdleCheckpoint } from '../../src/store/idle-checkpoint.js';

const test = suite('store/idle-checkpoint');

const IDLE_MS = 40;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An IdleCheckpoint over a store whose failing the test sets; when each batch and checkpoint came (performance.now()). */
function observed() {
  const times = { writes: [] as number[], checkpoints: [] as number[] };
  const store = { failing: false };
  const idle = new IdleCheckpoint(() => times.checkpoints.push(performance.now()), () => store.failing, IDLE_MS);
  const commit = (writes: boolean) => {
    idle.beforeCommit(writes);
    idle.batchCommitted();
    if (writes) times.writes.push(performance.now());
  };
  return { idle, times, store, commit };
}

/** Calls `batch` every IDLE_MS / 4 for `ms`. */
async function every(ms: number, batch: () => void): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    batch();
    await sleep(IDLE_MS / 4);
  }
}

test('nothing written, nothing to fold: no checkpoint, reads or not', async () => {
  const { times, commit, idle } = observed();
  await every(IDLE_MS * 3, () => commit(false));
  await sleep(IDLE_MS * 3);
  assert.equal(times.checkpoints, []);
  idle.stop();
});

test('once idle after a write, one checkpoint; the next write calls for the next one', async () => {
  const { times, commit, idle } = observed();
  commit(true);
  commit(true);
  await sleep(IDLE_MS * 4);
  assert.is(times.checkpoints.length, 1);
  commit(true);
  await sleep(IDLE_MS * 4);
  assert.is(times.checkpoints.length, 2);
  idle.stop();
});

// Timed by what happened, not by the sleeps: a loaded machine that stalls a sleep past IDLE_MS
// makes the store idle for real, and a checkpoint then is right.
test('writes that keep coming put it off: each checkpoint comes IDLE_MS after the write before it, and one comes after the last', async () => {
  const { times, commit, idle } = observed();
  await every(IDLE_MS * 4, () => commit(true));
  await sleep(IDLE_MS * 4);
  assert.ok(times.checkpoints.length >= 1);
  for (const at of times.checkpoints) {
    const before = times.writes.filter((write) => write <= at).at(-1)!;
    assert.ok(at - before >= IDLE_MS - 1, `a checkpoint ${(at - before).toFixed(1)} ms after a write`);
  }
  assert.ok(times.checkpoints.at(-1)! >= times.writes.at(-1)! + IDLE_MS - 1, 'the last comes after the last write');
  idle.stop();
});

test('reads that keep coming do not put it off (review: an agent polling peek kept the WAL for good)', async () => {
  const { times, commit, idle } = observed();
  commit(true);
  await every(IDLE_MS * 6, () => commit(false));
  assert.is(times.checkpoints.length, 1, 'while the reads came');
  idle.stop();
});

test('while writes fail, the timer a failed batch set calls for it however busy the store (a full disk with clients retrying)', async () => {
  const { times, store, commit, idle } = observed();
  store.failing = true;
  idle.batchRolledBack();
  await every(IDLE_MS * 20, () => commit(true));
  assert.ok(times.checkpoints.length >= 1, 'while writes came');
  assert.ok(times.checkpoints[0]! <= times.writes.at(-1)!, 'before they stopped');
  idle.stop();
});

test('stopped: no checkpoint, now or later', async () => {
  const { times, commit, idle } = observed();
  commit(true);
  idle.stop();
  commit(true);
  await sleep(IDLE_MS * 3);
  assert.equal(times.checkpoints, []);
});

test.run();
