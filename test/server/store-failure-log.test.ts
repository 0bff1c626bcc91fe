import Database from 'better-sqlite3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { backgroundFailureLog, storeFailureLog } from '../../src/server/store-failure-log.js';

const test = suite('server/store-failure-log');

const full = (n: number) => new StoreUnavailableError(new Database.SqliteError(`database or disk is full ${n}`, 'SQLITE_FULL'));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const line = (calls: string, n: number) =>
  `store unavailable: ${calls} answered STORE_UNAVAILABLE (the event store failed (SQLITE_FULL: database or disk is full ${n}); the call changed nothing: free disk space or check the data dir, then retry)`;

test('the first failure is logged at once; later ones are held back for the interval, then logged with their count and the last of them', async () => {
  const lines: string[] = [];
  const failures = storeFailureLog((text) => lines.push(text), 100);
  failures.happened(full(1));
  assert.equal(lines, [line('a call', 1)]);
  failures.happened(full(2));
  failures.happened(full(3));
  assert.is(lines.length, 1, 'held back within the interval');
  await sleep(150);
  assert.equal(lines, [line('a call', 1), line('2 calls', 3)], 'told once the interval ended, without another failure to trigger it');
  failures.happened(full(4));
  assert.is(lines.length, 2, 'the interval counts from the last line');
  failures.flush();
  assert.equal(lines.at(-1), line('a call', 4), 'flush: what is held back, now');
  failures.flush();
  await sleep(150);
  assert.is(lines.length, 3, 'nothing held back: nothing more');
});

test('restart: what is held back is logged, and the next failure at once, not a minute later (QA: writes failed again unsaid after the log said they went through)', async () => {
  const lines: string[] = [];
  const failures = storeFailureLog((text) => lines.push(text), 60_000);
  failures.happened(full(1));
  failures.happened(full(2));
  failures.restart();
  assert.equal(lines, [line('a call', 1), line('a call', 2)]);
  failures.happened(full(3));
  assert.equal(lines.at(-1), line('a call', 3), 'at once');
  failures.happened(full(4));
  assert.is(lines.length, 3, 'and counted again after it');
  failures.restart();
  assert.equal(lines.at(-1), line('a call', 4));
});

test('background writes that fail are counted too: one line at once, then one for those held back', async () => {
  const lines: string[] = [];
  const failures = backgroundFailureLog((text) => lines.push(text), 100);
  for (let n = 1; n <= 50; n++) failures.happened(new Database.SqliteError(`database or disk is full ${n}`, 'SQLITE_FULL'));
  assert.equal(lines, ['background store write failed (traces, pruning: never events): database or disk is full 1']);
  await sleep(150);
  assert.equal(lines.at(-1), 'background store write failed 49 times (traces, pruning: never events): database or disk is full 50');
  assert.is(lines.length, 2);
});

test.run();
