/**
 * connect(): a refused WebSocket upgrade fails with what the refusal says, as a refused POST /rpc
 * does (see http.test.ts). Servers here answer the upgrade as the gateway, or a proxy in front of
 * it, would.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { getEventListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocketServer } from 'ws';
import { connect } from '../../src/client/client.js';
import { ConnectionError, tlsError, type ConnectionFailure } from '../../src/client/errors.js';
import { openSocket } from '../../src/client/transport.js';
import { busySocketGateway } from '../helpers/busy-socket.js';

const test = suite('client/transport');

const servers: Server[] = [];
test.after.each(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A gateway URL whose server answers every upgrade with `response` (status line, headers and body). */
async function refusingUpgrades(response: string): Promise<string> {
  const server = createServer();
  server.on('upgrade', (_request, socket: Duplex) => socket.end(response));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function answer(status: string, contentType: string, body: string): string {
  return `HTTP/1.1 ${status}\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

async function connectFailure(url: string, failure: ConnectionFailure, message: string): Promise<void> {
  const outcome = await connect({ url, token: 'sbt_test', timeoutMs: 2_000 }).then(
    async (client) => {
      await client.close();
      return 'connected';
    },
    (error: unknown) => error,
  );
  assert.instance(outcome, ConnectionError);
  assert.is((outcome as ConnectionError).failure, failure);
  assert.is((outcome as Error).message, message);
}

/** A WebSocket server on a free port that `run` scripts; its sockets cut and it closed after. */
async function withServer(run: (url: string, server: WebSocketServer) => Promise<void>): Promise<void> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => server.once('listening', resolve));
  try {
    await run(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, server);
  } finally {
    for (const socket of server.clients) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('a connection on which nothing comes for heartbeatTimeoutMs, not even a ping, is closed as lost: calls on it fail at once, not at their timeout', async () => {
  // Accepts the upgrade, then says nothing: as a gateway stopped, or a connection cut without a word.
  await withServer(async (url) => {
    const client = await connect({ url, token: 'sbt_test', timeoutMs: 60_000, heartbeatTimeoutMs: 200 });
    const outcome = await client.call('gateway.status', {}).catch((error: unknown) => error);
    assert.instance(outcome, ConnectionError);
    assert.is(
      (outcome as ConnectionError).message,
      `connection to ${url} closed (1006: nothing from the gateway for 200 ms, not even a ping: the connection was taken as lost) before the gateway answered`,
    );
    // Without reconnect, that is the client's end, and closed says why.
    assert.is(await client.closed, outcome);
  });
});

test('with reconnect, an ack on a link that went dead under it (no close, no answer, no ping) is sent again once the heartbeat finds it, within its default timeout (QA: a 15 s stall ended the README\'s loop)', async () => {
  await withServer(async (url, server) => {
    let connections = 0;
    let answering = true;
    server.on('connection', (socket) => {
      // The first connection goes quiet; the second answers.
      if (++connections === 1) return;
      socket.on('message', (data) => {
        if (!answering) return;
        const { id, params } = JSON.parse(String(data)) as { id: number; params: { sessionKey: string; seq: number } };
        socket.send(JSON.stringify({ jsonrpc: '2.0', id, result: { sessionKey: params.sessionKey, seq: params.seq, acked: 1, depth: 0 } }));
      });
    });
    const client = await connect({ url, token: 'sbt_test', timeoutMs: 200, heartbeatTimeoutMs: 400, reconnect: { initialDelayMs: 10, maxDelayMs: 10 } });
    try {
      const acked = await client.ack({ sessionKey: 'agent:main:main', seq: 1 }).catch((error: unknown) => error);
      assert.equal(acked, { sessionKey: 'agent:main:main', seq: 1, acked: 1, depth: 0 });
      assert.is(connections, 2);
      // A timeout given to the call is the caller's: counted on the open connection, as given.
      answering = false;
      const quiet = await client.ack({ sessionKey: 'agent:main:main', seq: 2 }, { timeoutMs: 50 }).catch((error: unknown) => error);
      assert.equal([(quiet as ConnectionError).failure, connections], ['timeout', 2]);
    } finally {
      await client.close();
    }
  });
});

test('with reconnect, an ack\'s default wait counts from the last frame the gateway sent: its answer may wait behind pushes on a slow link (QA: a backlog at 4 KB/s held an answer for 115 s)', async () => {
  await withServer(async (url, server) => {
    const wake = { agentId: 'main', reason: 'heartbeat', sessions: [], at: '2026-11-25T16:00:00.000Z' };
    server.on('connection', (socket) => {
      socket.on('message', (data) => {
        const { id, params } = JSON.parse(String(data)) as { id: number; params: { sessionKey: string; seq: number } };
        // Six frames 60 ms apart, then the answer: ~360 ms, past the call's 150 ms.
        let sent = 0;
        const push = setInterval(() => {
          if (++sent <= 6) return socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'agent.wake', params: wake }));
          clearInterval(push);
          socket.send(JSON.stringify({ jsonrpc: '2.0', id, result: { sessionKey: params.sessionKey, seq: params.seq, acked: 1, depth: 0 } }));
        }, 60);
      });
    });
    const client = await connect({ url, token: 'sbt_test', timeoutMs: 150, heartbeatTimeoutMs: 0, reconnect: true });
    try {
      const acked = await client.ack({ sessionKey: 'agent:main:main', seq: 1 }).catch((error: unknown) => error);
      assert.equal(acked, { sessionKey: 'agent:main:main', seq: 1, acked: 1, depth: 0 });
      const given = await client.ack({ sessionKey: 'agent:main:main', seq: 2 }, { timeoutMs: 150 }).catch((error: unknown) => error);
      assert.is((given as ConnectionError).failure, 'timeout', 'a timeout given to the call is counted as given');
    } finally {
      await client.close();
    }
  });
});

test('a process that closed its client on a gateway that no longer reads (stopped, a half-dead link) exits within seconds, not after ws\'s 30 s wait for the close frame', async () => {
  await withServer(async (url, hung) => {
    hung.on('connection', (_socket, request) => request.socket.pause());
    const client = new URL('../../src/client/client.js', import.meta.url).href;
    const script = `const { connect } = await import(${JSON.stringify(client)}); await (await connect({ url: ${JSON.stringify(url)}, token: 'sbt_test' })).close();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const outcome = await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000, 'still running'))]);
    child.kill('SIGKILL');
    assert.is(outcome, 0, 'the process was still running 10 s after close()');
  });
});

