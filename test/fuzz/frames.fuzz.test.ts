/**
 * Frames fuzzed against a live gateway: random bytes (binary frames), random JSON, JSON-RPC-shaped
 * objects and batches with every kind of id, params and method (real, junk, prototype names),
 * prototype-pollution keys, huge numbers and deep nesting.
 *
 * Each frame's answer is predicted from the JSON-RPC 2.0 spec alone (an independent model below):
 * nothing for a notification or a batch of notifications, one response with the request's id (or
 * null when the id could not be read) otherwise, an array for a batch. After each frame a good
 * request with a unique id goes down the same socket: its answer proves the connection still works
 * and bounds the wait for an answer that must not come, without sleeping. The gateway answers
 * frames concurrently, so answers are matched by id, never by order; a second test pipelines
 * hundreds of frames at once per socket to make the most of that concurrency.
 *
 * At the end: the gateway still answers, Object.prototype is untouched, nothing was logged as an
 * internal error, and every stored event is one whose system.event call was answered with a
 * result (or one sent as a valid notification, which gets no answer by design).
 *
 * Frames are drawn with fc.sample from one seed (printed on failure; SB_FUZZ_SEED=<n> replays it)
 * and sent over several sockets at once, so the run stays bounded (a few seconds).
 */
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import { MAX_BATCH_LENGTH, MAX_FRAME_BYTES } from '../../src/protocol/constants.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { METHODS } from '../../src/protocol/methods.js';
import {
  cleanup,
  resultOf,
  startGatewayProcess,
  startInProcessGateway,
  type InProcessGateway,
  type JsonRpcResponse,
} from '../helpers/gateway.js';

const SEED = process.env['SB_FUZZ_SEED'] === undefined ? Date.now() % 2_147_483_647 : Number(process.env['SB_FUZZ_SEED']);
const LANES = 6;
const FRAMES_PER_LANE = 400;
/** Per frame: the gateway answers in milliseconds; this only turns a hang into a failure. */
const ANSWER_TIMEOUT_MS = 5_000;

const REAL_METHODS = Object.keys(METHODS);

// ---------------------------------------------------------------- the spec model

/** "No answer" for a notification. */
const NONE = Symbol('no answer');

interface Expected {
  /** The id the answer must carry (JSON-equal), null when the request's id could not be read. */
  id: unknown;
  /** The error code when the spec fixes it from the envelope alone; undefined when the method decides. */
  code?: number | undefined;
  /** Error codes that are all acceptable (a choice the spec leaves to the server). */
  codes?: readonly number[];
}

type Expectation = { kind: 'none' } | { kind: 'single'; answer: Expected } | { kind: 'array'; answers: Expected[] };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Any JSON Number is an id (§4), one JSON.parse reads as Infinity (1e400) included. */
function isValidId(id: unknown): boolean {
  return id === null || typeof id === 'string' || typeof id === 'number';
}

/** What one request object (alone or in a batch) must be answered with, per JSON-RPC 2.0 §4-5. */
function expectOne(item: unknown): Expected | typeof NONE {
  if (!isObject(item)) return { id: null, code: ErrorCode.INVALID_REQUEST };
  const hasId = Object.prototype.hasOwnProperty.call(item, 'id');
  const id = item['id'];
  const hasParams = Object.prototype.hasOwnProperty.call(item, 'params');
  const params = item['params'];
  const envelopeOk =
    item['jsonrpc'] === '2.0' && typeof item['method'] === 'string' && (!hasParams || (typeof params === 'object' && params !== null));
  if (!hasId) {
    // A valid Request without an id is a notification: never answered, whatever happens to it.
    // An object that is not a valid Request is answered, with id null (§5: the id could not be read).
    return envelopeOk ? NONE : { id: null, code: ErrorCode.INVALID_REQUEST };
  }
  if (!isValidId(id)) return { id: null, code: ErrorCode.INVALID_REQUEST };
  if (!envelopeOk) return { id, code: ErrorCode.INVALID_REQUEST };
  // By-position params: the server only takes params by name; refusing them as invalid params or
  // as an unknown method (for a method that does not exist) are both faithful to the spec. An
  // empty array names no param at all: the gateway takes it as "no params".
  if (Array.isArray(params) && params.length > 0) return { id, codes: [ErrorCode.INVALID_PARAMS, ErrorCode.METHOD_NOT_FOUND] };
  if (!REAL_METHODS.includes(item['method'] as string)) return { id, code: ErrorCode.METHOD_NOT_FOUND };
  return { id };
}

/** What a request that is not run is answered: its refusal, unless it was no valid request at all. */
function refusedUnrun(one: Expected | typeof NONE): Expected | typeof NONE {
  return one === NONE || one.code === ErrorCode.INVALID_REQUEST ? one : { id: one.id, code: ErrorCode.INVALID_REQUEST };
}

/** What a whole frame must be answered with; `text` is the frame as the gateway decodes it. */
function expectFrame(text: string): Expectation {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return { kind: 'single', answer: { id: null, code: ErrorCode.PARSE_ERROR } };
  }
  if (!Array.isArray(message)) {
    const one = expectOne(message);
    return one === NONE ? { kind: 'none' } : { kind: 'single', answer: one };
  }
  if (message.length === 0) return { kind: 'single', answer: { id: null, code: ErrorCode.INVALID_REQUEST } };
  // Past the limit, none runs: each request is answered INVALID_REQUEST, as an invalid one is.
  const expectEach = message.length > MAX_BATCH_LENGTH ? (item: unknown) => refusedUnrun(expectOne(item)) : expectOne;
  const answers = message.map(expectEach).filter((one): one is Expected => one !== NONE);
  return answers.length === 0 ? { kind: 'none' } : { kind: 'array', answers };
}

const RESPONSE_KEYS = new Set(['jsonrpc', 'id', 'result', 'error']);

