/**
 * The one check of a Unix socket path, for the gateway's socket and for `unix:` URLs: its byte
 * limit at the edge, counted in bytes, not characters.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_SOCKET_PATH_BYTES, socketPathProblem } from '../../src/protocol/socket-path.js';

const test = suite('protocol/socket-path');

const TOO_LONG = `a Unix socket path has at most ${MAX_SOCKET_PATH_BYTES} bytes`;

test(`a path of exactly ${MAX_SOCKET_PATH_BYTES} bytes is taken; one byte more is refused`, () => {
  const atLimit = `/${'s'.repeat(MAX_SOCKET_PATH_BYTES - 1)}`;
  assert.is(Buffer.byteLength(atLimit), MAX_SOCKET_PATH_BYTES);
  assert.is(socketPathProblem(atLimit), undefined);
  assert.is(socketPathProblem(`${atLimit}s`), TOO_LONG);
});

test('the limit counts bytes: a path of few characters but many UTF-8 bytes is refused', () => {
  // 'é' is two bytes: about half as many characters as the limit, a few bytes over it.
  const path = `/${'é'.repeat(Math.ceil(MAX_SOCKET_PATH_BYTES / 2))}`;
  assert.ok(Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES);
  assert.ok(path.length < MAX_SOCKET_PATH_BYTES);
  assert.is(socketPathProblem(path), TOO_LONG);
});

test('a relative path, and one holding NUL, are refused', () => {
  assert.is(socketPathProblem('gateway.sock'), 'a Unix socket path is absolute');
  assert.is(socketPathProblem('/tmp/a\0b.sock'), 'a Unix socket path holds no NUL character');
});

test.run();
