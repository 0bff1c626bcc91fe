/**
 * What `switchboard gateway` says when it cannot start. Disks that refuse writes (read-only, full,
 * over quota, past ulimit -f) are built here as errno errors: a test cannot fill or remount a
 * disk, and Node words each as a bare "ENOSPC: no space left on device, write" (QA).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startFailure } from '../../src/cli/gateway-command.js';

const test = suite('cli/gateway-command: start failures');

function errnoError(code: string, message: string, syscall?: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, syscall });
}

test('a disk that refuses a write names the data dir, why, what to do, and how the data dir was chosen', () => {
  const cases: Array<[string, string, string]> = [
    ['EROFS', "EROFS: read-only file system, mkdir '/mnt/ro/sb'", 'its file system is mounted read-only: give a data dir on a writable one'],
    ['ENOSPC', 'ENOSPC: no space left on device, write', 'its disk is full: free some space, or give a data dir on another disk'],
    ['EDQUOT', 'EDQUOT: disk quota exceeded, write', "its owner's disk quota is used up: free some space, or give a data dir on another disk"],
    ['EFBIG', 'EFBIG: file too large, write', 'a file there would pass the largest file this process may write (ulimit -f): raise the limit'],
    // A data dir under a directory of root's, for a gateway not run as root (operator QA: it named --port too).
    ['EACCES', "EACCES: permission denied, mkdir '/mnt/ro/sb'", 'this user may not write there: give the gateway a data dir of its own'],
  ];
  for (const [code, message, advice] of cases) {
    assert.is(
      startFailure(errnoError(code, message), '/mnt/ro/sb', '--data-dir'),
      `cannot start: the data dir /mnt/ro/sb cannot be written (${message}): ${advice} (the data dir was given by --data-dir)`,
    );
  }
  assert.is(
    startFailure(errnoError('ENOSPC', 'ENOSPC: no space left on device, write'), '/home/u/.switchboard', undefined),
    'cannot start: the data dir /home/u/.switchboard cannot be written (ENOSPC: no space left on device, write): its disk is full: free some space, or give a data dir on another disk (the default data dir: choose another with --data-dir or SWITCHBOARD_DATA_DIR)',
  );
});

test('a port refused (below 1024, not root) is said to be the port, not the data dir', () => {
  assert.is(
    startFailure(errnoError('EACCES', 'listen EACCES: permission denied 127.0.0.1:80', 'listen'), '/d', undefined),
    'cannot listen: permission denied (listen EACCES: permission denied 127.0.0.1:80); a port below 1024 takes root or CAP_NET_BIND_SERVICE: pick --port 1024 or above, or --port 0 for a free one',
  );
});

test('a port in use and an error of no known kind keep their own words', () => {
  assert.match(startFailure(errnoError('EADDRINUSE', 'listen EADDRINUSE: address already in use 127.0.0.1:18790'), '/d', undefined), /^cannot listen: the port is already in use/);
  assert.is(startFailure(new Error('something else'), '/d', undefined), 'cannot start: something else');
});

test.run();
