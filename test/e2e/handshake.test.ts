/**
 * Connections that never authenticate: a client that connects and does not finish its request
 * headers (a WebSocket upgrade included) is dropped after the handshake timeout; one whose upgrade
 * is refused is closed once it has the answer, and cannot take the gateway down by resetting it;
 * an upgrade that is not an RFC 6455 handshake is refused with BAD_HANDSHAKE.
 */
import { maxHeaderSize } from 'node:http';
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { HANDSHAKE_TIMEOUT_MS } from '../../src/protocol/constants.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { cleanup, startGatewayProcess, startTunedGateway, waitUntil, type InProcessGateway } from '../helpers/gateway.js';
import { openRawHttp } from '../helpers/http.js';

const HANDSHAKE_MS = 200;
const test = suite<{ gateway: InProcessGateway }>('e2e: handshake timeout and refused handshakes');

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
  assert.ok(reply.endsWith(`{"error":{"code":1023,"message":"the request's headers did not arrive within ${HANDSHAKE_MS} ms","data":{"name":"BAD_HTTP_REQUEST"}}}`), reply);
  assert.ok(closedAfterMs >= HANDSHAKE_MS, `closed after ${closedAfterMs} ms, before the timeout`);
});

test('a request Node\'s parser refuses is answered with why, in JSON, as every other refusal: headers too large 431, not HTTP 400', async ({ gateway }) => {
  const large = await stall(gateway.port, `GET /?${'q'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n`);
  assert.match(large.reply, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  assert.ok(large.reply.endsWith(`{"error":{"code":1023,"message":"the request's headers are larger than ${maxHeaderSize} bytes: shorten its URL or headers","data":{"name":"BAD_HTTP_REQUEST"}}}`), large.reply);
  const garbage = await stall(gateway.port, 'SSH-2.0-OpenSSH_9.6\r\n\r\n');
  assert.match(garbage.reply, /^HTTP\/1\.1 400 Bad Request\r\nContent-Type: application\/json\r\n/);
  assert.ok(garbage.reply.endsWith('{"error":{"code":1023,"message":"the request is not HTTP/1.1 the gateway can read (HPE_INVALID_METHOD)","data":{"name":"BAD_HTTP_REQUEST"}}}'), garbage.reply);
});

test('a connection that sends nothing at all is closed after the timeout', async ({ gateway }) => {
  const { closedAfterMs } = await stall(gateway.port, '');
  assert.ok(closedAfterMs >= HANDSHAKE_MS, `closed after ${closedAfterMs} ms, before the timeout`);
});

test('a handshake that completes in time is not cut', async ({ gateway }) => {
  const response = await fetch(`http://127.0.0.1:${gateway.port}/healthz`);
  assert.is(response.status, 200);
});

/**
 * Writes `bytes` and resolves with the answer once the gateway has closed the connection for good:
 * bytes sent after its answer are refused (reset) rather than taken by a socket left half open.
 * Rejects if that does not happen within 2 s.
 */
function refusedAndClosed(port: number, bytes: string): Promise<{ reply: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    let reply = '';
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => socket.write(bytes));
    socket.setEncoding('utf8').on('data', (chunk: string) => (reply += chunk));
    // The client keeps its side open: the gateway must close its own, not wait for the client's.
    // The first write draws a reset from a closed socket, the next one fails on it (EPIPE).
    socket.on('end', () => {
      socket.write('x');
      setTimeout(() => socket.write('y'), 100);
    });
    socket.on('error', () => resolve({ reply, socket }));
    setTimeout(() => reject(new Error(`the gateway kept a refused upgrade open; got: ${reply}`)), 2_000).unref();
  });
}

test('a refused upgrade (no token, wrong path, no Host) is closed after its answer, and a client that then resets the connection does not crash the gateway', async () => {
  // A process of its own: the crash was an unhandled 'error' event (ECONNRESET) on the socket.
  const gateway = await startGatewayProcess();
  const upgrade = (path: string, extra: string) =>
    `GET ${path} HTTP/1.1\r\n${extra}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const refusals: Array<[string, RegExp]> = [
    [upgrade('/', 'Host: x\r\n'), /^HTTP\/1\.1 401 /],
    [upgrade('/', 'Host: x\r\nAuthorization: Bearer wrong\r\n'), /^HTTP\/1\.1 401 /],
    [upgrade('/sb', 'Host: x\r\n'), /^HTTP\/1\.1 404 /],
    [upgrade('/', ''), /^HTTP\/1\.1 400 /],
  ];
  for (const [bytes, status] of refusals) {
    const { reply, socket } = await refusedAndClosed(gateway.port, bytes);
    assert.match(reply, status);
    socket.resetAndDestroy();
  }
  // And a client that resets at once, before or while the refusal is written.
  for (const [bytes] of refusals) {
    for (let i = 0; i < 10; i++) {
      const socket = net.connect(gateway.port, '127.0.0.1', () => socket.write(bytes, () => socket.resetAndDestroy()));
      socket.on('error', () => {});
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  const response = await fetch(`http://127.0.0.1:${gateway.port}/healthz`);
  assert.is(response.status, 200, gateway.stderr());
  assert.is(await gateway.stop(), 0, gateway.stderr());
});

