import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode } from '../../src/protocol/errors.js';
import type { Route } from '../../src/protocol/schemas.js';
import {
  SESSION_KEY_FORMS,
  isValidAgentId,
  mainSessionKey,
  parseSessionKey,
  sessionKeyError,
  unpublishableKeyError,
  unpublishableKeyReason,
  type ParsedSessionKey,
} from '../../src/protocol/session-key.js';

const NONE: Route = {
  agentId: '',
  kind: 'main',
  channel: null,
  account: null,
  peer: null,
  id: null,
  thread: null,
  topic: null,
};

function parsed(input: string): ParsedSessionKey {
  const result = parseSessionKey(input);
  if (result.ok) return result.value;
  throw new Error(`expected ${JSON.stringify(input)} to parse, got: ${result.reason}`);
}

function reason(input: string): string {
  const result = parseSessionKey(input);
  if (!result.ok) return result.reason;
  throw new Error(`expected ${JSON.stringify(input)} to be rejected, got ${result.value.sessionKey}`);
}

function expectKey(input: string, sessionKey: string, route: Partial<Route>): void {
  const value = parsed(input);
  assert.is(value.sessionKey, sessionKey, input);
  assert.equal(value.route, { ...NONE, ...route }, input);
}

// ---------------------------------------------------------------- accepted forms

const accepted = suite('session-key: accepted forms');

accepted('"main" is the default agent\'s main session', () => {
  expectKey('main', 'agent:main:main', { agentId: 'main', kind: 'main' });
  expectKey('MAIN', 'agent:main:main', { agentId: 'main', kind: 'main' });
});

accepted('agent main session', () => {
  expectKey('agent:ops:main', 'agent:ops:main', { agentId: 'ops', kind: 'main' });
  expectKey('agent:main:main', 'agent:main:main', { agentId: 'main', kind: 'main' });
});

accepted('direct without channel, with channel, with channel and account', () => {
  expectKey('agent:ops:direct:U123', 'agent:ops:direct:U123', { agentId: 'ops', kind: 'direct', peer: 'U123' });
  expectKey('agent:ops:slack:direct:U123', 'agent:ops:slack:direct:U123', {
    agentId: 'ops',
    kind: 'direct',
    channel: 'slack',
    peer: 'U123',
  });
  expectKey('agent:ops:slack:T042:direct:U123', 'agent:ops:slack:T042:direct:U123', {
    agentId: 'ops',
    kind: 'direct',
    channel: 'slack',
    account: 'T042',
    peer: 'U123',
  });
});

accepted('group and channel, with and without account', () => {
  for (const kind of ['group', 'channel'] as const) {
    expectKey(`agent:ops:slack:${kind}:C9`, `agent:ops:slack:${kind}:C9`, {
      agentId: 'ops',
      kind,
      channel: 'slack',
      id: 'C9',
    });
    expectKey(`agent:ops:slack:T042:${kind}:C9`, `agent:ops:slack:T042:${kind}:C9`, {
      agentId: 'ops',
      kind,
      channel: 'slack',
      account: 'T042',
      id: 'C9',
    });
  }
});

accepted('group and channel with a thread or a topic', () => {
  for (const kind of ['group', 'channel'] as const) {
    expectKey(`agent:ops:slack:${kind}:C9:thread:1700.01`, `agent:ops:slack:${kind}:C9:thread:1700.01`, {
      agentId: 'ops',
      kind,
      channel: 'slack',
      id: 'C9',
      thread: '1700.01',
    });
    expectKey(`agent:ops:slack:T042:${kind}:C9:thread:t1`, `agent:ops:slack:T042:${kind}:C9:thread:t1`, {
      agentId: 'ops',
      kind,
      channel: 'slack',
      account: 'T042',
      id: 'C9',
      thread: 't1',
    });
    expectKey(`agent:ops:telegram:${kind}:-100123:topic:42`, `agent:ops:telegram:${kind}:-100123:topic:42`, {
      agentId: 'ops',
      kind,
      channel: 'telegram',
      id: '-100123',
      topic: '42',
    });
    expectKey(`agent:ops:telegram:bot7:${kind}:-100123:topic:42`, `agent:ops:telegram:bot7:${kind}:-100123:topic:42`, {
      agentId: 'ops',
      kind,
      channel: 'telegram',
      account: 'bot7',
      id: '-100123',
      topic: '42',
    });
  }
});

