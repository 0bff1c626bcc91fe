/**
 * Scoped tokens end to end: created with the CLI and over RPC, then used on every ingress. A token
 * reaches one agent's sessions with the scopes it was given, is refused the same way (1008
 * FORBIDDEN) whichever way a request comes in, is stored only as a hash, stops working the moment
 * it is revoked (its sockets closed with 1008 "token revoked"), and outlives a gateway restart.
 */
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DATA_FILES } from '../../src/protocol/constants.js';
import { hashToken } from '../../src/server/auth.js';
import {
  cleanup,
  errorOf,
  ISO_RE,
  openPeer,
  resultOf,
  runCli,
  spawnCli,
  startTunedGateway,
  waitUntil,
  tryUpgrade,
  type InProcessGateway,
  type JsonRpcResponse,
  type Peer,
} from '../helpers/gateway.js';
import {
  answerIn,
  bearer,
  cliRefusal,
  closeHttpSockets,
  INGRESSES,
  jsonOf,
  openRawHttp,
  openRawWebSocket,
  postJson,
  publishVia,
  refusalVia,
  rpcBody,
  type RoutingResult,
} from '../helpers/http.js';

interface Created {
  tokenId: string;
  token: string;
  agentId: string;
  scopes: string[];
  name: string | null;
  createdAt: string;
  revokedAt: string | null;
}

interface TokenInfo {
  tokenId: string;
  name: string | null;
  agentId: string;
  scopes: string[];
  createdAt: string;
  revokedAt: string | null;
}

interface Context {
  gw: InProcessGateway;
  admin: Peer;
  /** Made by `switchboard token create --agent ops --can publish --name ci`. */
  ci: { token: string; tokenId: string };
  ciPeer: Peer;
}

const test = suite<Context>('e2e: scoped tokens (token create/list/revoke, FORBIDDEN on every ingress)', {} as Context);

test.before(async (context) => {
  context.gw = await startTunedGateway();
  context.admin = await openPeer(context.gw.url, context.gw.token);
});

test.after(async () => {
  closeHttpSockets();
  await cleanup();
});

function connection(gw: InProcessGateway, token = gw.token): string[] {
  return ['--url', gw.url, '--token', token];
}

async function create(admin: Peer, params: Record<string, unknown>): Promise<Created> {
  return resultOf<Created>(await admin.call('token.create', params));
}

const CI_LINE = /^ {2}token (tok_[0-9a-f]+) for agent "ops" \(publish\), "ci"$/m;

test('`switchboard token create --agent ops --can publish --name ci` prints an sbt_ secret once and exits 0', async (context) => {
  const { gw } = context;
  const result = await runCli(['token', 'create', '--agent', 'ops', '--can', 'publish', '--name', 'ci', ...connection(gw)]);
  assert.is(result.code, 0, result.stderr);
  const [secret] = result.stdout.split('\n');
  assert.match(secret!, /^sbt_[A-Za-z0-9_-]{43}$/);
  const line = CI_LINE.exec(result.stdout);
  assert.ok(line, `names the token id, agent, scopes and name: ${result.stdout}`);
  context.ci = { token: secret!, tokenId: line![1]! };
  context.ciPeer = await openPeer(gw.url, context.ci.token);

  const json = await runCli(['token', 'create', '--agent', 'ops', '--json', ...connection(gw)]);
  assert.is(json.code, 0, json.stderr);
  const created = JSON.parse(json.stdout) as Created;
  assert.match(created.token, /^sbt_/);
  assert.equal([created.agentId, created.scopes, created.name, created.revokedAt], ['ops', ['publish', 'subscribe'], null, null]);
});

test('a publish token publishes to its agent on every ingress; with no key its events go to agent:ops:main', async ({ gw, ci, ciPeer }) => {
  for (const ingress of INGRESSES) {
    const keyed = await publishVia(gw, ciPeer, ingress, { text: `ci via ${ingress}`, sessionKey: 'agent:ops:slack:channel:C9' }, ci.token);
    assert.is(keyed.sessionKey, 'agent:ops:slack:channel:C9', ingress);
    const unkeyed = await publishVia(gw, ciPeer, ingress, { text: `ci main via ${ingress}` }, ci.token);
    assert.equal(
      [unkeyed.sessionKey, unkeyed.requestedSessionKey, unkeyed.fallback],
      [
        'agent:ops:main',
        null,
        { reason: 'no-session-key', message: 'no sessionKey given: routed to the main session of agent "ops"' },
      ],
      ingress,
    );
  }
});

