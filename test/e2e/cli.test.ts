/**
 * The real CLI binary against a real gateway process: what it prints, where, and its exit codes
 * (0 ok, 1 gateway error, 2 usage, 3 unreachable / token refused / timeout).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeServer } from '../helpers/fake-server.js';
import { cleanup, CLI_PATH, ISO_RE, makeTempDir, runCli, spawnCli, startGatewayProcess, UUID_RE, waitUntil, type CliResult, type GatewayProcess } from '../helpers/gateway.js';
import { MAX_TEXT_BYTES } from '../../src/protocol/constants.js';
import { SESSION_KEY_FORMS } from '../../src/protocol/session-key.js';

interface Context {
  gw: GatewayProcess;
}

const PACKAGE_VERSION = (JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const test = suite<Context>('e2e: the switchboard CLI binary', {} as Context);

/** A self-signed certificate for 127.0.0.1 and its key, made for these tests only (valid until 2126). */
const TLS_CERT = fileURLToPath(new URL('../../../test/fixtures/self-signed-cert.pem', import.meta.url));
const TLS_KEY = fileURLToPath(new URL('../../../test/fixtures/self-signed-key.pem', import.meta.url));

test.before(async (context) => {
  context.gw = await startGatewayProcess();
});

test.after(async () => {
  await cleanup();
});

/** The data dir's socket and token: how a local user runs the CLI next to a gateway. */
function conn(gw: GatewayProcess): string[] {
  return ['--data-dir', gw.dataDir];
}

function explain(result: CliResult): string {
  return `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}

function assertExit(result: CliResult, code: number): void {
  assert.is(result.code, code, explain(result));
}

/** Exactly one JSON value on stdout, a newline after it, nothing else. */
function parseJsonOut<T>(result: CliResult): T {
  assertExit(result, 0);
  assert.is(result.stderr, '', 'nothing on stderr');
  assert.ok(result.stdout.endsWith('}\n'), `stdout ends with one object and a newline: ${JSON.stringify(result.stdout.slice(-50))}`);
  assert.is(result.stdout.trimEnd().split('\n').length, 1, 'one line on stdout');
  const value = JSON.parse(result.stdout) as T;
  assert.type(value, 'object');
  assert.not.ok(Array.isArray(value));
  return value;
}

let unique = 0;
function freshKey(prefix = 'cli'): string {
  unique++;
  return `agent:${prefix}${unique}:main`;
}

interface RoutingJson {
  eventId: string;
  sessionKey: string;
  requestedSessionKey: string | null;
  fallback: { reason: string; message: string } | null;
  queue: { status: string; seq: number; depth: number };
  wake: { status: string };
  duplicate: boolean;
  storedAt: string;
}

interface ReadJson {
  sessionKey: string;
  events: { eventId: string; seq: number; text: string; contextKey: string | null; mode: string }[];
  depth: number;
  more: boolean;
}

// ---------------------------------------------------------------- system event

test('system event: human output names the canonical session; exit 0; nothing on stderr', async ({ gw }) => {
  const result = await runCli(['system', 'event', '--text', 'Task done!', '--mode', 'now', '--session-key', 'agent:Main:SLACK:channel:C123:thread:456', ...conn(gw)]);
  assertExit(result, 0);
  assert.is(result.stderr, '');
  const lines = result.stdout.trimEnd().split('\n');
  assert.is(lines[0], 'routed to agent:main:slack:channel:C123:thread:456 (seq 1, 1 pending, mode now)');
  assert.not.ok(result.stdout.includes('fallback'), 'no fallback line when a key was given');
  assert.ok(lines.some((line) => line.startsWith('  wake: no-agent-connected')), result.stdout);
  assert.match(result.stdout, /event [0-9a-f-]{36} stored at \d{4}-\d{2}-\d{2}T/);
});

test('system event without a key: a fallback line says where it went and why', async ({ gw }) => {
  const result = await runCli(['system', 'event', '--text', `fallback ${Date.now()}`, '--agent', 'Ops', ...conn(gw)]);
  assertExit(result, 0);
  const lines = result.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^routed to agent:ops:main \(seq \d+, \d+ pending, mode next-heartbeat\)$/);
  const fallback = lines.find((line) => line.startsWith('  fallback: '));
  assert.ok(fallback, `a fallback line in ${result.stdout}`);
  assert.match(fallback!, /no sessionKey given/);
});

test('system event --json: exactly one JSON object on stdout, the routing result', async ({ gw }) => {
  const key = freshKey();
  const before = Date.now();
  const result = parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', 'json please', '--session-key', key, '--json', ...conn(gw)]));
  assert.match(result.eventId, UUID_RE);
  assert.is(result.sessionKey, key);
  assert.is(result.requestedSessionKey, key);
  assert.is(result.fallback, null);
  assert.equal(result.queue, { status: 'queued', seq: 1, depth: 1, replaced: null, dropped: [] });
  assert.is(result.wake.status, 'no-agent-connected');
  assert.is(result.duplicate, false);
  assert.match(result.storedAt, ISO_RE);
  assert.ok(Date.parse(result.storedAt) >= before - 5);
});

test('system event with a valid text whose request is past the HTTP body limit (64 KiB of ESC, ~384 KiB as JSON) goes over a WebSocket: stored whole, over TCP and over the socket', async ({ gw }) => {
  const text = `a${'\u001b'.repeat(MAX_TEXT_BYTES - 2)}z`;
  for (const via of [conn(gw), ['--data-dir', gw.dataDir]]) {
    const key = freshKey();
    const sent = parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', text, '--session-key', key, '--json', ...via]));
    assert.is(sent.queue.seq, 1);
    const peeked = parseJsonOut<{ events: Array<{ text: string }> }>(await runCli(['session', 'peek', '--session-key', key, '--json', ...via]));
    assert.ok(peeked.events[0]!.text === text, 'the text arrived whole');
  }
  // Its failures are explained as any call's: a refusal is exit 1 with the gateway's error, no gateway exit 3.
  const refused = await runCli(['system', 'event', '--text', text, '--session-key', 'slack:C1', '--json', ...conn(gw)]);
  assertExit(refused, 1);
  assert.is((JSON.parse(refused.stdout) as { error: { data: { name: string } } }).error.data.name, 'INVALID_PARAMS');
  assert.match(refused.stderr, /^switchboard: the gateway refused: Invalid params: \/sessionKey: /);
  const nowhere = await runCli(['system', 'event', '--text', text, '--json', '--url', 'ws://127.0.0.1:1', '--token', 'x']);
  assertExit(nowhere, 3);
  assert.is((JSON.parse(nowhere.stdout) as { error: { data: { name: string } } }).error.data.name, 'GATEWAY_UNREACHABLE');
  // Given a URL, the hint is about it, not to give one (QA).
  const told = await runCli(['system', 'event', '--text', text, '--url', 'ws://127.0.0.1:1', '--token', 'x']);
  assert.equal([told.code, told.stderr], [3, 'switchboard: gateway not reachable at ws://127.0.0.1:1 (ECONNREFUSED): is `switchboard gateway` running there?\n']);
  // A URL without a port goes to 80, which it says (QA: ws://127.0.0.1 failed without a word of why).
  const portless = await runCli(['system', 'event', '--text', text, '--url', 'ws://127.0.0.1', '--token', 'x']);
  assert.is(portless.code, 3);
  assert.match(portless.stderr, /: is `switchboard gateway` running there\?; the URL names no port, so 80 was tried \(a gateway listens on 18790 unless given --port\)\n$/);
  // A connection reset before any answer is not "is it running?": something listens (QA: a fleet
  // past --max-unauthenticated-sockets was told its gateway did not run).
  const resetting = net.createServer((socket) => socket.resetAndDestroy());
  await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(resetting.address() as net.AddressInfo).port}`;
  const reset = await runCli(['session', 'watch', '--agent', 'main', '--url', url, '--token', 'x']);
  resetting.close();
  const reasons =
    'a gateway there may be restarting, closing the oldest of more sockets than its --max-unauthenticated-sockets, or at its limit of TCP connections (its log says so)';
  assert.equal(
    [reset.code, reset.stderr],
    [3, `switchboard: gateway not reachable at ${url} (ECONNRESET): the connection was reset before any answer: ${reasons}; retry\n`],
  );
  // Reset once the request is sent (a one-shot call over HTTP): it may have been done, and why the
  // reset may have come is said too (review).
  const resetAfterRequest = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
  await new Promise<void>((resolve) => resetAfterRequest.listen(0, '127.0.0.1', resolve));
  const sentTo = `ws://127.0.0.1:${(resetAfterRequest.address() as net.AddressInfo).port}`;
  const broken = await runCli(['system', 'event', '--text', 'done', '--url', sentTo, '--token', 'x']);
  resetAfterRequest.close();
  assert.equal(
    [broken.code, broken.stderr],
    [
      3,
      `switchboard: the connection to ${sentTo} broke before the answer was complete (reset: ${reasons}); the event may still have been stored: check with \`switchboard session peek\` before sending it again, and give --idempotency-key to make a retry safe\n`,
    ],
  );
});

