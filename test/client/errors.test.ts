/**
 * The client's errors are told apart with `instanceof` across copies of their module (the CLI's
 * bundles each hold one; a program may load the library twice), but not by name alone.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConnectionError, RpcCallError } from '../../src/client/errors.js';

const test = suite('client/errors');

test('an error of another copy of the module is an instance of this copy\'s class, and the other way round', async () => {
  const copy = (await import(`../../src/client/errors.js?copy=${Date.now()}`)) as typeof import('../../src/client/errors.js');
  assert.is.not(copy.ConnectionError, ConnectionError, 'a second copy of the module');
  assert.ok(new copy.ConnectionError('closed', 'ws://x', 'lost') instanceof ConnectionError);
  assert.ok(new ConnectionError('closed', 'ws://x', 'lost') instanceof copy.ConnectionError);
  assert.ok(new copy.RpcCallError(1004, 'no', undefined) instanceof RpcCallError);
  assert.not.ok(new copy.RpcCallError(1004, 'no', undefined) instanceof ConnectionError);
});

test("another library's error of the same name is not one, nor one renamed", () => {
  class OtherConnectionError extends Error {
    override name = 'ConnectionError';
  }
  const renamed = new Error('job failed');
  renamed.name = 'RpcCallError';
  assert.not.ok(new OtherConnectionError('db down') instanceof ConnectionError);
  assert.not.ok(renamed instanceof RpcCallError);
  assert.not.ok({ name: 'ConnectionError', failure: 'closed' } instanceof ConnectionError);
});

test("a caller's subclass goes by identity: its instances are the base class's, the base class's are not its", () => {
  class Retryable extends ConnectionError {}
  const retryable = new Retryable('timeout', 'ws://x', 'slow');
  assert.ok(retryable instanceof Retryable);
  assert.ok(retryable instanceof ConnectionError);
  assert.not.ok(new ConnectionError('closed', 'ws://x', 'lost') instanceof Retryable);
});

test.run();
