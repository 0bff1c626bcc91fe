/**
 * `switchboard gateway` against a data dir it cannot use: a garbage or corrupt database, a path
 * that is (or runs through) a regular file, a data dir another gateway holds, and a disk that fills
 * up while the gateway runs. Each must end in a clear message naming the file or directory and
 * the fix, a non-zero exit (1: the gateway could not start), and nothing of the user's data
 * touched; a full disk must refuse events with STORE_UNAVAILABLE, store none of them, and lose
 * none of those it answered.
 */
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { migrate, SCHEMA_VERSION } from '../../src/store/migrations.js';
import {
  cleanup,
  errorOf,
  ISO_RE,
  makeTempDir,
  openCallSocket,
  openPeer,
  openRaw,
  resultOf,
  runCli,
  startGatewayProcess,
  startGatewayProcessWithFileLimit,
  waitUntil,
  type CliResult,
  type GatewayProcess,
} from '../helpers/gateway.js';
import { INGRESSES, refusalVia } from '../helpers/http.js';

const test = suite('e2e: unusable data dirs, a second gateway, a full disk');

test.after(async () => {
  await cleanup();
});

const DB = 'switchboard.db';

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function gateway(dataDir: string): Promise<CliResult> {
  return runCli(['gateway', '--port', '0', '--data-dir', dataDir]);
}