accepted('ids may look like keywords where the grammar is unambiguous', () => {
  // "main" as a channel name: a kind keyword follows, so this cannot be the main session.
  expectKey('agent:ops:main:direct:bob', 'agent:ops:main:direct:bob', {
    agentId: 'ops',
    kind: 'direct',
    channel: 'main',
    peer: 'bob',
  });
  expectKey('agent:ops:direct:direct', 'agent:ops:direct:direct', { agentId: 'ops', kind: 'direct', peer: 'direct' });
  expectKey('agent:ops:slack:thread:group:topic', 'agent:ops:slack:thread:group:topic', {
    agentId: 'ops',
    kind: 'group',
    channel: 'slack',
    account: 'thread',
    id: 'topic',
  });
});

accepted('ids may hold any non-space, non-control Unicode', () => {
  expectKey('agent:ops:matrix:channel:!abc@example.org', 'agent:ops:matrix:channel:!abc@example.org', {
    agentId: 'ops',
    kind: 'channel',
    channel: 'matrix',
    id: '!abc@example.org',
  });
  expectKey('agent:ops:direct:Jörg😀', 'agent:ops:direct:Jörg😀', { agentId: 'ops', kind: 'direct', peer: 'Jörg😀' });
  // Emoji with a variation selector (U+FE0F): default-ignorable, but what makes "❤️" an emoji.
  expectKey('agent:ops:direct:bob\u2764\ufe0f', 'agent:ops:direct:bob\u2764\ufe0f', { agentId: 'ops', kind: 'direct', peer: 'bob\u2764\ufe0f' });
});

accepted('agent ids and channel names at the edges of their pattern', () => {
  const longest = 'a'.repeat(64);
  expectKey(`agent:${longest}:main`, `agent:${longest}:main`, { agentId: longest, kind: 'main' });
  expectKey('agent:0:main', 'agent:0:main', { agentId: '0', kind: 'main' });
  expectKey('agent:a_b-c:x_y-1:group:g', 'agent:a_b-c:x_y-1:group:g', {
    agentId: 'a_b-c',
    kind: 'group',
    channel: 'x_y-1',
    id: 'g',
  });
});

accepted.run();

// ---------------------------------------------------------------- canonical form

const canonical = suite('session-key: canonical form');

canonical('keywords, agent id and channel are lower-cased; ids keep their case', () => {
  expectKey('AGENT:Ops:MAIN', 'agent:ops:main', { agentId: 'ops', kind: 'main' });
  expectKey('Agent:OPS:Slack:T042:Direct:U123', 'agent:ops:slack:T042:direct:U123', {
    agentId: 'ops',
    kind: 'direct',
    channel: 'slack',
    account: 'T042',
    peer: 'U123',
  });
  expectKey('agent:Ops:Telegram:GROUP:AbC:TOPIC:Xy', 'agent:ops:telegram:group:AbC:topic:Xy', {
    agentId: 'ops',
    kind: 'group',
    channel: 'telegram',
    id: 'AbC',
    topic: 'Xy',
  });
  expectKey('agent:ops:Slack:Channel:C9:Thread:T1', 'agent:ops:slack:channel:C9:thread:T1', {
    agentId: 'ops',
    kind: 'channel',
    channel: 'slack',
    id: 'C9',
    thread: 'T1',
  });
});

canonical('the canonical form parses to itself and to the same route', () => {
  const inputs = [
    'main',
    'Main',
    'AGENT:Ops:MAIN',
    'agent:OPS:Direct:Peer',
    'agent:ops:SLACK:direct:Peer',
    'agent:ops:Slack:Acc:DIRECT:Peer',
    'agent:ops:slack:GROUP:G1',
    'agent:ops:slack:Acc:Channel:C1:THREAD:T',
    'agent:ops:Telegram:group:-1:Topic:7',
    'agent:ops:MAIN:direct:p',
  ];
  for (const input of inputs) {
    const first = parsed(input);
    const second = parsed(first.sessionKey);
    assert.is(second.sessionKey, first.sessionKey, input);
    assert.equal(second.route, first.route, input);
  }
});