/** A spec-conformant Response object (§5), and no internal error. Returns a problem, or undefined. */
function responseProblem(response: unknown): string | undefined {
  if (!isObject(response)) return 'a response must be an object';
  for (const key of Object.keys(response)) if (!RESPONSE_KEYS.has(key)) return `unexpected member "${key}"`;
  if (response['jsonrpc'] !== '2.0') return '"jsonrpc" must be "2.0"';
  if (!('id' in response)) return 'a response must have an id (null when unknown)';
  const hasResult = 'result' in response;
  const hasError = 'error' in response;
  if (hasResult === hasError) return 'exactly one of result and error';
  if (hasError) {
    const error = response['error'];
    if (!isObject(error)) return 'error must be an object';
    if (!Number.isInteger(error['code'])) return 'error.code must be an integer';
    if (typeof error['message'] !== 'string') return 'error.message must be a string';
    if (error['code'] === ErrorCode.INTERNAL_ERROR) return 'INTERNAL_ERROR: a bug in the gateway (see its log)';
  }
  return undefined;
}

function sameId(a: unknown, b: unknown): boolean {
  // Numbers by value: JSON.stringify writes Infinity as null, which would take an id of null for 1e400.
  if (typeof a === 'number' || typeof b === 'number') return a === b;
  return JSON.stringify(a) === JSON.stringify(b);
}

function codeOf(response: Record<string, unknown>): number | undefined {
  const error = response['error'];
  return isObject(error) ? (error['code'] as number) : undefined;
}

function fits(response: Record<string, unknown>, expected: Expected): boolean {
  if (!sameId(response['id'], expected.id)) return false;
  if (expected.code !== undefined) return codeOf(response) === expected.code;
  if (expected.codes !== undefined) return expected.codes.includes(codeOf(response) as number);
  return true;
}

/** Checks an answer against the expectation; returns a problem, or undefined when it conforms. */
function answerProblem(answer: unknown, expectation: Expectation): string | undefined {
  if (expectation.kind === 'none') return `expected no answer, got ${show(answer)}`;
  if (expectation.kind === 'single') {
    if (Array.isArray(answer)) return `expected one response object, got an array ${show(answer)}`;
    const problem = responseProblem(answer);
    if (problem) return `${problem}: ${show(answer)}`;
    if (!fits(answer as Record<string, unknown>, expectation.answer)) return `expected ${show(expectation.answer)}, got ${show(answer)}`;
    return undefined;
  }
  if (!Array.isArray(answer)) return `expected an array of ${expectation.answers.length}, got ${show(answer)}`;
  if (answer.length !== expectation.answers.length) return `expected ${expectation.answers.length} responses, got ${answer.length}: ${show(answer)}`;
  const left = [...expectation.answers];
  for (const response of answer) {
    const problem = responseProblem(response);
    if (problem) return `${problem}: ${show(response)}`;
    const r = response as Record<string, unknown>;
    // Prefer an expectation that fixes the code: those are interchangeable with each other.
    let at = left.findIndex((expected) => (expected.code !== undefined || expected.codes !== undefined) && fits(r, expected));
    if (at < 0) at = left.findIndex((expected) => fits(r, expected));
    if (at < 0) return `response ${show(response)} matches no request of the batch (left: ${show(left)})`;
    left.splice(at, 1);
  }
  return undefined;
}

function show(value: unknown, max = 400): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

// ---------------------------------------------------------------- frame arbitraries (as JSON text)