test("a publish token reaching agent main is 1008 FORBIDDEN on every ingress, the same refusal, and nothing is stored", async ({ gw, admin, ci, ciPeer }) => {
  const pendingBefore = resultOf<{ pending: number }>(await admin.call('gateway.status', {})).pending;
  const attempts: Record<string, string>[] = [
    { text: 'not for ops', sessionKey: 'agent:main:slack:channel:C123:thread:456' },
    // An explicit agentId is not a way round it either; nor is "main", the default agent's main session.
    { text: 'not for ops either', agentId: 'main' },
    { text: 'nor this', sessionKey: 'main' },
  ];
  for (const params of attempts) {
    const refusals = [];
    for (const ingress of INGRESSES) refusals.push(await refusalVia(gw, ciPeer, ingress, params, 403, ci.token));
    for (const refusal of refusals) assert.equal(refusal, refusals[0], JSON.stringify(params));
    assert.equal(refusals[0], {
      code: 1008,
      message: 'this token belongs to agent "ops" and cannot reach agent "main"\'s sessions',
    });
  }
  assert.is(resultOf<{ pending: number }>(await admin.call('gateway.status', {})).pending, pendingBefore);
});

test("gateway.status for a scoped token: its agent's sessions, pending and connections, and no data dir or free disk space", async ({ gw, admin }) => {
  const statusOf = async (peer: Peer) => resultOf<Record<string, unknown>>(await peer.call('gateway.status', {}));
  const scoped = await create(admin, { agentId: 'census' });
  const peers = [await openPeer(gw.url, scoped.token), await openPeer(gw.url, scoped.token)];
  resultOf(await admin.call('system.event', { text: 'elsewhere', sessionKey: 'agent:census-other:main' }));
  for (const key of ['agent:census:main', 'agent:census:direct:U1']) {
    resultOf(await peers[0]!.call('system.event', { text: 'one', sessionKey: key }));
  }
  resultOf(await peers[0]!.call('system.event', { text: 'two', sessionKey: 'agent:census:main' }));
  const own = await statusOf(peers[1]!);
  assert.equal([own['dataDir'], own['sessions'], own['pending'], own['connections'], own['freeDiskBytes']], [null, 2, 3, 2, null]);
  const all = await statusOf(admin);
  assert.is(all['dataDir'], gw.dataDir);
  assert.ok(Number.isInteger(all['freeDiskBytes']) && (all['freeDiskBytes'] as number) > 0, JSON.stringify(all));
  assert.is(own['minFreeDiskBytes'], all['minFreeDiskBytes']);
  assert.ok((all['pending'] as number) >= 4 && (all['connections'] as number) >= 3, JSON.stringify(all));
  const human = await runCli(['status', ...connection(gw, scoped.token)]);
  assert.is(human.code, 0, human.stderr);
  assert.match(human.stdout, /data dir: {4}\(not shown to a scoped token\)/);
  assert.match(human.stdout, /\n {2}disk: {8}64\.0 MiB kept free\n {2}writes: {6}ok\n?$/);
  for (const peer of peers) peer.close();
});

test('a publish-only token cannot subscribe, peek, drain, ack, list or trace, even for its own agent (1008)', async ({ gw, ci, ciPeer }) => {
  const own = await publishVia(gw, ciPeer, 'websocket', { text: 'own event', sessionKey: 'agent:ops:direct:U1' }, ci.token);
  const calls: Array<[string, Record<string, unknown>]> = [
    ['session.subscribe', { agentId: 'ops' }],
    ['session.subscribe', { sessionKey: 'agent:ops:main' }],
    ['session.peek', { sessionKey: 'agent:ops:main' }],
    ['session.drain', { sessionKey: 'agent:ops:main' }],
    ['session.ack', { sessionKey: 'agent:ops:direct:U1', seq: own.queue.seq }],
    ['session.list', {}],
    ['session.list', { agentId: 'ops' }],
    ['event.trace', { eventId: own.eventId }],
  ];
  for (const [method, params] of calls) {
    const error = errorOf(await ciPeer.call(method, params));
    assert.equal([error.code, error.data?.name], [1008, 'FORBIDDEN'], `${method} ${JSON.stringify(params)}`);
    assert.is(error.message, 'this token lacks the "subscribe" scope; create one with --can subscribe', method);
    const overHttp = errorOf(jsonOf<JsonRpcResponse>(await postJson(gw.port, '/rpc', rpcBody(method, params), ci.token)));
    assert.equal([overHttp.code, overHttp.message], [error.code, error.message], `${method} over /rpc`);
  }
  // Nothing was consumed by the refused drain and ack.
  const peeked = resultOf<{ depth: number }>(await adminPeek(gw, 'agent:ops:direct:U1'));
  assert.is(peeked.depth, 1);
});

async function adminPeek(gw: InProcessGateway, sessionKey: string): Promise<JsonRpcResponse> {
  return jsonOf<JsonRpcResponse>(await postJson(gw.port, '/rpc', rpcBody('session.peek', { sessionKey }), gw.token));
}

interface TraceJson {
  eventId: string;
  steps: { step: string; at: string; detail: Record<string, unknown> }[];
}

