/**
 * `switchboard session watch --ack` as an operator runs it for hours: an outage longer than its
 * --timeout with an ack outstanding is waited out like any other, and Ctrl-C ends it even when its
 * reader has stopped reading. Each against a real gateway process and the real CLI.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, CLI_PATH, openPeer, resultOf, sleep, spawnCli, startGatewayProcess, waitUntil } from '../helpers/gateway.js';

const test = suite('e2e: session watch --ack for the long run');
test.after(cleanup);

const KEY = 'agent:watcher:main';

/** `count` events on KEY, sent in batches through a socket of the admin's. */
async function publish(url: string, token: string, count: number): Promise<void> {
  const peer = await openPeer(url, token);
  for (let sent = 0; sent < count; sent += 100) {
    const batch = Array.from({ length: Math.min(100, count - sent) }, (_, i) => ({
      method: 'system.event',
      params: { text: `event ${sent + i + 1} ${'x'.repeat(100)}`, sessionKey: KEY },
    }));
    for (const answer of await peer.batch(batch)) resultOf(answer);
  }
  peer.close();
}

test('an outage longer than --timeout while an ack is outstanding is waited out: every event shown, all acked in the end, exit 0 on SIGINT', async () => {
  const gw = await startGatewayProcess();
  // Under the pending cap (1000), past which the oldest would be dropped.
  const COUNT = 900;
  await publish(gw.url, gw.token, COUNT);
  const watch = spawnCli(['session', 'watch', '--session-key', KEY, '--ack', '--json', '--timeout', '500', '--data-dir', gw.dataDir]);
  await watch.waitForLines(50);
  await gw.kill9();
  // Down for several of its --timeout: an ack in flight waits for the gateway, again and again.
  await sleep(2_000);
  assert.is(watch.process.exitCode, null, `the watch exited during the outage: ${watch.stderr()}`);
  const again = await startGatewayProcess({ dataDir: gw.dataDir });
  const shown = () => new Set(watch.lines().map((line) => (JSON.parse(line) as { seq: number }).seq)).size;
  await waitUntil(() => shown() === COUNT, 'every event shown', 20_000).catch((error: Error) => {
    throw new Error(`${error.message}: ${shown()} of ${COUNT}, exit ${watch.process.exitCode}, stderr: ${watch.stderr()}`);
  });
  const peer = await openPeer(again.url, again.token);
  await waitUntil(async () => resultOf<{ depth: number }>(await peer.call('session.peek', { sessionKey: KEY })).depth === 0, 'every event acked');
  peer.close();
  assert.is(await watch.stop('SIGINT'), 0);
  assert.match(watch.stderr(), 'reconnecting');
});

test('a watch refused on reconnect by a gateway set up anew on its data dir (a new token file) is told to run again, not to pass a token', async () => {
  const gw = await startGatewayProcess();
  const watch = spawnCli(['session', 'watch', '--session-key', KEY, '--data-dir', gw.dataDir]);
  let asked = 0;
  await waitUntil(async () => {
    const peer = await openPeer(gw.url, gw.token);
    // Each text its own: the same text again would be deduplicated, and pushed to no one.
    const { receivers } = resultOf<{ receivers: number }>(await peer.call('system.event', { text: `are you there? ${++asked}`, sessionKey: KEY }));
    peer.close();
    return receivers === 1;
  }, 'the watch subscribed').catch((error: Error) => {
    throw new Error(`${error.message}; the watch: exit ${watch.process.exitCode}, stderr ${watch.stderr()}`);
  });
  assert.is(await gw.stop('SIGTERM'), 0);
  fs.rmSync(path.join(gw.dataDir, 'token'));
  const anew = await startGatewayProcess({ dataDir: gw.dataDir });
  assert.is(await watch.exited('the watch to end, refused'), 3);
  assert.match(
    watch.stderr(),
    `refused the token: ${path.join(gw.dataDir, 'token')} holds another token than when this command read it (the admin token was replaced since: rotated, or the data dir set up anew): run the command again\n`,
  );
  assert.is(await anew.stop(), 0);
});

