/**
 * `npm test`'s runner: `node dist/scripts/test.js [pattern] [--dir D] [--stall-seconds N]` runs
 * the uvu suites (`*.test.js`) under D (dist/test) whose path in it matches `pattern` (all by
 * default), and stops the run when no test has ended for N seconds (STALL_SECONDS by default),
 * exiting 1 with what it printed last.
 *
 * uvu has no per-test timeout, and a test that waits on something that never comes keeps the
 * process alive as long as the gateway it started listens: CI once hung for its whole 90 minutes
 * on one lost pong. uvu prints a mark as each test ends, so silence is the sign of a hung test,
 * and what it printed last names its suite. uvu runs in a process group of its own, so the
 * gateways and CLIs its tests spawned are stopped with it.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** Far above the longest any test took here, with every core busy besides (~14 s). */
const STALL_SECONDS = 180;
/** How much of the output to show when a test hangs: the suite's name and its marks so far. */
const TAIL_CHARS = 600;

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

// What uvu's own bin does (its package does not export it): find the suites, run them.
const runSuites = `
const { parse } = await import(${JSON.stringify(import.meta.resolve('uvu/parse'))});
const { run } = await import(${JSON.stringify(import.meta.resolve('uvu/run'))});
const { suites } = await parse(${JSON.stringify(values.dir)}, '\\.test\\.js$');
const chosen = new RegExp(${JSON.stringify(pattern)}, 'i');
const picked = suites.filter((suite) => chosen.test(suite.name));
if (picked.length === 0) {
  process.stderr.write('no suite under ' + ${JSON.stringify(values.dir)} + ' matches ' + chosen + '\\n');
  process.exit(2);
}
await run(picked, {});
`;
// Coloured, piped or not, as uvu's bin has it.
const child = spawn(process.execPath, ['--input-type=module', '--eval', runSuites], {
  detached: true,
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, FORCE_COLOR: '1' },
});

let tail = '';
const stall = setTimeout(onStall, stallSeconds * 1000);
function onOutput(chunk: Buffer, to: NodeJS.WriteStream): void {
  to.write(chunk);
  tail = (tail + chunk.toString()).slice(-TAIL_CHARS);
  stall.refresh();
}
child.stdout.on('data', (chunk: Buffer) => onOutput(chunk, process.stdout));
child.stderr.on('data', (chunk: Buffer) => onOutput(chunk, process.stderr));

function stopAll(signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

function onStall(): void {
  // ANSI colours stripped: the tail is read in CI logs, where they show as escape codes.
  const printed = tail.replace(/\u001b\[[0-9;]*m/g, '').trim();
  process.stderr.write(`\n\nno test finished for ${stallSeconds} s: one hangs, and the run is stopped. The last output was:\n${printed}\n`);
  stopAll('SIGKILL');
  process.exitCode = 1;
}

// An interrupted run stops its tests too: they are not in this terminal's process group.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopAll(signal);
    process.exitCode = 1;
  });
}

child.on('close', (code, signal) => {
  clearTimeout(stall);
  // Anything the tests left behind (a gateway a failed test never stopped) goes with the run.
  stopAll('SIGKILL');
  process.exitCode ||= code ?? (signal ? 1 : 0);
});