test("event.trace for a scoped token: every step of its agent's event, with the publisher's ingress but not its remoteAddress or connectionId, which the admin token sees; the same through the CLI", async ({ gw, admin }) => {
  const tracer = await create(admin, { agentId: 'tracer' });
  const key = 'agent:tracer:main';
  const stored = resultOf<RoutingResult>(await admin.call('system.event', { text: 'traced', sessionKey: key }));
  // The same text again over the hook: deduplicated into the first, a second publisher's step.
  const repeat = jsonOf<RoutingResult>(await postJson(gw.port, '/hooks/wake', { text: 'traced', sessionKey: key }, gw.token));
  assert.equal([repeat.eventId, repeat.queue.status], [stored.eventId, 'deduplicated']);
  const scoped = await openPeer(gw.url, tracer.token);
  resultOf(await scoped.call('session.ack', { sessionKey: key, seq: stored.queue.seq }));

  const full = resultOf<TraceJson>(await admin.call('event.trace', { eventId: stored.eventId }));
  const detailOf = (trace: TraceJson, step: string) => trace.steps.find((entry) => entry.step === step)?.detail;
  assert.equal(Object.keys(detailOf(full, 'accepted') ?? {}).sort(), ['connectionId', 'ingress', 'remoteAddress']);
  assert.is(detailOf(full, 'accepted')!['remoteAddress'], '127.0.0.1');
  assert.type(detailOf(full, 'accepted')!['connectionId'], 'number');
  assert.equal(detailOf(full, 'deduplicated'), { ingress: 'http-hook', connectionId: null, remoteAddress: '127.0.0.1', depth: 1 });

  const seen = resultOf<TraceJson>(await scoped.call('event.trace', { eventId: stored.eventId }));
  assert.equal(
    seen.steps,
    full.steps.map((entry) => {
      if (entry.step !== 'accepted' && entry.step !== 'deduplicated') return entry;
      const { remoteAddress: _address, connectionId: _connection, ...rest } = entry.detail;
      return { ...entry, detail: rest };
    }),
  );
  assert.equal(detailOf(seen, 'accepted'), { ingress: 'websocket' });
  assert.equal(detailOf(seen, 'deduplicated'), { ingress: 'http-hook', depth: 1 });
  // Its own ack stays named: what happened to the event, done by the token's own connection.
  assert.equal(Object.keys(detailOf(seen, 'acked') ?? {}).sort(), ['connectionId', 'ingress']);
  const overHttp = resultOf<TraceJson>(jsonOf<JsonRpcResponse>(await postJson(gw.port, '/rpc', rpcBody('event.trace', { eventId: stored.eventId }), tracer.token)));
  assert.equal(overHttp, seen);
  const cli = await runCli(['trace', stored.eventId, '--json', ...connection(gw, tracer.token)]);
  assert.is(cli.code, 0, cli.stderr);
  assert.equal(JSON.parse(cli.stdout), seen);
  assert.not.match(cli.stdout, /remoteAddress/);
  scoped.close();
});

test('a subscribe-only token cannot publish, even to its own agent; it subscribes to its agent only', async ({ gw, admin }) => {
  const reader = await create(admin, { agentId: 'reader', scopes: ['subscribe'] });
  const peer = await openPeer(gw.url, reader.token);
  for (const ingress of INGRESSES) {
    const refusal = await refusalVia(gw, peer, ingress, { text: 'readers do not write', agentId: 'reader' }, 403, reader.token);
    assert.equal(refusal, { code: 1008, message: 'this token lacks the "publish" scope; create one with --can publish' }, ingress);
  }
  const subscribed = resultOf<{ agentId: string }>(await peer.call('session.subscribe', { agentId: 'reader' }));
  assert.is(subscribed.agentId, 'reader');
  const elsewhere = errorOf(await peer.call('session.subscribe', { agentId: 'main' }));
  assert.equal([elsewhere.code, elsewhere.message], [1008, 'this token belongs to agent "reader" and cannot reach agent "main"\'s sessions']);
  assert.is(resultOf<{ depth: number }>(await peer.call('session.peek', { sessionKey: 'agent:reader:main' })).depth, 0);
  // Nor can it learn another agent's sessions through its own subscription's resume cursors: a
  // cursor past a session's last seq is refused with that last seq, so those of other agents are
  // refused before any is checked, whatever their seq.
  await admin.call('system.event', { text: 'not for readers', sessionKey: 'agent:main:main' });
  for (const seq of [1, 1_000_000]) {
    const probe = errorOf(await peer.call('session.subscribe', { agentId: 'reader', after: { 'agent:main:main': seq } }));
    assert.equal([probe.code, probe.data], [
      -32602,
      {
        name: 'INVALID_PARAMS',
        errors: [{ path: '/after/agent:main:main', message: 'is a session of agent "main": an agent subscription resumes sessions of agent "reader" only' }],
      },
    ]);
  }
  peer.close();
});

