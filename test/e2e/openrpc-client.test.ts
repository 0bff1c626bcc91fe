/**
 * Interoperability: `@open-rpc/client-js`, unmodified, with its WebSocketTransport. It cannot set
 * headers, so the token travels as the password of the URL's userinfo, which `ws` turns into
 * `Authorization: Basic`. Discovery, a call, a subscription and its notification, an error.
 */
import { Client, JSONRPCError, RequestManager, WebSocketTransport } from '@open-rpc/client-js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { METHOD_NAMES, NOTIFICATIONS } from '../../src/protocol/methods.js';
import { cleanup, startInProcessGateway, type InProcessGateway } from '../helpers/gateway.js';

interface Context {
  gw: InProcessGateway;
  client: Client;
}

interface Notification {
  jsonrpc: string;
  method: string;
  params: unknown;
}

interface OpenRpcDocument {
  openrpc: string;
  info: { title: string; version: string };
  methods: { name: string; result?: unknown }[];
  'x-notifications': { name: string; params: { name: string }[]; 'x-direction': string }[];
}

const test = suite<Context>('e2e: @open-rpc/client-js over WebSocket', {} as Context);

const notifications: Notification[] = [];

test.before(async (context) => {
  context.gw = await startInProcessGateway();
  const url = `ws://sb:${context.gw.token}@127.0.0.1:${context.gw.port}`;
  context.client = new Client(new RequestManager([new WebSocketTransport(url)]));
  context.client.onNotification((notification) => notifications.push(notification as Notification));
});

test.after(async ({ client }) => {
  client.close();
  await cleanup();
});

test('rpc.discover: the OpenRPC document lists every method, and both notifications apart from them', async ({ client }) => {
  const doc = (await client.request({ method: 'rpc.discover', params: {} })) as OpenRpcDocument;
  assert.is(doc.openrpc, '1.3.2');
  assert.is(doc.info.title, 'switchboard');
  assert.equal(
    doc.methods.map((method) => method.name),
    METHOD_NAMES,
  );
  const notifications = doc['x-notifications'];
  assert.equal(
    notifications.map((notification) => notification.name),
    Object.keys(NOTIFICATIONS),
  );
  for (const notification of notifications) assert.is(notification['x-direction'], 'server-to-client');
  assert.equal(notifications.find((n) => n.name === 'session.event')!.params.map((param) => param.name), ['subscriptionId', 'event']);
  assert.equal(notifications.find((n) => n.name === 'agent.wake')!.params.map((param) => param.name).sort(), ['agentId', 'at', 'reason', 'sessions']);
});

test('a method without params called the way client-js calls it by default (params: []) is answered', async ({ client }) => {
  // client-js sends `params: []` when none are given. With no params to name, an empty array and
  // an empty object say the same thing; refusing it breaks discovery for the reference client.
  const doc = (await client.request({ method: 'rpc.discover' }).catch((error: unknown) => error)) as OpenRpcDocument | JSONRPCError;
  assert.not.instance(doc, JSONRPCError, `rpc.discover without params failed: ${JSON.stringify(doc)}`);
  assert.is((doc as OpenRpcDocument).openrpc, '1.3.2');
  const status = (await client.request({ method: 'gateway.status' }).catch((error: unknown) => error)) as { connections: number } | JSONRPCError;
  assert.not.instance(status, JSONRPCError, `gateway.status without params failed: ${JSON.stringify(status)}`);
  assert.is((status as { connections: number }).connections, 1);
});

test('system.event answers the routing result', async ({ client }) => {
  const routed = (await client.request({
    method: 'system.event',
    params: { text: 'from client-js', sessionKey: 'agent:openrpc:main', mode: 'now' },
  })) as { sessionKey: string; queue: { status: string; seq: number }; wake: { status: string }; receivers: number; eventId: string };
  assert.is(routed.sessionKey, 'agent:openrpc:main');
  assert.equal([routed.queue.status, routed.queue.seq], ['queued', 1]);
  assert.is(routed.wake.status, 'no-agent-connected');
  assert.is(routed.receivers, 0);
});

test('session.subscribe, then a session.event notification via onNotification (replay and live)', async ({ client }) => {
  const subscribed = (await client.request({ method: 'session.subscribe', params: { sessionKey: 'agent:openrpc:main' } })) as {
    subscriptionId: string;
  };
  const events = () =>
    notifications
      .filter((n) => n.method === 'session.event')
      .map((n) => n.params as { subscriptionId: string; event: { seq: number; text: string } })
      .filter((params) => params.subscriptionId === subscribed.subscriptionId);
  const deadline = Date.now() + 2_000;
  while (events().length < 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(
    events().map((params) => [params.event.seq, params.event.text]),
    [[1, 'from client-js']],
    'the pending event is replayed',
  );

  const live = (await client.request({ method: 'system.event', params: { text: 'live', sessionKey: 'agent:openrpc:main', mode: 'now' } })) as {
    receivers: number;
    wake: { status: string };
  };
  assert.equal([live.receivers, live.wake.status], [1, 'sent']);
  type Wake = { agentId: string; reason: string; sessions: string[] };
  const wakes = () => notifications.filter((n) => n.method === 'agent.wake').map((n) => n.params as Wake);
  while ((events().length < 2 || wakes().length < 2) && Date.now() < deadline + 2_000) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(
    events().map((params) => [params.event.seq, params.event.text]),
    [
      [1, 'from client-js'],
      [2, 'live'],
    ],
  );
  // First the agent's backlog (its event was pending when it subscribed), then the live event.
  assert.equal(
    wakes().map((wake) => [wake.agentId, wake.reason, wake.sessions]),
    [
      ['openrpc', 'backlog', ['agent:openrpc:main']],
      ['openrpc', 'event', ['agent:openrpc:main']],
    ],
  );
});

test('an application error arrives as JSONRPCError with the code and data.name', async ({ client }) => {
  const error = await client.request({ method: 'session.ack', params: { sessionKey: 'agent:openrpc:main', seq: 99 } }).catch((e: unknown) => e);
  assert.instance(error, JSONRPCError);
  assert.is((error as JSONRPCError).code, 1004);
  assert.equal((error as JSONRPCError).data, { name: 'ACK_OUT_OF_RANGE', sessionKey: 'agent:openrpc:main', seq: 99, lastSeq: 2 });
  const missing = await client.request({ method: 'no.such.method', params: {} }).catch((e: unknown) => e);
  assert.instance(missing, JSONRPCError);
  assert.is((missing as JSONRPCError).code, -32601);
});

test.run();
