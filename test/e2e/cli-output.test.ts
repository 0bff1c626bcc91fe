/**
 * What the real CLI does with its output: when the reader of its stdout goes away (`| head -1`),
 * and how it prints text from the gateway.
 */
import fs from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  cleanup,
  errorOf,
  freshAgent,
  openRaw,
  resultOf,
  runCli,
  spawnCli,
  startGatewayProcess,
  startGatewayProcessAt,
  startInProcessGateway,
  waitUntil,
  type InProcessGateway,
  type RawSocket,
} from '../helpers/gateway.js';

interface Context {
  gw: InProcessGateway;
  publisher: RawSocket;
}

const test = suite<Context>('e2e: CLI output', {} as Context);

test.before(async (context) => {
  context.gw = await startInProcessGateway();
  context.publisher = await openRaw(context.gw.url, context.gw.token);
});

test.after(async () => {
  await cleanup();
});

function connectionArgs(gw: InProcessGateway): string[] {
  return ['--url', gw.url, '--token', gw.token];
}

async function publishTexts(publisher: RawSocket, sessionKey: string, texts: readonly string[]): Promise<void> {
  for (const text of texts) resultOf(await publisher.call('system.event', { text, sessionKey }));
}

async function pendingTexts(publisher: RawSocket, sessionKey: string): Promise<string[]> {
  return resultOf<{ events: { text: string }[] }>(await publisher.call('session.peek', { sessionKey })).events.map((event) => event.text);
}

// ---------------------------------------------------------------- a gateway that goes away

test('session watch across a gateway restart: stderr says it is reconnecting and when it is back; stdout stays events only', async () => {
  const first = await startGatewayProcess();
  const agent = freshAgent('restart');
  const key = `agent:${agent}:main`;
  const watch = spawnCli(['session', 'watch', '--agent', agent, '--ack', '--json', '--url', first.url, '--token', first.token]);
  const publish = async (url: string, token: string, text: string) => {
    const peer = await openRaw(url, token);
    resultOf(await peer.call('system.event', { text, sessionKey: key }));
    peer.close();
  };
  await publish(first.url, first.token, 'before the restart');
  await watch.waitForLines(1);
  assert.is(await first.stop('SIGHUP'), 75);
  await waitUntil(() => watch.stderr().includes('reconnecting'), 'the watch to say it is reconnecting');
  const second = await startGatewayProcessAt({ dataDir: first.dataDir, port: first.port });
  await publish(second.url, second.token, 'after the restart');
  await watch.waitForLines(2);
  await waitUntil(() => watch.stderr().includes('reconnected'), 'the watch to say it is back');
  assert.equal(watch.stderr().split('\n'), [
    `switchboard: connection to ${first.url} closed (1012: gateway restarting); reconnecting (events wait in the gateway meanwhile)`,
    `switchboard: reconnected to ${first.url}; resuming after the last event shown`,
    '',
  ]);
  assert.equal(
    watch.lines().map((line) => (JSON.parse(line) as { text: string }).text),
    ['before the restart', 'after the restart'],
  );
  assert.is(await watch.stop(), 0);
  await second.stop('SIGTERM');
});

// ---------------------------------------------------------------- a reader that goes away

test('session watch --ack with stdout closed: exits 0 without a word, and acks nothing it could not print', async ({ gw, publisher }) => {
  const agent = freshAgent('closed');
  const key = `agent:${agent}:main`;
  const texts = Array.from({ length: 20 }, (_, i) => `pending ${i + 1}`);
  await publishTexts(publisher, key, texts);
  const watch = spawnCli(['session', 'watch', '--agent', agent, '--ack', ...connectionArgs(gw)]);
  // No reader from the start: the first line already fails (EPIPE).
  watch.process.stdout!.destroy();
  assert.is(await watch.exited('the watch to exit once stdout is closed'), 0, watch.stderr());
  assert.is(watch.stderr(), '', 'no stack trace, no message: the reader chose to stop');
  assert.equal(await pendingTexts(publisher, key), texts, 'every event is still pending');
});

