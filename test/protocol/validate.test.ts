import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import Type from 'typebox';
import {
  MAX_AGENT_ID_LENGTH,
  MAX_BACKUP_PATH_LENGTH,
  MAX_CONTEXT_KEY_LENGTH,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  MAX_READ_LIMIT,
  MAX_SESSION_KEY_LENGTH,
} from '../../src/protocol/constants.js';
import { RpcError, type ParamProblem } from '../../src/protocol/errors.js';
import { METHODS, METHOD_NAMES } from '../../src/protocol/methods.js';
import { MAX_REPORTED_PROBLEMS, compileValidator, rejectLookalikeKey } from '../../src/protocol/validate.js';

const test = suite('protocol/validate');

const systemEvent = compileValidator(METHODS['system.event'].params);
const sessionRead = compileValidator(METHODS['session.peek'].params);
const sessionList = compileValidator(METHODS['session.list'].params);
const empty = compileValidator(METHODS['gateway.status'].params);

const FULL = {
  text: 'build 123 failed',
  mode: 'next-heartbeat',
  sessionKey: 'agent:main:slack:group:C123:thread:1700000000.1',
  agentId: 'main',
  contextKey: 'build:123',
  idempotencyKey: '6f1c2a1e-8d7e-4a53-9c5b-1b2f3e4d5c6a',
};

/** Asserts value is accepted: check() is true, problems() is empty, parse() returns it. */
function accepts(validator: ReturnType<typeof compileValidator>, value: unknown): void {
  assert.equal(validator.problems(value), [], JSON.stringify(value));
  assert.ok(validator.check(value), `check rejected ${JSON.stringify(value)}`);
  assert.is(validator.parse(value), value);
}

/** Asserts value is rejected with exactly these problems, by problems(), check() and parse(). */
function rejects(validator: ReturnType<typeof compileValidator>, value: unknown, expected: ParamProblem[]): void {
  assert.equal(validator.problems(value), expected);
  assert.not.ok(validator.check(value), `check accepted ${JSON.stringify(value)}`);
  try {
    validator.parse(value);
  } catch (error) {
    assert.instance(error, RpcError);
    const rpc = error as RpcError;
    assert.is(rpc.code, -32602);
    assert.equal(rpc.data, { name: 'INVALID_PARAMS', errors: expected });
    return;
  }
  assert.unreachable('parse() did not throw');
}

test('every method has a params validator that compiles and accepts its minimal params', () => {
  const minimal: Record<string, unknown> = {
    'system.event': { text: 'x' },
    'session.peek': { sessionKey: 'main' },
    'session.drain': { sessionKey: 'main' },
    'session.list': {},
    'gateway.status': {},
    'rpc.discover': {},
    'session.subscribe': { sessionKey: 'main' },
    'session.unsubscribe': { subscriptionId: 'sub_1' },
    'session.ack': { sessionKey: 'main', seq: 0 },
    'event.trace': { eventId: 'evt_1' },
    'token.create': { agentId: 'ops' },
    'token.list': {},
    'token.revoke': { tokenId: 'tok_1' },
    'gateway.backup': { path: '/var/backups/switchboard.db' },
  };
  assert.equal([...METHOD_NAMES].sort(), Object.keys(minimal).sort(), 'a method was added: give it a case here');
  for (const name of METHOD_NAMES) accepts(compileValidator(METHODS[name].params), minimal[name]);
});

