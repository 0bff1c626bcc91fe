/**
 * The CLI bundle's code cache, as the build made it (npm test builds first): V8 takes it for the
 * bundle beside it, and a cache that does not fit (another Node.js, a changed bundle) only means
 * the bundle is compiled as usual.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { codeCachePath } from '../../src/cli/code-cache.js';

const test = suite('cli/code-cache');

const BIN_DIR = fileURLToPath(new URL('../../bin/', import.meta.url));
const BUNDLE = path.join(BIN_DIR, 'cli.cjs');
const CODE_CACHE_MODULE = fileURLToPath(new URL('../../src/cli/code-cache.js', import.meta.url));

/**
 * Compiles `bundle` as the bin does, runs its top level, then `step` (code that sees `bundle`,
 * `script` and the bundle's `module`); returns what it printed. In a process of its own, as the
 * build and each CLI run are: V8 keeps the scripts a process compiled, and compiling the same
 * source under the same name again takes that one, with no look at the cache given.
 */
function inChild(bundle: string, step: string): string {
  const script = `import { compileBundle, codeCachePath } from ${JSON.stringify(pathToFileURL(CODE_CACHE_MODULE).href)};
    import fs from 'node:fs';
    const bundle = ${JSON.stringify(bundle)};
    const script = compileBundle(bundle);
    const module = { exports: {} };
    ${step}`;
  const ran = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.is(ran.status, 0, ran.stderr);
  return ran.stdout;
}

// A string: under FORCE_COLOR (the test runner sets it), console.log colours a boolean.
const CACHE_TAKEN = 'console.log(String(script.cachedDataRejected))';

test('the build leaves a cache that V8 takes for the bundle', () => {
  assert.ok(fs.existsSync(codeCachePath(BUNDLE)), 'dist/bin/cli.cjs.cache was made');
  assert.is(inChild(BUNDLE, CACHE_TAKEN), 'false\n');
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
    assert.is(inChild(bundle, CACHE_TAKEN), 'false\n', 'a copy of both fits');
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(bundle, later, later);
    assert.is(inChild(bundle, CACHE_TAKEN), 'undefined\n', 'no cache given to V8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('V8 keeps the name a cache was made under, so the bundle is compiled under one that holds wherever the package is', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-code-cache-'));
  const [built, installed] = [path.join(dir, 'dist.next'), path.join(dir, 'elsewhere')];
  const run = 'script.runInThisContext()(module.exports, undefined, module, bundle, undefined);';
  try {
    for (const at of [built, installed]) fs.mkdirSync(at);
    fs.writeFileSync(path.join(built, 'cli.cjs'), 'module.exports.fail = function fail() { throw new Error("a bug"); };\n');
    inChild(path.join(built, 'cli.cjs'), `${run} fs.writeFileSync(codeCachePath(bundle), script.createCachedData());`);
    for (const file of ['cli.cjs', 'cli.cjs.cache']) fs.copyFileSync(path.join(built, file), path.join(installed, file));
    const fail = 'try { module.exports.fail(); } catch (error) { console.log(error.stack); }';
    const stack = inChild(path.join(installed, 'cli.cjs'), `${run} ${CACHE_TAKEN}; ${fail}`);
    assert.match(stack, /^false\n/, 'the cache was taken');
    assert.match(stack, '(switchboard/dist/bin/cli.cjs:1:');

    // Why: compiled under its own path, the copy's code is named after the dir its cache was made in.
    const underOwnPath = (bundle: string) =>
      `const own = new (await import('node:vm')).Script(\`(function (exports, require, module, __filename, __dirname) {\${fs.readFileSync(bundle, 'utf8')}\\n})\`, { filename: bundle, cachedData: fs.existsSync(codeCachePath(bundle)) ? fs.readFileSync(codeCachePath(bundle)) : undefined });
      own.runInThisContext()(module.exports, undefined, module, bundle, undefined);`;
    for (const at of [built, installed]) fs.rmSync(codeCachePath(path.join(at, 'cli.cjs')));
    inChild(path.join(built, 'cli.cjs'), `${underOwnPath(path.join(built, 'cli.cjs'))} fs.writeFileSync(codeCachePath(bundle), own.createCachedData());`);
    fs.copyFileSync(codeCachePath(path.join(built, 'cli.cjs')), codeCachePath(path.join(installed, 'cli.cjs')));
    const named = inChild(path.join(installed, 'cli.cjs'), `${underOwnPath(path.join(installed, 'cli.cjs'))} ${fail}`);
    assert.match(named, `(${path.join(built, 'cli.cjs')}:1:`, 'V8 still keeps the name a cache was made under');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a cache that does not fit is rejected, and the bin runs the bundle compiled as usual', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-code-cache-'));
  try {
    for (const file of ['switchboard.cjs', 'cli.cjs']) fs.copyFileSync(path.join(BIN_DIR, file), path.join(dir, file));
    fs.writeFileSync(codeCachePath(path.join(dir, 'cli.cjs')), Buffer.from('not a V8 code cache'));
    assert.is(inChild(path.join(dir, 'cli.cjs'), CACHE_TAKEN), 'true\n');
    // Port 1 on loopback: nothing listens, so the command runs to its unreachable error (exit 3).
    const ran = spawnSync(process.execPath, [path.join(dir, 'switchboard.cjs'), 'status', '--url', 'ws://127.0.0.1:1', '--token', 'sba_x'], { encoding: 'utf8' });
    assert.is(ran.status, 3, ran.stderr);
    assert.match(ran.stderr, /^switchboard: gateway not reachable at ws:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
