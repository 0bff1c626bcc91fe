/**
 * maxUnauthenticatedSockets on a real gateway: sockets that connect and send nothing, past a
 * small limit, are closed oldest first, one for each new one, while an authenticated client, a
 * CLI call and an HTTP call still get in; authenticated WebSocket connections and requests being
 * served do not count, nor do the Unix socket's connections; a socket idle between authenticated
 * keep-alive requests counts, but is closed only after the strangers' sockets.
 */
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, openPeer, resultOf, runCli, startGatewayProcess, startTunedGateway, tryUpgrade, waitUntil, type InProcessGateway, type Peer } from '../helpers/gateway.js';
import { closeHttpSockets, jsonOf, openRawHttp, openRawWebSocket, postHead, postJson, rpcBody, type RawHttpConnection } from '../helpers/http.js';

const test = suite('e2e: sockets without an authenticated request');

test.after(async () => {
  closeHttpSockets();
  await cleanup();
});

/**
 * Small, so a test can fill it. The handshake timeout is long, so that no socket a test holds is
 * closed by it on a loaded machine: every close seen here is one the limit made.
 */
function startLimitedGateway(limit: number): Promise<InProcessGateway> {
  return startTunedGateway({ maxUnauthenticatedSockets: limit, handshakeTimeoutMs: 60_000 });
}

/** Connections that send nothing, opened one after another (so the gateway accepts them in this order). */
async function openSilent(port: number, count: number): Promise<RawHttpConnection[]> {
  const opened: RawHttpConnection[] = [];
  for (let i = 0; i < count; i++) opened.push(await openRawHttp(port));
  return opened;
}

/** The indexes of the connections the gateway has closed. */
function closedIndexes(connections: readonly RawHttpConnection[]): number[] {
  return connections.flatMap((connection, index) => (connection.closed ? [index] : []));
}

function waitClosed(connections: readonly RawHttpConnection[], what: string): Promise<void> {
  return waitUntil(() => connections.every((connection) => connection.closed), what);
}

const floodLines = (gw: InProcessGateway) => gw.log.filter((line) => line.includes('without an authenticated request'));

