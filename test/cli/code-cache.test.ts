/**
 * The CLI bundle's code cache, as the build made it (npm test builds first): V8 takes it for the
 * bundle beside it, and a cache that does not fit (another Node.js, a changed bundle) only means
 * the bundle is compiled as usual.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { codeCachePath, compileBundle } from '../../src/cli/code-cache.js';

const test = suite('cli/code-cache');

const BIN_DIR = fileURLToPath(new URL('../../bin/', import.meta.url));
const BUNDLE = path.join(BIN_DIR, 'cli.cjs');

test('the build leaves a cache that V8 takes for the bundle', () => {
  assert.ok(fs.existsSync(codeCachePath(BUNDLE)), 'dist/bin/cli.cjs.cache was made');
  assert.is(compileBundle(BUNDLE).cachedDataRejected, false);
});

test('the bundle has no import(): a vm.Script takes it only behind an experimental flag in Node 20', () => {
  assert.not.match(fs.readFileSync(BUNDLE, 'utf8'), /\bimport\(/);
});

test('a cache older than its bundle (edited after the build) is not used', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-code-cache-'));
  try {
    const bundle = path.join(dir, 'cli.cjs');
    fs.copyFileSync(BUNDLE, bundle);
    fs.copyFileSync(codeCachePath(BUNDLE), codeCachePath(bundle));
    assert.is(compileBundle(bundle).cachedDataRejected, false, 'a copy of both fits');
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(bundle, later, later);
    assert.is(compileBundle(bundle).cachedDataRejected, undefined, 'no cache given to V8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a cache that does not fit is rejected, and the bin runs the bundle compiled as usual', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-code-cache-'));
  try {
    for (const file of ['switchboard.cjs', 'cli.cjs']) fs.copyFileSync(path.join(BIN_DIR, file), path.join(dir, file));
    fs.writeFileSync(codeCachePath(path.join(dir, 'cli.cjs')), Buffer.from('not a V8 code cache'));
    assert.is(compileBundle(path.join(dir, 'cli.cjs')).cachedDataRejected, true);
    // Port 1 on loopback: nothing listens, so the command runs to its unreachable error (exit 3).
    const ran = spawnSync(process.execPath, [path.join(dir, 'switchboard.cjs'), 'status', '--url', 'ws://127.0.0.1:1', '--token', 'sba_x'], { encoding: 'utf8' });
    assert.is(ran.status, 3, ran.stderr);
    assert.match(ran.stderr, /^switchboard: gateway not reachable at ws:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