test('system event --text - reads the text from stdin (UTF-8, trimmed by the gateway); empty is exit 2; bytes not UTF-8 go as U+FFFD, said on stderr (QA: a Latin-1 byte in a log, or a character tail -c cut, cost the whole event)', async ({ gw }) => {
  const key = freshKey();
  const log = 'build 42 failed:\n  test/a.test.ts: 3 failing\n  ünïcödé ✓\n';
  const sent = parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', '-', '--session-key', key, '--json', ...conn(gw)], { stdin: log }));
  assert.is(sent.queue.seq, 1);
  const peeked = parseJsonOut<{ events: Array<{ text: string }> }>(await runCli(['session', 'peek', '--session-key', key, '--json', ...conn(gw)]));
  assert.is(peeked.events[0]!.text, log.trim());
  const empty = await runCli(['system', 'event', '--text', '-', ...conn(gw)], { stdin: '' });
  assertExit(empty, 2);
  assert.is(empty.stderr, "switchboard: the text read from stdin (--text -) is empty: switchboard system event --text 'Task done!'\n");
  const blankStdin = await runCli(['system', 'event', '--text', '-', ...conn(gw)], { stdin: ' \n' });
  assert.equal([blankStdin.code, blankStdin.stderr], [2, "switchboard: the text read from stdin (--text -) holds only whitespace: switchboard system event --text 'Task done!'\n"]);
  const blank = await runCli(['system', 'event', '--text', ' \t ', ...conn(gw)]);
  assert.equal([blank.code, blank.stderr], [2, "switchboard: --text holds only whitespace: switchboard system event --text 'Task done!'\n"]);
  const none = await runCli(['system', 'event', ...conn(gw)]);
  assert.equal([none.code, none.stderr], [2, "switchboard: --text is required and must not be empty: switchboard system event --text 'Task done!'\n"]);
  const latin1 = freshKey();
  // A Latin-1 é, and the tail of an é that tail -c cut in two.
  const mixed = await runCli(['system', 'event', '--text', '-', '--session-key', latin1, ...conn(gw)], { stdin: Buffer.from([0xa9, 0x63, 0x61, 0x66, 0xe9, 0x21]) });
  assertExit(mixed, 0);
  assert.is(mixed.stderr, 'switchboard: stdin (--text -) is not all UTF-8: what is not is sent as U+FFFD (\uFFFD); to keep it, convert it first (iconv -f <its encoding> -t UTF-8)\n');
  const stored = parseJsonOut<{ events: Array<{ text: string }> }>(await runCli(['session', 'peek', '--session-key', latin1, '--json', ...conn(gw)]));
  assert.equal(stored.events.map((event) => event.text), ['\uFFFDcaf\uFFFD!']);
  // None of it UTF-8 (review: stored as two U+FFFD), or UTF-16, whose ASCII reads as UTF-8 with a NUL after each letter (QA): not text, exit 2.
  const notText = 'switchboard: stdin (--text -) is not UTF-8 text (UTF-16, or not text at all): convert it first (iconv -f <its encoding> -t UTF-8)\n';
  // UTF-16 of Japanese has no NUL byte, but its byte order mark says what it is (QA: stored garbled, exit 0).
  const japanese = '日本語のビルド失敗';
  const utf16be = Buffer.from(japanese, 'utf16le').swap16();
  for (const stdin of [
    Buffer.from([0xff, 0xfe, 0x0a]),
    Buffer.from('hello world\n', 'utf16le'),
    Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('hello', 'utf16le')]),
    Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(japanese, 'utf16le')]),
    Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be]),
  ]) {
    const binary = await runCli(['system', 'event', '--text', '-', ...conn(gw)], { stdin });
    assert.equal([binary.code, binary.stderr], [2, notText], stdin.toString('hex'));
  }
  // Past the text limit once trimmed: refused before anything is sent (escaped, it could pass a frame's size).
  const tooLong = await runCli(['system', 'event', '--text', '-', ...conn(gw)], { stdin: `  ${'\u001b'.repeat(MAX_TEXT_BYTES + 1)}\n` });
  assertExit(tooLong, 2);
  assert.is(tooLong.stderr, `switchboard: the text read from stdin (--text -) is ${MAX_TEXT_BYTES + 1} bytes; an event's text is at most ${MAX_TEXT_BYTES}: send a part of it (tail -c 60000)\n`);
  const atLimit = await runCli(['system', 'event', '--text', '-', '--json', ...conn(gw)], { stdin: `\na${'\u001b'.repeat(MAX_TEXT_BYTES - 2)}z\n\n` });
  assertExit(atLimit, 0);
  // The same limit, and the same exit code, for a text given as an argument.
  const argTooLong = await runCli(['system', 'event', '--text', ` ${'x'.repeat(MAX_TEXT_BYTES + 1)} `, ...conn(gw)]);
  assert.equal([argTooLong.code, argTooLong.stderr], [2, `switchboard: --text is ${MAX_TEXT_BYTES + 1} bytes; an event's text is at most ${MAX_TEXT_BYTES}: send a part of it (tail -c 60000)\n`]);
  assertExit(await runCli(['system', 'event', '--text', ` ${'x'.repeat(MAX_TEXT_BYTES)} `, ...conn(gw)]), 0);
});

// Only Linux keeps an argument's bytes where the CLI can read them (/proc/self/cmdline).
(process.platform === 'linux' ? test : test.skip)('an argument that is not UTF-8 is exit 2, not stored with U+FFFD in place of its bytes (two keys were one session); a U+FFFD typed is text', async ({ gw }) => {
  const key = freshKey();
  // Node's spawn sends strings as UTF-8: the shell's printf makes the byte 0xE9 alone.
  const script = 'exec "$0" "$1" system event --text "$(printf \'caf\\351\')" --session-key "$2" --url "$3" --token "$4"';
  const latin1 = spawnSync('/bin/sh', ['-c', script, process.execPath, CLI_PATH, key, gw.url, gw.token], { encoding: 'utf8', env: {} });
  assert.equal([latin1.status, latin1.stdout, latin1.stderr], [2, '', 'switchboard: argument 4 is not UTF-8 text ("caf\uFFFD", with U+FFFD where the bytes were): give it as UTF-8\n']);
  assertExit(await runCli(['system', 'event', '--text', 'caf\uFFFD', '--session-key', key, ...conn(gw)]), 0);
  const read = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', key, '--json', ...conn(gw)]));
  assert.equal(read.events.map((event) => event.text), ['caf\uFFFD']);
});

test('string options arrive exactly as typed: --text 007 is "007", not 7', async ({ gw }) => {
  const key = freshKey();
  // --ack is an option of session watch, not of system event: a text here, as --foo would be.
  const texts = ['007', '1e3', '0x10', 'true', '-5', '-h looks like a flag', '--help', '--ack', '--foo'];
  for (const text of texts) {
    // A value that is itself an option name needs the --name=value form.
    const args = text === '--help' ? [`--text=${text}`] : ['--text', text];
    assertExit(await runCli(['system', 'event', ...args, '--session-key', key, ...conn(gw)]), 0);
  }
  assertExit(await runCli(['system', 'event', '--text', 'ctx', '--context-key', '0012', '--idempotency-key', '1e3', '--session-key', key, ...conn(gw)]), 0);
  const read = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', key, '--json', ...conn(gw)]));
  assert.equal(
    read.events.map((event) => event.text),
    [...texts, 'ctx'],
  );
  assert.is(read.events.at(-1)!.contextKey, '0012');
  // The idempotency key was "1e3" as a string: repeating it with "1e3" is a duplicate.
  const repeat = parseJsonOut<RoutingJson>(
    await runCli(['system', 'event', '--text', 'ctx', '--context-key', '0012', '--idempotency-key', '1e3', '--session-key', key, '--json', ...conn(gw)]),
  );
  assert.is(repeat.duplicate, true);
  // --agent 007 is the agent "007".
  const agent = parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', 'bond', '--agent', '007', '--json', ...conn(gw)]));
  assert.is(agent.sessionKey, 'agent:007:main');
});

test('a plain command line (run without cac) and its --name=value spelling (parsed by cac) do the same', async ({ gw }) => {
  const key = freshKey('spelling');
  const plain = parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', 'plain', '--session-key', key, '--json', ...conn(gw)]));
  const viaCac = parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text=viacac', `--session-key=${key}`, '--json', ...conn(gw)]));
  assert.equal([plain.queue.seq, viaCac.queue.seq, viaCac.sessionKey], [1, 2, key]);
  const [direct, parsed] = await Promise.all([
    runCli(['session', 'peek', '--session-key', key, '--limit', '1', '--json', ...conn(gw)]),
    runCli(['session', 'peek', `--session-key=${key}`, '--limit=1', '--json', ...conn(gw)]),
  ]);
  assert.is(parsed.stdout, direct.stdout);
  assert.equal(
    parseJsonOut<ReadJson>(direct).events.map((event) => event.text),
    ['plain'],
  );
});

/** With --json, a failure is one object on stdout, `{"error":{"code","message","data"}}`, and its message on stderr. */
function parseJsonError(result: CliResult, exitCode: number): { code: number; message: string; data?: { name?: string } } {
  assertExit(result, exitCode);
  assert.match(result.stderr, /^switchboard: .+/, 'the message for people is still on stderr');
  assert.ok(result.stdout.endsWith('}\n'), `stdout ends with one object and a newline: ${JSON.stringify(result.stdout)}`);
  assert.is(result.stdout.trimEnd().split('\n').length, 1, 'one line on stdout');
  const value = JSON.parse(result.stdout) as { error: { code: number; message: string; data?: { name?: string } } };
  assert.equal(Object.keys(value), ['error']);
  return value.error;
}

test('exit 1: the gateway refused (malformed --session-key): message on stderr; with --json, the error on stdout', async ({ gw }) => {
  const [human, json] = await Promise.all([
    runCli(['system', 'event', '--text', 'x', '--session-key', 'slack:C123', ...conn(gw)]),
    runCli(['system', 'event', '--text', 'x', '--session-key', 'agent:main:slack:channel', '--json', ...conn(gw)]),
  ]);
  for (const result of [human, json]) {
    assertExit(result, 1);
    assert.match(result.stderr, /^switchboard: /);
    assert.match(result.stderr, /session key/);
    assert.match(result.stderr, /-32602/);
  }
  assert.is(human.stdout, '');
  const error = parseJsonError(json, 1);
  assert.is(error.code, -32602);
  assert.is(error.data?.name, 'INVALID_PARAMS');
  assert.match(error.message, /session key "agent:main:slack:channel" is invalid/);
  // And it was not stored in the main session instead.
  const main = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--json', ...conn(gw)]));
  assert.not.ok(main.events.some((event) => event.text === 'x'));
});

test('exit 1: an idempotency conflict names code 1001', async ({ gw }) => {
  const key = freshKey();
  assertExit(await runCli(['system', 'event', '--text', 'one', '--idempotency-key', `k${unique}`, '--session-key', key, ...conn(gw)]), 0);
  const conflict = await runCli(['system', 'event', '--text', 'two', '--idempotency-key', `k${unique}`, '--session-key', key, ...conn(gw)]);
  assertExit(conflict, 1);
  assert.match(conflict.stderr, /1001/);
});

