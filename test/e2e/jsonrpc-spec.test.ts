/**
 * The JSON-RPC 2.0 specification's own examples (https://www.jsonrpc.org/specification, section 7)
 * as raw frames over a real WebSocket to a real gateway. Where the spec names `subtract` / `sum`
 * the frames use this gateway's methods; method names the spec uses as "does not exist" examples
 * (`foobar`, `update`, `notify_hello`, ...) are kept as they are.
 */
import http from 'node:http';
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_BATCH_LENGTH, MAX_FRAGMENTS_PER_MESSAGE, MAX_FRAME_BYTES } from '../../src/protocol/constants.js';
import {
  cleanup,
  errorOf,
  openRaw,
  resultOf,
  startInProcessGateway,
  tryUpgrade,
  type InProcessGateway,
  type JsonRpcResponse,
  type RawSocket,
} from '../helpers/gateway.js';

interface Context {
  gw: InProcessGateway;
  raw: RawSocket;
}

const test = suite<Context>('e2e: JSON-RPC 2.0 spec over a real WebSocket', {} as Context);

/** Long enough for a wrongly sent response of an in-process gateway to arrive; short enough to stay fast. */
const SILENCE_MS = 250;

test.before(async (context) => {
  context.gw = await startInProcessGateway();
  context.raw = await openRaw(context.gw.url, context.gw.token);
});

test.after(async () => {
  await cleanup();
});

/** The connection survived whatever the test sent: a good call on it is still answered. */
async function stillAnswers(raw: RawSocket): Promise<void> {
  const response = await raw.call('gateway.status', {});
  const status = resultOf<{ version: string }>(response);
  assert.type(status.version, 'string');
}

function byId(responses: JsonRpcResponse[]): Map<string, JsonRpcResponse> {
  const map = new Map<string, JsonRpcResponse>();
  for (const response of responses) {
    const key = JSON.stringify(response.id);
    assert.not.ok(map.has(key), `two responses with id ${key}`);
    map.set(key, response);
  }
  return map;
}

function assertError(response: JsonRpcResponse, code: number, id: string | number | null, name: string): void {
  assert.is(response.jsonrpc, '2.0');
  assert.is(response.id, id);
  assert.not.ok('result' in response, 'an error response has no result member');
  const error = errorOf(response);
  assert.is(error.code, code);
  assert.type(error.message, 'string');
  assert.is(error.data?.name, name);
}

// ---------------------------------------------------------------- section 7, one example each

test('rpc call with named params (spec: subtract by name) answers with the result and the same id', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "system.event", "params": {"text": "spec named params", "sessionKey": "agent:spec:main"}, "id": 3}');
  const response = await raw.nextJson<JsonRpcResponse>();
  assert.is(response.jsonrpc, '2.0');
  assert.is(response.id, 3);
  assert.not.ok('error' in response);
  const result = resultOf<{ sessionKey: string; queue: { seq: number } }>(response);
  assert.is(result.sessionKey, 'agent:spec:main');
  assert.is(result.queue.seq, 1);

  // Same params, other order (spec: {"minuend": 42, "subtrahend": 23} vs the reverse): named params ignore order.
  raw.send('{"jsonrpc": "2.0", "method": "system.event", "params": {"sessionKey": "agent:spec:main", "text": "spec named params 2"}, "id": 4}');
  const second = await raw.nextJson<JsonRpcResponse>();
  assert.is(second.id, 4);
  assert.is(resultOf<{ queue: { seq: number } }>(second).queue.seq, 2);
});

test('rpc call with positional params (spec: subtract [42, 23]) is -32602: params are by name', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "system.event", "params": ["spec positional", "agent:spec:main"], "id": 1}');
  const response = await raw.nextJson<JsonRpcResponse>();
  assertError(response, -32602, 1, 'INVALID_PARAMS');
  assert.ok(Array.isArray(errorOf(response).data?.errors), 'data.errors lists the problem');
  await stillAnswers(raw);
});