canonical('mainSessionKey lower-cases the agent id', () => {
  assert.equal(mainSessionKey('Ops'), {
    sessionKey: 'agent:ops:main',
    route: { ...NONE, agentId: 'ops', kind: 'main' },
  });
  assert.equal(parsed('main'), mainSessionKey('main'));
});

canonical('isValidAgentId', () => {
  for (const ok of ['main', 'Ops', '0', 'a_b-c', 'a'.repeat(64)]) assert.ok(isValidAgentId(ok), ok);
  for (const bad of ['', '-x', '_x', 'a.b', 'a b', 'a:b', 'a'.repeat(65), '\u212Aelvin', 'ſ']) {
    assert.not.ok(isValidAgentId(bad), bad);
  }
});

canonical.run();

// ---------------------------------------------------------------- rejections

const rejected = suite('session-key: rejections');

rejected('empty key', () => {
  assert.is(reason(''), 'session key is empty');
});

rejected('length: 512 characters pass, 513 fail', () => {
  const prefix = 'agent:ops:direct:';
  const at512 = prefix + 'p'.repeat(512 - prefix.length);
  assert.is(at512.length, 512);
  assert.is(parsed(at512).sessionKey, at512);
  assert.is(reason(at512 + 'p'), 'session key is 513 characters long; at most 512 are allowed');
});

rejected('length counts code points, as the wire schema does', () => {
  const prefix = 'agent:ops:direct:';
  const at512 = prefix + '😀'.repeat(512 - prefix.length);
  assert.ok(parseSessionKey(at512).ok);
  assert.is(reason(at512 + '😀'), 'session key is 513 characters long; at most 512 are allowed');
});

rejected('leading and trailing whitespace are errors, not trimmed', () => {
  assert.is(reason(' main'), 'session key starts with whitespace or a control character; remove it');
  assert.is(reason('main '), 'session key ends with whitespace or a control character; remove it');
  assert.is(reason('agent:ops:main\n'), 'session key ends with whitespace or a control character; remove it');
  assert.is(reason('\u00a0agent:ops:main'), 'session key starts with whitespace or a control character; remove it');
  assert.is(reason('agent:ops:main\u2028'), 'session key ends with whitespace or a control character; remove it');
});

rejected('must start with agent', () => {
  assert.is(reason('foo:ops:main'), 'session key must start with "agent:" or be exactly "main", but token 1 is "foo"');
  assert.is(reason('mainx'), 'session key must start with "agent:" or be exactly "main", but token 1 is "mainx"');
  assert.is(reason('ops:main'), 'session key must start with "agent:" or be exactly "main", but token 1 is "ops"');
});

rejected('missing or empty agent id', () => {
  assert.is(reason('agent'), 'agent id (token 2) is missing after "agent"');
  assert.is(reason('agent:'), 'agent id (token 2) is empty');
  assert.is(reason('agent::main'), 'agent id (token 2) is empty');
});

rejected('bad agent id', () => {
  const pattern = 'expected a-z, 0-9, "_" or "-" in any case, starting with a letter or digit';
  assert.is(reason('agent:-x:main'), `agent id "-x" (token 2) is not valid: ${pattern}`);
  assert.is(reason('agent:a.b:main'), `agent id "a.b" (token 2) is not valid: ${pattern}`);
  // The Kelvin sign prints as "K": named, or the name would read right.
  assert.is(reason('agent:\u212Aa:main'), `agent id "\u212Aa" (token 2) contains U+212A, not an ASCII letter or digit, at character 1; ${pattern}`);
  assert.is(reason('agent:ops:sl\u0430ck:channel:C1'), `channel name "sl\u0430ck" (token 3) contains U+0430, not an ASCII letter or digit, at character 3; ${pattern}`);
  assert.is(reason(`agent:${'a'.repeat(65)}:main`), 'agent id (token 2) is 65 characters long; at most 64 are allowed');
});