test('a call aborted by its signal carries the signal\'s reason as its cause: AbortSignal.timeout()\'s TimeoutError, a reason of the caller\'s own', async () => {
  await withServer(async (url) => {
    const client = await connect({ url, token: 'sbt_test' });
    const timedOut = await client.call('gateway.status', {}, { signal: AbortSignal.timeout(20) }).catch((error: unknown) => error);
    assert.equal([(timedOut as ConnectionError).failure, ((timedOut as Error).cause as Error).name], ['aborted', 'TimeoutError']);
    const reason = new Error('panel closed');
    const controller = new AbortController();
    controller.abort(reason);
    const early = await client.call('gateway.status', {}, { signal: controller.signal }).catch((error: unknown) => error);
    assert.is((early as Error).cause, reason);
    const connecting = await connect({ url, token: 'sbt_test', signal: controller.signal }).catch((error: unknown) => error);
    assert.equal([(connecting as ConnectionError).failure, (connecting as Error).cause], ['aborted', reason]);
    await client.close();
  });
});

test('an answer that is not HTTP at all (an SSH banner) is "rejected", as callOverHttp has it: something answered, and it is no gateway', async () => {
  const url = await refusingUpgrades('SSH-2.0-OpenSSH_9.6\r\n');
  await connectFailure(url, 'rejected', `the answer from ${url} is not HTTP (HPE_INVALID_CONSTANT): is it a switchboard gateway?`);
});

