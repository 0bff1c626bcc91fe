/**
 * How the client library and the CLI fail: loudly, with the error that says why, never by
 * looking like success. A revoked token ends an events() loop with an error (not a normal end),
 * calls waiting for a reconnect settle when the client is closed, and the CLI never reads an empty
 * --agent as "main".
 */
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../../src/client/client.js';
import { callOverHttp } from '../../src/client/http.js';
import { WebSocketServer, type WebSocket } from 'ws';
import { ConnectionError, RpcCallError } from '../../src/client/errors.js';
import { MAX_AUTH_FAILURES_PER_WINDOW } from '../../src/protocol/constants.js';
import type { StoredEvent } from '../../src/protocol/schemas.js';
import { parseSessionKey } from '../../src/protocol/session-key.js';
import {
  cleanup,
  openPeer,
  resultOf,
  runCli,
  sleep,
  startInProcessGateway,
  tryUpgrade,
  waitUntil,
  type CliResult,
  type InProcessGateway,
  type Peer,
} from '../helpers/gateway.js';

interface Context {
  gw: InProcessGateway;
  admin: Peer;
}

const test = suite<Context>('e2e: client and CLI failures are loud', {} as Context);

test.before(async (context) => {
  context.gw = await startInProcessGateway();
  context.admin = await openPeer(context.gw.url, context.gw.token);
});
test.after(cleanup);

/** A gateway stand-in on a free port: each test says how it answers, through `server`. */
async function standIn(): Promise<{ server: WebSocketServer; url: string }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  return { server, url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** An event as a stand-in pushes it: every member a gateway's has, the route read from its key. */
function storedEvent(sessionKey: string, seq: number, text: string, eventId = `e${seq}`): StoredEvent {
  const parsed = parseSessionKey(sessionKey);
  if (!parsed.ok) throw new Error(parsed.reason);
  return { eventId, sessionKey: parsed.value.sessionKey, seq, text, mode: 'now', contextKey: null, route: parsed.value.route, storedAt: new Date().toISOString() };
}

/** What a gateway answers to each call these stand-ins take, when they answer it. */
const ANSWERS: Record<string, unknown> = {
  'session.ack': { sessionKey: 'agent:a:main', seq: 1, acked: 1, depth: 0 },
  'session.peek': { sessionKey: 'agent:a:main', events: [], depth: 0, more: false },
  'session.drain': { sessionKey: 'agent:a:main', events: [], depth: 0, more: false },
};

/** Answers `request` as a gateway shutting down does: SHUTTING_DOWN, nothing done. */
function refuseShuttingDown(socket: WebSocket, request: { id: number }): void {
  socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, error: { code: 1003, message: 'the gateway is shutting down', data: { name: 'SHUTTING_DOWN' } } }));
}

/** A call that timed out after a SHUTTING_DOWN refusal: its ConnectionError, whose cause is the refusal. */
function timedOutAfterRefusal(outcome: unknown): ConnectionError {
  assert.instance(outcome, ConnectionError);
  const error = outcome as ConnectionError;
  assert.is(error.failure, 'timeout');
  assert.instance(error.cause, RpcCallError);
  return error;
}

test('an events() loop whose token is revoked throws ConnectionError "unauthorized" instead of ending', async ({ gw, admin }) => {
  const created = resultOf<{ tokenId: string; token: string }>(await admin.call('token.create', { agentId: 'revoked' }));
  const changes: string[] = [];
  const client = await connect({
    url: gw.url,
    token: created.token,
    timeoutMs: 2_000,
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    onReconnect: (change) => changes.push(change.state),
  });
  const seen: string[] = [];
  const loop = (async () => {
    for await (const event of client.events({ agentId: 'revoked' })) seen.push(event.text);
  })();
  resultOf(await admin.call('system.event', { text: 'before revoke', agentId: 'revoked' }));
  await waitUntil(() => seen.length > 0, 'an event', 3_000);
  resultOf(await admin.call('token.revoke', { tokenId: created.tokenId }));
  const outcome = await loop.then(
    () => 'ended',
    (error: unknown) => error,
  );
  assert.equal(seen, ['before revoke']);
  assert.instance(outcome, ConnectionError);
  assert.is((outcome as ConnectionError).failure, 'unauthorized');
  assert.is((outcome as ConnectionError).message, `connection to ${gw.url} closed (1008: token revoked): the token was revoked`);
  assert.equal(changes, [], 'the close says the token is revoked: no reconnect is tried, let alone announced');
  // A consumer that only subscribes learns it from the client's end.
  assert.is(await client.closed, outcome);
});