/** Object text from [key, value-text] pairs, so "__proto__" stays an own key and numbers stay literal. */
function objectText(entries: readonly (readonly [string, string])[]): string {
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`;
}

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype'] as const;

const hugeNumber = fc.constantFrom(
  '1e400',
  '-1e400',
  '1E-400',
  '-0',
  '0.5',
  '1.0',
  '9007199254740993',
  '123456789012345678901234567890123456789',
  '-9223372036854775809',
  '1e308',
  '4.9e-324',
);

const pollution = fc.constantFrom(
  '{"polluted":"yes"}',
  '{"prototype":{"polluted":"yes"}}',
  '{"__proto__":{"polluted":"yes"}}',
  '{"toString":"x","valueOf":1,"hasOwnProperty":null}',
);

const anyKey = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 2, arbitrary: fc.constantFrom(...PROTO_KEYS, 'polluted', 'toString', 'hasOwnProperty') },
  { weight: 2, arbitrary: fc.constantFrom('text', 'mode', 'sessionKey', 'agentId', 'contextKey', 'idempotencyKey', 'limit', 'after', 'seq') },
);

/** Any JSON value as text: with own "__proto__" keys, literal huge numbers and lone-surrogate escapes. */
const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)),
    hugeNumber,
    pollution,
    fc.constantFrom('"\\ud800"', '"\\udfff x"', '"\\u0000"', '"\u2028"'),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc.array(fc.tuple(anyKey, tie('value')), { maxLength: 4 }).map(objectText),
  ),
})).value;

const idText = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  hugeNumber,
  fc.string({ maxLength: 12 }).filter((s) => !s.startsWith('probe-')).map((s) => JSON.stringify(s)),
  fc.constantFrom('null', 'true', 'false', '{}', '[]', '[1]', '{"id":1}', '""'),
  jsonText,
);

const methodText = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...REAL_METHODS).map((m) => JSON.stringify(m)) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'rpc.', 'system.Event', 'SYSTEM.EVENT', '', ' system.event')
      .map((m) => JSON.stringify(m)),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 16 }).map((m) => JSON.stringify(m)) },
  { weight: 1, arbitrary: jsonText },
);

/** Session keys, mostly valid (so calls get through to the store), some broken, some prototype names. */
const sessionKeyValue = fc.constantFrom(
  'agent:fz:main',
  'main',
  'MAIN',
  'agent:fz:slack:channel:C1',
  'agent:FZ:Slack:Acct:group:G1:topic:7',
  'agent:fz:direct:U1',
  'agent:fz2:telegram:direct:😀',
  'agent:',
  'agent:fz:group:x',
  ' agent:fz:main',
  'agent:fz:direct:a b',
  'agent:fz:main:extra',
  '__proto__',
  'constructor',
  'agent:__proto__:main',
  'agent:fz:slack:channel:__proto__',
  '\ud800',
  '',
);

const textValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 16 }).map((s) => `fz ${s}`) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\n\t', '\u3000', 'x\ud800', '\ud83d', '__proto__') },
  { weight: 1, arbitrary: fc.constantFrom(65_536, 70_000).map((n) => 'x'.repeat(n)) },
);

/** Param values by name: valid ones often, so calls reach the store; otherwise anything. */
const paramValue: Record<string, fc.Arbitrary<string>> = {
  text: fc.oneof({ weight: 5, arbitrary: textValue.map((t) => JSON.stringify(t)) }, { weight: 1, arbitrary: jsonText }),
  mode: fc.oneof(fc.constantFrom('"now"', '"next-heartbeat"', '"NOW"', '"later"', 'null'), jsonText),
  sessionKey: fc.oneof({ weight: 5, arbitrary: sessionKeyValue.map((k) => JSON.stringify(k)) }, { weight: 1, arbitrary: jsonText }),
  agentId: fc.oneof(fc.constantFrom('"fz"', '"FZ"', '"main"', '"-x"', '"__proto__"', '"constructor"', '""'), jsonText),
  contextKey: fc.oneof(fc.constantFrom('"c1"', '"c2"', '""', '"__proto__"'), jsonText),
  idempotencyKey: fc.oneof(fc.constantFrom('"i1"', '"i2"', '"i3"', '""', '"__proto__"', '"constructor"'), jsonText),
  limit: fc.oneof(fc.constantFrom('1', '10', '1000', '1001', '0', '-1', '1.5', '1e400'), hugeNumber),
  after: fc.oneof(fc.constantFrom('0', '1', '-1', '1e400', '{"agent:fz:main":1}', '{"__proto__":1}'), hugeNumber),
  seq: fc.oneof(fc.constantFrom('0', '1', '2', '99', '-1', '1.5'), hugeNumber),
  subscriptionId: fc.oneof(fc.constantFrom('"s1"', '"__proto__"', '""'), jsonText),
  eventId: fc.oneof(fc.constantFrom('"00000000-0000-0000-0000-000000000000"', '"__proto__"', '""'), jsonText),
  tokenId: fc.oneof(fc.constantFrom('"t1"', '"__proto__"'), jsonText),
  scopes: fc.oneof(fc.constantFrom('["publish"]', '["subscribe","publish"]', '[]', '["admin"]'), jsonText),
  name: fc.oneof(fc.constantFrom('"fuzz"', '""'), jsonText),
};
const PARAM_NAMES = Object.keys(paramValue);

const paramEntry: fc.Arbitrary<readonly [string, string]> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...PARAM_NAMES).chain((name) => paramValue[name]!.map((value) => [name, value] as const)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...PROTO_KEYS), pollution) },
  { weight: 1, arbitrary: fc.tuple(anyKey, jsonText) },
);

const paramsText = fc.oneof(
  { weight: 8, arbitrary: fc.array(paramEntry, { maxLength: 5 }).map(objectText) },
  { weight: 1, arbitrary: fc.constantFrom('null', '1', '"x"', 'true', '[]', '["fz text"]', '{}') },
  { weight: 1, arbitrary: jsonText },
);

/** A JSON-RPC-shaped object: each member present or not, well-formed or not, plus stray members. */
const requestText = fc
  .record({
    jsonrpc: fc.option(fc.oneof({ weight: 8, arbitrary: fc.constant('"2.0"') }, { weight: 1, arbitrary: fc.constantFrom('"2"', '2', '2.0', '"1.0"', 'null', '"2.0 "') }), {
      freq: 10,
    }),
    method: fc.option(methodText, { freq: 12 }),
    params: fc.option(paramsText, { freq: 4 }),
    id: fc.option(idText, { freq: 3 }),
    extra: fc.array(
      fc.oneof(
        fc.tuple(fc.constantFrom(...PROTO_KEYS), pollution),
        fc.tuple(fc.constantFrom('result', 'error', 'id', 'method', 'jsonrpc'), jsonText),
        fc.tuple(anyKey, jsonText),
      ),
      { maxLength: 2 },
    ),
    reverse: fc.boolean(),
  })
  .map(({ jsonrpc, method, params, id, extra, reverse }) => {
    const entries: (readonly [string, string])[] = [];
    if (jsonrpc !== null) entries.push(['jsonrpc', jsonrpc]);
    if (method !== null) entries.push(['method', method]);
    if (params !== null) entries.push(['params', params]);
    if (id !== null) entries.push(['id', id]);
    entries.push(...extra);
    return objectText(reverse ? entries.reverse() : entries);
  });

const validKey = sessionKeyValue.filter((key) => /^(main|MAIN|agent:[a-zA-Z0-9]+:\S+)$/.test(key) && !/main:extra|group:x$/.test(key));

/** Well-formed params per method (so calls reach the store), as [name, value-text] entries. */
const goodParams: Record<string, fc.Arbitrary<(readonly [string, string])[]>> = {
  'system.event': fc
    .tuple(
      fc.string({ minLength: 1, maxLength: 12 }).map((t) => JSON.stringify(`fz good ${t}`)),
      fc.option(validKey.map((k) => JSON.stringify(k)), { freq: 4 }),
      fc.option(fc.constantFrom('"now"', '"next-heartbeat"'), { freq: 2 }),
      fc.option(fc.constantFrom('"c1"', '"c2"'), { freq: 6 }),
      // Mostly fresh keys (stored once), sometimes a reused one (a duplicate or a conflict).
      fc.option(fc.oneof({ weight: 4, arbitrary: fc.uuid() }, { weight: 1, arbitrary: fc.constantFrom('i1', 'i2') }).map((k) => JSON.stringify(k)), {
        freq: 3,
      }),
    )
    .map(([text, sessionKey, mode, contextKey, idempotencyKey]) => {
      const entries: (readonly [string, string])[] = [['text', text]];
      if (sessionKey !== null) entries.push(['sessionKey', sessionKey]);
      if (mode !== null) entries.push(['mode', mode]);
      if (contextKey !== null) entries.push(['contextKey', contextKey]);
      if (idempotencyKey !== null) entries.push(['idempotencyKey', idempotencyKey]);
      return entries;
    }),
  'session.peek': fc.record({ sessionKey: validKey.map((k) => JSON.stringify(k)), limit: fc.constantFrom('1', '5') }, { requiredKeys: ['sessionKey'] }).map((p) => Object.entries(p)),
  'session.drain': fc.record({ sessionKey: validKey.map((k) => JSON.stringify(k)), limit: fc.constant('1') }).map((p) => Object.entries(p)),
  'session.ack': fc.record({ sessionKey: validKey.map((k) => JSON.stringify(k)), seq: fc.constantFrom('0', '1', '3') }).map((p) => Object.entries(p)),
  'session.list': fc.record({ agentId: fc.constantFrom('"fz"', '"main"') }, { requiredKeys: [] }).map((p) => Object.entries(p)),
  'session.subscribe': fc.record({ agentId: fc.constantFrom('"fz"', '"main"'), after: fc.constantFrom('{"agent:fz:main":1}', '{}') }, { requiredKeys: ['agentId'] }).map((p) => Object.entries(p)),
  'gateway.status': fc.constant([]),
};

/**
 * A good request, sometimes with one thing broken (a member dropped or replaced, a pollution key
 * added), as a function of its id: null makes it a notification.
 */
const goodRequestWithId = fc
  .tuple(
    fc.constantFrom(...Object.keys(goodParams)).chain((method) => goodParams[method]!.map((params) => ({ method, params }))),
    fc.constantFrom('none', 'none', 'none', 'none', 'drop-param', 'junk-param', 'proto-param', 'proto-top'),
    paramEntry,
  )
  .map(([{ method, params }, mutation, junk]) => (id: string | null): string => {
    const p = [...params];
    if (mutation === 'drop-param' && p.length > 0) p.shift();
    if (mutation === 'junk-param') p.push(junk);
    if (mutation === 'proto-param') p.push(['__proto__', '{"polluted":"yes","text":"fz inherited"}']);
    const entries: (readonly [string, string])[] = [
      ['jsonrpc', '"2.0"'],
      ['method', JSON.stringify(method)],
      ['params', objectText(p)],
    ];
    if (id !== null) entries.push(['id', id]);
    if (mutation === 'proto-top') entries.push(['__proto__', '{"polluted":"yes"}']);
    return objectText(entries);
  });

const goodRequest = fc
  .tuple(
    goodRequestWithId,
    fc.oneof(fc.integer({ min: 0, max: 1_000_000 }).map(String), fc.uuid().map((u) => JSON.stringify(u)), fc.constant('null')),
    // One in five is a notification.
    fc.nat(4).map((n) => n === 0),
  )
  .map(([withId, id, asNotification]) => withId(asNotification ? null : id));

type Frame = { kind: 'text'; text: string; label: string } | { kind: 'binary'; bytes: Buffer; label: string };

const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 10, arbitrary: requestText.map((text): Frame => ({ kind: 'text', text, label: 'request' })) },
  { weight: 6, arbitrary: goodRequest.map((text): Frame => ({ kind: 'text', text, label: 'good request' })) },
  {
    weight: 4,
    arbitrary: fc
      .array(fc.oneof({ weight: 4, arbitrary: requestText }, { weight: 4, arbitrary: goodRequest }, { weight: 1, arbitrary: jsonText }), {
        minLength: 0,
        maxLength: 8,
      })
      .map((items): Frame => ({ kind: 'text', text: `[${items.join(',')}]`, label: 'batch' })),
  },
  { weight: 2, arbitrary: jsonText.map((text): Frame => ({ kind: 'text', text, label: 'json value' })) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((text): Frame => ({ kind: 'text', text, label: 'unicode text' })) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes): Frame => ({ kind: 'binary', bytes: Buffer.from(bytes), label: 'random bytes' })) },
  { weight: 1, arbitrary: requestText.map((text): Frame => ({ kind: 'binary', bytes: Buffer.from(text), label: 'request as binary' })) },
);

/** Frames no generator reaches by chance: deep nesting near the frame limit, huge batches, odd ids. */
function edgeFrames(): Frame[] {
  const text = (label: string, body: string): Frame => ({ kind: 'text', text: body, label });
  const nested = (n: number, inner = '') => '['.repeat(n) + inner + ']'.repeat(n);
  const nestedObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  const request = (rest: string) => `{"jsonrpc":"2.0",${rest}}`;
  // The largest depth that still fits a frame: 2 bytes a level.
  const maxDepth = Math.floor((MAX_FRAME_BYTES - 200) / 2);
  const frames: Frame[] = [
    text('10k nested arrays', nested(10_000)),
    text('100k nested arrays', nested(100_000)),
    text(`${maxDepth} nested arrays (frame limit)`, nested(maxDepth)),
    text('10k nested objects', nestedObject(10_000)),
    text('100k nested objects', nestedObject(100_000)),
    text('nested arrays, unclosed', '['.repeat(50_000)),
    text('deep params', request(`"id":"deep-params","method":"system.event","params":{"text":"fz deep","x":${nested(100_000)}}`)),
    text('deep params of an unknown method', request(`"id":"deep-unknown","method":"nope","params":{"x":${nested(100_000)}}`)),
    text('deep id', request(`"id":${nested(100_000)},"method":"gateway.status"`)),
    text('deep method', request(`"id":"deep-method","method":${nested(100_000)}`)),
    text('deep after map', request(`"id":"deep-after","method":"session.subscribe","params":{"agentId":"fz","after":{"agent:fz:main":${nested(100_000)}}}`)),
    text('deep text', request(`"id":"deep-text","method":"system.event","params":{"text":${nested(100_000)}}`)),
    text('deep object params', request(`"id":"deep-obj","method":"system.event","params":${nestedObject(100_000)}`)),
    text('deep notification', request(`"method":"system.event","params":{"text":"fz deep note","x":${nested(100_000)}}`)),
    text('batch of 10k nested arrays', `[${nested(10_000)},${nested(10_000)}]`),
    text('batch of the limit', `[${Array.from({ length: MAX_BATCH_LENGTH }, (_, i) => request(`"id":"b${i}","method":"gateway.status"`)).join(',')}]`),
    text('batch one past the limit', `[${Array.from({ length: MAX_BATCH_LENGTH + 1 }, (_, i) => request(`"id":${i},"method":"gateway.status"`)).join(',')}]`),
    text('batch of notifications past the limit', `[${Array.from({ length: MAX_BATCH_LENGTH + 1 }, () => request('"method":"nope"')).join(',')}]`),
    text('batch of notifications', `[${request('"method":"nope"')},${request('"method":"gateway.status"')}]`),
    text('empty batch', '[]'),
    text('batch of empty batches', '[[],[]]'),
    text('top-level __proto__', request(`"id":"proto-top","method":"gateway.status","__proto__":{"polluted":"yes"}`)),
    text('top-level constructor.prototype', request(`"id":"ctor-top","method":"gateway.status","constructor":{"prototype":{"polluted":"yes"}}`)),
    text('__proto__ in params', request(`"id":"proto-params","method":"system.event","params":{"text":"fz proto","__proto__":{"polluted":"yes"}}`)),
    text('__proto__ as after key', request(`"id":"proto-after","method":"session.subscribe","params":{"agentId":"fz","after":{"__proto__":{"polluted":1}}}}`)),
    text('__proto__ as the params', request(`"id":"proto-as-params","method":"system.event","params":{"__proto__":{"text":"fz inherited"}}`)),
    text('method __proto__', request('"id":"m-proto","method":"__proto__"')),
    text('method constructor', request('"id":"m-ctor","method":"constructor","params":{}')),
    text('method hasOwnProperty', request('"id":"m-own","method":"hasOwnProperty","params":{}')),
    text('id 1e400', request('"id":1e400,"method":"gateway.status"')),
    text('id -0', request('"id":-0,"method":"gateway.status"')),
    text('id 2^53+1', request('"id":9007199254740993,"method":"gateway.status"')),
    text('id 1.5', request('"id":1.5,"method":"gateway.status"')),
    text('id object', request('"id":{"a":1},"method":"gateway.status"')),
    text('id array', request('"id":[1],"method":"gateway.status"')),
    text('id true', request('"id":true,"method":"gateway.status"')),
    text('id null', request('"id":null,"method":"gateway.status"')),
    text('duplicate ids in a batch', `[${request('"id":7,"method":"gateway.status"')},${request('"id":7,"method":"nope"')}]`),
    text('duplicate keys', request('"id":1,"id":"dup-last","method":"nope","method":"gateway.status"')),
    text('text is a number 1e400', request('"id":"num-text","method":"system.event","params":{"text":1e400}')),
    text('limit 1e400', request('"id":"lim","method":"session.peek","params":{"sessionKey":"main","limit":1e400}')),
    text('seq 1e400', request('"id":"seq","method":"session.ack","params":{"sessionKey":"main","seq":1e400}')),
    text('seq 2^53+1', request('"id":"seq2","method":"session.ack","params":{"sessionKey":"main","seq":9007199254740993}')),
    text('after -0', request('"id":"after0","method":"session.peek","params":{"sessionKey":"main","after":-0}')),
    text('text 64 KiB of escapes', request(`"id":"esc","method":"system.event","params":{"text":"${'\\u0001'.repeat(65_536 / 4)}"}`)),
    text('BOM before the frame', `\ufeff${request('"id":"bom","method":"gateway.status"')}`),
    text('NUL after the frame', `${request('"id":"nul","method":"gateway.status"')}\u0000`),
    text('whitespace only', ' \n\t '),
    text('empty frame', ''),
    text('JSON with comments', '{"jsonrpc":"2.0","id":1,/* c */"method":"gateway.status"}'),
    text('single quotes', "{'jsonrpc':'2.0','id':1,'method':'gateway.status'}"),
    text('NaN', '{"jsonrpc":"2.0","id":NaN,"method":"gateway.status"}'),
    { kind: 'binary', bytes: Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), label: 'invalid UTF-8 then {}' },
    { kind: 'binary', bytes: Buffer.from(`{"jsonrpc":"2.0","id":"bin-\u00ff","method":"gateway.status"}`, 'latin1'), label: 'latin1 bytes' },
    { kind: 'binary', bytes: Buffer.alloc(0), label: 'empty binary frame' },
  ];
  return frames;
}

// ---------------------------------------------------------------- a socket for one lane of frames

interface Received {
  text: string;
  value: unknown;
}

class Lane {
  readonly #ws: WebSocket;
  readonly #received: Received[] = [];
  #listener: (() => void) | undefined;
  #closed: { code: number; reason: string } | undefined;
  #probe = 0;
  readonly name: string;

  private constructor(ws: WebSocket, name: string) {
    this.#ws = ws;
    this.name = name;
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8');
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        value = Symbol.for('not JSON');
      }
      this.#received.push({ text, value });
      if (isBinary) this.#received.push({ text: '(binary frame from the gateway)', value: Symbol.for('binary') });
      this.#listener?.();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.#closed = { code, reason: reason.toString() };
      this.#listener?.();
    });
    ws.on('error', () => {});
  }

  static open(url: string, token: string, name: string): Promise<Lane> {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Lane(ws, name)));
      ws.once('error', reject);
    });
  }

  close(): void {
    this.#ws.close(1000);
  }

  /**
   * Sends `frame`, then a probe (gateway.status with a unique id). Resolves once the probe is
   * answered and, if the frame must be answered, its answer has arrived too: with every frame
   * that came in the meantime, notifications aside.
   */
  async exchange(frame: Frame, expectation: Expectation): Promise<{ probe: JsonRpcResponse; others: Received[] }> {
    const start = this.#received.length;
    const probeId = `probe-${this.name}-${this.#probe++}`;
    if (frame.kind === 'text') this.#ws.send(frame.text);
    else this.#ws.send(frame.bytes, { binary: true });
    this.#ws.send(JSON.stringify({ jsonrpc: '2.0', id: probeId, method: 'gateway.status' }));
    const want = expectation.kind === 'none' ? 0 : 1;
    const split = () => {
      const frames = this.#received.slice(start).filter((r) => !isPushed(r.value));
      const probe = frames.find((r) => isObject(r.value) && r.value['id'] === probeId);
      return { probe, others: frames.filter((r) => r !== probe) };
    };
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listener = undefined;
        const { probe, others } = split();
        reject(new Error(`no ${probe ? 'answer to the frame' : 'answer to the probe'} within ${ANSWER_TIMEOUT_MS} ms (got ${others.length} other frames)`));
      }, ANSWER_TIMEOUT_MS);
      this.#listener = () => {
        if (this.#closed) {
          clearTimeout(timer);
          this.#listener = undefined;
          reject(new Error(`the gateway closed the connection (${this.#closed.code} ${this.#closed.reason})`));
          return;
        }
        const { probe, others } = split();
        if (probe && others.length >= want) {
          clearTimeout(timer);
          this.#listener = undefined;
          resolve();
        }
      };
      this.#listener();
    });
    const { probe, others } = split();
    return { probe: probe!.value as JsonRpcResponse, others };
  }

  /** Sends a frame and waits for nothing. */
  send(frame: Frame): void {
    if (frame.kind === 'text') this.#ws.send(frame.text);
    else this.#ws.send(frame.bytes, { binary: true });
  }

  /**
   * Resolves with the answers (notifications aside) after index `from` once there are `count`,
   * and the index to look for stray answers from.
   */
  async waitForAnswers(from: number, count: number, timeoutMs: number): Promise<{ answers: Received[]; mark: number }> {
    const answers = () => this.#received.slice(from).filter((r) => !isPushed(r.value));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listener = undefined;
        reject(new Error(`${answers().length} of ${count} answers within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#listener = () => {
        if (this.#closed || answers().length >= count) {
          clearTimeout(timer);
          this.#listener = undefined;
          if (this.#closed) reject(new Error(`the gateway closed the connection (${this.#closed.code} ${this.#closed.reason})`));
          else resolve();
        }
      };
      this.#listener();
    });
    return { answers: answers(), mark: this.#received.length };
  }

  /** Frames (notifications aside) that arrived after index `from`: none may, once a lane is done. */
  stray(from: number): Received[] {
    return this.#received.slice(from).filter((r) => !isPushed(r.value));
  }

  get count(): number {
    return this.#received.length;
  }
}

