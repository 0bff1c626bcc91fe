/**
 * The delivery trace end to end, over RPC (event.trace) and through the CLI (`switchboard trace`),
 * and `switchboard session watch --json --ack`, the CLI's long-running consumer.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  cleanup,
  errorOf,
  freshAgent,
  ISO_RE,
  openPeer,
  publish,
  resultOf,
  runCli,
  spawnCli,
  startInProcessGateway,
  waitUntil,
  type InProcessGateway,
  type Peer,
} from '../helpers/gateway.js';
import type { StoredEvent } from '../../src/protocol/schemas.js';

interface TraceStep {
  step: string;
  at: string;
  detail: Record<string, string | number | boolean | null>;
}

interface Trace {
  eventId: string;
  steps: TraceStep[];
  omitted: number;
}

interface Context {
  gw: InProcessGateway;
  publisher: Peer;
  /** The publisher's connection id, as the gateway numbers it. */
  publisherId: number;
}

const test = suite<Context>('e2e: event.trace, switchboard trace, switchboard session watch', {} as Context);

test.before(async (context) => {
  context.gw = await startInProcessGateway();
  context.publisher = await openPeer(context.gw.url, context.gw.token);
  // Subscription ids are "<connectionId>.<n>": a subscription tells a peer its connection id.
  const probe = resultOf<{ subscriptionId: string }>(await context.publisher.call('session.subscribe', { sessionKey: 'agent:probe:main' }));
  context.publisherId = connectionIdOf(probe.subscriptionId);
});

test.after(async () => {
  await cleanup();
});

function connectionIdOf(subscriptionId: string): number {
  return Number(subscriptionId.split('.')[0]);
}

async function trace(peer: Peer, eventId: string): Promise<Trace> {
  return resultOf<Trace>(await peer.call('event.trace', { eventId }));
}

function connectionArgs(gw: InProcessGateway): string[] {
  return ['--url', gw.url, '--token', gw.token];
}

test('a delivered, woken and acked event: accepted, stored, delivered, wake, acked, in order, with who did what', async ({
  gw,
  publisher,
  publisherId,
}) => {
  const agent = freshAgent('life');
  const key = `agent:${agent}:main`;
  const sub = await openPeer(gw.url, gw.token);
  const { subscriptionId } = resultOf<{ subscriptionId: string }>(await sub.call('session.subscribe', { sessionKey: key }));
  const subscriberId = connectionIdOf(subscriptionId);

  const routed = await publish(publisher, { text: 'deploy done', sessionKey: key, mode: 'now' });
  assert.equal([routed.receivers, routed.wake.status], [1, 'sent']);
  await sub.waitFor(() => sub.notifications('agent.wake')[0], 'agent.wake');
  resultOf(await sub.call('session.ack', { sessionKey: key, seq: routed.queue.seq }));

  const result = await trace(publisher, routed.eventId);
  assert.is(result.eventId, routed.eventId);
  assert.equal(
    result.steps.map((step) => [step.step, step.detail]),
    [
      ['accepted', { ingress: 'websocket', connectionId: publisherId, remoteAddress: '127.0.0.1' }],
      ['stored', { sessionKey: key, seq: 1, status: 'queued', wake: 'sent' }],
      ['delivered', { connectionIds: String(subscriberId), subscriptions: 1, replay: false }],
      ['wake', { reason: 'event', connections: 1 }],
      ['acked', { ingress: 'websocket', connectionId: subscriberId }],
    ],
  );
  assert.is(result.omitted, 0, 'every step is listed');
  for (const step of result.steps) assert.match(step.at, ISO_RE);
  const times = result.steps.map((step) => Date.parse(step.at));
  assert.ok(
    times.every((t, i) => i === 0 || t >= times[i - 1]!),
    `times never go back: ${times.join(', ')}`,
  );
  assert.is(result.steps[0]!.at, routed.storedAt);
  sub.close();
});