test('with reconnect, a subscribe whose connection is lost before the answer resolves once the client is back and resubscribed', async () => {
  // A gateway stand-in: the first connection is closed (1012, a restart) instead of answering the
  // subscribe; the second answers it and pushes an event.
  const { server, url } = await standIn();
  let connections = 0;
  server.on('connection', (socket) => {
    const connection = ++connections;
    socket.on('message', (data) => {
      const request = JSON.parse(String(data)) as { id: number; method: string };
      if (request.method !== 'session.subscribe') return;
      if (connection === 1) {
        socket.close(1012, 'gateway restarting');
        return;
      }
      const subscriptionId = `${connection}.1`;
      socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { subscriptionId, sessionKey: null, agentId: 'restarting' } }));
      const event = storedEvent('agent:restarting:main', 1, 'after the restart');
      socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'session.event', params: { subscriptionId, event } }));
    });
  });
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  try {
    const seen: string[] = [];
    const subscription = await client.subscribe({ agentId: 'restarting' }, { onEvent: (event) => seen.push(event.text) });
    assert.is(connections, 2, 'answered on the second connection');
    await waitUntil(() => seen.length > 0, 'an event', 3_000);
    assert.equal(seen, ['after the restart']);
    assert.equal([...subscription.cursors], [['agent:restarting:main', 1]]);
  } finally {
    await client.close();
    server.close();
  }
});

test('an agent subscription lets go of a session acked up to all it saw of it: a resume names only the others, and the map stays small enough to send', async () => {
  // The first connection pushes events of three sessions and answers acks, then restarts (1012);
  // the second records what the resubscribe names.
  const { server, url } = await standIn();
  const key = (user: string) => `agent:resume:direct:${user}`;
  let connections = 0;
  const resumedAfter: unknown[] = [];
  server.on('connection', (socket) => {
    const connection = ++connections;
    socket.on('message', (data) => {
      const request = JSON.parse(String(data)) as { id: number; method: string; params: { sessionKey: string; seq: number; after?: unknown } };
      const answer = (result: unknown) => socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result }));
      if (request.method === 'session.ack') return answer({ sessionKey: request.params.sessionKey, seq: request.params.seq, acked: 1, depth: 0 });
      if (request.method !== 'session.subscribe') return;
      if (connection === 2) resumedAfter.push(request.params.after);
      const subscriptionId = `${connection}.1`;
      answer({ subscriptionId, sessionKey: null, agentId: 'resume' });
      // Then U1 and U3 at seq 1 again, as after a data dir restore that reissued seqs.
      const events = connection === 1 ? ([['U1', 1], ['U2', 1], ['U2', 2], ['U3', 1]] as const) : ([['U1', 1], ['U3', 1], ['U2', 3]] as const);
      for (const [user, seq] of events) {
        const text = `${user} ${seq}${connection === 1 ? '' : ' after the restore'}`;
        const event = storedEvent(key(user), seq, text, `${user}-${seq}-${connection}`);
        socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'session.event', params: { subscriptionId, event } }));
      }
    });
  });
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  try {
    const seen: string[] = [];
    const subscription = await client.subscribe({ agentId: 'resume' }, { onEvent: (event) => seen.push(event.text) });
    await waitUntil(() => seen.length === 4, 'the events');
    // U1 acked up to what was seen of it; U2 only up to 1 of the 2 seen; U3 not at all.
    await client.ack({ sessionKey: key('U1'), seq: 1 });
    await client.ack({ sessionKey: key('U2'), seq: 1 });
    assert.equal([...subscription.cursors], [[key('U2'), 2], [key('U3'), 1]]);
    const back = new Promise<void>((resolve) => server.once('connection', () => resolve()));
    for (const socket of server.clients) socket.close(1012, 'gateway restarting');
    await back;
    await waitUntil(() => resumedAfter.length > 0, 'the resubscribe');
    assert.equal(resumedAfter, [{ [key('U2')]: 2, [key('U3')]: 1 }]);
    // A session let go takes a reissued seq as the new event it is; one still held, as one seen.
    await waitUntil(() => seen.includes('U2 3 after the restore'), 'the last event pushed');
    assert.equal(seen.slice(4), ['U1 1 after the restore', 'U2 3 after the restore']);
  } finally {
    await client.close();
    server.close();
  }
});

