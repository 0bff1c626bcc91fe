/**
 * PendingIndex alone: a session's pending events in seq order, and taking back what a rolled-back
 * operation or batch changed, as the commit queue reports it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PendingIndex } from '../../src/store/pending-index.js';

const test = suite('store/pending-index');

/** Session 1 with seqs 1..5 at ids 11..15, session 2 with seq 1 at id 20, as committed. */
function indexed(): PendingIndex {
  const rows = [1, 2, 3, 4, 5].map((seq) => ({ id: 10 + seq, sessionId: 1, seq }));
  rows.splice(2, 0, { id: 20, sessionId: 2, seq: 1 });
  return PendingIndex.fromRows(rows);
}

const seqs = (index: PendingIndex, sessionId: number) => index.after(sessionId, 0, 1_000).map((ref) => ref.seq);

test('reads: the events after a seq, oldest first and within the limit; the newest; how many lie beyond a seq, or in a range', () => {
  const index = indexed();
  assert.equal(index.after(1, 2, 2), [
    { seq: 3, id: 13 },
    { seq: 4, id: 14 },
  ]);
  assert.equal(index.after(1, 5, 10), []);
  assert.equal(index.after(3, 0, 10), [], 'a session with nothing pending');
  assert.equal(index.newest(1), { seq: 5, id: 15 });
  assert.is(index.newest(3), undefined);
  assert.equal([index.countAfter(1, 0), index.countAfter(1, 3), index.countAfter(1, 5), index.countAfter(3, 0)], [5, 2, 0, 0]);
  assert.equal([index.countBetween(1, 0, 5), index.countBetween(1, 1, 3), index.countBetween(1, 3, 3), index.countBetween(1, 0, Number.POSITIVE_INFINITY), index.countBetween(3, 0, 9)], [5, 2, 0, 5, 0]);
  assert.equal([...index.sessionIds()].sort(), [1, 2]);
});

test('remove takes the events with a seq in (after, upTo], from the front or the middle, and returns them', () => {
  const index = indexed();
  assert.equal(index.remove(1, 1, 3), [
    { seq: 2, id: 12 },
    { seq: 3, id: 13 },
  ]);
  assert.equal(seqs(index, 1), [1, 4, 5]);
  assert.equal(index.remove(1, 0, 1), [{ seq: 1, id: 11 }]);
  assert.equal(index.remove(1, 5, 9), [], 'nothing beyond the newest');
  assert.equal(index.remove(2, 0, 1), [{ seq: 1, id: 20 }]);
  assert.equal([...index.sessionIds()], [1], 'a session left with nothing is forgotten');
});

test('an operation rolled back takes back its own changes only, in reverse order', () => {
  const index = indexed();
  index.batchBegun();
  index.operationStart();
  index.add(1, 6, 16);
  index.operationStart();
  index.remove(1, 0, 6);
  index.add(1, 7, 17);
  index.add(3, 1, 30);
  index.operationRolledBack();
  assert.equal(seqs(index, 1), [1, 2, 3, 4, 5, 6], 'the first operation stays');
  assert.equal(seqs(index, 3), []);
  assert.equal([...index.sessionIds()].sort(), [1, 2]);
});

test('a batch rolled back takes back all of it; once committed, nothing is taken back any more', () => {
  const index = indexed();
  index.batchBegun();
  index.operationStart();
  index.remove(2, 0, 1);
  index.add(1, 6, 16);
  index.batchRolledBack();
  assert.equal([seqs(index, 1), seqs(index, 2)], [[1, 2, 3, 4, 5], [1]]);

  index.batchBegun();
  index.operationStart();
  index.add(1, 6, 16);
  index.remove(2, 0, 1);
  index.beforeCommit();
  index.batchCommitted();
  // The next batch fails before it begins (BEGIN failed): its rollback must not undo the last one.
  index.batchRolledBack();
  assert.equal([seqs(index, 1), seqs(index, 2)], [[1, 2, 3, 4, 5, 6], []]);
});

test('a long removal is taken back whole (more events than a call takes arguments)', () => {
  const count = 300_000;
  const index = PendingIndex.fromRows(Array.from({ length: count }, (_, i) => ({ id: i + 1, sessionId: 1, seq: i + 1 })));
  index.batchBegun();
  index.operationStart();
  assert.is(index.remove(1, 0, count - 1).length, count - 1);
  index.batchRolledBack();
  assert.is(index.countAfter(1, 0), count);
  assert.equal(index.after(1, count - 2, 5), [
    { seq: count - 1, id: count - 1 },
    { seq: count, id: count },
  ]);
});

test('front removals (acks, drops at the cap) at a long session: a batch of them is taken back whole; once committed, what is left reads the same', () => {
  const count = 300_000;
  const index = PendingIndex.fromRows(Array.from({ length: count }, (_, i) => ({ id: i + 1, sessionId: 1, seq: i + 1 })));
  index.batchBegun();
  for (let seq = count + 1; seq <= count + 1_000; seq++) {
    index.operationStart();
    index.add(1, seq, seq);
    index.remove(1, 0, seq - count);
  }
  index.batchRolledBack();
  assert.equal([index.countAfter(1, 0), index.newest(1)], [count, { seq: count, id: count }]);

  // Committed, the dead front is cut, and what is left reads the same.
  index.batchBegun();
  index.operationStart();
  index.remove(1, 0, 10);
  index.remove(1, 20, 30);
  index.batchCommitted();
  assert.equal(index.after(1, 0, 3), [
    { seq: 11, id: 11 },
    { seq: 12, id: 12 },
    { seq: 13, id: 13 },
  ]);
  assert.equal(index.after(1, 19, 2), [
    { seq: 20, id: 20 },
    { seq: 31, id: 31 },
  ]);
  assert.is(index.countAfter(1, 0), count - 20);
});

test('built from rows out of order (nothing writes them so): each session is sorted by seq', () => {
  const index = PendingIndex.fromRows([
    { id: 1, sessionId: 1, seq: 2 },
    { id: 2, sessionId: 1, seq: 1 },
    { id: 3, sessionId: 1, seq: 3 },
  ]);
  assert.equal(index.after(1, 0, 10), [
    { seq: 1, id: 2 },
    { seq: 2, id: 1 },
    { seq: 3, id: 3 },
  ]);
});

test.run();