test("a scoped token that names no session reads, drains and watches its agent's main session, where its events without one went, on the wire and through the CLI", async ({ gw, admin }) => {
  const own = await create(admin, { agentId: 'solo' });
  const sent = await runCli(['system', 'event', '--text', 'to my own main', '--json', ...connection(gw, own.token)]);
  assert.is((JSON.parse(sent.stdout) as { sessionKey: string }).sessionKey, 'agent:solo:main', sent.stderr);
  const peer = await openPeer(gw.url, own.token);
  const peeked = resultOf<{ sessionKey: string; events: Array<{ text: string }> }>(await peer.call('session.peek', {}));
  assert.equal([peeked.sessionKey, peeked.events.map((event) => event.text)], ['agent:solo:main', ['to my own main']]);
  const subscribed = resultOf<{ sessionKey: string | null; agentId: string }>(await peer.call('session.subscribe', {}));
  assert.equal([subscribed.sessionKey, subscribed.agentId], [null, 'solo']);
  const both = errorOf(await peer.call('session.subscribe', { sessionKey: 'agent:solo:main', agentId: 'solo' }));
  assert.equal(both.data, { name: 'INVALID_PARAMS', errors: [{ path: '/agentId', message: 'give one of sessionKey (one session) and agentId (all sessions of an agent), not both' }] });
  peer.close();

  const peek = await runCli(['session', 'peek', '--json', ...connection(gw, own.token)]);
  assert.is((JSON.parse(peek.stdout) as { sessionKey: string }).sessionKey, 'agent:solo:main', peek.stderr);
  const watch = spawnCli(['session', 'watch', '--json', ...connection(gw, own.token)]);
  await waitUntil(() => watch.stdout().includes('to my own main'), 'the watch to print the pending event').catch((error: Error) =>
    assert.unreachable(`${error.message}\nstderr: ${watch.stderr()}`),
  );
  assert.is(await watch.stop(), 0, watch.stderr());
  const drain = await runCli(['session', 'drain', '--json', ...connection(gw, own.token)]);
  assert.equal((JSON.parse(drain.stdout) as { events: Array<{ text: string }> }).events.map((event) => event.text), ['to my own main']);
  // The admin token's own agent is main.
  const adminPeek = await runCli(['session', 'peek', '--json', ...connection(gw)]);
  assert.is((JSON.parse(adminPeek.stdout) as { sessionKey: string }).sessionKey, 'agent:main:main');
});

test('token.create with a name holding a lone UTF-16 surrogate is -32602 on /name, and no token is made: UTF-8 cannot store it, so list would show another name', async ({ admin }) => {
  const before = resultOf<{ tokens: unknown[] }>(await admin.call('token.list', {})).tokens.length;
  for (const name of ['ci\ud800', '\udc00', 'a\udfffb']) {
    const refused = errorOf(await admin.call('token.create', { agentId: 'surrogate', name }));
    assert.equal([refused.code, refused.data?.errors?.map((problem) => problem.path)], [-32602, ['/name']], JSON.stringify(name));
  }
  assert.is(resultOf<{ tokens: unknown[] }>(await admin.call('token.list', {})).tokens.length, before);
  // A pair is a character like any other, and comes back as it went.
  const emoji = await create(admin, { agentId: 'surrogate', name: 'ci \u{1f680}' });
  const listed = resultOf<{ tokens: Array<{ tokenId: string; name: string | null }> }>(await admin.call('token.list', {})).tokens;
  assert.is(listed.find((token) => token.tokenId === emoji.tokenId)?.name, 'ci \u{1f680}');
});

test('token.create with a name that shows nothing (blank, zero-width) is -32602 on /name, saying so; a name is stored trimmed', async ({ admin }) => {
  for (const [name, message] of [
    ['   ', 'must not be empty or only whitespace'],
    ['\u200b', '`token list` would show nothing'],
  ] as const) {
    const refused = errorOf(await admin.call('token.create', { agentId: 'named', name }));
    assert.is(refused.code, -32602);
    assert.equal(refused.data?.errors?.map((problem) => problem.path), ['/name']);
    assert.match(refused.data!.errors![0]!.message, message);
  }
  const trimmed = await create(admin, { agentId: 'named', name: '  ci  ' });
  const listed = resultOf<{ tokens: Array<{ tokenId: string; name: string | null }> }>(await admin.call('token.list', {})).tokens;
  assert.is(listed.find((token) => token.tokenId === trimmed.tokenId)?.name, 'ci');
});