/** Refused to start: exit 1, nothing on stdout (no "listening" line), one message on stderr. */
function assertRefused(result: CliResult, what: string): void {
  assert.is(result.code, 1, `exit code for ${what}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  assert.not.match(result.stdout, /listening/, `${what}: the gateway must not report listening`);
  assert.ok(result.stderr.trim().length > 0, `${what}: a message on stderr`);
  assert.not.match(result.stderr, /\n\s+at /, `${what}: a message, not a stack trace:\n${result.stderr}`);
}

/** A database the gateway made and closed cleanly: a real switchboard.db to damage. */
async function realDatabase(): Promise<string> {
  const gw = await startGatewayProcess();
  const raw = await openRaw(gw.url, gw.token);
  for (let i = 0; i < 20; i++) resultOf(await raw.call('system.event', { text: `real ${i} ${'x'.repeat(500)}`, sessionKey: 'agent:real:main' }));
  raw.close();
  assert.is(await gw.stop('SIGTERM'), 0);
  return path.join(gw.dataDir, DB);
}

// ---------------------------------------------------------------- a database that is not one

test('a garbage switchboard.db: exit 1, the message names the file and the fix, the file is untouched', async () => {
  const cases: [string, Buffer][] = [
    ['random bytes', randomBytes(8192)],
    ['a SQLite header, then garbage', Buffer.concat([Buffer.from('SQLite format 3\0'), randomBytes(4000)])],
    ['text', Buffer.from('this is not a database\n'.repeat(200))],
  ];
  for (const [what, bytes] of cases) {
    const dir = makeTempDir();
    const file = path.join(dir, DB);
    fs.writeFileSync(file, bytes);
    const before = sha256(file);
    const result = await gateway(dir);
    assertRefused(result, what);
    assert.ok(result.stderr.includes(file), `${what}: the message names ${file}: ${result.stderr}`);
    assert.match(result.stderr, /not a switchboard database|corrupt/i, what);
    assert.match(result.stderr, /backup|move it aside/i, `${what}: the message names the fix`);
    assert.is(sha256(file), before, `${what}: the file is left untouched`);
    assert.not.ok(fs.existsSync(`${file}-wal`) || fs.existsSync(`${file}-journal`), `${what}: no journal created beside it`);
    // A restored backup that cannot be used leaves no admin token that no log line told of (QA).
    assert.not.ok(fs.existsSync(path.join(dir, 'token')), `${what}: no token written`);
  }
});

test('a switchboard.db with its later pages corrupted: exit 1, the message names the file and says it is corrupt', async () => {
  const original = await realDatabase();
  const dir = makeTempDir();
  const file = path.join(dir, DB);
  const bytes = fs.readFileSync(original);
  assert.ok(bytes.length > 3 * 4096, `a database of several pages (${bytes.length} bytes)`);
  // Page 1 (header and schema) stays intact, so SQLite opens it; every page after it is damaged.
  for (let i = 4096 + 100; i < bytes.length; i += 7) bytes[i] = 0xab;
  fs.writeFileSync(file, bytes);
  fs.writeFileSync(path.join(dir, 'token'), fs.readFileSync(path.join(path.dirname(original), 'token')));
  const before = sha256(file);

  const result = await gateway(dir);
  assertRefused(result, 'corrupt pages');
  assert.ok(result.stderr.includes(file), `the message names ${file}: ${result.stderr}`);
  assert.match(result.stderr, /corrupt|malformed/i);
  // A corrupt file is not a full disk: the fix is a backup or moving the file aside.
  assert.not.match(result.stderr, /free disk space/i, `the message blames the disk:\n${result.stderr}`);
  assert.is(sha256(file), before, 'the file is left untouched');
});

test('switchboard.db is a directory: exit 1, the message names it', async () => {
  const dir = makeTempDir();
  const file = path.join(dir, DB);
  fs.mkdirSync(file);
  const result = await gateway(dir);
  assertRefused(result, 'a directory');
  assert.ok(result.stderr.includes(file), `the message names ${file}: ${result.stderr}`);
  assert.ok(fs.statSync(file).isDirectory(), 'left as it was');
});

// ---------------------------------------------------------------- a data dir that cannot be one

test('a data dir under a regular file (<file>/sub): exit 1, the message names the path and says it is not a directory', async () => {
  const dir = makeTempDir();
  const file = path.join(dir, 'plain-file');
  fs.writeFileSync(file, 'keep me\n');
  const dataDir = path.join(file, 'sub');
  const result = await gateway(dataDir);
  assertRefused(result, '<file>/sub');
  assert.ok(result.stderr.includes(file), `the message names the path: ${result.stderr}`);
  assert.match(result.stderr, /not a directory/i);
  assert.is(fs.readFileSync(file, 'utf8'), 'keep me\n', 'the file is untouched');
});

test('a data dir that is a regular file: exit 1, the message names it and says it is not a directory', async () => {
  const dir = makeTempDir();
  const file = path.join(dir, 'plain-file');
  fs.writeFileSync(file, 'keep me\n');
  const result = await gateway(file);
  assertRefused(result, 'a regular file');
  assert.ok(result.stderr.includes(file), `the message names the path: ${result.stderr}`);
  // "EEXIST: file already exists, mkdir" is what mkdir says; the user needs to hear what is wrong.
  assert.match(result.stderr, /not a directory/i, `the message says what is wrong:\n${result.stderr}`);
  assert.is(fs.readFileSync(file, 'utf8'), 'keep me\n', 'the file is untouched');
});

// Node's recursive mkdir spins at 100% CPU forever under /proc (ENOENT where the parent exists).
(fs.existsSync('/proc/self') ? test : test.skip)('a data dir under /proc: exit 1 at once, naming the dir and the fix', async () => {
  for (const dataDir of ['/proc/switchboard-test', '/proc/switchboard-test/nested/data']) {
    const result = await gateway(dataDir);
    assertRefused(result, dataDir);
    assert.ok(result.stderr.includes(`data dir ${dataDir} cannot be created`), result.stderr);
    assert.match(result.stderr, /pass --data-dir or SWITCHBOARD_DATA_DIR a directory on a file system that takes new ones/);
  }
});

test('an empty token file, or one holding more than a token: the gateway exits 1 and the CLI 3, each naming the file and the fix; the file is left alone', async () => {
  for (const [content, problem] of [
    ['', 'is empty'],
    ['sba_abc\nnote to self\n', 'holds a line break, not a token alone, so no client could send it'],
  ]) {
    const dataDir = makeTempDir();
    const token = path.join(dataDir, 'token');
    fs.writeFileSync(token, content!);
    const result = await gateway(dataDir);
    assertRefused(result, JSON.stringify(content));
    assert.ok(result.stderr.includes(`token file ${token} ${problem}: delete it to have the gateway write a new admin token`), result.stderr);
    assert.not.match(result.stderr, /EEXIST/);
    for (const command of [['status'], ['session', 'watch', '--agent', 'main']]) {
      const cli = await runCli([...command, '--data-dir', dataDir]);
      assert.is(cli.code, 3, cli.stderr);
      assert.ok(cli.stderr.includes(`token file ${token} ${problem}`), cli.stderr);
      assert.match(cli.stderr, /or pass --token \/ SWITCHBOARD_TOKEN\n$/);
    }
    assert.is(fs.readFileSync(token, 'utf8'), content, 'the token file is left as it was');
    assert.not.ok(fs.existsSync(path.join(dataDir, DB)), 'no database was created');
  }
});

(process.platform === 'win32' ? test.skip : test)('in a data dir made beforehand (0755), under umask 000: the token, the database and its WAL are 0600', async () => {
  const dataDir = path.join(makeTempDir(), 'made-by-hand');
  fs.mkdirSync(dataDir, { mode: 0o755 });
  const previous = process.umask(0);
  let gw;
  try {
    // The gateway inherits this process's umask.
    gw = await startGatewayProcess({ dataDir });
  } finally {
    process.umask(previous);
  }
  const raw = await openRaw(gw.url, gw.token);
  resultOf(await raw.call('system.event', { text: 'not for other users', sessionKey: 'agent:modes:main' }));
  raw.close();
  for (const file of ['token', DB, `${DB}-wal`]) {
    assert.is(fs.statSync(path.join(dataDir, file)).mode & 0o777, 0o600, file);
  }
  assert.is(fs.statSync(dataDir).mode & 0o777, 0o755, "the dir's mode is its maker's choice");
  assert.is(await gw.stop('SIGTERM'), 0);
});

test('a store of an older schema is migrated, and the log says so, with the schema each start runs: an older switchboard can no longer open it (operator QA: two builds, both 0.1.0, and no word of the one-way step)', async () => {
  const dataDir = makeTempDir();
  const file = path.join(dataDir, DB);
  const db = new Database(file);
  migrate(db, file, SCHEMA_VERSION - 1);
  db.close();
  const gw = await startGatewayProcess({ dataDir });
  assert.match(gw.stderr(), `switchboard gateway: migrated ${file} from store schema ${SCHEMA_VERSION - 1} to ${SCHEMA_VERSION}: a switchboard that knows only schema ${SCHEMA_VERSION - 1} can no longer open it\n`);
  await waitUntil(() => gw.stderr().includes(`(store schema ${SCHEMA_VERSION})`), 'the started line');
  assert.is(await gw.stop('SIGTERM'), 0);
  const again = await startGatewayProcess({ dataDir });
  assert.not.match(again.stderr(), 'migrated');
  assert.is(await again.stop('SIGTERM'), 0);
});

(process.platform === 'win32' ? test.skip : test)('files other users can read (an older version\'s, a restored backup) are left as they are, with a warning that says how to fix them', async () => {
  const first = await startGatewayProcess();
  assert.is(await first.stop('SIGTERM'), 0);
  const token = path.join(first.dataDir, 'token');
  fs.chmodSync(token, 0o644);
  const gw = await startGatewayProcess({ dataDir: first.dataDir });
  assert.ok(
    gw.stderr().includes(`warning: ${token} can be read by other users (mode 0644): \`chmod 600 ${token}\``),
    gw.stderr(),
  );
  assert.not.ok(gw.stderr().includes(DB), 'the database, still 0600, is not named');
  assert.is(fs.statSync(token).mode & 0o777, 0o644, "an existing file's mode is its owner's choice");
  assert.is(await gw.stop('SIGTERM'), 0);
});

