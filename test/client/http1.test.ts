/**
 * The HTTP/1.1 exchange under callOverHttp, against RFC 9112 rather than against one server: the
 * reader is fed responses whole and one byte at a time, and exchange() talks to raw TCP servers
 * that answer the way gateways, proxies and broken servers do.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeServer } from '../helpers/fake-server.js';
import { exchange, ExchangeError, MAX_RESPONSE_HEAD_BYTES, ResponseReader, type HttpRequest, type HttpResponse } from '../../src/client/http1.js';

const test = suite('client/http1');

/** Feeds `raw` to a fresh reader in pieces of `step` bytes (whole when 0); then the end, if it needs one. */
function read(raw: string, step = 0): HttpResponse {
  const reader = new ResponseReader();
  const bytes = Buffer.from(raw, 'latin1');
  const size = step || bytes.length;
  for (let offset = 0; offset < bytes.length; offset += size) {
    const response = reader.push(bytes.subarray(offset, offset + size));
    if (response) return response;
  }
  return reader.end();
}

/** Both ways: whole, and one byte at a time. */
function readBothWays(raw: string): { status: number; body: string; headers: Record<string, string> } {
  const [whole, byByte] = [read(raw), read(raw, 1)].map((response) => ({
    status: response.status,
    body: response.body.toString('latin1'),
    headers: Object.fromEntries(response.headers),
  }));
  assert.equal(byByte, whole);
  return whole!;
}

function malformedBy(raw: string, why: RegExp): void {
  for (const step of [0, 1]) {
    try {
      read(raw, step);
      assert.unreachable('should be malformed');
    } catch (error) {
      assert.instance(error, ExchangeError);
      assert.is((error as ExchangeError).failure, 'malformed');
      assert.match((error as Error).message, why);
    }
  }
}

test('Content-Length: the body is exactly that long, whatever follows', () => {
  const response = readBothWays('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}trailing junk');
  assert.equal(response, { status: 200, body: '{"ok":true}', headers: { 'content-type': 'application/json', 'content-length': '11' } });
});

test('bare LF line ends, a status line without a reason, and repeated fields joined', () => {
  const response = readBothWays('HTTP/1.0 401\nWWW-Authenticate: Bearer\nwww-authenticate:  Basic  \ncontent-length: 2\n\nno');
  assert.equal(response, { status: 401, body: 'no', headers: { 'www-authenticate': 'Bearer, Basic', 'content-length': '2' } });
});

test('chunked: extensions and trailers, and chunked wins over Content-Length', () => {
  const raw =
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 3\r\n\r\n' +
    '5;name=value\r\nhello\r\n1 \r\n,\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n';
  assert.is(readBothWays(raw).body, 'hello, world');
});

test('a transfer coding other than chunked last: the body runs to the close', () => {
  assert.is(readBothWays('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello').body, '5\r\nhello');
});

test('no length at all: the body runs to the close; a close before the head is complete is not a response', () => {
  assert.is(readBothWays('HTTP/1.1 502 Bad Gateway\r\n\r\n<html>proxy error</html>').body, '<html>proxy error</html>');
  const reader = new ResponseReader();
  reader.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort'));
  assert.throws(() => reader.end(), (error: unknown) => error instanceof ExchangeError && error.failure === 'closed');
  assert.throws(() => new ResponseReader().end(), (error: unknown) => error instanceof ExchangeError && error.failure === 'closed');
});

test('interim 1xx responses are skipped; 204 and 304 have no body', () => {
  const raw = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
  assert.equal(readBothWays(raw), { status: 200, body: 'ok', headers: { 'content-length': '2' } });
  assert.equal(readBothWays('HTTP/1.1 204 No Content\r\n\r\n'), { status: 204, body: '', headers: {} });
  assert.is(readBothWays('HTTP/1.1 304 Not Modified\r\nContent-Length: 40\r\n\r\n').body, '');
});

test('Content-Length: equal repeats are one length; different ones, or not a number, are malformed', () => {
  assert.is(readBothWays('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok').body, 'ok');
  malformedBy('HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok', /bad Content-Length "2, 3"/);
  malformedBy('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok', /bad Content-Length "-1"/);
  malformedBy('HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\nok', /bad Content-Length/);
});