test('exit 2: usage errors, before any connection is tried', async () => {
  // The URL is unreachable on purpose: a usage error must win over "not reachable" (3).
  const nowhere = ['--url', 'ws://127.0.0.1:1', '--token', 'x'];
  const cases: [string[], RegExp][] = [
    [['system', 'event', ...nowhere], /--text is required/],
    [['system', 'event', '--text', '   ', ...nowhere], /--text holds only whitespace/],
    [['system', 'event', '--text', 'x', '--mode', 'later', ...nowhere], /--mode must be "now" or "next-heartbeat"/],
    [['system', 'event', '--text', 'x', '--bogus', ...nowhere], /--bogus/],
    [['system', 'event', '--text', '--mode', 'now', ...nowhere], /^switchboard: --text needs a value; see `switchboard system event --help`\n$/],
    [['system', 'event', '--text', 'Task', 'done', ...nowhere], /^switchboard: unexpected argument `done`: switchboard system event takes no arguments \(quote a value that has spaces\); see `switchboard system event --help`\n$/],
    [['trace', 'a', 'b', ...nowhere], /^switchboard: unexpected argument `b`: switchboard trace takes <eventId> only; see `switchboard trace --help`\n$/],
    [['trace', ...nowhere], /^switchboard: an event id is required: switchboard trace <eventId>/],
    [['system', 'event', '--text', 'x', '--json=true', ...nowhere], /--json takes no value/],
    [['system', 'event', '--text', 'x', '-v', ...nowhere], /unknown option `-v`/],
    [['session', 'peek', '--bogus', ...nowhere], /--bogus/],
    [['frobnicate'], /unknown command "frobnicate": run `switchboard --help`/],
    [['sesion', 'list', ...nowhere], /unknown command "sesion list": did you mean `switchboard session list`\?/],
    [['system'], /^switchboard: "system" needs a command: system event; run `switchboard system --help` for what it does\n$/],
    [['token'], /^switchboard: "token" needs a command: token create, token list or token revoke; run `switchboard token --help` for what each does\n$/],
    [['system', 'frob'], /unknown command "system frob"/],
    [['session', 'peek', '--session-key', 'main', '--agent', 'ops', ...nowhere], /--session-key or --agent/],
    [['session', 'peek', '--limit', '0', ...nowhere], /--limit/],
    [['session', 'peek', '--limit', 'abc', ...nowhere], /--limit/],
    // The gateway's bound (MAX_READ_LIMIT), checked before any call: one past it is the command line's error.
    [['session', 'peek', '--limit', '1001', ...nowhere], /^switchboard: --limit must be an integer from 1 to 1000 \(got "1001"\)\n$/],
    [['session', 'drain', '--limit', '1001', ...nowhere], /^switchboard: --limit must be an integer from 1 to 1000 \(got "1001"\)\n$/],
    [['session', 'list', '--limit', '5000', ...nowhere], /^switchboard: --limit must be an integer from 1 to 1000 \(got "5000"\)\n$/],
    [['session', 'drain', '--after', '-1', ...nowhere], /--after|-1/],
    [['system', 'event', '--text', 'x', '--url', 'localhost:18790', '--token', 'x'], /^switchboard: --url \(or SWITCHBOARD_URL\) "localhost:18790" is not a gateway URL: expected ws:\/\/host:port \(wss:\/\/, http:\/\/, https:\/\/ and unix:\/path\/to\/gateway\.sock work too\)\n$/],
    [['session', 'list', '--url', 'ftp://127.0.0.1:1', '--token', 'x'], /"ftp:\/\/127\.0\.0\.1:1" is not a gateway URL/],
    // Neither is ever sent: a fragment, or a token in the URL that --token or the data dir's would replace.
    [['status', '--url', 'ws://127.0.0.1:1/switchboard#main', '--token', 'x'], /^switchboard: --url \(or SWITCHBOARD_URL\) "ws:\/\/127\.0\.0\.1:1\/switchboard#main" is not a gateway URL: remove its fragment \("#main"\), which is never sent to a gateway\n$/],
    [['session', 'watch', '--url', 'ws://127.0.0.1:1/?agent=main#main', '--token', 'x'], /is not a gateway URL: remove its fragment \("#main"\)/],
    [['status', '--url', 'ws://switchboard:sbt_secret@127.0.0.1:1', '--token', 'x'], /^switchboard: --url \(or SWITCHBOARD_URL\) holds a user name or password, which is not sent: give the token with --token or SWITCHBOARD_TOKEN\n$/],
    // Named before any other problem of the URL, whose message would show the secret.
    [['status', '--url', 'ftp://switchboard:sbt_secret@127.0.0.1:1/#main', '--token', 'x'], /^switchboard: --url \(or SWITCHBOARD_URL\) holds a user name or password, which is not sent: give the token with --token or SWITCHBOARD_TOKEN\n$/],
    // Not parsed as a URL at all (a port past 65535): shown with the secret masked.
    [['status', '--url', 'ws://switchboard:sbt_secret@127.0.0.1:187900', '--token', 'x'], /^switchboard: --url \(or SWITCHBOARD_URL\) "ws:\/\/\*\*\*@127\.0\.0\.1:187900" is not a gateway URL: its port 187900 is past 65535, the highest there is\n$/],
    // --agent names a main session by a key made from it: one that would make another key is refused.
    [['session', 'drain', '--agent', 'x:slack:group:G:thread', ...nowhere], /^switchboard: --agent "x:slack:group:G:thread" is not an agent id: letters a-z \(either case\), digits, "_" or "-", starting with a letter or digit, at most 64\n$/],
    [['session', 'peek', '--agent', 'bad agent', ...nowhere], /^switchboard: --agent "bad agent" is not an agent id: /],
    // No scheme: what a gateway URL looks like, whatever the parser made of it.
    [['status', '--url', '127.0.0.1:18931', '--token', 'x'], /^switchboard: --url \(or SWITCHBOARD_URL\) "127\.0\.0\.1:18931" is not a gateway URL: expected ws:\/\/host:port \(wss:\/\/, http:\/\/, https:\/\/ and unix:\/path\/to\/gateway\.sock work too\)\n$/],
    [['system', 'event', '--text', 'x', '--url', 'ws://127.0.0.1:1', '--token', 'sba_x\rsba_y'], /^switchboard: the token \(--token or SWITCHBOARD_TOKEN\) holds a line break: pass the token alone\n$/],
    [['status', '--url', 'ws://127.0.0.1:1', '--token', 'sba_\u{1F511}'], /^switchboard: the token \(--token or SWITCHBOARD_TOKEN\) holds U\+1F511 at character 5: pass the token alone\n$/],
    [['session', 'watch', '--url', 'ws://127.0.0.1:1', '--token', 'sba_a b'], /^switchboard: the token \(--token or SWITCHBOARD_TOKEN\) holds U\+0020 at character 6: pass the token alone\n$/],
    [['gateway', '--port', 'abc'], /--port/],
    [['gateway', '--port', '70000'], /--port/],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli(args)));
  results.forEach((result, i) => {
    const [args, message] = cases[i]!;
    assert.is(result.code, 2, `switchboard ${args.join(' ')}\n${explain(result)}`);
    assert.match(result.stderr, message, `stderr of switchboard ${args.join(' ')}`);
    assert.is(result.stdout, '', `stdout of switchboard ${args.join(' ')}`);
  });
});

test('exit 2: --timeout past the longest timer Node.js holds (2^31 - 1 ms), for every command that takes it; the limit itself is taken', async () => {
  const nowhere = ['--url', 'ws://127.0.0.1:1', '--token', 'x'];
  const commands = [['system', 'event', '--text', 'x'], ['session', 'peek'], ['session', 'drain'], ['session', 'list'], ['session', 'watch'], ['trace', 'id'], ['status'], ['token', 'create', '--agent', 'a'], ['token', 'list'], ['token', 'revoke', 'id']];
  const results = await Promise.all(commands.map((command) => runCli([...command, '--timeout', '2147483648', ...nowhere])));
  results.forEach((result, i) => {
    assertExit(result, 2);
    assert.is(result.stderr, 'switchboard: --timeout must be an integer from 1 to 2147483647 (got "2147483648")\n', commands[i]!.join(' '));
  });
  // At the limit the call is made, and fails for the unreachable URL, not at once for an overflowed timer.
  const atLimit = await runCli(['status', '--timeout', '2147483647', ...nowhere]);
  assertExit(atLimit, 3);
  assert.match(atLimit.stderr, /ECONNREFUSED/);
  assert.not.match(atLimit.stderr, /TimeoutOverflowWarning/);
});

test('exit 2: control and bidi characters that a usage error quotes from the command line are shown as escapes', async () => {
  const nowhere = ['--url', 'ws://127.0.0.1:1', '--token', 'x'];
  // ESC starts a terminal escape sequence (here: red text); U+202E reverses the rest of the line.
  const cases: [string[], string][] = [
    [['status', '--col\x1b[31mor\u202e', ...nowhere], 'unknown option `--col\\x1b[31mor\\u202e`: see `switchboard status --help`'],
    [['system', 'event', '--text', 'x', '--mode', 'n\x1b[31mow\u202e', ...nowhere], '--mode must be "now" or "next-heartbeat" (got "n\\x1b[31mow\\u202e")'],
    [['session', 'peek', '--limit', '1\u202e0', ...nowhere], '--limit must be an integer from 1 to 1000 (got "1\\u202e0")'],
    [['frob\x1b[2J'], 'unknown command "frob\\x1b[2J": run `switchboard --help` for the list'],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli(args)));
  results.forEach((result, i) => {
    const [args, message] = cases[i]!;
    assertExit(result, 2);
    assert.is(result.stderr, `switchboard: ${message}\n`, JSON.stringify(args));
  });
});

test('exit 3: a URL quoted by a connection failure shows its control and bidi characters as escapes', async () => {
  // A path may hold them (URL parsing keeps U+202E as is, and percent-encodes ESC only in some places).
  const url = 'ws://127.0.0.1:1/sw\u202eitch';
  const result = await runCli(['status', '--url', url, '--token', 'x']);
  assertExit(result, 3);
  assert.ok(result.stderr.includes('127.0.0.1:1/sw\\u202eitch'), result.stderr);
  assert.not.ok(result.stderr.includes('\u202e'), result.stderr);
});

test('exit 2: the camelCase spelling of an option is refused with the declared one, never ignored', async ({ gw }) => {
  const cases: [string[], string, string][] = [
    [['system', 'event', '--text', 'camel', '--sessionKey', 'agent:main:slack:channel:CAMEL'], '--sessionKey', '--session-key'],
    [['system', 'event', '--text=camel', '--sessionKey=agent:main:slack:channel:CAMEL'], '--sessionKey', '--session-key'],
    [['system', 'event', '--text', 'camel', '--contextKey', 'c1'], '--contextKey', '--context-key'],
    [['system', 'event', '--text', 'camel', '--idempotencyKey', 'i1'], '--idempotencyKey', '--idempotency-key'],
    [['system', 'event', '--text', 'camel', '--agentId', 'ops'], '--agentId', '--agent'],
    [['system', 'event', '--text', 'camel', '--session_key', 'main'], '--session_key', '--session-key'],
    [['session', 'drain', '--sessionKey', 'agent:main:slack:channel:CAMEL'], '--sessionKey', '--session-key'],
    [['session', 'peek', '--dataDir', gw.dataDir], '--dataDir', '--data-dir'],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli([...args, ...conn(gw)])));
  results.forEach((result, i) => {
    const [args, typed, declared] = cases[i]!;
    const command = args.slice(0, args[0] === 'system' || args[0] === 'session' ? 2 : 1).join(' ');
    assert.is(result.code, 2, `switchboard ${args.join(' ')}\n${explain(result)}`);
    assert.is(result.stderr, `switchboard: unknown option \`${typed}\`: did you mean ${declared}? Or see \`switchboard ${command} --help\`\n`);
    assert.is(result.stdout, '');
  });
  // Nothing reached the main session (where an ignored --sessionKey sent it) or the CAMEL channel.
  for (const key of ['main', 'agent:main:slack:channel:CAMEL']) {
    const read = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', key, '--json', ...conn(gw)]));
    assert.not.ok(read.events.some((event) => event.text === 'camel'), `${key}: ${JSON.stringify(read.events)}`);
  }
  // The gateway too: --dataDir and --maxPending are refused before it starts on the default data dir.
  const dataDir = makeTempDir();
  const [gatewayDataDir, gatewayMaxPending] = await Promise.all([
    runCli(['gateway', '--port', '0', '--dataDir', dataDir]),
    runCli(['gateway', '--port', '0', '--data-dir', dataDir, '--maxPending', '1']),
  ]);
  assertExit(gatewayDataDir, 2);
  assert.match(gatewayDataDir.stderr, /unknown option `--dataDir`: did you mean --data-dir\?/);
  assertExit(gatewayMaxPending, 2);
  assert.match(gatewayMaxPending.stderr, /unknown option `--maxPending`: did you mean --max-pending\?/);
  assert.is(gatewayDataDir.stdout + gatewayMaxPending.stdout, '', 'neither gateway reported listening');
});

