/** Human output: text from the gateway is shown with its control characters escaped, one record per line. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { formatRoutingResult, formatSessionList, formatSessionRead, formatStatus, formatTokenList, formatTokenRevoked, formatTrace, formatWatchedEvent, printableStrings } from '../../src/cli/format.js';
import { printable } from '../../src/protocol/printable.js';
import type { ResultOf } from '../../src/protocol/methods.js';
import type { RoutingResult, StoredEvent } from '../../src/protocol/schemas.js';

const test = suite('cli/format');

/** What QA sent: a fake second line, colours, a bell, a carriage return, and CSI as one C1 character. */
const HOSTILE = 'line1\nline2\x1b[31mRED\x1b[0m\x07bell\rCR\x9b2J';
const SHOWN = 'line1\\nline2\\x1b[31mRED\\x1b[0m\\x07bell\\rCR\\x9b2J';

test('printable: every C0 and C1 control character and DEL becomes a visible escape', () => {
  assert.is(printable(HOSTILE), SHOWN);
  assert.is(printable('\0\t\x7f\x80\x9f'), '\\x00\\t\\x7f\\x80\\x9f');
  for (let code = 0; code < 0xa0; code++) {
    const char = String.fromCharCode(code);
    const control = code < 0x20 || code >= 0x7f;
    assert.is(printable(char) !== char, control, `U+${code.toString(16).padStart(4, '0')}`);
  }
});

test('printable: the line and paragraph separators are escaped, so text cannot fake a line where they break one (QA)', () => {
  assert.is(printable('ok\u2028switchboard: routed to agent:main:main\u2029'), 'ok\\u2028switchboard: routed to agent:main:main\\u2029');
});

