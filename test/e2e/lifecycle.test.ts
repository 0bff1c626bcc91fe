/**
 * Graceful lifecycle of the gateway process: SIGTERM and SIGINT stop it (clients get 1001),
 * SIGHUP stops it for a restart (clients get 1012, so they know to reconnect); each exits 0 with
 * the store checkpointed, and what was answered is there after the next start. The same when no
 * one reads the gateway's output any more (`gateway 2>&1 | tee log`, then Ctrl-C).
 */
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, openRaw, resultOf, startGatewayProcess } from '../helpers/gateway.js';

const test = suite('e2e: gateway lifecycle');
test.after(cleanup);

for (const [signal, code, reason, logged] of [
  ['SIGTERM', 1001, 'gateway shutting down', 'shutting down: clients are told 1001'],
  ['SIGINT', 1001, 'gateway shutting down', 'shutting down: clients are told 1001'],
  ['SIGHUP', 1012, 'gateway restarting', 'shutting down for a restart: clients are told 1012 and reconnect to the next gateway'],
] as const) {
  test(`${signal}: clients are closed with ${code} "${reason}", the log says so, the process exits 0, the WAL is checkpointed`, async () => {
    const gateway = await startGatewayProcess();
    const socket = await openRaw(gateway.url, gateway.token);
    resultOf(await socket.call('system.event', { text: `before ${signal}` }));
    const closed = socket.closed();
    assert.is(await gateway.stop(signal), 0);
    const { code: closeCode, reason: closeReason } = await closed;
    assert.is(closeCode, code);
    assert.is(closeReason, reason);
    assert.match(gateway.stderr(), `switchboard gateway: ${signal} received, ${logged} (again to force)\n`);
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

test.run();