test('exit 2: arguments after -- are named, not dropped', async ({ gw }) => {
  const key = 'agent:main:slack:channel:DASH';
  const result = await runCli(['system', 'event', '--text', 'dash', ...conn(gw), '--', '--session-key', key]);
  assertExit(result, 2);
  assert.is(
    result.stderr,
    `switchboard: unexpected arguments \`--session-key ${key}\` after \`--\`: put options before \`--\` (nothing after it is read); see \`switchboard system event --help\`\n`,
  );
  assert.is(result.stdout, '');
  for (const session of ['main', key]) {
    const read = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', session, '--json', ...conn(gw)]));
    assert.not.ok(read.events.some((event) => event.text === 'dash'), `${session}: ${JSON.stringify(read.events)}`);
  }
});

test('exit 2: an empty option value, or a SWITCHBOARD_* variable set but empty, is named; never the default', async ({ gw }) => {
  const event = (text: string) => ['system', 'event', '--text', text, '--session-key', 'agent:empty:main'];
  const cases: [string[], Record<string, string>, string][] = [
    // The admin token in the data dir is the default: an empty --token must not fall back to it.
    [[...event('empty --token'), '--token', '', ...conn(gw)], {}, '--token is empty'],
    [[...event('empty --token='), '--token=', ...conn(gw)], {}, '--token is empty'],
    [[...event('empty SWITCHBOARD_TOKEN'), ...conn(gw)], { SWITCHBOARD_TOKEN: '' }, 'SWITCHBOARD_TOKEN is set but empty'],
    [[...event('empty SWITCHBOARD_URL'), '--token', gw.token], { SWITCHBOARD_URL: '' }, 'SWITCHBOARD_URL is set but empty'],
    [[...event('empty SWITCHBOARD_DATA_DIR'), '--url', gw.url], { SWITCHBOARD_DATA_DIR: '' }, 'SWITCHBOARD_DATA_DIR is set but empty'],
    [[...event('empty --url'), '--url', '', '--data-dir', gw.dataDir], {}, '--url is empty'],
    [[...event('empty --agent'), '--agent', '', ...conn(gw)], {}, '--agent is empty'],
    [['system', 'event', '--text', '', ...conn(gw)], {}, '--text is empty'],
    [['session', 'drain', '--session-key', '', ...conn(gw)], {}, '--session-key is empty'],
    // And the gateway does not start on the default data dir instead.
    [['gateway', '--port', '0', '--data-dir', ''], {}, '--data-dir is empty'],
    [['gateway', '--port', '0'], { SWITCHBOARD_DATA_DIR: '' }, 'SWITCHBOARD_DATA_DIR is set but empty'],
    // Nor on a blank one, or a ~ no shell expanded (a systemd unit's Environment=), in the working directory (operator QA).
    [['gateway', '--port', '0', '--data-dir', ' '], {}, '--data-dir " " names no directory'],
    [['gateway', '--port', '0'], { SWITCHBOARD_DATA_DIR: '~/sbx' }, 'SWITCHBOARD_DATA_DIR "~/sbx" starts with ~, which only a shell expands'],
    [['status', '--data-dir', '~/sbx'], {}, '--data-dir "~/sbx" starts with ~, which only a shell expands'],
  ];
  const results = await Promise.all(cases.map(([args, env]) => runCli(args, { env })));
  results.forEach((result, i) => {
    const [args, env, message] = cases[i]!;
    const what = `${JSON.stringify(env)} switchboard ${args.map((arg) => JSON.stringify(arg)).join(' ')}`;
    assert.is(result.code, 2, `${what}\n${explain(result)}`);
    assert.ok(result.stderr.startsWith(`switchboard: ${message}`), `${what}: ${result.stderr}`);
    assert.is(result.stdout, '', what);
  });
  const read = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', 'agent:empty:main', '--json', ...conn(gw)]));
  assert.equal(read.events, [], 'nothing was sent');
});

test('exit 2: an option given twice is named, not overridden by the last one', async ({ gw }) => {
  const cases: [string[], string][] = [
    [['system', 'event', '--text', 'twice', '--session-key', 'main', '--session-key', 'agent:ops:main'], '--session-key'],
    [['system', 'event', '--text', 'a', '--text', 'b', '--session-key', 'agent:twice:main'], '--text'],
    [['session', 'drain', '--agent', 'twice', '--agent=ops'], '--agent'],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli([...args, ...conn(gw)])));
  results.forEach((result, i) => {
    const [args, option] = cases[i]!;
    const command = args.slice(0, 2).join(' ');
    assert.is(result.code, 2, `switchboard ${args.join(' ')}\n${explain(result)}`);
    assert.is(result.stderr, `switchboard: ${option} was given twice: give it once; see \`switchboard ${command} --help\`\n`);
    assert.is(result.stdout, '');
  });
  for (const key of ['main', 'agent:ops:main', 'agent:twice:main']) {
    const read = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', key, '--json', ...conn(gw)]));
    assert.not.ok(read.events.some((event) => ['twice', 'a', 'b'].includes(event.text)), `${key}: ${JSON.stringify(read.events)}`);
  }
  // A flag may repeat: --json twice is still one JSON object.
  parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', 'flags', '--json', '--json', '--session-key', 'agent:twiceflags:main', ...conn(gw)]));
});

test('exit 2 for no command at all, with an error line on stderr and the help on stdout', async () => {
  for (const args of [[], ['--text', 'a']]) {
    const result = await runCli(args);
    assertExit(result, 2);
    assert.is(result.stderr, 'switchboard: no command given: options go after one (switchboard <command> [options]); the commands are below\n');
    assert.match(result.stdout, /system event/);
  }
  // An option no command takes is named, with the one it is closest to.
  for (const [option, message] of [
    ['-V', 'unknown option `-V`: did you mean -v? Or run `switchboard --help`'],
    ['--HELP', 'unknown option `--HELP`: did you mean --help? Or run `switchboard --help`'],
    ['-x', 'unknown option `-x`: run `switchboard --help`'],
  ]) {
    const result = await runCli([option!]);
    assertExit(result, 2);
    assert.is(result.stderr, `switchboard: ${message}\n`);
  }
});

test('`switchboard help` is the help, and `switchboard help <command>` that command\'s, exit 0; a help about an unknown command, or with more given, is exit 2', async () => {
  assert.is((await runCli(['help'])).stdout, (await runCli(['--help'])).stdout);
  const command = await runCli(['help', 'session', 'peek']);
  assertExit(command, 0);
  assert.is(command.stdout, (await runCli(['session', 'peek', '--help'])).stdout);
  assert.is((await runCli(['--help', 'help'])).stdout, (await runCli(['--help'])).stdout);
  for (const again of [['help', 'help'], ['help', '--help'], ['help', '-h']]) assert.is((await runCli(again)).stdout, (await runCli(['--help'])).stdout, again.join(' '));
  assert.is((await runCli(['help', 'help', 'status'])).stdout, (await runCli(['status', '--help'])).stdout);
  const group = await runCli(['help', 'token']);
  assertExit(group, 0);
  assert.match(group.stdout, 'token <command> [options]');
  // A help about no command is a command mistyped: exit 2, with a guess, as without --help.
  for (const [args, message] of [
    [['help', 'nosuch'], 'unknown command "nosuch": run `switchboard --help` for the list'],
    [['help', 'system', 'evnt'], 'unknown command "system evnt": did you mean `switchboard system event`? Or run `switchboard --help` for the list'],
    [['sesion', 'peek', '--help'], 'unknown command "sesion peek": did you mean `switchboard session peek`? Or run `switchboard --help` for the list'],
    // Nothing given is ignored: `help` takes a command's name alone.
    [['help', 'system', 'event', 'extra'], 'unexpected argument `extra`: `switchboard help` takes the name of a command (`switchboard help system event`)'],
    [['help', 'trace', 'a', 'b'], 'unexpected arguments `a b`: `switchboard help` takes the name of a command (`switchboard help trace`)'],
    [['help', 'status', '--bogus'], '`switchboard help` takes the name of a command, not options (got `--bogus`): `switchboard help [command]`'],
    [['help', '--json'], '`switchboard help` takes the name of a command, not options (got `--json`): `switchboard help [command]`'],
  ] as const) {
    const result = await runCli(args);
    assert.equal([result.code, result.stdout, result.stderr], [2, '', `switchboard: ${message}\n`], args.join(' '));
  }
});

test('SIGINT or SIGTERM stops session watch with 0 while it is still connecting; a one-shot command is ended by the signal itself (130)', async () => {
  // Accepts TCP, never answers the upgrade or the POST: the CLI is left connecting.
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  const connected = () => new Promise((resolve) => silent.once('connection', resolve));
  try {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const accepted = connected();
      const watch = spawnCli(['session', 'watch', '--url', url, '--token', 'x']);
      await accepted;
      assert.is(await watch.stop(signal), 0, `${signal}: ${watch.stderr()}`);
      assert.is(watch.stderr(), '');
    }
    const accepted = connected();
    const status = spawnCli(['status', '--url', url, '--token', 'x']);
    await accepted;
    assert.is(await status.stop('SIGINT'), null, 'killed by the signal: the shell reports 130');
    assert.is(status.process.signalCode, 'SIGINT');
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});

test('exit 3: a wss:// or https:// URL to a gateway without TLS is GATEWAY_REJECTED, saying the TLS handshake failed and to use ws://', async ({ gw }) => {
  const tls = (scheme: string) => `${scheme}://127.0.0.1:${gw.port}`;
  const cases: [string[], string][] = [
    [['status', '--url', tls('wss')], 'ws://'],
    [['status', '--url', tls('https')], 'http://'],
    [['session', 'watch', '--url', tls('wss')], 'ws://'],
  ];
  for (const [args, plain] of cases) {
    const url = args[args.indexOf('--url') + 1]!;
    const result = await runCli([...args, '--token', gw.token, '--json']);
    assertExit(result, 3);
    const message = `TLS handshake with ${url} failed (EPROTO): is the gateway behind TLS? use ${plain} for a gateway without it`;
    assert.is(result.stderr, `switchboard: ${message}\n`);
    assert.equal(JSON.parse(result.stdout), { error: { code: 2003, message, data: { name: 'GATEWAY_REJECTED' } } });
  }
});

