/**
 * Stop signals held from the CLI's first step until the gateway command takes them over. Run in
 * a child process: the signals are sent to it, not to the test runner.
 */
import { spawnSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('cli/stop-signals');

const MODULE = new URL('../../src/cli/stop-signals.js', import.meta.url).href;

test('signals while held are kept, in order, instead of ending the process; taken, they are no longer held, and a second take finds none', () => {
  const script = `
    const { holdStopSignals, takeHeldSignals } = await import(${JSON.stringify(MODULE)});
    holdStopSignals();
    process.kill(process.pid, 'SIGTERM');
    process.kill(process.pid, 'SIGHUP');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const taken = takeHeldSignals();
    const listening = ['SIGINT', 'SIGTERM', 'SIGHUP'].map((name) => process.listenerCount(name));
    console.log(JSON.stringify({ taken, listening, again: takeHeldSignals() }));
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal([child.status, child.signal, child.stderr], [0, null, '']);
  assert.equal(JSON.parse(child.stdout), { taken: ['SIGTERM', 'SIGHUP'], listening: [0, 0, 0], again: [] });
});

test('nothing held, nothing taken', () => {
  const script = `const { takeHeldSignals } = await import(${JSON.stringify(MODULE)}); console.log(JSON.stringify(takeHeldSignals()));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal([child.status, child.stdout], [0, '[]\n']);
});

test.run();
