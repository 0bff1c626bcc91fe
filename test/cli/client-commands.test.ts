/** How a failed call becomes the CLI's error: message, exit code, and what --json prints. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConnectionError, RpcCallError, type ConnectionFailure } from '../../src/client/errors.js';
import { explain } from '../../src/cli/client-commands.js';
import { CliError, CliErrorCode, ExitCode } from '../../src/cli/exit-codes.js';
import type { ErrorName } from '../../src/protocol/errors.js';

const test = suite('cli/client-commands');
const URL = 'ws://127.0.0.1:18790';
const SETTINGS = { url: URL, token: 'sba_admin' };

test('explain: a gateway error is exit 1, and --json gets the JSON-RPC error as it came', () => {
  const data = { name: 'INVALID_PARAMS', errors: [{ path: '/sessionKey', message: 'bad' }] };
  const error = explain(new RpcCallError(-32602, 'Invalid params: /sessionKey: bad', data), SETTINGS) as CliError;
  assert.instance(error, CliError);
  assert.is(error.exitCode, ExitCode.GATEWAY_ERROR);
  assert.is(error.message, 'the gateway refused: Invalid params: /sessionKey: bad (code -32602)');
  assert.equal(error.json, { code: -32602, message: 'Invalid params: /sessionKey: bad', data });
  assert.equal((explain(new RpcCallError(1007, 'no such event', undefined), SETTINGS) as CliError).json, { code: 1007, message: 'no such event' });
});

test('explain: SHUTTING_DOWN as a JSON-RPC error (a backup stopped by a shutdown) is exit 3, as its HTTP refusal is: nothing was done, retry later (operator QA)', () => {
  const data = { name: 'SHUTTING_DOWN' };
  const error = explain(new RpcCallError(1003, 'the event store is closed and takes no more work: retry once the gateway has restarted', data), SETTINGS) as CliError;
  assert.is(error.exitCode, ExitCode.UNREACHABLE);
  assert.is(error.message, 'the gateway refused: the event store is closed and takes no more work: retry once the gateway has restarted (code 1003)');
  assert.equal(error.json, { code: 1003, message: 'the event store is closed and takes no more work: retry once the gateway has restarted', data });
  // Others that pass are the gateway's answer all the same: exit 1, as README's table says.
  assert.is((explain(new RpcCallError(1013, 'read the answers first', { name: 'RATE_LIMITED' }), SETTINGS) as CliError).exitCode, ExitCode.GATEWAY_ERROR);
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
    const error = explain(new ConnectionError(failure, URL, `${failure} happened`), SETTINGS) as CliError;
    assert.is(error.exitCode, ExitCode.UNREACHABLE, failure);
    assert.equal(error.json, { code: CliErrorCode[name], message: error.message, data: { name } }, failure);
  }
});

test("explain: a data dir's socket not reached for a reason without its own hint says what to check, in a sentence (QA: it began with 'or')", () => {
  const socketUrl = 'unix:/home/me/.local/share/switchboard/gateway.sock';
  const cause = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  const lost = new ConnectionError('unreachable', socketUrl, `gateway not reachable at ${socketUrl} (ECONNRESET)`, { cause });
  const error = explain(lost, { url: socketUrl, token: 'sba_admin', localDataDir: '/home/me/.local/share/switchboard' }) as CliError;
  assert.is(
    error.message,
    `gateway not reachable at ${socketUrl} (ECONNRESET): check the gateway of the data dir /home/me/.local/share/switchboard, or for another one give its URL (--url / SWITCHBOARD_URL) and its token (SWITCHBOARD_TOKEN)`,
  );
  const busy = new ConnectionError('unreachable', socketUrl, `gateway not reachable at ${socketUrl} (EAGAIN)`, { cause: Object.assign(new Error('connect EAGAIN'), { code: 'EAGAIN' }) });
  assert.is(
    (explain(busy, { url: socketUrl, token: 'sba_admin', localDataDir: '/d' }) as CliError).message,
    `gateway not reachable at ${socketUrl} (EAGAIN): the gateway of the data dir /d took no connection within the timeout (its socket's backlog stayed full: overloaded, or stopped): raise --timeout, or check it`,
  );
  // Given --data-dir, SWITCHBOARD_URL yields to it, and --url beside it and a token is a usage error (review).
  const given = explain(lost, { url: socketUrl, token: 'sba_admin', localDataDir: '/d', dataDirNamesGateway: true }) as CliError;
  assert.match(given.message, /, or for another one drop --data-dir and give its URL \(--url \/ SWITCHBOARD_URL\) and its token \(SWITCHBOARD_TOKEN\)$/);
});

test("explain: a gateway that refuses over HTTP before running the call, shutting down (503) or at an address's limits (429), is exit 3 in its own words: --json has its code, name and Retry-After (QA: both were GATEWAY_REJECTED, as a wrong host is)", () => {
  const refused = (status: number, code: number, errorName: ErrorName, retryAfterSeconds?: number) =>
    explain(new ConnectionError('rejected', URL, `the gateway at ${URL} refused the call (HTTP ${status}: ...)`, { refusal: { status, code, errorName, retryAfterSeconds } }), SETTINGS) as CliError;
  const shuttingDown = refused(503, 1003, 'SHUTTING_DOWN');
  assert.is(shuttingDown.exitCode, ExitCode.UNREACHABLE);
  assert.equal(shuttingDown.json, { code: 1003, message: shuttingDown.message, data: { name: 'SHUTTING_DOWN' } });
  const limited = refused(429, 1013, 'RATE_LIMITED', 30);
  assert.is(limited.exitCode, ExitCode.UNREACHABLE);
  assert.equal(limited.json, { code: 1013, message: limited.message, data: { name: 'RATE_LIMITED', retryAfterSeconds: 30 } });
  // Refusals that retrying does not cure stay the CLI's own.
  assert.equal(refused(404, 1020, 'PATH_NOT_FOUND').json?.data, { name: 'GATEWAY_REJECTED' });
});

test('explain: anything else is left as it is', () => {
  const bug = new TypeError('a bug');
  assert.is(explain(bug, SETTINGS), bug);
});

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
