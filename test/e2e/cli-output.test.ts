/**
 * What the real CLI does with its output: when the reader of its stdout goes away (`| head -1`),
 * and how it prints text from the gateway.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  cleanup,
  freshAgent,
  openRaw,
  resultOf,
  spawnCli,
  startInProcessGateway,
  waitUntil,
  type CliProcess,
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

/** Its exit code once the CLI exits by itself: it is never signalled. */
async function exitedByItself(cli: CliProcess, what: string): Promise<number | null> {
  await waitUntil(() => cli.process.exitCode !== null || cli.process.signalCode !== null, what).catch((error: Error) =>
    assert.unreachable(`${error.message}\nstdout: ${cli.stdout()}\nstderr: ${cli.stderr()}`),
  );
  return cli.stop();
}

// ---------------------------------------------------------------- a reader that goes away

test('session watch --ack with stdout closed: exits 0 without a word, and acks nothing it could not print', async ({ gw, publisher }) => {
  const agent = freshAgent('closed');
  const key = `agent:${agent}:main`;
  const texts = Array.from({ length: 20 }, (_, i) => `pending ${i + 1}`);
  await publishTexts(publisher, key, texts);
  const watch = spawnCli(['session', 'watch', '--agent', agent, '--ack', ...connectionArgs(gw)]);
  // No reader from the start: the first line already fails (EPIPE).
  watch.process.stdout!.destroy();
  assert.is(await exitedByItself(watch, 'the watch to exit once stdout is closed'), 0, watch.stderr());
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
  assert.is(await exitedByItself(watch, 'the watch to exit at its next line'), 0, watch.stderr());
  assert.is(watch.stderr(), '');
  const pending = await pendingTexts(publisher, key);
  assert.is(pending.at(-1), 'after the reader left', `never printed, so never acked: ${JSON.stringify(pending)}`);
});

test.run();