/** session.event / agent.wake pushed by a subscription a fuzzed frame made: not an answer. */
function isPushed(value: unknown): boolean {
  return isObject(value) && typeof value['method'] === 'string' && !('id' in value);
}

// ---------------------------------------------------------------- bookkeeping of stored events

interface Ledger {
  /** eventIds of every system.event answered with a result. */
  answered: Set<string>;
  /** Trimmed texts of system.event notifications that may have been stored without an answer. */
  notified: Set<string>;
}

function record(ledger: Ledger, sentText: string, answer: unknown): void {
  const responses = Array.isArray(answer) ? answer : [answer];
  for (const response of responses) {
    if (!isObject(response) || !isObject(response['result'])) continue;
    const result = response['result'];
    if (typeof result['eventId'] === 'string' && isObject(result['queue'])) ledger.answered.add(result['eventId']);
  }
  let message: unknown;
  try {
    message = JSON.parse(sentText);
  } catch {
    return;
  }
  for (const item of Array.isArray(message) ? message : [message]) {
    if (!isObject(item) || Object.prototype.hasOwnProperty.call(item, 'id') || item['method'] !== 'system.event') continue;
    const params = item['params'];
    if (isObject(params) && typeof params['text'] === 'string') ledger.notified.add(params['text'].trim());
  }
}