test('connects sharing one AbortSignal add one listener to it, however many', async () => {
  await withServer(async (url) => {
    const controller = new AbortController();
    const connecting = Array.from({ length: 12 }, () => connect({ url, token: 'sbt_test', signal: controller.signal }));
    // Past ten, Node warns of a leak (MaxListenersExceededWarning).
    await new Promise((resolve) => setImmediate(resolve));
    assert.is(getEventListeners(controller.signal, 'abort').length, 1);
    await Promise.all((await Promise.all(connecting)).map((client) => client.close()));
  });
});

test('a resubscribe answered late, on a connection the client has left, does not take the place of the one answered on the next', async () => {
  // Connection 1 subscribes, then drops; on 2 the resubscribe is answered after the client gave up
  // on it (and on 2); on 3 it is answered at once. The client must hold 3's subscription.
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => server.once('listening', resolve));
  let connections = 0;
  const unsubscribed: Array<[number, string]> = [];
  server.on('connection', (socket) => {
    const connection = ++connections;
    socket.on('message', (data: Buffer) => {
      const { id, method, params } = JSON.parse(data.toString()) as { id: number; method: string; params: { subscriptionId?: string } };
      const answer = (subscriptionId: string) => socket.send(JSON.stringify({ jsonrpc: '2.0', id, result: { subscriptionId, sessionKey: 'agent:main:main', agentId: 'main' } }));
      if (method === 'session.unsubscribe') {
        unsubscribed.push([connection, params.subscriptionId!]);
        socket.send(JSON.stringify({ jsonrpc: '2.0', id, result: { subscriptionId: params.subscriptionId, unsubscribed: true } }));
      } else if (connection === 1) {
        answer('s1');
        setTimeout(() => socket.terminate(), 50);
      } else if (connection === 2) {
        // Busy: it reads nothing more (the client's close frame included), and answers late.
        socket.pause();
        setTimeout(() => answer('s2-late'), 500);
      } else {
        answer(`s${connection}`);
      }
    });
  });
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = await connect({ url, token: 'sbt_test', timeoutMs: 200, reconnect: { initialDelayMs: 10, maxDelayMs: 20 } });
  try {
    const subscription = await client.subscribe({ sessionKey: 'agent:main:main' }, { onEvent: () => {} });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await subscription.unsubscribe();
    assert.equal(unsubscribed, [[3, 's3']]);
  } finally {
    await client.close();
    for (const socket of server.clients) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a frame arriving slowly for longer than heartbeatTimeoutMs is no silence: its bytes count, and it arrives', async () => {
  // A WebSocket server by hand, so that one frame can trickle: 2,000 bytes over ~1 s.
  const wake = { agentId: 'main', reason: 'heartbeat', sessions: [], at: '2026-11-25T16:00:00.000Z' };
  const text = JSON.stringify({ jsonrpc: '2.0', method: 'agent.wake', params: { ...wake, padding: 'x'.repeat(1_800) } });
  const server = createServer();
  let upgraded: Duplex | undefined;
  server.on('upgrade', (request: IncomingMessage, socket: Duplex) => {
    upgraded = socket;
    const accept = createHash('sha1').update(`${request.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const payload = Buffer.from(text);
    const frame = Buffer.concat([Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff]), payload]);
    let sent = 0;
    const trickle = setInterval(() => {
      if (socket.destroyed || sent >= frame.length) return clearInterval(trickle);
      socket.write(frame.subarray(sent, sent + 100));
      sent += 100;
    }, 50);
    socket.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = await connect({ url, token: 'sbt_test', heartbeatTimeoutMs: 300 });
  try {
    const notified = await new Promise<string>((resolve) => {
      client.onNotification((method) => resolve(method));
      void client.closed.then(() => resolve('closed'));
    });
    assert.is(notified, 'agent.wake');
  } finally {
    await client.close();
    // Speaking no close handshake, the hand-made server would keep it open, and server.close() waiting.
    upgraded?.destroy();
  }
});

test("over a WebSocket too, an answer not of the method's shape fails its call alone; a notification not of its kind ends the client", async () => {
  await withServer(async (url, server) => {
    server.on('connection', (socket) => {
      socket.on('message', (data) => {
        const request = JSON.parse(String(data)) as { id: number; method: string };
        if (request.method === 'gateway.status') socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { version: 'x' } }));
        if (request.method === 'session.ack') socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { sessionKey: 'agent:main:main', seq: 0, acked: 0, depth: 0 } }));
        if (request.method === 'rpc.discover') {
          // In one frame: the unreadable notification, then one that reads well, which must not be delivered after it.
          const wake = { agentId: 'main', reason: 'heartbeat', sessions: [], at: '2026-11-25T16:00:00.000Z' };
          socket.send(JSON.stringify([{ jsonrpc: '2.0', method: 'session.event', params: { subscriptionId: 's.1', event: null } }, { jsonrpc: '2.0', method: 'agent.wake', params: wake }]));
        }
      });
    });
    const client = await connect({ url, token: 'sbt_test', timeoutMs: 2_000 });
    const notified: string[] = [];
    client.onNotification((method) => notified.push(method));
    const status = await client.status().catch((error: unknown) => error);
    assert.instance(status, ConnectionError);
    assert.is((status as ConnectionError).failure, 'rejected');
    assert.is((status as Error).message, `the answer to gateway.status from ${url} cannot be read as a switchboard gateway's (result lacks "startedAt"): another service, or a gateway of a version this client cannot read`);
    // The connection is no worse for it.
    assert.equal(await client.call('session.ack', { sessionKey: 'main', seq: 0 }), { sessionKey: 'agent:main:main', seq: 0, acked: 0, depth: 0 });
    const discover = client.discover().catch((error: unknown) => error);
    const ended = await client.closed;
    assert.instance(ended, ConnectionError);
    assert.is(ended!.message, `a session.event notification from ${url} cannot be read as a switchboard gateway's (params/event must be an object): another service, or a gateway of a version this client cannot read`);
    assert.is(await discover, ended);
    assert.equal(notified, [], 'nothing delivered after the unreadable notification');
    assert.ok((status as ConnectionError).unreadableAnswer && (ended as ConnectionError).unreadableAnswer);
  });
});

test('with reconnect, a resubscribe answered unreadably ends the client, with that error: no retry would read it', async () => {
  await withServer(async (url, server) => {
    let connections = 0;
    server.on('connection', (socket) => {
      const connection = ++connections;
      socket.on('message', (data) => {
        const request = JSON.parse(String(data)) as { id: number; method: string };
        if (request.method !== 'session.subscribe') return;
        if (connection > 1) return void socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { subscriptionId: 7 } }));
        socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { subscriptionId: '1.1', sessionKey: null, agentId: 'main' } }));
        socket.close(1012, 'gateway restarting');
      });
    });
    const client = await connect({ url, token: 'sbt_test', timeoutMs: 2_000, reconnect: { initialDelayMs: 10, maxDelayMs: 10 } });
    await client.subscribe({ agentId: 'main' }, { onEvent: () => {} });
    const ended = await client.closed;
    assert.instance(ended, ConnectionError);
    assert.is(ended!.message, `the answer to session.subscribe from ${url} cannot be read as a switchboard gateway's (result lacks "sessionKey"): another service, or a gateway of a version this client cannot read`);
    assert.is(connections, 2, 'one reconnect, not a retry after it');
  });
});