test('token.create, token.list and token.revoke with a scoped token are 1008 over WebSocket, /rpc and the CLI', async ({ gw, admin }) => {
  const full = await create(admin, { agentId: 'tokenadmin' });
  const peer = await openPeer(gw.url, full.token);
  const calls: Array<[string, Record<string, unknown>]> = [
    ['token.create', { agentId: 'tokenadmin' }],
    ['token.create', { agentId: 'main' }],
    ['token.list', {}],
    ['token.revoke', { tokenId: full.tokenId }],
  ];
  const message = 'this needs the admin token (the one in <data-dir>/token): a scoped token only publishes and subscribes for its agent';
  for (const [method, params] of calls) {
    const error = errorOf(await peer.call(method, params));
    assert.equal([error.code, error.message], [1008, message], method);
    const overHttp = errorOf(jsonOf<JsonRpcResponse>(await postJson(gw.port, '/rpc', rpcBody(method, params), full.token)));
    assert.equal([overHttp.code, overHttp.message], [1008, message], `${method} over /rpc`);
  }
  for (const args of [['token', 'list'], ['token', 'create', '--agent', 'tokenadmin'], ['token', 'revoke', full.tokenId]]) {
    const result = await runCli([...args, ...connection(gw, full.token)]);
    assert.is(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(cliRefusal(result.stderr), { code: 1008, message });
  }
  // The refused revoke did nothing: the token still works.
  resultOf(await peer.call('session.peek', { sessionKey: 'agent:tokenadmin:main' }));
  peer.close();
});

test('`token list` shows ids, agents, scopes and names, never a secret; the data dir holds only hashes', async ({ gw, admin, ci }) => {
  const listed = await runCli(['token', 'list', ...connection(gw)]);
  assert.is(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, new RegExp(`^${ci.tokenId} {2}agent ops {2}publish {2}active {2}created \\S+ "ci"$`, 'm'));
  assert.not.match(listed.stdout, 'sbt_');
  const json = await runCli(['token', 'list', '--json', ...connection(gw)]);
  assert.is(json.code, 0, json.stderr);
  assert.not.match(json.stdout, 'sbt_');
  const { tokens } = JSON.parse(json.stdout) as { tokens: TokenInfo[] };
  const mine = tokens.find((token) => token.tokenId === ci.tokenId);
  assert.equal(mine && { ...mine, createdAt: 'x' }, { tokenId: ci.tokenId, name: 'ci', agentId: 'ops', scopes: ['publish'], createdAt: 'x', revokedAt: null });
  for (const token of tokens) assert.equal(Object.keys(token).sort(), ['agentId', 'createdAt', 'name', 'revokedAt', 'scopes', 'tokenId']);
  const overRpc = resultOf<{ tokens: Record<string, unknown>[] }>(await admin.call('token.list', {}));
  assert.not.match(JSON.stringify(overRpc), 'sbt_');

  // The database, its WAL and shared-memory file, while the gateway runs: the hash, never the secret.
  const created = await create(admin, { agentId: 'secret', name: 'look-for-me' });
  const bytes = () =>
    Buffer.concat(
      ['', '-wal', '-shm']
        .map((suffix) => path.join(gw.dataDir, `${DATA_FILES.database}${suffix}`))
        .filter((file) => fs.existsSync(file))
        .map((file) => fs.readFileSync(file)),
    );
  const live = bytes();
  assert.ok(live.includes(hashToken(created.token)), 'the files read are the ones that hold the token rows');
  assert.not.ok(live.includes(created.token), 'the secret is not in the database files');
  assert.not.ok(live.includes(created.token.slice(4)), 'not even without its prefix');
  assert.not.ok(live.includes(ci.token.slice(4)), 'nor the CLI-created one');
  for (const file of fs.readdirSync(gw.dataDir)) {
    // The token file holds the admin token, not this one; the gateway's socket holds no bytes to read.
    if (file === DATA_FILES.token || file === DATA_FILES.socket) continue;
    const content = fs.readFileSync(path.join(gw.dataDir, file));
    assert.not.ok(content.includes(created.token.slice(4)), `${file} does not hold the secret`);
  }
});

test('revoke: the token stops working at once on every ingress, and its open sockets are closed with 1008 "token revoked"', async ({ gw, admin }) => {
  const doomed = await create(admin, { agentId: 'doomed' });
  const first = await openPeer(gw.url, doomed.token);
  const second = await openPeer(gw.url, doomed.token);
  const bystander = await create(admin, { agentId: 'doomed' });
  const survivor = await openPeer(gw.url, bystander.token);
  resultOf(await first.call('session.subscribe', { agentId: 'doomed' }));

  const revoked = await runCli(['token', 'revoke', doomed.tokenId, ...connection(gw)]);
  assert.is(revoked.code, 0, revoked.stderr);
  assert.is(revoked.stdout, `revoked ${doomed.tokenId}; closed 2 connection(s) that used it\n`);

  assert.equal(await first.closed(), { code: 1008, reason: 'token revoked' });
  assert.equal(await second.closed(), { code: 1008, reason: 'token revoked' });
  const upgrade = await tryUpgrade(gw.url, bearer(doomed.token));
  assert.is(upgrade.status, 401);
  assert.is((await postJson(gw.port, '/rpc', rpcBody('session.peek', { sessionKey: 'agent:doomed:main' }), doomed.token)).status, 401);
  assert.is((await postJson(gw.port, '/hooks/wake', { text: 'too late' }, doomed.token)).status, 401);
  const cli = await runCli(['system', 'event', '--text', 'too late', ...connection(gw, doomed.token)]);
  assert.is(cli.code, 3, `a refused token is "no answer" (exit 3): ${cli.stderr}`);

  // Another token of the same agent, and the admin, are untouched.
  assert.not.ok(survivor.isClosed);
  resultOf(await survivor.call('session.peek', { sessionKey: 'agent:doomed:main' }));
  const listed = resultOf<{ tokens: TokenInfo[] }>(await admin.call('token.list', {}));
  assert.type(listed.tokens.find((token) => token.tokenId === doomed.tokenId)?.revokedAt, 'string');
  assert.is(listed.tokens.find((token) => token.tokenId === bystander.tokenId)?.revokedAt, null);

  // The log says who may act, and who no longer may (operator QA: neither was logged), and at
  // whose asking: the admin token may be held by several (the CLI's call here, over HTTP).
  const logged = (pattern: RegExp) => assert.ok(gw.log.some((line) => pattern.test(line)), `${pattern} in:\n${gw.log.join('\n')}`);
  logged(new RegExp(`^created token ${doomed.tokenId} for agent doomed, to publish and subscribe, asked by connection \\d+ from 127\\.0\\.0\\.1$`));
  logged(new RegExp(`^revoked token ${doomed.tokenId} of agent doomed, asked by POST /rpc from 127\\.0\\.0\\.1: 2 connections of it closed$`));

  // Revoking again is harmless, closes nothing, and says when the token was revoked.
  const revokedAt = listed.tokens.find((token) => token.tokenId === doomed.tokenId)!.revokedAt!;
  assert.equal(resultOf(await admin.call('token.revoke', { tokenId: doomed.tokenId })), {
    tokenId: doomed.tokenId,
    revoked: true,
    alreadyRevoked: true,
    revokedAt,
    closedConnections: 0,
  });
  const again = await runCli(['token', 'revoke', doomed.tokenId, ...connection(gw)]);
  assert.is(again.code, 0, again.stderr);
  assert.is(again.stdout, `${doomed.tokenId} was already revoked at ${revokedAt}; nothing changed\n`);
  assert.is(gw.log.filter((line) => line.startsWith(`revoked token ${doomed.tokenId} `)).length, 1, 'a revoke that changed nothing is not logged');
  survivor.close();
});

test('revoke: an HTTP request admitted before the revoke whose body comes after it is refused 401, and nothing is done', async ({ gw, admin }) => {
  for (const [path, body] of [
    ['/rpc', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'system.event', params: { text: 'sent after the revoke' } })],
    ['/hooks/wake', JSON.stringify({ text: 'sent after the revoke' })],
  ] as const) {
    const late = await create(admin, { agentId: 'latebody' });
    const connection = await openRawHttp(gw.port);
    connection.write(
      `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${late.token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`,
    );
    // 100 Continue: the request was admitted, on its headers, while the token held.
    await waitUntil(() => connection.received.startsWith('HTTP/1.1 100 Continue'), 'the 100 Continue');
    resultOf(await admin.call('token.revoke', { tokenId: late.tokenId }));
    connection.write(body);
    // The answer after the 100's head: its own head, then its JSON body.
    const answer = () => connection.received.slice(connection.received.indexOf('\r\n\r\n') + 4);
    await waitUntil(() => answer().endsWith('}}}'), 'the answer');
    assert.match(answer(), /^HTTP\/1\.1 401 Unauthorized\r\n/);
    assert.equal(JSON.parse(answer().slice(answer().indexOf('\r\n\r\n') + 4)).error, {
      code: 1012,
      message: 'the token was revoked while the request was read: nothing was done',
      data: { name: 'UNAUTHORIZED' },
    });
  }
  assert.is(resultOf<{ depth: number }>(await admin.call('session.peek', { sessionKey: 'agent:latebody:main' })).depth, 0);
});

