/** How a failed call becomes the CLI's error: message, exit code, and what --json prints. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConnectionError, RpcCallError, type ConnectionFailure } from '../../src/client/errors.js';
import { explain } from '../../src/cli/client-commands.js';
import { CliError, CliErrorCode, ExitCode } from '../../src/cli/exit-codes.js';

const test = suite('cli/client-commands');
const URL = 'ws://127.0.0.1:1';

test('explain: a gateway error is exit 1, and --json gets the JSON-RPC error as it came', () => {
  const data = { name: 'INVALID_PARAMS', errors: [{ path: '/sessionKey', message: 'bad' }] };
  const error = explain(new RpcCallError(-32602, 'Invalid params: /sessionKey: bad', data), URL) as CliError;
  assert.instance(error, CliError);
  assert.is(error.exitCode, ExitCode.GATEWAY_ERROR);
  assert.is(error.message, 'the gateway refused: Invalid params: /sessionKey: bad (code -32602)');
  assert.equal(error.json, { code: -32602, message: 'Invalid params: /sessionKey: bad', data });
  assert.equal((explain(new RpcCallError(1007, 'no such event', undefined), URL) as CliError).json, { code: 1007, message: 'no such event' });
});

test('explain: every connection failure is exit 3 with its own CLI code; --json repeats the message', () => {
  const expected: Record<ConnectionFailure, keyof typeof CliErrorCode> = {
    unreachable: 'GATEWAY_UNREACHABLE',
    unauthorized: 'TOKEN_REFUSED',
    rejected: 'GATEWAY_REJECTED',
    closed: 'CONNECTION_CLOSED',
    timeout: 'TIMEOUT',
    aborted: 'ABORTED',
  };
  for (const [failure, name] of Object.entries(expected) as [ConnectionFailure, keyof typeof CliErrorCode][]) {
    const error = explain(new ConnectionError(failure, URL, `${failure} happened`), URL) as CliError;
    assert.is(error.exitCode, ExitCode.UNREACHABLE, failure);
    assert.equal(error.json, { code: CliErrorCode[name], message: error.message, data: { name } }, failure);
  }
});

test('explain: anything else is left as it is', () => {
  const bug = new TypeError('a bug');
  assert.is(explain(bug, URL), bug);
});

test.run();