test('an upgrade that is not an RFC 6455 handshake is refused before the token is read: 400 BAD_HANDSHAKE, or 426 with Sec-WebSocket-Version: 13 for another version (sections 4.2.1 and 4.4)', async ({ gateway }) => {
  const fields = { host: 'Host: 127.0.0.1\r\n', key: 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n', version: 'Sec-WebSocket-Version: 13\r\n' };
  const upgrade = (change: { method?: string; http?: string } & Partial<Record<keyof typeof fields, string>> = {}) =>
    `${change.method ?? 'GET'} / HTTP/${change.http ?? '1.1'}\r\n${change.host ?? fields.host}Upgrade: websocket\r\nConnection: Upgrade\r\n` +
    `${change.key ?? fields.key}${change.version ?? fields.version}\r\n`;
  const cases: Array<[string, string, number, string, string | undefined]> = [
    ['POST', upgrade({ method: 'POST' }), 400, 'a WebSocket handshake is a GET request, not POST', undefined],
    ['HTTP/1.0', upgrade({ http: '1.0' }), 400, 'a WebSocket handshake needs HTTP/1.1 or later', undefined],
    ['no Host', upgrade({ host: '' }), 400, 'the WebSocket handshake has no Host header', undefined],
    ['no key', upgrade({ key: '' }), 400, 'no Sec-WebSocket-Key header: it must be 16 random bytes in base64', undefined],
    ['a key of 15 bytes', upgrade({ key: 'Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n' }), 400, 'an invalid Sec-WebSocket-Key header: it must be 16 random bytes in base64', undefined],
    ['version 8', upgrade({ version: 'Sec-WebSocket-Version: 8\r\n' }), 426, 'Sec-WebSocket-Version "8": this gateway speaks version 13 (RFC 6455)', '13'],
    ['no version', upgrade({ version: '' }), 426, 'no Sec-WebSocket-Version header: this gateway speaks version 13 (RFC 6455)', '13'],
    ...[',,', 'jsonrpc-2.0,', 'json rpc', 'jsonrpc/2.0', 'jsonrpc-2.0,\u00a0x'].map((offered): (typeof cases)[number] => [
      `protocols ${offered}`,
      upgrade({ version: `${fields.version}Sec-WebSocket-Protocol: ${offered}\r\n` }),
      400,
      `Sec-WebSocket-Protocol ${JSON.stringify(offered)} is not a list of protocol names: tokens, separated by commas`,
      undefined,
    ]),
    [
      'a protocol twice',
      upgrade({ version: `${fields.version}Sec-WebSocket-Protocol: jsonrpc-2.0, jsonrpc-2.0\r\n` }),
      400,
      'Sec-WebSocket-Protocol "jsonrpc-2.0, jsonrpc-2.0" names a protocol more than once',
      undefined,
    ],
  ];
  for (const [what, bytes, status, message, versionHeader] of cases) {
    const connection = await openRawHttp(gateway.port);
    // As latin1, as Node reads header bytes: U+00A0 goes as the one byte 0xA0.
    connection.write(Buffer.from(bytes, 'latin1'));
    const response = await connection.response();
    assert.is(response.status, status, what);
    assert.is(response.headers['sec-websocket-version'], versionHeader, what);
    // RFC 9110 section 15.5.22: a 426 MUST name the protocol to upgrade to; section 7.8: with "upgrade" in Connection.
    assert.is(response.headers['upgrade'], status === 426 ? 'websocket' : undefined, what);
    if (status === 426) assert.match(String(response.headers['connection']), /^upgrade, close$/i, what);
    assert.is(response.headers['content-type'], 'application/json', what);
    assert.equal(JSON.parse(response.body), { error: { code: ErrorCode.BAD_HANDSHAKE, message, data: { name: 'BAD_HANDSHAKE' } } }, what);
  }
  // The same bytes with every field right get as far as the token.
  const connection = await openRawHttp(gateway.port);
  connection.write(upgrade());
  assert.is((await connection.response()).status, 401);
});

test('an upgrade whose Upgrade header lists websocket among other protocols, or offers protocols with spaces around commas, is a WebSocket handshake (RFC 6455 section 4.2.1)', async ({ gateway }) => {
  for (const [upgradeHeader, protocols] of [
    ['websocket, h2c', undefined],
    ['h2c,WebSocket', undefined],
    ['websocket', ' mqtt ,\tjsonrpc-2.0 '],
  ] as const) {
    const connection = await openRawHttp(gateway.port);
    connection.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: ${upgradeHeader}\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
        `Sec-WebSocket-Version: 13\r\n${protocols === undefined ? '' : `Sec-WebSocket-Protocol: ${protocols}\r\n`}Authorization: Bearer ${gateway.token}\r\n\r\n`,
    );
    await waitUntil(() => connection.received.includes('\r\n\r\n'), 'an answer');
    assert.match(connection.received, /^HTTP\/1\.1 101 Switching Protocols\r\n/, upgradeHeader);
    if (protocols !== undefined) assert.match(connection.received, /\r\nSec-WebSocket-Protocol: jsonrpc-2\.0\r\n/i);
    connection.socket.destroy();
  }
});