const SCOPED_HINT = 'this scoped token was revoked or never existed: ask for a new one (`switchboard token create --agent <agentId>`, run with the admin token)';

test('the CLI with a refused token: a scoped one was revoked or never existed (ask for a new one); any other, pass that gateway\'s own', async ({ gw, admin }) => {
  const revoked = await create(admin, { agentId: 'advice' });
  resultOf(await admin.call('token.revoke', { tokenId: revoked.tokenId }));
  const [gone, unknown, wrong] = await Promise.all([
    runCli(['status', ...connection(gw, revoked.token)]),
    runCli(['status', ...connection(gw, `sbt_${'A'.repeat(43)}`)]),
    runCli(['status', ...connection(gw, `sba_${'A'.repeat(43)}`)]),
  ]);
  for (const result of [gone, unknown]) {
    assert.is(result.code, 3, result.stderr);
    assert.is(result.stderr, `switchboard: the gateway at ${gw.url} refused the token: ${SCOPED_HINT}\n`);
  }
  assert.is(wrong.code, 3, wrong.stderr);
  // Over TCP the data dir's token file is no way out (it is not sent there): that gateway's token is.
  assert.match(wrong.stderr, /refused the token: pass that gateway's token \(the one in its data dir's token file\) in SWITCHBOARD_TOKEN or --token\n$/);
  assert.not.match(wrong.stderr, /scoped/);
});