rejected('missing main, direct or channel after the agent id', () => {
  assert.is(reason('agent:ops'), 'token 3 is missing: expected "main", "direct" or a channel name after the agent id');
  assert.is(
    reason('agent:ops:slack'),
    'token 4 is missing: expected "direct", "group", "channel" or an account after channel "slack"',
  );
  assert.is(
    reason('agent:ops:slack:T042'),
    'token 5 is missing: expected "direct", "group" or "channel" after account "T042"',
  );
  assert.is(
    reason('agent:ops:slack:T042:dm:U1'),
    'token 5 "dm" must be "direct", "group" or "channel" after account "T042"',
  );
  assert.is(reason('agent:ops:main:x'), 'token 4 "x" is unexpected: a main session key ends with "main" (agent:<agentId>:main)');
});

rejected('bad channel name', () => {
  assert.is(
    reason('agent:ops:sl.ack:direct:U1'),
    'channel name "sl.ack" (token 3) is not valid: expected a-z, 0-9, "_" or "-" in any case, starting with a letter or digit',
  );
  assert.is(reason('agent:ops::direct:U1'), 'channel name (token 3) is empty');
});

rejected('keyword used as a channel name or account', () => {
  assert.is(
    reason('agent:ops:group:G1'),
    'token 3 is "group", but a group key needs a channel name before it (agent:<agentId>:<channel>[:<account>]:group:<id>); "direct", "group" and "channel" cannot be channel names',
  );
  assert.is(
    reason('agent:ops:Channel:C1'),
    'token 3 is "channel", but a channel key needs a channel name before it (agent:<agentId>:<channel>[:<account>]:channel:<id>); "direct", "group" and "channel" cannot be channel names',
  );
  assert.is(
    reason('agent:ops:direct:direct:U1'),
    'token 5 "U1" is unexpected: a direct key ends with its peer; "direct" (token 3) cannot be a channel name because "direct", "group" and "channel" are keywords',
  );
  assert.is(
    reason('agent:ops:slack:group:group:G1'),
    'token 6 "G1" is unexpected: a group key may only continue with ":thread:<threadId>" or ":topic:<topicId>"; "group" (token 4) cannot be an account because "direct", "group" and "channel" are keywords',
  );
});

rejected('missing or empty ids', () => {
  assert.is(reason('agent:main:direct:'), 'peer (token 4) is empty');
  assert.is(reason('agent:main:direct'), 'peer (token 4) is missing after "direct"');
  assert.is(reason('agent:ops:slack:group'), 'group id (token 5) is missing after "group"');
  assert.is(reason('agent:ops:slack:T042:channel:'), 'channel id (token 6) is empty');
  assert.is(reason('agent:ops:slack::direct:U1'), 'account (token 4) is empty');
  assert.is(reason('agent:ops:slack:group:G1:thread'), 'thread id (token 7) is missing after "thread"');
  assert.is(reason('agent:ops:slack:group:G1:topic:'), 'topic id (token 7) is empty');
});

