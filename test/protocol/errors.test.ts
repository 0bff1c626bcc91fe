import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ERROR_DESCRIPTIONS, ErrorCode, RpcError, errorNameOf, type ErrorName } from '../../src/protocol/errors.js';

const test = suite('protocol/errors');

const NAMES = Object.keys(ErrorCode) as ErrorName[];

/** The codes JSON-RPC 2.0 §5.1 defines, with their exact numbers. */
const SPEC_CODES: Partial<Record<ErrorName, number>> = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
};

test('every error code has a one-line description, and no description names an unknown code', () => {
  assert.equal(Object.keys(ERROR_DESCRIPTIONS).sort(), [...NAMES].sort());
  for (const name of NAMES) {
    const description = ERROR_DESCRIPTIONS[name];
    assert.type(description, 'string', name);
    assert.ok(description.trim().length > 0, `${name} has an empty description`);
    assert.not.match(description, /\n/, `${name}: description spans lines`);
  }
});

test('codes are unique integers', () => {
  const codes = NAMES.map((name) => ErrorCode[name]);
  assert.is(new Set(codes).size, codes.length, `duplicate codes: ${codes.join(', ')}`);
  for (const name of NAMES) assert.ok(Number.isInteger(ErrorCode[name]), `${name} is not an integer`);
});

test('the JSON-RPC codes carry the numbers the spec gives them', () => {
  for (const [name, code] of Object.entries(SPEC_CODES)) assert.is(ErrorCode[name as ErrorName], code, name);
});

test('application codes lie outside the reserved -32768..-32000, in 1000..1999', () => {
  const applicationNames = NAMES.filter((name) => !(name in SPEC_CODES));
  assert.ok(applicationNames.length > 0);
  for (const name of applicationNames) {
    const code = ErrorCode[name];
    assert.ok(code < -32768 || code > -32000, `${name} (${code}) is in the range JSON-RPC reserves`);
    assert.ok(code >= 1000 && code <= 1999, `${name} (${code}) is outside 1000..1999`);
  }
});

test('errorNameOf maps each code back to its name, and unknown codes to undefined', () => {
  for (const name of NAMES) assert.is(errorNameOf(ErrorCode[name]), name);
  assert.is(errorNameOf(-32000), undefined);
  assert.is(errorNameOf(0), undefined);
});

test('RpcError carries code, message and data.name', () => {
  const error = new RpcError('SHUTTING_DOWN', 'going away', { retryAfterMs: 5 });
  assert.instance(error, Error);
  assert.is(error.name, 'RpcError');
  assert.is(error.code, 1003);
  assert.is(error.message, 'going away');
  assert.equal(error.data, { name: 'SHUTTING_DOWN', retryAfterMs: 5 });
});

test('RpcError.invalidParams lists every problem in the message and in data.errors', () => {
  const problems = [
    { path: '/text', message: 'is required' },
    { path: '', message: 'must be an object' },
  ];
  const error = RpcError.invalidParams(problems);
  assert.is(error.code, -32602);
  assert.is(error.message, 'Invalid params: /text: is required; (params): must be an object');
  assert.equal(error.data, { name: 'INVALID_PARAMS', errors: problems });
});

test.run();