test('session watch with a scoped token that is revoked while it watches: exit 3, saying the token was revoked', async ({ gw, admin }) => {
  const doomed = await create(admin, { agentId: 'watched' });
  const observer = await create(admin, { agentId: 'watched' });
  const watch = spawnCli(['session', 'watch', '--agent', 'watched', ...connection(gw, doomed.token)]);
  // A scoped token's status counts its agent's connections: here the watch's alone.
  const watching = async () =>
    resultOf<{ connections: number }>(jsonOf<JsonRpcResponse>(await postJson(gw.port, '/rpc', rpcBody('gateway.status', {}), observer.token))).connections === 1;
  await waitUntil(watching, 'the watch to connect');
  const revoked = resultOf<{ alreadyRevoked: boolean; revokedAt: string; closedConnections: number }>(
    await admin.call('token.revoke', { tokenId: doomed.tokenId }),
  );
  assert.equal([revoked.alreadyRevoked, revoked.closedConnections], [false, 1]);
  assert.match(revoked.revokedAt, ISO_RE);
  // Cut with 1008 "token revoked", the watch ends: a reconnect could only be refused (401).
  await waitUntil(() => watch.process.exitCode !== null, 'the watch to exit').catch((error: Error) =>
    assert.unreachable(`${error.message}\nstderr: ${watch.stderr()}`),
  );
  assert.is(await watch.stop(), 3, watch.stderr());
  assert.is(watch.stderr(), `switchboard: the gateway at ${gw.url} refused the token: ${SCOPED_HINT}\n`, 'one line, and no "reconnecting" before it');
});

test('revoke: a connection that ignores the close frame cannot act with the revoked token (nothing it sends after is carried out), and a second revoke does not count it again', async ({ gw, admin }) => {
  const doomed = await create(admin, { agentId: 'stubborn' });
  const raw = await openRawWebSocket(gw.port, doomed.token);
  const send = (id: number, text: string) =>
    raw.sendText(JSON.stringify({ jsonrpc: '2.0', id, method: 'system.event', params: { text, sessionKey: 'agent:stubborn:main' } }));
  // The raw client works: before the revoke its event is answered and stored.
  send(1, 'before revoke');
  await raw.waitFor((frame) => answerIn([frame], 1) !== undefined, 'the answer to id 1');
  resultOf(answerIn(raw.frames, 1)!);

  const revoked = resultOf<{ closedConnections: number }>(await admin.call('token.revoke', { tokenId: doomed.tokenId }));
  assert.is(revoked.closedConnections, 1);
  const close = await raw.waitFor((frame) => frame.opcode === 8, 'the close frame');
  assert.equal([close.code, close.reason], [1008, 'token revoked']);
  // Still closing (the peer has not answered): a second revoke changed nothing, and closed nothing (QA: it counted it again).
  const again = resultOf<{ alreadyRevoked: boolean; closedConnections: number }>(await admin.call('token.revoke', { tokenId: doomed.tokenId }));
  assert.equal([again.alreadyRevoked, again.closedConnections], [true, 0]);

  // A peer need not answer the close frame, and may keep sending: none of it may run as the token.
  send(2, 'after revoke');
  raw.sendText(JSON.stringify({ jsonrpc: '2.0', method: 'system.event', params: { text: 'after revoke, notified', sessionKey: 'agent:stubborn:main' } }));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const answer = answerIn(raw.frames, 2);
  assert.ok(answer === undefined || answer.error !== undefined, `no result for a request after the revoke: ${JSON.stringify(answer)}`);
  const peeked = resultOf<{ events: { text: string }[] }>(await admin.call('session.peek', { sessionKey: 'agent:stubborn:main' }));
  assert.equal(
    peeked.events.map((event) => event.text),
    ['before revoke'],
    'events sent on a revoked connection after its close frame must not be stored',
  );
  raw.destroy();
});

