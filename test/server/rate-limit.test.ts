/**
 * AuthFailureLimiter with an injected clock: the limit, the Retry-After it computes, the window
 * that resets it, and the bound on how many addresses it remembers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AUTH_FAILURE_WINDOW_MS, MAX_AUTH_FAILURES_PER_WINDOW } from '../../src/protocol/constants.js';
import { AuthFailureLimiter } from '../../src/server/rate-limit.js';

const test = suite('server: AuthFailureLimiter');

const T0 = 1_700_000_000_000;
const WINDOW_S = AUTH_FAILURE_WINDOW_MS / 1000;

function fail(limiter: AuthFailureLimiter, address: string, times: number, now = T0): void {
  for (let i = 0; i < times; i++) limiter.recordFailure(address, now);
}

test('an unknown address, and one under the limit, may try now (0)', () => {
  const limiter = new AuthFailureLimiter();
  assert.is(limiter.retryAfterSeconds('10.0.0.1', T0), 0);
  fail(limiter, '10.0.0.1', MAX_AUTH_FAILURES_PER_WINDOW - 1);
  assert.is(limiter.retryAfterSeconds('10.0.0.1', T0), 0, `${MAX_AUTH_FAILURES_PER_WINDOW - 1} failures: not yet`);
  assert.is(limiter.retryAfterSeconds('10.0.0.1', T0 + AUTH_FAILURE_WINDOW_MS - 1), 0);
});

test(`at the limit (${MAX_AUTH_FAILURES_PER_WINDOW}) the address waits until its window ends, in whole seconds, at least 1`, () => {
  const limiter = new AuthFailureLimiter();
  fail(limiter, '10.0.0.2', MAX_AUTH_FAILURES_PER_WINDOW);
  assert.is(limiter.retryAfterSeconds('10.0.0.2', T0), WINDOW_S);
  // Rounded up: 59.5 s left is 60, never 59 (a client that waits 59 s would be refused again).
  assert.is(limiter.retryAfterSeconds('10.0.0.2', T0 + 500), WINDOW_S);
  assert.is(limiter.retryAfterSeconds('10.0.0.2', T0 + 1_000), WINDOW_S - 1);
  assert.is(limiter.retryAfterSeconds('10.0.0.2', T0 + 30_000), 30);
  assert.is(limiter.retryAfterSeconds('10.0.0.2', T0 + AUTH_FAILURE_WINDOW_MS - 1_000), 1);
  assert.is(limiter.retryAfterSeconds('10.0.0.2', T0 + AUTH_FAILURE_WINDOW_MS - 1), 1, 'never 0 while locked');
});

test('recordFailure says which failure locks the address out: the one that reaches the limit, once a window (for the log)', () => {
  const limiter = new AuthFailureLimiter();
  const locking = Array.from({ length: MAX_AUTH_FAILURES_PER_WINDOW + 2 }, () => limiter.recordFailure('10.0.0.9', T0));
  assert.equal(locking.map((locked, i) => (locked ? i + 1 : 0)).filter(Boolean), [MAX_AUTH_FAILURES_PER_WINDOW]);
  assert.is(limiter.recordFailure('10.0.0.9', T0 + AUTH_FAILURE_WINDOW_MS), false, 'a new window starts from one');
  assert.is(new AuthFailureLimiter(1).recordFailure('10.0.0.10', T0), true, 'a limit of one locks at the first');
});

test('the window is fixed from the first failure: failures spread over it count together', () => {
  const limiter = new AuthFailureLimiter();
  for (let i = 0; i < MAX_AUTH_FAILURES_PER_WINDOW; i++) limiter.recordFailure('10.0.0.3', T0 + i * 2_000);
  const last = T0 + (MAX_AUTH_FAILURES_PER_WINDOW - 1) * 2_000;
  assert.is(limiter.retryAfterSeconds('10.0.0.3', last), Math.ceil((T0 + AUTH_FAILURE_WINDOW_MS - last) / 1000));
});

test('once the window has passed the address starts again from zero', () => {
  const limiter = new AuthFailureLimiter();
  fail(limiter, '10.0.0.4', MAX_AUTH_FAILURES_PER_WINDOW);
  const later = T0 + AUTH_FAILURE_WINDOW_MS;
  assert.is(limiter.retryAfterSeconds('10.0.0.4', later), 0);
  // A fresh window: one failure is not a lock-out, and the limit applies anew.
  fail(limiter, '10.0.0.4', MAX_AUTH_FAILURES_PER_WINDOW - 1, later);
  assert.is(limiter.retryAfterSeconds('10.0.0.4', later), 0);
  limiter.recordFailure('10.0.0.4', later);
  assert.is(limiter.retryAfterSeconds('10.0.0.4', later), WINDOW_S);
});

test('failures old enough to have left the window do not count toward a new one', () => {
  const limiter = new AuthFailureLimiter();
  fail(limiter, '10.0.0.5', MAX_AUTH_FAILURES_PER_WINDOW - 1);
  // The next failure lands after the window: it opens a new window of one failure.
  limiter.recordFailure('10.0.0.5', T0 + AUTH_FAILURE_WINDOW_MS);
  assert.is(limiter.retryAfterSeconds('10.0.0.5', T0 + AUTH_FAILURE_WINDOW_MS), 0);
});

test('addresses are counted apart', () => {
  const limiter = new AuthFailureLimiter();
  fail(limiter, '10.0.0.6', MAX_AUTH_FAILURES_PER_WINDOW);
  fail(limiter, '::1', MAX_AUTH_FAILURES_PER_WINDOW - 1);
  assert.is(limiter.retryAfterSeconds('10.0.0.6', T0), WINDOW_S);
  assert.is(limiter.retryAfterSeconds('::1', T0), 0);
  assert.is(limiter.retryAfterSeconds('10.0.0.7', T0), 0);
});

test('the limit and the window are options', () => {
  const limiter = new AuthFailureLimiter(2, 10_000);
  limiter.recordFailure('a', T0);
  assert.is(limiter.retryAfterSeconds('a', T0), 0);
  limiter.recordFailure('a', T0);
  assert.is(limiter.retryAfterSeconds('a', T0), 10);
  assert.is(limiter.retryAfterSeconds('a', T0 + 10_000), 0);
});

test('many failing addresses: memory is bounded, the oldest are forgotten first, the newest stay locked', () => {
  // Limit 1: every address that fails once is locked, so "locked" shows whether it is remembered.
  const limiter = new AuthFailureLimiter(1, AUTH_FAILURE_WINDOW_MS);
  const count = 25_000;
  const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  for (let i = 0; i < count; i++) limiter.recordFailure(address(i), T0 + 1);
  const remembered = Array.from({ length: count }, (_, i) => limiter.retryAfterSeconds(address(i), T0 + 1) > 0);
  const kept = remembered.filter(Boolean).length;
  assert.ok(kept < count, `bounded: ${kept} of ${count} addresses remembered`);
  assert.ok(kept >= 1_000, `but not so tightly that an attack from a few hundred addresses goes unnoticed: ${kept}`);
  // What is forgotten is the oldest: the remembered ones are exactly the newest `kept`.
  assert.is(remembered.indexOf(true), count - kept);
  assert.ok(remembered.slice(count - kept).every(Boolean));

  // Once their windows have passed, the old addresses are free again and new ones are remembered.
  const later = T0 + 1 + AUTH_FAILURE_WINDOW_MS;
  for (let i = 0; i < kept; i++) limiter.recordFailure(`fresh-${i}`, later);
  assert.ok(
    Array.from({ length: kept }, (_, i) => limiter.retryAfterSeconds(`fresh-${i}`, later) > 0).every(Boolean),
    'every new address is remembered',
  );
  assert.is(limiter.retryAfterSeconds(address(count - 1), later), 0);
});

test('the wall clock stepping back (NTP, a VM resumed) neither stretches a lockout nor keeps expired windows: the default clock is monotonic', () => {
  const limiter = new AuthFailureLimiter();
  const realNow = Date.now;
  try {
    for (let i = 0; i < MAX_AUTH_FAILURES_PER_WINDOW; i++) limiter.recordFailure('10.0.0.9');
    // An hour back: on Date.now the window started an hour "from now", and lasted an hour longer.
    const stepped = realNow() - 3_600_000;
    Date.now = () => stepped;
    assert.ok(limiter.retryAfterSeconds('10.0.0.9') <= WINDOW_S, String(limiter.retryAfterSeconds('10.0.0.9')));
  } finally {
    Date.now = realNow;
  }
});

test.run();
