import os from 'node:os';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { availableBytes, FREE_SPACE_READ_INTERVAL_MS, FreeSpaceGuard } from '../../src/store/free-space.js';

const test = suite('store/free-space');

/** A guard over a disk whose free bytes and clock the test sets, counting its reads. */
function guarded(minFreeBytes: number, free: number | (() => number)) {
  const disk = { free, now: 0, reads: 0 };
  const guard = new FreeSpaceGuard(
    '/data',
    minFreeBytes,
    (dir) => {
      assert.is(dir, '/data');
      disk.reads++;
      return typeof disk.free === 'function' ? disk.free() : disk.free;
    },
    () => disk.now,
  );
  return { guard, disk };
}

test('less free than kept is a shortage, saying both; as much as kept, or more, is none', () => {
  const { guard, disk } = guarded(1000, 999);
  assert.equal(guard.shortage(), { availableBytes: 999, minFreeBytes: 1000 });
  disk.now += FREE_SPACE_READ_INTERVAL_MS;
  disk.free = 1000;
  assert.is(guard.shortage(), undefined);
  disk.now += FREE_SPACE_READ_INTERVAL_MS;
  disk.free = 5000;
  assert.is(guard.shortage(), undefined);
});

test('the disk is read at most once per interval: a shortage ends with the first read after room is made', () => {
  const { guard, disk } = guarded(1000, 10);
  assert.ok(guard.shortage());
  disk.free = 2000;
  disk.now += FREE_SPACE_READ_INTERVAL_MS - 1;
  assert.ok(guard.shortage(), 'the last reading stands within the interval');
  assert.is(disk.reads, 1);
  disk.now += 1;
  assert.is(guard.shortage(), undefined);
  assert.is(disk.reads, 2);
  assert.is(guard.available(), 2000);
  assert.is(disk.reads, 2, 'available() shares the reading');
});

test('0 kept refuses nothing and reads nothing to decide; available() still reads', () => {
  const { guard, disk } = guarded(0, 0);
  assert.is(guard.shortage(), undefined);
  assert.is(disk.reads, 0);
  assert.is(guard.available(), 0);
  assert.is(disk.reads, 1);
  assert.is(guard.minFreeBytes, 0);
});

test('a file system that cannot tell its free space refuses nothing, and is asked again after the interval', () => {
  let failing = true;
  const { guard, disk } = guarded(1000, () => {
    if (failing) throw Object.assign(new Error('statfs not supported'), { code: 'ENOSYS' });
    return 10;
  });
  assert.is(guard.shortage(), undefined);
  assert.is(guard.available(), undefined);
  failing = false;
  disk.now += FREE_SPACE_READ_INTERVAL_MS;
  assert.equal(guard.shortage(), { availableBytes: 10, minFreeBytes: 1000 });
});

test("availableBytes reads a real file system's free space, in bytes", () => {
  const free = availableBytes(os.tmpdir());
  assert.ok(free !== undefined && Number.isSafeInteger(free) && free > 0, String(free));
});

test.run();