/** What a frame must be answered with: a binary frame that is not UTF-8 is a parse error, never decoded with U+FFFD. */
function expectFrameOf(frame: Frame): Expectation {
  if (frame.kind === 'binary' && !isUtf8(frame.bytes)) return { kind: 'single', answer: { id: null, code: ErrorCode.PARSE_ERROR } };
  return expectFrame(decoded(frame));
}

function decoded(frame: Frame): string {
  // What the gateway reads: the bytes on the wire as UTF-8 (a text frame's lone surrogates were
  // already replaced by the client's encoder).
  return (frame.kind === 'text' ? Buffer.from(frame.text, 'utf8') : frame.bytes).toString('utf8');
}

// ---------------------------------------------------------------- the suite

interface Context {
  gw: InProcessGateway;
  /** What every test on this gateway was answered (and sent as notifications), for the final check. */
  ledger: Ledger;
  prototypes: string;
}

const test = suite<Context>('fuzz: frames against a live gateway', {} as Context);

test.before(async (context) => {
  context.gw = await startInProcessGateway();
  context.ledger = { answered: new Set(), notified: new Set() };
  context.prototypes = prototypeSnapshot();
});

test.after(async () => {
  await cleanup();
});

function prototypeSnapshot(): string {
  return JSON.stringify([Object.getOwnPropertyNames(Object.prototype).sort(), Object.getOwnPropertyNames(Array.prototype).sort()]);
}
/** What the frames exercised, printed with SB_FUZZ_VERBOSE=1 to see that the generators reach deep. */
const tally = new Map<string, number>();
function count(what: string): void {
  tally.set(what, (tally.get(what) ?? 0) + 1);
}