test('a notification (named params) gets no response, and is still carried out', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "system.event", "params": {"text": "spec notification", "sessionKey": "agent:notify:main"}}');
  await raw.expectSilence(SILENCE_MS);
  const peek = resultOf<{ events: { text: string }[] }>(await raw.call('session.peek', { sessionKey: 'agent:notify:main' }));
  assert.equal(
    peek.events.map((event) => event.text),
    ['spec notification'],
  );
});

test('a refused system.event sent as a notification gets no response, but the log says so: it would otherwise vanish without a word (QA)', async ({ raw, gw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "system.event", "params": {"text": "lost?", "sessionKey": "agent:ops:slack:N1"}}');
  await raw.expectSilence(SILENCE_MS);
  const line = gw.log.find((logged) => logged.startsWith('refused a notification'));
  assert.ok(line, gw.log.join('\n'));
  assert.match(
    line!,
    /^refused a notification \(requests without an id, which JSON-RPC answers with nothing: give system\.event an id to hear its routing result\), the last system\.event from 127\.0\.0\.1: Invalid params: \/sessionKey: /,
  );
});

test("what a refused notification sent writes no line of its own into the log (review: a method holding a newline and a timestamp forged one)", async () => {
  const own = await startInProcessGateway();
  const peer = await openRaw(own.url, own.token);
  peer.send(JSON.stringify({ jsonrpc: '2.0', method: 'x\n2026-11-27T00:00:00.000Z switchboard gateway: stopped\u2028' }));
  await peer.expectSilence(SILENCE_MS);
  const told = own.log.filter((logged) => logged.startsWith('refused a notification'));
  assert.is(told.length, 1, own.log.join('\n'));
  assert.ok(told[0]!.includes('the last x\\n2026-11-27T00:00:00.000Z switchboard gateway: stopped\\u2028 from '), told[0]);
  assert.not.match(told[0]!, /[\n\u2028]/);
  peer.close();
  await own.gateway.close();
});

test('a notification of a method that does not exist (spec: foobar) gets no response', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "foobar"}');
  await raw.expectSilence(SILENCE_MS);
  await stillAnswers(raw);
});

test('spec literal notification {"method": "update", "params": [1,2,3,4,5]} gets no response', async ({ raw }) => {
  // The server MUST NOT reply to a notification; positional params do not make it a request.
  raw.send('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}');
  await raw.expectSilence(SILENCE_MS);
  await stillAnswers(raw);
});

test('a notification with positional params to an existing method gets no response', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "system.event", "params": ["positional notification"]}');
  await raw.expectSilence(SILENCE_MS);
  await stillAnswers(raw);
});

test('a notification with invalid params gets no response', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "system.event", "params": {"text": 5}}');
  await raw.expectSilence(SILENCE_MS);
  await stillAnswers(raw);
});

test('non-existent method (spec: foobar, id "1") is -32601 with the id echoed', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}');
  const response = await raw.nextJson<JsonRpcResponse>();
  assertError(response, -32601, '1', 'METHOD_NOT_FOUND');
  await stillAnswers(raw);
});

test('invalid JSON (spec example) is -32700 with id null', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]');
  const response = await raw.nextJson<JsonRpcResponse>();
  assertError(response, -32700, null, 'PARSE_ERROR');
  await stillAnswers(raw);
});

test('invalid Request object (spec: method 1, params "bar") is -32600 with id null', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": 1, "params": "bar"}');
  const response = await raw.nextJson<JsonRpcResponse>();
  assertError(response, -32600, null, 'INVALID_REQUEST');
  await stillAnswers(raw);
});

test('batch with invalid JSON (spec example) is one -32700 object, not an array', async ({ raw }) => {
  raw.send('[\n  {"jsonrpc": "2.0", "method": "gateway.status", "params": {}, "id": "1"},\n  {"jsonrpc": "2.0", "method"\n]');
  const response = await raw.nextJson<JsonRpcResponse | JsonRpcResponse[]>();
  assert.not.ok(Array.isArray(response), 'a parse error is a single response');
  assertError(response as JsonRpcResponse, -32700, null, 'PARSE_ERROR');
  await stillAnswers(raw);
});

