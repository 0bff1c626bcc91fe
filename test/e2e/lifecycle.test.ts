/**
 * Graceful lifecycle of the gateway process: SIGTERM and SIGINT stop it (clients get 1001),
 * SIGHUP stops it for a restart (clients get 1012, so they know to reconnect, and it exits 75 for
 * a supervisor to start it again); each exits with the store checkpointed, and what was answered is there after the next start. The same when no
 * one reads the gateway's output any more (`gateway 2>&1 | tee log`, then Ctrl-C).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SIGINT_ECHO_MS } from '../../src/cli/gateway-command.js';
import { SCHEMA_VERSION } from '../../src/store/migrations.js';
import { cleanup, makeTempDir, openRaw, resultOf, runCli, sleep, startGatewayProcess, waitUntil } from '../helpers/gateway.js';

const test = suite('e2e: gateway lifecycle');
test.after(cleanup);

for (const [signal, code, reason, logged, exit, stopped] of [
  ['SIGTERM', 1001, 'gateway shutting down', 'shutting down: clients are told 1001', 0, 'stopped'],
  ['SIGINT', 1001, 'gateway shutting down', 'shutting down: clients are told 1001', 0, 'stopped'],
  // Not 0: a supervisor that restarts on failure (systemd's Restart=on-failure) took it for a stop (operator QA).
  ['SIGHUP', 1012, 'gateway restarting', 'shutting down for a restart: clients are told 1012 and reconnect to the next gateway', 75, 'stopped for a restart (exit 75)'],
] as const) {
  test(`${signal}: clients are closed with ${code} "${reason}", the log says so, the process exits ${exit}, the WAL is checkpointed`, async () => {
    const gateway = await startGatewayProcess();
    const socket = await openRaw(gateway.url, gateway.token);
    resultOf(await socket.call('system.event', { text: `before ${signal}` }));
    const closed = socket.closed();
    assert.is(await gateway.stop(signal), exit);
    const { code: closeCode, reason: closeReason } = await closed;
    assert.is(closeCode, code);
    assert.is(closeReason, reason);
    assert.match(gateway.stderr(), `switchboard gateway: ${signal} received, ${logged} (again to force)\n`);
    assert.match(gateway.stderr(), `switchboard gateway: ${stopped}\n`);
    const wal = path.join(gateway.dataDir, 'switchboard.db-wal');
    assert.ok(!fs.existsSync(wal) || fs.statSync(wal).size === 0, 'the WAL was checkpointed into the database');

    const again = await startGatewayProcess({ dataDir: gateway.dataDir });
    const reader = await openRaw(again.url, again.token);
    const peeked = resultOf<{ events: { text: string }[] }>(await reader.call('session.peek', { sessionKey: 'main' }));
    assert.equal(peeked.events.map((event) => event.text), [`before ${signal}`]);
    assert.is(await again.stop(), 0);
  });
}

test('SIGTERM once no one reads stdout and stderr (EPIPE): still a graceful stop, exit 0, clients get 1001, the WAL is checkpointed', async () => {
  const gateway = await startGatewayProcess();
  const socket = await openRaw(gateway.url, gateway.token);
  resultOf(await socket.call('system.event', { text: 'before the reader left' }));
  // As `| head -1` does once it has the listening line: every later write fails with EPIPE.
  gateway.process.stdout!.destroy();
  gateway.process.stderr!.destroy();
  const closed = socket.closed();
  assert.is(await gateway.stop('SIGTERM'), 0, 'the "SIGTERM received" line cannot be written, and that is not a crash');
  assert.equal(await closed, { code: 1001, reason: 'gateway shutting down' });
  const wal = path.join(gateway.dataDir, 'switchboard.db-wal');
  assert.ok(!fs.existsSync(wal) || fs.statSync(wal).size === 0, 'the WAL was checkpointed into the database');
});

// POSIX shells only (npm on Windows runs cmd, which has no exec); processes found in /proc.
(fs.existsSync('/proc/self') ? test : test.skip)('`npm start`: a SIGTERM to npm (a supervisor, docker stop) stops the gateway gracefully; it was left running, orphaned, behind a shell that npm\'s signal killed (QA)', async () => {
  const dataDir = makeTempDir();
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const npm = spawn('npm', ['start', '--silent', '--', '--port', '0', '--data-dir', dataDir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  npm.stdout.on('data', (chunk: Buffer) => (output += chunk));
  npm.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  // The lock's owner, should the gateway outlive npm: cleaned up below, whatever the outcome.
  const gatewayPids = () =>
    fs.readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && commandLine(pid).includes(dataDir) && commandLine(pid).includes('gateway')).map(Number);
  try {
    await waitUntil(() => output.includes('switchboard gateway listening on'), 'the gateway listening', 30_000);
    npm.kill('SIGTERM');
    await exited;
    await waitUntil(() => gatewayPids().length === 0, 'no gateway left running', 10_000);
    assert.match(output, 'switchboard gateway: SIGTERM received, shutting down');
    assert.match(output, 'switchboard gateway: stopped');
  } finally {
    for (const pid of gatewayPids()) process.kill(pid, 'SIGKILL');
  }
});

// POSIX only: a process group signalled as a terminal's Ctrl-C signals it.
(process.platform === 'win32' ? test.skip : test)("`npm start`: one Ctrl-C (a SIGINT to npm's process group, which npm forwards to the gateway again) shuts it down gracefully, a client connected; it was taken for a second one that forces the stop, exit 1 (QA)", async () => {
  const dataDir = makeTempDir();
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  // detached: a process group of its own, as a shell gives a job in the foreground.
  const npm = spawn('npm', ['start', '--silent', '--', '--port', '0', '--data-dir', dataDir], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  npm.stdout.on('data', (chunk: Buffer) => (output += chunk));
  npm.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  try {
    await waitUntil(() => output.includes('switchboard gateway listening on'), 'the gateway listening', 30_000);
    const url = /listening on (ws:\/\/\S+)/.exec(output)![1]!;
    const client = await openRaw(url, fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim());
    process.kill(-npm.pid!, 'SIGINT');
    assert.is(await exited, 0, output);
    assert.is(output.match(/SIGINT received/g)?.length, 1, output);
    assert.match(output, 'switchboard gateway: SIGINT received, shutting down: clients are told 1001 (again to force)');
    assert.match(output, 'switchboard gateway: stopped');
    client.close();
  } finally {
    if (npm.exitCode === null) process.kill(-npm.pid!, 'SIGKILL');
  }
});

/** A process's arguments, space-separated ('' once it is gone): /proc, as `ps` may not be installed. */
function commandLine(pid: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

test('the log says when the gateway writes a new admin token (first start, a token file removed), and not when it reads the one there', async () => {
  const wrote = (dataDir: string) => `switchboard gateway: wrote a new admin token to ${path.join(dataDir, 'token')} (no token file was there): clients of this data dir read it there; others need it given\n`;
  const first = await startGatewayProcess();
  assert.match(first.stderr(), wrote(first.dataDir));
  assert.is(await first.stop(), 0);
  // Every line of the log starts with its time, in UTC (QA: a log appended to a file had none).
  const lines = first.rawStderr().trimEnd().split('\n');
  assert.ok(lines.length >= 3, first.rawStderr());
  for (const line of lines) {
    const stamp = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) switchboard gateway: /.exec(line);
    assert.ok(stamp, line);
    assert.ok(Math.abs(Date.parse(stamp![1]!) - Date.now()) < 10 * 60_000, `${stamp![1]} is the time of the line`);
  }
  const again = await startGatewayProcess({ dataDir: first.dataDir });
  assert.is(again.token, first.token);
  assert.not.match(again.stderr(), 'admin token');
  assert.is(await again.stop(), 0);
  fs.rmSync(path.join(first.dataDir, 'token'));
  const rotated = await startGatewayProcess({ dataDir: first.dataDir });
  assert.is.not(rotated.token, first.token);
  assert.match(rotated.stderr(), wrote(first.dataDir));
  assert.is(await rotated.stop(), 0);
});

