/**
 * `npm test`'s runner (scripts/test.ts): a hung test stops the run, named, in bounded time, with
 * the processes it started, and so do the runner's own end and uvu's; otherwise uvu's exit code
 * is the run's. POSIX only: the suites below start `sleep`.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withoutColours } from '../../scripts/plain-text.js';
import { waitUntil } from '../helpers/gateway.js';

const test = suite('scripts/test (the test runner)');

const RUNNER = fileURLToPath(new URL('../../scripts/test.js', import.meta.url));
/** The same uvu the runner loads, imported by URL: the suites below live in a temp dir. */
const UVU = import.meta.resolve('uvu');
/** A test's line that starts a process meant to outlive it, with the runner's output pipes, and prints its pid. */
const SLEEPER = "console.log(`sleeper ${(await import('node:child_process')).spawn('sleep', ['60'], { stdio: 'inherit' }).pid}`);";
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

/** Bounded for this test's own sake, below any --stall-seconds given that is to go unused. */
function runner(...args: string[]) {
  const run = spawnSync(process.execPath, [RUNNER, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { status: run.status, stdout: withoutColours(run.stdout), stderr: run.stderr };
}

function sleeperOf(stdout: string): number {
  const pid = Number(/sleeper (\d+)/.exec(stdout)?.[1]);
  assert.ok(pid > 0, stdout);
  return pid;
}

/** Gone, or a zombie no parent reaps (a container's init may not). */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? false;
  } catch {
    return true;
  }
}

const posix = process.platform === 'win32' ? test.skip : test;

posix('a test that never ends stops the run once no test has ended for --stall-seconds: exit 1, the file and the test named, the processes it started stopped', async () => {
  const dir = suites({
    'a.test.js': "test('passes', () => {});\ntest('passes too', () => {});",
    // Its gateway logging on (to stderr) is no progress.
    'b.test.js': `test('passes', () => {});\ntest('waits for ever', async () => {\n${SLEEPER}\nsetInterval(() => console.error('still here'), 200);\nawait new Promise(() => {});\n});`,
  });
  const run = runner('--dir', dir, '--stall-seconds', '3');
  assert.is(run.status, 1, run.stderr);
  assert.match(run.stderr, /\n\nno test ended for 3 s in b\.test\.js, after 1 of its tests ended: the next one hangs, and the run is stopped\. The last output was:\n[^]*still here\n$/);
  assert.match(run.stdout, /a\.test\.js[^]*\(2 \/ 2\)/, 'the suite before it ran');
  const sleeper = sleeperOf(run.stdout);
  await waitUntil(() => isGone(sleeper), 'the process the hung test started to be stopped');
});

posix('a run that ends is left alone however long it takes, as long as tests end: exit 0 when every test passes, 1 when one fails', () => {
  const slow = "async () => { await new Promise((resolve) => setTimeout(resolve, 1000)); }";
  const passing = suites({ 'a.test.js': `test('one', ${slow});\ntest('two', ${slow});\ntest('three', ${slow});` });
  const run = runner('--dir', passing, '--stall-seconds', '2.5');
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /\(3 \/ 3\)/);
  const failing = suites({ 'a.test.js': "test('fails', () => { throw new Error('no'); });" });
  assert.is(runner('--dir', failing, '--stall-seconds', '5').status, 1);
});

posix('what tests leave running does not hold the run once uvu ends: exit as uvu did, at once, the processes stopped (review: a child holding the output pipes kept it to the stall)', async () => {
  const leaky = suites({ 'a.test.js': `test('passes, leaving a process behind', async () => {\n${SLEEPER}\n});` });
  const run = runner('--dir', leaky, '--stall-seconds', '30');
  assert.is(run.status, 0, run.stderr);
  await waitUntil(() => isGone(sleeperOf(run.stdout)), 'the process left behind to be stopped');
  // uvu itself dies (a throw no test caught): its exit code, not a hang.
  const crashing = suites({ 'a.test.js': `test('crashes its process', async () => {\n${SLEEPER}\nsetTimeout(() => { throw new Error('uncaught'); }, 10);\nawait new Promise(() => {});\n});` });
  const crash = runner('--dir', crashing, '--stall-seconds', '30');
  assert.is(crash.status, 1, crash.stderr);
  assert.match(crash.stderr, /Error: uncaught/);
  assert.not.match(crash.stderr, /no test ended/);
  await waitUntil(() => isGone(sleeperOf(crash.stdout)), 'the process left behind to be stopped');
});

/** A runner (started apart, to be signalled) whose one test waits for ever, once that test has started its sleeper. */
async function hungRun() {
  const dir = suites({ 'a.test.js': `test('waits for ever', async () => {\n${SLEEPER}\nawait new Promise(() => {});\n});` });
  const child = spawn(process.execPath, [RUNNER, '--dir', dir, '--stall-seconds', '60'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await waitUntil(() => /sleeper \d+/.test(stdout), 'the test to start its process');
  return { child, exited, sleeper: sleeperOf(stdout) };
}

posix('a runner killed (SIGKILL, no word to anyone) takes its run with it: uvu and what its tests started stop themselves', async () => {
  const { child, sleeper } = await hungRun();
  child.kill('SIGKILL');
  await waitUntil(() => isGone(sleeper), 'the process the test started to be stopped');
});

posix('SIGINT, SIGTERM and SIGHUP stop the run and what it started: exit 128 + the signal', async () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    const { child, exited, sleeper } = await hungRun();
    child.kill(signal);
    assert.is(await exited, code, signal);
    await waitUntil(() => isGone(sleeper), `the process the test started to be stopped (${signal})`);
  }
});

test('a pattern picks the suites whose path matches it, case aside; one that picks none is exit 2, not a green run of nothing', () => {
  const dir = suites({ 'a.test.js': "test('a', () => {});", 'b.test.js': "test('b', () => {});", 'b.test.js.map': '', 'latest.js': "throw new Error('not a suite');" });
  const run = runner('B', '--dir', dir);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /b\.test\.js/);
  assert.not.match(run.stdout, /a\.test\.js/);
  assert.is(runner('--dir', dir).status, 0, 'latest.js is no suite (review: the pattern lost its backslashes)');
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