function tallyAnswer(answer: unknown): void {
  for (const response of Array.isArray(answer) ? answer : [answer]) {
    if (!isObject(response)) continue;
    const code = codeOf(response);
    count(code === undefined ? 'result' : `error ${code}`);
  }
}

async function runLane(lane: Lane, frames: readonly Frame[], ledger: Ledger, failures: string[]): Promise<void> {
  let previous: Frame | undefined;
  for (const [n, frame] of frames.entries()) {
    const text = decoded(frame);
    const expectation = expectFrameOf(frame);
    const where = () =>
      `lane ${lane.name} frame ${n} (${frame.label}, seed ${SEED}): ${show(frame.kind === 'text' ? frame.text : frame.bytes.toString('hex'), 300)}` +
      (previous ? `\n  previous frame: ${show(previous.kind === 'text' ? previous.text : previous.bytes.toString('hex'), 200)}` : '');
    let exchanged;
    try {
      exchanged = await lane.exchange(frame, expectation);
    } catch (error) {
      failures.push(`${where()}\n  ${(error as Error).message}`);
      return;
    }
    const { probe, others } = exchanged;
    count(`${frame.label}: ${expectation.kind}`);
    for (const other of others) tallyAnswer(other.value);
    const probeProblem = responseProblem(probe) ?? (probe.error ? `probe refused: ${show(probe)}` : undefined);
    if (probeProblem) failures.push(`${where()}\n  the good call after it failed: ${probeProblem}`);
    if (expectation.kind === 'none' && others.length > 0) {
      failures.push(`${where()}\n  expected no answer, got ${others.map((r) => show(r.value)).join(' and ')}`);
    }
    if (expectation.kind !== 'none') {
      if (others.length !== 1) failures.push(`${where()}\n  expected one answer, got ${others.length}: ${others.map((r) => r.text.slice(0, 200)).join(' | ')}`);
      const answer = others[0]!.value;
      const problem = answerProblem(answer, expectation);
      if (problem) failures.push(`${where()}\n  ${problem}`);
      record(ledger, text, answer);
    } else {
      record(ledger, text, undefined);
    }
    if (failures.length >= 10) return;
    previous = frame;
  }
}

