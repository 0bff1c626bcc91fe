/**
 * Files only their owner may read: created 0600 whatever the umask, never overwritten; directories
 * made 0700, each tried once.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateFile, makePrivateDir, replaceableDir, resolvedPrivateDir } from '../../src/config/private-files.js';

const test = suite('config/private-files');
/** Modes are POSIX: Windows keeps only a read-only flag. */
const posix = process.platform === 'win32' ? test.skip : test;

const dirs: string[] = [];
function tempFile(name = 'file'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-private-'));
  dirs.push(dir);
  return path.join(dir, name);
}

test.after(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

posix('replaceableDir: a dir of ours that only we (and our own group) can write in is fine; one others can write in (not sticky), another group, or of another user, is not', () => {
  const dir = path.dirname(tempFile());
  for (const [mode, problem] of [
    [0o700, undefined],
    [0o755, undefined],
    [0o775, undefined],
    [0o757, 'can be written by other users (mode 0757)'],
    [0o777, 'can be written by other users (mode 0777)'],
    [0o1777, undefined],
  ] as const) {
    fs.chmodSync(dir, mode);
    assert.is(replaceableDir(dir), problem, mode.toString(8));
  }
  assert.is(replaceableDir(path.join(dir, 'missing')), undefined);
  // Only root can give a dir away, or to any group.
  if (process.getuid?.() === 0) {
    // Our own dir, writable by a group not our own: each of its members could rename what is in it (operator QA).
    fs.chownSync(dir, 0, 65534);
    fs.chmodSync(dir, 0o770);
    assert.is(replaceableDir(dir), 'can be written by its group (gid 65534, mode 0770)');
    fs.chmodSync(dir, 0o750);
    assert.is(replaceableDir(dir), undefined, 'readable by it only');
    fs.chownSync(dir, 65534, 65534);
    assert.is(replaceableDir(dir), 'belongs to another user (uid 65534)');
  }
});

posix('resolvedPrivateDir: links followed; the dir must be ours, and each one above it ours or root\'s with no entries others may rename; a missing one throws (another user could make it)', () => {
  const parent = path.dirname(tempFile());
  const dir = path.join(parent, 'mine');
  fs.mkdirSync(dir, { mode: 0o700 });
  const link = path.join(path.dirname(tempFile()), 'link');
  fs.symlinkSync(dir, link);
  const real = fs.realpathSync(dir);
  assert.equal(resolvedPrivateDir(link), { dir: real });
  assert.throws(() => resolvedPrivateDir(path.join(parent, 'missing')), (error: NodeJS.ErrnoException) => error.code === 'ENOENT');
  fs.chmodSync(dir, 0o777);
  assert.equal(resolvedPrivateDir(link), { problem: `its directory ${real} can be written by other users (mode 0777)` });
  fs.chmodSync(dir, 0o700);
  // Above it: others may rename `mine` itself, and put their own in its place.
  fs.chmodSync(parent, 0o777);
  assert.equal(resolvedPrivateDir(link), { problem: `${path.dirname(real)}, a directory on its path, can be written by other users (mode 0777)` });
  fs.chmodSync(parent, 0o1777);
  assert.equal(resolvedPrivateDir(link), { dir: real });
  if (process.getuid?.() === 0) {
    fs.chownSync(parent, 65534, 65534);
    assert.equal(resolvedPrivateDir(link), { problem: `${path.dirname(real)}, a directory on its path, belongs to another user (uid 65534)` });
    fs.chownSync(dir, 65534, 65534);
    fs.chmodSync(dir, 0o1777);
    assert.equal(resolvedPrivateDir(dir), { problem: `its directory ${real} belongs to another user (uid 65534)` }, "another user's sticky dir: its owner may rename what is in it");
  }
});

// Only root can run code as another user.
(process.getuid?.() === 0 ? test : test.skip)("resolvedPrivateDir, for a user other than root: root's sticky dir (/tmp) and its own are fine, root's others can be written by others, another user's not (QA: a backup into /tmp was refused)", () => {
  const parent = path.dirname(tempFile());
  fs.chmodSync(parent, 0o755);
  const sticky = path.join(parent, 'sticky');
  const own = path.join(parent, 'own');
  const open = path.join(parent, 'open');
  const theirs = path.join(parent, 'theirs');
  for (const [dir, mode, owner] of [
    [sticky, 0o1777, 0],
    [own, 0o700, 65534],
    [open, 0o777, 0],
    [theirs, 0o1777, 1234],
  ] as const) {
    fs.mkdirSync(dir);
    fs.chmodSync(dir, mode);
    fs.chownSync(dir, owner, owner);
  }
  const module = new URL('../../src/config/private-files.js', import.meta.url).href;
  const script = `const { resolvedPrivateDir } = await import(${JSON.stringify(module)}); console.log(JSON.stringify(${JSON.stringify([sticky, own, open, theirs])}.map((dir) => resolvedPrivateDir(dir))));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
  assert.is(run.status, 0, run.stderr);
  const real = (dir: string) => fs.realpathSync(dir);
  assert.equal(JSON.parse(run.stdout), [
    { dir: real(sticky) },
    { dir: real(own) },
    { problem: `its directory ${real(open)} can be written by other users (mode 0777)` },
    { problem: `its directory ${real(theirs)} belongs to another user (uid 1234)` },
  ]);
});

posix('createPrivateFile: a new file with its content, mode 0600 under any umask', () => {
  for (const mask of [0o000, 0o022, 0o077, 0o277]) {
    const file = tempFile();
    const previous = process.umask(mask);
    try {
      assert.is(createPrivateFile(file, 'secret\n'), true);
    } finally {
      process.umask(previous);
    }
    assert.is(fs.statSync(file).mode & 0o777, 0o600, `umask ${mask.toString(8)}`);
    assert.is(fs.readFileSync(file, 'utf8'), 'secret\n');
  }
  const empty = tempFile();
  assert.is(createPrivateFile(empty), true);
  assert.is(fs.statSync(empty).size, 0);
});

posix('createPrivateFile: an existing file is left alone, content and mode; false', () => {
  const file = tempFile();
  fs.writeFileSync(file, 'theirs');
  fs.chmodSync(file, 0o644);
  assert.is(createPrivateFile(file, 'mine'), false);
  assert.is(fs.readFileSync(file, 'utf8'), 'theirs');
  assert.is(fs.statSync(file).mode & 0o777, 0o644);
});

test('createPrivateFile: the file is put in place whole, and the draft it is written under is gone, whether it was created or not', () => {
  const dir = tempFile('drafts');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'token');
  assert.is(createPrivateFile(file, 'first\n'), true);
  assert.is(createPrivateFile(file, 'second\n'), false);
  assert.equal(fs.readdirSync(dir), ['token']);
  assert.is(fs.readFileSync(file, 'utf8'), 'first\n');
});

test('createPrivateFile: on a file system without hard links (FAT, some network shares) the file is created in place, with its content', () => {
  const dir = tempFile('linkless');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'token');
  const link = fs.linkSync;
  // EPERM on FAT under Linux, EISDIR on exFAT under Windows, ENOTSUP on some shares.
  for (const code of ['EPERM', 'EISDIR', 'ENOTSUP']) {
    fs.rmSync(file, { force: true });
    fs.linkSync = () => {
      throw Object.assign(new Error(`${code}: link`), { code });
    };
    syncBuiltinESMExports();
    try {
      assert.is(createPrivateFile(file, 'secret\n'), true, code);
      assert.is(createPrivateFile(file, 'other\n'), false, code);
    } finally {
      fs.linkSync = link;
      syncBuiltinESMExports();
    }
    assert.equal([fs.readdirSync(dir), fs.readFileSync(file, 'utf8')], [['token'], 'secret\n'], code);
  }
});

test('createPrivateFile: a write that fails (a full disk) fails the creation, and leaves neither the file nor its draft', () => {
  const dir = tempFile('full');
  fs.mkdirSync(dir);
  const write = fs.writeFileSync;
  fs.writeFileSync = () => {
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  };
  syncBuiltinESMExports();
  try {
    assert.throws(() => createPrivateFile(path.join(dir, 'token'), 'secret\n'), /ENOSPC/);
  } finally {
    fs.writeFileSync = write;
    syncBuiltinESMExports();
  }
  assert.equal(fs.readdirSync(dir), []);
});

test('createPrivateFile: other failures are thrown (no such dir)', () => {
  assert.throws(() => createPrivateFile(path.join(tempFile('missing'), 'file')), /ENOENT/);
});

function errorCode(fn: () => void): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
  return undefined;
}

posix('makePrivateDir: the dir and its missing parents, 0700; an existing dir is fine', () => {
  const base = path.dirname(tempFile());
  const dir = path.join(base, 'a', 'b', 'c');
  makePrivateDir(dir);
  for (const made of [path.join(base, 'a'), path.join(base, 'a', 'b'), dir]) assert.is(fs.statSync(made).mode & 0o777, 0o700, made);
  makePrivateDir(dir);
  makePrivateDir(base);
});

test('makePrivateDir: a file in the way is EEXIST, a path through a file ENOTDIR; the file is left alone', () => {
  const file = tempFile();
  fs.writeFileSync(file, 'keep me');
  assert.is(errorCode(() => makePrivateDir(file)), 'EEXIST');
  assert.is(errorCode(() => makePrivateDir(path.join(file, 'sub', 'dir'))), 'ENOTDIR');
  assert.is(fs.readFileSync(file, 'utf8'), 'keep me');
});

// Node's recursive mkdir loops forever on these: the parent exists, yet mkdir answers ENOENT.
(fs.existsSync('/proc/self') ? test : test.skip)('makePrivateDir under /proc: ENOENT at once, not a busy loop', () => {
  const started = Date.now();
  assert.is(errorCode(() => makePrivateDir('/proc/switchboard-test')), 'ENOENT');
  assert.is(errorCode(() => makePrivateDir('/proc/switchboard-test/data/dir')), 'ENOENT');
  assert.ok(Date.now() - started < 1000);
});

test.run();