test('a drain that left its session empty lets go of the cursor only up to what was stored before it ran: an event pushed before its answer came keeps it', async () => {
  // The gateway as it behaves when an event is stored just after a drain: its push overtakes the drain's answer.
  const { server, url } = await standIn();
  const sessionKey = 'agent:race:direct:u1';
  const event = (seq: number) => storedEvent(sessionKey, seq, `e${seq}`);
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      const request = JSON.parse(String(data)) as { id: number; method: string };
      const answer = (result: unknown) => socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result }));
      const push = (seq: number) => socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'session.event', params: { subscriptionId: '1.1', event: event(seq) } }));
      if (request.method === 'session.subscribe') {
        answer({ subscriptionId: '1.1', sessionKey: null, agentId: 'race' });
        push(1);
      } else if (request.method === 'session.drain') {
        push(2);
        answer({ sessionKey, events: [event(1)], depth: 0, more: false });
      }
    });
  });
  const client = await connect({ url, token: 'x', timeoutMs: 5_000 });
  try {
    const seen: number[] = [];
    const subscription = await client.subscribe({ agentId: 'race' }, { onEvent: (pushed) => seen.push(pushed.seq) });
    await waitUntil(() => seen.length === 1, 'the first event');
    await client.drain({ sessionKey: 'AGENT:race:direct:u1' });
    assert.equal(seen, [1, 2]);
    assert.equal([...subscription.cursors], [[sessionKey, 2]], 'seq 2 was stored after the drain ran: still pending, its cursor kept');
  } finally {
    await client.close();
    server.close();
  }
});

test('a subscribe that gives up while its resubscribe is under way never goes live: the late answer is unsubscribed, its events never delivered', async () => {
  // The first connection is closed instead of answering; the second answers the resubscribe only
  // after the caller's deadline, then pushes an event on it.
  const { server, url } = await standIn();
  let connections = 0;
  const unsubscribed: string[] = [];
  server.on('connection', (socket) => {
    const connection = ++connections;
    socket.on('message', (data) => {
      const request = JSON.parse(String(data)) as { id: number; method: string; params: { subscriptionId?: string } };
      if (request.method === 'session.unsubscribe') {
        unsubscribed.push(request.params.subscriptionId!);
        socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { subscriptionId: request.params.subscriptionId, unsubscribed: true } }));
        return;
      }
      if (request.method !== 'session.subscribe') return;
      if (connection === 1) {
        socket.close(1012, 'gateway restarting');
        return;
      }
      setTimeout(() => {
        socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { subscriptionId: 'late.1', sessionKey: null, agentId: 'late' } }));
        const event = storedEvent('agent:late:main', 1, 'too late');
        socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'session.event', params: { subscriptionId: 'late.1', event } }));
      }, 400);
    });
  });
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  try {
    const seen: string[] = [];
    const outcome = await client.subscribe({ agentId: 'late' }, { onEvent: (event) => seen.push(event.text) }, { timeoutMs: 200 }).then(
      () => 'subscribed',
      (error: unknown) => error,
    );
    assert.instance(outcome, ConnectionError);
    assert.is((outcome as ConnectionError).failure, 'timeout');
    await waitUntil(() => unsubscribed.length > 0, 'the late subscription to be unsubscribed', 3_000);
    assert.equal(unsubscribed, ['late.1'], 'the late subscription is taken back on the gateway');
    assert.equal(seen, [], 'and its events never reach the caller told it failed');
  } finally {
    await client.close();
    server.close();
  }
});

test('a call waiting for a reconnect is rejected as closed when the client is closed', async () => {
  // A gateway stand-in that restarts (1012) under every connection; the client then waits a second before reconnecting.
  const { server, url } = await standIn();
  server.on('connection', (socket) => setTimeout(() => socket.close(1012, 'gateway restarting'), 20));
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 1_000, maxDelayMs: 1_000 } });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const started = Date.now();
  const waiting = client.status().then(
    () => 'answered',
    (error: unknown) => error,
  );
  await client.close();
  server.close();
  const outcome = await waiting;
  assert.instance(outcome, ConnectionError);
  assert.is((outcome as ConnectionError).failure, 'closed');
  assert.ok(Date.now() - started < 4_000, 'settled at close, not at its 5 s timeout');
});

test('an events() loop started while the client waits for a reconnect ends when the client is closed, as a running one does: closing is an end', async () => {
  const { server, url } = await standIn();
  server.on('connection', (socket) => setTimeout(() => socket.close(1012, 'gateway restarting'), 20));
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 1_000, maxDelayMs: 1_000 } });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const loop = (async () => {
    for await (const event of client.events({ agentId: 'main' })) void event;
    return 'ended';
  })().catch((error: unknown) => error);
  await client.close();
  server.close();
  assert.is(await loop, 'ended');
});