test('session watch --ack whose reader leaves after one line: the next event ends it (exit 0, quiet) and stays pending', async ({ gw, publisher }) => {
  const agent = freshAgent('head');
  const key = `agent:${agent}:main`;
  await publishTexts(publisher, key, ['first', 'second', 'third']);
  const watch = spawnCli(['session', 'watch', '--agent', agent, '--ack', '--json', ...connectionArgs(gw)]);
  await watch.waitForLines(1);
  watch.process.stdout!.destroy();
  // A closed pipe shows only when written to: the event after the reader left is the first that cannot be.
  await publishTexts(publisher, key, ['after the reader left']);
  assert.is(await watch.exited('the watch to exit at its next line'), 0, watch.stderr());
  assert.is(watch.stderr(), '');
  const pending = await pendingTexts(publisher, key);
  assert.is(pending.at(-1), 'after the reader left', `never printed, so never acked: ${JSON.stringify(pending)}`);
});

// ---------------------------------------------------------------- an answer that cannot be written

/** stdout on a full disk: every write fails with ENOSPC, while the reader (a file) is still there. */
function fullDisk(): number {
  const fd = fs.openSync('/dev/full', 'w');
  fdsToClose.push(fd);
  return fd;
}
const fdsToClose: number[] = [];
test.after.each(() => {
  for (const fd of fdsToClose.splice(0)) fs.closeSync(fd);
});
const ENOSPC = 'could not write the answer to stdout (ENOSPC: no space left on device)';
/** /dev/full is Linux's. */
const onLinux = fs.existsSync('/dev/full');

(onLinux ? test : test.skip)('session drain --json to a full disk: exit 4, and stderr says which events were consumed all the same, with their ids', async ({ gw, publisher }) => {
  const key = `agent:${freshAgent('full')}:main`;
  const ids: string[] = [];
  for (const text of ['one', 'two']) ids.push(resultOf<{ eventId: string }>(await publisher.call('system.event', { text, sessionKey: key })).eventId);
  const drain = await runCli(['session', 'drain', '--session-key', key, '--json', ...connectionArgs(gw)], { stdout: fullDisk() });
  assert.is(drain.code, 4, drain.stderr);
  assert.is(
    drain.stderr,
    `switchboard: ${ENOSPC}; the 2 event(s) it drained from ${key} (seq 1 to 2) were consumed all the same, and are no longer pending: ` +
      `\`switchboard trace <eventId>\` shows each of these\n  #1 ${ids[0]}\n  #2 ${ids[1]}\n`,
  );
  assert.equal(await pendingTexts(publisher, key), [], 'drained: that is why it must be said');
});

(onLinux ? test : test.skip)('--help to a full disk: exit 4, saying the help was not written; to a reader that left, exit 0', async () => {
  for (const args of [['--help'], ['system', 'event', '--help']]) {
    const result = await runCli(args, { stdout: fullDisk() });
    assert.is(result.code, 4, result.stderr);
    assert.is(result.stderr, 'switchboard: could not write the help to stdout (ENOSPC: no space left on device)\n');
  }
  const help = spawnCli(['--help']);
  // Closed long before the CLI has started: its write fails (EPIPE).
  help.process.stdout!.destroy();
  assert.is(await help.exited('the help to exit once stdout is closed'), 0, help.stderr());
  assert.is(help.stderr(), '');
});

(onLinux ? test : test.skip)('status and system event to a full disk: exit 4 with one clean line; the event says it was stored', async ({ gw }) => {
  const status = await runCli(['status', ...connectionArgs(gw)], { stdout: fullDisk() });
  assert.is(status.code, 4, status.stderr);
  assert.is(status.stderr, `switchboard: ${ENOSPC}\n`);
  const key = `agent:${freshAgent('full')}:main`;
  const event = await runCli(['system', 'event', '--text', 'lost answer', '--session-key', key, ...connectionArgs(gw)], { stdout: fullDisk() });
  assert.is(event.code, 4, event.stderr);
  assert.match(event.stderr, new RegExp(`^switchboard: ${ENOSPC.replace(/[()]/g, '\\$&')}; the event was stored all the same \\(event [0-9a-f-]{36}, seq 1 of ${key}\\): do not send it again\n$`));
});