test('keys matched as sent (contextKey, idempotencyKey) that would print like another are refused, naming the path and the character; spaces within, emoji and any script pass', () => {
  const refusal = (key: string) => {
    try {
      rejectLookalikeKey(key, '/contextKey');
      return undefined;
    } catch (error) {
      assert.instance(error, RpcError);
      return (error as RpcError).data.errors;
    }
  };
  const edge = 'starts or ends with whitespace or a control character, so it would print like a key it does not match; remove it';
  for (const key of ['build:42 ', ' build:42', 'nightly\n', '\tx', 'x\u00a0', 'x\u3000']) assert.equal(refusal(key), [{ path: '/contextKey', message: edge }], JSON.stringify(key));
  const hidden = (code: string, at: number) => [
    { path: '/contextKey', message: `contains ${code} at character ${at}, a control, invisible or whitespace character other than a space, so it would print like a key it does not match; remove it` },
  ];
  assert.equal(refusal('build:\u200b42'), hidden('U+200B', 7));
  assert.equal(refusal('a\u00a0b'), hidden('U+00A0', 2));
  assert.equal(refusal('a\nb'), hidden('U+000A', 2));
  assert.equal(refusal('🚀\u2060x'), hidden('U+2060', 2), 'counted in characters: the emoji is one');
  assert.equal(refusal('a\u00adb'), hidden('U+00AD', 2), 'a soft hyphen prints as nothing');
  for (const key of ['build:42', 'deploy prod eu', '❤️ release', 'ビルド42', 'a'.repeat(256)]) assert.is(refusal(key), undefined, key);
});

test('system.event: minimal and full params are accepted', () => {
  accepts(systemEvent, { text: 'x' });
  accepts(systemEvent, FULL);
  accepts(systemEvent, { ...FULL, mode: 'now' });
});

test('system.event: missing text', () => {
  rejects(systemEvent, {}, [{ path: '/text', message: 'is required' }]);
  rejects(systemEvent, { mode: 'now' }, [{ path: '/text', message: 'is required' }]);
});

test('system.event: unknown param', () => {
  rejects(systemEvent, { text: 'x', foo: 1 }, [{ path: '/foo', message: 'is not a known parameter' }]);
  // A near miss of a real name is still unknown: no case folding.
  rejects(systemEvent, { text: 'x', SessionKey: 'main' }, [{ path: '/SessionKey', message: 'is not a known parameter' }]);
});

test('system.event: wrong types', () => {
  rejects(systemEvent, { text: 5 }, [{ path: '/text', message: 'must be a string' }]);
  rejects(systemEvent, { text: 'x', sessionKey: null }, [{ path: '/sessionKey', message: 'must be a string' }]);
  rejects(systemEvent, { text: 'x', agentId: ['main'] }, [{ path: '/agentId', message: 'must be a string' }]);
  for (const params of [null, 5, 'text', [], true]) {
    rejects(systemEvent, params, [{ path: '', message: 'must be an object' }]);
  }
});

test('system.event: mode must be one of the enum', () => {
  rejects(systemEvent, { text: 'x', mode: 'later' }, [{ path: '/mode', message: 'must be one of "now", "next-heartbeat"' }]);
  rejects(systemEvent, { text: 'x', mode: 'NOW' }, [{ path: '/mode', message: 'must be one of "now", "next-heartbeat"' }]);
});

test('system.event: empty strings are rejected', () => {
  for (const key of ['text', 'sessionKey', 'agentId', 'contextKey', 'idempotencyKey']) {
    const params = key === 'text' ? { text: '' } : { text: 'x', [key]: '' };
    rejects(systemEvent, params, [{ path: `/${key}`, message: 'must not be empty' }]);
  }
});

test('system.event: a contextKey or idempotencyKey of whitespace alone is refused; whitespace around or within a key is part of it', () => {
  for (const key of ['contextKey', 'idempotencyKey']) {
    for (const [blank, first] of [[' ', 'U+0020'], ['\t\n', 'U+0009'], ['\u00a0\u3000', 'U+00A0']]) {
      const message = `must not be only whitespace (an unset variable?); it contains whitespace (${first}) at character 1`;
      rejects(systemEvent, { text: 'x', [key]: blank }, [{ path: `/${key}`, message }]);
    }
    accepts(systemEvent, { text: 'x', [key]: ' build 7 ' });
  }
});