test('empty array [] is one -32600 object, not an array', async ({ raw }) => {
  raw.send('[]');
  const response = await raw.nextJson<JsonRpcResponse | JsonRpcResponse[]>();
  assert.not.ok(Array.isArray(response), 'an empty batch is answered with a single response');
  assertError(response as JsonRpcResponse, -32600, null, 'INVALID_REQUEST');
  await stillAnswers(raw);
});

test('[1] is an array of one -32600 (a batch of one invalid request)', async ({ raw }) => {
  raw.send('[1]');
  const response = await raw.nextJson<JsonRpcResponse[]>();
  assert.ok(Array.isArray(response), 'a non-empty batch is answered with an array');
  assert.is(response.length, 1);
  assertError(response[0]!, -32600, null, 'INVALID_REQUEST');
  await stillAnswers(raw);
});

test('[1,2,3] is an array of three -32600', async ({ raw }) => {
  raw.send('[1,2,3]');
  const response = await raw.nextJson<JsonRpcResponse[]>();
  assert.ok(Array.isArray(response));
  assert.is(response.length, 3);
  for (const item of response) assertError(item, -32600, null, 'INVALID_REQUEST');
  await stillAnswers(raw);
});

test('mixed batch: answers every request, none for the notification, in one array', async ({ raw }) => {
  raw.send(
    JSON.stringify([
      { jsonrpc: '2.0', method: 'gateway.status', params: {}, id: '1' },
      { jsonrpc: '2.0', method: 'system.event', params: { text: 'batch notification', sessionKey: 'agent:batch:main' } },
      { jsonrpc: '2.0', method: 'session.peek', params: { sessionKey: 'agent:batch:main' }, id: '2' },
      { foo: 'boo' },
      { jsonrpc: '2.0', method: 'foo.get', params: { name: 'myself' }, id: '5' },
      { jsonrpc: '2.0', method: 'rpc.discover', id: '9' },
    ]),
  );
  const response = await raw.nextJson<JsonRpcResponse[]>();
  assert.ok(Array.isArray(response));
  assert.is(response.length, 5, `five responses, got ${JSON.stringify(response.map((r) => r.id))}`);
  const answers = byId(response);
  assert.equal([...answers.keys()].sort(), ['"1"', '"2"', '"5"', '"9"', 'null']);
  assert.type(resultOf<{ version: string }>(answers.get('"1"')!).version, 'string');
  const peek = resultOf<{ sessionKey: string; events: unknown[] }>(answers.get('"2"')!);
  assert.is(peek.sessionKey, 'agent:batch:main');
  assertError(answers.get('null')!, -32600, null, 'INVALID_REQUEST');
  assertError(answers.get('"5"')!, -32601, '5', 'METHOD_NOT_FOUND');
  assert.is(resultOf<{ openrpc: string }>(answers.get('"9"')!).openrpc, '1.3.2');
  // The notification in the batch was carried out.
  const after = resultOf<{ events: { text: string }[] }>(await raw.call('session.peek', { sessionKey: 'agent:batch:main' }));
  assert.equal(
    after.events.map((event) => event.text),
    ['batch notification'],
  );
});

test('spec literal mixed batch: the notify_hello [7] notification gets no response', async ({ raw }) => {
  raw.send(
    '[{"jsonrpc": "2.0", "method": "gateway.status", "params": {}, "id": "1"},' +
      '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},' +
      '{"foo": "boo"},' +
      '{"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"}]',
  );
  const response = await raw.nextJson<JsonRpcResponse[]>();
  assert.ok(Array.isArray(response));
  assert.is(response.length, 3, `three responses (ids "1", "5", null), got ${JSON.stringify(response)}`);
  const answers = byId(response);
  assert.is(resultOf<{ version: string }>(answers.get('"1"')!).version.length > 0, true);
  assertError(answers.get('null')!, -32600, null, 'INVALID_REQUEST');
  assertError(answers.get('"5"')!, -32601, '5', 'METHOD_NOT_FOUND');
  await stillAnswers(raw);
});