(process.platform === 'win32' ? test.skip : test)('a data dir other users can write in is used, with a warning: they could replace the token or the database', async () => {
  const dataDir = makeTempDir();
  fs.chmodSync(dataDir, 0o777);
  const gw = await startGatewayProcess({ dataDir });
  assert.ok(
    gw.stderr().includes(`warning: the data dir ${dataDir} can be written by other users (mode 0777), who could replace the token or the database: use a dir of your own, mode 700`),
    gw.stderr(),
  );
  assert.is(await gw.stop('SIGTERM'), 0);
  // Sticky, as /tmp is: others may add files there, but not replace these.
  fs.chmodSync(dataDir, 0o1777);
  const again = await startGatewayProcess({ dataDir });
  assert.not.ok(again.stderr().includes('warning'), again.stderr());
  assert.is(await again.stop('SIGTERM'), 0);
});

// chmod cannot lock root out (these tests usually run as root in CI containers): there the
// <file>/sub case above stands in for an unwritable data dir.
const isRoot = process.getuid?.() === 0;
(isRoot ? test.skip : test)('an unreadable data dir (chmod 000, non-root only): exit 1, the message names it', async () => {
  const dataDir = makeTempDir();
  fs.chmodSync(dataDir, 0o000);
  try {
    const result = await gateway(dataDir);
    assertRefused(result, 'chmod 000');
    assert.ok(result.stderr.includes(dataDir), `the message names ${dataDir}: ${result.stderr}`);
    assert.match(result.stderr, /permission/i);
  } finally {
    fs.chmodSync(dataDir, 0o700);
  }
});