const LIMITS: Array<[key: string, limit: number]> = [
  ['idempotencyKey', MAX_IDEMPOTENCY_KEY_LENGTH],
  ['contextKey', MAX_CONTEXT_KEY_LENGTH],
  ['sessionKey', MAX_SESSION_KEY_LENGTH],
  ['agentId', MAX_AGENT_ID_LENGTH],
];

test('the limits are the documented numbers', () => {
  assert.equal(Object.fromEntries(LIMITS), { idempotencyKey: 256, contextKey: 256, sessionKey: 512, agentId: 64 });
});

test('system.event: length limits at the edge and one past it', () => {
  for (const [key, limit] of LIMITS) {
    accepts(systemEvent, { text: 'x', [key]: 'a'.repeat(limit) });
    rejects(systemEvent, { text: 'x', [key]: 'a'.repeat(limit + 1) }, [
      { path: `/${key}`, message: `must be at most ${limit} characters` },
    ]);
  }
});

const AGENT_ID_MESSAGE = 'must be an agent id: letters a-z (either case), digits, "_" or "-", starting with a letter or digit';

test('system.event: agentId pattern', () => {
  for (const agentId of ['main', 'a', '0', 'Ops_Bot-2', 'a-b_c']) accepts(systemEvent, { text: 'x', agentId });
  for (const agentId of ['-main', '_main', 'main:x', 'agent/1', 'é']) {
    rejects(systemEvent, { text: 'x', agentId }, [{ path: '/agentId', message: AGENT_ID_MESSAGE }]);
  }
});

test('system.event: an agentId holding a character that prints as nothing (or as a space) is told which and where', () => {
  const cases: Array<[string, string]> = [
    ['ma\u200bin', 'contains an invisible format character (U+200B) at character 3'],
    ['main\u202e', 'contains an invisible format character (U+202E) at character 5'],
    ['ma in', 'contains whitespace (U+0020) at character 3'],
    ['\u0007main', 'contains a control character (U+0007) at character 1'],
  ];
  for (const [agentId, found] of cases) {
    rejects(systemEvent, { text: 'x', agentId }, [{ path: '/agentId', message: `${AGENT_ID_MESSAGE}; it ${found}` }]);
  }
});

test('session.peek/drain: sessionKey optional (the token\'s main session), limit within 1..MAX_READ_LIMIT, after >= 0', () => {
  accepts(sessionRead, {});
  rejects(sessionRead, { sessionKey: '' }, [{ path: '/sessionKey', message: 'must not be empty' }]);
  accepts(sessionRead, { sessionKey: 'main', limit: 1, after: 0 });
  accepts(sessionRead, { sessionKey: 'main', limit: MAX_READ_LIMIT });
  rejects(sessionRead, { sessionKey: 'main', limit: 0 }, [{ path: '/limit', message: 'must be at least 1' }]);
  rejects(sessionRead, { sessionKey: 'main', limit: MAX_READ_LIMIT + 1 }, [{ path: '/limit', message: `must be at most ${MAX_READ_LIMIT}` }]);
  rejects(sessionRead, { sessionKey: 'main', limit: 1.5 }, [{ path: '/limit', message: 'must be an integer' }]);
  rejects(sessionRead, { sessionKey: 'main', after: -1 }, [{ path: '/after', message: 'must be at least 0' }]);
  rejects(sessionRead, { limit: 'ten' }, [{ path: '/limit', message: 'must be an integer' }]);
});