test('calls made in the same tick as close() are rejected as closed at once, not at their timeout', async ({ gw }) => {
  const client = await connect({ url: gw.url, token: gw.token, timeoutMs: 5_000 });
  const started = Date.now();
  const outcomes = [client.status(), client.peek({ sessionKey: 'main' }), client.subscribe({ agentId: 'main' }, { onEvent: () => {} })].map((call) =>
    call.then(
      () => 'answered',
      (error: unknown) => error,
    ),
  );
  await client.close();
  for (const outcome of await Promise.all(outcomes)) {
    assert.instance(outcome, ConnectionError);
    assert.is((outcome as ConnectionError).failure, 'closed');
    assert.is((outcome as ConnectionError).message, 'the client was closed');
  }
  assert.ok(Date.now() - started < 4_000, `settled at close, not at the 5 s timeout (${Date.now() - started} ms)`);
});

test('with reconnect, an ack (or a read) whose connection is lost before its answer is sent again once the client is back; a drain is not', async () => {
  // A gateway stand-in killed (its socket cut, no close frame) the first time it reads each method, and answering it on the next connection.
  const { server, url } = await standIn();
  const received: string[] = [];
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      const request = JSON.parse(String(data)) as { id: number; method: string };
      received.push(request.method);
      if (received.filter((method) => method === request.method).length === 1) return void socket.terminate();
      socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: ANSWERS[request.method] }));
    });
  });
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 10 } });
  try {
    assert.equal(await client.ack({ sessionKey: 'agent:a:main', seq: 1 }), ANSWERS['session.ack']);
    assert.equal(await client.peek({ sessionKey: 'agent:a:main' }), ANSWERS['session.peek']);
    const drained = await client.drain({ sessionKey: 'agent:a:main' }).catch((error: unknown) => error);
    assert.instance(drained, ConnectionError);
    assert.is((drained as ConnectionError).failure, 'closed');
    assert.equal(received, ['session.ack', 'session.ack', 'session.peek', 'session.peek', 'session.drain']);
  } finally {
    await client.close();
    server.close();
  }
});

test('a signal aborted before the call: connect() and subscribe() reject "aborted" at once, as a call does; an events() loop ends at once, as on an abort later, and never streams', async ({ gw, admin }) => {
  const agentId = 'preaborted';
  resultOf(await admin.call('system.event', { text: 'pending', agentId }));
  const client = await connect({ url: gw.url, token: gw.token, timeoutMs: 5_000 });
  try {
    const signal = AbortSignal.abort();
    const seen: number[] = [];
    const loop = (async () => {
      for await (const event of client.events({ agentId }, { signal })) seen.push(event.seq);
      return 'ended';
    })();
    assert.is(await Promise.race([loop, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 1_000))]), 'ended');
    const outcomes = await Promise.all(
      [client.subscribe({ agentId }, { onEvent: (event) => seen.push(event.seq) }, { signal }), client.status({ signal })].map((call) =>
        Promise.race([call.then(() => 'resolved', (error: unknown) => error), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 1_000))]),
      ),
    );
    const connecting = await connect({ url: gw.url, token: gw.token, signal }).then(
      (opened) => (void opened.close(), 'connected'),
      (error: unknown) => error,
    );
    for (const outcome of [...outcomes, connecting]) {
      assert.instance(outcome, ConnectionError);
      assert.is((outcome as ConnectionError).failure, 'aborted');
    }
    assert.equal(seen, [], 'no event was streamed');
    assert.is((await client.systemEvent({ text: 'after', agentId })).receivers, 0, 'no subscription was left behind');
  } finally {
    await client.close();
  }
});