test('a first start that cannot listen (its port taken) takes back the token it wrote: the start that succeeds writes one and says so (QA: the rotation never showed in the log)', async () => {
  const taken = await startGatewayProcess();
  const dataDir = makeTempDir();
  const refused = await runCli(['gateway', '--port', String(taken.port), '--data-dir', dataDir]);
  assert.is(refused.code, 1, refused.stderr);
  assert.not.ok(fs.existsSync(path.join(dataDir, 'token')), 'no token is left of the failed start');
  const started = await startGatewayProcess({ dataDir });
  assert.match(started.stderr(), `switchboard gateway: wrote a new admin token to ${path.join(dataDir, 'token')}`);
  assert.is(await started.stop(), 0);
  assert.is(await taken.stop(), 0);
});

test('a start that finds a token but no store (missing or empty: a restore gone wrong, a volume not mounted) warns that it starts with a new, empty one (QA: silent)', async () => {
  const first = await startGatewayProcess();
  const raw = await openRaw(first.url, first.token);
  resultOf(await raw.call('system.event', { text: 'kept', sessionKey: 'agent:lost:main' }));
  raw.close();
  assert.is(await first.stop(), 0);
  assert.not.match(first.stderr(), 'new, empty store', 'a first start writes both, and says so of the token');
  const database = path.join(first.dataDir, 'switchboard.db');
  const warning = `switchboard gateway: warning: started with a new, empty store: ${database} was missing or empty, though a token file is there; if a gateway ran on this data dir before (it was moved or restored), its events are not here: stop the gateway and put its switchboard.db (and switchboard.db-wal) back\n`;
  for (const lose of [() => fs.truncateSync(database, 0), () => fs.rmSync(database)]) {
    lose();
    const again = await startGatewayProcess({ dataDir: first.dataDir });
    assert.match(again.stderr(), warning);
    assert.is(await again.stop(), 0);
  }
  const restarted = await startGatewayProcess({ dataDir: first.dataDir });
  assert.not.match(restarted.stderr(), 'warning', 'a store that is there, empty or not, is no news');
  assert.is(await restarted.stop(), 0);
});

