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

test.run();
