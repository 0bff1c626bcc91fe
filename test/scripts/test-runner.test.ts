/**
 * `npm test`'s runner (scripts/test.ts): a hung test stops the run, named, in bounded time, with
 * the processes it started; otherwise uvu's exit code is the run's.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { waitUntil } from '../helpers/gateway.js';

const test = suite('scripts/test (the test runner)');

const RUNNER = fileURLToPath(new URL('../../scripts/test.js', import.meta.url));
/** The same uvu the runner loads, imported by URL: the suites below live in a temp dir. */
const UVU = import.meta.resolve('uvu');
const dirs: string[] = [];

test.after(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A dir of uvu suites, each file's body after `const test = suite(name)`. */
function suites(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-runner-'));
  dirs.push(dir);
  for (const [name, body] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), `import { suite } from ${JSON.stringify(UVU)};\nconst test = suite(${JSON.stringify(name)});\n${body}\ntest.run();\n`);
  }
  return dir;
}

function runner(...args: string[]) {
  // A bound for this test's own sake: the runner is the thing under test.
  const run = spawnSync(process.execPath, [RUNNER, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stdout: run.stdout.replace(/\u001b\[[0-9;]*m/g, ''), stderr: run.stderr };
}

/** Gone, or a zombie no parent reaps (a container's init may not). */
function isGone(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

test('a test that never ends stops the run once nothing is printed for --stall-seconds: exit 1, the hung suite named, the processes it started stopped', async () => {
  const dir = suites({
    'a.test.js': "test('passes', () => {});",
    'b.test.js': `
import { spawn } from 'node:child_process';
test('waits for ever', () => {
  console.log('sleeper', spawn('sleep', ['300'], { stdio: 'ignore' }).pid);
  return new Promise(() => setInterval(() => {}, 1000));
});`,
  });
  const run = runner('--dir', dir, '--stall-seconds', '1');
  assert.is(run.status, 1, run.stderr);
  assert.match(run.stderr, /no test finished for 1 s: one hangs, and the run is stopped\. The last output was:\n[^]*b\.test\.js/);
  assert.match(run.stdout, /a\.test\.js[^]*\(1 \/ 1\)/, 'the suite before it ran');
  const sleeper = Number(/sleeper (\d+)/.exec(run.stdout)?.[1]);
  assert.ok(sleeper > 0, run.stdout);
  await waitUntil(() => isGone(sleeper), 'the process the hung test started to be stopped');
});

test('a run that ends is left alone: exit 0 when every test passes, 1 when one fails', () => {
  const passing = suites({ 'a.test.js': "test('passes', async () => { await new Promise((resolve) => setTimeout(resolve, 1500)); });" });
  assert.is(runner('--dir', passing, '--stall-seconds', '5').status, 0);
  const failing = suites({ 'a.test.js': "test('fails', () => { throw new Error('no'); });" });
  assert.is(runner('--dir', failing, '--stall-seconds', '5').status, 1);
});

test('a pattern picks the suites whose path matches it, case aside; one that picks none is exit 2, not a green run of nothing', () => {
  const dir = suites({ 'a.test.js': "test('a', () => {});", 'b.test.js': "test('b', () => {});", 'b.test.js.map': '' });
  const run = runner('B', '--dir', dir);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /b\.test\.js/);
  assert.not.match(run.stdout, /a\.test\.js/);
  const none = runner('nothing', '--dir', dir);
  assert.is(none.status, 2);
  assert.is(none.stderr, `no suite under ${dir} matches /nothing/i\n`);
});

test('bad arguments are exit 2 with the usage', () => {
  const usage = 'usage: node dist/scripts/test.js [pattern] [--dir D] [--stall-seconds N]\n';
  for (const [args, message] of [
    [['--stall-seconds', '0'], '--stall-seconds must be a positive number of seconds, got 0'],
    [['--stall-seconds', 'soon'], '--stall-seconds must be a positive number of seconds, got soon'],
    [['a', 'b'], 'one pattern at most, got 2'],
    [['('], 'Invalid regular expression: /(/: Unterminated group'],
  ] as const) {
    const run = runner(...args);
    assert.is(run.status, 2, args.join(' '));
    assert.is(run.stderr, `${message}\n${usage}`);
  }
  const unknown = runner('--verbose');
  assert.is(unknown.status, 2);
  assert.match(unknown.stderr, /^Unknown option '--verbose'/);
});

test.run();