// ---------------------------------------------------------------- a second gateway

test('a second gateway on the same data dir: exit 1 naming the dir; the first keeps running with its data and token', async () => {
  const first = await startGatewayProcess();
  const raw = await openRaw(first.url, first.token);
  const routed = resultOf<{ eventId: string }>(await raw.call('system.event', { text: 'before the second', sessionKey: 'agent:two:main' }));
  const tokenBefore = fs.readFileSync(path.join(first.dataDir, 'token'), 'utf8');

  const second = await gateway(first.dataDir);
  assertRefused(second, 'a second gateway');
  assert.match(second.stderr, /in use by another switchboard gateway/);
  assert.ok(second.stderr.includes(first.dataDir), `the message names the data dir: ${second.stderr}`);

  assert.is(first.process.exitCode, null, 'the first gateway still runs');
  assert.is(fs.readFileSync(path.join(first.dataDir, 'token'), 'utf8'), tokenBefore, 'the token is unchanged');
  const peek = resultOf<{ events: { eventId: string }[] }>(await raw.call('session.peek', { sessionKey: 'agent:two:main' }));
  assert.equal(
    peek.events.map((event) => event.eventId),
    [routed.eventId],
  );
  resultOf(await raw.call('system.event', { text: 'after the second', sessionKey: 'agent:two:main' }));
  raw.close();
  assert.is(await first.stop('SIGTERM'), 0);
});

// ---------------------------------------------------------------- a lower cap

test('started with a lower --max-pending, the gateway drops the excess of each session once listening, oldest first, and says so; one that cannot listen drops nothing', async () => {
  const first = await startGatewayProcess({ args: ['--max-pending', '50'] });
  const raw = await openRaw(first.url, first.token);
  for (let i = 1; i <= 30; i++) resultOf(await raw.call('system.event', { text: `event ${i}`, sessionKey: 'agent:cap:main' }));
  raw.close();
  assert.is(await first.stop('SIGTERM'), 0);

  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  const port = (busy.address() as net.AddressInfo).port;
  const failed = await runCli(['gateway', '--port', String(port), '--max-pending', '10', '--data-dir', first.dataDir]);
  busy.close();
  assertRefused(failed, 'a port in use');
  assert.not.match(failed.stderr, /dropped/);

  const lowered = await startGatewayProcess({ dataDir: first.dataDir, args: ['--max-pending', '10'] });
  const line = 'switchboard gateway: dropped 20 events of 1 session past --max-pending 10, the oldest (event.trace shows each as dropped)\n';
  await waitUntil(() => lowered.stderr().includes(line), 'the line that says what was dropped');
  const reader = await openRaw(lowered.url, lowered.token);
  const peek = resultOf<{ events: { seq: number }[] }>(await reader.call('session.peek', { sessionKey: 'agent:cap:main' }));
  assert.equal(peek.events.map((event) => event.seq), Array.from({ length: 10 }, (_, i) => 21 + i), 'the newest ten: the failed start dropped none before it');
  reader.close();
  assert.is(await lowered.stop('SIGTERM'), 0);
});

