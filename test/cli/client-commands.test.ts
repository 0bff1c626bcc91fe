/** What the CLI says when a call fails: the message names the fix, the exit code the kind of failure. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { explain } from '../../src/cli/client-commands.js';
import { CliError, ExitCode } from '../../src/cli/exit-codes.js';
import { ConnectionError } from '../../src/client/errors.js';

const test = suite('cli/client-commands');

const URL = 'ws://127.0.0.1:18790';

function explained(error: unknown, token = 'sba_admin'): CliError {
  const result = explain(error, { url: URL, token });
  assert.instance(result, CliError);
  return result as CliError;
}

test('a refused scoped token (sbt_) was revoked or never existed: ask for a new one; exit 3', () => {
  const refused = new ConnectionError('unauthorized', URL, `the gateway at ${URL} refused the token (HTTP 401)`);
  const scoped = explained(refused, 'sbt_revoked');
  assert.is(scoped.exitCode, ExitCode.UNREACHABLE);
  assert.is(
    scoped.message,
    `the gateway at ${URL} refused the token: this scoped token was revoked or never existed: ask for a new one (\`switchboard token create --agent <agentId>\`, run with the admin token)`,
  );
  for (const token of ['sba_wrong', 'from-an-old-data-dir']) {
    assert.is(
      explained(refused, token).message,
      `the gateway at ${URL} refused the token: pass the token from the gateway's data dir (--token, SWITCHBOARD_TOKEN, or --data-dir)`,
      token,
    );
  }
});

test('no answer to system.event: the event may still have been stored; with a key a retry is safe, without one check first', () => {
  const timeout = new ConnectionError('timeout', URL, `no answer to system.event from ${URL} within 200 ms`);
  const lost = new ConnectionError('closed', URL, `the connection to ${URL} broke before the answer was complete`);
  const withoutKey =
    'the event may still have been stored: check with `switchboard session peek` before sending it again, and give --idempotency-key to make a retry safe';
  const withKey = 'the event may still have been stored: retrying with the same --idempotency-key is safe (it is stored once)';
  assert.is(
    (explain(timeout, { url: URL, token: 't' }, withoutKey) as CliError).message,
    `no answer to system.event from ${URL} within 200 ms; ${withoutKey}; raise --timeout, or check the gateway`,
  );
  assert.is((explain(lost, { url: URL, token: 't' }, withKey) as CliError).message, `the connection to ${URL} broke before the answer was complete; ${withKey}`);
});

test('no answer to a call that changes nothing: no warning, only what to do', () => {
  const timeout = new ConnectionError('timeout', URL, `no answer to gateway.status from ${URL} within 200 ms`);
  const lost = new ConnectionError('closed', URL, `the connection to ${URL} broke before the answer was complete`);
  assert.is(explained(timeout).message, `no answer to gateway.status from ${URL} within 200 ms; raise --timeout, or check the gateway`);
  assert.is(explained(lost).message, `the connection to ${URL} broke before the answer was complete; retry, or check the gateway`);
  for (const error of [timeout, lost]) assert.is(explained(error).exitCode, ExitCode.UNREACHABLE);
});

test.run();