/** A TLS-terminating proxy in front of the gateway, as a user would put one, with the test's self-signed certificate for 127.0.0.1. */
async function tlsProxy(gatewayPort: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: fs.readFileSync(TLS_KEY), cert: fs.readFileSync(TLS_CERT) }, (client) => {
    const upstream = net.connect(gatewayPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

test('behind TLS: a certificate Node.js does not trust is GATEWAY_REJECTED naming why and NODE_EXTRA_CA_CERTS; with its CA given, https:// and wss:// work', async ({ gw }) => {
  const proxy = await tlsProxy(gw.port);
  try {
    const auth = ['--token', gw.token];
    for (const url of [`https://127.0.0.1:${proxy.port}`, `wss://127.0.0.1:${proxy.port}`]) {
      for (const command of [['status'], ['session', 'watch', '--agent', 'main']]) {
        const result = await runCli([...command, '--url', url, ...auth, '--json'], { env: { NODE_EXTRA_CA_CERTS: undefined } });
        assertExit(result, 3);
        const message = `the TLS certificate of ${url} was not accepted (DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate): if it is your own, give Node.js its CA with NODE_EXTRA_CA_CERTS=<file.pem>`;
        assert.is(result.stderr, `switchboard: ${message}\n`);
        assert.equal(JSON.parse(result.stdout), { error: { code: 2003, message, data: { name: 'GATEWAY_REJECTED' } } });
      }
    }
    const trusted = { env: { NODE_EXTRA_CA_CERTS: TLS_CERT } };
    const agent = `tls${++unique}`;
    const watch = spawnCli(['session', 'watch', '--agent', agent, '--json', '--url', `wss://127.0.0.1:${proxy.port}`, ...auth], trusted);
    const sent = await runCli(['system', 'event', '--text', 'over TLS', '--agent', agent, '--json', '--url', `https://127.0.0.1:${proxy.port}`, ...auth], trusted);
    assert.is(parseJsonOut<RoutingJson>(sent).sessionKey, `agent:${agent}:main`);
    const [line] = await watch.waitForLines(1);
    assert.is((JSON.parse(line!) as { text: string }).text, 'over TLS');
    assert.is(await watch.stop(), 0);
  } finally {
    await proxy.close();
  }
});

test('exit 3: unreachable gateway, with a hint', async () => {
  const result = await runCli(['system', 'event', '--text', 'x', '--url', 'ws://127.0.0.1:1', '--token', 'x']);
  assertExit(result, 3);
  assert.is(result.stdout, '');
  assert.match(result.stderr, /not reachable at ws:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
  assert.match(result.stderr, /switchboard gateway/);
});

test('exit 3: no answer in time; for system event a warning that the event may still have been stored, and how to retry safely', async () => {
  const silent = await fakeServer(() => undefined);
  try {
    const nowhere = ['--url', `ws://127.0.0.1:${silent.url.port}`, '--token', 'x', '--timeout', '200'];
    const [event, keyed, drain, status] = await Promise.all([
      runCli(['system', 'event', '--text', 'x', ...nowhere]),
      runCli(['system', 'event', '--text', 'x', '--idempotency-key', 'nightly-1', ...nowhere]),
      runCli(['session', 'drain', ...nowhere]),
      runCli(['status', ...nowhere]),
    ]);
    for (const result of [event, keyed, drain, status]) {
      assertExit(result, 3);
      assert.is(result.stdout, '');
      assert.match(result.stderr, /^switchboard: no answer to \S+ from ws:\/\/127\.0\.0\.1:\d+ within 200 ms; /);
      assert.match(result.stderr, /raise --timeout, or check the gateway\n$/);
    }
    assert.match(event.stderr, /the event may still have been stored: check with `switchboard session peek` before sending it again, and give --idempotency-key to make a retry safe/);
    assert.match(keyed.stderr, /the event may still have been stored: retrying with the same --idempotency-key is safe \(it is stored once\)/);
    assert.match(drain.stderr, /the events may still have been consumed/);
    assert.not.match(status.stderr, /may still/);
  } finally {
    await silent.close();
  }
});

test("exit 3: an answer that cannot be read as a switchboard gateway's (another JSON-RPC service) is named as such, not printed, nor a crash", async () => {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} });
  const other = await fakeServer((socket) => socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`));
  try {
    const elsewhere = ['--url', `ws://127.0.0.1:${other.url.port}`, '--token', 'x'];
    const [event, json, drain, status] = await Promise.all([
      runCli(['system', 'event', '--text', 'x', ...elsewhere]),
      runCli(['system', 'event', '--text', 'x', '--json', ...elsewhere]),
      runCli(['session', 'drain', ...elsewhere]),
      runCli(['status', ...elsewhere]),
    ]);
    // Answered, if not readably: what answered may have done it, and the CLI says so where it matters.
    for (const [result, method, missing, uncertain] of [
      [event, 'system.event', 'eventId', '; the event may still have been stored: check with `switchboard session peek` before sending it again, and give --idempotency-key to make a retry safe'],
      [drain, 'session.drain', 'sessionKey', '; the events may still have been consumed: `switchboard session peek` shows what is left'],
      [status, 'gateway.status', 'version', ''],
    ] as const) {
      assertExit(result, 3);
      assert.is(result.stdout, '');
      assert.is(
        result.stderr,
        `switchboard: the answer to ${method} from ws://127.0.0.1:${other.url.port} cannot be read as a switchboard gateway's (result lacks "${missing}"): another service, or a gateway of a version this client cannot read${uncertain}\n`,
      );
    }
    assertExit(json, 3);
    assert.equal(JSON.parse(json.stdout).error.data, { name: 'GATEWAY_REJECTED' });
  } finally {
    await other.close();
  }
});

test('exit 3 with --json: one error object on stdout with the CLI code (unreachable, token refused, no token)', async ({ gw }) => {
  const [unreachable, refused, noToken, watch] = await Promise.all([
    runCli(['system', 'event', '--text', 'x', '--json', '--url', 'ws://127.0.0.1:1', '--token', 'x']),
    runCli(['status', '--json', '--url', gw.url, '--token', 'not-the-token']),
    runCli(['session', 'peek', '--json', '--url', gw.url, '--data-dir', makeTempDir()]),
    runCli(['session', 'watch', '--json', '--url', gw.url, '--token', 'not-the-token']),
  ]);
  const cases: [CliResult, number, string][] = [
    [unreachable, 2001, 'GATEWAY_UNREACHABLE'],
    [refused, 2002, 'TOKEN_REFUSED'],
    [noToken, 2007, 'NO_TOKEN'],
    [watch, 2002, 'TOKEN_REFUSED'],
  ];
  for (const [result, code, name] of cases) {
    const error = parseJsonError(result, 3);
    assert.equal([error.code, error.data], [code, { name }]);
    assert.is(`switchboard: ${error.message}\n`, result.stderr, 'the same message as on stderr');
  }
});

/** script(1) gives a command a terminal: Linux's util-linux has it. */
const withTerminal = process.platform === 'linux' && spawnSync('script', ['--version']).status === 0 ? test : test.skip;