test('with reconnect, an ack refused SHUTTING_DOWN by a gateway going down is sent again once it is back; a drain gets the refusal', async () => {
  // A gateway stand-in that shuts down under each of its first two connections: it refuses what comes (nothing done), and closes with 1001
  // once it has refused an ack. On that event, not after a delay: a stalled test process would read the refusal and the close together.
  const { server, url } = await standIn();
  const received: string[] = [];
  let connections = 0;
  server.on('connection', (socket) => {
    const number = ++connections;
    const shuttingDown = number <= 2;
    socket.on('message', (data) => {
      const request = JSON.parse(String(data)) as { id: number; method: string };
      received.push(`${number}:${request.method}`);
      if (!shuttingDown) return void socket.send(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: ANSWERS[request.method] }));
      refuseShuttingDown(socket, request);
      if (request.method === 'session.ack') socket.close(1001, 'gateway shutting down');
    });
  });
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 10 } });
  try {
    const drained = await client.drain({ sessionKey: 'agent:a:main' }).catch((error: unknown) => error);
    assert.instance(drained, RpcCallError);
    assert.is((drained as RpcCallError).errorName, 'SHUTTING_DOWN');
    assert.equal(await client.ack({ sessionKey: 'agent:a:main', seq: 1 }), ANSWERS['session.ack']);
    assert.equal(received, ['1:session.drain', '1:session.ack', '2:session.ack', '3:session.ack']);
  } finally {
    await client.close();
    server.close();
  }
});

/** A stand-in that refuses every call SHUTTING_DOWN, then stops for good: it stops listening and closes the connection. */
async function stoppingForGood(): Promise<string> {
  const { server, url } = await standIn();
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      const request = JSON.parse(String(data)) as { id: number };
      refuseShuttingDown(socket, request);
      // Stops listening first: the reconnect finds nothing, as after a final stop.
      server.close();
      socket.close(1001, 'gateway shutting down');
    });
  });
  return url;
}

test('with reconnect, a read refused SHUTTING_DOWN by a gateway that stops for good times out saying it was refused and the gateway is not back', async () => {
  const client = await connect({ url: await stoppingForGood(), token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 20 } });
  try {
    const error = timedOutAfterRefusal(await client.status({ timeoutMs: 1_000 }).catch((error: unknown) => error));
    // Waiting for the close (on a stalled machine) or, as a rule, for the gateway to be back.
    assert.match(
      error.message,
      /^gateway\.status: the gateway at ws:\/\/127\.0\.0\.1:\d+ (was not back|did not close the connection it is shutting down) within 1000 ms; it was to be sent again after the gateway refused it \(SHUTTING_DOWN: the gateway is shutting down\)$/,
    );
  } finally {
    await client.close();
  }
});

test('with reconnect, an ack refused SHUTTING_DOWN by a gateway that stops for good waits for it past its timeout (an agent loop outlasts an outage), until the client is closed', async () => {
  const client = await connect({ url: await stoppingForGood(), token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 20 } });
  const outcome = client.ack({ sessionKey: 'agent:a:main', seq: 1 }, { timeoutMs: 200 }).then(
    () => 'answered',
    (error: unknown) => error,
  );
  const settled = await Promise.race([outcome, sleep(1_000).then(() => 'waiting')]);
  assert.is(settled, 'waiting', 'still waiting for the gateway after five of its timeouts');
  await client.close();
  const error = await outcome;
  assert.instance(error, ConnectionError);
  assert.is((error as ConnectionError).failure, 'closed');
});

test('with reconnect, an ack sent again after a SHUTTING_DOWN refusal that gets no answer times out saying it was sent again, and why', async () => {
  const { server, url } = await standIn();
  let connections = 0;
  server.on('connection', (socket) => {
    const first = ++connections === 1;
    socket.on('message', (data) => {
      if (!first) return;
      const request = JSON.parse(String(data)) as { id: number };
      refuseShuttingDown(socket, request);
      socket.close(1012, 'gateway restarting');
    });
  });
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 20 } });
  try {
    const error = timedOutAfterRefusal(await client.ack({ sessionKey: 'agent:a:main', seq: 1 }, { timeoutMs: 1_000 }).catch((error: unknown) => error));
    assert.is(connections, 2, 'sent again on the connection the reconnect opened');
    assert.match(error.message, /^no answer to session\.ack from \S+ within 1000 ms; it was sent again after the gateway refused it \(SHUTTING_DOWN: the gateway is shutting down\)$/);
  } finally {
    await client.close();
    server.close();
  }
});

test('with reconnect, a read whose connection is lost times out naming the lost connection when the gateway is not back, and the timeout the caller gave (QA: it said the time left)', async () => {
  const { server, url } = await standIn();
  server.on('connection', (socket) => {
    socket.on('message', () => {
      server.close();
      socket.terminate();
    });
  });
  const client = await connect({ url, token: 'x', timeoutMs: 5_000, reconnect: { initialDelayMs: 10, maxDelayMs: 20 } });
  try {
    const outcome = await client.status({ timeoutMs: 300 }).catch((error: unknown) => error);
    assert.instance(outcome, ConnectionError);
    const error = outcome as ConnectionError;
    assert.is(error.failure, 'timeout');
    assert.match(error.message, /^gateway\.status: the gateway at \S+ was not back within 300 ms; it was to be sent again after connection to \S+ closed \(1006: no close frame, the connection was lost\) before the gateway answered$/);
    assert.instance(error.cause, ConnectionError);
  } finally {
    await client.close();
  }
});