test('heartbeatTimeoutMs is a duration like the others: 0 turns the check off, a negative one is a RangeError', async () => {
  const outcome = await connect({ url: 'ws://127.0.0.1:1', token: 'sbt_test', heartbeatTimeoutMs: -1 }).catch((error: unknown) => error);
  assert.instance(outcome, RangeError);
  assert.match((outcome as Error).message, /^heartbeatTimeoutMs must be a number of milliseconds from 0 to/);
});

test("a refusal with the gateway's JSON error names its message, name and code, as a refused call does", async () => {
  const error = { code: 1013, message: 'too many failed authentications from 127.0.0.1; retry in 42 s', data: { name: 'RATE_LIMITED' } };
  const url = await refusingUpgrades(answer('429 Too Many Requests', 'application/json', JSON.stringify({ error })));
  await connectFailure(url, 'rejected', `the gateway at ${url} refused the connection (HTTP 429: ${error.message} (RATE_LIMITED 1013))`);
});

test("a proxy's error page comes down to one line of at most 200 characters", async () => {
  const page = `<!DOCTYPE html>\n<html>\n  <body>\n${'    <p>bad gateway</p>\n'.repeat(40)}  </body>\n</html>\n`;
  const url = await refusingUpgrades(answer('502 Bad Gateway', 'text/html', page));
  const shown = `<!DOCTYPE html> <html> <body> ${'<p>bad gateway</p> '.repeat(40)}`.slice(0, 200);
  await connectFailure(url, 'rejected', `the gateway at ${url} refused the connection (HTTP 502: ${shown}…)`);
});