withTerminal('session watch at a terminal says what it watches, on stderr, once connected', async ({ gw }) => {
  const key = freshKey();
  // What the watch prints, stdout and stderr, comes out of script's terminal here.
  const command = [process.execPath, CLI_PATH, 'session', 'watch', '--session-key', key, '--data-dir', gw.dataDir].map((arg) => `'${arg}'`).join(' ');
  const terminal = spawn('script', ['-qfc', `exec ${command}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] });
  let seen = '';
  terminal.stdout.setEncoding('utf8').on('data', (chunk: string) => (seen += chunk));
  try {
    await waitUntil(() => seen.includes('Ctrl-C to stop'), 'the line');
    assert.ok(seen.includes(`switchboard: watching ${key} at unix:${path.join(gw.dataDir, 'gateway.sock')}; Ctrl-C to stop`), seen);
  } finally {
    // exec: the watch is script's child itself, ended with its terminal.
    terminal.kill('SIGTERM');
  }
});

test('session watch piped says nothing on stderr: its stdout is events only, its stderr for what goes wrong', async ({ gw }) => {
  const key = freshKey();
  const piped = spawnCli(['session', 'watch', '--session-key', key, ...conn(gw)]);
  assertExit(await runCli(['system', 'event', '--text', 'seen', '--session-key', key, ...conn(gw)]), 0);
  await piped.waitForLines(1);
  assert.is(await piped.stop('SIGINT'), 0);
  assert.is(piped.stderr(), '');
});

test('exit 3: a URL ending in one of the gateway\'s endpoints (/rpc) is refused with 404, and told to drop it', async ({ gw }) => {
  const hint = "the URL names the gateway's root (with a path only for a proxy in front of it): drop /rpc from it";
  for (const command of [['status'], ['session', 'watch']]) {
    const result = await runCli([...command, '--url', `${gw.url}/rpc`, '--token', gw.token]);
    assertExit(result, 3);
    assert.ok(result.stderr.includes('(PATH_NOT_FOUND 1020)') && result.stderr.endsWith(`; ${hint}\n`), result.stderr);
  }
  const elsewhere = await runCli(['status', '--url', `${gw.url}/x`, '--token', gw.token]);
  assert.not.match(elsewhere.stderr, 'drop');
});

test('exit 3: wrong token (flag or env), and no token anywhere', async ({ gw }) => {
  const empty = makeTempDir();
  const socketUrl = `unix:${path.join(gw.dataDir, 'gateway.sock')}`;
  const [flag, env, none] = await Promise.all([
    runCli(['system', 'event', '--text', 'x', '--url', gw.url, '--token', 'not-the-token']),
    runCli(['status', '--url', gw.url], { env: { SWITCHBOARD_TOKEN: 'not-the-token' } }),
    runCli(['status', '--url', socketUrl, '--data-dir', empty]),
  ]);
  for (const result of [flag, env]) {
    assertExit(result, 3);
    assert.match(result.stderr, /refused the token/);
    assert.is(result.stdout, '');
  }
  assertExit(none, 3);
  assert.is(
    none.stderr,
    `switchboard: no token for ${socketUrl}: ${path.join(empty, 'token')} does not exist; pass that gateway's token in SWITCHBOARD_TOKEN (or --token), or give --data-dir (or SWITCHBOARD_DATA_DIR) its data dir\n`,
  );
  // No URL: a gateway started with --data-dir, a CLI without. The way out is the data dir, not --token.
  const local = await runCli(['status', '--data-dir', empty]);
  assertExit(local, 3);
  assert.is(
    local.stderr,
    `switchboard: no token: ${path.join(empty, 'token')} does not exist, so no gateway has run with the data dir ${empty}: start one (\`switchboard gateway\`), or give --data-dir (or SWITCHBOARD_DATA_DIR) the running gateway's; for a gateway elsewhere, --url and SWITCHBOARD_TOKEN\n`,
  );
});

test('exit 3 NO_TOKEN, not a crash: a token file that cannot be read (a directory in its place, a data dir that is a file)', async ({ gw }) => {
  const tokenIsDir = makeTempDir();
  fs.mkdirSync(path.join(tokenIsDir, 'token'));
  const dataDirIsFile = path.join(makeTempDir(), 'file');
  fs.writeFileSync(dataDirIsFile, '');
  const [dir, file, watch] = await Promise.all([
    runCli(['status', '--json', '--data-dir', tokenIsDir]),
    runCli(['system', 'event', '--text', 'x', '--data-dir', dataDirIsFile]),
    runCli(['session', 'watch', '--agent', 'main', '--data-dir', tokenIsDir]),
  ]);
  const error = parseJsonError(dir, 3);
  assert.equal([error.code, error.data], [2007, { name: 'NO_TOKEN' }]);
  assert.is(
    dir.stderr,
    `switchboard: no token: token file ${path.join(tokenIsDir, 'token')} cannot be read (EISDIR): a directory is in its place: remove it to have the gateway write a new admin token when it next starts; or pass --token / SWITCHBOARD_TOKEN\n`,
  );
  for (const result of [file, watch]) {
    assertExit(result, 3);
    assert.is(result.stdout, '');
    assert.match(result.stderr, /^switchboard: no token: token file .* cannot be read \(E(NOTDIR|ISDIR)\): /);
    assert.not.match(result.stderr, /unexpected error|    at /);
  }
});

test('where the token and URL come from: --data-dir, SWITCHBOARD_DATA_DIR, --token, SWITCHBOARD_TOKEN, SWITCHBOARD_URL', async ({ gw }) => {
  const key = freshKey();
  const event = (text: string) => ['system', 'event', '--text', text, '--session-key', key];
  const results = await Promise.all([
    runCli([...event('via --data-dir'), '--data-dir', gw.dataDir]),
    runCli([...event('via SWITCHBOARD_DATA_DIR')], { env: { SWITCHBOARD_DATA_DIR: gw.dataDir } }),
    runCli([...event('via --token'), '--url', gw.url, '--token', gw.token]),
    runCli([...event('via SWITCHBOARD_TOKEN'), '--url', gw.url], { env: { SWITCHBOARD_TOKEN: gw.token } }),
    runCli([...event('via SWITCHBOARD_URL'), '--token', gw.token], { env: { SWITCHBOARD_URL: gw.url } }),
    // Flags win over the environment.
    runCli([...event('flag --token beats env'), '--url', gw.url, '--token', gw.token], { env: { SWITCHBOARD_TOKEN: 'wrong' } }),
    runCli([...event('flag --url beats env'), '--url', gw.url, '--token', gw.token], { env: { SWITCHBOARD_URL: 'ws://127.0.0.1:1' } }),
    runCli([...event('flag --data-dir beats env'), '--data-dir', gw.dataDir], { env: { SWITCHBOARD_DATA_DIR: makeTempDir() } }),
    // It names the gateway to call: SWITCHBOARD_URL yields to it too (QA: exported for CI, it had a
    // script's --data-dir ignored, and its event go elsewhere).
    runCli([...event('flag --data-dir beats SWITCHBOARD_URL'), '--data-dir', gw.dataDir], { env: { SWITCHBOARD_URL: 'ws://127.0.0.1:1' } }),
  ]);
  for (const result of results) assertExit(result, 0);
  // The data dir's token goes to its socket only, never to a TCP URL given (--url or SWITCHBOARD_URL).
  const overTcp: Array<[CliResult, string]> = [
    [await runCli([...event('never sent'), '--url', gw.url, '--data-dir', gw.dataDir, '--json']), gw.url],
    [await runCli([...event('never sent'), '--json'], { env: { SWITCHBOARD_URL: gw.url, SWITCHBOARD_DATA_DIR: gw.dataDir } }), gw.url],
    [await runCli([...event('never sent'), '--url', `${gw.url}/`, '--data-dir', gw.dataDir, '--json']), `${gw.url}/`],
  ];
  for (const [result, url] of overTcp) {
    const message = `no token for ${url}: the data dir's token (${path.join(gw.dataDir, 'token')}) is sent only to its gateway's socket, never over TCP, where any local user could listen while the gateway is down; pass that gateway's token in SWITCHBOARD_TOKEN (or --token), or call without --url / SWITCHBOARD_URL to use the data dir's socket`;
    assert.equal([result.code, result.stderr, JSON.parse(result.stdout)], [3, `switchboard: ${message}\n`, { error: { code: 2007, message, data: { name: 'NO_TOKEN' } } }]);
  }
  const read = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', key, '--json', '--url', gw.url, '--token', gw.token]));
  assert.equal(read.events.map((e) => e.text).sort(), [
    'flag --data-dir beats SWITCHBOARD_URL',
    'flag --data-dir beats env',
    'flag --token beats env',
    'flag --url beats env',
    'via --data-dir',
    'via --token',
    'via SWITCHBOARD_DATA_DIR',
    'via SWITCHBOARD_TOKEN',
    'via SWITCHBOARD_URL',
  ]);
  const unused = [
    await runCli([...event('data dir unused'), '--data-dir', makeTempDir(), '--url', gw.url, '--token', gw.token]),
    await runCli([...event('data dir unused'), '--data-dir', makeTempDir(), '--url', gw.url], { env: { SWITCHBOARD_TOKEN: gw.token } }),
  ];
  for (const result of unused) {
    assert.equal(
      [result.code, result.stdout, result.stderr],
      [2, '', 'switchboard: --data-dir plays no part beside --url and a token (--token or SWITCHBOARD_TOKEN), which name the gateway and what to send it: drop one or the other\n'],
    );
  }
});

/**
 * A reverse proxy that serves the gateway at `port` under `prefix`, as nginx's
 * `location /switchboard/ { proxy_pass http://127.0.0.1:18790/; }` would: the prefix is cut from
 * each request and upgrade on its way in; anything outside it is 404. `paths` records what came in.
 */
async function prefixProxy(prefix: string, port: number): Promise<{ url: string; paths: string[]; close(): Promise<void> }> {
  const paths: string[] = [];
  const sockets = new Set<Duplex>();
  const upstreamPath = (url = '/') => {
    paths.push(url);
    if (url !== prefix && !url.startsWith(`${prefix}/`) && !url.startsWith(`${prefix}?`)) return undefined;
    const rest = url.slice(prefix.length);
    return rest.startsWith('/') ? rest : `/${rest}`;
  };
  const server = http.createServer((request, response) => {
    const upstream = upstreamPath(request.url);
    if (upstream === undefined) return void response.writeHead(404).end('not proxied here\n');
    const forwarded = http.request({ host: '127.0.0.1', port, method: request.method, path: upstream, headers: request.headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
    request.pipe(forwarded);
  });
  server.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const upstream = upstreamPath(request.url);
    if (upstream === undefined) return void socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    const gateway = net.connect(port, '127.0.0.1', () => {
      const headers = request.rawHeaders.map((text, i) => (i % 2 === 0 ? `${text}: ` : `${text}\r\n`)).join('');
      gateway.write(`GET ${upstream} HTTP/1.1\r\n${headers}\r\n`);
      gateway.write(head);
      gateway.pipe(socket).pipe(gateway);
    });
    for (const end of [socket, gateway]) {
      sockets.add(end);
      end.on('error', () => {});
      end.on('close', () => sockets.delete(end));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    paths,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

test('--url with a path (a gateway behind a reverse proxy): session watch connects to it as given, one-shot commands post to <path>/rpc', async ({ gw }) => {
  const proxy = await prefixProxy('/switchboard', gw.port);
  try {
    const agent = `proxied${++unique}`;
    const auth = ['--token', gw.token];
    const watch = spawnCli(['session', 'watch', '--agent', agent, '--json', '--url', `${proxy.url}/switchboard`, ...auth]);
    // With or without the trailing slash, and with a query, which is passed on as given.
    for (const [url, text] of [
      [`${proxy.url}/switchboard`, 'one'],
      [`${proxy.url}/switchboard/`, 'two'],
      [`${proxy.url}/switchboard?via=proxy`, 'three'],
    ]) {
      parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', text!, '--agent', agent, '--json', '--url', url!, ...auth]));
    }
    const lines = await watch.waitForLines(3);
    assert.equal(lines.map((line) => (JSON.parse(line) as { text: string }).text), ['one', 'two', 'three']);
    assert.is(await watch.stop(), 0);
    // In any order: the watch connects while the events are sent (it shows the backlog first).
    assert.equal(proxy.paths.sort(), ['/switchboard', '/switchboard/rpc', '/switchboard/rpc', '/switchboard/rpc?via=proxy']);
    // Without the proxy, the gateway itself serves no such path: the call is refused, not sent elsewhere.
    const direct = await runCli(['status', '--url', `${gw.url}/switchboard`, ...auth]);
    assertExit(direct, 3);
    assert.is(direct.stderr, `switchboard: the gateway at ${gw.url}/switchboard refused the call (HTTP 404: no route /switchboard/rpc: use POST /rpc, POST /hooks/wake or GET /healthz (PATH_NOT_FOUND 1020))\n`);
  } finally {
    await proxy.close();
  }
});

// ---------------------------------------------------------------- session and status commands

test('a token that starts with "-" (data dirs from before the sba_ prefix) works as --token and from the file', async () => {
  const dataDir = makeTempDir();
  // One base64url secret in 64 starts with "-": read as flags, this one would print the help.
  const token = '-hv' + 'A'.repeat(40);
  fs.writeFileSync(path.join(dataDir, 'token'), `${token}\n`, { mode: 0o600 });
  const gw = await startGatewayProcess({ dataDir });
  assert.is(gw.token, token);
  const viaFlag = parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', 'dash', '--json', '--url', gw.url, '--token', token]));
  const viaFile = parseJsonOut<RoutingJson>(await runCli(['system', 'event', '--text', 'dash', '--json', '--data-dir', dataDir]));
  assert.equal([viaFlag.queue.seq, viaFile.duplicate, viaFile.queue.status], [1, false, 'deduplicated']);
  await gw.stop();
});

test('session ack consumes up to a seq without showing the events, human and --json; a seq never issued is exit 1, a missing --seq or session exit 2 (QA: no CLI way to ack what peek showed)', async ({ gw }) => {
  const key = 'agent:cliack:telegram:group:G1:topic:7';
  for (const text of ['one', 'two', 'three']) assertExit(await runCli(['system', 'event', '--text', text, '--session-key', key, ...conn(gw)]), 0);
  const human = await runCli(['session', 'ack', '--session-key', key, '--seq', '2', ...conn(gw)]);
  assertExit(human, 0);
  assert.is(human.stdout, `acked 2 events of ${key}, up to seq 2; 1 still pending\n`);
  const again = parseJsonOut<{ sessionKey: string; seq: number; acked: number; depth: number }>(await runCli(['session', 'ack', '--session-key', key, '--seq', '2', '--json', ...conn(gw)]));
  assert.equal(again, { sessionKey: key, seq: 2, acked: 0, depth: 1 });
  assert.equal(parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', key, '--json', ...conn(gw)])).events.map((e) => e.text), ['three']);
  const beyond = await runCli(['session', 'ack', '--session-key', key, '--seq', '9', ...conn(gw)]);
  assertExit(beyond, 1);
  assert.match(beyond.stderr, /\(code 1004\)\n$/);
  for (const [args, message] of [
    [['--session-key', key], '--seq is required'],
    [['--seq', '3'], '--session-key (or --agent) is required'],
    [['--session-key', key, '--seq', '0'], '--seq must be an integer of at least 1 (got "0")'],
  ] as const) {
    const refused = await runCli(['session', 'ack', ...args, ...conn(gw)]);
    assertExit(refused, 2);
    assert.match(refused.stderr, message);
  }
  assertExit(await runCli(['session', 'ack', '--agent', 'cliack', '--seq', '1', ...conn(gw)]), 1);
});

test('session peek / drain / list and status work, human and --json', async ({ gw }) => {
  const key = 'agent:clisess:slack:channel:C9';
  for (const text of ['first', 'second', 'third']) {
    assertExit(await runCli(['system', 'event', '--text', text, '--session-key', key, ...conn(gw)]), 0);
  }

  const peekHuman = await runCli(['session', 'peek', '--session-key', key, ...conn(gw)]);
  assertExit(peekHuman, 0);
  const peekLines = peekHuman.stdout.trimEnd().split('\n');
  assert.is(peekLines.length, 4, peekHuman.stdout);
  assert.ok(peekLines[0]!.startsWith(`${key}: `), `header names the session: ${peekLines[0]}`);
  assert.match(peekLines[0]!, /\b3\b/);
  assert.match(peekLines[1]!, /^#1 \S+ next-heartbeat first$/);
  assert.match(peekLines[2]!, /^#2 \S+ next-heartbeat second$/);
  assert.match(peekLines[3]!, /^#3 \S+ next-heartbeat third$/);

  const paged = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', key, '--after', '1', '--limit', '1', '--json', ...conn(gw)]));
  assert.equal([paged.events.map((e) => e.seq), paged.more, paged.depth], [[2], true, 3]);
  // The largest --limit the gateway takes goes through.
  assert.is(parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--session-key', key, '--limit', '1000', '--json', ...conn(gw)])).events.length, 3);
  assertExit(await runCli(['session', 'list', '--limit', '1000', ...conn(gw)]), 0);
  // Past the last seq: nothing shown, but the events are there.
  const pastEnd = await runCli(['session', 'peek', '--session-key', key, '--after', '10', ...conn(gw)]);
  assert.is(pastEnd.stdout, `${key}: no events after seq 10; 3 pending in the session (give a lower --after, or none, to see them)\n`);

  const list = parseJsonOut<{ sessions: { sessionKey: string; pending: number }[] }>(await runCli(['session', 'list', '--agent', 'clisess', '--json', ...conn(gw)]));
  assert.equal(list.sessions.map((s) => [s.sessionKey, s.pending]), [[key, 3]]);
  const listHuman = await runCli(['session', 'list', '--agent', 'clisess', ...conn(gw)]);
  assertExit(listHuman, 0);
  assert.match(listHuman.stdout, new RegExp(`^3  ${key}  \\(last event `));

  const drained = parseJsonOut<ReadJson>(await runCli(['session', 'drain', '--session-key', key, '--limit', '2', '--json', ...conn(gw)]));
  assert.equal([drained.events.map((e) => e.text), drained.depth, drained.more], [['first', 'second'], 1, true]);
  const drainHuman = await runCli(['session', 'drain', '--session-key', key, ...conn(gw)]);
  assertExit(drainHuman, 0);
  assert.match(drainHuman.stdout, /^agent:clisess:slack:channel:C9: .*drained.*\n#3 \S+ next-heartbeat third\n$/);
  const emptyPeek = await runCli(['session', 'peek', '--session-key', key, ...conn(gw)]);
  assert.is(emptyPeek.stdout, `${key}: no pending events\n`);
  const emptyList = await runCli(['session', 'list', '--agent', 'clisess', ...conn(gw)]);
  assert.is(emptyList.stdout, 'no sessions with pending events\n');

  const status = parseJsonOut<{ version: string; dataDir: string; connections: number }>(await runCli(['status', '--json', ...conn(gw)]));
  assert.is(status.version, PACKAGE_VERSION);
  assert.is(status.dataDir, gw.dataDir);
  assert.is(status.connections, 0, 'one-shot CLI calls go over POST /rpc and hold no WebSocket connection');
  const statusHuman = await runCli(['status', ...conn(gw)]);
  assertExit(statusHuman, 0);
  assert.match(statusHuman.stdout, new RegExp(`^switchboard gateway ${PACKAGE_VERSION.replace(/\./g, '\\.')}, up \\d+ s`));
  assert.ok(statusHuman.stdout.includes(`data dir:    ${gw.dataDir}`), statusHuman.stdout);
});

test("session list cut short names the command for the next page, the same gateway's options and --after quoted for a shell; run by a shell as printed, it lists the rest", async ({ gw }) => {
  for (const id of ["a'q", 'z']) {
    assertExit(await runCli(['system', 'event', '--text', `to ${id}`, '--session-key', `agent:clipages:direct:${id}`, ...conn(gw)]), 0);
  }
  const first = await runCli(['session', 'list', '--agent', 'clipages', '--limit', '1', ...conn(gw)]);
  assertExit(first, 0);
  const hint = first.stdout.trimEnd().split('\n').at(-1)!;
  const command = `switchboard session list --agent clipages --limit 1 --data-dir ${gw.dataDir} --after '1:agent:clipages:direct:a'\\''q'`;
  assert.is(hint, `(more sessions: ${command})`);
  const rest = spawnSync('sh', ['-c', command.replace(/^switchboard /, `"${process.execPath}" "${CLI_PATH}" `)], { encoding: 'utf8' });
  assert.is(rest.status, 0, rest.stderr);
  assert.match(rest.stdout, /^1  agent:clipages:direct:z  \(last event [^)]+\)\n$/);
  // A token given on the command line is not printed: a word in its place that no shell reads as a redirection.
  const overTcp = await runCli(['session', 'list', '--agent', 'clipages', '--limit', '1', '--url', gw.url, '--token', gw.token]);
  assertExit(overTcp, 0);
  assert.is(overTcp.stdout.trimEnd().split('\n').at(-1), `(more sessions: switchboard session list --agent clipages --limit 1 --url ${gw.url} --token '<token>' --after '1:agent:clipages:direct:a'\\''q')`);
});

test('session peek --agent reads that agent main session; default is agent:main:main', async ({ gw }) => {
  assertExit(await runCli(['system', 'event', '--text', 'for peekagent', '--agent', 'peekagent', ...conn(gw)]), 0);
  const read = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--agent', 'peekagent', '--json', ...conn(gw)]));
  assert.is(read.sessionKey, 'agent:peekagent:main');
  assert.equal(read.events.map((e) => e.text), ['for peekagent']);
  const main = parseJsonOut<ReadJson>(await runCli(['session', 'peek', '--json', ...conn(gw)]));
  assert.is(main.sessionKey, 'agent:main:main');
  // An event sent with a key is not in the main session: the empty read says where to look (QA).
  assertExit(await runCli(['system', 'event', '--text', 'keyed', '--session-key', 'agent:peekagent:slack:channel:C1', ...conn(gw)]), 0);
  assertExit(await runCli(['session', 'drain', '--agent', 'peekagent', ...conn(gw)]), 0);
  const empty = await runCli(['session', 'peek', '--agent', 'peekagent', ...conn(gw)]);
  assert.is(empty.stdout, `agent:peekagent:main: no pending events (the agent's other sessions: switchboard session list --agent peekagent --data-dir ${gw.dataDir})\n`);
  const named = await runCli(['session', 'peek', '--session-key', 'agent:peekagent:main', ...conn(gw)]);
  assert.is(named.stdout, 'agent:peekagent:main: no pending events\n', 'a session named is the one asked about');
});

// ---------------------------------------------------------------- help, version, gateway

test('--help says that a token given as --token can be read by other local users (ps), and what to use instead', async () => {
  for (const command of [['status'], ['token', 'create'], ['session', 'watch']]) {
    const result = await runCli([...command, '--help']);
    assert.is(result.code, 0, explain(result));
    const line = result.stdout.split('\n').find((text) => text.trimStart().startsWith('--token'));
    assert.ok(line?.includes('other local users can read it here with ps'), `switchboard ${command.join(' ')} --help: ${line}`);
    assert.ok(line?.includes('SWITCHBOARD_TOKEN'), `switchboard ${command.join(' ')} --help: ${line}`);
  }
});

test('options given before the command are read as if after it, for commands of one word and of two', async ({ gw }) => {
  const event = await runCli([...conn(gw), '--json', 'system', 'event', '--text', 'options first', '--session-key', 'agent:first:main']);
  const [list, status] = await Promise.all([runCli(['--json', ...conn(gw), 'session', 'list', '--agent', 'first']), runCli(['--json', ...conn(gw), 'status'])]);
  assert.is(parseJsonOut<{ sessionKey: string }>(event).sessionKey, 'agent:first:main');
  assert.equal(parseJsonOut<{ sessions: Array<{ sessionKey: string }> }>(list).sessions.map((session) => session.sessionKey), ['agent:first:main']);
  assert.ok(parseJsonOut<{ version: string }>(status).version);
  const bogus = await runCli(['--bogus', 'system', 'event', '--text', 'x']);
  assertExit(bogus, 2);
  assert.is(bogus.stderr, 'switchboard: unknown option `--bogus`: see `switchboard system event --help`\n');
  // A misspelt option meant to take a value: the command after its value, and the option named.
  const typo = await runCli(['--agnt', 'a1', 'session', 'list']);
  assertExit(typo, 2);
  assert.is(typo.stderr, 'switchboard: unknown option `--agnt`: did you mean --agent? Or see `switchboard session list --help`\n');
  const group = await runCli(['--json', 'session']);
  assertExit(group, 2);
  assert.match(group.stderr, /^switchboard: "session" needs a command: /);
  const misspelt = await runCli(['--json', 'session', 'lst', '--agent', 'a']);
  assertExit(misspelt, 2);
  assert.match(misspelt.stderr, /^switchboard: unknown command "session lst": did you mean `switchboard session list`\?/);
  // An option's value is never taken for the command, even one that names a command.
  const [named, spaced] = await Promise.all([
    runCli(['--text', 'status', ...conn(gw), '--json', 'system', 'event', '--session-key', 'agent:first:direct:v']),
    runCli(['--text', 'system event', ...conn(gw), '--json', 'system', 'event', '--session-key', 'agent:first:direct:v']),
  ]);
  assert.equal([named, spaced].map((result) => parseJsonOut<{ queue: { seq: number } }>(result).queue.seq).sort(), [1, 2]);
  const peek = parseJsonOut<{ events: Array<{ text: string }> }>(await runCli(['session', 'peek', '--json', ...conn(gw), '--session-key', 'agent:first:direct:v']));
  assert.equal(peek.events.map((event) => event.text).sort(), ['status', 'system event']);
  const dataDirNamedGateway = await runCli(['--data-dir', path.join(makeTempDir(), 'gateway'), 'status']);
  assertExit(dataDirNamedGateway, 3);
  assert.match(dataDirNamedGateway.stderr, /^switchboard: no token: .*\/gateway\/token does not exist/);
});

test('--help on each command exits 0 and lists its options, and its example as the usage line is written', async () => {
  const common = ['--json', '--url', '--token', '--data-dir', '--timeout'];
  const cases: [string[], string[]][] = [
    [['system', 'event'], ['--text', '--mode', '--session-key', '--agent', '--context-key', '--idempotency-key', ...common, "Examples:\n  $ switchboard system event --text 'Task done!'"]],
    [['token', 'list'], ['--limit', '--after', ...common, 'Examples:\n  $ switchboard token list\n']],
    [['session', 'peek'], ['--session-key', '--agent', '--after', '--limit', ...common]],
    [['session', 'drain'], ['--session-key', '--agent', '--after', '--limit', ...common]],
    [['session', 'list'], ['--agent', '--limit', ...common]],
    [['session', 'ack'], ['--session-key', '--agent', '--seq', ...common]],
    [['token', 'create'], ['--agent', '--can', '--name', ...common]],
    [['session', 'watch'], ['--session-key', '--agent', '--after', '--ack', ...common]],
    [['trace'], common],
    [['status'], common],
    [['gateway'], ['--host', '--port', '--data-dir', '--max-pending']],
    [[], ['system event', 'session peek', 'session drain', 'session list', 'status', 'gateway', 'Exit codes']],
    // A group's help: its own commands.
    [['token'], ['$ switchboard token <command> [options]', 'token create', 'token list', 'token revoke <tokenId>', 'Exit codes']],
    [['session'], ['$ switchboard session <command> [options]', 'session peek', 'session drain', 'session list', 'session watch', 'Exit codes']],
  ];
  const results = await Promise.all(cases.map(([command]) => runCli([...command, '--help'])));
  results.forEach((result, i) => {
    const [command, expected] = cases[i]!;
    assert.is(result.code, 0, `switchboard ${command.join(' ')} --help\n${explain(result)}`);
    for (const option of expected) assert.ok(result.stdout.includes(option), `switchboard ${command.join(' ')} --help mentions ${option}`);
    assert.not.match(result.stdout, / \n/, `switchboard ${command.join(' ')} --help: no line ends in a space`);
  });
  // -h is the same, and so is --help where a value belongs (README: write --text=--help to send it).
  assertExit(await runCli(['system', 'event', '-h']), 0);
  const textHelp = await runCli(['system', 'event', '--text', '--help']);
  assertExit(textHelp, 0);
  assert.match(textHelp.stdout, /--text <text> +What happened/);
  // Each command's help lists its own exit codes: for the gateway, 1 is "could not start".
  const help = (command: string) => results[cases.findIndex(([words]) => words.join(' ') === command)]!.stdout;
  assert.match(help('gateway'), /\n {2}1 {2}could not start \(port or data dir in use, data dir unusable\)/);
  assert.not.match(help('gateway'), /answered with an error|could not connect/);
  // Right-aligned, so the one-digit codes line up with 130.
  assert.match(help('system event'), /\n {4}1 {2}the gateway answered with an error \(but SHUTTING_DOWN, which left nothing done: 3\)\n/);
  assert.match(help('system event'), /\n {2}130 {2}interrupted by Ctrl-C/);
  assert.match(help(''), /switchboard session watch and switchboard gateway have their own: see their --help/);
  const commandsIn = (command: string) => help(command).slice(0, help(command).indexOf('Exit codes'));
  assert.not.match(commandsIn('token'), /system event|session peek|status/);
  assert.not.match(help('token'), /have their own|has its own/);
  assert.match(help('session'), /\(switchboard session watch has its own: see its --help\)/);
  assert.not.match(commandsIn('session'), /token create|system event/);
  // session watch prints JSON lines, and its --timeout is not a limit on the watch.
  const watch = help('session watch');
  assert.match(watch, /--json +Print each event as one JSON object on its own line \(JSON lines\)/);
  assert.not.match(watch, /one JSON object on stdout/);
  assert.match(watch, /--timeout <ms> +Give up connecting, subscribing or acking after this many milliseconds \(default 10000\); the watch itself runs until interrupted/);
  // A command's help says what it does, under the version line (QA: system event's said nothing), and system event's lists the key forms.
  assert.match(help('system event'), /^switchboard\/\S+\n\nTell an agent that something happened; prints where the event went\n\nUsage:/);
  assert.match(help('status'), /^switchboard\/\S+\n\nShow the gateway version/);
  // The usage line names the options a command cannot run without (QA: cac's listed none).
  assert.match(help('system event'), /\nUsage:\n {2}\$ switchboard system event --text <text> \[options\]\n/);
  assert.match(help('session ack'), /\nUsage:\n {2}\$ switchboard session ack \(--session-key <key> \| --agent <agentId>\) --seq <seq> \[options\]\n/);
  assert.match(help('token create'), /\nUsage:\n {2}\$ switchboard token create --agent <agentId> \[options\]\n/);
  assert.match(help('trace'), /\nUsage:\n {2}\$ switchboard trace <eventId> \[options\]\n/);
  assert.match(help('status'), /\nUsage:\n {2}\$ switchboard status \[options\]\n/);
  assert.ok(help('system event').includes(`Session keys:\n${SESSION_KEY_FORMS.map((form) => `  ${form}\n`).join('')}`), help('system event'));
  // peek and drain read one session: where the agent's others are (QA: drain --agent main left its threads behind).
  for (const read of ['session peek', 'session drain']) assert.match(help(read), /Other sessions:\n {2}--agent reads that agent's main session alone; .*\n {2}`switchboard session list --agent <agentId>`/);
});

test('session watch --help lists the exit codes of a watch, not those of a one-shot call', async () => {
  const result = await runCli(['session', 'watch', '--help']);
  assertExit(result, 0);
  const exitCodes = result.stdout.slice(result.stdout.indexOf('Exit codes:'));
  assert.is(
    exitCodes,
    [
      'Exit codes:',
      '  0  stopped by SIGINT or SIGTERM, or the reader of its output went away (| head)',
      "  1  the gateway refused the subscription or an ack (a malformed --session-key, another agent's session)",
      '  2  usage error (--after without --session-key, unknown option)',
      '  3  could not connect or subscribe (unreachable, token refused, timed out), or the token was',
      '     revoked while watching; a gateway restart or outage is waited out, not an exit',
      '  4  an event could not be written to stdout (disk full, not a reader that went away); it was not acked',
      '',
    ].join('\n'),
  );
});

test('--version and -v print the package version, platform and Node.js version, and exit 0; to a reader that went away, exit 0 quietly (as --help); to a full disk, exit 4', async () => {
  const line = `switchboard/${PACKAGE_VERSION} ${process.platform}-${process.arch} node-${process.version}\n`;
  for (const args of [['--version'], ['-v'], ['--version', '-v']]) {
    const result = await runCli(args);
    assertExit(result, 0);
    assert.is(result.stdout, line, args.join(' '));
    assert.is(result.stderr, '');
  }
  // Nothing given is ignored: an argument beside the flag is an unknown command, an option is refused.
  for (const args of [['--version', 'extra'], ['-v', 'extra'], ['extra', '--version']]) {
    const result = await runCli(args);
    assertExit(result, 2);
    assert.is(result.stdout, '', args.join(' '));
    assert.is(result.stderr, 'switchboard: unknown command "extra": run `switchboard --help` for the list\n');
  }
  for (const [args, got] of [[['--version', '--json'], '--json'], [['--bogus', '-v'], '--bogus'], [['--version', '--token', 'x'], '--token']] as const) {
    const result = await runCli([...args]);
    assertExit(result, 2);
    assert.is(result.stdout, '', args.join(' '));
    assert.is(result.stderr, `switchboard: --version takes nothing beside it (got \`${got}\`): \`switchboard --version\`\n`);
  }
  for (const flag of ['--version', '-v']) {
    const version = spawnCli([flag]);
    // Closed long before the CLI has started, as `| true` may be: its write fails (EPIPE).
    version.process.stdout!.destroy();
    assert.is(await version.exited(`${flag} to exit once stdout is closed`), 0, version.stderr());
    assert.is(version.stderr(), '', 'no message: the reader chose to stop');
  }
  if (fs.existsSync('/dev/full')) {
    const full = fs.openSync('/dev/full', 'w');
    try {
      const result = await runCli(['--version'], { stdout: full });
      assertExit(result, 4);
      assert.is(result.stderr, 'switchboard: could not write the version to stdout (ENOSPC: no space left on device)\n');
    } finally {
      fs.closeSync(full);
    }
  }
});

test('a second gateway on the same data dir exits non-zero, saying the data dir is in use', async ({ gw }) => {
  const second = await runCli(['gateway', '--port', '0', '--data-dir', gw.dataDir]);
  assert.ok(second.code !== 0 && second.code !== null, explain(second));
  assert.is(second.code, 1, explain(second));
  assert.match(second.stderr, /in use/);
  assert.is(second.stdout, '', 'it never claimed to be listening');
  // The first is unharmed.
  assertExit(await runCli(['status', ...conn(gw)]), 0);
});

test('a data dir in use: the message says how that data dir was chosen (--data-dir, SWITCHBOARD_DATA_DIR, the default)', async () => {
  // $XDG_DATA_HOME/switchboard is the default data dir: the first gateway holds it.
  const home = makeTempDir();
  const first = await startGatewayProcess({ dataDir: path.join(home, 'switchboard') });
  const inUse = `data dir ${first.dataDir} is in use by another switchboard gateway: stop that gateway, or use another data dir`;
  const [byFlag, byEnv, byDefault] = await Promise.all([
    runCli(['gateway', '--port', '0', '--data-dir', first.dataDir]),
    runCli(['gateway', '--port', '0'], { env: { SWITCHBOARD_DATA_DIR: first.dataDir } }),
    runCli(['gateway', '--port', '0'], { env: { XDG_DATA_HOME: home } }),
  ]);
  for (const [result, origin] of [
    [byFlag, 'the data dir was given by --data-dir'],
    [byEnv, 'the data dir was given by SWITCHBOARD_DATA_DIR'],
    [byDefault, 'the default data dir: choose another with --data-dir or SWITCHBOARD_DATA_DIR'],
  ] as const) {
    assertExit(result, 1);
    assert.is(result.stderr, `switchboard: cannot start: ${inUse} (${origin})\n`);
  }
  await first.stop();
});

test('a gateway on a --host that is not an address of this machine exits 1, naming --host and the fix', async () => {
  const [unknown, elsewhere] = await Promise.all([
    runCli(['gateway', '--port', '0', '--host', 'no-such-host.invalid', '--data-dir', makeTempDir()]),
    // TEST-NET-1 (RFC 5737): documentation only, assigned to no machine.
    runCli(['gateway', '--port', '0', '--host', '192.0.2.1', '--data-dir', makeTempDir()]),
  ]);
  for (const [result, errno] of [
    [unknown, /getaddrinfo (ENOTFOUND|EAI_AGAIN) no-such-host\.invalid/],
    [elsewhere, /listen EADDRNOTAVAIL: address not available 192\.0\.2\.1/],
  ] as const) {
    assertExit(result, 1);
    assert.is(result.stdout, '', 'it never claimed to be listening');
    assert.ok(result.stderr.startsWith('switchboard: cannot listen: --host is not an address of this machine ('), result.stderr);
    assert.match(result.stderr, errno);
    assert.ok(result.stderr.endsWith('); give one of its addresses, 127.0.0.1 (the default) or 0.0.0.0 for all\n'), result.stderr);
  }
});

test('a gateway on a port already taken exits 1, saying the port is in use', async ({ gw }) => {
  const result = await runCli(['gateway', '--port', String(gw.port), '--data-dir', makeTempDir()]);
  assertExit(result, 1);
  assert.match(result.stderr, /in use/);
  assert.match(result.stderr, /--port/);
});

test('the gateway creates a private data dir and token file on first start', async () => {
  const parent = makeTempDir();
  const dataDir = path.join(parent, 'nested', 'data');
  const gw = await startGatewayProcess({ dataDir });
  const token = fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim();
  assert.is(gw.token, token);
  assert.match(token, /^sba_[A-Za-z0-9_-]{43}$/);
  if (process.platform !== 'win32') {
    assert.is(fs.statSync(dataDir).mode & 0o777, 0o700);
    assert.is(fs.statSync(path.join(dataDir, 'token')).mode & 0o777, 0o600);
  }
  assert.match(gw.stdout(), new RegExp(`^switchboard gateway listening on ws://127\\.0\\.0\\.1:${gw.port} \\(data dir ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, token in `));
  // A call first: stopping at once would race the gateway's signal set-up (see durability.test.ts).
  assertExit(await runCli(['status', '--data-dir', dataDir]), 0);
  assert.is(await gw.stop('SIGINT'), 0);
  assert.match(gw.stderr(), /SIGINT received, shutting down/);
  // README: the listening line is all there is on stdout; the log went to stderr.
  assert.is(gw.stdout().split('\n').length, 2, gw.stdout());
});

test.run();