test('an onEvent or notification listener that throws is an uncaught exception of its own: the connection goes on answering calls and pushing events', async ({ gw }) => {
  const uncaught: string[] = [];
  const onUncaught = (error: Error) => uncaught.push(error.message);
  process.on('uncaughtException', onUncaught);
  const client = await connect({ url: gw.url, token: gw.token, timeoutMs: 2_000 });
  try {
    const agentId = 'throwing';
    const seen: number[] = [];
    client.onNotification((method) => {
      if (method === 'session.event') throw new Error('listener bug');
    });
    await client.subscribe(
      { agentId },
      {
        onEvent: (event) => {
          seen.push(event.seq);
          if (event.seq === 1) throw new Error('onEvent bug');
        },
      },
    );
    await client.systemEvent({ text: 'first', agentId });
    await client.systemEvent({ text: 'second', agentId });
    await waitUntil(() => seen.length === 2, `both events (got ${JSON.stringify(seen)})`, 2_000);
    assert.equal(seen, [1, 2]);
    assert.is(typeof (await client.status()).version, 'string', 'later calls are answered');
    assert.equal(uncaught.sort(), ['listener bug', 'listener bug', 'onEvent bug']);
  } finally {
    process.off('uncaughtException', onUncaught);
    await client.close();
  }
});

test('the CLI refuses an empty --agent instead of reading main', async ({ gw, admin }) => {
  resultOf(await admin.call('system.event', { text: 'in main' }));
  for (const command of ['peek', 'drain']) {
    const result = await runCli(['session', command, '--agent', '', '--url', gw.url, '--token', gw.token, '--json']);
    // An empty value is a usage error: it never reaches the gateway, let alone main.
    assert.is(result.code, 2, `session ${command} --agent "": ${result.stdout}${result.stderr}`);
    assert.match(result.stderr, /^switchboard: --agent is empty/);
    assert.is(result.stdout, '');
  }
  const main = resultOf<{ events: unknown[] }>(await admin.call('session.peek', { sessionKey: 'main' }));
  assert.is(main.events.length, 1, 'nothing was drained from main');
});

test('session watch refused by the rate limiter says why, as a one-shot command does', async () => {
  // A gateway of its own: the lock-out would refuse wrong tokens of other tests from 127.0.0.1.
  const gw = await startInProcessGateway();
  for (let i = 0; i < MAX_AUTH_FAILURES_PER_WINDOW; i++) assert.is((await tryUpgrade(gw.url, { authorization: `Bearer wrong-${i}` })).status, 401);
  const refusal = 'HTTP 429: too many failed authentications from 127.0.0.1; retry in N s (RATE_LIMITED 1013)';
  // The seconds left in the window depend on how long the failures above took.
  const stderrOf = (result: CliResult) => result.stderr.replace(/retry in \d+ s/, 'retry in N s');
  const watch = await runCli(['session', 'watch', '--url', gw.url, '--token', 'wrong']);
  assert.is(watch.code, 3, watch.stderr);
  assert.is(stderrOf(watch), `switchboard: the gateway at ${gw.url} refused the connection (${refusal})\n`);
  const status = await runCli(['status', '--url', gw.url, '--token', 'wrong']);
  assert.is(status.code, 3, status.stderr);
  assert.is(stderrOf(status), `switchboard: the gateway at ${gw.url} refused the call (${refusal})\n`);
  // The library's caller gets the wait as a number, from Retry-After (QA: only the message said it).
  const refusals = [
    await connect({ url: gw.url, token: 'wrong' }).then(() => undefined, (error: ConnectionError) => error.refusal),
    await callOverHttp({ url: gw.url, token: 'wrong' }, 'gateway.status', {}).then(() => undefined, (error: ConnectionError) => error.refusal),
  ];
  for (const refused of refusals) {
    assert.equal([refused?.status, refused?.errorName], [429, 'RATE_LIMITED']);
    assert.ok(refused!.retryAfterSeconds! >= 1 && refused!.retryAfterSeconds! <= 60, String(refused?.retryAfterSeconds));
  }
});

test.run();
