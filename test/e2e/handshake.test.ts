/**
 * Connections that never authenticate: a client that connects and does not finish its request
 * headers (a WebSocket upgrade included) is dropped after the handshake timeout.
 */
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { HANDSHAKE_TIMEOUT_MS } from '../../src/protocol/constants.js';
import { cleanup, startTunedGateway, type InProcessGateway } from '../helpers/gateway.js';

const HANDSHAKE_MS = 200;
const test = suite<{ gateway: InProcessGateway }>('e2e: handshake timeout');

test.before(async (context) => {
  context.gateway = await startTunedGateway({ handshakeTimeoutMs: HANDSHAKE_MS });
});
test.after(cleanup);

/** Opens a raw TCP connection, writes `bytes`, and resolves with what came back and when it closed. */
function stall(port: number, bytes: string): Promise<{ reply: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let reply = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.setEncoding('utf8').on('data', (chunk: string) => (reply += chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ reply, closedAfterMs: Date.now() - started }));
    setTimeout(() => reject(new Error('the gateway kept a stalled handshake open for 5 s')), 5_000).unref();
  });
}

test('the default handshake timeout is 10 s', () => {
  assert.is(HANDSHAKE_TIMEOUT_MS, 10_000);
});

test('an upgrade whose headers never finish is answered 408 and closed after the timeout', async ({ gateway }) => {
  const { reply, closedAfterMs } = await stall(gateway.port, 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
  assert.match(reply, /^HTTP\/1\.1 408 /);
  assert.ok(closedAfterMs >= HANDSHAKE_MS, `closed after ${closedAfterMs} ms, before the timeout`);
});

test('a connection that sends nothing at all is closed after the timeout', async ({ gateway }) => {
  const { closedAfterMs } = await stall(gateway.port, '');
  assert.ok(closedAfterMs >= HANDSHAKE_MS, `closed after ${closedAfterMs} ms, before the timeout`);
});

test('a handshake that completes in time is not cut', async ({ gateway }) => {
  const response = await fetch(`http://127.0.0.1:${gateway.port}/healthz`);
  assert.is(response.status, 200);
});

test.run();