test('401 is the token, whatever its body says', async () => {
  const url = await refusingUpgrades(answer('401 Unauthorized', 'application/json', '{"error":{"code":1012,"message":"no"}}'));
  await connectFailure(url, 'unauthorized', `the gateway at ${url} refused the token (HTTP 401)`);
});

test('a body cut short by the connection is shown as far as it came', async () => {
  const url = await refusingUpgrades('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 500\r\n\r\nupstream restarting');
  await connectFailure(url, 'rejected', `the gateway at ${url} refused the connection (HTTP 503: upstream restarting)`);
});

test('a status with nothing said (no body, or only whitespace) asks whether it is a gateway at all: every refusal of a gateway says why', async () => {
  for (const body of ['', '\n']) {
    const url = await refusingUpgrades(answer('404 Not Found', 'text/plain', body));
    await connectFailure(url, 'rejected', `${url} refused the connection (HTTP 404, nothing said): is it a switchboard gateway?`);
  }
});

test('a web server that answers the upgrade with its page (HTTP 200) is not called a gateway refusing it (QA)', async () => {
  const url = await refusingUpgrades(answer('200 OK', 'text/html', '<!DOCTYPE HTML><title>Directory listing for /</title>'));
  await connectFailure(url, 'rejected', `${url} answered the WebSocket upgrade with HTTP 200 (<!DOCTYPE HTML><title>Directory listing for /</title>), as no switchboard gateway does: is it one?`);
});

test('a URL that cannot be a gateway\'s is refused with the reason POST /rpc gives (a fragment, a scheme)', async () => {
  await connectFailure('ws://127.0.0.1:1/#main', 'unreachable', 'invalid gateway URL "ws://127.0.0.1:1/#main": remove its fragment ("#main"), which is never sent to a gateway');
  await connectFailure('ftp://127.0.0.1:1', 'unreachable', 'invalid gateway URL "ftp://127.0.0.1:1": expected ws://host:port (wss://, http://, https:// and unix:/path/to/gateway.sock work too)');
  await connectFailure('not a url', 'unreachable', 'invalid gateway URL "not a url": expected ws://host:port (wss://, http://, https:// and unix:/path/to/gateway.sock work too)');
  // Parsed, they would fail as a gateway not running (ENOTDIR), or as no URL at all.
  await connectFailure('unix:/tmp/data/gateway.sock/', 'unreachable', 'invalid gateway URL "unix:/tmp/data/gateway.sock/": a socket is a file, not a directory: remove the "/" at its end');
  await connectFailure('ws://127.0.0.1:99999/', 'unreachable', 'invalid gateway URL "ws://127.0.0.1:99999/": its port 99999 is past 65535, the highest there is');
});

test('a user name or password in the URL is refused, not silently dropped; the error masks the password', async () => {
  const url = await refusingUpgrades(answer('500 Internal Server Error', 'text/plain', 'reached'));
  const [scheme, rest] = url.split('//') as [string, string];
  const problem = 'remove its user name and password, which are never sent: the token goes in the Authorization header';
  await connectFailure(`${scheme}//main:sbt_secret@${rest}`, 'unreachable', `invalid gateway URL "${scheme}//***@${rest}": ${problem}`);
  await connectFailure(`${scheme}//sbt_secret@${rest}`, 'unreachable', `invalid gateway URL "${scheme}//***@${rest}": ${problem}`);
  // Masked in a URL that does not parse either (a port past 65535), whose message is another.
  await connectFailure(`${scheme}//main:sbt_secret@127.0.0.1:187900`, 'unreachable', `invalid gateway URL "${scheme}//***@127.0.0.1:187900": its port 187900 is past 65535, the highest there is`);
});