test('AFTER_OUT_OF_RANGE in the watch\'s words: an --after past the session\'s last seq, or a gateway back with its data dir reset below what the watch showed', async () => {
  const gw = await startGatewayProcess();
  await publish(gw.url, gw.token, 3);
  const ahead = spawnCli(['session', 'watch', '--session-key', KEY, '--after', '99', '--data-dir', gw.dataDir]);
  assert.is(await ahead.exited('the watch refused'), 1);
  assert.is(ahead.stderr(), `switchboard: --after 99 is past the last seq of session ${KEY} (3): give --after 3 or less, or none for every pending event\n`);

  const watch = spawnCli(['session', 'watch', '--session-key', KEY, '--json', '--data-dir', gw.dataDir]);
  await watch.waitForLines(3);
  assert.is(await gw.stop('SIGTERM'), 0);
  for (const file of fs.readdirSync(gw.dataDir).filter((name) => name.startsWith('switchboard.db'))) fs.rmSync(path.join(gw.dataDir, file));
  const reset = await startGatewayProcess({ dataDir: gw.dataDir });
  assert.is(await watch.exited('the watch refused after the reset'), 1);
  assert.match(
    watch.stderr(),
    `switchboard: the gateway came back holding session ${KEY} only up to seq 0, below seq 3 this watch has already shown (its data dir was reset or restored): run the watch again to start from what it holds\n`,
  );
  const json = JSON.parse(watch.stdout().split('\n').at(-2)!) as { error: { code: number; data: { name: string } } };
  assert.equal([json.error.code, json.error.data.name], [1019, 'AFTER_OUT_OF_RANGE']);
  assert.is(await reset.stop(), 0);
});

test('SIGINT while an ack waits for the gateway (killed, or stopped with the connection still open) ends the watch at once with 0, naming the event', async () => {
  for (const outage of ['kill -9', 'SIGSTOP'] as const) {
    const gw = await startGatewayProcess();
    await publish(gw.url, gw.token, 900);
    const watch = spawnCli(['session', 'watch', '--session-key', KEY, '--ack', '--json', '--timeout', '60000', '--data-dir', gw.dataDir]);
    await watch.waitForLines(50);
    if (outage === 'kill -9') await gw.kill9();
    else gw.process.kill('SIGSTOP');
    await sleep(300);
    const code = await Promise.race([watch.stop('SIGINT'), sleep(3_000).then(() => 'still running')]);
    if (outage === 'SIGSTOP') gw.process.kill('SIGCONT');
    assert.is(code, 0, `${outage}: ${watch.stderr()}`);
    const last = JSON.parse(watch.lines().at(-1)!) as { seq: number };
    assert.match(
      watch.stderr(),
      `switchboard: event seq ${last.seq} of ${KEY} was shown, and its ack not answered before the interrupt: if the gateway did not take it, the event comes again\n`,
    );
  }
});

test('SIGINT ends a watch whose reader stopped reading (its output blocked), with 0; what was not taken stays pending', async () => {
  const gw = await startGatewayProcess();
  const COUNT = 900;
  await publish(gw.url, gw.token, COUNT);
  const watch = spawn(process.execPath, [CLI_PATH, 'session', 'watch', '--session-key', KEY, '--ack', '--json', '--data-dir', gw.dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {},
  });
  let stderr = '';
  watch.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // Read one chunk, then no more: the pipe fills and the watch's next write waits.
  await new Promise((resolve) => watch.stdout.once('data', resolve));
  watch.stdout.pause();
  // Blocked once it acks no more: what is pending stops going down.
  const peer = await openPeer(gw.url, gw.token);
  const depth = async () => resultOf<{ depth: number }>(await peer.call('session.peek', { sessionKey: KEY })).depth;
  for (let last = -1, now = await depth(); now !== last; await sleep(300), last = now, now = await depth());
  const exited = new Promise<number | null>((resolve) => watch.once('exit', resolve));
  watch.kill('SIGINT');
  const code = await Promise.race([exited, sleep(5_000).then(() => 'still running')]);
  watch.kill('SIGKILL');
  assert.is(code, 0, stderr);
  assert.match(stderr, /was not wholly shown, nor acked; it stays pending\n$/);
  assert.ok((await depth()) > 0, 'events it could not show stay pending');
  peer.close();
});

test.run();