test('batch of only notifications (translated) gets no response at all', async ({ raw }) => {
  raw.send(
    JSON.stringify([
      { jsonrpc: '2.0', method: 'system.event', params: { text: 'only notifications 1', sessionKey: 'agent:notes:main' } },
      { jsonrpc: '2.0', method: 'foobar', params: { n: 7 } },
    ]),
  );
  await raw.expectSilence(SILENCE_MS);
  await stillAnswers(raw);
});

test('spec literal batch of only notifications (notify_sum [1,2,4], notify_hello [7]) gets no response', async ({ raw }) => {
  raw.send('[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]');
  await raw.expectSilence(SILENCE_MS);
  await stillAnswers(raw);
});

// ---------------------------------------------------------------- envelope details

test('ids are echoed exactly: strings, numbers, zero, negatives, fractions', async ({ raw }) => {
  for (const id of ['abc-1', '', 42, 0, -7, 1.5, 9007199254740991]) {
    raw.send(JSON.stringify({ jsonrpc: '2.0', method: 'gateway.status', params: {}, id }));
    const response = await raw.nextJson<JsonRpcResponse>();
    assert.is(response.id, id, `id ${JSON.stringify(id)}`);
    resultOf(response);
  }
});

test('integer ids beyond 2^53 (64-bit and snowflake ids) come back as sent, in single requests and batches', async ({ raw }) => {
  for (const id of ['9007199254740993', '-18446744073709551615', '1234567890123456789012']) {
    raw.send(`{"jsonrpc":"2.0","method":"gateway.status","params":{},"id":${id}}`);
    assert.match(await raw.next(), new RegExp(`^\\{"jsonrpc":"2\\.0","id":${id},"result":\\{`), `id ${id}`);
  }
  raw.send('[{"jsonrpc":"2.0","method":"nope","id":9007199254740995},{"jsonrpc":"2.0","method":"gateway.status","id":9007199254740997}]');
  const batch = await raw.next();
  assert.match(batch, /^\[\{"jsonrpc":"2\.0","id":9007199254740995,"error":\{"code":-32601,/);
  assert.match(batch, /\},\{"jsonrpc":"2\.0","id":9007199254740997,"result":\{/);
});

test('ids too large for a double (1e400, -1e400) are handled like any number id and come back as sent, in single requests and batches', async ({ raw }) => {
  for (const id of ['1e400', '-1e400', '1E+999']) {
    raw.send(`{"jsonrpc":"2.0","method":"gateway.status","params":{},"id":${id}}`);
    assert.match(await raw.next(), new RegExp(`^\\{"jsonrpc":"2\\.0","id":${id.replace('+', '\\+')},"result":\\{`), `id ${id}`);
  }
  raw.send('[{"jsonrpc":"2.0","method":"nope","id":1e400},{"jsonrpc":"2.0","method":"gateway.status","id":-1e400}]');
  const batch = await raw.next();
  assert.match(batch, /^\[\{"jsonrpc":"2\.0","id":1e400,"error":\{"code":-32601,/);
  assert.match(batch, /\},\{"jsonrpc":"2\.0","id":-1e400,"result":\{/);
});

test('a binary frame is read as UTF-8 JSON; one that is not UTF-8 is -32700 and the connection lives on', async ({ raw }) => {
  raw.ws.send(Buffer.from('{"jsonrpc":"2.0","method":"gateway.status","id":"bin"}'), { binary: true });
  resultOf(await raw.nextJson<JsonRpcResponse>());
  raw.ws.send(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","method":"system.event","id":"bad","params":{"text":"a'), Buffer.from([0xff]), Buffer.from('"}}')]), {
    binary: true,
  });
  assertError(await raw.nextJson<JsonRpcResponse>(), -32700, null, 'PARSE_ERROR');
  await stillAnswers(raw);
});

test('a request with id null is still a request (not a notification): answered with id null', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "gateway.status", "params": {}, "id": null}');
  const response = await raw.nextJson<JsonRpcResponse>();
  assert.is(response.id, null);
  resultOf(response);
});

test('id of a wrong type (object) is -32600 with id null', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "gateway.status", "params": {}, "id": {"a": 1}}');
  assertError(await raw.nextJson<JsonRpcResponse>(), -32600, null, 'INVALID_REQUEST');
  await stillAnswers(raw);
});

test('jsonrpc "1.0" is -32600', async ({ raw }) => {
  raw.send('{"jsonrpc": "1.0", "method": "gateway.status", "params": {}, "id": 11}');
  const response = await raw.nextJson<JsonRpcResponse>();
  assert.is(errorOf(response).code, -32600);
  assert.is(errorOf(response).data?.name, 'INVALID_REQUEST');
  assert.ok(response.id === 11 || response.id === null, `id is 11 or null, got ${JSON.stringify(response.id)}`);
  await stillAnswers(raw);
});

test('missing "jsonrpc" member is -32600', async ({ raw }) => {
  raw.send('{"method": "gateway.status", "params": {}, "id": 12}');
  assert.is(errorOf(await raw.nextJson<JsonRpcResponse>()).code, -32600);
  await stillAnswers(raw);
});

test('params that are neither object nor array ("bar") is -32600', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "gateway.status", "params": "bar", "id": 13}');
  assert.is(errorOf(await raw.nextJson<JsonRpcResponse>()).code, -32600);
  await stillAnswers(raw);
});

test('a JSON scalar frame (a string, a number, null) is -32600 with id null', async ({ raw }) => {
  for (const frame of ['"hello"', '42', 'null', 'true']) {
    raw.send(frame);
    assertError(await raw.nextJson<JsonRpcResponse>(), -32600, null, 'INVALID_REQUEST');
  }
  await stillAnswers(raw);
});

test('system.event params of wrong types: -32602 with data.errors naming each path', async ({ raw }) => {
  raw.send(
    JSON.stringify({ jsonrpc: '2.0', method: 'system.event', params: { text: 5, mode: 'later', sessionKey: 7, bogus: true }, id: 'types' }),
  );
  const response = await raw.nextJson<JsonRpcResponse>();
  assertError(response, -32602, 'types', 'INVALID_PARAMS');
  const errors = errorOf(response).data?.errors ?? [];
  const paths = errors.map((problem) => problem.path).sort();
  assert.equal(paths, ['/bogus', '/mode', '/sessionKey', '/text']);
  for (const problem of errors) {
    assert.type(problem.message, 'string');
    assert.ok(problem.message.length > 0, `message for ${problem.path}`);
  }
  assert.is(errors.find((problem) => problem.path === '/text')?.message, 'must be a string');
  assert.is(errors.find((problem) => problem.path === '/bogus')?.message, 'is not a known parameter');
  await stillAnswers(raw);
});

test('system.event without text: -32602 with {path: "/text", message: "is required"}', async ({ raw }) => {
  const response = await raw.call('system.event', {});
  const error = errorOf(response);
  assert.is(error.code, -32602);
  assert.is(error.data?.name, 'INVALID_PARAMS');
  assert.equal(error.data?.errors, [{ path: '/text', message: 'is required' }]);
});

test('system.event without params at all is -32602 (text is required), not a crash', async ({ raw }) => {
  raw.send('{"jsonrpc": "2.0", "method": "system.event", "id": 14}');
  const response = await raw.nextJson<JsonRpcResponse>();
  assertError(response, -32602, 14, 'INVALID_PARAMS');
  assert.equal(errorOf(response).data?.errors, [{ path: '/text', message: 'is required' }]);
});

test(`a batch of exactly MAX_BATCH_LENGTH (${MAX_BATCH_LENGTH}) is answered; one more is -32600 for each request, in an array (§6), none of them run`, async ({ raw }) => {
  const batch = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', method: 'gateway.status', params: {}, id: i })));
  raw.send(batch(MAX_BATCH_LENGTH));
  const full = await raw.nextJson<JsonRpcResponse[]>();
  assert.ok(Array.isArray(full));
  assert.is(full.length, MAX_BATCH_LENGTH);
  assert.equal(
    full.map((r) => r.id).sort((a, b) => Number(a) - Number(b)),
    Array.from({ length: MAX_BATCH_LENGTH }, (_, i) => i),
  );
  raw.send(batch(MAX_BATCH_LENGTH + 1));
  const over = await raw.nextJson<JsonRpcResponse[]>();
  assert.ok(Array.isArray(over));
  assert.is(over.length, MAX_BATCH_LENGTH + 1);
  over.forEach((response, i) => {
    assertError(response, -32600, i, 'INVALID_REQUEST');
    assert.is(response.error?.data?.['limit'], MAX_BATCH_LENGTH);
  });
  await stillAnswers(raw);
});

test('rpc.discover returns the OpenRPC document listing every method, with the URL the gateway listens on', async ({ gw, raw }) => {
  const doc = resultOf<{ openrpc: string; servers: unknown[]; methods: { name: string }[] }>(await raw.call('rpc.discover', {}));
  assert.is(doc.openrpc, '1.3.2');
  // An ephemeral port: not the default that schema/openrpc.json names.
  assert.equal(doc.servers, [{ name: 'switchboard gateway', url: gw.url }]);
  assert.ok(Array.isArray(doc.methods));
  const names = doc.methods.map((method) => method.name);
  for (const name of ['system.event', 'session.peek', 'session.drain', 'session.list', 'gateway.status', 'rpc.discover']) {
    assert.ok(names.includes(name), `methods include ${name}`);
  }
  // Without params at all, too.
  resultOf(await raw.call('rpc.discover'));
});

// ---------------------------------------------------------------- frames and the upgrade

test(`a frame of exactly MAX_FRAME_BYTES (${MAX_FRAME_BYTES}) is read and answered`, async ({ gw }) => {
  const raw = await openRaw(gw.url, gw.token);
  const head = '{"jsonrpc": "2.0", "method": "gateway.status", "params": {}, "id": "big"}';
  raw.send(head + ' '.repeat(MAX_FRAME_BYTES - head.length));
  const response = await raw.nextJson<JsonRpcResponse>();
  assert.is(response.id, 'big');
  resultOf(response);
  raw.close();
});

test('a frame larger than MAX_FRAME_BYTES closes the connection with 1009; the gateway still serves new ones', async ({ gw, raw: other }) => {
  const raw = await openRaw(gw.url, gw.token);
  const head = '{"jsonrpc": "2.0", "method": "gateway.status", "params": {}, "id": "huge"}';
  raw.send(head + ' '.repeat(MAX_FRAME_BYTES + 1 - head.length));
  const closed = await raw.closed();
  assert.is(closed.code, 1009);
  // Other connections are unaffected, and new ones are accepted.
  await stillAnswers(other);
  const fresh = await openRaw(gw.url, gw.token);
  await stillAnswers(fresh);
  fresh.close();
});

test(`a message in MAX_FRAGMENTS_PER_MESSAGE (${MAX_FRAGMENTS_PER_MESSAGE}) fragments is read and answered; one in more closes the connection with 1008`, async ({ gw }) => {
  const inFragments = async (count: number) => {
    const raw = await openRaw(gw.url, gw.token);
    const message = JSON.stringify({ jsonrpc: '2.0', method: 'gateway.status', id: count }).padEnd(count, ' ');
    for (let i = 0; i < count; i++) raw.ws.send(message[i]!, { fin: i === count - 1 });
    return raw;
  };
  const whole = await inFragments(MAX_FRAGMENTS_PER_MESSAGE);
  assert.is((await whole.nextJson<JsonRpcResponse>()).id, MAX_FRAGMENTS_PER_MESSAGE);
  whole.close();
  const over = await inFragments(MAX_FRAGMENTS_PER_MESSAGE + 1);
  assert.is((await over.closed()).code, 1008);
});

test('upgrade without a token is refused with HTTP 401, challenging Bearer only: never Basic, which a browser would answer and remember for other pages', async ({ gw }) => {
  const refused = await tryUpgrade(gw.url, {});
  assert.is(refused.status, 401);
  assert.is(refused.headers['www-authenticate'], 'Bearer realm="switchboard"');
});

test('upgrade with a wrong token, or another scheme, is refused with HTTP 401', async ({ gw }) => {
  assert.is((await tryUpgrade(gw.url, { authorization: `Bearer ${gw.token}x` })).status, 401);
  assert.is((await tryUpgrade(gw.url, { authorization: 'Bearer wrong' })).status, 401);
  const basic = (userinfo: string) => `Basic ${Buffer.from(userinfo).toString('base64')}`;
  assert.is((await tryUpgrade(gw.url, { authorization: basic('any:wrong') })).status, 401);
  assert.is((await tryUpgrade(gw.url, { authorization: basic(`any:${gw.token}x`) })).status, 401);
  assert.is((await tryUpgrade(gw.url, { authorization: basic(gw.token) })).status, 401, 'Basic without a colon');
  assert.is((await tryUpgrade(gw.url, { authorization: `Token ${gw.token}` })).status, 401);
  assert.is((await tryUpgrade(gw.url, { authorization: 'Bearer' })).status, 401);
  assert.is((await tryUpgrade(gw.url, { authorization: `Bearer ${gw.token}` })).status, 101);
  // The token as the password of Basic (ws://any:<token>@host) is accepted too.
  assert.is((await tryUpgrade(gw.url, { authorization: basic(`any:${gw.token}`) })).status, 101);
});

test('an upgrade that offers subprotocols gets the first that names JSON-RPC, and none when none does (RFC 6455 section 4.2.2)', async ({ gw }) => {
  const upgrade = (protocols: string) =>
    new Promise<{ status: number; protocol: string | undefined }>((resolve, reject) => {
      const headers = {
        authorization: `Bearer ${gw.token}`,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-protocol': protocols,
      };
      const request = http.request({ host: '127.0.0.1', port: gw.port, path: '/', headers, agent: false });
      request.once('upgrade', (response, socket) => {
        socket.destroy();
        resolve({ status: response.statusCode ?? 0, protocol: response.headers['sec-websocket-protocol'] });
      });
      request.once('response', (response) => {
        response.resume();
        resolve({ status: response.statusCode ?? 0, protocol: response.headers['sec-websocket-protocol'] });
      });
      request.once('error', reject);
      request.end();
    });
  // Selecting one would tell the client the gateway speaks MQTT, or graphql-ws, from then on.
  assert.equal(await upgrade('mqtt'), { status: 101, protocol: undefined });
  assert.equal(await upgrade('graphql-ws, mqtt'), { status: 101, protocol: undefined });
  // A client that offers JSON-RPC (and a browser, which needs one answered) gets it back.
  assert.equal(await upgrade('graphql-ws, jsonrpc, jsonrpc-2.0'), { status: 101, protocol: 'jsonrpc' });
  assert.equal(await upgrade('jsonrpc-2.0'), { status: 101, protocol: 'jsonrpc-2.0' });
});

test('an upgrade request without Host, or over HTTP/1.0, is 400 and no connection opens (RFC 6455 section 4.2.1)', async ({ gw }) => {
  const statusOf = (head: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: gw.port }, () => socket.write(head));
      let answer = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        answer += chunk;
        if (answer.includes('\r\n')) {
          socket.destroy();
          resolve(answer.slice(0, answer.indexOf('\r\n')));
        }
      });
      socket.on('error', reject);
    });
  const upgrade = (version: string, host: string) =>
    `GET / HTTP/${version}\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${gw.token}\r\n\r\n`;
  assert.is(await statusOf(upgrade('1.1', 'Host: 127.0.0.1\r\n')), 'HTTP/1.1 101 Switching Protocols');
  assert.is(await statusOf(upgrade('1.1', '')), 'HTTP/1.1 400 Bad Request');
  assert.is(await statusOf(upgrade('1.0', 'Host: 127.0.0.1\r\n')), 'HTTP/1.1 400 Bad Request');
});

test('plain HTTP: /healthz is 200 "ok", anything else is 426 Upgrade Required', async ({ gw }) => {
  const get = (pathname: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: gw.port, path: pathname }, (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
  assert.equal(await get('/healthz'), { status: 200, body: 'ok\n' });
  assert.is((await get('/')).status, 426);
});

test.run();