/** After a lane is done, anything still arriving answers nothing that was asked: one more probe bounds the wait. */
async function strayAnswers(lane: Lane, from: number): Promise<string | undefined> {
  const { probe } = await lane.exchange({ kind: 'text', text: '{"jsonrpc":"2.0","method":"nope"}', label: 'final' }, { kind: 'none' });
  resultOf(probe);
  const stray = lane.stray(from).filter((r) => !(isObject(r.value) && String(r.value['id']).startsWith('probe-')));
  return stray.length === 0 ? undefined : `lane ${lane.name}: answers nobody asked for: ${stray.map((r) => r.text.slice(0, 200)).join(' | ')}`;
}

test('random frames: every answer conforms to JSON-RPC 2.0, notifications get none, the connection stays usable', async ({ gw, ledger }) => {
  const frames = fc.sample(frame, { numRuns: LANES * FRAMES_PER_LANE, seed: SEED });
  const lanes = await Promise.all(Array.from({ length: LANES }, (_, i) => Lane.open(gw.url, gw.token, String(i))));
  const failures: string[] = [];
  const started = Date.now();
  // Edge frames go down lane 0 first, then the random ones are spread across all lanes.
  await Promise.all(
    lanes.map((lane, i) => {
      const mine = frames.filter((_, n) => n % LANES === i);
      return runLane(lane, i === 0 ? [...edgeFrames(), ...mine] : mine, ledger, failures);
    }),
  );
  const marks = lanes.map((lane) => lane.count);
  for (const [i, lane] of lanes.entries()) {
    const stray = await strayAnswers(lane, marks[i]!);
    if (stray) failures.push(stray);
  }
  const elapsed = Date.now() - started;
  if (process.env['SB_FUZZ_VERBOSE']) {
    console.log(`seed ${SEED}, ${elapsed} ms, ${ledger.answered.size} events answered`);
    console.log([...tally].sort(([a], [b]) => a.localeCompare(b)).map(([what, n]) => `  ${what}: ${n}`).join('\n'));
  }
  for (const lane of lanes) lane.close();
  assert.is(failures.length, 0, `${failures.length} problems (seed ${SEED}):\n${failures.join('\n')}`);
  assert.ok(ledger.answered.size > 0, 'some system.event calls got through to the store (the fuzzer reaches the handlers)');
});

/** Junk whose answer is one error with id null and a known code: interchangeable with each other. */
const burstJunk = fc
  .oneof(
    fc.uint8Array({ maxLength: 100 }).map((bytes): Frame => ({ kind: 'binary', bytes: Buffer.from(bytes), label: 'random bytes' })),
    fc.string({ unit: 'binary', maxLength: 30 }).map((text): Frame => ({ kind: 'text', text, label: 'unicode text' })),
  )
  .filter((f) => {
    const expectation = expectFrameOf(f);
    return expectation.kind === 'single' && expectation.answer.id === null && expectation.answer.code !== undefined;
  });