test('revoking an unknown token is 1011 TOKEN_NOT_FOUND over RPC and exit 1 from the CLI', async ({ gw, admin }) => {
  const error = errorOf(await admin.call('token.revoke', { tokenId: 'tok_000000000000' }));
  assert.equal([error.code, error.data?.name], [1011, 'TOKEN_NOT_FOUND']);
  const cli = await runCli(['token', 'revoke', 'tok_000000000000', ...connection(gw)]);
  assert.is(cli.code, 1, cli.stderr);
  assert.equal(cliRefusal(cli.stderr), { code: 1011, message: error.message });
});

test('`token create --can` names what it cannot take: an unknown scope, or an empty entry (QA: it quoted "")', async ({ gw }) => {
  for (const [can, got] of [['admin', '"admin"'], ['publish,', 'an empty entry in "publish,"'], [',subscribe', 'an empty entry in ",subscribe"']]) {
    const result = await runCli(['token', 'create', '--agent', 'ops', '--can', can!, ...connection(gw)]);
    assert.is(result.code, 2, result.stderr);
    assert.is(result.stderr, `switchboard: --can takes publish and/or subscribe, comma-separated (got ${got})\n`);
  }
});

test('token.list pages oldest first: at most limit, then after the last listed, with more; an unknown after is TOKEN_NOT_FOUND; the CLI names the next page', async ({ gw, admin }) => {
  for (let i = 0; i < 3; i++) await create(admin, { agentId: 'paged' });
  type Page = { tokens: TokenInfo[]; more: boolean };
  const all = resultOf<Page>(await admin.call('token.list', { limit: 1000 }));
  assert.ok(all.tokens.length >= 3 && !all.more);
  const paged: string[] = [];
  for (let after: string | undefined; ; ) {
    const page = resultOf<Page>(await admin.call('token.list', { limit: 2, ...(after === undefined ? {} : { after }) }));
    assert.ok(page.tokens.length <= 2);
    paged.push(...page.tokens.map((token) => token.tokenId));
    if (!page.more) break;
    after = page.tokens.at(-1)!.tokenId;
  }
  assert.equal(paged, all.tokens.map((token) => token.tokenId), 'every token once, in order');

  const error = errorOf(await admin.call('token.list', { after: 'tok_000000000000' }));
  assert.equal([error.code, error.data?.name, error.data?.['tokenId']], [1011, 'TOKEN_NOT_FOUND', 'tok_000000000000']);

  const first = await runCli(['token', 'list', '--limit', '1', ...connection(gw)]);
  assert.is(first.code, 0, first.stderr);
  // The next page at the same gateway, as many at a time (QA: the hint named neither, and went to the default data dir).
  assert.ok(first.stdout.startsWith(`${paged[0]} `), first.stdout);
  assert.ok(first.stdout.endsWith(`\n(more tokens: switchboard token list --limit 1 --url ${gw.url} --token '<token>' --after ${paged[0]})\n`), first.stdout);
  const last = await runCli(['token', 'list', '--after', paged.at(-1)!, ...connection(gw)]);
  assert.is(last.code, 0, last.stderr);
  assert.is(last.stdout, `no tokens created after ${paged.at(-1)}\n`);
});

test('tokens survive a gateway restart: active ones work, revoked ones stay revoked', async () => {
  const before = await startTunedGateway();
  const admin = await openPeer(before.url, before.token);
  const kept = await create(admin, { agentId: 'durable', scopes: ['publish', 'subscribe'], name: 'kept' });
  const gone = await create(admin, { agentId: 'durable', name: 'gone' });
  resultOf(await admin.call('token.revoke', { tokenId: gone.tokenId }));
  admin.close();
  await before.gateway.close();

  const after = await startTunedGateway({ dataDir: before.dataDir });
  const peer = await openPeer(after.url, kept.token);
  const routed = resultOf<RoutingResult>(await peer.call('system.event', { text: 'still here' }));
  assert.is(routed.sessionKey, 'agent:durable:main');
  const forbidden = errorOf(await peer.call('system.event', { text: 'still scoped', agentId: 'main' }));
  assert.is(forbidden.code, 1008);
  assert.is((await tryUpgrade(after.url, bearer(gone.token))).status, 401);
  assert.is((await postJson(after.port, '/hooks/wake', { text: 'x' }, gone.token)).status, 401);
  const listed = await runCli(['token', 'list', '--json', ...connection(after)]);
  const { tokens } = JSON.parse(listed.stdout) as { tokens: TokenInfo[] };
  assert.equal(
    tokens.map((token) => [token.name, token.tokenId, token.revokedAt === null]).sort(),
    [
      ['gone', gone.tokenId, false],
      ['kept', kept.tokenId, true],
    ],
  );
  peer.close();
});

test.run();
