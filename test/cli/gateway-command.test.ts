/**
 * What `switchboard gateway` says when it cannot start. Disks that refuse writes (read-only, full,
 * over quota, past ulimit -f) are built here as errno errors: a test cannot fill or remount a
 * disk, and Node words each as a bare "ENOSPC: no space left on device, write" (QA).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startFailure } from '../../src/cli/gateway-command.js';

const test = suite('cli/gateway-command: start failures');

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

test('a disk that refuses a write names the data dir, why, what to do, and how the data dir was chosen', () => {
  const cases: Array<[string, string, string]> = [
    ['EROFS', "EROFS: read-only file system, mkdir '/mnt/ro/sb'", 'its file system is mounted read-only: give a data dir on a writable one'],
    ['ENOSPC', 'ENOSPC: no space left on device, write', 'its disk is full: free some space, or give a data dir on another disk'],
    ['EDQUOT', 'EDQUOT: disk quota exceeded, write', "its owner's disk quota is used up: free some space, or give a data dir on another disk"],
    ['EFBIG', 'EFBIG: file too large, write', 'a file there would pass the largest file this process may write (ulimit -f): raise the limit'],
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

test('a port in use and an error of no known kind keep their own words', () => {
  assert.match(startFailure(errnoError('EADDRINUSE', 'listen EADDRINUSE: address already in use 127.0.0.1:18790'), '/d', undefined), /^cannot listen: the port is already in use/);
  assert.is(startFailure(new Error('something else'), '/d', undefined), 'cannot start: something else');
});

test.run();
