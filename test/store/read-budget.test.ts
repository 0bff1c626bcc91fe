/**
 * Read budgets (src/store/read-budget.ts): what one frame's reads take, and what the frames of one
 * connection take together, counted as the events' JSON, at their edges.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ANSWER_RESERVE_BYTES, MAX_BATCH_LENGTH, MAX_CONTEXT_KEY_LENGTH, MAX_FRAME_BYTES, MAX_READ_BYTES, MAX_READ_BYTES_IN_FLIGHT, MAX_SESSION_KEY_LENGTH, MAX_TEXT_BYTES } from '../../src/protocol/constants.js';
import { charge, eventBytes, fitAnswerFrame, readBudget, readPool, sessionBytes, takeWithinBudget, traceStepBytes } from '../../src/store/read-budget.js';
import type { EventRecord } from '../../src/store/types.js';

const test = suite('store/read-budget');

const event = (text: string, i = 0): EventRecord => ({
  eventId: `0000000${i}-0000-7000-8000-000000000000`.slice(-36),
  sessionKey: 'agent:main:slack:channel:C123:thread:456',
  seq: i + 1,
  text,
  mode: 'now',
  contextKey: null,
  storedAt: 1_790_000_000_000,
});
const events = (count: number, size = 64 * 1024) => Array.from({ length: count }, (_, i) => event(String(i).padEnd(size, 'x'), i));
const COST = eventBytes(events(1)[0]!);
const PER_FRAME = Math.floor(MAX_READ_BYTES / COST);

test('an event costs at least its JSON as an answer carries it: escapes count six bytes, and the key twice (the route repeats it)', () => {
  const plain = event('x'.repeat(1000));
  const escaped = event('\u0001'.repeat(1000));
  assert.ok(eventBytes(escaped) - eventBytes(plain) === 5000, 'each control character is \\u0001 in JSON');
  const stored = { ...plain, storedAt: new Date(plain.storedAt).toISOString(), route: { agentId: 'main', kind: 'channel', channel: 'slack', account: null, peer: null, id: 'C123', thread: '456', topic: null } };
  assert.ok(eventBytes(plain) >= Buffer.byteLength(JSON.stringify(stored)));
});

test('a listed session and a trace step cost at least their JSON as answered', () => {
  const listed = {
    sessionKey: 'agent:main:slack:channel:C"123\\:thread:\u00fc'.repeat(10),
    agentId: 'main',
    pending: 1_000_000,
    lastSeq: Number.MAX_SAFE_INTEGER,
    oldestPendingAt: new Date(0).toISOString(),
    lastEventAt: new Date(0).toISOString(),
  };
  assert.ok(sessionBytes(listed) >= Buffer.byteLength(JSON.stringify(listed)), 'escapes and UTF-8 counted');
  const step = { eventId: 'e', step: 'delivered' as const, at: 8.64e15, detail: { connectionIds: '1,2,3', subscriptions: 3, replay: false } };
  const answered = { step: step.step, at: new Date(step.at).toISOString(), detail: step.detail };
  assert.ok(traceStepBytes(step) >= Buffer.byteLength(JSON.stringify(answered)));
});

test('what an answer carries in any case is charged whatever is left, and later reads of the frame get nothing', () => {
  const pool = readPool();
  const budget = readBudget(pool);
  charge(budget, MAX_READ_BYTES + 10);
  assert.is(budget.bytes, -10);
  assert.is(pool.bytes, MAX_READ_BYTES_IN_FLIGHT - MAX_READ_BYTES - 10);
  assert.is(takeWithinBudget(events(1, 10), budget, eventBytes).length, 0);
  assert.is(budget.taken, MAX_READ_BYTES + 10, 'and all of it is given back once answered');
});

test('one frame: reads take up to MAX_READ_BYTES together, in whole events', () => {
  const budget = readBudget();
  const read = takeWithinBudget(events(PER_FRAME + 1), budget, eventBytes);
  assert.is(read.length, PER_FRAME);
  const cost = read.reduce((sum, taken) => sum + eventBytes(taken), 0);
  assert.is(budget.bytes, MAX_READ_BYTES - cost);
  assert.is(takeWithinBudget(events(1), budget, eventBytes).length, 0, 'too little left: the next read of the frame gets nothing');
  assert.is(budget.taken, cost);

  const partly = readBudget();
  assert.is(takeWithinBudget(events(PER_FRAME - 1), partly, eventBytes).length, PER_FRAME - 1);
  assert.is(takeWithinBudget(events(3), partly, eventBytes).length, 1, 'what is left, in whole events');
});

test('a read alone takes at least one event: the largest there can be fits a lone request\'s budget', () => {
  // 64 KiB of control characters (six bytes each as JSON), the longest key and contextKey of 4-byte characters.
  const key = `agent:main:slack:channel:${'\u{1F600}'.repeat(MAX_SESSION_KEY_LENGTH - 25)}`;
  const largest = { ...event('\u0001'.repeat(MAX_TEXT_BYTES)), sessionKey: key, contextKey: '\u{1F600}'.repeat(MAX_CONTEXT_KEY_LENGTH) };
  const drain = JSON.stringify({ jsonrpc: '2.0', id: 'x'.repeat(1000), method: 'session.drain', params: { sessionKey: key, limit: 1000, after: 1 } });
  const alone = readBudget(readPool());
  fitAnswerFrame(alone, Buffer.byteLength(drain), 1);
  assert.is(takeWithinBudget([largest, largest], alone, eventBytes).length, 1, 'one, and not two');
});

test('a frame\'s reads take no more than its answer has room for in MAX_FRAME_BYTES: three times a batch\'s own bytes (a lone request\'s once) and ANSWER_RESERVE_BYTES per request kept', () => {
  const lone = readBudget(readPool());
  fitAnswerFrame(lone, 200, 1);
  assert.is(lone.bytes, MAX_READ_BYTES, 'a lone request: MAX_READ_BYTES');
  const frameBytes = 50 * 1024;
  const batch = readBudget(readPool());
  fitAnswerFrame(batch, frameBytes, MAX_BATCH_LENGTH);
  const room = MAX_FRAME_BYTES - 3 * frameBytes - MAX_BATCH_LENGTH * ANSWER_RESERVE_BYTES;
  assert.ok(room > 0 && room < MAX_READ_BYTES);
  assert.is(batch.bytes, room);
  const read = takeWithinBudget(events(PER_FRAME), batch, eventBytes);
  assert.is(read.length, Math.floor(room / COST), 'as many events as fit the room');
  const full = readBudget(readPool());
  fitAnswerFrame(full, MAX_FRAME_BYTES / 3, 2);
  assert.is(takeWithinBudget(events(1, 10), full, eventBytes).length, 0, 'no room: nothing, not even one event');
  assert.is(full.taken, 0);
  // A lone request's answer repeats its frame once: a read with an id of 330,000 characters still gets events (QA: none, with more, for ever).
  const longId = readBudget(readPool());
  fitAnswerFrame(longId, 330_000, 1);
  assert.is(longId.bytes, MAX_FRAME_BYTES - 330_000 - ANSWER_RESERVE_BYTES);
  assert.ok(takeWithinBudget(events(10, 60_000), longId, eventBytes).length >= 2);
});

test('the frames of one connection take from its pool: past MAX_READ_BYTES_IN_FLIGHT they get less, then nothing, until answers give back what they took', () => {
  const pool = readPool();
  const frames = Array.from({ length: MAX_READ_BYTES_IN_FLIGHT / MAX_READ_BYTES + 1 }, () => readBudget(pool));
  const read = frames.map((budget) => takeWithinBudget(events(PER_FRAME), budget, eventBytes).length);
  const inPool = Math.floor(MAX_READ_BYTES_IN_FLIGHT / COST);
  assert.equal(read, [PER_FRAME, PER_FRAME, PER_FRAME, PER_FRAME, inPool - 4 * PER_FRAME], 'the pool holds four frames\' worth');
  assert.is(takeWithinBudget(events(1), readBudget(pool), eventBytes).length, 0, 'then nothing');

  pool.bytes += frames[0]!.taken;
  const next = readBudget(pool);
  assert.is(takeWithinBudget(events(PER_FRAME + 1), next, eventBytes).length, PER_FRAME, 'an answered frame gives back what it took');
  for (const budget of [...frames.slice(1), next]) pool.bytes += budget.taken;
  assert.is(pool.bytes, MAX_READ_BYTES_IN_FLIGHT, 'all answered: the pool is whole again');
});

test.run();