test('a credential in the URL\'s query is refused before the upgrade is sent, and masked in the error (QA: the token went out in the clear, then into the error\'s message)', async () => {
  let upgrades = 0;
  const url = await refusingUpgrades(answer('500 Internal Server Error', 'text/plain', 'reached'));
  servers.at(-1)!.on('upgrade', () => upgrades++);
  const problem = 'remove the credential from its query (URLs end up in logs, and the gateway refuses such a request): the token goes in the Authorization header';
  const token = `sba_${'x'.repeat(43)}`;
  await connectFailure(`${url}/?access_token=${token}`, 'unreachable', `invalid gateway URL "${url}/?***": ${problem}`);
  await connectFailure(`${url}/?client=ide&t=${token}`, 'unreachable', `invalid gateway URL "${url}/?***": ${problem}`);
  await connectFailure(`${url}/?%54oken=abc`, 'unreachable', `invalid gateway URL "${url}/?***": ${problem}`);
  // Nor in a fragment, which is never sent, and not quoted back (review).
  await connectFailure(
    `${url}/#access_token=${token}`,
    'unreachable',
    `invalid gateway URL "${url}/#***": remove its fragment, which is never sent to a gateway and holds a credential: the token goes in the Authorization header`,
  );
  assert.is(upgrades, 0);
  // A query of anything else is the user's own: sent, and shown.
  const other = await connect({ url: `${url}/?client=ide`, token: 'sbt_test', timeoutMs: 2_000 }).catch((e: unknown) => e);
  assert.instance(other, ConnectionError);
  assert.is((other as ConnectionError).url, `${url}/?client=ide`);
  assert.is(upgrades, 1);
});

test('a timeout or reconnect delay a Node.js timer cannot hold is a RangeError naming the option, before anything is sent', async () => {
  let upgrades = 0;
  const url = await refusingUpgrades(answer('500 Internal Server Error', 'text/plain', 'reached'));
  servers.at(-1)!.on('upgrade', () => upgrades++);
  const cases = [
    [{ timeoutMs: 2 ** 31 }, 'timeoutMs', 1, 2 ** 31],
    [{ timeoutMs: Number.POSITIVE_INFINITY }, 'timeoutMs', 1, 'Infinity'],
    [{ timeoutMs: 0 }, 'timeoutMs', 1, 0],
    [{ timeoutMs: Number.NaN }, 'timeoutMs', 1, 'NaN'],
    [{ reconnect: { maxDelayMs: Number.POSITIVE_INFINITY } }, 'reconnect.maxDelayMs', 0, 'Infinity'],
    [{ reconnect: { initialDelayMs: -1 } }, 'reconnect.initialDelayMs', 0, -1],
  ] as const;
  for (const [options, name, min, got] of cases) {
    const error = await connect({ url, token: 'sbt_test', ...options }).catch((e: unknown) => e);
    assert.instance(error, RangeError, name);
    assert.is(
      (error as Error).message,
      `${name} must be a number of milliseconds from ${min} to 2147483647 (about 24.8 days, the longest a Node.js timer waits); got ${got}`,
    );
  }
  // The longest delay below the first was taken as a first wait of seconds (QA).
  const inverted = await connect({ url, token: 'sbt_test', reconnect: { initialDelayMs: 4_000, maxDelayMs: 100 } }).catch((e: unknown) => e);
  assert.instance(inverted, RangeError);
  assert.is(
    (inverted as Error).message,
    'reconnect.maxDelayMs (100) is below reconnect.initialDelayMs (4000): the longest delay between attempts cannot be shorter than the first',
  );
  assert.is(upgrades, 0);
});