test('printable: bidirectional formatting characters are escaped, so text cannot reorder what is shown', () => {
  assert.is(printable('deploy \u202egnp.exe'), 'deploy \\u202egnp.exe');
  for (const char of ['\u061c', '\u200e', '\u200f', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069']) {
    assert.is(printable(char), `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
});

test('printable: everything else is shown as it is, backslashes and non-ASCII text included', () => {
  for (const text of ['Task done!', 'C:\\builds\\42', 'naïve café 日本語 🚀', '\u00a0nbsp', '👨\u200d👩\u200d👧 family', '']) assert.is(printable(text), text);
});

test('printableStrings: every string in a result, nested ones and object keys included; other values untouched', () => {
  const result = { text: 'a\x1bb', n: 3, none: null, ok: true, list: ['\r', { 'key\n': 'v\x07' }] };
  assert.equal(printableStrings(result), { text: 'a\\x1bb', n: 3, none: null, ok: true, list: ['\\r', { 'key\\n': 'v\\x07' }] });
  assert.equal(result.text, 'a\x1bb', 'the result itself is left as it was (it may still be printed as JSON)');
});

const EVENT: StoredEvent = {
  eventId: '01a214eb-0fbd-73c2-8a5b-6e101455cb6c',
  sessionKey: 'agent:main:main',
  seq: 7,
  text: HOSTILE,
  mode: 'now',
  contextKey: 'ctx\x1b[1m',
  route: { agentId: 'main', kind: 'main', channel: null, account: null, peer: null, id: null, thread: null, topic: null },
  storedAt: '2026-11-25T16:00:00.000Z',
};

test('a watched event with hostile text and context key is one line, escapes visible', () => {
  assert.is(formatWatchedEvent(printableStrings(EVENT)), `agent:main:main #7 2026-11-25T16:00:00.000Z now [ctx\\x1b[1m] ${SHOWN}`);
});

test('token names and trace details are escaped too', () => {
  const tokens = printableStrings({
    tokens: [{ tokenId: 'tok_1', name: 'ci\x1b[31m\nfake', agentId: 'ops', scopes: ['publish' as const], createdAt: '2026-11-25T16:00:00.000Z', revokedAt: null }],
    more: false,
  });
  assert.is(formatTokenList(tokens, 'switchboard token list'), 'tok_1  agent ops  publish  active  created 2026-11-25T16:00:00.000Z "ci\\x1b[31m\\nfake"');
  const trace = printableStrings({ eventId: 'e1', steps: [{ step: 'accepted' as const, at: '2026-11-25T16:00:00.000Z', detail: { 'x\r': 'y\x1b' } }], omitted: 0 });
  assert.is(formatTrace(trace), 'event e1\n  2026-11-25T16:00:00.000Z  accepted     x\\r=y\\x1b');
});

test('a token list that is cut short names the next page; an empty one says whether there are none at all or none after', () => {
  const listed = { tokenId: 'tok_1', name: null, agentId: 'ops', scopes: ['publish' as const], createdAt: '2026-11-25T16:00:00.000Z', revokedAt: null };
  const listedBy = "switchboard token list --limit 1 --data-dir '/tmp/my data'";
  assert.is(
    formatTokenList({ tokens: [listed], more: true }, listedBy),
    `tok_1  agent ops  publish  active  created 2026-11-25T16:00:00.000Z\n(more tokens: ${listedBy} --after tok_1)`,
  );
  assert.is(formatTokenList({ tokens: [], more: false }, listedBy), 'no scoped tokens (create one with `switchboard token create --agent <agentId>`)');
  assert.is(formatTokenList({ tokens: [], more: false }, listedBy, 'tok_1'), 'no tokens created after tok_1');
});

test('a trace with steps left out says how many, before its last step', () => {
  const at = '2026-11-25T16:00:00.000Z';
  const steps: ResultOf<'event.trace'>['steps'] = [
    { step: 'accepted' as const, at, detail: {} },
    { step: 'stored' as const, at, detail: {} },
    { step: 'delivered' as const, at, detail: { replay: true } },
    { step: 'acked' as const, at, detail: {} },
  ];
  assert.is(
    formatTrace({ eventId: 'e1', steps, omitted: 1500 }),
    [
      'event e1',
      `  ${at}  accepted     `,
      `  ${at}  stored       `,
      `  ${at}  delivered    replay=true`,
      '  ... 1500 step(s) left out ...',
      `  ${at}  acked        `,
    ].join('\n'),
  );
});

/** A routing result to the main session, queued as seq 1, with `changes`. */
function routing(changes: Partial<RoutingResult>): RoutingResult {
  return {
    eventId: EVENT.eventId,
    sessionKey: 'agent:main:main',
    requestedSessionKey: null,
    fallback: null,
    route: EVENT.route,
    mode: 'now',
    queue: { status: 'queued', seq: 1, depth: 1, replaced: null, dropped: [] },
    wake: { status: 'sent', message: 'agent.wake sent' },
    receivers: 0,
    duplicate: false,
    storedAt: EVENT.storedAt,
    ...changes,
  };
}

test('the routing result: messages from the gateway stay on their own lines', () => {
  const routed = printableStrings(
    routing({
      fallback: { reason: 'no-session-key', message: 'no sessionKey given\n  event forged' },
      wake: { status: 'sent', message: 'agent.wake sent\x1b[2K' },
    }),
  );
  assert.equal(formatRoutingResult(routed).split('\n'), [
    'routed to agent:main:main (seq 1, 1 pending, mode now)',
    '  fallback: no sessionKey given\\n  event forged',
    '  wake: sent: agent.wake sent\\x1b[2K',
    `  event ${EVENT.eventId} stored at ${EVENT.storedAt}`,
  ]);
});

test('a repeat of an idempotency key says its queue and wake are as they were then, and how to learn what became of the event (QA: a log said "pending" for an event drained since)', () => {
  const repeat = routing({ mode: 'next-heartbeat', wake: { status: 'no-agent-connected', message: 'the event waits in the session queue' }, duplicate: true });
  assert.equal(formatRoutingResult(repeat).split('\n'), [
    'routed to agent:main:main (seq 1, 1 pending then, mode next-heartbeat)',
    `  repeat of an earlier idempotency key: nothing new was stored; this is the first call's result, as it was then (\`switchboard trace ${EVENT.eventId}\` tells what became of the event since)`,
    '  wake then: no-agent-connected: the event waits in the session queue',
    `  event ${EVENT.eventId} stored at ${EVENT.storedAt}`,
  ]);
});

test('a peek or drain that --after leaves empty says what is still pending, not "no pending events"', () => {
  const empty = { sessionKey: 'agent:x:main', events: [], depth: 4, more: false };
  assert.is(formatSessionRead(empty, 'shown', 10), 'agent:x:main: no events after seq 10; 4 pending in the session (give a lower --after, or none, to see them)');
  assert.is(formatSessionRead(empty, 'drained', 10), 'agent:x:main: no events after seq 10; 4 pending in the session (give a lower --after, or none, to see them)');
  assert.is(formatSessionRead({ ...empty, depth: 0 }, 'shown', 10), 'agent:x:main: no pending events');
  assert.is(formatSessionRead({ ...empty, depth: 0 }, 'shown'), 'agent:x:main: no pending events');
  // Read with no --session-key, an agent's main session: its other sessions are where keyed events went (QA).
  assert.is(formatSessionRead({ ...empty, depth: 0 }, 'shown', undefined, (agentId) => `switchboard session list --agent ${agentId}`), "agent:x:main: no pending events (the agent's other sessions: switchboard session list --agent x)");
});

test('a peek or drain with more to read says how to read on, never "raise --limit", which a text budget does not lift', () => {
  const event = { ...EVENT, text: 'plain', contextKey: null };
  const read = { sessionKey: 'agent:main:main', events: [event], depth: 3, more: true };
  const [peeked] = formatSessionRead(read, 'shown').split('\n');
  assert.is(peeked, 'agent:main:main: 1 event(s) shown (more remain: --after 7 shows the next ones); 3 pending in the session');
  const [drained] = formatSessionRead({ ...read, depth: 2 }, 'drained').split('\n');
  assert.is(drained, 'agent:main:main: 1 event(s) drained (more remain: drain again for the next ones); 2 pending in the session');
  const [drainedAfter] = formatSessionRead({ ...read, depth: 2 }, 'drained', 1).split('\n');
  assert.is(drainedAfter, 'agent:main:main: 1 event(s) drained (more remain: drain again with --after 1 for the next ones); 2 pending in the session');
});

test('a session list cut short names its next page: the command that listed it, with --after, quoted for a shell where it must be', () => {
  const session = (n: number) => ({ sessionKey: `agent:ops:direct:u${n}`, agentId: 'ops', pending: 2, lastSeq: 2, oldestPendingAt: null, lastEventAt: '2026-11-25T16:00:00.000Z' });
  const listed = (next: string | null, by = 'switchboard session list --agent ops') =>
    formatSessionList({ sessions: [session(1), session(2)], more: true, next }, by).split('\n');
  assert.equal(listed('2:agent:ops:direct:u2'), [
    '2  agent:ops:direct:u1  (last event 2026-11-25T16:00:00.000Z)',
    '2  agent:ops:direct:u2  (last event 2026-11-25T16:00:00.000Z)',
    '(more sessions: switchboard session list --agent ops --after 2:agent:ops:direct:u2)',
  ]);
  assert.is(listed("2:agent:ops:direct:it's $HOME").at(-1), "(more sessions: switchboard session list --agent ops --after '2:agent:ops:direct:it'\\''s $HOME')");
  assert.is(listed(null).at(-1), '(more sessions: ask again)');
  assert.is(formatSessionList({ sessions: [session(1)], more: false, next: null }, 'switchboard session list'), '2  agent:ops:direct:u1  (last event 2026-11-25T16:00:00.000Z)');
  assert.is(formatSessionList({ sessions: [], more: false, next: null }, 'switchboard session list'), 'no sessions with pending events');
});

test('token revoke: what it closed, or when an earlier revoke had revoked the token', () => {
  const revokedAt = '2026-11-25T16:00:00.000Z';
  assert.is(
    formatTokenRevoked({ tokenId: 'tok_1', revoked: true, alreadyRevoked: false, revokedAt, closedConnections: 2 }),
    'revoked tok_1; closed 2 connection(s) that used it',
  );
  assert.is(
    formatTokenRevoked({ tokenId: 'tok_1', revoked: true, alreadyRevoked: true, revokedAt, closedConnections: 0 }),
    `tok_1 was already revoked at ${revokedAt}; nothing changed`,
  );
});

test('formatStatus: the cap, and what was dropped at it since the start when anything was', () => {
  const status: ResultOf<'gateway.status'> = {
    version: '0.1.0',
    startedAt: '2026-11-25T16:00:00.000Z',
    uptimeMs: 61_000,
    dataDir: '/srv/sb',
    sessions: 2,
    pending: 7,
    connections: 1,
    maxPendingPerSession: 5,
    eventsDroppedAtCap: 0,
    freeDiskBytes: 1_073_741_824,
    minFreeDiskBytes: 67_108_864,
    newEventsRefused: false,
    writesFailingSince: null,
    writeFailure: null,
  };
  const sessionsLine = (shown: ResultOf<'gateway.status'>) => formatStatus(shown).split('\n').find((line) => line.startsWith('  sessions:'));
  assert.is(sessionsLine(status), '  sessions:    2 with pending events, 7 pending in all (cap 5 per session)');
  assert.is(sessionsLine({ ...status, eventsDroppedAtCap: 19_000 }), '  sessions:    2 with pending events, 7 pending in all (cap 5 per session: 19000 dropped at it since the start)');
});

test.run();