(onLinux ? test : test.skip)('session watch --ack to a full disk: exit 4, one clean line, and nothing acked', async ({ gw, publisher }) => {
  const key = `agent:${freshAgent('full')}:main`;
  await publishTexts(publisher, key, ['first', 'second']);
  const watch = spawnCli(['session', 'watch', '--session-key', key, '--ack', ...connectionArgs(gw)], { stdout: fullDisk() });
  assert.is(await watch.exited('the watch to exit at its first line'), 4, watch.stderr());
  assert.is(
    watch.stderr(),
    `switchboard: could not write event seq 1 of ${key} to stdout (ENOSPC: no space left on device); it was not acked, and stays pending for the next watcher\n`,
  );
  assert.equal(await pendingTexts(publisher, key), ['first', 'second']);
});

// ---------------------------------------------------------------- text from the gateway

/** What QA sent: a fake second line, colours, a bell, a carriage return, and CSI as one C1 character. */
const HOSTILE = 'line1\nline2\x1b[31mRED\x1b[0m\x07bell\rCR\x9b2J';
const SHOWN = 'line1\\nline2\\x1b[31mRED\\x1b[0m\\x07bell\\rCR\\x9b2J';
/** Control characters other than the newline ending each line: none may reach a terminal. */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

function assertNoControls(output: string, what: string): void {
  assert.not.match(output, CONTROL, `${what} holds a control character: ${JSON.stringify(output)}`);
}

test('human output escapes control characters in event text, token names and refusals; --json keeps them exact (a context key cannot hold them)', async ({ gw, publisher }) => {
  const agent = freshAgent('hostile');
  const key = `agent:${agent}:main`;
  assert.is(errorOf(await publisher.call('system.event', { text: HOSTILE, sessionKey: key, contextKey: 'ctx\x1b[1m' })).code, -32602);
  resultOf(await publisher.call('system.event', { text: HOSTILE, sessionKey: key, contextKey: 'ctx[1m' }));
  const args = connectionArgs(gw);

  const peek = await runCli(['session', 'peek', '--session-key', key, ...args]);
  assert.is(peek.code, 0, peek.stderr);
  assertNoControls(peek.stdout, 'session peek');
  const lines = peek.stdout.trimEnd().split('\n');
  assert.is(lines.length, 2, `a header and one line for the one event: ${peek.stdout}`);
  assert.ok(lines[1]!.endsWith(` next-heartbeat [ctx[1m] ${SHOWN}`), lines[1]);

  const json = await runCli(['session', 'peek', '--session-key', key, '--json', ...args]);
  assert.equal(
    (JSON.parse(json.stdout) as { events: { text: string; contextKey: string }[] }).events.map((event) => [event.text, event.contextKey]),
    [[HOSTILE, 'ctx[1m']],
  );

  const watch = spawnCli(['session', 'watch', '--session-key', key, ...args]);
  const [watched] = await watch.waitForLines(1);
  assert.is(await watch.stop('SIGINT'), 0, watch.stderr());
  assertNoControls(watch.stdout(), 'session watch');
  assert.ok(watched!.startsWith(`${key} #1 `) && watched!.endsWith(SHOWN), watched);

  const drain = await runCli(['session', 'drain', '--session-key', key, ...args]);
  assert.is(drain.code, 0, drain.stderr);
  assertNoControls(drain.stdout, 'session drain');
  assert.is(drain.stdout.trimEnd().split('\n').length, 2, drain.stdout);

  const created = await runCli(['token', 'create', '--agent', agent, '--name', 'ci\x1b[31m\nfake', ...args]);
  assert.is(created.code, 0, created.stderr);
  assertNoControls(created.stdout, 'token create');
  assert.ok(created.stdout.includes('"ci\\x1b[31m\\nfake"'), created.stdout);
  const listed = await runCli(['token', 'list', ...args]);
  assertNoControls(listed.stdout, 'token list');
  assert.ok(listed.stdout.includes('"ci\\x1b[31m\\nfake"'), listed.stdout);

  // The gateway quotes a bad key in its refusal as JSON, which leaves C1 characters as they are.
  const refused = await runCli(['system', 'event', '--text', 'x', '--session-key', 'agent:main:slack:channel:C\x9b1', ...args]);
  assert.is(refused.code, 1, refused.stderr);
  assertNoControls(refused.stderr, 'a refusal');
  assert.ok(refused.stderr.includes('C\\x9b1'), refused.stderr);
});

test.run();
