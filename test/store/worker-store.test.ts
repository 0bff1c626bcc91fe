/**
 * WorkerEventStore: SqliteEventStore's behaviour is tested in sqlite.test.ts; here, what crossing
 * to its worker thread must not change: results, order, durability, and errors by class and code.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DATA_FILES } from '../../src/protocol/constants.js';
import {
  openStore,
  StoreClosedError,
  StoreLockedError,
  StoreOpenError,
  type AppendOutcome,
  type AppendRequest,
  type StoreOptions,
  type WorkerEventStore,
} from '../../src/store/index.js';

const test = suite('store/worker-store');

const dirs: string[] = [];
const stores: WorkerEventStore[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-worker-store-'));
  dirs.push(dir);
  return dir;
}

async function open(dir: string, extra: Partial<StoreOptions> = {}): Promise<WorkerEventStore> {
  const store = await openStore(dir, { maxPendingPerSession: 3, ...extra });
  stores.push(store);
  return store;
}

const INGRESS = { kind: 'test', connectionId: 7 };

/** The result its complete() builds: which call of it this was, and what it was given. */
interface Built {
  call: number;
  outcome: AppendOutcome;
}

function request(text: string, idempotencyKey?: string): AppendRequest<Built> & { calls: AppendOutcome[] } {
  const calls: AppendOutcome[] = [];
  return {
    event: { sessionKey: 's', agentId: 'main', text, mode: 'now', contextKey: null },
    ingress: INGRESS,
    ...(idempotencyKey === undefined ? {} : { idempotency: { key: idempotencyKey, fingerprint: `fp:${text}` } }),
    complete: (outcome) => ({ call: calls.push(outcome), outcome }),
    calls,
  };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

test.after.each(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

test('append: complete builds the result on this thread, once, from the committed outcome', async () => {
  const store = await open(tempDir());
  const first = request('one');
  const appended = await store.append(first);
  assert.is(appended.status, 'stored');
  if (appended.status !== 'stored') return;
  assert.is(first.calls.length, 1);
  assert.equal(appended.result, { call: 1, outcome: appended.outcome });
  assert.is(appended.outcome.seq, 1);
  assert.is(appended.outcome.status, 'queued');
  const read = await store.peek('s', { limit: 10 });
  assert.equal(
    read.events.map(({ eventId, seq, text }) => ({ eventId, seq, text })),
    [{ eventId: appended.outcome.eventId, seq: 1, text: 'one' }],
  );
});

test('append with an idempotency key: its result is built in the transaction and stored; a repeat returns it, a new fingerprint conflicts', async () => {
  const dir = tempDir();
  const store = await open(dir);
  const first = request('keyed', 'k1');
  const stored = await store.append(first);
  assert.is(stored.status, 'stored');
  if (stored.status !== 'stored') return;
  assert.is(first.calls.length, 1, 'complete ran once, for the transaction');
  assert.equal(stored.result, { call: 1, outcome: stored.outcome });

  const repeat = request('keyed', 'k1');
  assert.equal(await store.append(repeat), { status: 'duplicate', result: stored.result });
  assert.is(repeat.calls.length, 0);
  assert.equal(await store.append(request('other text', 'k1')), { status: 'conflict' });

  await store.close();
  const reopened = await open(dir);
  assert.equal(await reopened.append(request('keyed', 'k1')), { status: 'duplicate', result: stored.result }, 'the record is durable');
  assert.is((await reopened.stats()).pending, 1);
});

test('append with an idempotency key whose complete throws: that append rejects with the error and stores nothing; the store goes on', async () => {
  const store = await open(tempDir());
  const failing = request('doomed', 'k-doomed');
  failing.complete = () => {
    throw new TypeError('no result for you');
  };
  const besides = store.append(request('besides'));
  const error = await rejection(store.append(failing));
  assert.instance(error, TypeError);
  assert.is(error.message, 'no result for you');
  assert.is((await besides).status, 'stored', 'the rest of its batch commits');
  const retried = await store.append(request('doomed', 'k-doomed'));
  assert.is(retried.status, 'stored', 'the key was never recorded');
  assert.equal(
    (await store.peek('s', { limit: 10 })).events.map((event) => event.text),
    ['besides', 'doomed'],
  );
});

test('calls and traces cross in the order they were made', async () => {
  const store = await open(tempDir(), { maxPendingPerSession: 100 });
  const appends = Array.from({ length: 50 }, (_, i) => store.append(request(`event ${i}`)));
  const seqs = (await Promise.all(appends)).map((appended) => (appended.status === 'stored' ? appended.outcome.seq : -1));
  assert.equal(seqs, Array.from({ length: 50 }, (_, i) => i + 1));

  const appended = await store.append(request('traced'));
  if (appended.status !== 'stored') throw new Error('expected stored');
  const { eventId, seq } = appended.outcome;
  const at = Date.now();
  store.recordTrace([{ eventId, step: 'delivered', at, detail: { receivers: 1 } }]);
  const acked = store.ack('s', seq, { connectionId: 9 });
  assert.equal(await acked, { status: 'acked', acked: 51, depth: 0, lastSeq: 51 });
  assert.equal(
    (await store.trace(eventId)).map((entry) => entry.step),
    ['accepted', 'stored', 'delivered', 'acked'],
  );
});

test('reads, tokens and metrics come back as the store answered them', async () => {
  const store = await open(tempDir());
  await store.append(request('one'));
  assert.equal(await store.stats(), { sessions: 1, pending: 1 });
  assert.equal(await store.stats('nobody'), { sessions: 0, pending: 0 });
  assert.equal(await store.pendingSessionKeys('main'), ['s']);
  const listed = await store.listSessions({ limit: 10 });
  assert.equal(listed.sessions.map((session) => [session.sessionKey, session.pending]), [['s', 1]]);
  assert.is(listed.more, false);
  const drained = await store.drain('s', { limit: 10 });
  assert.equal(drained.events.map((event) => event.text), ['one']);
  assert.is(drained.depth, 0);

  const token = { tokenId: 't1', name: null, agentId: 'main', scopes: ['publish' as const], hash: 'h1', createdAt: 1, revokedAt: null };
  assert.is(await store.createToken(token), undefined);
  assert.equal(await store.listTokens(), [token]);
  assert.is(await store.revokeToken('nope'), undefined);
  assert.is((await store.revokeToken('t1'))?.tokenId, 't1');

  const metrics = await store.storeMetrics();
  assert.ok(metrics.commits >= 1 && metrics.opsCommitted >= metrics.commits, JSON.stringify(metrics));
});

test('errors keep their class, code and SQLite code across the thread', async () => {
  const dir = tempDir();
  await open(dir);
  const locked = await rejection(openStore(dir, { maxPendingPerSession: 3 }));
  assert.instance(locked, StoreLockedError);
  assert.is((locked as StoreLockedError).code, 'STORE_LOCKED');
  assert.match(locked.message, `data dir ${dir} is in use by another switchboard gateway`);

  const garbage = tempDir();
  fs.writeFileSync(path.join(garbage, DATA_FILES.database), 'definitely not a SQLite database\n'.repeat(200));
  const notADatabase = await rejection(openStore(garbage, { maxPendingPerSession: 3 }));
  assert.instance(notADatabase, StoreOpenError);
  assert.is((notADatabase as StoreOpenError).code, 'STORE_OPEN_FAILED');
  assert.is((notADatabase as StoreOpenError).sqliteCode, 'SQLITE_NOTADB');

  assert.instance(await rejection(openStore(tempDir(), { maxPendingPerSession: 0 })), RangeError);

  const duplicateToken = { tokenId: 't1', name: null, agentId: 'main', scopes: [], hash: 'h', createdAt: 1, revokedAt: null };
  const store = await open(tempDir());
  await store.createToken(duplicateToken);
  const duplicate = await rejection(store.createToken(duplicateToken));
  assert.instance(duplicate, Database.SqliteError);
  assert.is((duplicate as { code?: unknown }).code, 'SQLITE_CONSTRAINT_UNIQUE');
});

test('close waits for the calls made before it, ends the thread and frees the data dir; later calls reject with StoreClosedError', async () => {
  const dir = tempDir();
  const store = await open(dir);
  const queued = store.append(request('last words'));
  await store.close();
  assert.is((await queued).status, 'stored');
  await store.close();
  assert.instance(await rejection(store.append(request('too late'))), StoreClosedError);
  assert.instance(await rejection(store.stats()), StoreClosedError);
  store.recordTrace([{ eventId: 'e', step: 'wake', at: 1, detail: {} }]);

  const reopened = await open(dir);
  assert.is((await reopened.stats()).pending, 1);
  assert.equal(await reopened.trace('e'), []);
});

test('onBackgroundError hears of a trace write that failed on the worker', async () => {
  const errors: unknown[] = [];
  const store = await open(tempDir(), { onBackgroundError: (error) => errors.push(error) });
  store.recordTrace([{ eventId: null as unknown as string, step: 'wake', at: 1, detail: {} }]);
  assert.equal(await store.stats(), { sessions: 0, pending: 0 });
  assert.is(errors.length, 1);
  assert.match((errors[0] as Error).message, 'NOT NULL');
});

test.run();