test('an admin token written by hand shorter than 32 characters is taken, with a warning; one of 32 is not warned of', async () => {
  for (const [token, warned] of [['short', true], ['x'.repeat(31), true], ['y'.repeat(32), false]] as const) {
    const dataDir = makeTempDir();
    fs.writeFileSync(path.join(dataDir, 'token'), `${token}\n`, { mode: 0o600 });
    const gateway = await startGatewayProcess({ dataDir });
    assert.is(gateway.token, token);
    const warning = `switchboard gateway: warning: the admin token in ${path.join(dataDir, 'token')} is ${token.length} characters long, short enough to be guessed by whoever can reach the gateway: write one of at least 32, or remove the file and restart to have a random one written\n`;
    assert.is(gateway.stderr().includes(warning), warned, gateway.stderr());
    const raw = await openRaw(gateway.url, gateway.token);
    resultOf(await raw.call('gateway.status', {}));
    raw.close();
    assert.is(await gateway.stop(), 0);
  }
});

test('the log says the gateway started, with its time, version, pid, URL, data dir and pending cap (soak QA: a log read after a kill -9 showed no start at all)', async () => {
  const gateway = await startGatewayProcess({ args: ['--max-pending', '300'] });
  const version = (JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  // Written before the listening line, but on another pipe: it may be read after it.
  await waitUntil(() => gateway.rawStderr().includes('started: '), 'the started line');
  assert.match(
    gateway.rawStderr(),
    new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z switchboard gateway: started: version ${version.replaceAll('.', '\\.')} \\(store schema ${SCHEMA_VERSION}\\), pid ${gateway.process.pid}, ${gateway.url}, data dir ${gateway.dataDir}, max pending 300 per session$`, 'm'),
  );
  assert.is(await gateway.stop(), 0);
});

test('a gateway listening where other machines may reach it says so, once listening; on loopback it does not', async () => {
  const exposed = await startGatewayProcess({ args: ['--host', '0.0.0.0'] });
  assert.match(
    exposed.stderr(),
    'switchboard gateway: warning: listening on 0.0.0.0, which other machines may reach: the token is all that guards the gateway, and nothing is encrypted; put a TLS proxy in front of it, or keep to 127.0.0.1\n',
  );
  assert.is(await exposed.stop(), 0);
  const local = await startGatewayProcess({ args: ['--host', 'localhost'] });
  assert.not.match(local.stderr(), 'other machines');
  assert.is(await local.stop(), 0);
});

test('listening on every address (0.0.0.0, ::), rpc.discover names the addresses to connect to, loopback ones last, no link-local one', async () => {
  const loopback = /^ws:\/\/(127\.|\[::1\])/;
  // `::` only where the machine has IPv6 at all: a CI machine without it cannot listen there.
  const ipv6 = Object.values(networkInterfaces()).some((entries) => entries?.some((entry) => entry.family === 'IPv6'));
  for (const host of ipv6 ? ['0.0.0.0', '::'] : ['0.0.0.0']) {
    const gateway = await startGatewayProcess({ args: ['--host', host] });
    const port = new URL(gateway.url).port;
    const socket = await openRaw(`ws://127.0.0.1:${port}`, gateway.token);
    const { servers } = resultOf<{ servers: Array<{ url: string }> }>(await socket.call('rpc.discover', {}));
    const urls = servers.map((server) => server.url);
    assert.ok(urls.includes(`ws://127.0.0.1:${port}`), urls.join(' '));
    assert.ok(urls.every((url) => url.endsWith(`:${port}`) && !/0\.0\.0\.0|\[::\]|\[fe[89ab]/i.test(url)), urls.join(' '));
    const firstLoopback = urls.findIndex((url) => loopback.test(url));
    assert.ok(urls.slice(firstLoopback).every((url) => loopback.test(url)), `loopback last: ${urls.join(' ')}`);
    socket.close();
    assert.is(await gateway.stop(), 0);
  }
});

test('a second SIGINT, SIGTERM or SIGHUP while the shutdown waits stops the gateway at once, exit 1, and says so; what was answered is stored', async () => {
  for (const [first, signal] of [['SIGINT', 'SIGINT'], ['SIGTERM', 'SIGTERM'], ['SIGHUP', 'SIGHUP'], ['SIGTERM', 'SIGHUP']] as const) {
    const gateway = await startGatewayProcess();
    const socket = await openRaw(gateway.url, gateway.token);
    resultOf(await socket.call('system.event', { text: `before ${first} then ${signal}` }));
    // A peer that never answers the close handshake: the shutdown waits for it (2 s at most).
    const silent = net.connect(Number(new URL(gateway.url).port), '127.0.0.1');
    silent.on('error', () => undefined);
    silent.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nAuthorization: Bearer ${gateway.token}\r\n\r\n`,
    );
    await new Promise((resolve) => silent.once('data', resolve));
    silent.pause();
    gateway.process.kill(first);
    await waitUntil(() => gateway.stderr().includes(`${first} received, shutting down`), 'the first signal logged');
    // Under npm (which `npm test` passes on), a second SIGINT that soon is the same Ctrl-C forwarded (see the `npm start` test); a person's comes later.
    if (signal === 'SIGINT') await sleep(SIGINT_ECHO_MS);
    const exited = gateway.stop(signal);
    assert.is(await exited, 1);
    assert.match(
      gateway.stderr(),
      `switchboard gateway: ${signal} received while shutting down: stopped at once (exit 1), without waiting for the connections to close; every event answered is stored\n`,
    );
    silent.destroy();
    const again = await startGatewayProcess({ dataDir: gateway.dataDir });
    const reader = await openRaw(again.url, again.token);
    const peeked = resultOf<{ events: { text: string }[] }>(await reader.call('session.peek', { sessionKey: 'main' }));
    assert.equal(peeked.events.map((event) => event.text), [`before ${first} then ${signal}`]);
    assert.is(await again.stop(), 0);
  }
});

test.run();