const authorized = (gw: InProcessGateway, body: string) =>
  postHead('/rpc', { authorization: `Bearer ${gw.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }) + body;

test('past the limit (8 here) the oldest silent sockets are closed, one for each new one; an agent, a CLI call and an HTTP call still get in, and the log says so once', async () => {
  const limit = 8;
  const gw = await startLimitedGateway(limit);
  const silent = await openSilent(gw.port, limit + 3);
  await waitClosed(silent.slice(0, 3), 'the 3 oldest silent sockets to be closed');
  // Once the gateway closed the 3rd it had accepted the last: the others are held.
  assert.equal(closedIndexes(silent), [0, 1, 2]);
  assert.equal(floodLines(gw).length, 1, gw.log.join('\n'));
  assert.match(floodLines(gw)[0]!, `${limit} sockets are open without an authenticated request, the most the gateway holds (--max-unauthenticated-sockets): closing the oldest for each new one`);
  assert.match(floodLines(gw)[0]!, `; ${limit} of them from 127.0.0.1: `);

  // An agent connects: its socket took the place of the oldest silent one until its upgrade.
  const agent = await openPeer(gw.url, gw.token);
  resultOf(await agent.call('gateway.status'));
  await waitClosed([silent[3]!], 'the oldest silent socket to make room for the agent');

  // The upgraded agent does not count: fill the limit again, then a CLI call.
  silent.push(...(await openSilent(gw.port, 1)));
  const status = await runCli(['status', '--json', '--url', gw.url, '--token', gw.token]);
  assert.is(status.code, 0, status.stderr);
  assert.is((JSON.parse(status.stdout) as { connections: number }).connections, 1);
  await waitClosed([silent[4]!], 'the oldest silent socket to make room for the CLI');

  // The CLI's connection is closed once answered: fill the place it held again.
  silent.push(...(await openSilent(gw.port, 1)));
  const http = await postJson(gw.port, '/rpc', rpcBody('gateway.status', {}), gw.token);
  assert.is(http.status, 200);
  resultOf(jsonOf(http));
  await waitClosed([silent[5]!], 'the oldest silent socket to make room for the HTTP call');

  assert.equal(closedIndexes(silent), [0, 1, 2, 3, 4, 5], 'only as many closed as came in past the limit');
  assert.is(agent.isClosed, false);
  resultOf(await agent.call('gateway.status'));
  assert.equal(floodLines(gw).length, 1, 'one line for the whole flood, not one per socket');

  // Stopped before the flood's quiet time (a minute) ends: the summary is logged all the same.
  agent.close();
  await gw.gateway.close();
  assert.is(gw.log.at(-1), `closed 6 sockets that had no authenticated request, to keep within ${limit}; the gateway stopped`);
});

test('a flood that begins while a shutdown lingers (a WebSocket client slow to answer the close holds it) is summed up once the gateway stops', async () => {
  const limit = 4;
  const gw = await startLimitedGateway(limit);
  // It never answers the close frame, so the gateway listens on for its grace.
  await openRawWebSocket(gw.port, gw.token);
  const closing = gw.gateway.close();
  const silent = await openSilent(gw.port, limit + 2);
  await waitClosed(silent.slice(0, 2), 'the 2 oldest silent sockets to be closed');
  assert.equal(floodLines(gw).length, 1, gw.log.join('\n'));
  await closing;
  assert.match(gw.log.at(-1)!, new RegExp(`^closed \\d+ sockets that had no authenticated request, to keep within ${limit}; the gateway stopped$`));
});

test('authenticated WebSocket connections do not count: past the limit of them, silent sockets up to the limit are all held, and the next one closes the oldest silent one, never a connection', async () => {
  const limit = 4;
  const gw = await startLimitedGateway(limit);
  const agents: Peer[] = [];
  for (let i = 0; i < limit + 2; i++) agents.push(await openPeer(gw.url, gw.token));
  const silent = await openSilent(gw.port, limit + 1);
  await waitClosed([silent[0]!], 'the oldest silent socket to be closed');
  assert.equal(closedIndexes(silent), [0]);
  for (const agent of agents) {
    assert.is(agent.isClosed, false);
    assert.is(resultOf<{ connections: number }>(await agent.call('gateway.status')).connections, limit + 2);
  }
});

test('a request being served does not count: an admitted POST whose body is still to come is not closed to make room', async () => {
  const limit = 2;
  const gw = await startLimitedGateway(limit);
  const body = JSON.stringify(rpcBody('gateway.status', {}));
  const served = await openRawHttp(gw.port);
  served.write(authorized(gw, body).replace('\r\n\r\n', '\r\nexpect: 100-continue\r\n\r\n').slice(0, -body.length));
  // 100 Continue comes once the request is admitted (see the gateway's checkContinue).
  await waitUntil(() => served.received.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), '100 Continue');
  const silent = await openSilent(gw.port, limit + 1);
  await waitClosed([silent[0]!], 'the oldest silent socket to be closed');
  assert.equal(closedIndexes(silent), [0]);
  assert.is(served.closed, false);
  served.write(body);
  await waitUntil(() => /\r\n\r\n.*"result"/s.test(served.received.slice('HTTP/1.1 100 Continue\r\n\r\n'.length)), 'the answer to the served request');
  assert.match(served.received, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
});

test('a keep-alive socket idle after an authenticated request counts, but strangers are closed before it, and its next request is served', async () => {
  const limit = 4;
  const gw = await startLimitedGateway(limit);
  const body = JSON.stringify(rpcBody('gateway.status', {}));
  const keepAlive = await openRawHttp(gw.port);
  keepAlive.write(authorized(gw, body));
  assert.is((await keepAlive.response()).status, 200);
  // Now IDLE, and the oldest socket: 3 strangers fill the limit with it, and a 4th closes the oldest stranger.
  const silent = await openSilent(gw.port, limit);
  await waitClosed([silent[0]!], 'the oldest stranger to be closed');
  assert.equal(closedIndexes(silent), [0]);
  assert.is(keepAlive.closed, false);
  const before = keepAlive.received.length;
  keepAlive.write(authorized(gw, body));
  await waitUntil(() => keepAlive.received.indexOf('HTTP/1.1 200 OK', before) !== -1 && keepAlive.received.endsWith('}'), 'the answer to the second request');
  assert.is(keepAlive.closed, false);
});

test("the Unix socket's connections do not count: a silent one is not closed for TCP sockets past the limit, and the CLI given no URL calls over the socket without closing any", async () => {
  const limit = 2;
  const gw = await startLimitedGateway(limit);
  const local = net.connect(gw.gateway.socketPath!);
  local.on('error', () => {});
  let localClosed = false;
  local.on('close', () => (localClosed = true));
  await new Promise((resolve) => local.once('connect', resolve));
  // Opened before every TCP socket below: it would be the first closed if it counted.
  const silent = await openSilent(gw.port, limit + 1);
  await waitClosed([silent[0]!], 'the oldest TCP socket to be closed');
  assert.equal(closedIndexes(silent), [0]);
  const status = await runCli(['status', '--json', '--data-dir', gw.dataDir]);
  assert.is(status.code, 0, status.stderr);
  // Over TCP the call would have closed the oldest silent socket; an authenticated agent's
  // upgrade makes a barrier that does close one, so the CLI's call is known to have closed none.
  const agent = await openPeer(gw.url, gw.token);
  await waitClosed([silent[1]!], 'the oldest TCP socket to make room for the agent');
  assert.equal(closedIndexes(silent), [0, 1]);
  assert.is(localClosed, false);
  agent.close();
  local.destroy();
});

test('startGateway refuses a limit that is not a whole number of at least 1, with a RangeError, before it starts', async () => {
  for (const limit of [0, 2.5]) {
    const started = startTunedGateway({ maxUnauthenticatedSockets: limit }).then(
      () => undefined,
      (error: unknown) => error,
    );
    const error = await started;
    assert.ok(error instanceof RangeError, `${limit}: ${String(error)}`);
    assert.match((error as RangeError).message, `maxUnauthenticatedSockets must be a whole number of at least 1, not ${limit}`);
  }
});

test('switchboard gateway takes both limits as flags: --max-unauthenticated-sockets and --max-connections-per-address', async () => {
  const gw = await startGatewayProcess({ args: ['--max-unauthenticated-sockets', '2', '--max-connections-per-address', '1'] });
  const silent = await openSilent(gw.port, 3);
  await waitClosed(silent.slice(0, 1), 'the oldest silent socket to be closed');
  assert.equal(closedIndexes(silent), [0]);
  await waitUntil(() => gw.stderr().includes('without an authenticated request'), 'the log line');
  assert.match(gw.stderr(), '2 sockets are open without an authenticated request, the most the gateway holds (--max-unauthenticated-sockets)');
  for (const connection of silent) connection.socket.destroy();
  const first = await openPeer(gw.url, gw.token);
  try {
    const second = await tryUpgrade(gw.url, { authorization: `Bearer ${gw.token}` });
    assert.is(second.status, 429);
    assert.match(second.body, '127.0.0.1 already has 1 connections open');
  } finally {
    first.close();
  }
});

test('the limits\' flags take whole numbers from 1', async () => {
  for (const flag of ['--max-unauthenticated-sockets', '--max-connections-per-address']) {
    const refused = await runCli(['gateway', '--port', '0', flag, '0']);
    assert.is(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, flag);
  }
});

test.run();
