import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RESUME_AFTER_BYTES, SubscriptionCursors } from '../../src/client/cursors.js';
import type { StoredEvent } from '../../src/protocol/wire-types.js';

const test = suite('client/cursors');

const ROUTE = { agentId: 'main', kind: 'main', channel: null, account: null, peer: null, id: null, thread: null, topic: null } as const;

/** Event ids sort as the gateway's do, by when they were issued: `id` is that order. */
function event(sessionKey: string, seq: number, id = seq): StoredEvent {
  return { eventId: `e-${String(id).padStart(6, '0')}`, sessionKey, seq, text: 't', mode: 'now', contextKey: null, route: ROUTE, storedAt: '2026-11-27T00:00:00.000Z' };
}

test('a session subscription: each seq once, in order; it resumes after the last seen, else from the caller\'s after', () => {
  const cursors = new SubscriptionCursors('agent:main:main', 4);
  assert.is(cursors.resumeAfter(), 4);
  assert.equal([5, 6, 6, 5, 7].map((seq) => cursors.take(event('agent:main:main', seq))), [true, true, false, false, true]);
  assert.is(cursors.resumeAfter(), 7);
  // Consumed or not, a session subscription keeps its one cursor.
  cursors.letGo('agent:main:main', 7);
  assert.is(cursors.resumeAfter(), 7);
});

test("an agent subscription: a cursor per session, the caller's after for sessions unseen (by canonical key), cursors let go once consumed", () => {
  const cursors = new SubscriptionCursors(undefined, { main: 2, 'agent:main:direct:U1': 9 });
  assert.equal(cursors.resumeAfter(), { main: 2, 'agent:main:direct:U1': 9 });
  cursors.take(event('agent:main:main', 3));
  cursors.take(event('agent:main:slack:channel:C1', 1));
  assert.equal(cursors.resumeAfter(), { 'agent:main:main': 3, 'agent:main:slack:channel:C1': 1, 'agent:main:direct:U1': 9 });
  cursors.letGo('agent:main:main', 2);
  assert.equal([...cursors.seqs.keys()], ['agent:main:main', 'agent:main:slack:channel:C1'], 'not all it saw was consumed');
  cursors.letGo('agent:main:main', 3);
  assert.equal([...cursors.seqs.keys()], ['agent:main:slack:channel:C1']);
});

/** Cursors of `count` sessions under keys of ~1 KiB each: more than a resubscribe's frame holds. */
function pastAFrame(): { cursors: SubscriptionCursors; keys: string[] } {
  const cursors = new SubscriptionCursors(undefined, undefined);
  const count = Math.ceil(RESUME_AFTER_BYTES / 1000) + 10;
  const keys = Array.from({ length: count }, (_, i) => `agent:main:direct:${String(i).padStart(5, '0')}${'x'.repeat(1000)}`);
  // Each session's events 1..3, ids in the order they were issued.
  keys.forEach((key, i) => [1, 2, 3].forEach((seq) => cursors.take(event(key, seq, i * 10 + seq))));
  return { cursors, keys };
}

test('past a frame of cursors, the last ones are left out of the resubscribe; their replay from the first pending event is not delivered again, what follows is', () => {
  const { cursors, keys } = pastAFrame();
  const after = cursors.resumeAfter() as Record<string, number>;
  assert.ok(Buffer.byteLength(JSON.stringify(after)) <= RESUME_AFTER_BYTES);
  const sent = Object.keys(after).length;
  assert.ok(sent > 0 && sent < keys.length, `${sent} of ${keys.length} sent`);
  assert.equal(Object.keys(after), keys.slice(0, sent), 'the first ones, in the order they were seen');
  const left = keys[sent]!;
  const index = keys.indexOf(left);
  // The replay (client QA: each came again, after it had been acked).
  assert.equal([1, 2, 3].map((seq) => cursors.take(event(left, seq, index * 10 + seq))), [false, false, false]);
  assert.is(cursors.take(event(left, 4, 99_999)), true, 'a new event after them');
  // Past it, the session is back on its cursor alone.
  assert.is(cursors.seqs.get(left), 4);
  assert.is(cursors.take(event(left, 4, 99_999)), false);
});

test('after a data dir restore, a left-out session\'s replay brings the same seqs with newer ids: new events, delivered', () => {
  const { cursors, keys } = pastAFrame();
  const sent = Object.keys(cursors.resumeAfter() as Record<string, number>).length;
  const left = keys[sent]!;
  // Issued after everything delivered before: the restore's store gave the seqs out again.
  assert.equal([1, 2].map((seq) => cursors.take(event(left, seq, 500_000 + seq))), [true, true]);
});

test('a left-out session consumed up to what was delivered of it forgets that: its next events are all new', () => {
  const { cursors, keys } = pastAFrame();
  const sent = Object.keys(cursors.resumeAfter() as Record<string, number>).length;
  const left = keys[sent]!;
  cursors.letGo(left, 3);
  // Reissued seqs with older-looking ids (another gateway's clock): delivered, since nothing of before is pending.
  assert.is(cursors.take(event(left, 1, 0)), true);
});

test.run();
