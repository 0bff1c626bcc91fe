import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CommitQueue, GROUP_TARGET, MAX_WEIGHT_PER_COMMIT, type TransactionObserver } from '../../src/store/commit-queue.js';
import { StoreUnavailableError } from '../../src/store/errors.js';

const test = suite('store/commit-queue');

let dir: string;
let db: Database.Database;
let queue: CommitQueue;

test.before.each(() => {
  dir = fs.mkdtempSync(os.tmpdir() + '/sb-store-');
  db = new Database(path.join(dir, 'queue.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (x TEXT NOT NULL)');
  queue = new CommitQueue(db);
});

test.after.each(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const insert = (x: string) => () => db.prepare('INSERT INTO t (x) VALUES (?)').run(x).changes;
const count = () => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;

test('a batch is capped at MAX_WEIGHT_PER_COMMIT operations; the rest follows in later commits', async () => {
  const ops = 2 * MAX_WEIGHT_PER_COMMIT + 1;
  await Promise.all(Array.from({ length: ops }, (_, i) => queue.run(insert(`${i}`))));
  assert.equal(queue.metrics(), { commits: 3, opsCommitted: ops, durableCommits: 3 });
  assert.is(count(), ops);
});

test('an operation counts as its weight, read when its batch is formed; one heavier than a batch commits alone', async () => {
  const committedWith: number[] = [];
  const weighed = (x: string, weight: () => number) =>
    queue.run(() => {
      insert(x)();
      return committedWith.push(queue.metrics().commits);
    }, { weight });
  let grown = 1;
  const ran = [
    weighed('heavy', () => MAX_WEIGHT_PER_COMMIT + 1),
    weighed('half', () => MAX_WEIGHT_PER_COMMIT / 2),
    weighed('grown', () => grown),
    queue.run(insert('light')),
  ];
  // Queued with a weight of 1, weighed at 500 by the time the batch forms: 'light' waits.
  grown = MAX_WEIGHT_PER_COMMIT / 2;
  await Promise.all(ran);
  assert.equal(committedWith, [0, 1, 1], 'heavy alone, then half and grown together, then light');
  assert.equal(queue.metrics(), { commits: 3, opsCommitted: 4, durableCommits: 3 });
  assert.is(count(), 4);
});

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** `promise`, or a failure once `ms` have passed: a wait that never ends must fail, not hang. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

test('the callers a commit answered share the next commit, even when their operations arrive over several turns of the event loop', async () => {
  // A wait that no test reaches: only the callers' return can end it.
  queue = new CommitQueue(db, undefined, { groupWaitMs: 60_000 });
  await Promise.all(['a', 'b', 'c'].map((x) => queue.run(insert(x))));
  const next: Array<Promise<number>> = [];
  for (const x of ['d', 'e', 'f']) {
    next.push(queue.run(insert(x)));
    await nextTurn();
  }
  await within(Promise.all(next), 5_000, 'the third caller completes the group');
  assert.equal(queue.metrics(), { commits: 2, opsCommitted: 6, durableCommits: 2 });
});

test('a batch goes without the callers that do not come back once the wait is over', async () => {
  queue = new CommitQueue(db, undefined, { groupWaitMs: 20 });
  await Promise.all(['a', 'b', 'c'].map((x) => queue.run(insert(x))));
  const started = performance.now();
  await within(queue.run(insert('alone')), 5_000, 'a lone operation');
  // A lower bound only: a loaded machine makes it longer, never shorter.
  assert.ok(performance.now() - started >= 15, 'it waited for the others first');
  assert.equal(queue.metrics(), { commits: 2, opsCommitted: 4, durableCommits: 2 });
});

test('no wait once the last answers are older than the wait, nor beyond a batch of GROUP_TARGET', async () => {
  // Waiting would take the whole 2 s; a commit, even on a slow disk, takes far less than 1.5 s.
  queue = new CommitQueue(db, undefined, { groupWaitMs: 2_000 });
  await Promise.all(['a', 'b', 'c'].map((x) => queue.run(insert(x))));
  await new Promise((resolve) => setTimeout(resolve, 2_100));
  await within(queue.run(insert('much later')), 1_500, 'an operation long after the last answers');

  await Promise.all(Array.from({ length: 2 * GROUP_TARGET }, (_, i) => queue.run(insert(`burst ${i}`))));
  await within(Promise.all(Array.from({ length: GROUP_TARGET }, (_, i) => queue.run(insert(`target ${i}`)))), 1_500, 'a full group');
  assert.equal(queue.metrics().commits, 4);
});

test('an operation queued by a running operation goes to the next batch', async () => {
  let inner: Promise<number> | undefined;
  await queue.run(() => {
    inner = queue.run(insert('inner'));
    return insert('outer')();
  });
  assert.is(await inner, 1);
  assert.equal(queue.metrics(), { commits: 2, opsCommitted: 2, durableCommits: 2 });
});

test('a storage failure rejects the whole batch with StoreUnavailableError and stores nothing', async () => {
  // max_page_count makes the file "full" at its current size: SQLITE_FULL without filling a disk.
  const pages = db.pragma('page_count', { simple: true }) as number;
  db.pragma(`max_page_count = ${pages}`);
  const big = 'x'.repeat(1_000_000);
  const results = await Promise.allSettled([queue.run(insert('small')), queue.run(insert(big)), queue.run(insert('after'))]);

  for (const result of results) {
    assert.is(result.status, 'rejected');
    const reason = result.status === 'rejected' ? (result.reason as StoreUnavailableError) : undefined;
    assert.instance(reason, StoreUnavailableError);
    assert.is(reason!.sqliteCode, 'SQLITE_FULL');
    assert.match(reason!.message, 'the call changed nothing');
  }
  assert.is(count(), 0);
  assert.equal(queue.metrics(), { commits: 0, opsCommitted: 0, durableCommits: 0 });

  db.pragma('max_page_count = 1073741823');
  assert.is(await queue.run(insert('recovered')), 1, 'the next batch commits once there is room');
  assert.is(count(), 1);
});

test('writeHealth: a batch of reads that fails says nothing of writes', async () => {
  // A storage failure that takes the transaction down with it, as SQLITE_IOERR may.
  const failingRead = () => {
    db.exec('ROLLBACK');
    throw new Database.SqliteError('disk I/O error', 'SQLITE_IOERR');
  };
  const failed = await queue.run(failingRead, { readOnly: true }).catch((error: unknown) => error);
  assert.instance(failed, StoreUnavailableError, 'the batch failed as a whole');
  assert.equal(queue.writeHealth(), { failingSince: undefined, failure: undefined });
});

test('writeHealth: failing from the first batch that fails, with the last failure; a read that commits meanwhile changes nothing, a write that commits ends it, and says so once', async () => {
  const recovered: number[] = [];
  queue = new CommitQueue(db, undefined, { onWritesRecovered: (failedSince) => recovered.push(failedSince) });
  await queue.run(insert('before'));
  assert.equal(queue.writeHealth(), { failingSince: undefined, failure: undefined });
  const pages = db.pragma('page_count', { simple: true }) as number;
  db.pragma(`max_page_count = ${pages}`);
  const big = 'x'.repeat(1_000_000);
  const before = Date.now();
  const first = await queue.run(insert(big)).catch((error: StoreUnavailableError) => error);
  const since = queue.writeHealth().failingSince!;
  assert.ok(since >= before && since <= Date.now(), String(since));
  assert.is(queue.writeHealth().failure, (first as StoreUnavailableError).message);
  await queue.run(insert(`${big}!`)).catch(() => undefined);
  assert.is(queue.writeHealth().failingSince, since, 'since the first');
  assert.match(queue.writeHealth().failure!, 'SQLITE_FULL');
  assert.is(await queue.run(count, { readOnly: true }), 1);
  assert.is(queue.writeHealth().failingSince, since, 'a read says nothing of writes');
  assert.is(await queue.run(() => 'refused for want of room: nothing written'), 'refused for want of room: nothing written');
  assert.is(queue.writeHealth().failingSince, since, 'nor does a batch that commits without changing a row (review: status flapped)');
  assert.equal(recovered, []);
  db.pragma('max_page_count = 1073741823');
  await queue.run(insert('recovered'));
  assert.equal(queue.writeHealth(), { failingSince: undefined, failure: undefined });
  await queue.run(insert('and on'));
  assert.equal(recovered, [since], 'told once, with when the failures began');
});

test('the read-only operations of a batch that fails are answered again, together, from what is committed: not the failed writes, and their own writes are taken back', async () => {
  await queue.run(insert('committed'));
  const pages = db.pragma('page_count', { simple: true }) as number;
  db.pragma(`max_page_count = ${pages}`);
  const events: string[] = [];
  queue = new CommitQueue(db, {
    batchBegun: () => events.push('begun'),
    operationStart: () => events.push('op'),
    operationRolledBack: () => events.push('op rolled back'),
    beforeCommit: () => events.push('before commit'),
    batchCommitted: () => events.push('committed'),
    batchRolledBack: () => events.push('rolled back'),
  });
  const rows = () => (db.prepare('SELECT x FROM t ORDER BY rowid').all() as { x: string }[]).map((row) => row.x);
  const [written, read, tooBig, readAfterWrite] = await Promise.allSettled([
    queue.run(insert('small')),
    queue.run(rows, { readOnly: true }),
    queue.run(insert('x'.repeat(1_000_000))),
    // A write on its way to the read (a row brought up to date, say) is seen by it, then taken back.
    queue.run(() => (insert('scratch')(), rows()), { readOnly: true }),
  ]);
  assert.equal([written.status, tooBig.status], ['rejected', 'rejected']);
  assert.instance(written.status === 'rejected' && written.reason, StoreUnavailableError);
  assert.equal(read, { status: 'fulfilled', value: ['committed'] });
  assert.equal(readAfterWrite, { status: 'fulfilled', value: ['committed', 'scratch'] });
  assert.equal(rows(), ['committed'], 'nothing of the failed batch, nor of the reads, was kept');
  // The failed batch rolled back, then both reads again in one transaction, rolled back as well.
  assert.equal(events.slice(-5), ['rolled back', 'begun', 'op', 'op', 'rolled back']);

  // Run again, a read that fails on the storage gets the batch's failure; one that throws its own
  // error gets that error, as it would in a batch that commits; the others are still answered.
  const bug = new Error('a bug in the read');
  const [, storage, own, fine] = await Promise.allSettled([
    queue.run(insert('x'.repeat(1_000_000))),
    queue.run(() => insert('y'.repeat(1_000_000))(), { readOnly: true }),
    queue.run(() => {
      throw bug;
    }, { readOnly: true }),
    queue.run(rows, { readOnly: true }),
  ]);
  assert.instance(storage.status === 'rejected' && storage.reason, StoreUnavailableError);
  assert.equal(own, { status: 'rejected', reason: bug });
  assert.equal(fine, { status: 'fulfilled', value: ['committed'] });
  db.pragma('max_page_count = 1073741823');
});

const synchronous = () => db.pragma('synchronous', { simple: true }) as number;
const FULL = 2;
const NORMAL = 1;

test('a batch of non-durable operations alone commits with synchronous NORMAL; one durable operation makes it FULL', async () => {
  const notDurable = { durable: false };
  // The level an operation sees is the one its batch commits with.
  const alone = await Promise.all([queue.run(synchronous, notDurable), queue.run(insert('trace'), notDurable)]);
  assert.equal(alone, [NORMAL, 1]);
  const mixed = await Promise.all([queue.run(synchronous, notDurable), queue.run(insert('event')), queue.run(synchronous)]);
  assert.equal(mixed, [FULL, 1, FULL]);
  assert.is(await queue.run(synchronous, { durable: true }), FULL);
  assert.is(await queue.run(synchronous, notDurable), NORMAL);
  assert.is(await queue.run(synchronous), FULL, 'durable is the default');
  assert.equal(queue.metrics(), { commits: 5, opsCommitted: 8, durableCommits: 3 });
  assert.is(count(), 2);
});

test('the level is set between batches: a failing batch does not leave a durable one under NORMAL', async () => {
  await queue.run(insert('trace'), { durable: false });
  db.exec('BEGIN');
  // A transaction left open by someone else: the next batch cannot begin (nor set the level).
  const rejected = await queue.run(insert('event')).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.instance(rejected, StoreUnavailableError);
  if (db.inTransaction) db.exec('ROLLBACK');
  assert.is(await queue.run(synchronous), FULL);
  assert.is(count(), 1);
});

/** An observer that logs its calls, and what the table held at beforeCommit. */
function recorder(onBeforeCommit: () => void = () => undefined) {
  const calls: string[] = [];
  const observer: TransactionObserver = {
    batchBegun: () => calls.push(`begun (${count()} rows)`),
    operationStart: () => calls.push('start'),
    operationRolledBack: () => calls.push(`rolled back (${count()} rows)`),
    beforeCommit: () => {
      calls.push(`before commit (${count()} rows)`);
      onBeforeCommit();
    },
    batchCommitted: () => calls.push(`committed (${count()} rows)`),
    batchRolledBack: () => calls.push(`batch rolled back (${count()} rows)`),
  };
  return { calls, observer };
}

const fail = () => {
  throw new Error('operation failed');
};

test('observer: told of each operation, of the unguarded run rolled back, of the guarded rerun and its savepoint rolled back, of the commit to come and of the commit', async () => {
  const { calls, observer } = recorder();
  queue = new CommitQueue(db, observer);
  const results = await Promise.allSettled([
    queue.run(insert('a')),
    queue.run(() => {
      insert('doomed')();
      fail();
    }),
    queue.run(insert('b')),
  ]);
  assert.equal(
    results.map((result) => result.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.equal(calls, [
    ...['begun (0 rows)', 'start', 'start', 'batch rolled back (0 rows)'],
    ...['begun (0 rows)', 'start', 'start', 'rolled back (1 rows)', 'start', 'before commit (2 rows)', 'committed (2 rows)'],
  ]);
  assert.is(count(), 2);
});

test('a batch runs once without savepoints; when an operation throws, it runs again and each operation settles with its last run', async () => {
  const runs = { a: 0, b: 0 };
  const counted = (name: keyof typeof runs) => () => {
    insert(name)();
    return ++runs[name];
  };
  assert.equal(await Promise.all([queue.run(counted('a')), queue.run(counted('b'))]), [1, 1]);

  let failures = 0;
  const results = await Promise.allSettled([
    queue.run(counted('a')),
    queue.run(() => {
      insert('doomed')();
      failures++;
      fail();
    }),
    queue.run(counted('b')),
  ]);
  assert.equal(
    results.map((result) => (result.status === 'fulfilled' ? result.value : (result.reason as Error).message)),
    [3, 'operation failed', 2],
    'a ran in both runs; b only in the rerun, as the first stopped at the failure',
  );
  assert.is(failures, 2);
  assert.equal(db.prepare<[], string>('SELECT x FROM t ORDER BY rowid').pluck().all(), ['a', 'b', 'a', 'b']);
  assert.equal(queue.metrics(), { commits: 2, opsCommitted: 4, durableCommits: 2 });
});

test('observer: beforeCommit runs inside the transaction; its writes commit with the batch, its throw aborts it', async () => {
  let writeBack = () => insert('written back')();
  const { calls, observer } = recorder(() => writeBack());
  queue = new CommitQueue(db, observer);
  await queue.run(insert('a'));
  assert.equal(
    db.prepare<[], string>('SELECT x FROM t ORDER BY rowid').pluck().all(),
    ['a', 'written back'],
  );

  calls.length = 0;
  writeBack = fail;
  const results = await Promise.allSettled([queue.run(insert('b')), queue.run(insert('c'))]);
  for (const result of results) {
    assert.is(result.status, 'rejected');
    assert.instance(result.status === 'rejected' && result.reason, StoreUnavailableError);
  }
  assert.equal(calls, ['begun (2 rows)', 'start', 'start', 'before commit (4 rows)', 'batch rolled back (2 rows)']);
  assert.equal(queue.metrics(), { commits: 1, opsCommitted: 1, durableCommits: 1 });
});

test('observer: a storage failure is one batch rollback, not an operation rollback', async () => {
  const { calls, observer } = recorder();
  queue = new CommitQueue(db, observer);
  await queue.run(insert('kept'));
  calls.length = 0;
  const pages = db.pragma('page_count', { simple: true }) as number;
  db.pragma(`max_page_count = ${pages}`);
  const results = await Promise.allSettled([queue.run(insert('small')), queue.run(insert('x'.repeat(1_000_000)))]);
  assert.equal(
    results.map((result) => result.status),
    ['rejected', 'rejected'],
  );
  assert.equal(calls, ['begun (1 rows)', 'start', 'start', 'batch rolled back (1 rows)']);
});

test('observer: a throw from batchBegun aborts the batch before any operation runs', async () => {
  let begin: () => void = fail;
  const observer = { ...recorder().observer, batchBegun: () => begin() };
  queue = new CommitQueue(db, observer);
  const ran: string[] = [];
  const results = await Promise.allSettled([queue.run(() => ran.push('a'))]);
  assert.is(results[0]!.status, 'rejected');
  assert.instance(results[0]!.status === 'rejected' && results[0]!.reason, StoreUnavailableError);
  assert.equal(ran, []);
  begin = () => undefined;
  assert.is(await queue.run(insert('after')), 1);
});

test.run();
