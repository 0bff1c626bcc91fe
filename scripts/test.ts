/**
 * `npm test`'s runner: `node dist/scripts/test.js [pattern] [--dir D] [--stall-seconds N]` runs
 * the uvu suites (`*.test.js`) under D (dist/test) whose path in it matches `pattern` (all by
 * default), and stops the run when no test has ended for N seconds (STALL_SECONDS by default),
 * exiting 1 with the suite that hangs and what was printed last.
 *
 * uvu has no per-test timeout, and a test that waits on something that never comes keeps the
 * process alive as long as the gateway it started listens: CI once hung for its whole 90 minutes
 * on one lost pong. uvu prints a mark on stdout as each test ends, so its silence there is the
 * sign of a hung test (stderr is not: a hung test's gateway may log on). uvu runs in a process
 * group of its own, so the gateways and CLIs its tests started are stopped with it, when it
 * hangs and when it ends, and it stops them itself when this runner goes (its IPC channel closes).
 */
import { spawn, spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { withoutColours } from './plain-text.js';

/** Far above the longest any test took here, with every core busy besides (~14 s). */
const STALL_SECONDS = 180;
/** How much of the last output to show when a test hangs. */
const TAIL_CHARS = 600;
/** Once uvu has ended, how long what its tests left running has to stop on SIGTERM before SIGKILL. */
const LEFTOVER_GRACE_MS = 1_000;
const TEST_FILE = /\.test\.js$/;
/** Process groups are POSIX's; on Windows the tree is stopped with taskkill. */
const GROUPS = process.platform !== 'win32';

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: node dist/scripts/test.js [pattern] [--dir D] [--stall-seconds N]\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: fileURLToPath(new URL('../test', import.meta.url)) },
      'stall-seconds': { type: 'string', default: String(STALL_SECONDS) },
    },
  });
} catch (error) {
  usage((error as Error).message);
}
const { values, positionals } = args;
const stallSeconds = Number(values['stall-seconds']);
if (!Number.isFinite(stallSeconds) || stallSeconds <= 0) usage(`--stall-seconds must be a positive number of seconds, got ${values['stall-seconds']}`);
if (positionals.length > 1) usage(`one pattern at most, got ${positionals.length}`);
const pattern = positionals[0] ?? '';
try {
  new RegExp(pattern);
} catch (error) {
  usage((error as Error).message);
}

// What uvu's own bin does (its package does not export it): find the suites, run them. First,
// what ends the run when this runner goes (killed, or its terminal closed) without a word.
const runSuites = `
process.channel.unref();
process.on('disconnect', () => {
  if (process.platform === 'win32') process.exit(1);
  process.kill(-process.pid, 'SIGKILL');
});
const { parse } = await import(${JSON.stringify(import.meta.resolve('uvu/parse'))});
const { run } = await import(${JSON.stringify(import.meta.resolve('uvu/run'))});
const { suites } = await parse(${JSON.stringify(values.dir)}, ${JSON.stringify(TEST_FILE.source)});
const chosen = new RegExp(${JSON.stringify(pattern)}, 'i');
const picked = suites.filter((suite) => chosen.test(suite.name));
if (picked.length === 0) {
  process.stderr.write('no suite under ' + ${JSON.stringify(values.dir)} + ' matches ' + chosen + '\\n');
  process.exit(2);
}
await run(picked, {});
// Done: a handle a test left (a child process, a server) must not keep uvu, and the run, alive.
process.exit();
`;
// Coloured, piped or not, as uvu's bin has it.
const child = spawn(process.execPath, ['--input-type=module', '--eval', runSuites], {
  detached: GROUPS,
  stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  env: { ...process.env, FORCE_COLOR: '1' },
});

/** Where uvu is: the file whose suite it runs (it prints its name first), and how many of its tests have ended. */
class Progress {
  #file: string | undefined;
  #ended = 0;
  /** The line being written: a suite's marks come on one line, ended when the suite is. */
  #line = '';

  read(text: string): void {
    const lines = (this.#line + text).split('\n');
    this.#line = lines.pop()!;
    for (const line of lines.map(withoutColours)) {
      if (TEST_FILE.test(line.trim())) {
        this.#file = line.trim();
        this.#ended = 0;
      } else {
        this.#ended += marks(line);
      }
    }
  }

  describe(): string {
    if (this.#file === undefined) return 'before any suite ran (loading the suites)';
    const ended = this.#ended + marks(withoutColours(this.#line));
    return `in ${this.#file}, after ${ended} of its tests ended`;
  }
}

/** uvu's marks: one per test ended, passed or failed. */
function marks(line: string): number {
  return line.match(/[•✘]/g)?.length ?? 0;
}

const progress = new Progress();
let tail = '';
let stalled = false;
const stall = setTimeout(onStall, stallSeconds * 1000);
// A reader gone (`npm test | head`) leaves the run to end as it would.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
child.stdout!.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  progress.read(chunk.toString());
  tail = (tail + chunk.toString()).slice(-4 * TAIL_CHARS);
  if (!stalled) stall.refresh();
});
child.stderr!.on('data', (chunk: Buffer) => {
  process.stderr.write(chunk);
  tail = (tail + chunk.toString()).slice(-4 * TAIL_CHARS);
});

function stopAll(signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    if (GROUPS) process.kill(-child.pid, signal);
    else spawnSync('taskkill', ['/pid', String(child.pid), '/T', '/F']);
  } catch {
    // The group is gone already.
  }
}

function onStall(): void {
  stalled = true;
  process.stderr.write(
    `\n\nno test ended for ${stallSeconds} s ${progress.describe()}: the next one hangs, and the run is stopped. The last output was:\n${withoutColours(tail).slice(-TAIL_CHARS).trim()}\n`,
  );
  process.exitCode = 1;
  stopAll('SIGKILL');
}

// An interrupted run stops its tests too: they are not in this terminal's process group.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.exitCode = 128 + constants.signals[signal];
    stopAll(signal);
  });
}

child.on('exit', (code) => {
  clearTimeout(stall);
  // What its tests left running (a gateway a failed test never stopped) goes with the run; a
  // process holding the output pipes would otherwise keep this runner waiting for ever.
  stopAll('SIGTERM');
  setTimeout(() => stopAll('SIGKILL'), LEFTOVER_GRACE_MS).unref();
  process.exitCode ||= code ?? 1;
});