// ---------------------------------------------------------------- a full disk

test('a full disk (file-size limit): events are refused with STORE_UNAVAILABLE, none of them stored, none answered lost; what is stored can still be read', async () => {
  // 2048 blocks of 512 bytes: about 1 MiB per file, reached after some 15 events of 60 KB.
  const gw = await startGatewayProcessWithFileLimit({ fileSizeBlocks: 2048 });
  const socket = await openCallSocket(gw.url, gw.token);
  const key = 'agent:full:main';
  const answered = new Map<string, string>();
  const refused: string[] = [];
  for (let i = 0; i < 60; i++) {
    const text = `full ${i} ${'x'.repeat(60_000)}`;
    const outcome = await socket.call('system.event', { text, sessionKey: key });
    assert.is(outcome.kind, 'answered', `event ${i} got an answer (the gateway did not die)\nstderr: ${gw.stderr()}`);
    if (outcome.kind !== 'answered') return;
    const { response } = outcome;
    if (response.error) {
      assert.is(response.error.code, 1002, `refused as STORE_UNAVAILABLE: ${JSON.stringify(response.error).slice(0, 500)}`);
      assert.is(response.error.data?.name, 'STORE_UNAVAILABLE');
      assert.match(response.error.message, /the call changed nothing/);
      refused.push(text);
    } else {
      answered.set(text, resultOf<{ eventId: string }>(response).eventId);
    }
  }
  assert.ok(answered.size > 0, 'events were stored before the disk filled');
  assert.ok(refused.length > 0, 'the disk filled up');
  // What is stored can still be read while the disk is full: status, the queue, an event's trace.
  const readable = async (method: string, params: unknown) => {
    const outcome = await socket.call(method, params);
    assert.is(outcome.kind, 'answered', `${method} answered once the disk is full`);
    return outcome.kind === 'answered' ? resultOf(outcome.response) : undefined;
  };
  const status = (await readable('gateway.status', {})) as { pending: number };
  assert.is(status.pending, answered.size);
  const queued = (await readable('session.peek', { sessionKey: key, limit: 1000 })) as { events: { text: string }[] };
  assert.equal(queued.events.map((event) => event.text), [...answered.keys()]);
  const [firstId] = answered.values();
  const traced = (await readable('event.trace', { eventId: firstId })) as { steps: { step: string }[] };
  assert.equal(traced.steps.map((step) => step.step), ['accepted', 'stored']);
  assert.is(gw.process.exitCode, null, 'the gateway did not exit');
  // Its log says so, once: the calls after the first are counted in a line a minute later, or
  // just before the line that says writes go through again (the idle checkpoint may give the WAL
  // its room back under the file-size limit).
  const lines = gw.stderr().split('\n');
  const logged = lines.filter((line) => line.startsWith('switchboard gateway: store unavailable: '));
  assert.match(logged[0]!, /^switchboard gateway: store unavailable: a call answered STORE_UNAVAILABLE \(the event store failed \(SQLITE_/);
  for (const [i, line] of lines.entries()) {
    if (line.startsWith('switchboard gateway: store writes go through again')) assert.match(lines[i - 1]!, /^switchboard gateway: store unavailable: /, gw.stderr());
  }
  const recoveries = lines.filter((line) => line.startsWith('switchboard gateway: store writes go through again')).length;
  assert.ok(logged.length <= 2 * recoveries + 1, gw.stderr());
  socket.close();

  // The disk frees up (no limit after the restart): everything answered is there, nothing refused is.
  await gw.kill9();
  const after = await startGatewayProcess({ dataDir: gw.dataDir });
  const raw = await openRaw(after.url, after.token);
  const peek = resultOf<{ events: { eventId: string; text: string }[] }>(await raw.call('session.peek', { sessionKey: key, limit: 1000 }));
  const stored = new Map(peek.events.map((event) => [event.text, event.eventId]));
  assert.is(peek.events.length, stored.size, 'no text stored twice');
  for (const [text, eventId] of answered) assert.is(stored.get(text), eventId, `${text.slice(0, 12)}… was answered, so it is stored`);
  for (const text of refused) assert.not.ok(stored.has(text), `${text.slice(0, 12)}… was refused, so it is not stored`);
  assert.is(stored.size, answered.size);
  // And the store takes new events again.
  resultOf(await raw.call('system.event', { text: 'disk has room again', sessionKey: key }));
  raw.close();
  assert.is(await after.stop('SIGTERM'), 0);
});

test('less free disk than --min-free-disk: system.event is refused with STORE_FULL through every ingress, nothing stored; what is stored is still delivered, acked and traced; a repeat of a stored event is answered as stored; status and the log say so', async () => {
  const key = 'agent:disk:main';
  const roomy = await startGatewayProcess();
  const roomyRaw = await openRaw(roomy.url, roomy.token);
  const first = resultOf<{ eventId: string }>(await roomyRaw.call('system.event', { text: 'stored with room', sessionKey: key, idempotencyKey: 'job-1' }));
  roomyRaw.close();
  assert.is(await roomy.stop('SIGTERM'), 0);

  // 1 TiB kept free: more than any disk the tests run on has.
  const keptMiB = 1_048_576;
  const gw = await startGatewayProcess({ dataDir: roomy.dataDir, args: ['--min-free-disk', String(keptMiB)] });
  assert.not.match(roomy.stderr(), 'disk', 'a disk with room is not mentioned');
  assert.match(
    gw.stderr(),
    /^switchboard gateway: warning: the data dir's disk has \d+\.\d MiB free, under the 1048576\.0 MiB kept \(--min-free-disk\): new events are refused with STORE_FULL until there is room$/m,
    'a start on a disk short of room says so',
  );
  const peer = await openPeer(gw.url, gw.token);
  for (const ingress of INGRESSES) {
    const refusal = await refusalVia(gw, peer, ingress, { text: `refused via ${ingress}`, sessionKey: key }, 507, gw.token);
    assert.is(refusal.code, 1027, ingress);
    assert.match(refusal.message, /^the event was not stored: the gateway's disk has \d+\.\d MiB free, less than the 1048576\.0 MiB it keeps for acks and traces \(--min-free-disk\)/, ingress);
  }
  const { data } = errorOf(await peer.call('system.event', { text: 'refused again', sessionKey: key }));
  assert.equal(Object.keys(data ?? {}).sort(), ['availableBytes', 'minFreeBytes', 'name'], 'what the error table says, and no more');
  assert.is(data?.name, 'STORE_FULL');
  assert.is(data?.minFreeBytes, keptMiB * 1_048_576);
  assert.ok(typeof data?.availableBytes === 'number' && data.availableBytes < keptMiB * 1_048_576, JSON.stringify(data));

  // The event stored before is answered as stored, not refused: it is on disk.
  const repeat = resultOf<{ eventId: string; duplicate: boolean }>(await peer.call('system.event', { text: 'stored with room', sessionKey: key, idempotencyKey: 'job-1' }));
  assert.equal([repeat.eventId, repeat.duplicate], [first.eventId, true]);

  // What is stored goes on: it is pushed, acked and traced, in the room kept.
  resultOf(await peer.call('session.subscribe', { sessionKey: key, after: 0 }));
  const [pushed] = await peer.waitFor(() => {
    const events = peer.notifications<{ event: { eventId: string; seq: number } }>('session.event');
    return events.length > 0 ? events : undefined;
  }, 'the stored event pushed');
  assert.is(pushed!.params.event.eventId, first.eventId);
  assert.is(peer.notifications('session.event').length, 1, 'only the event stored with room: none of the refused ones');
  resultOf(await peer.call('session.ack', { sessionKey: key, seq: pushed!.params.event.seq }));
  const traced = resultOf<{ steps: { step: string }[] }>(await peer.call('event.trace', { eventId: first.eventId }));
  assert.ok(traced.steps.some((step) => step.step === 'acked'), JSON.stringify(traced.steps));

  const status = await runCli(['status', '--url', gw.url, '--token', gw.token]);
  assert.is(status.code, 0, status.stderr);
  assert.match(status.stdout, /\n {2}disk: {8}\d+\.\d MiB free, 1048576\.0 MiB kept free: NEW EVENTS REFUSED \(STORE_FULL\) until there is room\n {2}writes: {6}ok\n?$/);
  const statusJson = JSON.parse((await runCli(['status', '--json', '--url', gw.url, '--token', gw.token])).stdout) as {
    freeDiskBytes: number;
    minFreeDiskBytes: number;
    newEventsRefused: boolean;
  };
  assert.is(statusJson.minFreeDiskBytes, keptMiB * 1_048_576);
  assert.is(statusJson.newEventsRefused, true);
  assert.ok(Number.isInteger(statusJson.freeDiskBytes) && statusJson.freeDiskBytes < statusJson.minFreeDiskBytes);

  // Once at once; the refusals after are counted in a line a minute later.
  const logged = gw.stderr().split('\n').filter((line) => line.startsWith('switchboard gateway: disk full: '));
  assert.equal(logged.length, 1, gw.stderr());
  assert.match(logged[0]!, /^switchboard gateway: disk full: refused an event with STORE_FULL: the data dir's disk has \d+\.\d MiB free, under the 1048576\.0 MiB kept \(--min-free-disk\); free some space there$/);
  peer.close();
  assert.is(await gw.stop('SIGTERM'), 0);
  assert.match(gw.stderr(), /disk full: refused \d+ events with STORE_FULL/, 'the count held back is logged at the stop');
});

test('a shutdown that cannot fold the write-ahead log back into the database says so, and keeps it: nothing answered is lost (QA: "stopped" alone, and a database malformed without its WAL)', async () => {
  const key = 'agent:fold:main';
  const text = (i: number) => `fold ${i} ${'x'.repeat(60_000)}`;
  const publishAll = async (gw: GatewayProcess, from: number, to: number) => {
    const raw = await openRaw(gw.url, gw.token);
    for (let i = from; i < to; i++) resultOf(await raw.call('system.event', { text: text(i), sessionKey: key }));
    raw.close();
  };
  const first = await startGatewayProcess();
  await publishAll(first, 0, 12);
  assert.is(await first.stop('SIGTERM'), 0);
  assert.not.ok(fs.existsSync(path.join(first.dataDir, `${DB}-wal`)), 'a clean stop folds the WAL back');
  // Room for the WAL's new pages, not for the database to take them as well: the checkpoint fails.
  const limited = await startGatewayProcessWithFileLimit({ dataDir: first.dataDir, fileSizeBlocks: Math.floor(fs.statSync(path.join(first.dataDir, DB)).size / 512) + 300 });
  await publishAll(limited, 12, 17);
  assert.is(await limited.stop('SIGTERM'), 0);
  const file = path.join(first.dataDir, DB);
  assert.match(
    limited.stderr(),
    `switchboard gateway: warning: the write-ahead log could not be folded back into ${file} (`,
  );
  assert.match(limited.stderr(), `): ${file}-wal holds the latest events; keep it beside the database, and copy or move the two together (the next start replays it)\n`);
  assert.ok(fs.statSync(`${file}-wal`).size > 0, 'the WAL is kept');
  const after = await startGatewayProcess({ dataDir: first.dataDir });
  const raw = await openRaw(after.url, after.token);
  // Two pages: one answer carries at most 768 KiB of events.
  const events: Array<{ seq: number; text: string }> = [];
  for (let more = true; more; ) {
    const page = resultOf<{ events: Array<{ seq: number; text: string }>; more: boolean }>(
      await raw.call('session.peek', { sessionKey: key, after: events.at(-1)?.seq ?? 0 }),
    );
    events.push(...page.events);
    more = page.more;
  }
  // Compared by their heads: a failing assertion would print every 60 KB text.
  const head = (event: { text: string }) => event.text.slice(0, event.text.indexOf(' x'));
  assert.equal(events.map(head), Array.from({ length: 17 }, (_, i) => `fold ${i}`));
  assert.ok(events.every((event, i) => event.text === text(i)), 'the texts are whole');
  raw.close();
  assert.is(await after.stop('SIGTERM'), 0);
  assert.not.match(after.stderr(), 'warning', 'with room again, the stop folds it back');
});

// Windows opens the database without delete sharing: it cannot be renamed while open.
(process.platform === 'win32' ? test.skip : test)('a database removed or replaced under a running gateway: every write after is refused with STORE_UNAVAILABLE, not answered "stored" into a file no start opens again; reads answer; put back, it takes writes again (QA: rm -rf of the data dir went unnoticed)', async () => {
  const gw = await startGatewayProcess();
  const raw = await openRaw(gw.url, gw.token);
  const key = 'agent:moved:main';
  resultOf(await raw.call('system.event', { text: 'before', sessionKey: key }));
  const file = path.join(gw.dataDir, DB);
  // Checked before every commit: the first write after is refused, none slips through.
  const refusedWith = async (what: string) => {
    const { error } = await raw.call('system.event', { text: 'while moved', sessionKey: key });
    assert.ok(error, `a write refused once the file is ${what}`);
    return error!;
  };
  fs.renameSync(file, `${file}.aside`);
  const removed = await refusedWith('removed');
  assert.is(removed.code, 1002);
  assert.match(removed.message, `the event store failed (SQLITE_READONLY_DBMOVED: ${file} was removed while the gateway ran); the call changed nothing: copy out first what the gateway still holds open, with \`switchboard backup <file>\``);
  // What the open file holds can still be read (and backed up) while writes are refused.
  const peek = resultOf<{ events: { text: string }[] }>(await raw.call('session.peek', { sessionKey: key }));
  assert.equal(peek.events.map((event) => event.text), ['before']);
  assert.match(gw.stderr(), `switchboard gateway: store unavailable: a call answered STORE_UNAVAILABLE (the event store failed (SQLITE_READONLY_DBMOVED: ${file} was removed`);
  const copy = path.join(makeTempDir(), 'saved.db');
  resultOf(await raw.call('gateway.backup', { path: copy }));
  assert.ok(fs.statSync(copy).size > 0, 'the open file is copied out');
  // Status says writes fail, since when and why, while /healthz stays ok (QA: both looked healthy).
  const failing = resultOf<{ writesFailingSince: string | null; writeFailure: string | null }>(await raw.call('gateway.status', {}));
  assert.match(String(failing.writesFailingSince), ISO_RE);
  assert.is(failing.writeFailure, removed.message);
  const human = await runCli(['status', '--url', gw.url, '--token', gw.token]);
  assert.ok(human.stdout.includes(`\n  writes:      FAILING since ${failing.writesFailingSince}: ${removed.message}`), human.stdout);
  // Put back where it was: writes go through again.
  fs.renameSync(`${file}.aside`, file);
  resultOf(await raw.call('system.event', { text: 'after', sessionKey: key }));
  const healed = resultOf<{ writesFailingSince: string | null; writeFailure: string | null }>(await raw.call('gateway.status', {}));
  assert.equal([healed.writesFailingSince, healed.writeFailure], [null, null]);
  assert.match(gw.stderr(), `switchboard gateway: store writes go through again, after failing since ${failing.writesFailingSince}\n`);
  assert.match((await runCli(['status', '--url', gw.url, '--token', gw.token])).stdout, /\n {2}writes: {6}ok\n/);
  // Replaced by another file (a copy is not the file the gateway holds): refused until a restart.
  fs.copyFileSync(file, `${file}.copy`);
  fs.renameSync(`${file}.copy`, file);
  assert.match((await refusedWith('replaced')).message, `${file} was replaced while the gateway ran`);
  assert.equal(resultOf<{ events: { text: string }[] }>(await raw.call('session.peek', { sessionKey: key })).events.map((event) => event.text), ['before', 'after']);
  raw.close();
  assert.is(await gw.stop('SIGTERM'), 0);
});

test.run();