test('a seq or cursor past 2^53 - 1 is refused where given: JSON carries it as a double, which rounds it to a neighbour', () => {
  const ack = compileValidator(METHODS['session.ack'].params);
  const subscribe = compileValidator(METHODS['session.subscribe'].params);
  const tooLarge = JSON.parse('9007199254740993') as number;
  const atMost = `must be at most ${Number.MAX_SAFE_INTEGER}`;
  accepts(ack, { sessionKey: 'main', seq: Number.MAX_SAFE_INTEGER });
  rejects(ack, { sessionKey: 'main', seq: tooLarge }, [{ path: '/seq', message: atMost }]);
  accepts(sessionRead, { after: Number.MAX_SAFE_INTEGER });
  rejects(sessionRead, { after: tooLarge }, [{ path: '/after', message: atMost }]);
  rejects(subscribe, { sessionKey: 'main', after: tooLarge }, [{ path: '/after', message: `${atMost}, or an object` }]);
  rejects(subscribe, { agentId: 'ops', after: { 'agent:ops:main': tooLarge } }, [{ path: '/after/agent:ops:main', message: atMost }]);
});

test('gateway.backup: a path of MAX_BACKUP_PATH_LENGTH characters is taken, one more is refused', () => {
  const backup = compileValidator(METHODS['gateway.backup'].params);
  const longest = `/${'b'.repeat(MAX_BACKUP_PATH_LENGTH - 1)}`;
  accepts(backup, { path: longest });
  rejects(backup, { path: `${longest}b` }, [{ path: '/path', message: `must be at most ${MAX_BACKUP_PATH_LENGTH} characters` }]);
  rejects(backup, { path: '' }, [{ path: '/path', message: 'must not be empty' }]);
});

test('a union with more bad members than TypeBox yields errors for is still answered with its problems, never an empty list', () => {
  const subscribe = compileValidator(METHODS['session.subscribe'].params);
  for (const count of [7, 8, 100]) {
    const after = Object.fromEntries(Array.from({ length: count }, (_, i) => [`bad${i}`, 'x']));
    const problems = subscribe.problems({ agentId: 'ops', after });
    assert.ok(problems.length > 0 && problems.length <= MAX_REPORTED_PROBLEMS, `${count}: ${problems.length}`);
    for (const [i, problem] of problems.entries()) assert.equal(problem, { path: `/after/bad${i}`, message: 'must be an integer' });
  }
});

test('a union is described by its branches, or by the one that failed inside the value: never "must match a schema in anyOf"', () => {
  const subscribe = compileValidator(METHODS['session.subscribe'].params);
  rejects(subscribe, { agentId: 'ops', after: -1 }, [{ path: '/after', message: 'must be at least 0, or an object' }]);
  rejects(subscribe, { agentId: 'ops', after: 1.5 }, [{ path: '/after', message: 'must be an integer, or an object' }]);
  rejects(subscribe, { agentId: 'ops', after: { 'agent:ops:main': -2 } }, [{ path: '/after/agent:ops:main', message: 'must be at least 0' }]);
  const tokenCreate = compileValidator(METHODS['token.create'].params);
  for (const value of [{ agent: 'ops' }, { agentId: 'ops', scopes: ['root'] }, { agentId: 'ops', name: 5 }]) {
    for (const problem of tokenCreate.problems(value)) assert.not.match(problem.message, 'anyOf', JSON.stringify(value));
  }
});

test('session.list and the empty params of gateway.status', () => {
  accepts(sessionList, { agentId: 'main', limit: 10 });
  rejects(sessionList, { sessionKey: 'main' }, [{ path: '/sessionKey', message: 'is not a known parameter' }]);
  rejects(empty, { verbose: true }, [{ path: '/verbose', message: 'is not a known parameter' }]);
});