rejected('whitespace, control and invisible format characters in ids', () => {
  const tail = 'ids cannot hold whitespace, control or invisible characters, or ":"';
  assert.is(reason('agent:main:direct:a b'), `peer "a b" (token 4) contains whitespace (U+0020) at character 2; ${tail}`);
  assert.is(
    reason('agent:main:direct:ab\u0007c'),
    `peer "ab\\u0007c" (token 4) contains a control character (U+0007) at character 3; ${tail}`,
  );
  assert.is(
    reason('agent:main:direct:a\u0085b'),
    `peer "a\u0085b" (token 4) contains a control character (U+0085) at character 2; ${tail}`,
  );
  assert.is(
    reason('agent:main:direct:a\u00a0b'),
    `peer "a\u00a0b" (token 4) contains whitespace (U+00A0) at character 2; ${tail}`,
  );
  assert.is(
    reason('agent:main:direct:a\u2028b'),
    `peer "a\u2028b" (token 4) contains whitespace (U+2028) at character 2; ${tail}`,
  );
  assert.is(
    reason('agent:ops:slack:a\tb:direct:U1'),
    `account "a\\tb" (token 4) contains whitespace (U+0009) at character 2; ${tail}`,
  );
  assert.is(
    reason('agent:ops:slack:group:G\u00001'),
    `group id "G\\u00001" (token 5) contains a control character (U+0000) at character 2; ${tail}`,
  );
  assert.is(
    reason('agent:ops:slack:group:G1:thread:t\u3000u'),
    `thread id "t\u3000u" (token 7) contains whitespace (U+3000) at character 2; ${tail}`,
  );
  assert.is(
    reason('agent:main:direct:a\ud800b'),
    `peer "a\\ud800b" (token 4) contains a lone surrogate (U+D800) at character 2; ${tail}`,
  );
  // Keys that print the same must be the same key: zero-width, bidi and BOM characters are refused.
  for (const [char, code] of [['\u200b', 'U+200B'], ['\u202e', 'U+202E'], ['\u2066', 'U+2066'], ['\u00ad', 'U+00AD']]) {
    assert.is(
      reason(`agent:main:slack:channel:C${char}1`),
      `channel id "C${char}1" (token 5) contains an invisible format character (${code}) at character 2; ${tail}`,
    );
  }
  // As are the other default-ignorable code points: combining grapheme joiner, Hangul fillers, an unassigned one.
  for (const char of ['\u034f', '\u115f', '\u17b4', '\u2065', '\u3164', '\uffa0', '\u{e0080}']) {
    const code = `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    assert.is(
      reason(`agent:main:slack:channel:C${char}1`),
      `channel id "C${char}1" (token 5) contains an invisible character (${code}) at character 2; ${tail}`,
    );
  }
});

rejected('invisible format characters, whitespace and controls in agent ids and channel names are named, as in ids', () => {
  const tail = 'expected a-z, 0-9, "_" or "-" in any case, starting with a letter or digit';
  // Invisible: without the character named, "ma\u200bin" would print as a valid "main".
  for (const [char, code] of [['\u200b', 'U+200B'], ['\u202e', 'U+202E'], ['\u00ad', 'U+00AD']]) {
    assert.is(
      reason(`agent:ma${char}in:main`),
      `agent id "ma${char}in" (token 2) contains an invisible format character (${code}) at character 3; ${tail}`,
    );
    assert.is(
      reason(`agent:ops:sl${char}ack:channel:C1`),
      `channel name "sl${char}ack" (token 3) contains an invisible format character (${code}) at character 3; ${tail}`,
    );
  }
  assert.is(reason('agent:a\u00a0b:main'), `agent id "a\u00a0b" (token 2) contains whitespace (U+00A0) at character 2; ${tail}`);
  assert.is(reason('agent:ops:sl\u0007ack:direct:U1'), `channel name "sl\\u0007ack" (token 3) contains a control character (U+0007) at character 3; ${tail}`);
  // Other characters past ASCII are named too; ASCII ones a name cannot hold are visible: the name is shown with the rule.
  assert.is(reason('agent:ops:sl\u00e9ack:direct:U1'), `channel name "sl\u00e9ack" (token 3) contains U+00E9, not an ASCII letter or digit, at character 3; ${tail}`);
  assert.is(reason('agent:ops:sl.ack:direct:U1'), `channel name "sl.ack" (token 3) is not valid: ${tail}`);
});

rejected('trailing tokens after a complete key', () => {
  assert.is(reason('agent:ops:slack:group:G1:thread:T1:x'), 'token 8 "x" is unexpected: the key ends after the thread id');
  assert.is(reason('agent:ops:tg:group:G1:topic:7:'), 'token 8 "" is unexpected: the key ends after the topic id');
  assert.is(
    reason('agent:ops:slack:group:G1:extra'),
    'token 6 "extra" is unexpected: a group key may only continue with ":thread:<threadId>" or ":topic:<topicId>"',
  );
  assert.is(reason('agent:ops:direct:U1:x'), 'token 5 "x" is unexpected: a direct key ends with its peer');
});

rejected('thread and topic together, or twice', () => {
  assert.is(
    reason('agent:ops:telegram:group:G1:thread:T1:topic:7'),
    'token 8 "topic" cannot follow a thread: use :thread:<threadId> or :topic:<topicId>, not both',
  );
  assert.is(
    reason('agent:ops:telegram:group:G1:topic:7:Thread:T1'),
    'token 8 "thread" cannot follow a topic: use :thread:<threadId> or :topic:<topicId>, not both',
  );
  assert.is(
    reason('agent:ops:slack:group:G1:thread:T1:thread:T2'),
    'token 8 "thread" repeats the thread: a key has at most one :thread:<threadId>',
  );
});

rejected('thread or topic on a direct key', () => {
  const rule = 'a direct key ends with its peer; threads and topics belong to group and channel keys';
  assert.is(reason('agent:ops:slack:direct:U1:thread:T1'), `token 6 "thread" is not allowed: ${rule}`);
  assert.is(reason('agent:ops:direct:U1:TOPIC:7'), `token 5 "topic" is not allowed: ${rule}`);
});

rejected('long tokens are cut in reasons', () => {
  const long = `x${'y'.repeat(100)}`;
  assert.is(
    reason(`${long}:ops:main`),
    `session key must start with "agent:" or be exactly "main", but token 1 is "${long.slice(0, 40)}…"`,
  );
});

rejected('never throws and never falls back to main', () => {
  const samples = ['', ':', '::::', 'agent:', 'agent:::', 'main:', ':main', 'agent:main:main:', '\ud800', '\u0000', 'a'.repeat(100_000)];
  for (const input of samples) {
    const result = parseSessionKey(input);
    assert.is(result.ok, false, JSON.stringify(input.slice(0, 20)));
  }
  for (const input of [undefined, null, 42, {}] as unknown as string[]) {
    assert.is(parseSessionKey(input).ok, false);
  }
});

rejected.run();

// ---------------------------------------------------------------- publishable

const publishable = suite('session-key: keys an event may be published to');

publishable('an id whose variation selectors each vary the character before them, as emoji carry them, is publishable', () => {
  const keys = [
    'main',
    'agent:ops:direct:bob',
    'agent:ops:direct:bob\u2764\ufe0f',
    'agent:ops:direct:\u{1F3F3}\ufe0f',
    'agent:ops:slack:channel:C1:thread:\u2614\ufe0e',
    // An ideographic variant, a math symbol's standardized variant, a Mongolian free variation selector.
    'agent:ops:slack:T1:group:\u845b\u{E0100}',
    'agent:ops:direct:\u2229\ufe00',
    'agent:ops:direct:\u1820\u180b',
    // A keycap: digit, VS16, U+20E3.
    'agent:ops:direct:room1\ufe0f\u20e3',
  ];
  for (const key of keys) {
    assert.is(unpublishableKeyReason(parsed(key)), null, key);
  }
});

publishable('an id with a variation selector that varies nothing, or a blank Braille pattern, parses but is not publishable', () => {
  // Parsed, so a session stored under such a key by an earlier version can still be read and acked.
  const vs = 'a variation selector that varies no character before it';
  const cases: Array<[string, string]> = [
    ['agent:vs:direct:\ufe0f', `peer "\ufe0f" contains ${vs} (U+FE0F) at character 1`],
    ['agent:vs:telegram:direct:U77\ufe0f', `peer "U77\ufe0f" contains ${vs} (U+FE0F) at character 4`],
    ['agent:vs:direct:bob\ufe0e', `peer "bob\ufe0e" contains ${vs} (U+FE0E) at character 4`],
    ['agent:vs:direct:\u2764\ufe0f\ufe0f', `peer "\u2764\ufe0f\ufe0f" contains ${vs} (U+FE0F) at character 3`],
    ['agent:vs:direct:\u00e9\ufe0f', `peer "\u00e9\ufe0f" contains ${vs} (U+FE0F) at character 2`],
    ['agent:vs:direct:\u845b\ufe0f', `peer "\u845b\ufe0f" contains ${vs} (U+FE0F) at character 2`],
    ['agent:vs:direct:1\ufe0f', `peer "1\ufe0f" contains ${vs} (U+FE0F) at character 2`],
    ['agent:vs:direct:1\ufe0f\u20e3\ufe0f', `peer "1\ufe0f\u20e3\ufe0f" contains ${vs} (U+FE0F) at character 4`],
    ['agent:vs:direct:1\u{E0100}\u20e3', `peer "1\u{E0100}\u20e3" contains ${vs} (U+E0100) at character 2`],
    ['agent:vs:direct:a\u180b', `peer "a\u180b" contains ${vs} (U+180B) at character 2`],
    ['agent:vs:direct:x\ufe00', `peer "x\ufe00" contains ${vs} (U+FE00) at character 2`],
    // Counted in characters: the emoji before it counts once.
    ['agent:vs:direct:\u{1F600}\u{1F600}b\ufe0f', `peer "\u{1F600}\u{1F600}b\ufe0f" contains ${vs} (U+FE0F) at character 4`],
    ['agent:vs:slack:\u2800:direct:U1', 'account "\u2800" contains the blank Braille pattern, which prints as a space (U+2800) at character 1'],
    ['agent:vs:slack:channel:C\u2800', 'channel id "C\u2800" contains the blank Braille pattern, which prints as a space (U+2800) at character 2'],
    ['agent:vs:slack:group:G1:topic:a\u2800', 'topic id "a\u2800" contains the blank Braille pattern, which prints as a space (U+2800) at character 2'],
    ['agent:vs:slack:group:G1:thread:\u2800\ufe0f', 'thread id "\u2800\ufe0f" contains the blank Braille pattern, which prints as a space (U+2800) at character 1'],
  ];
  for (const [key, why] of cases) {
    assert.is(unpublishableKeyReason(parsed(key)), why, key);
  }
});

publishable('the refusal says no event is published to the key, not that it is invalid: it is, for reads', () => {
  const error = unpublishableKeyError('agent:vs:direct:U77\ufe0f', 'why');
  assert.is(error.code, ErrorCode.INVALID_PARAMS);
  assert.equal(error.data.errors, [
    { path: '/sessionKey', message: 'no event is published to session key "agent:vs:direct:U77\ufe0f": why, so it prints like another key; leave the character out' },
  ]);
  assert.is(error.data.acceptedForms, undefined);
});

publishable('a bad character is placed by characters, not UTF-16 units', () => {
  assert.match(reason('agent:ops:direct:\u{1F600}\u{1F600}a\u200bb'), 'contains an invisible format character (U+200B) at character 4;');
});

publishable.run();

// ---------------------------------------------------------------- error

const error = suite('session-key: sessionKeyError');

error('is INVALID_PARAMS at /sessionKey with the reason and the accepted forms', () => {
  const input = 'agent:ops';
  const result = parseSessionKey(input);
  assert.is(result.ok, false);
  const why = result.ok ? '' : result.reason;
  const err = sessionKeyError(input, why);
  assert.is(err.code, -32602);
  assert.is(err.code, ErrorCode.INVALID_PARAMS);
  assert.is(err.data.name, 'INVALID_PARAMS');
  assert.is(err.data.errors?.length, 1);
  assert.is(err.data.errors?.[0]?.path, '/sessionKey');
  assert.is(
    err.data.errors?.[0]?.message,
    `session key "agent:ops" is invalid: ${why}. Accepted forms: ${SESSION_KEY_FORMS.join(', ')}`,
  );
  assert.equal(err.data.acceptedForms, SESSION_KEY_FORMS);
  assert.ok(err.message.includes(why));
  for (const form of SESSION_KEY_FORMS) assert.ok(err.message.includes(form), form);
});

error('shows control characters escaped and cuts long input', () => {
  const err = sessionKeyError(`a\u0000${'b'.repeat(200)}`, 'r');
  assert.ok(err.data.errors?.[0]?.message.startsWith(`session key "a\\u0000${'b'.repeat(78)}…" is invalid: r.`));
});

error('SESSION_KEY_FORMS lists every form and cannot be changed', () => {
  assert.equal(SESSION_KEY_FORMS, [
    'main',
    'agent:<agentId>:main',
    'agent:<agentId>[:<channel>[:<account>]]:direct:<peer>',
    'agent:<agentId>:<channel>[:<account>]:group:<id>[:thread:<threadId>|:topic:<topicId>]',
    'agent:<agentId>:<channel>[:<account>]:channel:<id>[:thread:<threadId>|:topic:<topicId>]',
  ]);
  assert.ok(Object.isFrozen(SESSION_KEY_FORMS));
});

error.run();