test('a token an HTTP header cannot carry whole (a line break, a space, an emoji) is a TypeError saying what and where, before anything is sent; whitespace around it is trimmed', async () => {
  const sent: Array<string | undefined> = [];
  const url = await refusingUpgrades(answer('500 Internal Server Error', 'text/plain', 'reached'));
  servers.at(-1)!.on('upgrade', (request: IncomingMessage) => sent.push(request.headers.authorization));
  for (const [token, problem] of [
    ['sba_abc\nsba_def', 'holds a line break'],
    ['  ', 'is empty'],
    ['sba_a c', 'holds U+0020 at character 6'],
    ['sba_\u{1F511}', 'holds U+1F511 at character 5'],
  ] as const) {
    const error = await connect({ url, token }).catch((e: unknown) => e);
    assert.instance(error, TypeError, token);
    assert.is((error as Error).message, `token ${problem}: a switchboard token is one line of visible characters, sent alone`);
  }
  // From plain JavaScript, no token at all, or not a string.
  for (const token of [undefined, null, 42]) {
    const error = await connect({ url, token: token as unknown as string }).catch((e: unknown) => e);
    assert.instance(error, TypeError);
    const got = token === null ? 'null' : typeof token;
    assert.is((error as Error).message, `options.token is required (the gateway's token, e.g. localGatewayToken() or process.env.SWITCHBOARD_TOKEN), got ${got}`);
  }
  assert.equal(sent, []);
  await connect({ url, token: ' sba_caf\u00e9\n' }).catch(() => undefined);
  // One byte for "é" (Latin-1), read back as the same character: the token arrives as it is.
  assert.equal(sent, ['Bearer sba_caf\u00e9']);
});

test('a refused TLS certificate is named with the fix that fits: another host name, a renewal, or the CA', () => {
  const url = 'wss://gateway.example:443';
  const fixOf = (code: string) => {
    const error = tlsError(url, Object.assign(new Error('why'), { code }));
    assert.instance(error, ConnectionError, code);
    assert.is(error!.failure, 'rejected');
    return error!.message.slice(`the TLS certificate of ${url} was not accepted (${code}: why): `.length);
  };
  assert.is(fixOf('ERR_TLS_CERT_ALTNAME_INVALID'), 'connect by a host name the certificate covers');
  assert.is(fixOf('CERT_HAS_EXPIRED'), "renew the gateway's certificate, or check this machine's clock");
  assert.is(fixOf('CERT_REVOKED'), "replace the gateway's certificate");
  assert.is(fixOf('SELF_SIGNED_CERT_IN_CHAIN'), 'if it is your own, give Node.js its CA with NODE_EXTRA_CA_CERTS=<file.pem>');
  assert.is(tlsError(url, Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), undefined);
});

test('a WebSocket to a Unix socket that refuses a connect with EAGAIN (a busy gateway) connects again within its timeout; past it, the refusal is the outcome', async () => {
  if (process.platform !== 'linux') return;
  const gateway = await busySocketGateway(500, '{}');
  try {
    assert.is(await gateway.fill(), 'EAGAIN', 'the backlog is full');
    const socket = await openSocket(gateway.url, 'sbt_test', { timeoutMs: 5000, heartbeatTimeoutMs: 0 });
    socket.close(1000, 'done');
  } finally {
    gateway.stop();
  }
  const stuck = await busySocketGateway(3000, '{}');
  try {
    await stuck.fill();
    const started = performance.now();
    const outcome = await openSocket(stuck.url, 'sbt_test', { timeoutMs: 300, heartbeatTimeoutMs: 0 }).then(
      () => 'opened',
      (error: unknown) => error,
    );
    assert.instance(outcome, ConnectionError);
    assert.equal([(outcome as ConnectionError).failure, (outcome as Error).message], ['unreachable', `gateway not reachable at ${stuck.url} (EAGAIN)`]);
    assert.ok(performance.now() - started < 2000, 'given up near its timeout');
  } finally {
    stuck.stop();
  }
});

test.run();