test('the number of reported problems is bounded by MAX_REPORTED_PROBLEMS', () => {
  assert.is(MAX_REPORTED_PROBLEMS, 8);
  const unknown = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
  const problems = systemEvent.problems(unknown);
  assert.is(problems.length, MAX_REPORTED_PROBLEMS);
  assert.equal(problems[0], { path: '/text', message: 'is required' });
  assert.equal(
    problems.slice(1).map((p) => p.path),
    Array.from({ length: MAX_REPORTED_PROBLEMS - 1 }, (_, i) => `/k${i}`),
  );
  // One raw "required" error names every missing property: the bound applies to those too.
  const wide = compileValidator(Type.Object(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, Type.String()]))));
  assert.equal(
    wide.problems({}),
    Array.from({ length: MAX_REPORTED_PROBLEMS }, (_, i) => ({ path: `/f${i}`, message: 'is required' })),
  );
  // One problem per path, never more than the bound, whatever mix of errors the params hold.
  const mixed = { text: 1, mode: 2, sessionKey: 3, agentId: 4, contextKey: 5, idempotencyKey: 6, a: 1, b: 2, c: 3 };
  const reported = systemEvent.problems(mixed);
  assert.ok(reported.length > 0 && reported.length <= MAX_REPORTED_PROBLEMS, `${reported.length} problems`);
  assert.is(new Set(reported.map((p) => p.path)).size, reported.length);
});

test('parse lists a malformed sessionKey among the schema\'s problems, with the accepted forms, while the list has room', () => {
  const thrown = (value: unknown) => {
    try {
      systemEvent.parse(value);
    } catch (error) {
      return (error as RpcError).data;
    }
    throw new Error('accepted');
  };
  const both = thrown({ text: '', sessionKey: 'bad' });
  assert.equal(both.errors!.map((problem) => problem.path), ['/text', '/sessionKey']);
  assert.ok(Array.isArray(both['acceptedForms']));
  assert.equal(thrown({ text: '', sessionKey: 'main' }).errors!.map((problem) => problem.path), ['/text'], 'a valid key adds nothing');
  const unknown = Object.fromEntries(Array.from({ length: MAX_REPORTED_PROBLEMS }, (_, i) => [`extra${i}`, i]));
  assert.is(thrown({ text: 'x', sessionKey: 'bad', ...unknown }).errors!.length, MAX_REPORTED_PROBLEMS, 'no more than the list holds');
});

test('every string param holding a lone surrogate is named, with the schema\'s problems or alone; a pair is a character like any other', () => {
  const UNSTORABLE = 'holds a lone UTF-16 surrogate, which cannot be stored as UTF-8; send well-formed Unicode';
  rejects(systemEvent, { text: 'x', contextKey: 'k\ud800', idempotencyKey: 'i\udfff' }, [
    { path: '/contextKey', message: UNSTORABLE },
    { path: '/idempotencyKey', message: UNSTORABLE },
  ]);
  rejects(systemEvent, { text: 't\ud800', mode: 'bad' }, [
    { path: '/mode', message: 'must be one of "now", "next-heartbeat"' },
    { path: '/text', message: UNSTORABLE },
  ]);
  rejects(compileValidator(METHODS['token.create'].params), { agentId: 'a', name: '\udc00' }, [{ path: '/name', message: UNSTORABLE }]);
  // Named once, by the pattern that refuses it, or (a session key) by the key's grammar.
  assert.equal(systemEvent.problems({ text: 'x', agentId: 'a\ud800' }).map((problem) => problem.path), ['/agentId']);
  assert.equal(systemEvent.problems({ text: 'x', sessionKey: 'agent:a:dm:\ud800' }), []);
  accepts(systemEvent, { ...FULL, text: 'deploy \u{1f680} done', contextKey: '\u{1f680}' });
});

test('__proto__ and constructor keys are unknown params and pollute nothing', () => {
  const before = Object.getOwnPropertyNames(Object.prototype).sort();
  const params: unknown = JSON.parse('{"text":"x","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}');
  rejects(systemEvent, params, [
    { path: '/__proto__', message: 'is not a known parameter' },
    { path: '/constructor', message: 'is not a known parameter' },
  ]);
  assert.equal(Object.getOwnPropertyNames(Object.prototype).sort(), before);
  assert.is((({}) as Record<string, unknown>)['polluted'], undefined);
  assert.is(Object.getPrototypeOf(params), Object.prototype);
});

test.run();