test('what is not HTTP/1.x is malformed: another protocol, a bad header line, bad chunk framing', () => {
  malformedBy('SSH-2.0-OpenSSH_9.6\r\n', /expected an HTTP\/1.x status line, got "SSH-2.0-OpenSSH_9.6"/);
  malformedBy('HTTP/2 200\r\n\r\n', /expected an HTTP\/1.x status line/);
  malformedBy('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /bad header line "no colon here"/);
  malformedBy('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /bad chunk size line "zz"/);
  malformedBy('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n', /a chunk is longer than its size says/);
});

test(`a head over MAX_RESPONSE_HEAD_BYTES (${MAX_RESPONSE_HEAD_BYTES}) is malformed, in one line or in many`, () => {
  malformedBy(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(MAX_RESPONSE_HEAD_BYTES)}`, /its head is longer than 65536 bytes/);
  const field = `X-Many: ${'b'.repeat(100)}\r\n`;
  malformedBy(`HTTP/1.1 200 OK\r\n${field.repeat(MAX_RESPONSE_HEAD_BYTES / field.length + 1)}\r\n`, /its head is longer/);
  const justUnder = `HTTP/1.1 200 OK\r\nX-Big: ${'c'.repeat(MAX_RESPONSE_HEAD_BYTES - 100)}\r\nContent-Length: 0\r\n\r\n`;
  assert.is(readBothWays(justUnder).status, 200);
});

test('a body past maxBodyBytes is too-large, whether its length is declared, chunked or up to the close; one at the limit is read', () => {
  const tooLarge = (raw: string) => {
    for (const step of [0, 1]) {
      const reader = new ResponseReader(4);
      const bytes = Buffer.from(raw, 'latin1');
      const size = step || bytes.length;
      try {
        for (let offset = 0; offset < bytes.length; offset += size) reader.push(bytes.subarray(offset, offset + size));
        reader.end();
        assert.unreachable('should be too large');
      } catch (error) {
        assert.instance(error, ExchangeError);
        assert.equal([(error as ExchangeError).failure, (error as Error).message], ['too-large', 'the response body is longer than 4 bytes']);
      }
    }
  };
  tooLarge('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
  tooLarge('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
  tooLarge('HTTP/1.1 200 OK\r\n\r\nabcde');
  const atLimit = new ResponseReader(4).push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd'));
  assert.is(atLimit?.body.toString(), 'abcd');
});

// exchange() over real sockets

const post = (url: URL, extra: Partial<HttpRequest> = {}): Promise<HttpResponse> =>
  exchange({ url, method: 'POST', headers: { authorization: 'Bearer t', 'content-type': 'application/json', 'x-note': 'café' }, body: '{"ünï":1}', ...extra });

const outcomeOf = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => 'succeeded', (error: unknown) => error);

async function failure(promise: Promise<unknown>): Promise<ExchangeError> {
  const outcome = await outcomeOf(promise);
  assert.instance(outcome, ExchangeError);
  return outcome as ExchangeError;
}

test('exchange: one request per socket, its length in bytes, answered without waiting for the close', async () => {
  // The server never closes: the response's Content-Length alone says it is complete.
  const server = await fakeServer((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  try {
    const response = await post(server.url);
    assert.equal([response.status, response.body.toString()], [200, 'ok']);
    // The head in latin1 (é is one byte), the body in UTF-8 (11 bytes for 9 characters).
    const head = `POST /rpc?x=1 HTTP/1.1\r\nhost: ${server.url.host}\r\nauthorization: Bearer t\r\ncontent-type: application/json\r\nx-note: café\r\ncontent-length: 11\r\nconnection: close\r\n\r\n`;
    assert.is(server.requests[0], head + Buffer.from('{"ünï":1}').toString('latin1'));
  } finally {
    await server.close();
  }
});

test('exchange: the client closes its socket once the response is complete, from a server that would keep it open', async () => {
  let serverSide: import('node:net').Socket | undefined;
  const server = await fakeServer((socket) => {
    serverSide = socket;
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  try {
    await post(server.url);
    const closed = new Promise<void>((resolve) => (serverSide!.destroyed ? resolve() : serverSide!.once('close', () => resolve())));
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the client never closed its socket')), 5_000))]);
  } finally {
    await server.close();
  }
});

test('exchange: a response written a byte at a time and ended by the close', async () => {
  const server = await fakeServer(async (socket) => {
    for (const byte of 'HTTP/1.1 200 OK\r\n\r\nslow') {
      socket.write(byte);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    socket.end();
  });
  try {
    assert.is((await post(server.url)).body.toString(), 'slow');
  } finally {
    await server.close();
  }
});

test('exchange: refused is unreachable; a close mid-response is closed; garbage is malformed', async () => {
  const refused = await fakeServer(() => undefined);
  await refused.close();
  const unreachable = await failure(post(refused.url));
  assert.equal([unreachable.failure, unreachable.message], ['unreachable', 'ECONNREFUSED']);

  const cut = await fakeServer((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial'));
  const reset = await fakeServer((socket) => socket.resetAndDestroy());
  const garbage = await fakeServer((socket) => socket.write('220 smtp.example.com ESMTP\r\n'));
  try {
    assert.is((await failure(post(cut.url))).failure, 'closed');
    assert.is((await failure(post(reset.url))).failure, 'closed');
    assert.is((await failure(post(garbage.url))).failure, 'malformed');
  } finally {
    await Promise.all([cut.close(), reset.close(), garbage.close()]);
  }
});

test('exchange: the signal aborts a request in flight, and one already aborted never connects', async () => {
  const silent = await fakeServer(() => undefined);
  try {
    const controller = new AbortController();
    const pending = post(silent.url, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('enough')), 20);
    const aborted = await failure(pending);
    assert.equal([aborted.failure, (aborted.cause as Error).message], ['aborted', 'enough']);

    const before = silent.requests.length;
    assert.is((await failure(post(silent.url, { signal: AbortSignal.abort() }))).failure, 'aborted');
    assert.is(silent.requests.length, before);
  } finally {
    await silent.close();
  }
});

test('exchange: a header value with CR or LF, or a character past U+00FF, is refused before anything is sent, saying which kinds', async () => {
  const server = await fakeServer((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  try {
    for (const authorization of ['Bearer t\r\nX-Injected: 1', 'Bearer sba_🎉']) {
      const outcome = await outcomeOf(post(server.url, { headers: { authorization } }));
      assert.instance(outcome, TypeError);
      assert.is(
        (outcome as Error).message,
        'the authorization header holds a character HTTP cannot carry (a control character such as CR, LF or NUL, or one past U+00FF)',
      );
    }
    assert.is(server.requests.length, 0);
  } finally {
    await server.close();
  }
});

/** A self-signed certificate for localhost and 127.0.0.1 (valid until 2126), made for this test only. */
const TEST_TLS = {
  cert: `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUWz0msxkwB/E6ZzazdzXe31YhlQQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNTIwMTgwM1oYDzIxMjYxMTAx
MjAxODAzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAREeF65bPHxMHNHaDPwtURIgNW7NulIG1aS36Pg6TfjW4CDLG8nc4/o
lh5gHUYmCJ5IDTkzTYC53AGYV+EjLijoo28wbTAdBgNVHQ4EFgQUGo7c6uellCeR
CqU0Z/i8INTdLW4wHwYDVR0jBBgwFoAUGo7c6uellCeRCqU0Z/i8INTdLW4wDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSAAwRQIhAPSDQNqqc2Gk5LAoGyJZvOsYFA+7pZWU85wr8+gVQOA7AiBL
Gc9J6Dzh+WiytRZ9QzGhklOpHixGtHFYnxRcG6ZB/A==
-----END CERTIFICATE-----
`,
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/UKfZy4QQhDMgNsQ
I2o5u1TIx1LXcHLj6gqNHvnr7LWhRANCAAREeF65bPHxMHNHaDPwtURIgNW7NulI
G1aS36Pg6TfjW4CDLG8nc4/olh5gHUYmCJ5IDTkzTYC53AGYV+EjLijo
-----END PRIVATE KEY-----
`,
};

test('exchange over https: an untrusted certificate is unreachable; a trusted one carries the call, with SNI for a name only', async () => {
  // The body names the SNI the server saw ("none" for an address).
  const server = await fakeServer((socket) => {
    const servername = (socket as tls.TLSSocket).servername || 'none';
    socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${servername.length}\r\n\r\n${servername}`);
  }, TEST_TLS);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-tls-'));
  try {
    const untrusted = await failure(post(server.url));
    assert.equal([untrusted.failure, untrusted.message], ['unreachable', 'DEPTH_ZERO_SELF_SIGNED_CERT']);

    // Trust is process-wide (NODE_EXTRA_CA_CERTS is read at start-up): a child process makes the calls.
    const caFile = path.join(dir, 'ca.pem');
    fs.writeFileSync(caFile, TEST_TLS.cert);
    const http1 = new URL('../../src/client/http1.js', import.meta.url).href;
    const script = `
      const { exchange } = await import(${JSON.stringify(http1)});
      const call = async (host) => (await exchange({ url: new URL('https://' + host + ':${server.url.port}/rpc'), method: 'POST', headers: {}, body: '{}' })).body.toString();
      console.log(JSON.stringify([await call('127.0.0.1'), await call('localhost')]));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
    });
    assert.equal(JSON.parse(stdout), ['none', 'localhost']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await server.close();
  }
});

test.run();