test('an upgrade from a web page of another origin is 403 CROSS_ORIGIN, token or not; one whose Origin names its Host (as websocket-client sends), or that has none, goes on to the token (RFC 6455 section 10.2)', async ({ gateway }) => {
  const host = `127.0.0.1:${gateway.port}`;
  const upgrade = (origin: string | undefined, token?: string) =>
    `GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
    `${origin === undefined ? '' : `Origin: ${origin}\r\n`}${token === undefined ? '' : `Authorization: Bearer ${token}\r\n`}\r\n`;
  const statusOf = async (bytes: string) => {
    const connection = await openRawHttp(gateway.port);
    connection.write(bytes);
    await waitUntil(() => connection.received.includes('\r\n\r\n'), 'an answer');
    const head = connection.received.slice(0, connection.received.indexOf('\r\n'));
    connection.socket.destroy();
    return head;
  };
  for (const origin of ['http://evil.example', `http://127.0.0.1:${gateway.port + 1}`, `http://localhost:${gateway.port}`, 'null', 'vscode-file://vscode-app']) {
    const connection = await openRawHttp(gateway.port);
    connection.write(upgrade(origin, gateway.token));
    const refused = await connection.response();
    assert.is(refused.status, 403, origin);
    const message = `an upgrade from a page of ${JSON.stringify(origin)} is refused: browsers are not clients of the gateway`;
    assert.equal(JSON.parse(refused.body), { error: { code: ErrorCode.CROSS_ORIGIN, message, data: { name: 'CROSS_ORIGIN' } } }, origin);
  }
  assert.is(await statusOf(upgrade(`http://${host}`, gateway.token)), 'HTTP/1.1 101 Switching Protocols');
  assert.is(await statusOf(upgrade(`HTTP://${host.toUpperCase()}`, gateway.token)), 'HTTP/1.1 101 Switching Protocols');
  // The scheme is not compared: behind a TLS proxy the gateway's own origin is https.
  assert.is(await statusOf(upgrade(`https://${host}`, gateway.token)), 'HTTP/1.1 101 Switching Protocols');
  assert.is(await statusOf(upgrade(undefined, gateway.token)), 'HTTP/1.1 101 Switching Protocols');
  assert.is(await statusOf(upgrade(`http://${host}`)), 'HTTP/1.1 401 Unauthorized');
  // Behind a reverse proxy that sends its upstream's address as Host and the public one as
  // X-Forwarded-Host: a client connecting to the public URL sends that as its Origin.
  const proxied = (origin: string) =>
    upgrade(origin, gateway.token).replace('Upgrade: websocket', 'X-Forwarded-Host: switchboard.example.com, 10.0.0.1\r\nUpgrade: websocket');
  assert.is(await statusOf(proxied('https://switchboard.example.com')), 'HTTP/1.1 101 Switching Protocols');
  assert.is(await statusOf(proxied('https://evil.example')), 'HTTP/1.1 403 Forbidden');
});

test.run();
