/**
 * The open-file limit as /proc/self/limits gives it, and the TCP connections the gateway takes
 * under it: all but what is kept for the data dir's socket and the store.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FILES_KEPT_FROM_TCP, openFileLimit, tcpConnectionLimit } from '../../src/server/open-file-limit.js';

const test = suite('server/open-file-limit');

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max processes             63378                63378                processes
Max open files            1200                 4096                 files
Max locked memory         8388608              8388608              bytes
`;

test('the soft limit of open files, from /proc/self/limits; none when it is unlimited or not told', () => {
  assert.is(openFileLimit(LIMITS), 1200);
  assert.is(openFileLimit(LIMITS.replace('1200 ', 'unlimited ')), undefined);
  assert.is(openFileLimit(''), undefined);
  if (process.platform === 'linux') assert.type(openFileLimit(), 'number');
});

test('TCP takes the limit less what is kept for the socket and the store, and a few however low it is; no limit, no bound', () => {
  assert.is(tcpConnectionLimit(1200), 1200 - FILES_KEPT_FROM_TCP);
  assert.is(tcpConnectionLimit(100), 16);
  assert.is(tcpConnectionLimit(undefined), undefined);
});

test.run();
