/**
 * system.event end to end: the routing result a caller gets back, and what the session queue
 * holds afterwards, through a real gateway over a real WebSocket.
 */
import fs from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_MAX_PENDING_PER_SESSION, DEFAULT_MIN_FREE_DISK_BYTES, MAX_READ_LIMIT, MAX_TEXT_BYTES } from '../../src/protocol/constants.js';
import {
  cleanup,
  errorOf,
  ISO_RE,
  openRaw,
  resultOf,
  startInProcessGateway,
  UUID_RE,
  type InProcessGateway,
  type JsonRpcResponse,
  type RawSocket,
} from '../helpers/gateway.js';
import type { RoutingResult, StoredEvent } from '../../src/protocol/schemas.js';
import { MAX_REPORTED_PROBLEMS } from '../../src/protocol/validate.js';

interface ReadResult {
  sessionKey: string;
  events: StoredEvent[];
  depth: number;
  more: boolean;
}

interface SessionList {
  next: string | null;
  sessions: { sessionKey: string; agentId: string; pending: number; lastSeq: number; oldestPendingAt: string | null; lastEventAt: string }[];
  more: boolean;
}

interface Context {
  gw: InProcessGateway;
  raw: RawSocket;
}

const PACKAGE_VERSION = (JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const test = suite<Context>('e2e: system.event routing result and the session queue', {} as Context);

test.before(async (context) => {
  context.gw = await startInProcessGateway();
  context.raw = await openRaw(context.gw.url, context.gw.token);
});

test.after(async () => {
  await cleanup();
});

let unique = 0;
/** A session key no other test uses, so each test sees only its own events. */
function freshKey(prefix = 'e2e'): string {
  unique++;
  return `agent:${prefix}${unique}:main`;
}

async function send(raw: RawSocket, params: Record<string, unknown>): Promise<RoutingResult> {
  return resultOf<RoutingResult>(await raw.call('system.event', params));
}

async function refused(raw: RawSocket, params: Record<string, unknown>): Promise<NonNullable<JsonRpcResponse['error']>> {
  return errorOf(await raw.call('system.event', params));
}

async function peek(raw: RawSocket, params: Record<string, unknown>): Promise<ReadResult> {
  return resultOf<ReadResult>(await raw.call('session.peek', params));
}

function texts(read: ReadResult): string[] {
  return read.events.map((event) => event.text);
}

function assertInvalidParams(error: NonNullable<JsonRpcResponse['error']>, path: string): void {
  assert.is(error.code, -32602, `code of ${JSON.stringify(error)}`);
  assert.is(error.data?.name, 'INVALID_PARAMS');
  const paths = (error.data?.errors ?? []).map((problem) => problem.path);
  assert.ok(paths.includes(path), `data.errors names ${path}, got ${JSON.stringify(paths)}`);
}

const NO_ROUTE = { account: null, peer: null, id: null, thread: null, topic: null, channel: null };

// ---------------------------------------------------------------- where an event goes

test('with a session key: the full routing result', async ({ raw }) => {
  const key = 'agent:main:slack:channel:C123:thread:456';
  const before = Date.now();
  const result = await send(raw, { text: 'Task done!', mode: 'now', sessionKey: key });
  const after = Date.now();

  assert.equal(Object.keys(result).sort(), [
    'duplicate',
    'eventId',
    'fallback',
    'mode',
    'queue',
    'receivers',
    'requestedSessionKey',
    'route',
    'sessionKey',
    'storedAt',
    'wake',
  ]);
  assert.match(result.eventId, UUID_RE);
  assert.is(result.sessionKey, key);
  assert.is(result.requestedSessionKey, key);
  assert.is(result.fallback, null);
  assert.equal(result.route, {
    agentId: 'main',
    kind: 'channel',
    channel: 'slack',
    account: null,
    peer: null,
    id: 'C123',
    thread: '456',
    topic: null,
  });
  assert.is(result.mode, 'now');
  assert.equal(result.queue, { status: 'queued', seq: 1, depth: 1, replaced: null, dropped: [] });
  assert.is(result.wake.status, 'no-agent-connected');
  assert.type(result.wake.message, 'string');
  assert.is(result.receivers, 0);
  assert.is(result.duplicate, false);
  assert.match(result.storedAt, ISO_RE);
  const storedAt = Date.parse(result.storedAt);
  assert.ok(storedAt >= before - 5 && storedAt <= after + 5, `storedAt ${result.storedAt} within the call`);

  const second = await send(raw, { text: 'Another thing', sessionKey: key });
  assert.equal(second.queue, { status: 'queued', seq: 2, depth: 2, replaced: null, dropped: [] });
  assert.is(second.mode, 'next-heartbeat', 'mode defaults to next-heartbeat');
  assert.is.not(second.eventId, result.eventId);

  const read = await peek(raw, { sessionKey: key });
  assert.is(read.sessionKey, key);
  assert.equal(
    read.events.map((event) => [event.seq, event.eventId, event.text, event.mode]),
    [
      [1, result.eventId, 'Task done!', 'now'],
      [2, second.eventId, 'Another thing', 'next-heartbeat'],
    ],
  );
  assert.equal(read.events[0], {
    eventId: result.eventId,
    sessionKey: key,
    seq: 1,
    text: 'Task done!',
    mode: 'now',
    contextKey: null,
    route: result.route,
    storedAt: result.storedAt,
  });
  assert.is(read.depth, 2);
  assert.is(read.more, false);
});

test('without a key: main session of the default agent, and the result says it fell back', async ({ raw }) => {
  const result = await send(raw, { text: `no key ${Date.now()}` });
  assert.is(result.sessionKey, 'agent:main:main');
  assert.is(result.requestedSessionKey, null);
  assert.is(result.fallback?.reason, 'no-session-key');
  assert.type(result.fallback?.message, 'string');
  assert.match(result.fallback!.message, /main/);
  assert.equal(result.route, { ...NO_ROUTE, agentId: 'main', kind: 'main' });
  assert.is(result.queue.status, 'queued');
  const read = await peek(raw, { sessionKey: 'agent:main:main' });
  assert.is(read.events.at(-1)?.eventId, result.eventId);
});

test('with agentId only: the main session of that agent', async ({ raw }) => {
  const result = await send(raw, { text: 'ops only', agentId: 'ops' });
  assert.is(result.sessionKey, 'agent:ops:main');
  assert.is(result.requestedSessionKey, null);
  assert.is(result.fallback?.reason, 'no-session-key');
  assert.equal(result.route, { ...NO_ROUTE, agentId: 'ops', kind: 'main' });

  const upper = await send(raw, { text: 'ops upper', agentId: 'OPS' });
  assert.is(upper.sessionKey, 'agent:ops:main', 'agentId is case-insensitive');
  assert.is(upper.queue.seq, result.queue.seq + 1);
});

test('"main" as a key is the default agent main session, with no fallback', async ({ raw }) => {
  const result = await send(raw, { text: `main key ${Date.now()}`, sessionKey: 'main' });
  assert.is(result.sessionKey, 'agent:main:main');
  assert.is(result.requestedSessionKey, 'main');
  assert.is(result.fallback, null);
});

test('a mixed-case key is canonicalized: keywords, agent and channel lower-cased, ids kept', async ({ raw }) => {
  const given = 'Agent:Ops2:Telegram:Group:G-77:Topic:Nine';
  const result = await send(raw, { text: 'mixed case', sessionKey: given });
  assert.is(result.sessionKey, 'agent:ops2:telegram:group:G-77:topic:Nine');
  assert.is(result.requestedSessionKey, given);
  assert.equal(result.route, {
    agentId: 'ops2',
    kind: 'group',
    channel: 'telegram',
    account: null,
    peer: null,
    id: 'G-77',
    thread: null,
    topic: 'Nine',
  });
  // Same conversation however it is spelled: one session, seqs continue.
  const again = await send(raw, { text: 'mixed case 2', sessionKey: 'agent:OPS2:telegram:GROUP:G-77:TOPIC:Nine' });
  assert.is(again.sessionKey, result.sessionKey);
  assert.is(again.queue.seq, 2);
  assert.equal(texts(await peek(raw, { sessionKey: given })), ['mixed case', 'mixed case 2']);
  // Ids are case-sensitive: another topic id is another session.
  const other = await send(raw, { text: 'other topic', sessionKey: 'agent:ops2:telegram:group:G-77:topic:NINE' });
  assert.is(other.sessionKey, 'agent:ops2:telegram:group:G-77:topic:NINE');
  assert.is(other.queue.seq, 1);
});

test('a direct key with an account routes to the peer', async ({ raw }) => {
  const result = await send(raw, { text: 'dm', sessionKey: 'agent:main:whatsapp:biz:direct:+15551234' });
  assert.equal(result.route, {
    agentId: 'main',
    kind: 'direct',
    channel: 'whatsapp',
    account: 'biz',
    peer: '+15551234',
    id: null,
    thread: null,
    topic: null,
  });
});

test('a malformed key is -32602 on /sessionKey and nothing is stored anywhere', async ({ raw }) => {
  const listBefore = resultOf<SessionList>(await raw.call('session.list', {}));
  const statusBefore = resultOf<{ sessions: number; pending: number }>(await raw.call('gateway.status', {}));
  for (const sessionKey of [
    'agent:main:slack:channel',
    'slack:C123',
    'agent::main',
    'agent:main:main:extra',
    ' agent:main:main',
    'agent:main:slack:channel:C 123',
    'agent:main:direct:bob:thread:1',
    `agent:main:slack:channel:${'x'.repeat(600)}`,
    // Parsed (an earlier version's session under one stays readable), but prints as nothing.
    'agent:main:direct:\ufe0f',
    'agent:main:slack:channel:C1:thread:\u2800',
  ]) {
    const error = await refused(raw, { text: 'must not be stored', sessionKey });
    assertInvalidParams(error, '/sessionKey');
    assert.is((error.data?.errors ?? []).length, 1, `one problem for ${JSON.stringify(sessionKey)}`);
  }
  assert.equal(resultOf<SessionList>(await raw.call('session.list', {})), listBefore);
  const statusAfter = resultOf<{ sessions: number; pending: number }>(await raw.call('gateway.status', {}));
  assert.is(statusAfter.sessions, statusBefore.sessions);
  assert.is(statusAfter.pending, statusBefore.pending);
  // In particular, no silent fallback to main.
  assert.not.ok(texts(await peek(raw, { sessionKey: 'main' })).includes('must not be stored'));
});

test('the malformed-key error names the accepted forms', async ({ raw }) => {
  const error = await refused(raw, { text: 'x', sessionKey: 'slack:C123' });
  assert.ok(Array.isArray(error.data?.['acceptedForms']), 'data.acceptedForms');
  assert.match(error.message, /agent:/);
});

test('a malformed key is listed with the params\' other problems, not only once they are fixed', async ({ raw }) => {
  const paths = (error: { data?: { errors?: Array<{ path: string }> } }) => (error.data?.errors ?? []).map((problem) => problem.path).sort();
  const both = await refused(raw, { text: '', sessionKey: 'bad', mode: 'x' });
  assert.equal(paths(both), ['/mode', '/sessionKey', '/text']);
  assert.ok(Array.isArray(both.data?.['acceptedForms']), 'data.acceptedForms');
  const peeked = errorOf(await raw.call('session.peek', { sessionKey: 'bad', limit: 0 }));
  assert.equal(paths(peeked), ['/limit', '/sessionKey']);
  const valid = await refused(raw, { text: '', sessionKey: freshKey('listed') });
  assert.equal(paths(valid), ['/text'], 'a valid key adds nothing');
  const unknown = Object.fromEntries(Array.from({ length: MAX_REPORTED_PROBLEMS }, (_, i) => [`extra${i}`, i]));
  const many = await refused(raw, { text: 'x', sessionKey: 'bad', ...unknown });
  assert.is(paths(many).length, MAX_REPORTED_PROBLEMS, 'no more than the list holds');
});

test('agentId disagreeing with the key is -32602 on /agentId; agreeing (any case) is fine', async ({ raw }) => {
  const key = freshKey('agree');
  const agent = key.split(':')[1]!;
  const error = await refused(raw, { text: 'disagree', sessionKey: key, agentId: 'ops' });
  assertInvalidParams(error, '/agentId');
  assert.equal(await peek(raw, { sessionKey: key }), { sessionKey: key, events: [], depth: 0, more: false });

  const ok = await send(raw, { text: 'agree', sessionKey: key, agentId: agent.toUpperCase() });
  assert.is(ok.sessionKey, key);
  assert.is(ok.fallback, null);
});

test('an invalid agentId is -32602 on /agentId', async ({ raw }) => {
  assertInvalidParams(await refused(raw, { text: 'x', agentId: 'bad agent' }), '/agentId');
  assertInvalidParams(await refused(raw, { text: 'x', agentId: '-dash' }), '/agentId');
  assertInvalidParams(await refused(raw, { text: 'x', agentId: 'a'.repeat(65) }), '/agentId');
});

test('an invalid mode is -32602 on /mode', async ({ raw }) => {
  assertInvalidParams(await refused(raw, { text: 'x', mode: 'later' }), '/mode');
});

// ---------------------------------------------------------------- text

test('text is trimmed; empty, whitespace-only or invisible-only text is -32602 on /text', async ({ raw }) => {
  const key = freshKey('trim');
  const result = await send(raw, { text: '  \n\thello world \n ', sessionKey: key });
  assert.is(result.queue.status, 'queued');
  assert.equal(texts(await peek(raw, { sessionKey: key })), ['hello world']);
  for (const text of ['', ' ', '   \t\n  ', '\u00a0\u3000']) {
    assertInvalidParams(await refused(raw, { text, sessionKey: key }), '/text');
  }
  // trim() leaves format characters: a text of only those is as empty, and told why.
  for (const [text, shown] of [
    ['\u200b', 'U+200B'],
    [' \u200b\ufeff\u200d ', 'U+200B U+FEFF U+200D'],
    ['\u2060\u00ad\u034f\ufe0f\u3164', 'U+2060 U+00AD U+034F U+FE0F ...'],
    ['\u2800\u2800', 'U+2800 U+2800'],
    ['\ufff9\ufffa\ufffb', 'U+FFF9 U+FFFA U+FFFB'],
    ['\u{13430}\u{13431}', 'U+13430 U+13431'],
  ]) {
    const error = await refused(raw, { text, sessionKey: key });
    assert.equal(error.data?.errors, [
      { path: '/text', message: `holds only invisible characters (${shown}), so the event would show nothing; send visible text` },
    ]);
  }
  assert.is((await peek(raw, { sessionKey: key })).depth, 1);
  // A format character that shows a glyph is text (review): the Arabic number sign.
  await send(raw, { text: '\u0600', sessionKey: key });
  assert.is((await peek(raw, { sessionKey: key })).depth, 2);
  // Inside a visible text they are kept as sent.
  await send(raw, { text: '\u200bo\ufeffk\u200d', sessionKey: key });
  assert.equal(texts(await peek(raw, { sessionKey: key })), ['hello world', '\u0600', '\u200bo\ufeffk\u200d']);
});

test(`text of exactly MAX_TEXT_BYTES (${MAX_TEXT_BYTES}) bytes is stored intact; one byte more is -32602`, async ({ raw }) => {
  const key = freshKey('edge');
  const ascii = 'a'.repeat(MAX_TEXT_BYTES);
  assert.is((await send(raw, { text: ascii, sessionKey: key })).queue.seq, 1);

  const over = await refused(raw, { text: `${ascii}b`, sessionKey: key });
  assertInvalidParams(over, '/text');

  const stored = await peek(raw, { sessionKey: key });
  assert.is(stored.events.length, 1);
  assert.is(stored.events[0]!.text, ascii);
});

test('the text limit counts UTF-8 bytes, not characters', async ({ raw }) => {
  const key = freshKey('bytes');
  // é is 2 bytes, 😀 is 4 bytes (and 2 UTF-16 code units).
  const twoByte = 'é'.repeat(MAX_TEXT_BYTES / 2);
  const fourByte = '😀'.repeat(MAX_TEXT_BYTES / 4);
  assert.is(Buffer.byteLength(twoByte), MAX_TEXT_BYTES);
  assert.is(Buffer.byteLength(fourByte), MAX_TEXT_BYTES);
  await send(raw, { text: twoByte, sessionKey: key });
  await send(raw, { text: fourByte, sessionKey: key });

  const overTwo = await refused(raw, { text: `${twoByte}a`, sessionKey: key });
  assertInvalidParams(overTwo, '/text');
  assert.is(overTwo.data?.['limit'], MAX_TEXT_BYTES);
  // 32767 two-byte characters and one three-byte one: 65537 bytes in 32768 characters.
  assertInvalidParams(await refused(raw, { text: `${'é'.repeat(MAX_TEXT_BYTES / 2 - 1)}€`, sessionKey: key }), '/text');
  assertInvalidParams(await refused(raw, { text: `${fourByte}a`, sessionKey: key }), '/text');

  const read = await peek(raw, { sessionKey: key });
  assert.is(read.events.length, 2);
  assert.ok(read.events[0]!.text === twoByte, 'two-byte text round-trips');
  assert.ok(read.events[1]!.text === fourByte, 'four-byte text round-trips');
});

test('the text limit applies after trimming: padded text of MAX_TEXT_BYTES is accepted', async ({ raw }) => {
  // The schema documents text as "Trimmed; must not be empty; at most 65536 bytes of UTF-8."
  const key = freshKey('padded');
  const result = await send(raw, { text: ` ${'a'.repeat(MAX_TEXT_BYTES)}\n`, sessionKey: key });
  assert.is(result.queue.status, 'queued');
  assert.is((await peek(raw, { sessionKey: key })).events[0]?.text.length, MAX_TEXT_BYTES);
});

test('text that UTF-8 cannot hold (a lone surrogate) is refused on /text, or stored exactly as sent', async ({ raw }) => {
  // JSON can carry "\ud800" but UTF-8 cannot: SQLite would store a mangled string and the agent
  // would read text nobody sent. Session keys refuse lone surrogates for the same reason.
  const key = freshKey('surrogate');
  const text = 'disk \ud800 full';
  const response = await raw.call('system.event', { text, sessionKey: key });
  if (response.error) {
    assertInvalidParams(response.error, '/text');
    assert.is((await peek(raw, { sessionKey: key })).depth, 0);
    return;
  }
  const stored = (await peek(raw, { sessionKey: key })).events.map((event) => event.text);
  assert.equal(stored, [text], `stored ${JSON.stringify(stored)} instead of the text sent`);
  // And, stored intact, a repeat is recognised as the same text.
  const again = resultOf<RoutingResult>(await raw.call('system.event', { text, sessionKey: key }));
  assert.is(again.queue.status, 'deduplicated');
});

// ---------------------------------------------------------------- idempotency

test('an idempotencyKey repeat answers the first result with duplicate: true; nothing new is stored', async ({ raw }) => {
  const key = freshKey('idem');
  const params = { text: 'deploy finished', sessionKey: key, idempotencyKey: `job-${unique}` };
  const first = await send(raw, params);
  assert.is(first.duplicate, false);
  assert.equal(first.queue, { status: 'queued', seq: 1, depth: 1, replaced: null, dropped: [] });

  const repeat = await send(raw, params);
  assert.is(repeat.duplicate, true);
  assert.is(repeat.eventId, first.eventId);
  assert.equal(repeat, { ...first, duplicate: true });

  const read = await peek(raw, { sessionKey: key });
  assert.is(read.depth, 1);
  assert.equal(
    read.events.map((event) => event.eventId),
    [first.eventId],
  );
});

test("an idempotencyKey reused with other text (or another of the agent's sessions) is 1001 IDEMPOTENCY_CONFLICT", async ({ raw }) => {
  const key = freshKey('conflict');
  const idempotencyKey = `conflict-${unique}`;
  const first = await send(raw, { text: 'first text', sessionKey: key, idempotencyKey });

  const error = await refused(raw, { text: 'different text', sessionKey: key, idempotencyKey });
  assert.is(error.code, 1001);
  assert.is(error.data?.name, 'IDEMPOTENCY_CONFLICT');
  assert.is(error.data?.['idempotencyKey'], idempotencyKey);

  const sameAgentElsewhere = key.replace(/:main$/, ':slack:direct:U1');
  const elsewhere = await refused(raw, { text: 'first text', sessionKey: sameAgentElsewhere, idempotencyKey });
  assert.is(elsewhere.code, 1001);

  // Keys are per agent: another agent's event with the same key is its own, neither blocked nor a repeat.
  const otherAgent = await send(raw, { text: 'first text', sessionKey: freshKey('conflict'), idempotencyKey });
  assert.is(otherAgent.duplicate, false);

  const read = await peek(raw, { sessionKey: key });
  assert.equal(
    read.events.map((event) => [event.eventId, event.text]),
    [[first.eventId, 'first text']],
  );
});

// ---------------------------------------------------------------- the session queue's rules

test('a contextKey or idempotencyKey that would print like another is refused, nothing stored: it would replace nothing, or repeat nothing (QA)', async ({ raw }) => {
  const key = freshKey('lookalike');
  await send(raw, { text: 'build 42 running', sessionKey: key, contextKey: 'build:42' });
  for (const [param, value] of [
    ['contextKey', 'build:42 '],
    ['contextKey', 'build:\u200b42'],
    ['idempotencyKey', 'nightly\n'],
    ['idempotencyKey', ' nightly'],
  ] as const) {
    assertInvalidParams(errorOf(await raw.call('system.event', { text: 'build 42 passed', sessionKey: key, [param]: value })), `/${param}`);
  }
  assert.equal(texts(await peek(raw, { sessionKey: key })), ['build 42 running'], 'nothing stored');
  const spaced = await send(raw, { text: 'deploy passed', sessionKey: key, contextKey: 'deploy prod' });
  assert.is(spaced.queue.status, 'queued', 'a space within is a key like any other');
});

test('contextKey: a new event replaces the pending one with the same contextKey', async ({ raw }) => {
  const key = freshKey('ctx');
  const running = await send(raw, { text: 'build 123 running', sessionKey: key, contextKey: 'build:123' });
  const other = await send(raw, { text: 'unrelated', sessionKey: key });
  const passed = await send(raw, { text: 'build 123 passed', sessionKey: key, contextKey: 'build:123' });
  assert.equal(passed.queue, {
    status: 'replaced',
    seq: 3,
    depth: 2,
    replaced: { eventId: running.eventId, seq: 1 },
    dropped: [],
  });

  const read = await peek(raw, { sessionKey: key });
  assert.equal(
    read.events.map((event) => [event.seq, event.eventId, event.text, event.contextKey]),
    [
      [2, other.eventId, 'unrelated', null],
      [3, passed.eventId, 'build 123 passed', 'build:123'],
    ],
  );
  assert.is(read.depth, 2);

  // A contextKey in another session replaces nothing here.
  const elsewhere = await send(raw, { text: 'build 123 elsewhere', sessionKey: freshKey('ctx'), contextKey: 'build:123' });
  assert.is(elsewhere.queue.status, 'queued');
  assert.is((await peek(raw, { sessionKey: key })).depth, 2);
});

test('consecutive identical text is deduplicated: the pending event stands for the new one', async ({ raw }) => {
  const key = freshKey('dedupe');
  const first = await send(raw, { text: 'disk almost full', sessionKey: key });
  const again = await send(raw, { text: 'disk almost full', sessionKey: key });
  assert.equal(again.queue, { status: 'deduplicated', seq: 1, depth: 1, replaced: null, dropped: [] });
  assert.is(again.eventId, first.eventId);
  assert.is(again.duplicate, false);
  // Only the newest pending event counts: after another text, the same text queues again.
  await send(raw, { text: 'something else', sessionKey: key });
  const third = await send(raw, { text: 'disk almost full', sessionKey: key });
  assert.equal(third.queue, { status: 'queued', seq: 3, depth: 3, replaced: null, dropped: [] });
  assert.equal(texts(await peek(raw, { sessionKey: key })), ['disk almost full', 'something else', 'disk almost full']);
});

test('session.drain consumes, durably, oldest first; seqs continue after a drain', async ({ raw }) => {
  const key = freshKey('drain');
  for (const text of ['one', 'two', 'three']) await send(raw, { text, sessionKey: key });

  const firstTwo = resultOf<ReadResult>(await raw.call('session.drain', { sessionKey: key, limit: 2 }));
  assert.equal(
    firstTwo.events.map((event) => [event.seq, event.text]),
    [
      [1, 'one'],
      [2, 'two'],
    ],
  );
  assert.is(firstTwo.depth, 1);
  assert.is(firstTwo.more, true);
  assert.equal(
    (await peek(raw, { sessionKey: key })).events.map((event) => event.seq),
    [3],
  );

  const rest = resultOf<ReadResult>(await raw.call('session.drain', { sessionKey: key }));
  assert.equal(texts(rest), ['three']);
  assert.is(rest.depth, 0);
  assert.is(rest.more, false);

  const empty = resultOf<ReadResult>(await raw.call('session.drain', { sessionKey: key }));
  assert.equal(empty, { sessionKey: key, events: [], depth: 0, more: false });
  const list = resultOf<SessionList>(await raw.call('session.list', {}));
  assert.not.ok(list.sessions.some((session) => session.sessionKey === key), 'a drained session is not listed');

  const next = await send(raw, { text: 'four', sessionKey: key });
  assert.equal(next.queue, { status: 'queued', seq: 4, depth: 1, replaced: null, dropped: [] });
  // A text identical to a drained event is not deduplicated against it.
  const same = await send(raw, { text: 'three', sessionKey: freshKey('drain') });
  assert.is(same.queue.status, 'queued');
});

test('session.peek: after, limit and more; peek consumes nothing', async ({ raw }) => {
  const key = freshKey('peek');
  for (let i = 1; i <= 5; i++) await send(raw, { text: `event ${i}`, sessionKey: key });
  const seqs = (read: ReadResult) => read.events.map((event) => event.seq);

  const page1 = await peek(raw, { sessionKey: key, limit: 2 });
  assert.equal([seqs(page1), page1.more, page1.depth], [[1, 2], true, 5]);
  const page2 = await peek(raw, { sessionKey: key, after: 2, limit: 2 });
  assert.equal([seqs(page2), page2.more, page2.depth], [[3, 4], true, 5]);
  const page3 = await peek(raw, { sessionKey: key, after: 4, limit: 2 });
  assert.equal([seqs(page3), page3.more], [[5], false]);
  const exact = await peek(raw, { sessionKey: key, after: 3, limit: 2 });
  assert.equal([seqs(exact), exact.more], [[4, 5], false]);
  const past = await peek(raw, { sessionKey: key, after: 5 });
  assert.equal([seqs(past), past.more, past.depth], [[], false, 5]);
  const all = await peek(raw, { sessionKey: key, limit: MAX_READ_LIMIT });
  assert.equal(seqs(all), [1, 2, 3, 4, 5]);
});

test('session.peek bounds: limit 0, limit over MAX_READ_LIMIT, negative after, bad or empty key are -32602', async ({ raw }) => {
  const key = freshKey('bounds');
  assertInvalidParams(errorOf(await raw.call('session.peek', { sessionKey: key, limit: 0 })), '/limit');
  assertInvalidParams(errorOf(await raw.call('session.peek', { sessionKey: key, limit: MAX_READ_LIMIT + 1 })), '/limit');
  assertInvalidParams(errorOf(await raw.call('session.peek', { sessionKey: key, limit: 1.5 })), '/limit');
  assertInvalidParams(errorOf(await raw.call('session.peek', { sessionKey: key, after: -1 })), '/after');
  assertInvalidParams(errorOf(await raw.call('session.peek', { sessionKey: 'slack:C1' })), '/sessionKey');
  assertInvalidParams(errorOf(await raw.call('session.drain', { sessionKey: 'slack:C1' })), '/sessionKey');
  assertInvalidParams(errorOf(await raw.call('session.peek', { sessionKey: '' })), '/sessionKey');
  // No key at all is the token's agent's main session: agent:main:main for the admin token.
  assert.is(resultOf<{ sessionKey: string }>(await raw.call('session.peek', {})).sessionKey, 'agent:main:main');
});

test('session.list: sessions with pending events, most pending first, filtered by agent', async ({ raw }) => {
  const a = 'agent:lister:main';
  const b = 'agent:lister:slack:channel:C1';
  for (const text of ['a1', 'a2', 'a3']) await send(raw, { text, sessionKey: a });
  await send(raw, { text: 'b1', sessionKey: b });
  const list = resultOf<SessionList>(await raw.call('session.list', { agentId: 'LISTER' }));
  assert.equal(
    list.sessions.map((session) => [session.sessionKey, session.agentId, session.pending, session.lastSeq]),
    [
      [a, 'lister', 3, 3],
      [b, 'lister', 1, 1],
    ],
  );
  assert.is(list.more, false);
  for (const session of list.sessions) {
    assert.match(session.lastEventAt, ISO_RE);
    assert.match(String(session.oldestPendingAt), ISO_RE);
  }
  const limited = resultOf<SessionList>(await raw.call('session.list', { agentId: 'lister', limit: 1 }));
  assert.equal(
    [limited.sessions.map((session) => session.sessionKey), limited.more, limited.next],
    [[a], true, `3:${a}`],
  );
});

test('session.list pages: each `next` goes on where its page ended, most pending first then by key, to the last page (QA: `more` with no way to the rest)', async ({ raw }) => {
  // Counts 3, 2, 2, 2, 1, 1: pages of two cut through ties.
  const counts: Array<[string, number]> = [['c', 2], ['a', 3], ['e', 1], ['b', 2], ['d', 2], ['f', 1]];
  for (const [name, count] of counts) {
    for (let i = 0; i < count; i++) await send(raw, { text: `${name}${i}`, sessionKey: `agent:pager:direct:${name}` });
  }
  const listed: string[] = [];
  let page = resultOf<SessionList>(await raw.call('session.list', { agentId: 'pager', limit: 2 }));
  const nexts: Array<string | null> = [];
  for (;;) {
    listed.push(...page.sessions.map((session) => `${session.sessionKey.at(-1)}${session.pending}`));
    nexts.push(page.next);
    if (!page.more) break;
    page = resultOf<SessionList>(await raw.call('session.list', { agentId: 'pager', limit: 2, after: page.next }));
  }
  assert.equal(listed, ['a3', 'b2', 'c2', 'd2', 'e1', 'f1']);
  assert.equal(nexts, ['2:agent:pager:direct:b', '2:agent:pager:direct:d', null]);
  const whole = resultOf<SessionList>(await raw.call('session.list', { agentId: 'pager', after: '2:agent:pager:direct:b' }));
  assert.equal([whole.sessions.length, whole.more, whole.next], [4, false, null]);
  for (const after of ['agent:pager:direct:b', '0:agent:pager:direct:b', '2:', 'x:y', '99999999999999999:k']) {
    assertInvalidParams(errorOf(await raw.call('session.list', { agentId: 'pager', after })), '/after');
  }
});

// ---------------------------------------------------------------- gateway.status and the cap

test('gateway.status: version, data dir, counts and connections of a fresh gateway', async () => {
  const gw = await startInProcessGateway();
  const raw = await openRaw(gw.url, gw.token);
  const before = Date.now();
  const empty = resultOf<Record<string, unknown>>(await raw.call('gateway.status', {}));
  assert.equal(Object.keys(empty).sort(), [
    'connections',
    'dataDir',
    'eventsDroppedAtCap',
    'freeDiskBytes',
    'maxPendingPerSession',
    'minFreeDiskBytes',
    'newEventsRefused',
    'pending',
    'sessions',
    'startedAt',
    'uptimeMs',
    'version',
    'writeFailure',
    'writesFailingSince',
  ]);
  assert.is(empty['version'], PACKAGE_VERSION);
  assert.is(empty['dataDir'], gw.dataDir);
  assert.is(empty['sessions'], 0);
  assert.is(empty['pending'], 0);
  assert.is(empty['connections'], 1);
  assert.is(empty['maxPendingPerSession'], DEFAULT_MAX_PENDING_PER_SESSION);
  assert.is(empty['eventsDroppedAtCap'], 0);
  assert.is(empty['minFreeDiskBytes'], DEFAULT_MIN_FREE_DISK_BYTES);
  assert.is(empty['newEventsRefused'], false);
  assert.equal([empty['writesFailingSince'], empty['writeFailure']], [null, null], 'writes go through');
  // What statfs says of the data dir's disk, read within the last 100 ms: within what others wrote meanwhile.
  const free = fs.statfsSync(gw.dataDir);
  assert.ok(Math.abs((empty['freeDiskBytes'] as number) - free.bavail * free.bsize) < 256 * 1_048_576, `${empty['freeDiskBytes']}`);
  assert.match(String(empty['startedAt']), ISO_RE);
  assert.ok(Date.parse(String(empty['startedAt'])) <= before, 'started before the call');
  assert.ok(Number.isInteger(empty['uptimeMs']) && (empty['uptimeMs'] as number) >= 0, 'uptimeMs is a non-negative integer');

  const second = await openRaw(gw.url, gw.token);
  await send(raw, { text: 'x', sessionKey: 'agent:a:main' });
  await send(raw, { text: 'y', sessionKey: 'agent:a:main' });
  await send(raw, { text: 'z', sessionKey: 'agent:b:main' });
  const busy = resultOf<Record<string, unknown>>(await second.call('gateway.status', {}));
  assert.equal([busy['sessions'], busy['pending'], busy['connections']], [2, 3, 2]);
  assert.is(resultOf<Record<string, unknown>>(await raw.call('gateway.status')).sessions, 2, 'params may be omitted');
  // Unknown params are refused, like everywhere else.
  assertInvalidParams(errorOf(await raw.call('gateway.status', { verbose: true })), '/verbose');
  second.close();
  raw.close();
  await gw.gateway.close();
});

test('a full session drops its oldest pending events and says which', async () => {
  const gw = await startInProcessGateway({ maxPendingPerSession: 3 });
  const raw = await openRaw(gw.url, gw.token);
  const key = 'agent:capped:main';
  const sent: RoutingResult[] = [];
  for (const text of ['1', '2', '3', '4']) sent.push(await send(raw, { text, sessionKey: key }));
  assert.equal(sent[3]!.queue, { status: 'queued', seq: 4, depth: 3, replaced: null, dropped: [{ eventId: sent[0]!.eventId, seq: 1 }] });
  assert.equal(texts(await peek(raw, { sessionKey: key })), ['2', '3', '4']);
  assert.is(resultOf<{ maxPendingPerSession: number }>(await raw.call('gateway.status', {})).maxPendingPerSession, 3);
  raw.close();
  await gw.gateway.close();
});

test('events dropped at the cap are told to the operator: logged (counted) and counted in gateway.status, per agent for a scoped token; a repeat of the call that dropped one counts nothing again (operator QA: 19,000 drops went unseen)', async () => {
  const gw = await startInProcessGateway({ maxPendingPerSession: 2 });
  const raw = await openRaw(gw.url, gw.token);
  const dropsFor = async (peer: RawSocket) => resultOf<{ eventsDroppedAtCap: number }>(await peer.call('gateway.status', {})).eventsDroppedAtCap;
  assert.is(await dropsFor(raw), 0);
  for (const text of ['1', '2', '3']) await send(raw, { text, sessionKey: 'agent:capped:main' });
  const keyed = { text: '4', sessionKey: 'agent:capped:main', idempotencyKey: 'drops-once' };
  assert.is((await send(raw, keyed)).queue.dropped.length, 1);
  const repeat = await send(raw, keyed);
  assert.equal([repeat.duplicate, repeat.queue.dropped.length], [true, 1]);
  for (const text of ['1', '2', '3']) await send(raw, { text, sessionKey: 'agent:elsewhere:direct:U1' });
  assert.is(await dropsFor(raw), 3);
  const { token } = resultOf<{ token: string }>(await raw.call('token.create', { agentId: 'capped' }));
  const scoped = await openRaw(gw.url, token);
  assert.is(await dropsFor(scoped), 2);
  scoped.close();
  raw.close();
  // The first at once; the others in one line when the minute ends, or, as here, at the stop.
  const told = () => gw.log.filter((line) => line.includes('at the pending cap'));
  assert.equal(told(), [
    'dropped an event at the pending cap (--max-pending 2), the oldest of its session for a newer one, the last in agent:capped:main: no agent drains it fast enough (session list shows the fullest; event.trace, what was dropped)',
  ]);
  await gw.gateway.close();
  assert.equal(told().slice(1), [
    'dropped 2 events at the pending cap (--max-pending 2), the oldest of their sessions for a newer one, the last in agent:elsewhere:direct:U1: no agent drains them fast enough (session list shows the fullest; event.trace, what was dropped)',
  ]);
});

test.run();