test('a drained event: its drained step says who drained it, over the socket as over POST /rpc', async ({ gw, publisher, publisherId }) => {
  const key = `agent:${freshAgent('drainedby')}:main`;
  const overSocket = await publish(publisher, { text: 'one', sessionKey: key });
  const overHttp = await publish(publisher, { text: 'two', sessionKey: key });
  resultOf(await publisher.call('session.drain', { sessionKey: key, limit: 1 }));
  const response = await fetch(`${gw.url.replace('ws:', 'http:')}/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session.drain', params: { sessionKey: key } }),
  });
  assert.is(response.status, 200);
  const lastStep = async (eventId: string) => {
    const { step, detail } = (await trace(publisher, eventId)).steps.at(-1)!;
    return [step, detail];
  };
  assert.equal(await lastStep(overSocket.eventId), ['drained', { ingress: 'websocket', connectionId: publisherId }]);
  assert.equal(await lastStep(overHttp.eventId), ['drained', { ingress: 'http-rpc', connectionId: null }]);
});

test('a replayed event to two subscribers: one delivered step each (replay true); next-heartbeat without a heartbeat: no wake step, and the stored step says why', async ({
  gw,
  publisher,
}) => {
  const agent = freshAgent('replayed');
  const key = `agent:${agent}:main`;
  const routed = await publish(publisher, { text: 'waiting', sessionKey: key, mode: 'next-heartbeat' });
  const first = await openPeer(gw.url, gw.token);
  const second = await openPeer(gw.url, gw.token);
  const one = resultOf<{ subscriptionId: string }>(await first.call('session.subscribe', { sessionKey: key }));
  await first.waitFor(() => first.notifications('session.event')[0], 'the replayed event');
  const two = resultOf<{ subscriptionId: string }>(await second.call('session.subscribe', { agentId: agent }));
  await second.waitFor(() => second.notifications('session.event')[0], 'the replayed event');

  const result = await trace(publisher, routed.eventId);
  assert.equal(
    result.steps.map((step) => [step.step, step.step === 'accepted' ? null : step.detail]),
    [
      ['accepted', null],
      ['stored', { sessionKey: key, seq: 1, status: 'queued', wake: 'no-agent-connected' }],
      ['delivered', { connectionIds: String(connectionIdOf(one.subscriptionId)), subscriptions: 1, replay: true }],
      ['delivered', { connectionIds: String(connectionIdOf(two.subscriptionId)), subscriptions: 1, replay: true }],
    ],
  );
  first.close();
  second.close();
});

test('a live event to several subscriptions: one delivered step, each connection named once, every subscription counted', async ({
  gw,
  publisher,
}) => {
  const agent = freshAgent('fanout');
  const key = `agent:${agent}:main`;
  const first = await openPeer(gw.url, gw.token);
  const second = await openPeer(gw.url, gw.token);
  // The first connection holds two subscriptions that both match: the session's and the agent's.
  const one = resultOf<{ subscriptionId: string }>(await first.call('session.subscribe', { sessionKey: key }));
  resultOf(await first.call('session.subscribe', { agentId: agent }));
  const two = resultOf<{ subscriptionId: string }>(await second.call('session.subscribe', { sessionKey: key }));

  const routed = await publish(publisher, { text: 'to everyone', sessionKey: key, mode: 'next-heartbeat' });
  assert.is(routed.receivers, 3);
  await first.waitFor(() => first.notifications('session.event')[1], 'the event, once per subscription');
  await second.waitFor(() => second.notifications('session.event')[0], 'the event');

  const result = await trace(publisher, routed.eventId);
  const connections = [one, two].map(({ subscriptionId }) => connectionIdOf(subscriptionId)).join(',');
  assert.equal(
    result.steps.map((step) => [step.step, step.step === 'accepted' ? null : step.detail]),
    [
      ['accepted', null],
      ['stored', { sessionKey: key, seq: 1, status: 'queued', wake: 'next-heartbeat' }],
      ['delivered', { connectionIds: connections, subscriptions: 3, replay: false }],
    ],
  );
  first.close();
  second.close();
});

test('event.trace takes an event id in upper case as the same id (RFC 9562 section 4), and answers it as issued', async ({ publisher }) => {
  const { eventId } = await publish(publisher, { text: 'any case', sessionKey: `agent:${freshAgent('upper')}:main` });
  const traced = await trace(publisher, eventId.toUpperCase());
  assert.is(traced.eventId, eventId);
  assert.equal(traced.steps.map((step) => step.step).slice(0, 2), ['accepted', 'stored']);
});

test('event.trace of an unknown event is 1007 EVENT_NOT_FOUND; a malformed id is -32602', async ({ publisher }) => {
  const eventId = '00000000-0000-4000-8000-000000000000';
  const error = errorOf(await publisher.call('event.trace', { eventId }));
  assert.is(error.code, 1007);
  assert.equal(error.data, { name: 'EVENT_NOT_FOUND', eventId });
  assert.ok(error.message.includes(eventId), error.message);
  for (const bad of [{ eventId: '' }, { eventId: 'x'.repeat(65) }, {}]) {
    const invalid = errorOf(await publisher.call('event.trace', bad));
    assert.is(invalid.code, -32602);
    assert.equal(
      (invalid.data?.errors ?? []).map((problem) => problem.path),
      ['/eventId'],
    );
  }
});

test('switchboard trace <eventId> prints every step in order (exit 0); --json is the RPC result; unknown is exit 1', async ({
  gw,
  publisher,
}) => {
  const agent = freshAgent('clitrace');
  const key = `agent:${agent}:main`;
  const sub = await openPeer(gw.url, gw.token);
  resultOf(await sub.call('session.subscribe', { agentId: agent }));
  const routed = await publish(publisher, { text: 'traced', sessionKey: key, mode: 'now' });
  await sub.waitFor(() => sub.notifications('agent.wake')[0], 'agent.wake');
  resultOf(await sub.call('session.ack', { sessionKey: key, seq: 1 }));
  const expected = await trace(publisher, routed.eventId);

  const printed = await runCli(['trace', routed.eventId, ...connectionArgs(gw)]);
  assert.is(printed.code, 0, printed.stderr);
  assert.is(printed.stderr, '');
  const lines = printed.stdout.trimEnd().split('\n');
  assert.is(lines[0], `event ${routed.eventId}`);
  assert.equal(
    lines.slice(1).map((line) => line.trim().split(/\s+/)[1]),
    ['accepted', 'stored', 'delivered', 'wake', 'acked'],
  );
  for (const [i, step] of expected.steps.entries()) {
    assert.ok(lines[i + 1]!.includes(step.at), `line ${i + 1} shows when: ${lines[i + 1]}`);
  }
  assert.match(lines[2]!, / stored +sessionKey=\S+ seq=1 status=queued wake=sent$/);
  assert.match(lines[3]!, /connectionIds=\d+ subscriptions=1 replay=false/);

  const json = await runCli(['trace', routed.eventId, '--json', ...connectionArgs(gw)]);
  assert.is(json.code, 0, json.stderr);
  assert.equal(JSON.parse(json.stdout), expected);

  const unknown = await runCli(['trace', '00000000-0000-4000-8000-000000000000', ...connectionArgs(gw)]);
  assert.is(unknown.code, 1);
  assert.is(unknown.stdout, '');
  assert.match(unknown.stderr, /no event "00000000-0000-4000-8000-000000000000"/);
  assert.match(unknown.stderr, /code 1007/);
  sub.close();
});

test('switchboard session watch --agent A --json --ack: one JSON line per event as it arrives, acked; SIGINT exits 0', async ({
  gw,
  publisher,
}) => {
  const agent = freshAgent('watch');
  const main = `agent:${agent}:main`;
  const channel = `agent:${agent}:slack:channel:C7`;
  const before = await publish(publisher, { text: 'already pending', sessionKey: main });

  const watch = spawnCli(['session', 'watch', '--agent', agent, '--json', '--ack', ...connectionArgs(gw)]);
  // The gateway traces the replay of the pending event: from then on the watcher is subscribed.
  await waitUntil(
    async () => (await trace(publisher, before.eventId)).steps.some((step) => step.step === 'delivered'),
    'the watcher to subscribe (a "delivered" step for the pending event)',
  );
  const live = [
    await publish(publisher, { text: 'live one', sessionKey: channel, contextKey: 'ci:1' }),
    await publish(publisher, { text: 'live two', sessionKey: main, mode: 'now' }),
  ];
  await waitUntil(
    () => live.every((routed) => watch.stdout().includes(routed.eventId)),
    'the live events to be printed',
  ).catch((error: Error) => assert.unreachable(`${error.message}; stdout: ${watch.stdout()}; stderr: ${watch.stderr()}`));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const events = watch.lines().map((line) => JSON.parse(line) as StoredEvent);
  assert.equal(
    events.map((event) => [event.eventId, event.sessionKey, event.seq, event.text, event.contextKey, event.storedAt]),
    [
      [before.eventId, main, 1, 'already pending', null, before.storedAt],
      [live[0]!.eventId, channel, 1, 'live one', 'ci:1', live[0]!.storedAt],
      [live[1]!.eventId, main, 2, 'live two', null, live[1]!.storedAt],
    ],
    'the replayed backlog first, then the live events, each once',
  );
  assert.is(live[0]!.receivers, 1, 'the watcher is a live subscriber');

  assert.is(await watch.stop('SIGINT'), 0, watch.stderr());
  assert.is(watch.stderr(), '');
  assert.is(watch.lines().length, 3, 'nothing printed twice');
  // Every printed event was acked before the watcher exited.
  for (const key of [main, channel]) {
    const pending = resultOf<{ events: unknown[]; depth: number }>(await publisher.call('session.peek', { sessionKey: key }));
    assert.equal([pending.events, pending.depth], [[], 0], `${key} consumed`);
  }
  const acked = await trace(publisher, live[1]!.eventId);
  assert.is(acked.steps.at(-1)!.step, 'acked');
  // The watcher's subscription ended with it.
  assert.is((await publish(publisher, { text: 'after the watcher', sessionKey: main })).receivers, 0);
});

test.run();