test('pipelined bursts: hundreds of frames at once on each socket, answered concurrently, matched by id', async ({ gw, ledger }) => {
  const SOCKETS = 3;
  const PER_SOCKET = 300;
  const parts = fc.sample(fc.tuple(goodRequestWithId, fc.nat(9), burstJunk), { numRuns: SOCKETS * PER_SOCKET, seed: SEED + 1 });
  const lanes = await Promise.all(Array.from({ length: SOCKETS }, (_, i) => Lane.open(gw.url, gw.token, `burst${i}`)));
  const failures: string[] = [];
  await Promise.all(
    lanes.map(async (lane, l) => {
      // Frame i carries id "burst-<l>-<i>", or is a notification (1 in 10), or is junk (1 in 10).
      const frames = parts.slice(l * PER_SOCKET, (l + 1) * PER_SOCKET).map(([withId, roll, junk], i): Frame => {
        if (roll === 0) return junk;
        return { kind: 'text', text: withId(roll === 1 ? null : JSON.stringify(`burst-${l}-${i}`)), label: 'burst request' };
      });
      const expectations = frames.map(expectFrameOf);
      const byId = new Map<string, number>();
      const nullCodes: number[] = [];
      expectations.forEach((e, i) => {
        if (e.kind !== 'single') return;
        if (e.answer.id === null) nullCodes.push(e.answer.code!);
        else byId.set(e.answer.id as string, i);
      });
      const from = lane.count;
      for (const f of frames) lane.send(f);
      let answers: Received[];
      let mark: number;
      try {
        ({ answers, mark } = await lane.waitForAnswers(from, byId.size + nullCodes.length, 10_000));
      } catch (error) {
        failures.push(`lane ${lane.name}: ${(error as Error).message}`);
        return;
      }
      const seen = new Set<string>();
      const gotNullCodes: number[] = [];
      for (const { value, text } of answers) {
        const problem = responseProblem(value);
        if (problem) {
          failures.push(`lane ${lane.name}: ${problem}: ${text.slice(0, 300)}`);
          continue;
        }
        const response = value as Record<string, unknown>;
        if (response['id'] === null) {
          gotNullCodes.push(codeOf(response)!);
          continue;
        }
        const id = String(response['id']);
        const i = byId.get(id);
        if (i === undefined || seen.has(id)) {
          failures.push(`lane ${lane.name}: an answer for no request, or a second one: ${text.slice(0, 300)}`);
          continue;
        }
        seen.add(id);
        const problem2 = answerProblem(value, expectations[i]!);
        if (problem2) failures.push(`lane ${lane.name} frame ${i} (seed ${SEED}): ${show((frames[i] as { text: string }).text)}\n  ${problem2}`);
        record(ledger, decoded(frames[i]!), value);
      }
      expectations.forEach((e, i) => {
        if (e.kind === 'none') record(ledger, decoded(frames[i]!), undefined);
      });
      const sort = (codes: number[]) => [...codes].sort((a, b) => a - b).join(',');
      if (sort(gotNullCodes) !== sort(nullCodes)) {
        failures.push(`lane ${lane.name}: answers with id null had codes [${sort(gotNullCodes)}], expected [${sort(nullCodes)}]`);
      }
      const stray = await strayAnswers(lane, mark);
      if (stray) failures.push(stray);
    }),
  );
  for (const lane of lanes) lane.close();
  assert.is(failures.length, 0, `${failures.length} problems (seed ${SEED}):\n${failures.slice(0, 20).join('\n')}`);
});

test('afterwards: no prototype polluted, no internal error, and every stored event was answered (or sent as a notification)', async ({
  gw,
  ledger,
  prototypes,
}) => {
  assert.is(prototypeSnapshot(), prototypes, 'Object.prototype and Array.prototype gained no properties');
  assert.is(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype is not polluted');
  assert.is(([] as unknown as Record<string, unknown>)['polluted'], undefined, 'Array.prototype is not polluted');
  const internal = gw.log.filter((line) => /internal error/i.test(line));
  assert.is(internal.length, 0, `the gateway logged internal errors:\n${internal.join('\n').slice(0, 4000)}`);

  const checker = await Lane.open(gw.url, gw.token, 'check');
  const call = async (method: string, params: unknown) => {
    const { probe, others } = await checker.exchange(
      { kind: 'text', text: JSON.stringify({ jsonrpc: '2.0', id: `check-${method}`, method, params }), label: method },
      { kind: 'single', answer: { id: `check-${method}` } },
    );
    resultOf(probe);
    return resultOf<never>(others[0]!.value as JsonRpcResponse);
  };
  const list: { sessions: { sessionKey: string; pending: number }[]; more: boolean } = await call('session.list', { limit: 1000 });
  assert.not.ok(list.more, 'all sessions listed');
  let stored = 0;
  const strays: string[] = [];
  for (const session of list.sessions) {
    let after = 0;
    for (;;) {
      const page: { events: { eventId: string; seq: number; text: string }[]; more: boolean } = await call('session.peek', {
        sessionKey: session.sessionKey,
        after,
        limit: 1000,
      });
      for (const event of page.events) {
        stored++;
        if (!ledger.answered.has(event.eventId) && !ledger.notified.has(event.text)) {
          strays.push(`${session.sessionKey} seq ${event.seq} ${event.eventId}: ${show(event.text, 80)}`);
        }
      }
      if (!page.more) break;
      after = page.events.at(-1)!.seq;
    }
  }
  const status: { pending: number } = await call('gateway.status', {});
  checker.close();
  assert.is(strays.length, 0, `stored events that no call was answered for (seed ${SEED}):\n${strays.join('\n')}`);
  assert.is(status.pending, stored, 'gateway.status pending counts exactly the stored events');
  // Not `stored > 0`: the frames' own drains and acks may consume every event they stored (1 seed in ~60).
  assert.ok(ledger.answered.size > 0, 'the frames stored events, so the checks above had something to check');
});

test('edge frames and random ones against the gateway process: it never crashes, and still answers afterwards', async () => {
  const gw = await startGatewayProcess();
  const lane = await Lane.open(gw.url, gw.token, 'process');
  const failures: string[] = [];
  const frames = [...edgeFrames(), ...fc.sample(frame, { numRuns: 300, seed: SEED + 2 })];
  await runLane(lane, frames, { answered: new Set(), notified: new Set() }, failures);
  lane.close();
  assert.is(failures.length, 0, failures.join('\n'));
  assert.is(gw.process.exitCode, null, `the gateway exited\nstderr: ${gw.stderr()}`);
  assert.is(gw.process.signalCode, null);
  assert.not.match(gw.stderr(), /internal error|RangeError|Maximum call stack/i, 'nothing alarming on stderr');
  assert.is(await gw.stop('SIGTERM'), 0, `clean exit\nstderr: ${gw.stderr()}`);
});

test.run();
